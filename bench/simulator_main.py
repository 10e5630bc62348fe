"""The benchmark's Together simulator, in its own process so the harness never slows it down.

    python -m bench.simulator_main '<SimulatorConfig as JSON>'

Listens on a free loopback port and prints the same `TOGETHER_BASE_URL=` and `admin interface:` lines as
`together-operator simulator`; the harness reads them. The config's call log limit can be raised for
long runs, which the CLI cannot do.
"""

from __future__ import annotations

import asyncio
import logging
import sys

from together_simulator import Simulator, SimulatorConfig
from together_simulator.cli import serve


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m bench.simulator_main '<SimulatorConfig JSON>'", file=sys.stderr)
        return 2
    config = SimulatorConfig.model_validate_json(argv[0])
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    asyncio.run(serve(Simulator(config), "127.0.0.1", 0))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
