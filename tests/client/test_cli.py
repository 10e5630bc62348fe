"""`together-operator hardware`, `availability-zones` and `endpoints list|get` against the simulator.

The look-ups read TOGETHER_API_KEY and TOGETHER_BASE_URL, as the operator does; they print a table or,
with `-o json`, the API's objects; a failure is one line on stderr and exit status 1, never the key.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import httpx
import pytest

from tests.simulator.api_helpers import STEADY
from tests.simulator.v2_helpers import V2
from tests.support.simulator_fixtures import SimulatorFactory
from together_operator.cli import main
from together_simulator import RunningSimulator

MIXTRAL = "mistralai/Mixtral-8x7B-Instruct-v0.1"
LLAMA = "meta-llama/Llama-3-8b-chat-hf"


@pytest.fixture
def env(simulator: RunningSimulator, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The operator's settings, pointing at the simulator."""
    settings = {"TOGETHER_API_KEY": simulator.api_key, "TOGETHER_BASE_URL": simulator.base_url}
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    return settings


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(list(args))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def table(output: str) -> list[list[str]]:
    return [line.split() for line in output.splitlines()]


def create(simulator: RunningSimulator, **fields: Any) -> dict[str, Any]:
    body = {
        "model": MIXTRAL,
        "hardware": "2x_nvidia_h100_80gb_sxm",
        "autoscaling": {"min_replicas": 1, "max_replicas": 2},
        **fields,
    }
    headers = {"Authorization": f"Bearer {simulator.api_key}"}
    response = httpx.post(f"{simulator.base_url}/endpoints", json=body, headers=headers)
    response.raise_for_status()
    endpoint: dict[str, Any] = response.json()
    return endpoint


class TestHardware:
    def test_table_shows_id_gpu_count_price_per_hour_and_availability(
        self, env: dict[str, str], capsys: pytest.CaptureFixture[str]
    ) -> None:
        status, out, err = run(capsys, "hardware", "--model", LLAMA)

        assert (status, err) == (0, "")
        # 4.27 and 5.6 cents per GPU-minute: $2.56 and $3.36 an hour per GPU.
        assert table(out) == [
            ["HARDWARE", "GPU", "COUNT", "USD/HOUR", "AVAILABILITY"],
            ["1x_nvidia_a100_80gb_sxm", "a100-80gb", "1", "2.56", "available"],
            ["1x_nvidia_h100_80gb_sxm", "h100-80gb", "1", "3.36", "available"],
            ["2x_nvidia_h100_80gb_sxm", "h100-80gb", "2", "6.72", "available"],
        ]

    def test_json_is_the_apis_hardware_objects(
        self, env: dict[str, str], capsys: pytest.CaptureFixture[str]
    ) -> None:
        status, out, _ = run(capsys, "hardware", "--model", "Qwen/Qwen3.5-9B-FP8", "-o", "json")

        assert status == 0
        options = json.loads(out)
        assert [(o["id"], o["specs"]["gpu_count"], o["availability"]["status"]) for o in options] == [
            ("1x_nvidia_a100_80gb_pcie", 1, "unavailable"),
            ("1x_nvidia_a100_80gb_sxm", 1, "available"),
            ("1x_nvidia_h100_80gb_sxm", 1, "insufficient"),
        ]
        assert options[0]["pricing"] == {"cents_per_minute": 4.0}

    def test_an_unknown_model_has_an_empty_table(
        self, env: dict[str, str], capsys: pytest.CaptureFixture[str]
    ) -> None:
        status, out, _ = run(capsys, "hardware", "--model", "no/such-model")

        assert (status, table(out)) == (0, [["HARDWARE", "GPU", "COUNT", "USD/HOUR", "AVAILABILITY"]])


