"""The Markdown table of a benchmark result, ours next to the baseline with their ratio (and ours on
Together v2 where it was measured)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

Run = Mapping[str, Any]

# (label, how to read the figure from a run, format, is a ratio baseline / ours meaningful)
_ROWS: list[tuple[str, Callable[[Run], Any], str, bool]] = [
    (
        "Together calls per poll interval (steady)",
        lambda r: r["steady"]["calls_per_interval_per_credential"],
        "{:.1f}",
        True,
    ),
    (
        "  of which list / single GET",
        lambda r: (r["steady"]["together_calls"].get("list", 0), r["steady"]["together_calls"].get("get", 0)),
        "{} / {}",
        False,
    ),
    (
        "status PATCHes in the quiet window",
        lambda r: r["steady"]["kubernetes_writes"]["status_patches"],
        "{}",
        False,
    ),
    (
        "kopf PATCHes / Events in the quiet window",
        lambda r: (
            r["steady"]["kubernetes_writes"]["other_patches"],
            r["steady"]["kubernetes_writes"]["event_writes"],
        ),
        "{} / {}",
        False,
    ),
    ("quiet window (s)", lambda r: r["steady"]["window_seconds"], "{:.0f}", False),
    ("remote change -> status p50 (s)", lambda r: r["latency"]["p50_seconds"], "{:.1f}", True),
    ("remote change -> status p99 (s)", lambda r: r["latency"]["p99_seconds"], "{:.1f}", True),
    ("changes not shown in time", lambda r: r["latency"]["missed"], "{}", False),
    ("drift (out-of-band rescale) put back p50 (s)", lambda r: _drift(r, "p50_seconds"), "{:.1f}", True),
    ("drift put back max (s)", lambda r: _drift(r, "max_seconds"), "{:.1f}", True),
    ("drift put back within (goal, s)", lambda r: _drift(r, "goal_seconds"), "{:.0f}", False),
    ("drift not put back", lambda r: _drift(r, "uncorrected"), "{}", False),
    ("drift phase length (s)", lambda r: _drift(r, "window_seconds"), "{:.0f}", False),
    (
        "drift phase status PATCHes (all resources)",
        lambda r: (_drift(r, "kubernetes_writes") or {}).get("status_patches"),
        "{}",
        False,
    ),
    ("create: all Ready (s)", lambda r: r["create"]["all_ready_seconds"], "{:.0f}", True),
    (
        "create: first remote create after (s)",
        lambda r: r["create"]["first_create_after_seconds"],
        "{:.1f}",
        True,
    ),
    (
        "create: last remote create after (s)",
        lambda r: r["create"]["last_create_after_seconds"],
        "{:.1f}",
        True,
    ),
    ("create: remote creates per s", lambda r: r["create"]["create_rate_per_second"], "{:.1f}", False),
    ("create: Together calls per s", lambda r: r["create"]["together_calls_per_second"], "{:.1f}", False),
    (
        "create: Together calls per resource",
        lambda r: r["create"]["together_calls_per_resource"],
        "{:.1f}",
        True,
    ),
    (
        "create: status PATCHes per resource",
        lambda r: r["create"]["kubernetes_writes"]["status_patches"] / r["n"],
        "{:.1f}",
        True,
    ),
    ("operator RSS before any resource (MiB)", lambda r: r["idle_rss_mb"], "{:.0f}", True),
    ("operator RSS, steady (MiB)", lambda r: r["steady"]["rss_mb"], "{:.0f}", True),
    ("operator peak RSS (MiB)", lambda r: r["steady"]["peak_rss_mb"], "{:.0f}", True),
    ("operator CPU, steady (% of a core)", lambda r: r["steady"]["operator_cpu_percent"], "{:.1f}", True),
    ("operator CPU during create (s)", lambda r: r["create"]["operator_cpu_seconds"], "{:.0f}", True),
]


# Figures only v2 has, shown where a v2 run was measured: what the calls were for, and the deployments.
_V2_STEADY_ROWS: list[tuple[str, Callable[[Run], Any], str, bool]] = [
    (
        "  v2: endpoint list walks / pages",
        lambda r: _v2_calls(r, "steady", ("list",), ("list", "list_page")),
        "{} / {}",
        False,
    ),
    (
        "  v2: GETs of endpoints / deployments",
        lambda r: _v2_calls(r, "steady", ("get",), ("get_deployment",)),
        "{} / {}",
        False,
    ),
    (
        "  v2: traffic-split / deployment updates",
        lambda r: _v2_calls(r, "steady", ("traffic_split",), ("update",)),
        "{} / {}",
        False,
    ),
]
_V2_CREATE_ROWS: list[tuple[str, Callable[[Run], Any], str, bool]] = [
    (
        "create: v2 endpoint / deployment creates",
        lambda r: _v2_calls(r, "create", ("create",), ("create_deployment",)),
        "{} / {}",
        False,
    ),
    (
        "create: v2 list pages / GETs of endpoints",
        lambda r: _v2_calls(r, "create", ("list", "list_page"), ("get",)),
        "{} / {}",
        False,
    ),
    (
        "create: first / last deployment create after (s)",
        lambda r: _v2_deployments(r, "first_create_after_seconds", "last_create_after_seconds"),
        "{:.1f} / {:.1f}",
        False,
    ),
    (
        "create: deployment creates per s",
        lambda r: _v2_deployments(r, "create_rate_per_second"),
        "{:.1f}",
        False,
    ),
]
V2_NOTE = (
    "ours on v2: every resource has `spec.api: v2` and lives on the simulator's v2 API (projects, "
    "endpoints, deployments); its remote change is a deployment FAILED out of band, its drift a "
    "deployment's autoscaling changed out of band; remote creates count endpoints. The per-object "
    "baseline runs on v1 only: baseline / ours compares it with ours on v1."
)


def _rows(with_v2: bool) -> list[tuple[str, Callable[[Run], Any], str, bool]]:
    if not with_v2:
        return _ROWS
    rows: list[tuple[str, Callable[[Run], Any], str, bool]] = []
    for row in _ROWS:
        rows.append(row)
        if row[0] == "  of which list / single GET":
            rows += _V2_STEADY_ROWS
        elif row[0] == "create: remote creates per s":
            rows += _V2_CREATE_ROWS
    return rows


def _is_v2(run: Run) -> bool:
    return run.get("api") == "v2"


def _v2_calls(run: Run, phase: str, *kinds: tuple[str, ...]) -> tuple[int, ...] | None:
    """Per group of kinds, the v2 calls of those kinds in the phase; None for a v1 run."""
    if not _is_v2(run):
        return None
    counted = run[phase]["together_calls"]
    return tuple(sum(counted.get(kind, 0) for kind in group) for group in kinds)


def _v2_deployments(run: Run, *figures: str) -> Any:
    """Figures of a v2 run's deployment creates; None for a v1 run or a missing figure."""
    if not _is_v2(run):
        return None
    values = tuple(run["create"]["deployments"].get(figure) for figure in figures)
    if any(value is None for value in values):
        return None
    return values[0] if len(values) == 1 else values


