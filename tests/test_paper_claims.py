"""README's claims table and docs/results.md are generated from the notebooks' claims files
(tools/paper_claims.py), and the paper profile of 01-03 is read from the committed notebooks'
printed tables (tools/notebook_outputs.py)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEADER = "notebook,figure,claim,ours,paper,match\n"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tool = _load("paper_claims")
outputs = sys.modules["notebook_outputs"]  # imported by paper_claims from tools/


def notebook(path: Path, title: str, outputs_html: list[str] = ()) -> None:
    cells = [{"cell_type": "markdown", "metadata": {}, "source": [f"# {title}\n", "\n", "Text."]}]
    for html in outputs_html:
        cells.append({"cell_type": "code", "metadata": {}, "execution_count": 1, "source": [],
                      "outputs": [{"output_type": "execute_result", "execution_count": 1,
                                   "metadata": {}, "data": {"text/html": [html]}}]})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4,
                                "nbformat_minor": 5}))


@pytest.fixture
def repo(tmp_path):
    """A repository with two notebooks: 00 has a claims file and a figure, 01 has neither."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "README.md").write_text(
        "# Demo\n\nProse.\n\n<!-- claims:start -->\nold table\n<!-- claims:end -->\n\nMore.\n")
    notebook(tmp_path / "notebooks" / "00_demo.ipynb", "00 · Demo notebook")
    notebook(tmp_path / "notebooks" / "01_other.ipynb", "01 · Other notebook")
    figures = tmp_path / "figures"
    figures.mkdir()
    (figures / "00_demo_curve.png").write_bytes(b"png")
    (figures / "00_demo_claims.csv").write_text(
        HEADER
        + "00_demo,Figure 9,Slope of the curve; match: within 0.1,0.93,0.95,yes\n"
        + '00_demo,Figure 9,"No empty layer, a fact",true,,n/a\n')
    (tmp_path / "docs" / "benchmarks.md").write_text(
        "# Bench\n\n<!-- run-times:start -->\nold\n<!-- run-times:end -->\n\nEnd.\n")
    return tmp_path


def test_writes_the_readme_table_and_the_results_page(repo):
    assert tool.main(["--root", str(repo)]) == 0
    readme = (repo / "README.md").read_text()
    assert readme.startswith("# Demo\n\nProse.\n\n<!-- claims:start -->\n")
    assert readme.endswith("<!-- claims:end -->\n\nMore.\n") and "old table" not in readme
    # the README has the claim with a paper number, not the fact without one
    assert ("| Figure 9 ([00](notebooks/00_demo.ipynb), laptop) | Slope of the curve; match: "
            "within 0.1 | 0.93 | 0.95 | yes |") in readme
    assert "No empty layer" not in readme
    assert "1 claims compared with the paper's own numbers: 1 match, 0 do not" in readme
    assert "No claims file yet (run `make reproduce`): 01_other." in readme
    results = (repo / "docs" / "results.md").read_text()
    assert "## 00 · Demo notebook" in results and "## 01 · Other notebook" in results
    assert "| Figure 9 | No empty layer, a fact | true | - | n/a |" in results
    assert "[![00 demo curve (laptop profile)](../figures/00_demo_curve.png)]" in results
    assert "No claims file yet: `make reproduce NOTEBOOKS=01_other`." in results
    assert tool.main(["--root", str(repo), "--check"]) == 0


def test_the_run_times_of_a_full_reproduce_are_tabled(repo):
    tool.main(["--root", str(repo)])
    bench = (repo / "docs" / "benchmarks.md").read_text()
    assert "No run times yet" in bench and "old" not in bench and bench.endswith("End.\n")
    (repo / "figures" / "run_times.csv").write_text(
        "notebook,notebook_minutes,training_runs,training_run_minutes,jobs\n"
        "00_demo,1.5,0,0.0,2\n01_other,0.4,12,7.3,2\nall,5.2,12,7.3,2\n")
    assert tool.main(["--root", str(repo), "--check"]) == 1  # stale until regenerated
    tool.main(["--root", str(repo)])
    bench = (repo / "docs" / "benchmarks.md").read_text()
    assert "took **5.2 min** of wall-clock time with 2 jobs" in bench
    assert "| 01_other | 0.4 | 12 | 7.3 |" in bench and "| all |" not in bench
    assert "7.3 min of one-thread process time." in bench  # no machine named: none said
    (repo / "figures" / "run_times.csv").write_text(
        "notebook,notebook_minutes,training_runs,training_run_minutes,jobs,cpu,train_precision\n"
        "00_demo,1.5,0,0.0,2,Some CPU (AVX2 no native bf16),float32\n"
        "all,5.2,0,0.0,2,Some CPU (AVX2 no native bf16),float32\n")
    tool.main(["--root", str(repo)])
    bench = (repo / "docs" / "benchmarks.md").read_text()
    assert ("process time, on Some CPU (AVX2 no native bf16); CPU training ran in "
            "float32.") in bench


