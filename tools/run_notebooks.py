"""Execute the project's notebooks with papermill at one parameter profile.

    python tools/run_notebooks.py [--profile laptop] [--output-dir DIR] [--prepare-only]
                                  [--jobs N] [NAME ...]

Every ``notebooks/NN_*.ipynb`` (or only the NAMEs given, e.g. ``00_quickstart``)
gets its section of the profile (``synflow/experiments/profiles/<profile>.yaml``, shipped in
the package: :mod:`synflow.experiments.profiles`) injected after its
cell tagged ``parameters`` and is run on this interpreter's ``python3`` kernel.
Without ``--output-dir``, at the laptop profile (the committed outputs) the
notebooks are rewritten in place; at another profile they are written to
``notebooks/<profile>/`` and their figures go to ``figures/<profile>/`` (unless
$SYNFLOW_FIGURES says otherwise), beside the laptop ones. Either way a notebook
is written only once it ran without error (a failed run is kept in a temporary
folder, whose path is printed). ``--prepare-only`` injects the parameters
without executing, so the committed outputs stay in place (used by ``make test``
for nbval).
Every written notebook is cleaned with nbstripout, keeping outputs and
execution counts, and papermill's paths and timings are removed, so a rerun
with the same results gives the same file. SYNFLOW_QUIET defaults to 1 (no
progress bars in the saved outputs); instead, every run a notebook's results
store finishes is printed here as it happens (via $SYNFLOW_PROGRESS_LOG).
``--jobs N`` (``make reproduce`` passes the number of CPUs) runs the notebooks and the
training notebooks' runs side by side, N jobs of one thread each, within the available
memory (``tools/notebook_jobs.py``); their outputs do not depend on N.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import nbformat
import papermill
from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
from papermill.exceptions import PapermillExecutionError

from synflow.experiments import profiles

ROOT = Path(__file__).resolve().parents[1]
# the file ipykernel compiles a cell into, named after the kernel's process
KERNEL_CELL = re.compile(r"[^\s\"']*ipykernel_\d+[/\\]-?\d+\.py")
NOTEBOOKS_DIR = ROOT / "notebooks"
NOTEBOOK_PATTERN = "[0-9][0-9]_*.ipynb"
KERNEL = "python3"
# metadata that changes on every run: papermill's paths, parameters and timings, nbclient's timings
VOLATILE_KEYS = "metadata.papermill cell.metadata.papermill cell.metadata.execution"


class NotebookError(Exception):
    """A clear, user-facing problem with the notebooks or the profiles."""


def find_notebooks(names: list[str] | None = None) -> list[Path]:
    """The project's notebooks in order, or those whose stem (or file name) is in ``names``."""
    found = sorted(NOTEBOOKS_DIR.glob(NOTEBOOK_PATTERN))
    if not found:
        raise NotebookError(f"no notebooks matching {NOTEBOOK_PATTERN} in {NOTEBOOKS_DIR}")
    if not names:
        return found
    by_stem = {path.stem: path for path in found}
    wanted = [name.removesuffix(".ipynb") for name in names]
    unknown = [name for name in wanted if name not in by_stem]
    if unknown:
        raise NotebookError(f"unknown notebook(s) {unknown}; choose from: {', '.join(by_stem)}")
    return [by_stem[name] for name in wanted]


def load_profile(profile: str) -> dict[str, dict]:
    """``{notebook stem: parameters}`` of ``profile`` (the package's one loader)."""
    try:
        return profiles.load_profile(profile)
    except ValueError as error:
        raise NotebookError(str(error)) from None


def parameters_for(notebook: Path, profile: str, sections: dict[str, dict]) -> dict:
    """The notebook's section of the profile, checked against its ``parameters`` cell."""
    if notebook.stem not in sections:
        raise NotebookError(
            f"{profiles.profile_path(profile)} has no section {notebook.stem!r}; "
            f"add one (`{notebook.stem}: {{}}` for the notebook's defaults)"
        )
    parameters = sections[notebook.stem]
    declared = papermill.inspect_notebook(str(notebook))  # the parameters cell's names
    if not declared:
        raise NotebookError(f"{notebook.name} has no code cell tagged 'parameters'")
    unknown = sorted(set(parameters) - set(declared))
    if unknown:
        raise NotebookError(
            f"{profiles.profile_path(profile)} sets {unknown} for {notebook.stem}, which its "
            f"parameters cell does not declare; declared: {', '.join(declared)}"
        )
    return parameters


