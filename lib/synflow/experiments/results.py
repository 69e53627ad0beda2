"""The one owner of ``run.json``: :class:`RunResult` writes, reads and checks a run's result.

A run's folder in the results store (:mod:`synflow.experiments.store`) holds its
``run.json``: one JSON object, written once, atomically. Its format (``FORMAT_VERSION``)::

    {"format": 1,
     "config": {...RunConfig fields...}, "key": "<10 hex digits>",
     "training": {...TrainConfig fields...},
     "metrics": {"best_top1", "best_top5", "best_epoch", "final_top1", "final_top5",
                 "final_test_loss", "seconds", "compression_actual", "kept", "prunable",
                 "empty_layers", "prune_seconds", "connected"},
     "history": [{"epoch", "lr", "train_loss", "test_loss", "top1", "top5", "seconds"}, ...],
     "layers": [{"layer", "kept", "total"}, ...], "empty_layers": ["<layer>.weight", ...],
     "environment": {"device", "torch", "python", "finished", "host", "duration", "data",
                     ...},
     "cycles": [...] (IMP only), "layer_history": [...] (record_layers only)}

Accuracies are in percent, times in seconds; ``connected`` says whether an input-output
path survives the final masks (:func:`synflow.core.paths.paths_remain`: true, false, or
null where the check does not judge the model; absent in runs stored before it existed:
``LATER_METRICS``). :meth:`RunResult.read` refuses (with
:class:`DamagedResult`, naming the file) a file that is not JSON, has another format
version, lacks a required key or metric or holds the wrong kind of value under one;
``status`` (reports it as damaged), ``frame`` (leaves it out, with a warning) and
``launch`` (moves it aside, never deletes it, and runs it again) all read through it, so
they agree on which runs are done.

>>> from synflow.experiments.results import RunResult
>>> sorted(RunResult.REQUIRED)[:3]
['config', 'empty_layers', 'environment']
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import ClassVar

from ..core.files import atomic_write
from .runconfig import RunConfig, config_from_dict

FORMAT_VERSION = 1
RESULT_FILE = "run.json"


class DamagedResult(ValueError):
    """A stored ``run.json`` that cannot be read as a run (not JSON, another format
    version, a required key missing); its message names the file.

    >>> RunResult.from_json({"format": 1, "config": {}}, where="run.json")
    Traceback (most recent call last):
    synflow.experiments.results.DamagedResult: run.json lacks the keys [...] of a run result
    """


@dataclass(frozen=True)
class RunResult:
    """A finished run: its config and everything measured (see the module docstring).

    ``config`` is the :class:`RunConfig`; ``extra_config`` the stored config's keys that
    RunConfig does not know (kept, reported by :func:`config_from_dict`); ``key`` the hash
    the run was stored under (``config.key()`` for a new run; a run stored before a field
    existed keeps its old key). ``training``,
    ``metrics``, ``environment`` are dicts, ``history``, ``layers``, ``cycles`` and
    ``layer_history`` lists of dicts, as in the file.

    >>> import tempfile
    >>> payload = {"format": 1, "config": {"model": "mlp", "dataset": "mnist"}, "training": {},
    ...            "metrics": dict.fromkeys(RunResult.REQUIRED_METRICS, 0), "history": [],
    ...            "layers": [], "empty_layers": [], "environment": {}}
    >>> result = RunResult.from_json(payload)
    >>> path = result.write(Path(tempfile.mkdtemp()) / RESULT_FILE)
    >>> RunResult.read(path) == result, result.config.init
    (True, 'kaiming_fan_in')
    """

    REQUIRED = frozenset({"format", "config", "training", "metrics", "history", "layers",
                          "empty_layers", "environment"})
    REQUIRED_METRICS = frozenset({"best_top1", "best_top5", "best_epoch", "final_top1",
                                  "final_top5", "final_test_loss", "compression_actual",
                                  "kept", "prunable", "empty_layers"})
    # metrics added after runs were stored, with what such a run reads as in a table
    LATER_METRICS: ClassVar[dict[str, object]] = {"connected": None}
    KINDS: ClassVar[dict[str, type]] = {
        "config": dict, "training": dict, "metrics": dict, "history": list, "layers": list,
        "empty_layers": list, "environment": dict}

    config: RunConfig
    training: dict
    metrics: dict
    history: list
    layers: list
    empty_layers: list
    environment: dict
    cycles: list | None = None
    layer_history: list | None = None
    extra_config: dict = field(default_factory=dict)
    key: str = ""

    def __post_init__(self):
        if not self.key:
            object.__setattr__(self, "key", self.config.key())

    def to_json(self) -> dict:
        """The ``run.json`` object (keys in the order of the module docstring)."""
        payload = {"format": FORMAT_VERSION, "config": {**asdict(self.config), **self.extra_config},
                   "key": self.key, "training": self.training, "metrics": self.metrics,
                   "history": self.history, "layers": self.layers,
                   "empty_layers": self.empty_layers, "environment": self.environment}
        if self.cycles is not None:
            payload["cycles"] = self.cycles
        if self.layer_history is not None:
            payload["layer_history"] = self.layer_history
        return payload

    def write(self, path: str | os.PathLike, *, exclusive: bool = True) -> Path:
        """Write ``run.json`` atomically; ``exclusive`` (default): never over an existing
        file (FileExistsError), so a result is written exactly once."""
        payload = self.to_json()
        return atomic_write(path, lambda file: json.dump(payload, file, indent=1), text=True,
                            exclusive=exclusive)

    @classmethod
    def from_json(cls, payload, where: str = "a run result") -> RunResult:
        """Check and convert a ``run.json`` object. Raises :class:`DamagedResult`."""
        if not isinstance(payload, dict):
            raise DamagedResult(f"{where} is not a JSON object")
        missing = sorted(cls.REQUIRED - set(payload))
        if missing:
            raise DamagedResult(f"{where} lacks the keys {missing} of a run result")
        if payload["format"] != FORMAT_VERSION or isinstance(payload["format"], bool):
            raise DamagedResult(f"{where} has format {payload['format']!r}; this synflow "
                                f"reads format {FORMAT_VERSION} only")
        wrong = [f"{key} (not {'an object' if kind is dict else 'a list'})"
                 for key, kind in cls.KINDS.items() if not isinstance(payload[key], kind)]
        if isinstance(payload["history"], list) and not all(
                isinstance(row, dict) for row in payload["history"]):
            wrong.append("history (not a list of objects)")
        if wrong:
            raise DamagedResult(f"{where} has the wrong kind of {', '.join(wrong)}")
        metrics = payload["metrics"]
        missing = sorted(cls.REQUIRED_METRICS - set(metrics))
        if missing:
            raise DamagedResult(f"{where} lacks the metrics {missing}")
        wrong = sorted(key for key in cls.REQUIRED_METRICS if isinstance(metrics[key], bool)
                       or not isinstance(metrics[key], (int, float)))
        if wrong:
            raise DamagedResult(f"{where} has metrics that are not numbers: "
                                f"{ {key: metrics[key] for key in wrong} }")
        stored = payload["config"]
        try:
            config = config_from_dict(stored, where=where)
        except (TypeError, ValueError) as error:
            raise DamagedResult(f"{where} holds no valid config: {error}") from error
        known = {f.name for f in fields(RunConfig)}
        return cls(config, payload["training"], metrics, payload["history"], payload["layers"],
                   payload["empty_layers"], payload["environment"], payload.get("cycles"),
                   payload.get("layer_history"),
                   {k: v for k, v in stored.items() if k not in known}, payload.get("key") or "")

    @classmethod
    def read(cls, path: str | os.PathLike) -> RunResult:
        """Read and check ``path``. Raises :class:`DamagedResult` naming the file when it
        is not a complete run result of this format (truncated, not JSON, keys missing),
        and FileNotFoundError when there is none."""
        try:
            with open(path, encoding="utf-8") as handle:
                payload = json.load(handle)
        except (ValueError, UnicodeDecodeError) as error:  # JSONDecodeError is a ValueError
            raise DamagedResult(f"{path} is damaged and cannot be read as a run: {error}") from error
        return cls.from_json(payload, where=str(path))
