"""Fixtures shared by every test layer.

- `control_plane` (session) and `namespace` (per test): tests/support/controlplane_fixtures.py
- `simulator` (per test): tests/support/simulator_fixtures.py
- `operator_env` (per module) and `kube` (per test): tests/support/operator_fixtures.py
"""

pytest_plugins = [
    "tests.support.controlplane_fixtures",
    "tests.support.simulator_fixtures",
    "tests.support.operator_fixtures",
]
