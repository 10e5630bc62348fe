"""Summarise a py-spy recording in raw (collapsed stack) format: where the operator spends its time.

    python -m bench.profile bench/results/<timestamp>/ours-1000/profile-create.txt

Prints the functions with the most samples on top of the stack (self) and anywhere in it (inclusive).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path


def summarise(path: Path, top: int = 25) -> str:
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [frame for frame in stack.split(";") if frame]
        # The first frame names the process/thread; the last is where the sample landed.
        if frames:
            own[_short(frames[-1])] += count
        for frame in {_short(f) for f in frames[1:]}:
            inclusive[frame] += count
    lines = [f"{path}: {total} samples", "", "self:"]
    lines += [f"  {100 * c / total:5.1f}%  {name}" for name, c in own.most_common(top)] if total else []
    lines += ["", "inclusive:"]
    lines += [f"  {100 * c / total:5.1f}%  {name}" for name, c in inclusive.most_common(top)] if total else []
    return "\n".join(lines)


def _short(frame: str) -> str:
    """`function (path/to/module.py:123)` -> `function (module.py)`; site-packages paths shortened."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    file = where.rsplit(":", 1)[0]
    for marker in ("site-packages/", "together_operator/", "lib/python3"):
        if marker in file:
            file = file.split(marker, 1)[1]
            break
    return f"{name} ({file})"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("recordings", type=Path, nargs="+")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    for path in args.recordings:
        print(summarise(path, args.top))
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
