"""What the notebooks' code may do: call the library, never read a stored run's dicts
(RunResult owns run.json; synflow.analysis.tables turns results into tables), and save
their claims under their own name. No notebook is executed here."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
# a RunResult's dict-valued fields (not a RunConfig's: config.cycles is a number), a
# run.json read by hand
RESULT_FIELDS = ("metrics", "layers", "cycles", "layer_history", "history", "environment",
                 "training")
PARSING = re.compile(rf"(?<!config)\.({'|'.join(RESULT_FIELDS)})\b(?!\()|run\.json|json\.load")


def code(path: Path) -> str:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return "\n".join("".join(cell["source"]) for cell in cells if cell["cell_type"] == "code")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebooks_do_not_parse_stored_runs(path):
    found = sorted({match.group(0) for match in PARSING.finditer(code(path))})
    assert not found, (f"{path.name} reads a stored run's fields itself ({found}); use "
                       "synflow.analysis.tables (runs_table, layers_table, cycles_table, ...)")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_notebook_saves_its_claims_under_its_own_name(path):
    calls = [node for node in ast.walk(ast.parse(code(path)))
             if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "save_claims"]
    names = [ast.literal_eval(call.args[1]) for call in calls if len(call.args) > 1]
    assert names == [path.stem], (f"{path.name} must call save_claims(rows, {path.stem!r}) "
                                  f"once; found {names}")


def test_the_check_sees_a_notebook_reading_metrics():
    assert PARSING.search('top1 = result.metrics["best_top1"]')
    assert PARSING.search("kept = [c['kept'] for c in r.cycles]")
    assert not PARSING.search("model.layers(x)") and not PARSING.search("tables.runs_table(r)")
    assert not PARSING.search("if r.config.cycles > 0")
