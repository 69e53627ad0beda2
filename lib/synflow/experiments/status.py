"""``python -m synflow status``: how far a sweep is, from the results store alone.

Per notebook: done / running (claimed, heartbeat fresh) / failed (the error, on one
line, and the log path) / other data (trained on another copy of its dataset) / damaged
(a ``run.json`` that is not a complete result of this format, named with the reason; read
only: ``launch`` sets it aside) / missing (and how many of those are stored at the other
training precision), the throughput of finished runs and an ETA. A claim whose heartbeat
lies in the future is flagged as clock skew (see :mod:`synflow.experiments.claims` for
how long it can block).
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import datetime

from . import claims, holders, launch, store
from .results import RESULT_FILE, DamagedResult, RunResult

_OTHER = {"float32": "bfloat16", "bfloat16": "float32"}  # the training precisions


def _duration_of(result: RunResult) -> float:
    """Seconds a stored run took: its recorded duration, else pruning + training."""
    recorded = result.environment.get("duration")
    if recorded is not None:
        return float(recorded)
    metrics = result.metrics
    return float(metrics.get("seconds", 0.0)) + float(metrics.get("prune_seconds", 0.0))


def _last_stretch(finished: list[float], longest: float) -> list[float]:
    """The ascending finishing times of the last stretch of work with two or more runs: a
    gap longer than twice the ``longest`` run or ten minutes, whichever is longer, means
    no worker ran (a sweep launched again the next day); the rate is measured over the
    work since (or over the stretch before, while only one run has finished since).

    >>> _last_stretch([0, 10, 20, 90_000, 90_010], longest=10)
    [90000, 90010]
    >>> _last_stretch([0, 10, 20, 90_000], longest=10)
    [0, 10, 20]
    """
    gap = max(2 * longest, 600.0)
    cuts = [0, *(i for i in range(1, len(finished)) if finished[i] - finished[i - 1] > gap),
            len(finished)]
    stretches = [finished[a:b] for a, b in itertools.pairwise(cuts) if b - a >= 2]
    return stretches[-1] if stretches else finished


def _summarize(notebook: str, profile: str, results=None, stale_after=None,
              overrides=None) -> dict:
    """Counts, failures and timing of ``notebook``'s runs at ``profile``."""
    states = {"done": [], "running": [], "failed": [], "damaged": [], "missing": [],
              "other data": []}
    durations, finished, skewed = [], [], []
    for experiment, config in launch.planned_runs([notebook], profile, overrides):
        state, result = launch.read_state(config, experiment, results, stale_after=stale_after)
        states[state].append((experiment, config))
        if state not in ("done", "other data"):
            path = store.run_dir(config, experiment, results) / claims.CLAIM_FILE
            holder = claims.read_claim(path)
            if holder is not None and holder["age"] < -holders.SKEW_TOLERANCE:
                skewed.append((path, holder))
        if state == "done":
            durations.append(_duration_of(result))
            stamp = result.environment.get("finished")
            if stamp:
                finished.append(datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S%z").timestamp())
    left = sum(len(runs) for state, runs in states.items() if state != "done")
    recent = _last_stretch(sorted(finished), max(durations, default=0.0))
    span = recent[-1] - recent[0] if len(recent) >= 2 else 0.0
    if span > 0:
        rate = (len(recent) - 1) / span * 3600  # runs per hour, all workers together
    elif durations and sum(durations) > 0:
        rate = 3600 / (sum(durations) / len(durations))  # one worker
    else:
        rate = None
    # missing here, stored at the other training precision (planned on another machine)
    elsewhere: dict[str, int] = {}
    for experiment, config in states["missing"]:
        other = replace(config, train_precision=_OTHER[config.train_precision])
        if (store.run_dir(other, experiment, results) / RESULT_FILE).is_file():
            elsewhere[other.train_precision] = elsewhere.get(other.train_precision, 0) + 1
    return {"states": states, "durations": durations, "rate": rate, "elsewhere": elsewhere,
            "eta_hours": left / rate if rate else None, "left": left, "skewed": skewed,
            "stale_after": holders.stale_after_default() if stale_after is None else stale_after}


def show(notebooks: list[str], profile: str, results=None, stale_after=None,
         overrides=None) -> None:
    """Print each notebook's runs at ``profile`` by state, the running, clock-skewed,
    damaged and failed ones, the mean run time (s), the rate (runs/h) and the ETA (h).
    Raises ValueError for a bad notebook, profile or override, as
    :func:`synflow.experiments.launch.planned_runs` does.

    >>> import tempfile
    >>> show(["04_accuracy_vs_compression"], "smoke", results=tempfile.mkdtemp())
    04_accuracy_vs_compression at profile smoke: 6 runs: 0 done, 0 running, 0 failed, 0 damaged, 6 missing
      no finished run yet: no rate or ETA
    """
    for notebook in notebooks:
        summary = _summarize(notebook, profile, results, stale_after, overrides)
        states = summary["states"]
        total = sum(len(v) for v in states.values())
        print(f"{notebook} at profile {profile}: {total} runs: "
              + ", ".join(f"{len(v)} {k}" for k, v in states.items()
                          if v or k != "other data"))
        for precision, count in summary["elsewhere"].items():
            print(f"  {count} of the missing runs are stored trained in {precision}: this "
                  f"machine plans {_OTHER[precision]} (set $SYNFLOW_TRAIN_PRECISION="
                  f"{precision} to count and use them)")
        for experiment, config in states["running"]:
            holder = claims.read_claim(
                store.run_dir(config, experiment, results) / claims.CLAIM_FILE)
            if holder is None:  # released since it was counted
                print(f"  running {config.name()}: its claim was released just now (the run "
                      "finished or stopped)")
                continue
            if holder.get("host") is None:  # an empty or garbled claim: judged by its age
                print(f"  running {config.name()}: its claim names no worker (being written, "
                      f"or damaged; last touched {holders.heartbeat(holder)}), taken over "
                      f"once {summary['stale_after']:.0f} s old")
                continue
            print(f"  running {config.name()} on {holder.get('host')} (job {holder.get('job')}, "
                  f"heartbeat {holders.heartbeat(holder)})")
        for path, holder in summary["skewed"]:
            print(f"  CLOCK SKEW {path}: heartbeat {holders.heartbeat(holder)}; a heartbeat "
                  f"more than stale_after ({summary['stale_after']:.0f} s) in the future counts "
                  "as stale, so a dead worker's claim blocks its run for at most twice that")
        for experiment, config in states["damaged"]:
            try:
                store.read_stored(config, experiment, results)
                problem = "read fine now"  # replaced since it was counted
            except DamagedResult as error:
                problem = str(error)
            print(f"  DAMAGED {problem}; not done: `launch` moves it aside (never deletes it) "
                  "and runs it again")
        for experiment, config in states["other data"]:
            stored = store.read_stored(config, experiment, results)
            print(f"  OTHER DATA {config.name()}: trained on '{stored.environment['data']}', "
                  f"the data root holds '{store.other_data(stored)}': not reused")
        for experiment, config in states["failed"]:
            record = store.failure(config, experiment, results) or {}
            print(f"  FAILED {config.name()}: {record.get('error')} (log: {record.get('log')}; "
                  f"{store.run_dir(config, experiment, results) / store.FAILURE_FILE})")
        if summary["durations"]:
            mean = sum(summary["durations"]) / len(summary["durations"])
            print(f"  mean run {mean:.1f} s; rate {summary['rate']:.1f} runs/h; ETA for "
                  f"{summary['left']} runs: {summary['eta_hours']:.2f} h")
        else:
            print("  no finished run yet: no rate or ETA")
