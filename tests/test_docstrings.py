"""Every ``>>>`` example in the package's docstrings runs and prints what it shows, and
every public function and class of the parts in ``DOCUMENTED`` has one."""

from __future__ import annotations

import ast
import doctest
import importlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "lib" / "synflow"
MODULES = sorted(
    ".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
    for p in PACKAGE.rglob("*.py") if p.name != "__main__.py"
)


@pytest.mark.parametrize("name", MODULES)
def test_the_examples_run(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # an example never depends on (or writes into) the cwd
    for variable in ("SYNFLOW_RESULTS", "SYNFLOW_FIGURES", "SYNFLOW_DATA"):
        monkeypatch.delenv(variable, raising=False)
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples of {name} failed"


# the parts of lib/synflow whose public functions and classes must each show a ``>>>``
# example ("__init__" is the top-level lib/synflow/__init__.py). "core" joins once
# core/scoring.py and core/scorers/{functional,gradient,inputs,synflow}.py have theirs.
DOCUMENTED = ("__init__", "models", "utils")


def missing_examples(part: str) -> list[str]:
    """``"<file>:<line> <name>"`` of each public module-level function or class of ``part``
    whose docstring has no ``>>>`` example."""
    files = [PACKAGE / "__init__.py"] if part == "__init__" else sorted((PACKAGE / part).rglob("*.py"))
    missing = []
    for path in files:
        for node in ast.parse(path.read_text()).body:
            if (isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                    and not node.name.startswith("_")
                    and ">>>" not in (ast.get_docstring(node) or "")):
                missing.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name}")
    return missing


@pytest.mark.parametrize("part", DOCUMENTED)
def test_every_public_function_has_an_example(part):
    missing = missing_examples(part)
    assert not missing, f"public functions/classes without a >>> example: {', '.join(missing)}"
