"""`together-operator run` settings: each flag, its environment variable, and the key kept out of reprs."""

from __future__ import annotations

import argparse

import pytest

from together_operator.handlers import reconciler_settings
from together_operator.settings import add_run_arguments, config_from_args


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_run_arguments(parser)
    return parser.parse_args(list(argv))


def test_defaults_match_the_documented_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TOGETHER_API_KEY", "TOGETHER_BASE_URL", "TOGETHER_OPERATOR_NAMESPACES"):
        monkeypatch.delenv(name, raising=False)

    config = config_from_args(parse())

    assert config.namespaces == ()
    assert config.base_url == "https://api.together.ai/v1"
    assert (config.poll_interval, config.transition_poll_interval, config.resync_interval) == (30, 5, 60)
    assert config.resync_budget == 1
    assert (config.stalled_retry_interval, config.transient_retry_interval) == (60, 10)
    assert (config.rate_limit, config.max_concurrent_calls) == (10, 16)
    assert (config.health_host, config.health_port) == ("0.0.0.0", 8080)
    assert (config.metrics_host, config.metrics_port) == ("0.0.0.0", 9090)


def test_environment_variables_set_what_flags_do_and_flags_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOGETHER_OPERATOR_POLL_INTERVAL", "7.5")
    monkeypatch.setenv("TOGETHER_OPERATOR_METRICS_PORT", "0")
    monkeypatch.setenv("TOGETHER_OPERATOR_NAMESPACES", "team-a, team-b ,")

    from_env = config_from_args(parse())
    from_flags = config_from_args(parse("--poll-interval=3", "--namespace=ml-*"))

    assert (from_env.poll_interval, from_env.metrics_port, from_env.namespaces) == (
        7.5,
        0,
        ("team-a", "team-b"),
    )
    assert (from_flags.poll_interval, from_flags.namespaces) == (3, ("ml-*",))


def test_the_api_key_never_shows_in_the_config_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOGETHER_API_KEY", "tok-very-secret")

    config = config_from_args(parse())

    assert config.api_key == "tok-very-secret"
    assert "tok-very-secret" not in repr(config)
    assert "tok-very-secret" not in str(config)


@pytest.mark.parametrize("budget", ["0", "-1"])
def test_a_resync_budget_of_no_reads_is_refused(budget: str) -> None:
    with pytest.raises(SystemExit):
        parse(f"--resync-budget={budget}")


def test_the_reconciler_takes_its_intervals_from_the_flags() -> None:
    config = config_from_args(
        parse(
            "--transition-poll-interval=2",
            "--transient-retry-interval=3",
            "--stalled-retry-interval=70",
        )
    )

    settings = reconciler_settings(config)

    # While an endpoint changes state (or a create is in doubt) the resource looks again this often.
    assert settings.transition_check == 2
    assert settings.retry.transient_seconds == 3
    assert (settings.retry.auth_seconds, settings.retry.credentials_seconds) == (70, 70)


@pytest.mark.parametrize(
    ("flags", "under_way"),
    [
        ((), 32),  # twice the 16 calls in flight; 3.2 s of the default 10 calls/s
        (("--rate-limit=1",), 10),  # never more than 10 s of the rate limit
        (("--max-concurrent-calls=4",), 8),
        (("--max-concurrent-calls=0", "--rate-limit=0"), 32),
        (("--rate-limit=0.05",), 1),
    ],
)
def test_creates_under_way_at_once_keep_every_post_well_within_its_send_deadline(
    flags: tuple[str, ...], under_way: int
) -> None:
    assert reconciler_settings(config_from_args(parse(*flags))).creates_under_way == under_way