def ensure_kernel() -> None:
    """Make the ``python3`` kernel run this interpreter (the venv's), installing its spec
    into this environment (``ipykernel install --sys-prefix``) when it does not."""
    os.environ["JUPYTER_PREFER_ENV_PATH"] = "1"  # this environment's kernels before the user's

    def runs_here() -> bool:
        try:
            command = KernelSpecManager().get_kernel_spec(KERNEL).argv[0]
        except NoSuchKernel:
            return False
        # jupyter_client starts a bare "python"/"python3" with sys.executable
        return command in ("python", "python3") or Path(command).resolve() == Path(
            sys.executable
        ).resolve()

    if runs_here():
        return
    subprocess.run(
        [sys.executable, "-m", "ipykernel", "install", "--sys-prefix", "--name", KERNEL],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    if not runs_here():
        raise NotebookError(
            f"the Jupyter kernel {KERNEL!r} does not run {sys.executable}; "
            "check `jupyter kernelspec list` for a conflicting kernel"
        )


def clean(path: Path) -> None:
    """nbstripout keeping outputs and execution counts, dropping papermill's metadata;
    this checkout's absolute path in printed text (e.g. a warning's file name) is cut
    to the path relative to the repository, and the file name ipykernel gives a cell
    (``/tmp/ipykernel_<pid>/<hash>.py``: a warning pointing at the notebook's own line)
    becomes ``cell``, so no outputs name the machine or the process they ran in."""
    subprocess.run(
        [sys.executable, "-m", "nbstripout", "--keep-output", "--keep-count",
         "--extra-keys", VOLATILE_KEYS, str(path)],
        check=True,
    )
    notebook = nbformat.read(path, as_version=4)
    prefix, changed = f"{ROOT}{os.sep}", False
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") != "stream":
                continue
            text = KERNEL_CELL.sub("cell", output.get("text", "").replace(prefix, ""))
            if text != output.get("text", ""):
                output["text"], changed = text, True
    if changed:
        nbformat.write(notebook, path)


def echo_progress(log: Path, stop: threading.Event) -> None:
    """Print the lines the kernel appends to ``log`` until ``stop`` is set."""
    position = 0
    while True:
        stopping = stop.wait(2.0)
        if log.exists():
            with open(log, "rb") as file:
                file.seek(position)
                chunk = file.read()
            # only whole lines; a partly written one waits for the next round
            chunk = chunk[: chunk.rfind(b"\n") + 1]
            position += len(chunk)
            for line in chunk.decode("utf-8").splitlines():
                print(f"    {line}", flush=True)
        if stopping:
            return


@contextlib.contextmanager
def echoed_progress():
    """$SYNFLOW_PROGRESS_LOG names a fresh file (the kernel inherits the variable)
    whose lines are printed as they come; every line is printed before this exits."""
    folder = Path(tempfile.mkdtemp(prefix="synflow-progress-"))
    log = folder / "runs.log"
    os.environ["SYNFLOW_PROGRESS_LOG"] = str(log)
    stop = threading.Event()
    echo = threading.Thread(target=echo_progress, args=(log, stop), daemon=True)
    echo.start()
    try:
        yield
    finally:
        stop.set()
        echo.join()
        del os.environ["SYNFLOW_PROGRESS_LOG"]
        shutil.rmtree(folder)


def run_one(notebook: Path, output: Path, parameters: dict, prepare_only: bool) -> None:
    with contextlib.nullcontext() if prepare_only else echoed_progress():
        papermill.execute_notebook(
            str(notebook),
            str(output),
            parameters=parameters,
            kernel_name=KERNEL,
            prepare_only=prepare_only,
            cwd=str(notebook.parent),
            progress_bar=sys.stderr.isatty(),
            coalesce_streams=True,  # one stdout output per cell, however the kernel chunked it
        )
    clean(output)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", metavar="NAME",
                        help="notebooks to run, by stem (default: every notebooks/NN_*.ipynb)")
    parser.add_argument("--profile", choices=profiles.PROFILES, default="laptop",
                        help="parameter profile (synflow/experiments/profiles/; default: laptop)")
    parser.add_argument("--output-dir", type=Path,
                        help="write the notebooks here (default: in place at the laptop "
                             "profile, notebooks/<profile>/ at the others)")
    parser.add_argument("--prepare-only", action="store_true",
                        help="inject the parameters without executing (keeps committed outputs)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="notebooks and training runs side by side, one thread each "
                             "(default 1: one notebook after the other, torch's threads)")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs must be an integer >= 1, got {args.jobs}")

    try:
        notebooks = find_notebooks(args.notebooks)
        sections = load_profile(args.profile)
        # check every notebook's parameters before running anything
        jobs = [(nb, parameters_for(nb, args.profile, sections)) for nb in notebooks]
        if not args.prepare_only:
            ensure_kernel()
    except NotebookError as error:
        print(f"run_notebooks: {error}", file=sys.stderr)
        return 2

    # batch runs: no progress bars in the saved outputs (the library honours SYNFLOW_QUIET)
    os.environ.setdefault("SYNFLOW_QUIET", "1")
    output_dir = args.output_dir.resolve() if args.output_dir else None
    if args.profile != "laptop" and not args.prepare_only:
        # other profiles' outputs go beside the committed laptop ones, never over them
        output_dir = output_dir or NOTEBOOKS_DIR / args.profile
        os.environ.setdefault("SYNFLOW_FIGURES", str(ROOT / "figures" / args.profile))
    if output_dir:
        output_dir.mkdir(parents=True, exist_ok=True)
    if args.jobs > 1 and not args.prepare_only:
        return side_by_side(args, [notebook for notebook, _ in jobs], output_dir)
    verb, past = ("preparing", "prepared") if args.prepare_only else ("running", "run")
    failures = []
    for notebook, parameters in jobs:
        start = time.perf_counter()
        print(f"{verb} {notebook.name} at profile {args.profile} {parameters}", flush=True)
        destination = output_dir / notebook.name if output_dir else notebook
        if args.prepare_only:
            target = destination
        else:  # run into a scratch copy; write the destination only on success
            target = Path(tempfile.mkdtemp(prefix=f"{notebook.stem}-")) / notebook.name
        try:
            run_one(notebook, target, parameters, args.prepare_only)
        except KeyboardInterrupt:  # Ctrl-C, or a parent's terminate(): nothing half-written
            if target != destination:
                shutil.rmtree(target.parent, ignore_errors=True)
            raise
        # a cell's error (papermill names the cell), a dead or stuck kernel, nbstripout failing
        except (PapermillExecutionError, RuntimeError, TimeoutError, OSError,
                subprocess.CalledProcessError) as error:
            failures.append(notebook.name)
            print(f"FAILED {notebook.name}: {type(error).__name__}: {error}", file=sys.stderr)
            print(f"  the failed notebook is at {target}", file=sys.stderr)
            continue
        if target != destination:
            shutil.copyfile(target, destination)
            shutil.rmtree(target.parent)
        print(f"  done in {time.perf_counter() - start:.1f} s -> {destination}", flush=True)

    done = len(jobs) - len(failures)
    print(f"run_notebooks: {done} of {len(jobs)} notebook(s) {past} "
          f"at profile {args.profile}" + (f"; FAILED: {', '.join(failures)}" if failures else ""))
    return 1 if failures else 0