def _drift(run: Run, figure: str) -> Any:
    """A figure of the drift phase; None for results measured before it existed."""
    return (run.get("drift") or {}).get(figure)


def _format(fmt: str, value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, tuple):
        return fmt.format(*value)
    return fmt.format(value)


def _ratio(ours: Any, baseline: Any) -> str:
    if not isinstance(ours, int | float) or not isinstance(baseline, int | float):
        return ""
    if ours == 0:
        return "" if baseline == 0 else "inf"
    return f"{baseline / ours:.1f}x"


def markdown(runs: Sequence[Run]) -> str:
    """One table per N: a row per figure; columns ours, the per-object baseline, baseline / ours, then
    ours on v2 and the tuned variant (candidate fixes, bench/tuned_operator.py) where they were
    measured."""
    by_n: dict[int, dict[str, Run]] = {}
    for run in runs:
        by_n.setdefault(run["n"], {})[run["mode"]] = run
    with_v2 = any(run["mode"] == "ours-v2" for run in runs)
    with_tuned = any(run["mode"] == "tuned" for run in runs)
    parts: list[str] = [V2_NOTE, ""] if with_v2 else []
    for n in sorted(by_n):
        modes = by_n[n]
        ours, baseline = modes.get("ours"), modes.get("baseline")
        extra = [(modes.get("ours-v2"), "ours on v2")] if with_v2 else []
        if with_tuned:
            extra.append((modes.get("tuned"), "ours + candidate fixes"))
        parts.append(f"### N = {n}\n")
        header = "| figure | ours | per-object baseline | baseline / ours |"
        rule = "|---|---:|---:|---:|"
        for _, title in extra:
            header += f" {title} |"
            rule += "---:|"
        parts += [header, rule]
        for label, read, fmt, with_ratio in _rows(with_v2):
            a = read(ours) if ours else None
            b = read(baseline) if baseline else None
            ratio = _ratio(a, b) if with_ratio else ""
            row = f"| {label} | {_format(fmt, a)} | {_format(fmt, b)} | {ratio} |"
            for column, _ in extra:
                row += f" {_format(fmt, read(column) if column else None)} |"
            parts.append(row)
        parts.append("")
    return "\n".join(parts)


