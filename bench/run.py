"""`python -m bench`: measure the operator and the per-object baseline at several N; write JSON and Markdown.

    python -m bench --n 100 500 1000 2000          # the full benchmark (docs/performance.md)
    python -m bench --n 50 --modes ours ours-v2 --quiet-seconds 60

Modes: ours (resources on Together v1), ours-v2 (the same operator, every resource `spec.api: v2` on the
simulator's v2 API), baseline (per-object polling, v1 only), tuned (ours with candidate fixes).

Each (N, mode) gets a fresh control plane, simulator and operator, run one after the other. Results go to
bench/results/<timestamp>.json and .md (and a .png with matplotlib installed: the `bench` extra).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.harness import MODES, REPO_ROOT, BenchConfig, run_one, say
from bench.report import markdown, summary

RESULTS = REPO_ROOT / "bench" / "results"


def build_parser() -> argparse.ArgumentParser:
    defaults = BenchConfig()
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--n", type=int, nargs="+", default=[100, 500, 1000, 2000, 5000], help="resource counts"
    )
    parser.add_argument(
        "--modes",
        nargs="+",
        choices=MODES,
        default=["ours", "baseline"],
        help="operators to measure at each N (ours-v2: ours with every resource on Together v2)",
    )
    parser.add_argument("--poll-interval", type=float, default=defaults.poll_interval)
    parser.add_argument("--transition-poll-interval", type=float, default=defaults.transition_poll_interval)
    parser.add_argument("--resync-interval", type=float, default=defaults.resync_interval)
    parser.add_argument(
        "--resync-budget",
        type=float,
        default=defaults.resync_budget,
        help="drift reads per second per credential (ours; the product default is 1)",
    )
    parser.add_argument(
        "--rate-limit",
        type=float,
        default=defaults.rate_limit,
        help="Together calls/s for the operator (the product default is 10; 0: unlimited)",
    )
    parser.add_argument(
        "--max-concurrent-calls",
        type=int,
        default=defaults.max_concurrent_calls,
        help="Together calls in flight at once, for both operators (the product default is 16)",
    )
    parser.add_argument(
        "--transition-seconds",
        type=float,
        default=defaults.transition_seconds,
        help="the simulator's duration of each lifecycle step",
    )
    parser.add_argument("--namespaces", type=int, default=defaults.namespaces)
    parser.add_argument(
        "--quiet-seconds",
        type=float,
        default=defaults.quiet_seconds,
        help="length of the quiet window counting Together calls, Kubernetes writes, RSS and CPU",
    )
    parser.add_argument("--latency-samples", type=int, default=defaults.latency_samples)
    parser.add_argument(
        "--drift-samples",
        type=int,
        default=defaults.drift_samples,
        help="endpoints rescaled out of band to time the drift correction",
    )
    parser.add_argument("--drift-spread-seconds", type=float, default=defaults.drift_spread_seconds)
    parser.add_argument("--ready-timeout", type=float, default=defaults.ready_timeout)
    parser.add_argument("--profile", action="store_true", help="record the operator with py-spy")
    parser.add_argument(
        "--memprobe",
        action="store_true",
        help="diagnostics: run ours under tracemalloc and dump allocation sites",
    )
    parser.add_argument("--output", type=Path, default=RESULTS, help="directory for results")
    return parser


def machine() -> dict[str, Any]:
    cpu_model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu_model = line.split(":", 1)[1].strip()
            break
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model,
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        # A copy made with `git archive` has no .git: it names its commit in BENCH_SOURCE_COMMIT.
        "commit": os.environ.get("BENCH_SOURCE_COMMIT") or _git("rev-parse", "--short", "HEAD"),
        "operator_source_modified": bool(_git("status", "--porcelain", "--", "operator")),
    }


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    return done.stdout.strip()


def load() -> str:
    return Path("/proc/loadavg").read_text().strip()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cfg = BenchConfig(
        poll_interval=args.poll_interval,
        transition_poll_interval=args.transition_poll_interval,
        resync_interval=args.resync_interval,
        resync_budget=args.resync_budget,
        rate_limit=args.rate_limit,
        max_concurrent_calls=args.max_concurrent_calls,
        transition_seconds=args.transition_seconds,
        namespaces=args.namespaces,
        quiet_seconds=args.quiet_seconds,
        latency_samples=args.latency_samples,
        drift_samples=args.drift_samples,
        drift_spread_seconds=args.drift_spread_seconds,
        ready_timeout=args.ready_timeout,
        profile=args.profile,
        memprobe=args.memprobe,
    )
    stamp = time.strftime("%Y%m%dT%H%M%S")
    out_dir: Path = args.output
    out_dir.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"started": stamp, "machine": machine(), "load_before": load(), "runs": []}
    json_path = out_dir / f"{stamp}.json"
    for n in args.n:
        for mode in args.modes:
            run = run_one(n, mode, cfg, out_dir / stamp / f"{mode}-{n}")
            run["load_after"] = load()
            result["runs"].append(run)
            json_path.write_text(json.dumps(result, indent=1))  # keep what is done if a later run fails
            say(
                f"{mode} N={n}: {json.dumps(run['steady'])} latency {json.dumps(run['latency'])} "
                f"drift {json.dumps(run['drift'])}"
            )
    result["load_after"] = load()
    json_path.write_text(json.dumps(result, indent=1))
    table = summary(result["runs"]) + "\n" + markdown(result["runs"])
    (out_dir / f"{stamp}.md").write_text(table)
    print(table)
    try:
        from bench.plot import plot
    except ImportError:  # matplotlib is in the bench extra only
        say("no matplotlib: skipping the plot")
    else:
        plot(result, out_dir / f"{stamp}.png")
    say(f"wrote {json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