def side_by_side(args, notebooks: list[Path], output_dir: Path | None) -> int:
    """``--jobs N``: see ``tools/notebook_jobs.py``."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import notebook_jobs

    def child_argv(notebook: Path) -> list[str]:
        where = ["--output-dir", str(output_dir)] if output_dir else []
        return [sys.executable, str(Path(__file__).resolve()), "--profile", args.profile,
                *where, notebook.stem]

    # a full run into the profile's own folders records its times for docs/benchmarks.md
    whole = not args.notebooks and (output_dir is None or output_dir == NOTEBOOKS_DIR / args.profile)
    from synflow.utils.paths import figures_dir

    run_times = figures_dir() / notebook_jobs.RUN_TIMES_FILE if whole else None
    start = time.perf_counter()
    failed = notebook_jobs.main(notebooks, args.profile, args.jobs, child_argv, run_times)
    done = len(notebooks) - len(failed)
    print(f"run_notebooks: {done} of {len(notebooks)} notebook(s) run at profile "
          f"{args.profile} with {args.jobs} jobs in {time.perf_counter() - start:.1f} s"
          + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


def interrupted(signum, frame):
    """SIGTERM (``--jobs``' scheduler stopping its notebooks) handled as Ctrl-C: the kernel
    is shut down and the scratch files are removed."""
    raise KeyboardInterrupt(f"signal {signum}")


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, interrupted)
    sys.exit(main())
