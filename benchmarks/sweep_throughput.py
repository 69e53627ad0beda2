"""Sweep throughput: the same small sweep inline, on 2 local workers and on Slurm with 2 slots.

    tools/slurm/with_slurm.sh .venv/bin/python benchmarks/sweep_throughput.py [--smoke]

Runs ``python -m synflow launch NOTEBOOK --profile P --set ... --executor E --wait`` into
a fresh temporary results folder for E = inline (one process, torch on every core),
local (submitit's LocalExecutor, 2 worker processes of 1 thread) and slurm (a job array,
1 CPU and 1 run per task, 2 tasks at a time: a single-node Slurm with 2 CPUs, as
tools/slurm/with_slurm.sh starts). Prints, per executor, the wall time of the launch
command (submission to the last result), runs per minute and the ratio to inline; and
the overhead per run in slot-seconds: (wall x slots - sum of the runs' own durations) /
runs, i.e. the time a slot spent on anything but executing a run (process start, imports,
scheduling, queueing, the idle tail). Slurm's scheduling overhead is its overhead minus the
local executor's, and the goal is that this stays under 5 % of a run's time for a
laptop-profile run.

Default sweep: 8 runs of the laptop profile of notebook 04 (VGG-16-BN at width 1/8, 250
images per class; random and magnitude pruning, cheap and alike, at 10^1, 10^1.5, 10^2, 10^2.5, seed 0)
trained for 2 epochs instead of 10 to keep the benchmark short on a shared 2-core machine.
The overhead is then also given as a fraction of the same run at the laptop profile's 10
epochs, extrapolated: pruning time + 5 x the measured training time (training time is
linear in epochs). ``--smoke``: the smoke profile of 04 instead (6 runs of a second or two;
a quick check of the plumbing). Slurm is left out, with a note, when no Slurm is reachable
(no SLURM_CONF / sbatch).
"""

from __future__ import annotations

import argparse
import json
import os
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


def launch(executor: str, profile: str, settings: dict, results: Path) -> float:
    """Wall seconds of one ``launch --wait`` into ``results``; raises if it failed."""
    command = [sys.executable, "-m", "synflow", "launch", NOTEBOOK, "--profile", profile,
               "--results", str(results), "--executor", executor, "--wait"]
    for key, value in settings.items():
        command += ["--set", f"{key}={value}"]
    if executor == "local":
        command += ["--workers", str(SLOTS)]
    if executor == "slurm":
        command += ["--cpus-per-task", "1", "--mem-gb", "2", "--time-min", "60",
                    "--array-parallelism", str(SLOTS), "--runs-per-task", "1"]
    env = {**os.environ, "SYNFLOW_QUIET": "1"}
    env.pop("OMP_NUM_THREADS", None)  # inline uses every core; workers set their own
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0 or "0 failed" not in done.stdout:
        raise RuntimeError(f"{' '.join(command)} failed (exit {done.returncode}):\n"
                           f"{done.stdout}{done.stderr[-3000:]}")
    return wall


def stored(results: Path) -> list[dict]:
    return [json.loads(path.read_text()) for path in sorted(results.glob("*/*/run.json"))]


def laptop_duration(result: dict) -> float:
    """The run's duration with its training stretched to the laptop profile's epochs."""
    metrics, epochs = result["metrics"], result["training"]["epochs"]
    rest = result["environment"]["duration"] - metrics["seconds"]  # pruning, data, set-up
    return rest + metrics["seconds"] * LAPTOP_EPOCHS / epochs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="the smoke profile (seconds)")
    args = parser.parse_args()
    profile, settings = ("smoke", {}) if args.smoke else ("laptop", LAPTOP)
    executors = ["inline", "local"]
    if os.environ.get("SLURM_CONF") and shutil.which("sbatch"):
        executors.append("slurm")
    else:
        print("slurm: not measured (no SLURM_CONF or sbatch); run this under "
              "tools/slurm/with_slurm.sh")
    with open("/proc/loadavg") as handle:
        load = handle.read().split()[:3]
    print(f"sweep: {NOTEBOOK} at profile {profile} {settings}; {os.cpu_count()} CPUs; "
          f"load average before: {' '.join(load)}")
    rows = {}
    with tempfile.TemporaryDirectory(prefix="sweep-throughput-") as tmp:
        for executor in executors:
            results = Path(tmp) / executor
            wall = launch(executor, profile, settings, results)
            runs = stored(results)
            own = [result["environment"]["duration"] for result in runs]
            slots = 1 if executor == "inline" else SLOTS
            rows[executor] = {
                "runs": len(own), "wall": wall, "per_min": len(own) / wall * 60,
                "mean_run": sum(own) / len(own),
                "overhead": (wall * slots - sum(own)) / len(own),
                "laptop_run": sum(map(laptop_duration, runs)) / len(runs),
            }
    with open("/proc/loadavg") as handle:
        load = handle.read().split()[:3]
    base = rows["inline"]["per_min"]
    print(f"{'executor':8} {'runs':>5} {'wall s':>8} {'runs/min':>9} {'vs inline':>10} "
          f"{'mean run s':>11} {'overhead s/run':>15}")
    for executor, row in rows.items():
        print(f"{executor:8} {row['runs']:>5} {row['wall']:>8.1f} {row['per_min']:>9.2f} "
              f"{row['per_min'] / base:>10.2f} {row['mean_run']:>11.2f} {row['overhead']:>15.2f}")
    if "slurm" in rows:
        slurm, local = rows["slurm"], rows["local"]
        extra = slurm["overhead"] - local["overhead"]
        print(f"slurm / local throughput: {slurm['per_min'] / local['per_min']:.3f}")
        print(f"Slurm scheduling overhead per run (slurm overhead - local overhead): "
              f"{extra:.2f} s = {extra / slurm['mean_run']:.1%} of a run as measured "
              f"({slurm['mean_run']:.1f} s)")
        if not args.smoke:
            print(f"  = {extra / slurm['laptop_run']:.1%} of the same run at "
                  f"{LAPTOP_EPOCHS} epochs ({slurm['laptop_run']:.1f} s, extrapolated; goal "
                  f"< 5 %); all overhead on slurm: {slurm['overhead'] / slurm['laptop_run']:.1%}")
    print(f"load average after: {' '.join(load)}")


if __name__ == "__main__":
    main()