def test_check_fails_on_a_stale_table_and_writes_nothing(repo, capsys):
    tool.main(["--root", str(repo)])
    csv = repo / "figures" / "00_demo_claims.csv"
    csv.write_text(csv.read_text().replace("0.93,0.95,yes", "0.80,0.95,no"))
    readme_before = (repo / "README.md").read_text()
    assert tool.main(["--root", str(repo), "--check"]) == 1
    err = capsys.readouterr().err
    assert f"stale: {repo / 'README.md'}" in err and f"stale: {repo / 'docs' / 'results.md'}" in err
    assert (repo / "README.md").read_text() == readme_before
    tool.main(["--root", str(repo)])
    assert "| 0.80 | 0.95 | **no** |" in (repo / "README.md").read_text()
    assert tool.main(["--root", str(repo), "--check"]) == 0


def test_a_hand_edit_of_the_table_is_stale(repo):
    tool.main(["--root", str(repo)])
    readme = repo / "README.md"
    readme.write_text(readme.read_text().replace("| 0.93 |", "| 0.94 |"))
    assert tool.stale(repo) == [readme]


@pytest.mark.parametrize("content, message", [
    ("notebook,figure,claim,ours,paper\n00_demo,F,c,1,2\n",
     "columns ['notebook', 'figure', 'claim', 'ours', 'paper']; expected exactly"),
    (HEADER + "00_demo,F,c,1,2,maybe\n", "line 2: match 'maybe'; allowed: yes, no, n/a"),
    (HEADER + "01_other,F,c,1,2,yes\n", "notebook '01_other', expected '00_demo'"),
])
def test_a_bad_claims_file_is_refused_by_name(repo, content, message):
    (repo / "figures" / "00_demo_claims.csv").write_text(content)
    with pytest.raises(ValueError, match="00_demo_claims.csv") as error:
        tool.main(["--root", str(repo)])
    assert message in str(error.value)
    assert "old table" in (repo / "README.md").read_text()  # nothing written


def test_the_markers_are_required(repo):
    (repo / "README.md").write_text("# Demo\n<!-- claims:end -->\n<!-- claims:start -->\n")
    with pytest.raises(ValueError, match="needs exactly one <!-- claims:start --> followed by"):
        tool.main(["--root", str(repo)])


def test_the_readme_shows_the_paper_profile_where_it_has_claims(repo):
    notebook(repo / "notebooks" / "paper" / "00_demo.ipynb", "00 · Demo notebook")
    (repo / "figures" / "paper").mkdir()
    (repo / "figures" / "paper" / "00_demo_claims.csv").write_text(
        HEADER + "00_demo,Figure 9,Slope of the curve; match: within 0.1,0.951,0.95,yes\n")
    (repo / "notebooks" / "smoke").mkdir()
    notebook(repo / "notebooks" / "smoke" / "00_demo.ipynb", "00 · Demo notebook")
    tool.main(["--root", str(repo)])
    readme = (repo / "README.md").read_text()
    assert "| Figure 9 ([00](notebooks/paper/00_demo.ipynb), paper) |" in readme
    assert "| 0.951 |" in readme and "| 0.93 |" not in readme
    results = (repo / "docs" / "results.md").read_text()
    assert "### Laptop profile" in results and "### Paper profile" in results
    assert "Smoke" not in results  # the scratch profile is never documented


# ------------------------------------------------------------------ the paper profile of 01-03

PAPER = ROOT / "notebooks" / "paper"


