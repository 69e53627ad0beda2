"""The package's layers, enforced from its import graph (every import statement in
lib/synflow, the ones inside functions included).

    utils        imports nothing else from synflow
    core         imports only core (the pruning core stands alone)
    models       core, utils
    data         core, utils
    training     core, models, data, utils
    experiments  core, models, data, training, utils
    analysis     any layer; nothing imports analysis

No module imports the top-level ``synflow`` package (its facade), and no two modules
import each other, directly or through others.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "lib" / "synflow"
ALLOWED = {
    "utils": {"utils"},
    "core": {"core"},
    "models": {"models", "core", "utils"},
    "data": {"data", "core", "utils"},
    "training": {"training", "core", "models", "data", "utils"},
    "experiments": {"experiments", "core", "models", "data", "training", "utils"},
    "analysis": {"analysis", "core", "models", "data", "training", "experiments", "utils"},
}
FACADE = {"synflow", "synflow.__main__", "synflow._deprecated"}
MAX_LINES = 320


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(name: str) -> set[str]:
    """The synflow modules ``name`` imports (a ``from package import module`` counts as
    the package and the module)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == "synflow"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "synflow":
                continue
            found.add(target)
            found |= {f"{target}.{alias.name}" for alias in node.names
                      if f"{target}.{alias.name}" in MODULES}
    return found & set(MODULES) - {name}


GRAPH = {name: imports(name) for name in MODULES}


def layer(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in ALLOWED else None


def test_every_module_belongs_to_a_layer_or_the_facade():
    assert sorted(n for n in MODULES if layer(n) is None) == sorted(FACADE)


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n not in FACADE))
def test_imports_only_go_down_the_layers(name):
    wrong = sorted(target for target in GRAPH[name]
                   if target in FACADE or layer(target) not in ALLOWED[layer(name)])
    assert not wrong, f"{name} ({layer(name)}) imports {wrong}"


def test_there_is_no_import_cycle():
    done, stack, cycles = set(), [], []

    def visit(name):
        if name in stack:
            cycles.append(stack[stack.index(name):] + [name])
            return
        if name in done:
            return
        stack.append(name)
        for target in sorted(GRAPH[name] - FACADE):
            visit(target)
        stack.pop()
        done.add(name)

    for name in sorted(set(MODULES) - FACADE):
        visit(name)
    assert cycles == []


@pytest.mark.parametrize("name", sorted(MODULES))
def test_modules_stay_small(name):
    lines = len(MODULES[name].read_text().splitlines())
    assert lines <= MAX_LINES, f"{name} has {lines} lines (at most {MAX_LINES}: one concern each)"


def test_the_check_sees_a_wrong_import(tmp_path, monkeypatch):
    # the checker itself: a core module importing the experiments layer is caught
    fake = tmp_path / "masks.py"
    fake.write_text("def f():\n    from ..experiments import store\n")
    monkeypatch.setitem(MODULES, "synflow.core.fake", fake)
    assert "synflow.experiments.store" in imports("synflow.core.fake")
    assert layer("synflow.experiments.store") not in ALLOWED["core"]


def test_dir_of_the_package_shows_its_names_and_layers_only():
    """dir(synflow): every name of __all__, every layer, no helper module (a new user found
    `importlib` there), not even an old module path once imported (its import leaves the
    name among the package's attributes)."""
    import importlib
    import types
    import warnings

    import synflow

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        importlib.import_module("synflow.saving")

    shown = set(dir(synflow))
    assert set(synflow.__all__) <= shown and set(synflow._LAYERS) <= shown
    assert "__version__" in shown or not hasattr(synflow, "__version__")
    helpers = [n for n in shown if isinstance(getattr(synflow, n, None), types.ModuleType)
               and n not in synflow._LAYERS]
    assert helpers == []
