"""The README's code for applications is the code the integration tests run."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SDK3_APPLICATION = REPO_ROOT / "tests" / "integration" / "sdk3" / "call_endpoint.py"


def python_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```$", markdown, flags=re.MULTILINE | re.DOTALL)


def test_the_together_3x_example_is_the_application_the_integration_test_runs() -> None:
    """together>=3 adds /v1 itself: the README tells applications to strip it from TOGETHER_BASE_URL, and
    test_operator_v2's 3.x application does exactly that, calling the ConfigMap's endpoint."""
    script = SDK3_APPLICATION.read_text()
    docstring = ast.get_docstring(ast.parse(script), clean=False)
    assert docstring is not None
    body = script.split(f'"""{docstring}"""\n', 1)[1].lstrip("\n")

    examples = [b for b in python_blocks((REPO_ROOT / "README.md").read_text()) if "together import" in b]

    assert examples == [body]
    assert '.removesuffix("/v1")' in body
