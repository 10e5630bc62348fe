"""Run the 30%-faults scenario (test_api_faults.py) over many random seeds, one pytest after another;
report per seed: time to converge, calls per resource, duplicates and orphans.

    .venv/bin/python -m tests.faults.sweep --seeds 20 [--stop-after MINUTES] [--report sweep.jsonl]
    .venv/bin/python -m tests.faults.sweep --seed 2864313970 --seed 1303159793 [--seeds 5]

Each seed's line: `ready` is the seconds until all ten resources were Ready after their create, `total`
the whole create -> scale -> delete; `calls/ep max` the most calls naming one endpoint (GET, PATCH,
DELETE; the bound is the scenario's); `calls/res` all calls (lists, hardware and POSTs included) over the
resources. A failed seed prints the end of its pytest output; FAULT_SEED=<seed> repeats its draws.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SCENARIO = Path(__file__).with_name("test_api_faults.py")


def _run_seed(seed: int) -> tuple[bool, dict[str, Any] | None, str]:
    """One pytest of the scenario: (passed, what it reported or None, the end of its output)."""
    with tempfile.TemporaryDirectory() as scratch:
        report_path = Path(scratch) / "report.jsonl"
        env = {**os.environ, "FAULT_SEED": str(seed), "FAULT_REPORT": str(report_path)}
        finished = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(SCENARIO)],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        lines = report_path.read_text().splitlines() if report_path.exists() else []
    reported = json.loads(lines[-1]) if lines else None
    return finished.returncode == 0, reported, finished.stdout[-3000:]


def _line(seed: int, passed: bool, reported: dict[str, Any] | None) -> str:
    verdict = "pass" if passed else "FAIL"
    if reported is None:
        return f"seed {seed:>10}  {verdict}  (failed before the end: no numbers, see its output)"
    r = reported
    return (
        f"seed {seed:>10}  {verdict}  ready {r['ready_seconds']:>4}s  total {r['seconds']:>4}s  "
        f"calls/ep max {r['endpoint_calls_max']:>3} (bound {r['endpoint_calls_bound']})  "
        f"calls/res {r['calls_per_resource']:>5}  posts {r['posts']:>2}  "
        f"duplicates {r['duplicates']}  orphans {r['orphans']}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.faults.sweep", description="The 30%-faults scenario over many seeds."
    )
    parser.add_argument("--seeds", type=int, help="random seeds to run (default 20, or 0 with --seed)")
    parser.add_argument("--seed", type=int, action="append", default=[], help="run it first (repeatable)")
    parser.add_argument("--stop-after", type=float, help="start no new seed after this many minutes")
    parser.add_argument("--report", type=Path, help="append each seed's numbers to this file (JSON lines)")
    args = parser.parse_args(argv)
    random_seeds = args.seeds if args.seeds is not None else (0 if args.seed else 20)
    seeds = [*args.seed, *(secrets.randbelow(2**32) for _ in range(random_seeds))]

    started = time.monotonic()
    results: list[tuple[int, bool, dict[str, Any] | None]] = []
    for seed in seeds:
        if args.stop_after is not None and time.monotonic() - started > args.stop_after * 60:
            print(f"stopped after {len(results)} of {len(seeds)} seeds (--stop-after {args.stop_after})")
            break
        passed, reported, output = _run_seed(seed)
        results.append((seed, passed, reported))
        print(_line(seed, passed, reported), flush=True)
        if not passed:
            print(output, flush=True)
        if args.report is not None:
            with args.report.open("a") as out:
                out.write(json.dumps({"seed": seed, "passed": passed, "reported": reported}) + "\n")

    numbers = [r for _, _, r in results if r is not None]
    failed = [seed for seed, passed, _ in results if not passed]
    print(f"\n{len(results)} seeds, {len(results) - len(failed)} passed; failed: {failed or 'none'}")
    if numbers:
        slowest = max(numbers, key=lambda r: r["ready_seconds"])
        busiest = max(numbers, key=lambda r: r["endpoint_calls_max"])
        print(f"slowest convergence: {slowest['ready_seconds']}s to Ready (seed {slowest['seed']})")
        print(f"longest run: {max(r['seconds'] for r in numbers)}s create -> scale -> delete")
        print(
            f"most calls for one endpoint: {busiest['endpoint_calls_max']} (seed {busiest['seed']}); "
            f"most calls per resource, all calls: {max(r['calls_per_resource'] for r in numbers)}"
        )
        duplicates, orphans = sum(r["duplicates"] for r in numbers), sum(r["orphans"] for r in numbers)
        print(f"duplicates: {duplicates}, orphans: {orphans}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
