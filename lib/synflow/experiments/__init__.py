"""Experiments: a run described by a frozen config, executed, stored once, launched on a
cluster.

| module     | concern                                                                    |
|------------|----------------------------------------------------------------------------|
| runconfig  | :class:`RunConfig`: everything that determines a run, its name and hash      |
| results    | :class:`RunResult`: the one owner of ``run.json``                            |
| execution  | build, prune, train, measure one run, resumable                              |
| run_data   | a run's training data: the dataset, or class-balanced subsets kept in memory |
| weights    | rewinding to init, kept weights at init, Figure 5b's layer records           |
| folders    | a run's folder in the results store and its failure record                   |
| runnable   | whether a run can run at all, checked before anything of it is written       |
| store      | the results store: run once, load afterwards; failures                       |
| frames     | the stored runs as a DataFrame (``store.frame``)                             |
| claims     | one worker per run, on one machine or many                                   |
| holders    | who holds a claim (job, log) and whether it is alive (stale, heartbeat)      |
| profiles   | the notebooks' parameter profiles (smoke, laptop, paper), shipped here       |
| parameters | the training notebooks' parameters checked; the status command for them      |
| sweeps     | the runs each training notebook trains                                       |
| launch     | fill the store: inline, local processes or a Slurm job array (submitit)      |
| worker     | a launched task: runs its share of the runs, counts and times them           |
| status     | how far a sweep is                                                           |
| cli        | ``python -m synflow launch|status``                                          |

:class:`RunConfig` is importable from here too: ``synflow.experiments.RunConfig``.
"""

from .runconfig import RunConfig

__all__ = ["RunConfig"]