def test_availability_zones_as_table_and_json(
    env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    zones = ["us-central-4b", "us-east-1a", "us-west-2a", "eu-central-1a"]

    status, out, _ = run(capsys, "availability-zones")
    json_status, json_out, _ = run(capsys, "availability-zones", "-o", "json")

    assert (status, table(out)) == (0, [["AVAILABILITY", "ZONE"], *([zone] for zone in zones)])
    assert (json_status, json.loads(json_out)) == (0, zones)


class TestEndpoints:
    def test_list_shows_the_callers_dedicated_endpoints(
        self, simulator: RunningSimulator, env: dict[str, str], capsys: pytest.CaptureFixture[str]
    ) -> None:
        endpoint = create(simulator, display_name="ml/support-bot", state="STOPPED")

        status, out, _ = run(capsys, "endpoints", "list")

        assert status == 0
        header, *rows = table(out)
        assert header == ["ID", "NAME", "TYPE", "STATE", "CREATED"]
        assert [row[:4] for row in rows] == [[endpoint["id"], endpoint["name"], "dedicated", "STOPPED"]]
        # The list is asked for as the operator asks for it.
        (call,) = simulator.calls(method="GET", path="/v1/endpoints")
        assert call.query == {"type": "dedicated", "mine": "true"}

    def test_list_all_adds_togethers_serverless_endpoints(
        self, simulator: RunningSimulator, env: dict[str, str], capsys: pytest.CaptureFixture[str]
    ) -> None:
        endpoint = create(simulator)

        status, out, _ = run(capsys, "endpoints", "list", "--all", "-o", "json")

        assert status == 0
        assert [(item["name"], item["type"]) for item in json.loads(out)] == [
            (endpoint["name"], "dedicated"),
            ("allenai/OLMo-7B", "serverless"),
            ("meta-llama/Llama-3.3-70B-Instruct-Turbo", "serverless"),
        ]
        (call,) = simulator.calls(method="GET", path="/v1/endpoints")
        assert call.query == {}

    def test_get_shows_every_field_of_one_endpoint(
        self, simulator: RunningSimulator, env: dict[str, str], capsys: pytest.CaptureFixture[str]
    ) -> None:
        endpoint = create(simulator, display_name="support-bot", state="STOPPED")

        status, out, _ = run(capsys, "endpoints", "get", endpoint["id"])

        assert status == 0
        fields = {row[0]: row[1:] for row in table(out)[1:]}
        assert fields == {
            "ID": [endpoint["id"]],
            "NAME": [endpoint["name"]],
            "DISPLAY": ["NAME", "support-bot"],
            "MODEL": [MIXTRAL],
            "HARDWARE": ["2x_nvidia_h100_80gb_sxm"],
            "TYPE": ["dedicated"],
            "OWNER": ["devuser"],
            "STATE": ["STOPPED"],
            "REPLICAS": ["1-2"],
            "CREATED": [endpoint["created_at"].split(".")[0] + "Z"],
        }

    def test_get_as_json_is_the_apis_endpoint_object(
        self, simulator: RunningSimulator, env: dict[str, str], capsys: pytest.CaptureFixture[str]
    ) -> None:
        endpoint = create(simulator)

        status, out, _ = run(capsys, "endpoints", "get", endpoint["id"], "-o", "json")

        assert status == 0
        shown = json.loads(out)
        assert {key: shown[key] for key in ("id", "name", "model", "hardware", "state", "autoscaling")} == {
            key: endpoint[key] for key in ("id", "name", "model", "hardware", "state", "autoscaling")
        }


class TestErrors:
    def test_an_unknown_endpoint_is_one_line_and_status_1(
        self, env: dict[str, str], capsys: pytest.CaptureFixture[str]
    ) -> None:
        status, out, err = run(capsys, "endpoints", "get", "endpoint-missing")

        assert (status, out) == (1, "")
        assert err == (
            "together-operator: Together API GET endpoints/endpoint-missing failed "
            "(HTTP 404 invalid_request_error): Endpoint endpoint-missing not found\n"
        )

    @pytest.mark.parametrize(
        "command",
        [
            ["endpoints", "list"],
            ["endpoints", "get", "endpoint-x"],
            ["hardware", "--model", LLAMA],
            ["availability-zones"],
        ],
    )
    def test_a_rejected_key_is_one_line_without_the_key(
        self,
        env: dict[str, str],
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
        command: list[str],
    ) -> None:
        monkeypatch.setenv("TOGETHER_API_KEY", "tgp_v1_not-the-right-key")

        status, out, err = run(capsys, *command)

        assert (status, out) == (1, "")
        assert err.startswith("together-operator: Together API GET ")
        assert "(HTTP 401 invalid_request_error): Invalid API key provided." in err
        assert err.count("\n") == 1
        assert "not-the-right-key" not in err

    def test_a_base_url_that_is_not_http_is_refused_before_any_call(
        self,
        simulator: RunningSimulator,
        env: dict[str, str],
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        monkeypatch.setenv("TOGETHER_BASE_URL", "api.together.ai/v1")

        status, _, err = run(capsys, "endpoints", "list")

        assert (status, err) == (
            1,
            "together-operator: base_url must be an http(s) URL, got 'api.together.ai/v1'\n",
        )

    def test_without_a_key_it_says_what_to_set(
        self, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.delenv("TOGETHER_API_KEY")

        with pytest.raises(SystemExit, match="set TOGETHER_API_KEY"):
            main(["endpoints", "list"])


def test_the_installed_command_prints_no_traceback(simulator: RunningSimulator, env: dict[str, str]) -> None:
    """The module run as a program, as `together-operator` is: a failure's whole output is one line."""
    result = subprocess.run(
        [sys.executable, "-m", "together_operator.cli", "endpoints", "get", "endpoint-missing"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.splitlines() == [
        "together-operator: Together API GET endpoints/endpoint-missing failed "
        "(HTTP 404 invalid_request_error): Endpoint endpoint-missing not found"
    ]


class TestV2:
    """`--api v2`: the same look-ups on Dedicated Model Inference, on the host of TOGETHER_BASE_URL."""

    def test_hardware_lists_the_certified_configs_with_price_and_regions(
        self, env: dict[str, str], capsys: pytest.CaptureFixture[str]
    ) -> None:
        status, out, err = run(capsys, "hardware", "--model", LLAMA, "--api", "v2")

        assert (status, err) == (0, "")
        rows = table(out)
        assert rows[0] == ["HARDWARE", "CONFIG", "USD/HOUR", "SPECULATOR", "REGIONS"]
        # 4.27 and 5.6 cents per GPU-minute, as on v1.
        assert [(row[0], row[2], row[3]) for row in rows[1:]] == [
            ("1xnvidia-a100-80gb", "2.56", "no"),
            ("1xnvidia-h100-80gb", "3.36", "no"),
            ("2xnvidia-h100-80gb", "6.72", "no"),
        ]
        assert all(row[1].startswith("projects/") and "/configs/cr_" in row[1] for row in rows[1:])
        assert "us-east-1a" in rows[1][4].split(",")

    def test_hardware_as_json_names_config_model_and_speculator(
        self, env: dict[str, str], capsys: pytest.CaptureFixture[str]
    ) -> None:
        status, out, _ = run(capsys, "hardware", "--model", MIXTRAL, "--api", "v2", "-o", "json")

        assert status == 0
        offers = json.loads(out)
        assert len(offers) == 12, "each of six hardware with and without speculative decoding"
        assert sorted(bool(offer["speculator"]) for offer in offers) == [False] * 6 + [True] * 6
        assert all(offer["model"].startswith("projects/") for offer in offers)

    def test_hardware_of_a_model_outside_the_catalogue_is_an_error(
        self, env: dict[str, str], capsys: pytest.CaptureFixture[str]
    ) -> None:
        status, out, err = run(capsys, "hardware", "--model", "acme/unknown", "--api", "v2")

        assert (status, out) == (1, "")
        assert "not a supported model of the v2 catalogue" in err

    def test_endpoints_list_and_get_show_deployments_state_and_weight(
        self,
        simulator_factory: SimulatorFactory,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        # Steady timings: the deployment stays PROVISIONING however slow the machine.
        simulator = simulator_factory(**STEADY)
        monkeypatch.setenv("TOGETHER_API_KEY", simulator.api_key)
        monkeypatch.setenv("TOGETHER_BASE_URL", simulator.base_url)
        v2 = V2(simulator)
        endpoint = v2.create_endpoint("chat")
        deployment = v2.create_deployment(endpoint["id"])
        v2.route(endpoint["id"], deployment["id"])
        v2.create_endpoint("empty")

        listed, out, _ = run(capsys, "endpoints", "list", "--api", "v2")
        assert listed == 0
        assert [row[1:] for row in table(out)] == [
            ["NAME", "DEPLOYMENT", "STATE", "READY", "WEIGHT"],
            ["devuser/chat", "blue", "PROVISIONING", "0/1", "1"],
            ["devuser/empty", "-", "-", "-", "-"],
        ]

        got, out, _ = run(capsys, "endpoints", "get", endpoint["id"], "--api", "v2", "-o", "json")
        assert got == 0
        shown = json.loads(out)
        assert shown["endpoint"]["name"] == "devuser/chat"
        assert [(d["id"], d["status"]["state"]) for d in shown["deployments"]] == [
            (deployment["id"], "DEPLOYMENT_STATE_PROVISIONING")
        ]
        v2.close()

    def test_an_unknown_v2_endpoint_is_one_line_and_status_1(
        self, env: dict[str, str], capsys: pytest.CaptureFixture[str]
    ) -> None:
        status, out, err = run(capsys, "endpoints", "get", "ep_missing", "--api", "v2")

        assert (status, out) == (1, "")
        assert err.count("\n") == 1
        assert "HTTP 404" in err
