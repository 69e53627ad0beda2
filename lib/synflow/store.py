"""A resumable store of runs: prune, train, record -- once per config.

A run is a frozen :class:`RunConfig`. Its results live in
``<results>/<experiment>/<readable name>-<short hash of the config>/run.json``
(``<results>`` is :func:`synflow.paths.results_dir`, $SYNFLOW_RESULTS), one
JSON file written atomically (temporary file, then rename), so a file that
exists is complete: a sweep killed half-way and started again redoes only the
runs without one. No pickles.

    config = RunConfig("vgg16_bn", "cifar10", pruner="synflow", compression=100, iterations=100)
    result = run_or_load(config, "fig6")        # runs once, then loads
    df = frame("fig6")                          # one row per stored run
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import platform
import re
import time
import warnings
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import pandas as pd
import torch

from . import baselines  # noqa: F401  (registers SCORERS["random_erk"])
from . import data as data_module
from . import train as train_module
from .data import progress
from .masks import (
    apply_masks,
    compression_of,
    count_kept,
    current_masks,
    effective_weight,
    empty_layers,
    prunable_layers,
    reinitialize_kept,
    shuffle_masks,
)
from .models import MODELS, build_model
from .pruning import SCHEDULES, SCOPES, prune
from .scores import DATA_METHODS, SCORERS

RESULT_FILE = "run.json"
FORMAT_VERSION = 1
DENSE = "dense"  # the pruner name of an unpruned run
MASK_VARIANTS = ("as_found", "shuffled", "reinit")
# Fields added after the first results were stored. At their defaults they are left
# out of a run's identity (its hash), so every earlier config keeps its key and its
# stored results; a stored config without them reads as having the defaults.
LATER_FIELDS = {
    "mask": "as_found",
    "cycles": 0,
    "rewind": True,
    "test_subset": None,
    "record_layers": False,
}


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines a run.

    ``pruner`` is a key of ``synflow.SCORERS`` or "dense" (no pruning; so is
    ``compression=1`` with any pruner, which skips pruning). ``subset`` trains on
    that many images per class (class-balanced), ``None`` on the full training
    set. ``prune_per_class`` is the SNIP/GraSP pruning data per class.
    ``preset`` names a ``synflow.train.PRESETS`` entry (``None``: the paper's
    for this model and dataset); ``epochs``, ``lr`` and ``batch_size`` override
    it when not ``None``. ``seed`` fixes the initial weights, the data order and
    augmentation, the subsets and the random scores.

    Later fields (defaults = pruning at initialization, as before):

    * ``mask``: "as_found" (the pruner's mask on the initial weights),
      "shuffled" (each layer's mask randomly permuted within the layer,
      :func:`synflow.masks.shuffle_masks`, on the same initial weights) or
      "reinit" (the mask as found, the kept weights redrawn,
      :func:`synflow.masks.reinitialize_kept`); both seeded by ``seed``. The
      sanity checks of Frankle et al. (ICLR 2021).
    * ``cycles``: 0 prunes at initialization; ``k >= 1`` is iterative
      magnitude pruning (IMP, with ``pruner="magnitude"``): ``k`` times train,
      then prune to density ``compression**(-j/k)`` (masks only shrink), then
      ``rewind`` (True: every parameter and buffer back to its initial value,
      masked; False: keep the trained values, what the authors' runs did);
      then the final training, whose accuracy is the run's.
    * ``test_subset``: evaluate on that many test images per class (drawn
      with seed 0, the same for every run) instead of the whole test set.
    * ``record_layers``: store every prunable layer's mean squared weight
      after pruning (epoch 0) and after each epoch of the (final) training.
    """

    model: str
    dataset: str
    pruner: str = DENSE
    compression: float = 1.0
    width: float = 1.0
    iterations: int = 1
    schedule: str = "exponential"
    scope: str = "global"
    invert: bool = False
    seed: int = 0
    subset: int | None = None
    prune_per_class: int = 10
    preset: str | None = None
    epochs: int | None = None
    lr: float | None = None
    batch_size: int | None = None
    mask: str = "as_found"
    cycles: int = 0
    rewind: bool = True
    test_subset: int | None = None
    record_layers: bool = False

    def __post_init__(self):
        def bad(name, allowed):
            return ValueError(f"{name} {getattr(self, name)!r} is not allowed; choose {allowed}")

        if self.model not in MODELS:
            raise bad("model", f"one of: {', '.join(sorted(MODELS))}")
        if self.pruner != DENSE and self.pruner not in SCORERS:
            raise bad("pruner", f"one of: {', '.join([DENSE, *SCORERS])}")
        if self.schedule not in SCHEDULES:
            raise bad("schedule", f"one of: {', '.join(SCHEDULES)}")
        if self.scope not in SCOPES:
            raise bad("scope", f"one of: {', '.join(SCOPES)}")
        if not (isinstance(self.iterations, int) and not isinstance(self.iterations, bool)
                and self.iterations >= 1):
            raise bad("iterations", "an integer >= 1 (not a bool: True is not 1)")
        if self.preset is not None and self.preset not in train_module.PRESETS:
            raise bad("preset", f"None or one of: {', '.join(train_module.PRESETS)}")
        if not isinstance(self.dataset, str) or not self.dataset:
            raise bad("dataset", f"a dataset name such as {', '.join(data_module.DATASETS)}")
        # one spelling per value, so equal configs hash alike (1 and 1.0)
        for name in ("compression", "width", "lr"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, float(value))
        if not (math.isfinite(self.compression) and self.compression >= 1):
            raise bad("compression", "a finite number >= 1")
        if not self.width > 0:
            raise bad("width", "a number > 0")
        if self.pruner == DENSE and self.compression != 1:
            raise ValueError(f"pruner 'dense' needs compression 1, got {self.compression!r}")
        if self.mask not in MASK_VARIANTS:
            raise bad("mask", f"one of: {', '.join(MASK_VARIANTS)}")
        if not (isinstance(self.cycles, int) and not isinstance(self.cycles, bool)
                and self.cycles >= 0):
            raise bad("cycles", "an integer >= 0 (0: prune at initialization)")
        if self.cycles and self.mask != "as_found":
            raise ValueError(f"mask {self.mask!r} is for pruning at initialization (cycles=0)")
        if self.test_subset is not None and not (
            isinstance(self.test_subset, int) and self.test_subset >= 1
        ):
            raise bad("test_subset", "None or an integer >= 1")

    @property
    def pruned(self) -> bool:
        return self.pruner != DENSE and self.compression > 1

    def identity(self) -> dict:
        """The fields that make the run's identity: every field, except the later
        fields (``LATER_FIELDS``) that are at their defaults."""
        return {
            name: value
            for name, value in asdict(self).items()
            if not (name in LATER_FIELDS and value == LATER_FIELDS[name]
                    and type(value) is type(LATER_FIELDS[name]))
        }

    def key(self) -> str:
        """A short hash of every field (the run's identity; later fields at their
        defaults are left out, so configs stored before they existed keep their key)."""
        text = json.dumps(self.identity(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:10]

    def name(self) -> str:
        """``<readable name>-<hash>``, the run's folder."""
        parts = [self.model, f"w{self.width:g}", self.dataset]
        parts += [self.pruner, f"c{self.compression:.4g}"] if self.pruned else [DENSE]
        if self.cycles:
            parts.append(f"imp{self.cycles}{'' if self.rewind else 'norewind'}")
        if self.mask != "as_found":
            parts.append(self.mask)
        parts.append(f"s{self.seed}")
        readable = "-".join(re.sub(r"[^A-Za-z0-9_.+=]+", "_", part) for part in parts)
        return f"{readable}-{self.key()}"

    def training(self) -> train_module.TrainConfig:
        """The training hyperparameters: the preset with this run's overrides."""
        return train_module.preset(
            self.model,
            self.dataset,
            name=self.preset,
            epochs=self.epochs,
            lr=self.lr,
            batch_size=self.batch_size,
            subset=self.subset,
        )


def config_from_dict(stored: dict, where: str = "a stored config") -> RunConfig:
    """A RunConfig from its JSON dict. Unknown keys are reported with a warning
    (they are kept by :func:`frame` as columns, not silently dropped)."""
    known = {f.name for f in fields(RunConfig)}
    unknown = sorted(set(stored) - known)
    if unknown:
        warnings.warn(
            f"{where} has keys that RunConfig does not know: {unknown}; "
            f"they are ignored for the run's identity (known keys: {sorted(known)})",
            stacklevel=2,
        )
    return RunConfig(**{k: v for k, v in stored.items() if k in known})


# ----------------------------------------------------------------- the files


def _results(results) -> Path:
    from .paths import results_dir

    return Path(results).expanduser().resolve() if results is not None else results_dir()


def _check_experiment(experiment: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.+=-]*", experiment or ""):
        raise ValueError(
            f"experiment {experiment!r} must be a plain folder name (letters, digits, _ . + = -)"
        )
    return experiment


def run_dir(config: RunConfig, experiment: str, results=None) -> Path:
    """The folder of ``config``'s results in ``experiment``."""
    return _results(results) / _check_experiment(experiment) / config.name()


def write_json(path: Path, payload) -> None:
    """Write ``payload`` as JSON atomically: a temporary file in the same folder,
    flushed to disk, then renamed over ``path`` (readers see all or nothing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "w") as handle:
            json.dump(payload, handle, indent=1, allow_nan=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def load_result(path: Path) -> dict:
    """Read a ``run.json``, reporting unknown config keys."""
    with open(path) as handle:
        result = json.load(handle)
    config_from_dict(result["config"], where=str(path))
    return result


# ------------------------------------------------------------------ running


def execute(config: RunConfig, *, device=None, root=None, cache=None) -> dict:
    """Build, prune, train and measure one run (nothing is stored)."""
    device = torch.device(device) if device is not None else train_module.default_device()
    info = data_module.dataset_info(config.dataset, root=root, cache=cache)

    def build():
        return build_model(
            config.model,
            num_classes=info.num_classes,
            input_shape=info.input_shape,
            width=config.width,
            seed=config.seed,
        ).to(device)

    model = build()
    training = config.training()
    data = _training_data(config, training, info, device, root, cache)

    def prune_to(compression):
        # pruning at init is deterministic in these fields: the masks of an earlier run of
        # this process (e.g. the "as_found" run of a "shuffled" one) are reused
        remembered = (config.model, config.dataset, config.width, config.seed, config.pruner,
                      compression, config.iterations, config.schedule, config.scope,
                      config.invert, config.prune_per_class, str(root),
                      os.environ.get("SYNFLOW_DATA"))
        if not config.cycles and remembered in _MASKS:
            masks = {name: mask.to(device) for name, mask in _MASKS[remembered].items()}
            apply_masks(model, masks)
            return masks
        batches = None
        if config.pruner in DATA_METHODS:
            batches = data_module.pruning_batches(
                config.dataset,
                root=root,
                cache=cache,
                per_class=config.prune_per_class,
                seed=config.seed,
                device=device,
            )
        masks = prune(
            model,
            config.pruner,
            compression,
            iterations=config.iterations,
            schedule=config.schedule,
            scope=config.scope,
            data=batches,
            input_shape=info.input_shape,
            invert=config.invert,
            seed=config.seed,
        )
        if not config.cycles:
            _MASKS[remembered] = {name: mask.cpu().clone() for name, mask in masks.items()}
            while len(_MASKS) > 16:
                _MASKS.pop(next(iter(_MASKS)))
        return masks

    def fit(desc, on_epoch=None):
        return train_module.train(
            model, data, training, device=device, seed=config.seed, root=root, cache=cache,
            desc=desc, on_epoch=on_epoch,
        )

    start = time.perf_counter()
    masks = None
    cycles = []
    if config.pruned and config.cycles:
        # iterative magnitude pruning: train, prune, rewind (or not), ... then train again
        initial = {k: v.detach().clone() for k, v in model.state_dict().items()}
        for cycle in range(1, config.cycles + 1):
            metrics = fit(f"{config.name()} cycle {cycle}/{config.cycles}")
            before = current_masks(model)
            masks = prune_to(config.compression ** (cycle / config.cycles))
            if config.rewind:
                rewind(model, initial)
            cycles.append(
                {
                    "cycle": cycle,
                    "best_top1": metrics["best_top1"],
                    "final_top1": metrics["final_top1"],
                    "compression": compression_of(masks),
                    "kept": sum(k for k, _ in count_kept(masks).values()),
                    # self-checks: the mask only shrank; where the kept weights stand
                    "masks_only_shrank": all(
                        bool((masks[n] <= before[n]).all()) for n in masks
                    ),
                    "kept_at_initial_values": _at_initial_values(model, initial),
                }
            )
    elif config.pruned:
        masks = prune_to(config.compression)
        if config.mask == "shuffled":
            masks = shuffle_masks(masks, seed=config.seed)
            model = build()  # the same initial weights, unmasked
            apply_masks(model, masks)
        elif config.mask == "reinit":
            reinitialize_kept(model, seed=config.seed)
    prune_seconds = time.perf_counter() - start
    layer_history = []

    def record(epoch, trained):
        layer_history.extend(
            {"epoch": epoch, **row} for row in layer_weight_statistics(trained)
        )

    if config.record_layers:
        record(0, model)
    metrics = fit(config.name(), on_epoch=record if config.record_layers else None)
    if masks is None:
        masks = current_masks(model)
    kept = count_kept(masks)
    history = metrics.pop("history")
    metrics.update(
        compression_actual=compression_of(masks),
        kept=sum(k for k, _ in kept.values()),
        prunable=sum(n for _, n in kept.values()),
        empty_layers=len(empty_layers(masks)),
        prune_seconds=prune_seconds,
    )
    result = {
        "format": FORMAT_VERSION,
        "config": asdict(config),
        "key": config.key(),
        "training": asdict(training),
        "metrics": metrics,
        "history": history,
        "layers": [{"layer": name, "kept": k, "total": n} for name, (k, n) in kept.items()],
        "empty_layers": empty_layers(masks),
        "environment": {
            "device": str(device),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
    }
    if cycles:
        result["cycles"] = cycles
    if config.record_layers:
        result["layer_history"] = layer_history
    return result


# masks of recent prunings at initialization in this process (see execute's prune_to)
_MASKS: dict[tuple, dict] = {}


def _training_data(config, training, info, device, root, cache):
    """What ``train`` gets: the dataset name (as before), or with ``test_subset`` a
    ``(train, test)`` pair whose test batches hold that many images per class (drawn
    with seed 0). The decoded subsets are kept in memory for the next run of the
    process (:func:`_subset_images`)."""
    if config.test_subset is None:
        return config.dataset
    memory_format = torch.channels_last if device.type == "cuda" else torch.contiguous_format
    key = (config.dataset, str(root), str(cache))
    train_images = _subset_images(*key, "train", training.subset, config.seed)
    test_images = _subset_images(*key, "test", config.test_subset, 0)
    train_batches = data_module.Batches(
        train_images, info, batch_size=training.batch_size, shuffle=True, seed=config.seed,
        augment=info.augment, device=device, memory_format=memory_format,
    )
    test_batches = data_module.Batches(
        test_images, info, batch_size=1000, device=device, memory_format=memory_format
    )
    return train_batches, test_batches


@functools.lru_cache(maxsize=8)
def _subset_images(dataset, root, cache, split, per_class, seed):
    """``data.load`` of a split (class-balanced subset), remembered per process."""
    return data_module.load(
        dataset, split, root=None if root == "None" else root,
        cache=None if cache == "None" else cache, per_class=per_class, seed=seed,
    )


def rewind(model: torch.nn.Module, initial: dict) -> None:
    """Set every parameter and buffer of ``model`` back to ``initial`` (a state dict of
    the unmasked model at initialization), keeping the current masks: a masked
    layer's ``weight_orig`` gets the initial weight times its mask."""
    layers = prunable_layers(model)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name.endswith("weight_mask"):
                continue
            source = initial[name.removesuffix("_orig")] if name.endswith("weight_orig") else (
                initial[name])
            tensor.copy_(source)
        masks = current_masks(model)
    apply_masks(model, {name: masks[name] for name in layers})


def _at_initial_values(model: torch.nn.Module, initial: dict) -> bool:
    """Whether every kept weight of ``model`` equals its value in ``initial``."""
    for name, module in prunable_layers(model).items():
        mask = current_masks_of(module).bool()
        if not torch.equal(effective_weight(module)[mask], initial[name].to(mask.device)[mask]):
            return False
    return True


def layer_weight_statistics(model: torch.nn.Module) -> list[dict]:
    """Per prunable layer: ``size`` (all weights), ``kept`` (unpruned), ``mean_sq`` (mean
    squared effective weight over the kept weights) and ``total_sq`` (their sum), in
    float64 -- the quantities of the paper's Figure 5b."""
    rows = []
    for name, module in prunable_layers(model).items():
        weight = effective_weight(module).double()
        kept = int(torch.count_nonzero(current_masks_of(module)))
        total = float(weight.pow(2).sum())
        rows.append(
            {"layer": name, "size": weight.numel(), "kept": kept, "total_sq": total,
             "mean_sq": total / max(kept, 1)}
        )
    return rows


def current_masks_of(module: torch.nn.Module) -> torch.Tensor:
    mask = getattr(module, "weight_mask", None)
    return mask if mask is not None else torch.ones_like(module.weight, dtype=torch.bool)


def run_or_load(
    config: RunConfig, experiment: str, *, device=None, root=None, cache=None, results=None
) -> dict:
    """The stored result of ``config`` in ``experiment``, or run it and store it.

    The result holds ``config``, ``training`` (the hyperparameters used),
    ``metrics`` (``best_top1``/``best_top5``: the epoch with the highest top-1,
    the paper's number; ``final_top1``/``final_top5``: after the last epoch;
    ``compression_actual``, ``kept``, ``empty_layers`` count, times),
    ``history`` (per epoch), ``layers`` (kept/total per prunable layer) and
    ``empty_layers`` (names).
    """
    path = run_dir(config, experiment, results) / RESULT_FILE
    if path.is_file():
        stored = load_result(path)
        if {**LATER_FIELDS, **stored["config"]} == asdict(config):
            return stored
        warnings.warn(f"{path} holds a different config; running again", stacklevel=2)
    result = execute(config, device=device, root=root, cache=cache)
    write_json(path, result)
    return result


PROGRESS_LOG_VARIABLE = "SYNFLOW_PROGRESS_LOG"


def sweep(configs, experiment: str, **kwargs) -> list[dict]:
    """``run_or_load`` every config in turn, with a progress bar; stored runs are
    loaded, so an interrupted sweep restarts where it stopped.

    When $SYNFLOW_PROGRESS_LOG names a file, one line per run is appended to it
    (``tools/run_notebooks.py`` prints these while a notebook runs headless).
    """
    configs = list(configs)
    log = os.environ.get(PROGRESS_LOG_VARIABLE)
    results = []
    for number, config in enumerate(progress(configs, desc=experiment, unit="run"), start=1):
        start = time.perf_counter()
        results.append(run_or_load(config, experiment, **kwargs))
        if log:
            seconds = time.perf_counter() - start
            with open(log, "a", encoding="utf-8") as file:
                file.write(f"{experiment}: run {number}/{len(configs)} {config.name()} "
                           f"({seconds:.1f} s)\n")
    return results


def frame(experiment: str, *, results=None, history: bool = False) -> pd.DataFrame:
    """All stored runs of ``experiment`` as one DataFrame, ready for seaborn.

    One row per run: the config fields, the ``metrics`` (``best_top1`` is the
    best-epoch, ``final_top1`` the final-epoch accuracy), ``key`` and ``path``.
    With ``history=True``, one row per (run, epoch) instead, with the epoch's
    ``train_loss``, ``test_loss``, ``top1``, ``top5``. Config keys unknown to
    RunConfig are reported and kept as columns.
    """
    folder = _results(results) / _check_experiment(experiment)
    if not folder.is_dir():
        root = _results(results)
        known = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
        raise FileNotFoundError(
            f"no experiment {experiment!r} in {root}; stored experiments: {known or 'none'}"
        )
    rows = []
    for path in sorted(folder.glob(f"*/{RESULT_FILE}")):
        result = load_result(path)
        base = {**result["config"], "key": result.get("key"), "path": str(path.parent)}
        if history:
            rows += [{**base, **epoch} for epoch in result["history"]]
        else:
            rows.append({**base, **result["metrics"]})
    columns = [f.name for f in fields(RunConfig)]
    table = pd.DataFrame(rows)
    if table.empty:
        return pd.DataFrame(columns=columns)
    return table
