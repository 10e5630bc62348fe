"""Run `together-operator run` under tracemalloc; SIGUSR1 writes the top allocation sites to a file.

    BENCH_MEMPROBE_OUT=/tmp/top.txt python -m bench.memprobe run --namespace 'bench-*' ...

A diagnostic for the benchmark's memory figures (`python -m bench --memprobe`): tracemalloc slows the
operator and adds its own memory, so runs with it are never reported as measurements. Besides the
allocations live at the signal, it reports those live at the highest traced total seen (checked
every second), since resident memory keeps the high-water mark of a burst.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
import tracemalloc
from pathlib import Path
from types import FrameType

_peak: list[str] = []
_peak_size = 0


def _top(snapshot: tracemalloc.Snapshot, title: str) -> list[str]:
    snapshot = snapshot.filter_traces(
        [
            tracemalloc.Filter(False, tracemalloc.__file__),
            tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
        ]
    )
    lines = []
    for key in ("lineno", "traceback"):
        stats = snapshot.statistics(key)
        total = sum(stat.size for stat in stats)
        lines.append(f"== {title}, by {key}: {total / 2**20:.1f} MiB traced in {len(stats)} sites")
        for stat in stats[: 30 if key == "lineno" else 8]:
            where = stat.traceback.format()[-1].strip()
            lines.append(f"{stat.size / 2**20:8.2f} MiB {stat.count:8d} blocks  {where}")
            if key == "traceback":
                lines.extend("        " + line for line in stat.traceback.format()[-16:])
    return lines


def _watch_peak() -> None:
    global _peak, _peak_size
    while True:
        time.sleep(1.0)
        current, _ = tracemalloc.get_traced_memory()
        if current > _peak_size * 1.1 + 2**20:
            _peak_size = current
            title = f"at the highest total seen ({current / 2**20:.1f} MiB)"
            _peak = _top(tracemalloc.take_snapshot(), title)


def _dump(signum: int, frame: FrameType | None) -> None:
    current, peak = tracemalloc.get_traced_memory()
    lines = [f"traced now {current / 2**20:.1f} MiB, peak {peak / 2**20:.1f} MiB", ""]
    lines += [*_top(tracemalloc.take_snapshot(), "now"), "", *_peak]
    Path(os.environ.get("BENCH_MEMPROBE_OUT", "memprobe.txt")).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    # Imports first, untraced: they are the same at any N, and tracing them takes minutes.
    import kopf  # noqa: F401
    import kubernetes  # noqa: F401

    import together_operator.handlers  # noqa: F401
    from together_operator.cli import main

    tracemalloc.start(16)
    signal.signal(signal.SIGUSR1, _dump)
    threading.Thread(target=_watch_peak, name="memprobe", daemon=True).start()
    sys.exit(main(sys.argv[1:]))
