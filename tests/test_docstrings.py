"""Every ``>>>`` example in the package's docstrings runs and prints what it shows."""

from __future__ import annotations

import ast
import doctest
import importlib
import tempfile
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "lib" / "synflow"
MODULES = sorted(
    ".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
    for p in PACKAGE.rglob("*.py") if p.name != "__main__.py"
)


# what train_precision "auto" means decides a run's name: the examples must hold on a
# bf16 machine as on one without (the rest of the suite forces float32: conftest.py):
# every module is tried both ways
PRECISIONS = [(name, precision) for name in MODULES for precision in ("bfloat16", "float32")]


@pytest.mark.parametrize(("name", "precision"), PRECISIONS)
def test_the_examples_run(name, precision, tmp_path, monkeypatch):
    monkeypatch.setenv("SYNFLOW_TRAIN_PRECISION", precision)
    monkeypatch.chdir(tmp_path)  # an example never depends on (or writes into) the cwd
    # the examples' tempfile.mkdtemp() folders go to pytest's own temporary folder, which
    # it prunes, not to the system's /tmp (about 50 were left there by every run)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    for variable in ("SYNFLOW_RESULTS", "SYNFLOW_FIGURES", "SYNFLOW_DATA"):
        monkeypatch.delenv(variable, raising=False)
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples of {name} failed"


# Not done yet: exactly the public names still without an example.
# Remove a name when it gains one (the test fails on a stale entry); never add one.
NOT_YET: dict[str, set[str]] = {}  # every public name has its example


def test_every_public_function_has_an_example():
    """Issue 16: every public (no leading underscore) module-level function and class of
    the package shows a ``>>>`` example in its docstring (``NOT_YET`` aside, which
    must only shrink)."""
    missing, stale, seen = [], [], set()
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name not in ("__main__.py", "_deprecated.py"):
            where = str(path.relative_to(PACKAGE.parent))
            for node in ast.parse(path.read_text()).body:
                if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    continue
                seen.add((where, node.name))
                public = not node.name.startswith("_")
                shown = ">>>" in (ast.get_docstring(node) or "")
                excused = node.name in NOT_YET.get(where, ())
                if public and not shown and not excused:
                    missing.append(f"{where}: {node.name}")
                elif excused and (shown or not public):
                    stale.append(f"{where}: {node.name}")
    stale += [f"{w}: {n}" for w, names in NOT_YET.items() for n in names if (w, n) not in seen]
    assert not missing, f"{len(missing)} public names lack a >>> example:\n" + "\n".join(missing)
    assert not stale, "NOT_YET names that have an example now (remove them):\n" + "\n".join(stale)
