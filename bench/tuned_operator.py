"""`together-operator run` with candidate fixes applied from outside, to measure them before they land.

    python -m bench.tuned_operator run --namespace 'bench-*' ...     (mode "tuned" of the harness)

The benchmark may not change the operator itself, so each fix recommended in docs/performance.md
("Findings") is tried here first, applied around the unchanged package:

- kopf's API connections bounded: kopf's own aiohttp session has no connection limit, so a burst of
  finalizer/annotation patches and Events opens one TLS connection per request (hundreds at once,
  each with a 128 KiB buffer that stays in the heap afterwards). A login handler gives kopf a session
  whose connector allows at most `BENCH_KOPF_CONNECTIONS` (default 16).
  Caveat: kopf's watch streams share that session and hold a connection each (one per watched
  namespace with --namespace globs), so the limit must leave room for them.
- or, with BENCH_KOPF_TUNING=workers, the same burst bounded by kopf's settings instead:
  `posting.worker_limit` (Events) and `queueing.worker_limit` with a short `queueing.idle_timeout`.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import aiohttp
import kopf

import together_operator.handlers  # noqa: F401  (registers the operator's handlers first)
from together_operator.cli import main

KOPF_CONNECTIONS = int(os.environ.get("BENCH_KOPF_CONNECTIONS", "16"))
TUNING = os.environ.get("BENCH_KOPF_TUNING", "login")


async def login_with_bounded_connections(**kwargs: Any) -> kopf.AiohttpSession | None:
    info = kopf.login_via_client(**kwargs)
    if info is None:
        return None
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=KOPF_CONNECTIONS, ssl=info.as_ssl_context()),
        headers=info.as_http_headers(),
        auth=info.as_aiohttp_basic_auth(),
    )
    return kopf.AiohttpSession(
        server=info.server,
        default_namespace=info.default_namespace,
        aiohttp_session=session,
    )


async def bounded_workers(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.posting.worker_limit = 4
    settings.queueing.worker_limit = KOPF_CONNECTIONS
    settings.queueing.idle_timeout = 0.5


if __name__ == "__main__":
    if TUNING == "login":
        kopf.on.login()(login_with_bounded_connections)
    elif TUNING == "workers":
        kopf.on.startup()(bounded_workers)
    sys.exit(main(sys.argv[1:]))