def summary(runs: Sequence[Run]) -> str:
    """One row per run: the goal figures at a glance."""
    lines = [
        "| N | mode | calls / interval | status PATCHes (steady) | latency p50 / p99 (s) | all Ready (s) "
        "| creates / s | RSS (MiB) | CPU steady (%) |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    order = {"ours": 0, "ours-v2": 1, "baseline": 2, "tuned": 3}
    for r in sorted(runs, key=lambda r: (r["n"], order.get(r["mode"], 4))):
        latency = r["latency"]
        lines.append(
            f"| {r['n']} | {r['mode']} | {r['steady']['calls_per_interval_per_credential']:.1f} "
            f"| {r['steady']['kubernetes_writes']['status_patches']} "
            f"| {_format('{:.1f}', latency['p50_seconds'])} / {_format('{:.1f}', latency['p99_seconds'])} "
            f"| {r['create']['all_ready_seconds']:.0f} "
            f"| {_format('{:.1f}', r['create']['create_rate_per_second'])} "
            f"| {r['steady']['rss_mb']:.0f} | {r['steady']['operator_cpu_percent']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def merge(results: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Several result files as one: runs of a later file replace the same (N, mode) of an earlier one."""
    runs: dict[tuple[int, str], Mapping[str, Any]] = {}
    for result in results:
        for run in result["runs"]:
            runs[(run["n"], run["mode"])] = run
    first, last = results[0], results[-1]
    return {
        "started": first["started"],
        "machine": first["machine"],
        "load_before": first.get("load_before"),
        "load_after": last.get("load_after"),
        "parts": [
            {
                "started": r["started"],
                "commit": r["machine"].get("commit"),
                "load_before": r.get("load_before"),
                "load_after": r.get("load_after"),
            }
            for r in results
        ],
        "runs": [runs[key] for key in sorted(runs)],
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.report", description="Tables of result files.")
    parser.add_argument("results", type=Path, nargs="+", help="bench/results/<timestamp>.json, oldest first")
    parser.add_argument("--merged", type=Path, help="also write the merged result (JSON) here")
    args = parser.parse_args(argv)
    result = merge([json.loads(path.read_text()) for path in args.results])
    if args.merged is not None:
        args.merged.write_text(json.dumps(result, indent=1))
    print(summary(result["runs"]) + "\n" + markdown(result["runs"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
