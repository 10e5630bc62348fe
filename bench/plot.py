"""The performance plot: Together calls per poll interval and status latency against N, ours (on v1, and
on v2 where measured) and the baseline (v1).

    python -m bench.plot bench/results/<timestamp>.json -o docs/performance.png

Needs matplotlib (the `bench` extra).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

_STYLE = {
    "ours": ("tab:blue", "o", "ours (shared list per credential)"),
    "ours-v2": ("tab:purple", "^", "ours on v2 (paginated list per project)"),
    "baseline": ("tab:orange", "s", "baseline (GET per object, v1)"),
}


def plot(result: Mapping[str, Any], output: Path) -> None:
    runs: Sequence[Mapping[str, Any]] = result["runs"]
    figure, (calls_axis, latency_axis) = plt.subplots(1, 2, figsize=(11, 4.2))
    goal_interval = None
    for mode, (colour, marker, label) in _STYLE.items():
        mine = sorted((r for r in runs if r["mode"] == mode), key=lambda r: r["n"])
        if not mine:
            continue
        ns = [r["n"] for r in mine]
        calls_axis.plot(
            ns,
            [r["steady"]["calls_per_interval_per_credential"] for r in mine],
            color=colour,
            marker=marker,
            label=label,
        )
        p50 = [r["latency"]["p50_seconds"] for r in mine]
        p99 = [r["latency"]["p99_seconds"] for r in mine]
        latency_axis.plot(ns, p99, color=colour, marker=marker, label=f"{label}, p99")
        latency_axis.plot(
            ns, p50, color=colour, marker=marker, linestyle="--", alpha=0.6, label=f"{label}, p50"
        )
        goal_interval = mine[0]["latency"]["goal_seconds"]
    all_n = sorted({r["n"] for r in runs})
    config = runs[0].get("config", {}) if runs else {}
    calls_axis.plot(
        all_n,
        all_n,
        color="grey",
        linestyle="--",
        linewidth=1,
        label="one GET per resource (per-object demand)",
    )
    if config.get("rate_limit"):
        ceiling = config["rate_limit"] * config["poll_interval"]
        calls_axis.axhline(
            ceiling,
            color="grey",
            linestyle=":",
            linewidth=1,
            label=f"--rate-limit {config['rate_limit']:g}/s x poll interval",
        )
    # Issue 14's goal: the list (and a kicked one) plus the drift reads the budget allows per interval.
    budget_reads = config.get("resync_budget", 0) * config.get("poll_interval", 0)
    calls_axis.axhline(
        2 + budget_reads,
        color="green",
        linestyle=":",
        label=f"goal: <= 2 + resync budget ({budget_reads:g}) per credential",
    )
    calls_axis.set_yscale("log")
    calls_axis.set_xlabel("TogetherEndpoints (N)")
    calls_axis.set_ylabel("Together calls per poll interval (steady state)")
    calls_axis.set_title("Together API calls")
    calls_axis.legend(fontsize=8)
    if goal_interval is not None:
        latency_axis.axhline(goal_interval, color="green", linestyle=":", label="goal: poll interval + 2 s")
    latency_axis.set_xlabel("TogetherEndpoints (N)")
    latency_axis.set_ylabel("seconds")
    latency_axis.set_title("Remote state change -> status.state")
    latency_axis.legend(fontsize=8)
    for axis in (calls_axis, latency_axis):
        axis.grid(True, alpha=0.3)
    machine = result.get("machine", {})
    figure.suptitle(
        f"together-operator scale benchmark ({machine.get('cpus', '?')} CPUs, "
        f"{machine.get('cpu_model', '')})",
        fontsize=9,
    )
    figure.tight_layout()
    figure.savefig(output, dpi=110)
    plt.close(figure)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.plot", description=__doc__)
    parser.add_argument("result", type=Path, help="a bench/results/<timestamp>.json")
    parser.add_argument("-o", "--output", type=Path, required=True, help="PNG to write")
    args = parser.parse_args(argv)
    plot(json.loads(args.result.read_text()), args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
