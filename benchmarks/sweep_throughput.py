"""Sweep throughput: the same small sweep inline, on 2 local workers and on Slurm with 2 slots.

    tools/slurm/with_slurm.sh .venv/bin/python benchmarks/sweep_throughput.py [--smoke]
        [--runs-per-task 1,4]

Runs ``python -m synflow launch NOTEBOOK --profile P --set ... --executor E --wait`` into
a fresh temporary results folder for E = inline (one process, torch on every core),
local (submitit's LocalExecutor, 2 worker processes of 1 thread) and slurm (a job array,
1 CPU per task, 2 tasks at a time: a single-node Slurm with 2 CPUs, as
tools/slurm/with_slurm.sh starts), once per ``--runs-per-task`` value (runs packed into
one array task). Prints, per executor, the wall time of the launch command (submission to
the last result), runs per minute and the ratio to inline, and the overhead per run in
slot-seconds: (wall x slots - the runs' work) / runs, where a run's work is its pruning and
training seconds (what does not depend on how runs are packed). The overhead is split into
the runs' own set-up (data loading and model building inside the run: the decoded data
subsets are kept per process, so only a task's first run pays for them), the tasks'
start-up (process start to the first run: interpreter, imports, unpickling; as the workers
report it) and the rest (Slurm's scheduling and step launch, queueing, the launcher's
polling, the idle tail when the slots do not finish together). Slurm's own overhead is its
overhead minus the local executor's, and the goal is that this stays under 5 % of a
laptop-profile run. The load average is printed before and after each executor.

Default sweep: 8 runs of the laptop profile of notebook 04 (VGG-16-BN at width 1/8, 250
images per class; random and magnitude pruning, cheap and alike, at 10^1, 10^1.5, 10^2,
10^2.5, seed 0) trained for 2 epochs instead of 10 to keep the benchmark short on a shared
2-core machine. The overhead is then given as a fraction of the same run at the laptop
profile's 10 epochs, extrapolated: its set-up in a task of one run + pruning + 5 x the
measured training time (training time is linear in epochs). ``--smoke``: the smoke
profile of 04 instead (6 runs of a second or two; a quick check of the plumbing). Slurm is
left out, with a note, when no Slurm is reachable (no SLURM_CONF / sbatch).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NOTEBOOK = "04_accuracy_vs_compression"
LAPTOP = {"seeds": "[0]", "methods": "[random,magnitude]", "log10_compressions": "[1,1.5,2,2.5]",
          "fig1_log10_compressions": "[]", "epochs": "2"}
LAPTOP_EPOCHS = 10  # the laptop profile's training length, for the extrapolation
SLOTS = 2


def launch(executor: str, profile: str, settings: dict, results: Path, runs_per_task: int = 1
           ) -> tuple[float, float | None]:
    """Wall seconds of one ``launch --wait`` into ``results`` and the tasks' total start-up
    seconds as the workers report it (None inline); raises if it failed."""
    command = [sys.executable, "-m", "synflow", "launch", NOTEBOOK, "--profile", profile,
               "--results", str(results), "--executor", executor, "--wait"]
    for key, value in settings.items():
        command += ["--set", f"{key}={value}"]
    if executor == "local":
        command += ["--workers", str(SLOTS)]
    if executor == "slurm":
        command += ["--cpus-per-task", "1", "--mem-gb", "2", "--time-min", "60",
                    "--array-parallelism", str(SLOTS), "--runs-per-task", str(runs_per_task)]
    env = {**os.environ, "SYNFLOW_QUIET": "1"}
    env.pop("OMP_NUM_THREADS", None)  # inline uses every core; workers set their own
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0 or "0 failed" not in done.stdout:
        raise RuntimeError(f"{' '.join(command)} failed (exit {done.returncode}):\n"
                           f"{done.stdout}{done.stderr[-3000:]}")
    found = re.search(r"task start-up .*: mean ([0-9.]+) s, max [0-9.]+ s over (\d+) task",
                      done.stdout)
    return wall, (float(found[1]) * int(found[2]) if found else None)


def stored(results: Path) -> list[dict]:
    return [json.loads(path.read_text()) for path in sorted(results.glob("*/*/run.json"))]


def work(result: dict) -> float:
    """A run's pruning and training seconds."""
    return result["metrics"]["seconds"] + result["metrics"]["prune_seconds"]


def setup(result: dict) -> float:
    """A run's own set-up: data loading and model building (its duration less its work)."""
    return result["environment"]["duration"] - work(result)


