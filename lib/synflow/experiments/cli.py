"""python -m synflow launch|status NOTEBOOK... --profile P: run a training notebook's sweep
(inline, local workers or a Slurm job array) or show its progress (see
:mod:`synflow.experiments.launch`)."""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys

import yaml

from . import launch, status, sweeps
from .profiles import PROFILES


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed; give an integer >= 1")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed; give a number > 0")
    return value


class _Loader(yaml.SafeLoader):
    """YAML as ``yaml.safe_load`` reads it, and ``1e9`` a number (YAML 1.1 needs ``1.0e+9``)."""


_Loader.add_implicit_resolver("tag:yaml.org,2002:float",
                              re.compile(r"^[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)[eE][-+]?[0-9]+$"),
                              list("-+0123456789."))


def parameter(text: str) -> tuple[str, object]:
    """``KEY=VALUE`` of ``--set``, the value parsed as YAML (``null``: None; ``1e9`` is a
    number); its type and range are checked with the rest of the notebook's parameters
    (:mod:`synflow.experiments.parameters`). Raises argparse.ArgumentTypeError for text
    without ``=`` or a value that is not YAML.

    >>> parameter("seeds=[0, 1]"), parameter("lr=1e-3")
    (('seeds', [0, 1]), ('lr', 0.001))
    """
    key, separator, value = text.partition("=")
    if not separator or not key.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed; give KEY=VALUE")
    try:
        return key.strip(), yaml.load(value, Loader=_Loader)  # a SafeLoader
    except yaml.YAMLError as error:
        raise argparse.ArgumentTypeError(f"{text!r}: the value is not YAML ({error})") from None


def _parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(prog="python -m synflow", description=__doc__)
    commands = main.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("notebooks", nargs="+", metavar="NOTEBOOK",
                        choices=sorted(sweeps.BUILDERS),
                        help="training notebooks, by file stem: " + ", ".join(sorted(sweeps.BUILDERS)))
    common.add_argument("--profile", required=True, choices=PROFILES,
                        help="parameter profile (smoke, laptop, paper; shipped in "
                        "synflow/experiments/profiles/)")
    common.add_argument("--results", help="results folder (default: $SYNFLOW_RESULTS, else "
                        "<repo>/results in a checkout or ~/.local/share/synflow/results; "
                        "on a cluster, a shared filesystem)")
    common.add_argument("--stale-after", type=_positive_float, metavar="SECONDS",
                        help="a claim without heartbeat for this long is taken over "
                        "(default $SYNFLOW_CLAIM_STALE_S or 600)")
    common.add_argument("--set", action="append", default=[], type=parameter,
                        metavar="KEY=VALUE", help="override a notebook parameter of the "
                        "profile, VALUE in YAML (e.g. epochs=3, 'seeds=[0]'); repeatable")
    commands.add_parser("status", parents=[common], help="done/running/failed/missing, ETA")
    run = commands.add_parser("launch", parents=[common], help="submit the missing runs")
    run.add_argument("--executor", choices=launch.EXECUTORS, default="inline",
                     help="inline: this process; local: --workers processes here (submitit); "
                     "slurm: one Slurm job array (submitit). Default: inline")
    run.add_argument("--workers", type=_positive_int, default=2, help="local worker processes (default 2)")
    run.add_argument("--retry-failed", action="store_true", help="run failed runs again")
    run.add_argument("--wait", action="store_true", help="block until every task ended")
    run.add_argument("--checkpoint-every", type=_positive_int, default=1, metavar="EPOCHS",
                     help="save the training state every EPOCHS epochs (default 1); a "
                     "restarted run resumes from it")
    run.add_argument("--logs", help="submitit's folder (default: <results>/_submitit)")
    run.add_argument("--runs-per-gpu", type=_positive_int, default=1, metavar="N",
                     help="inline and slurm: N worker processes per task, sharing its GPU "
                     "and CPUs (default 1; pays when one run leaves the GPU mostly idle)")
    slurm = run.add_argument_group("slurm")
    slurm.add_argument("--partition", help="Slurm partition (default: the cluster's)")
    slurm.add_argument("--gpus-per-task", type=_positive_int, help="GPUs per array task")
    slurm.add_argument("--cpus-per-task", type=_positive_int,
                       help="CPUs per array task (also torch's thread count)")
    slurm.add_argument("--mem-gb", type=_positive_int, help="memory per task, whole GB")
    slurm.add_argument("--time-min", type=_positive_int, default=720,
                       help="time limit per task in minutes (default 720)")
    slurm.add_argument("--array-parallelism", type=_positive_int, default=256,
                       help="at most this many array tasks at once (default 256)")
    slurm.add_argument("--runs-per-task", type=_positive_int, default=1,
                       help="runs packed in one array task (default 1; 4-8 for runs under a "
                       "minute, so start-up and scheduling cost stay under 5 %%)")
    slurm.add_argument("--slurm-param", action="append", default=[], metavar="KEY=VALUE",
                       help="any other sbatch parameter (repeatable)")
    return main


def main(argv: list[str] | None = None) -> int:
    """``python -m synflow launch|status ...`` with ``argv`` (default ``sys.argv[1:]``);
    returns the exit status: 0, 1 (a launched run failed), 2 (a bad value or a file
    error, printed to stderr as ``synflow <command>: <error>``) or 130 (Ctrl-C). Bad options exit via
    argparse (SystemExit 2).

    >>> import tempfile
    >>> main(["status", "05_iterative_magnitude_pruning", "--profile", "smoke",
    ...       "--results", tempfile.mkdtemp()])
    05_iterative_magnitude_pruning at profile smoke: 9 runs: 0 done, 0 running, 0 failed, 0 damaged, 9 missing
      no finished run yet: no rate or ETA
    0
    """
    args = _parser().parse_args(argv)
    args.set = dict(args.set)
    try:
        if args.command == "status":
            status.show(args.notebooks, args.profile, args.results, args.stale_after, args.set)
            return 0
        return launch.launch(args)
    except BrokenPipeError as error:  # a reader that stopped early (`| head`)
        with contextlib.suppress(OSError, ValueError):  # no more writes to the closed pipe
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        if args.command == "status":  # it only reports: nothing is lost
            return 0
        print(f"synflow {args.command}: {error} (its output's reader stopped; runs not "
              "started are still missing)", file=sys.stderr)
        return 2
    except (ValueError, OSError) as error:
        print(f"synflow {args.command}: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C: no traceback; an interrupted run keeps its checkpoint
        print(f"\nsynflow {args.command}: interrupted"
              + ("; a run left half-done resumes from its checkpoint at the next launch"
                 if args.command == "launch" else ""), file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
