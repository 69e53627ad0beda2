"""Smoke test of an installed synflow (``make test-install``): run by the fresh virtual
environment's python, from an empty folder outside the checkout, as

    cd EMPTY && VENV/bin/python - CHECKOUT < tools/installed_smoke.py

It checks that ``synflow`` is imported from that environment (not from CHECKOUT), that the
default results and figures folders lie outside the installed package (under
$XDG_DATA_HOME/synflow), prunes a small model and saves and loads it, and runs
``python -m synflow status NOTEBOOK --profile PROFILE`` for every training notebook at
every profile (results in $SYNFLOW_RESULTS). Prints one line per check and a summary;
exits 1 if any check failed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


def main(checkout: Path) -> int:
    start = time.perf_counter()
    failures = []

    def check(name: str, ok: bool, detail: str = "") -> None:
        print(f"{'ok  ' if ok else 'FAIL'} {name}" + (f": {detail}" if detail else ""), flush=True)
        if not ok:
            failures.append(name)

    import synflow

    package = Path(synflow.__file__).parent
    check("synflow is imported from the fresh environment", inside(package, Path(sys.prefix))
          and not inside(package, checkout), str(package))
    holders = sorted({str(Path(entry or ".").resolve()) for entry in sys.path
                      if (Path(entry or ".") / "synflow" / "__init__.py").is_file()})
    check("synflow is on sys.path once, in the fresh environment (no editable source)",
          holders == [str(package.parent.resolve())], ", ".join(holders))
    check("the working folder is empty and outside the checkout",
          not any(Path.cwd().iterdir()) and not inside(Path.cwd(), checkout), str(Path.cwd()))

    from synflow.utils import paths

    variables = {name: os.environ.pop(name, None) for name in ("SYNFLOW_RESULTS", "SYNFLOW_FIGURES")}
    xdg = Path(os.environ["XDG_DATA_HOME"])
    for name, folder in (("results", paths.results_dir()), ("figures", paths.figures_dir())):
        check(f"the default {name} folder is outside the package, under $XDG_DATA_HOME",
              not inside(folder, package) and inside(folder, xdg / "synflow"), str(folder))
    os.environ.update({k: v for k, v in variables.items() if v is not None})

    model = synflow.build_model("mlp", input_shape=(1, 8, 8), num_classes=3, width=0.2, seed=0)
    masks = synflow.prune(model, "synflow", 10, iterations=5, input_shape=(1, 8, 8))
    with tempfile.TemporaryDirectory() as folder:
        path = synflow.save_pruned(model, Path(folder) / "pruned.pt")
        fresh = synflow.build_model("mlp", input_shape=(1, 8, 8), num_classes=3, width=0.2, seed=1)
        synflow.load_pruned(fresh, path)
    loaded = synflow.current_masks(fresh)
    check("prune, save and load a small model",
          round(synflow.compression_of(masks), 1) == 10.0
          and all(bool((loaded[name] == mask).all()) for name, mask in masks.items()),
          f"compression {synflow.compression_of(masks):.2f}")

    from synflow.experiments import profiles, sweeps

    for notebook in sorted(sweeps.BUILDERS):
        for profile in profiles.PROFILES:
            done = subprocess.run(
                [sys.executable, "-m", "synflow", "status", notebook, "--profile", profile],
                capture_output=True, text=True, check=False)
            last = (done.stdout.strip().splitlines() or [""])[-1]
            check(f"python -m synflow status {notebook} --profile {profile}",
                  done.returncode == 0, last if done.returncode == 0 else done.stderr.strip())
    results = Path(os.environ["SYNFLOW_RESULTS"])
    check("status wrote nothing inside the package", not any(
        p.name in ("results", "figures") for p in package.rglob("*") if p.is_dir()))
    print(f"== installed package: {len(failures)} check(s) failed"
          f" ({time.perf_counter() - start:.0f} s; results folder {results})" if failures else
          f"== installed package: every check passed ({time.perf_counter() - start:.0f} s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
