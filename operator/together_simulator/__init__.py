"""A local stand-in for the Together AI v1 dedicated endpoint API, with fault injection and a call log;
applications can call the endpoints it runs (chat completions and completions, see `inference`).

- `Simulator`: the server, for code already inside an event loop (`await start()`, `await stop()`).
- `run_simulator_in_thread`: the same in a background thread, yielding a `RunningSimulator` handle.
- `SimulatorConfig`, `FaultRule`: how it is set up; `Catalogue`: what it offers.
- `together-simulator` (alias `together-operator simulator`) / `python -m together_simulator`: `cli.main`.
"""

from together_simulator.admin import AdminEndpoint, Call
from together_simulator.catalogue import Catalogue
from together_simulator.config import FaultKind, FaultRule, SimulatorConfig
from together_simulator.server import Simulator
from together_simulator.threaded import RunningSimulator, run_simulator_in_thread

__all__ = [
    "AdminEndpoint",
    "Call",
    "Catalogue",
    "FaultKind",
    "FaultRule",
    "RunningSimulator",
    "Simulator",
    "SimulatorConfig",
    "run_simulator_in_thread",
]
