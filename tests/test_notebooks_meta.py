"""Fast checks of the notebook plumbing: parameters cells, profiles, committed outputs,
the runner's error messages, and byte-stable figures. No notebook is executed here."""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest

from synflow.experiments import profiles

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
PROFILES = profiles.PROFILES
# the values a profile may give a parameter, by the type of its default
ACCEPTED = {bool: (bool,), int: (int,), float: (int, float), str: (str,), list: (list,),
            dict: (dict,), type(None): (object,)}


def _load_runner():
    spec = importlib.util.spec_from_file_location("run_notebooks", ROOT / "tools" / "run_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


runner = _load_runner()


def code_cells(path: Path) -> list[dict]:
    return [cell for cell in json.loads(path.read_text())["cells"] if cell["cell_type"] == "code"]


def parameters_cell(path: Path) -> dict:
    tagged = [cell for cell in code_cells(path) if "parameters" in cell["metadata"].get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: {len(tagged)} cells tagged 'parameters', need exactly 1"
    return tagged[0]


def declared_parameters(path: Path) -> dict[str, tuple[type, ...]]:
    """``{name: types a profile may set}`` of the parameters cell, which must hold only
    ``name = literal`` or ``name: type = literal`` lines (``name: "Optional[type]" =
    literal``: None too; papermill reads no ``type | None``)."""
    declared = {}
    for node in ast.parse("".join(parameters_cell(path)["source"])).body:
        target = node.targets[0] if isinstance(node, ast.Assign) else getattr(node, "target", None)
        assert isinstance(target, ast.Name) and getattr(node, "value", None) is not None, (
            f"{path.name}: the parameters cell may only hold `name = literal` lines, "
            f"found {ast.unparse(node)!r}"
        )
        try:
            default = ast.literal_eval(node.value)
        except ValueError:
            pytest.fail(f"{path.name}: {target.id} is not a plain literal: {ast.unparse(node)!r}")
        assert type(default) in ACCEPTED, f"{path.name}: {target.id} has a {type(default)} default"
        declared[target.id] = ACCEPTED[type(default)]
        annotation = getattr(node, "annotation", None)
        if annotation is not None and "Optional[" in ast.unparse(annotation):
            declared[target.id] += (type(None),)  # `name: "Optional[int]" = 3`: None allowed
    return declared


def test_there_are_notebooks():
    assert NOTEBOOKS, "no notebooks/NN_*.ipynb found"
    assert [path.name for path in runner.find_notebooks()] == [path.name for path in NOTEBOOKS]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_parameters_cell_holds_plain_literals(path):
    assert declared_parameters(path), f"{path.name}: the parameters cell declares nothing"


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_profiles_set_declared_parameters_with_their_types(path, profile):
    sections = runner.load_profile(profile)
    assert path.stem in sections, f"the {profile} profile lacks a section {path.stem!r}"
    declared = declared_parameters(path)
    for name, value in sections[path.stem].items():
        assert name in declared, f"{profile}.yaml sets {name!r}, not a parameter of {path.name}"
        assert isinstance(value, declared[name]) and not (
            isinstance(value, bool) and bool not in declared[name]
        ), f"{profile}.yaml: {path.stem}.{name} = {value!r} does not fit its declared type"


@pytest.mark.parametrize("profile", PROFILES)
def test_profiles_name_only_existing_notebooks(profile):
    unknown = set(runner.load_profile(profile)) - {path.stem for path in NOTEBOOKS}
    assert not unknown, f"the {profile} profile has sections for no notebook: {unknown}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebook_ran_cleanly_in_order(path):
    """Committed notebooks carry the outputs of one top-to-bottom run without errors,
    cleaned of papermill's per-run metadata (as tools/run_notebooks.py leaves them)."""
    notebook = json.loads(path.read_text())
    assert "papermill" not in notebook["metadata"], f"{path.name}: papermill metadata left"
    counts = []
    for index, cell in enumerate(code_cells(path)):
        errors = [o for o in cell["outputs"] if o["output_type"] == "error"]
        assert not errors, f"{path.name}: code cell {index} has an error output: {errors[0]['ename']}"
        assert not {"papermill", "execution"} & set(cell["metadata"]), (
            f"{path.name}: code cell {index} keeps per-run metadata"
        )
        counts.append(cell["execution_count"])
    assert counts == list(range(1, len(counts) + 1)), (
        f"{path.name}: execution counts {counts}: run it with tools/run_notebooks.py"
    )


def test_runner_rejects_a_parameter_the_notebook_does_not_declare(tmp_path):
    notebook = NOTEBOOKS[0]
    with pytest.raises(runner.NotebookError, match="does not declare"):
        runner.parameters_for(notebook, "smoke", {notebook.stem: {"no_such_parameter": 1}})
    with pytest.raises(runner.NotebookError, match="has no section"):
        runner.parameters_for(notebook, "smoke", {})
    with pytest.raises(runner.NotebookError, match="unknown notebook"):
        runner.find_notebooks(["99_missing"])


def test_clean_cuts_this_checkouts_path_from_printed_text(tmp_path):
    """A warning printed in a cell names its file by absolute path; the saved notebook
    names it relative to the repository, or ``cell`` for the notebook's own code
    (committed outputs name no machine and no process)."""
    import nbformat

    warning = f"{runner.ROOT}{os.sep}lib{os.sep}synflow{os.sep}analysis.py:560: ScoreWarning: x\n"
    cell = nbformat.v4.new_code_cell("f()", execution_count=1, outputs=[
        nbformat.v4.new_output("stream", name="stderr", text=warning),
        nbformat.v4.new_output("stream", name="stdout", text="/elsewhere/a.py stays\n"),
        nbformat.v4.new_output("stream", name="stderr", text=(
            "/tmp/ipykernel_11601/2254627175.py:6: LayerCollapseWarning: y\n"
            "  masks = f()\n"))])
    path = tmp_path / "n.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[cell]), path)
    runner.clean(path)
    outputs = nbformat.read(path, as_version=4).cells[0].outputs
    assert outputs[0].text == warning.replace(f"{runner.ROOT}{os.sep}", "")
    assert outputs[0].text.startswith(f"lib{os.sep}synflow") and str(runner.ROOT) not in path.read_text()
    assert outputs[1].text == "/elsewhere/a.py stays\n"
    # a warning at the notebook's own line: ipykernel's file name holds the kernel's pid
    assert outputs[2].text == "cell:6: LayerCollapseWarning: y\n  masks = f()\n"


def test_saved_figures_are_byte_stable(tmp_path, monkeypatch):
    from synflow.analysis.plots import plt, save_figure

    def draw_and_save(folder):
        monkeypatch.setenv("SYNFLOW_FIGURES", str(tmp_path / folder))
        fig, ax = plt.subplots()
        ax.plot([1, 2, 3], [3, 1, 2], label="a line")
        ax.legend()
        paths = save_figure(fig, "figure")
        plt.close(fig)
        return [path.read_bytes() for path in paths]

    assert draw_and_save("first") == draw_and_save("second")


def test_progress_echo_prints_whole_lines_only(tmp_path, capsys):
    import threading

    log = tmp_path / "runs.log"
    log.write_bytes("exp: run 1/2 a (1.0 s)\nexp: run 2/2 é (2.0 s)\nexp: run 3/".encode())
    stop = threading.Event()
    stop.set()  # one last read, then return
    runner.echo_progress(log, stop)
    assert capsys.readouterr().out.splitlines() == [
        "    exp: run 1/2 a (1.0 s)", "    exp: run 2/2 é (2.0 s)"]


@pytest.mark.parametrize("profile,in_place", [("laptop", True), ("paper", False)])
def test_runner_writes_other_profiles_beside_the_laptop_outputs(tmp_path, monkeypatch, profile,
                                                                in_place):
    """Only the laptop profile rewrites the committed notebooks; paper (or smoke) runs go
    to notebooks/<profile>/ and their figures to figures/<profile>/; a notebook is
    written there only after its run succeeded (a failed one leaves nothing behind)."""
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    source = notebooks / NOTEBOOKS[0].name
    shutil.copyfile(NOTEBOOKS[0], source)
    monkeypatch.setattr(runner, "ROOT", tmp_path)
    monkeypatch.setattr(runner, "NOTEBOOKS_DIR", notebooks)
    monkeypatch.setattr(runner, "ensure_kernel", lambda: None)
    monkeypatch.delenv("SYNFLOW_FIGURES", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the failed run's scratch copy
    targets = []

    def fake_run(notebook, target, parameters, prepare_only):
        targets.append(target)
        target.write_text(notebook.read_text())

    monkeypatch.setattr(runner, "run_one", fake_run)
    assert runner.main(["--profile", profile, NOTEBOOKS[0].stem]) == 0
    destination = source if in_place else notebooks / profile / source.name
    assert targets[0].parent not in (notebooks, destination.parent)  # ran in a scratch folder
    assert destination.read_text() == source.read_text() and not targets[0].exists()
    if in_place:
        assert "SYNFLOW_FIGURES" not in os.environ
    else:
        assert os.environ["SYNFLOW_FIGURES"] == str(tmp_path / "figures" / profile)

    def failing_run(notebook, target, parameters, prepare_only):
        target.write_text("half-written")
        raise RuntimeError("a cell failed")

    if not in_place:
        destination.unlink()
    before = source.read_text()
    monkeypatch.setattr(runner, "run_one", failing_run)
    assert runner.main(["--profile", profile, NOTEBOOKS[0].stem]) == 1
    assert source.read_text() == before  # the committed notebook is untouched
    assert in_place or not destination.exists()  # nothing half-written where outputs go


def _command_line(process) -> str:
    """The process's command line, "" for one that ended meanwhile (gone, or a zombie)."""
    try:
        return " ".join(process.cmdline())
    except psutil.Error:
        return ""


def test_a_terminated_runner_leaves_no_scratch_files_and_no_kernel(tmp_path):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    environment = {**os.environ, "TMPDIR": str(scratch), "JUPYTER_RUNTIME_DIR": str(scratch),
                   "SYNFLOW_FIGURES": str(tmp_path / "figures"),
                   "SYNFLOW_RESULTS": str(tmp_path / "results")}
    runner = subprocess.Popen(
        [sys.executable, str(ROOT / "tools" / "run_notebooks.py"), "--profile", "smoke",
         "--output-dir", str(tmp_path / "out"), "00_quickstart"], env=environment,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline, kernels = time.monotonic() + 120, []
    while not kernels and runner.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)  # until the kernel runs
        kernels = [p for p in psutil.Process(runner.pid).children(recursive=True)
                   if "ipykernel" in _command_line(p)]
    time.sleep(1.0)
    assert kernels and list(scratch.glob("00_quickstart-*")), "no kernel or scratch folder"
    runner.terminate()
    output = runner.communicate(timeout=60)[0]
    assert runner.returncode != 0
    assert sorted(p.name for p in scratch.iterdir()) == [], output[-2000:]
    _, alive = psutil.wait_procs(kernels, timeout=20)  # the kernel was shut down, not left
    assert alive == []
    assert not (tmp_path / "out" / "00_quickstart.ipynb").exists()