def test_the_paper_profile_of_01_03_is_read_from_its_printed_tables():
    collected = tool.collect(ROOT)["paper"]
    claims = [r for stem in ("01_conservation", "02_layer_collapse", "03_iterative_pruning")
              for r in collected[stem]["claims"]]
    rows = {(r["figure"], r["claim"].split(":")[0]): r for r in claims if "layers empty" not in r["claim"]}
    assert collected["01_conservation"]["source"] == PAPER / "01_conservation.ipynb"
    # numbers as the notebooks printed them (executed at commit 6ac611a)
    assert (rows["Figure 3", "SynFlow"]["ours"], rows["Figure 3", "SynFlow"]["paper"]) == (
        "1.000", "1.000")
    snip = rows["Figure 4", "SNIP"]
    assert (snip["ours"], snip["paper"], snip["match"]) == ("0.453", "0.556", "no")
    grasp = rows["Figure 2", "GraSP"]
    assert (grasp["ours"], grasp["paper"], grasp["match"]) == ("4^5", "4^4", "no")
    synflow = rows["Figure 1", "SynFlow (100 iterations)"]
    assert (synflow["ours"], synflow["paper"], synflow["match"]) == ("5.94", "5.75", "yes")
    linear = rows["Figure 7", "Linear schedule"]
    assert (linear["ours"], linear["paper"]) == ("0.57 / 5.81 / 14.34", "0.57 / 5.84 / 14.41")
    assert linear["match"] == "yes"  # 14.34 vs 14.41 is within 2 %
    layers = next(r for r in claims if r["claim"].startswith("Magnitude: the layers empty"))
    assert (layers["ours"], layers["paper"], layers["match"]) == ("17, 18, 19", "17, 18, 19", "yes")
    assert len(claims) == 10 + 15 + 6 and all(r["match"] in ("yes", "no", "n/a") for r in claims)


def test_a_claims_file_replaces_the_printed_tables(tmp_path):
    for stem in ("01_conservation",):
        target = tmp_path / "notebooks" / "paper" / f"{stem}.ipynb"
        target.parent.mkdir(parents=True)
        target.write_bytes((PAPER / f"{stem}.ipynb").read_bytes())
    notebook(tmp_path / "notebooks" / "01_conservation.ipynb", "01 · Conservation")
    (tmp_path / "figures" / "paper").mkdir(parents=True)
    assert len(tool.collect(tmp_path)["paper"]["01_conservation"]["claims"]) == 10
    (tmp_path / "figures" / "paper" / "01_conservation_claims.csv").write_text(
        HEADER + "01_conservation,Figure 3,r; match: within 0.02,0.5,0.5,yes\n")
    entry = tool.collect(tmp_path)["paper"]["01_conservation"]
    assert [r["ours"] for r in entry["claims"]] == ["0.5"]
    # at the laptop profile the printed tables are never read (their networks differ)
    assert tool.collect(tmp_path)["laptop"]["01_conservation"]["claims"] is None


TABLE = """<table border="1" class="dataframe"><thead>
<tr><th></th><th colspan="2" halign="left">ours</th><th colspan="2" halign="left">paper</th></tr>
<tr><th>schedule</th><th>linear</th><th>exponential</th><th>linear</th><th>exponential</th></tr>
<tr><th>iterations</th><th></th><th></th><th></th><th></th></tr></thead>
<tbody><tr><th>1</th><td>3.32</td><td>3.30</td><td>3.31</td><td>3.29</td></tr>
<tr><th>100</th><td>0.57</td><td>0.15</td><td>0.58</td><td>0.16</td></tr></tbody></table>"""


def test_a_table_with_column_levels_is_read_by_label(tmp_path):
    path = tmp_path / "nb.ipynb"
    notebook(path, "t", [TABLE])
    table = outputs.find_table(path, ("paper", "linear"))
    assert table.row_labels == ["1", "100"]
    assert table.value("100", "paper", "linear") == "0.58"
    assert table.value("100", "ours", "exponential") == "0.15"
    with pytest.raises(ValueError, match=r"nb.ipynb: no printed table has the columns \[\('x',\)\]"):
        outputs.find_table(path, ("x",))


def test_match_within_a_tolerance():
    assert outputs._within("0.534", "0.529", 0.02) == "yes"
    assert outputs._within("0.576", "0.556", 0.02) == "yes"  # the bound itself
    assert outputs._within("0.453", "0.556", 0.02) == "no"


# ------------------------------------------------------------------ the repository itself

def test_readme_and_results_are_not_stale():
    """README's table and docs/results.md are what the claims files give: after re-running
    a notebook, `make claims` (python tools/paper_claims.py) and commit both."""
    assert tool.stale(ROOT) == [], "run `make claims` and commit README.md and docs/results.md"


def test_readme_stays_short():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 160, f"README.md has {len(lines)} lines; the details belong in docs/"
