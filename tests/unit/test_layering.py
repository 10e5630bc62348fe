"""The layering the design relies on, checked from the source: decisions stay pure, the Together client
stays free of Kubernetes, and the simulator stays independent of the client it stands in for."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[2] / "operator"


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node but those under `if TYPE_CHECKING:` (imports for annotations only)."""
    skipped = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"
        for statement in node.body
        for inner in ast.walk(statement)
    }
    return [node for node in ast.walk(tree) if id(node) not in skipped]


def imported_modules(path: Path) -> set[str]:
    """The modules `path` imports at run time."""
    modules: set[str] = set()
    for node in _runtime_nodes(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
    return modules


def offending(paths: list[Path], forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    found = {
        str(path.relative_to(SOURCE)): sorted(
            m for m in imported_modules(path) if any(m == f or m.startswith(f + ".") for f in forbidden)
        )
        for path in paths
    }
    return {name: modules for name, modules in found.items() if modules}


@pytest.mark.parametrize(
    ("modules", "forbidden"),
    [
        pytest.param(
            [
                "together_operator/core.py",
                "together_operator/v2_core.py",
                "together_operator/resource.py",
                "together_operator/budget.py",
                "together_operator/pricing.py",
            ],
            (
                "kopf",
                "kubernetes",
                "httpx",
                "aiohttp",
                "asyncio",
                "together_operator.shell",
                "together_operator.budget_shell",
                "together_operator.pricing_shell",
                "together_operator.v2_shell",
                "together_operator.handlers",
                "together_operator.credentials",
                "together_operator.connection",
                "together_operator.status_writer",
                "together_operator.poller",
                "together_operator.hardware",
                "together_operator.clients",
                "together_operator.together.client",
                "together_operator.together.v2_client",
                "together_operator.together.http_client",
            ),
            id="the-core-is-pure",
        ),
        pytest.param(
            ["together_operator/together/*.py"],
            ("kopf", "kubernetes", "together_operator.core", "together_operator.shell"),
            id="client-knows-no-k8s",
        ),
        pytest.param(
            ["together_simulator/*.py"],
            ("kopf", "kubernetes", "together_operator"),
            id="simulator-is-independent",
        ),
        pytest.param(
            ["together_operator/handlers.py"],
            ("together_operator.together.client", "together_operator.together.http_client", "httpx"),
            id="handlers-stay-thin",
        ),
    ],
)
def test_module_does_not_import(modules: list[str], forbidden: tuple[str, ...]) -> None:
    paths = [path for pattern in modules for path in sorted(SOURCE.glob(pattern))]
    assert paths, modules
    assert offending(paths, forbidden) == {}