def laptop_duration(result: dict, first_setup: float) -> float:
    """The run at the laptop profile's epochs, with a task's first-run set-up."""
    metrics, epochs = result["metrics"], result["training"]["epochs"]
    return first_setup + metrics["prune_seconds"] + metrics["seconds"] * LAPTOP_EPOCHS / epochs


def loadavg() -> str:
    with open("/proc/loadavg") as handle:
        return " ".join(handle.read().split()[:3])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="the smoke profile (seconds)")
    parser.add_argument("--runs-per-task", default="1,4",
                        help="comma-separated values of launch --runs-per-task for Slurm")
    args = parser.parse_args()
    try:
        packings = [int(value) for value in args.runs_per_task.split(",")]
        if not packings or min(packings) < 1:
            raise ValueError
    except ValueError:
        parser.error(f"--runs-per-task {args.runs_per_task!r} is not allowed; give integers "
                     ">= 1 separated by commas, e.g. 1,4")
    profile, settings = ("smoke", {}) if args.smoke else ("laptop", LAPTOP)
    executors = [("inline", 1), ("local", 1)]
    if os.environ.get("SLURM_CONF") and shutil.which("sbatch"):
        executors += [("slurm", packing) for packing in packings]
    else:
        print("slurm: not measured (no SLURM_CONF or sbatch); run this under "
              "tools/slurm/with_slurm.sh")
    print(f"sweep: {NOTEBOOK} at profile {profile} {settings}; {os.cpu_count()} CPUs; "
          f"load average (1, 5, 15 min) before: {loadavg()}")
    rows = {}
    with tempfile.TemporaryDirectory(prefix="sweep-throughput-") as tmp:
        for executor, packing in executors:
            label = f"slurm x{packing}" if executor == "slurm" else executor
            results = Path(tmp) / label.replace(" ", "")
            before = loadavg()
            wall, startup = launch(executor, profile, settings, results, packing)
            runs = stored(results)
            count = len(runs)
            slots = 1 if executor == "inline" else SLOTS
            in_run = sum(map(setup, runs)) / count
            overhead = (wall * slots - sum(map(work, runs))) / count
            first = max(map(setup, runs))  # a task's first run loads the data
            rows[label] = {
                "runs": count, "wall": wall, "per_min": count / wall * 60,
                "mean_run": sum(r["environment"]["duration"] for r in runs) / count,
                "overhead": overhead, "setup": in_run,
                "startup": None if startup is None else startup / count,
                "laptop_run": sum(laptop_duration(r, first) for r in runs) / count,
                "load": f"{before.split()[0]} -> {loadavg().split()[0]}",
            }
    base = rows["inline"]["per_min"]
    print(f"{'executor':10} {'runs':>4} {'wall s':>7} {'runs/min':>8} {'vs inline':>9} "
          f"{'mean run s':>10} {'overhead s/run':>14} {'= set-up':>8} {'+ start-up':>10} "
          f"{'+ rest':>7}  load (1 min)")
    for label, row in rows.items():
        startup = row["startup"]
        rest = row["overhead"] - row["setup"] - (startup or 0.0)
        print(f"{label:10} {row['runs']:>4} {row['wall']:>7.1f} {row['per_min']:>8.2f} "
              f"{row['per_min'] / base:>9.2f} {row['mean_run']:>10.2f} {row['overhead']:>14.2f} "
              f"{row['setup']:>8.2f} {'-' if startup is None else f'{startup:.2f}':>10} "
              f"{rest:>7.2f}  {row['load']}")
    local = rows["local"]
    for label, slurm in rows.items():
        if not label.startswith("slurm"):
            continue
        extra = slurm["overhead"] - local["overhead"]
        print(f"{label}: slurm / local throughput {slurm['per_min'] / local['per_min']:.3f}; "
              f"Slurm's own overhead per run (slurm overhead - local overhead) {extra:.2f} s "
              f"= {extra / slurm['mean_run']:.1%} of a run as measured ({slurm['mean_run']:.1f} s)")
        if not args.smoke:
            print(f"  = {extra / slurm['laptop_run']:.1%} of the same run at {LAPTOP_EPOCHS} "
                  f"epochs ({slurm['laptop_run']:.1f} s, extrapolated; goal < 5 %); all "
                  f"overhead on slurm: {slurm['overhead'] / slurm['laptop_run']:.1%}")
    print(f"load average (1, 5, 15 min) after: {loadavg()}")


if __name__ == "__main__":
    main()
