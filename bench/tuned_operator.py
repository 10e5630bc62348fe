"""`together-operator run` with candidate fixes applied from outside, to measure them before they land.

    python -m bench.tuned_operator run --namespace 'bench-*' ...     (mode "tuned" of the harness)

The benchmark may not change the operator itself, so each fix recommended in docs/performance.md
("Findings") is tried here first, applied around the unchanged package. Fixes that landed are gone from
here (kopf's bounded apiserver requests: `together_operator.startup.bounded_requests`). Left to try:

- kopf's processing bounded by its settings as well: `posting.worker_limit` (Events) and
  `queueing.worker_limit` (`BENCH_KOPF_WORKERS`, default 64) with a short `queueing.idle_timeout`.
  kopf's indexing waits for every indexed object to be processed once, so a worker limit below the
  number of resources can deadlock its start: measure, do not ship, before that is understood.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import kopf

import together_operator.handlers  # noqa: F401  (registers the operator's handlers first)
from together_operator.cli import main

KOPF_WORKERS = int(os.environ.get("BENCH_KOPF_WORKERS", "64"))


@kopf.on.startup()
async def bounded_workers(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.posting.worker_limit = 4
    settings.queueing.worker_limit = KOPF_WORKERS
    settings.queueing.idle_timeout = 0.5


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
