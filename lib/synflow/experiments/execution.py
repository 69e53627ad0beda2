"""Executing one run: build, prune, train, measure -- resumable from a training checkpoint.

:func:`execute` turns a :class:`synflow.experiments.runconfig.RunConfig` into its
:class:`synflow.experiments.results.RunResult`, in steps that are each a small function:
:func:`_prune_to` (pruning at init, with the mask variants of the sanity checks,
:func:`_mask_variant`), :func:`_imp_cycles` (iterative magnitude pruning),
:func:`_record_layers` (Figure 5b's layer records) and :func:`_assemble` (the result).
With ``checkpoint=<path>`` it saves the training state there
atomically every ``checkpoint_every`` epochs (:func:`synflow.training.checkpoints.training_state`:
weights, masks, optimizer, scheduler, data order, RNG states) together with the
run's progress (IMP cycle, initial weights for rewinding, records so far); a run
started again with the same path continues from it and ends with the same
weights and metrics as an uninterrupted run (bit-identical on CPU). Storing the
result and claiming runs is :mod:`synflow.experiments.store`'s job.
"""

from __future__ import annotations

import functools
import os
import platform
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ..core.loop import prune
from ..core.masks import (
    apply_masks,
    compression_of,
    count_kept,
    current_masks,
    empty_layers,
    shuffle_masks,
)
from ..core.paths import paths_remain
from ..core.scorers import DATA_METHODS
from ..core.stack import outside_stacklevel
from ..data import batches as data_batches
from ..data import images as data_images
from ..models.inits import reinitialize_kept
from ..models.registry import build_model, model_init
from ..training import loop as training_loop
from ..training import precision as precisions
from ..training.checkpoints import load_checkpoint, save_checkpoint
from .results import RunResult
from .run_data import training_data
from .runconfig import RunConfig
from .weights import at_initial_values, layer_weight_statistics, rewind


@dataclass(frozen=True)
class _Setting:
    """What every step of one execution shares: the run, its dataset and where it runs."""

    config: RunConfig
    info: data_images.DatasetInfo
    device: torch.device
    root: object = None
    cache: object = None

    def build(self) -> torch.nn.Module:
        """The run's network at initialization (the same weights on every call)."""
        config, info = self.config, self.info
        return build_model(config.model, num_classes=info.num_classes,
                           input_shape=info.input_shape, width=config.width, seed=config.seed,
                           init=config.init).to(self.device)


def _one_thread_on_cpu(function):
    """Run ``function(config, device=...)`` with :data:`precisions.RUN_THREADS` CPU
    threads when the device is the CPU, so its numbers do not depend on the caller's."""
    @functools.wraps(function)
    def pinned(config, *, device=None, **kwargs):
        device = torch.device(device) if device is not None else training_loop.default_device()
        with precisions.cpu_threads(precisions.RUN_THREADS if device.type == "cpu" else None):
            return function(config, device=device, **kwargs)
    return pinned


@_one_thread_on_cpu
def execute(
    config: RunConfig, *, device=None, root=None, cache=None, checkpoint: Path | None = None,
    checkpoint_every: int = 1, on_checkpoint=None,
) -> RunResult:
    """Build, prune, train and measure one run; returns its result (nothing is stored).

    ``checkpoint``: a file for the training state (saved atomically every
    ``checkpoint_every`` epochs of every training, IMP cycles included; resumed
    from when it exists; left in place: the caller removes it once the result is
    stored). ``on_checkpoint()`` is called after each save (e.g. to check a claim).
    Raises ValueError if the checkpoint belongs to another config. On the CPU it runs
    with one thread (:data:`synflow.training.precision.RUN_THREADS`), whatever the
    caller's thread count: its numbers are those of any run of its config on a CPU of
    the same kind (run several side by side: ``store.sweep``'s workers).

    >>> execute(RunConfig("mlp", "leaves"), root="/no/data")  # a dataset that is not there
    Traceback (most recent call last):
    synflow.data.datasets.DatasetNotFoundError: unknown dataset 'leaves': not one of ...
    """
    wall_start = time.time()
    device = torch.device(device) if device is not None else training_loop.default_device()
    saved = load_checkpoint(checkpoint, config) if checkpoint is not None else None
    setting = _Setting(config, data_images.dataset_info(config.dataset, root=root, cache=cache),
                      device, root, cache)
    model = setting.build()
    training = config.training()
    data = training_data(config, training, setting.info, device, root, cache)
    # the run's progress besides the training state: stage 1..cycles are IMP's trainings,
    # stage cycles + 1 the final one
    progress = saved["progress"] if saved else {
        "cycles": [], "prune_seconds": None, "layer_history": [], "initial": None}
    resume_stage = saved["stage"] if saved else 0
    fit = _trainer(setting, training, data, saved, checkpoint, progress, on_checkpoint,
                  checkpoint_every)

    start = time.perf_counter()
    masks = None
    final_stage = config.cycles + 1
    if resume_stage == final_stage:
        pass  # pruned (and rewound) before the checkpoint: the state holds the masks
    elif config.pruned and config.cycles:
        masks = _imp_cycles(model, setting, fit, progress, resume_stage)
    elif config.pruned:
        model, masks = _mask_variant(_prune_to(model, setting, config.compression), model,
                                    setting)
    if progress["prune_seconds"] is None:
        progress["prune_seconds"] = time.perf_counter() - start
    progress["initial"] = None  # no longer needed by the final training's checkpoints

    on_epoch = None
    if config.record_layers:
        on_epoch = functools.partial(_record_layers, progress["layer_history"])
        if resume_stage != final_stage:
            on_epoch(0, model)
    metrics = fit(model, final_stage, config.name(), on_epoch=on_epoch)
    if masks is None:
        masks = current_masks(model)
    metrics["connected"] = paths_remain(model, masks, setting.info.input_shape)
    return _assemble(config, training, metrics, masks, progress, device=device,
                    wall_start=wall_start, resume_stage=resume_stage,
                    data=data_images.source_label(config.dataset, root))


def _trainer(setting: _Setting, training, data, saved: dict | None, checkpoint: Path | None,
            progress: dict, on_checkpoint, checkpoint_every: int) -> Callable:
    """``fit(model, stage, desc, on_epoch=None) -> metrics``: one training of the run,
    checkpointed with ``stage`` and ``progress`` (resumed from ``saved`` at its stage)."""
    config, resume_stage = setting.config, saved["stage"] if saved else 0

    def fit(model, stage, desc, on_epoch=None):
        def save(state):
            if checkpoint is not None:
                save_checkpoint(checkpoint, config, stage, state, progress)
                if on_checkpoint is not None:
                    on_checkpoint()

        resume = saved["train"] if stage == resume_stage else None
        return training_loop.train(
            model, data, training, device=setting.device, seed=config.seed, root=setting.root,
            cache=setting.cache, desc=desc, on_epoch=on_epoch, resume=resume,
            on_checkpoint=save, checkpoint_every=checkpoint_every,
        )

    return fit


def _prune_to(model: torch.nn.Module, setting: _Setting, compression: float) -> dict:
    """Prune ``model`` in place to ``compression`` with the run's pruner; returns the masks.

    At initialization pruning is deterministic in the fields remembered here: the masks
    of an earlier run of this process (e.g. the "as found" run of a "shuffled" one) are
    reused. IMP's cycles (``config.cycles``) prune trained weights and are never reused.
    """
    config, device = setting.config, setting.device
    remembered = (config.model, config.init, config.dataset, config.width, config.seed,
                  config.pruner, compression, config.iterations, config.schedule,
                  config.scope, config.invert, config.prune_per_class, config.bn_mode,
                  str(setting.root), os.environ.get("SYNFLOW_DATA"))
    if not config.cycles and remembered in _MASKS:
        kept, caught = _MASKS[remembered]
        _reissue(caught, config.name())
        masks = {name: mask.to(device) for name, mask in kept.items()}
        apply_masks(model, masks)
        return masks
    batches = None
    if config.pruner in DATA_METHODS:
        batches = data_batches.pruning_batches(
            config.dataset, root=setting.root, cache=setting.cache,
            per_class=config.prune_per_class, seed=config.seed, device=device,
        )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        masks = prune(
            model, config.pruner, compression, iterations=config.iterations,
            schedule=config.schedule, scope=config.scope, data=batches,
            input_shape=setting.info.input_shape, invert=config.invert, seed=config.seed,
            bn_mode=config.bn_mode,
        )
    if not config.cycles:
        _MASKS[remembered] = ({name: mask.cpu().clone() for name, mask in masks.items()},
                              caught)
        while len(_MASKS) > 16:
            _MASKS.pop(next(iter(_MASKS)))
    _reissue(caught, config.name())
    return masks


# masks of recent prunings at initialization in this process and their warnings (see
# _prune_to)
_MASKS: dict[tuple, tuple[dict, list]] = {}


def _reissue(caught: list, name: str) -> None:
    """Warn again each of ``caught`` (``warnings.WarningMessage``), the run's ``name`` after
    its message: a pruning warning (layer-collapse, uninformative scores) says which run of
    a sweep it is about, at the caller's line, as prune's own (also for remembered masks,
    caught by an earlier call); the user's filters by message start, category or module
    match it as they match prune's."""
    for warning in caught:
        warnings.warn(f"{warning.message} (run {name})", warning.category,
                      stacklevel=outside_stacklevel())


def _mask_variant(masks: dict, model: torch.nn.Module,
                  setting: _Setting) -> tuple[torch.nn.Module, dict]:
    """The sanity checks' variant of a mask found at init (``config.mask``): "shuffled"
    permutes each layer's mask on a fresh copy of the initial weights, "reinit" redraws
    the kept weights from the net's own init law; "as_found" keeps both. Returns the
    (model, masks) to train."""
    config = setting.config
    if config.mask == "shuffled":
        masks = shuffle_masks(masks, seed=config.seed)
        model = setting.build()  # the same initial weights, unmasked
        apply_masks(model, masks)
    elif config.mask == "reinit":
        init = model_init(config.model, config.init)  # redraw from the net's own law
        reinitialize_kept(model, seed=config.seed, init=init)
    return model, masks


def _imp_cycles(model: torch.nn.Module, setting: _Setting, fit: Callable, progress: dict,
               resume_stage: int) -> dict:
    """Iterative magnitude pruning: ``config.cycles`` times train, prune to density
    compression**(-j / cycles), rewind the kept weights to init (or not); each cycle's
    record goes to ``progress["cycles"]``. Continues after the stage of a resumed run;
    returns the last masks."""
    config = setting.config
    if progress["initial"] is None:
        progress["initial"] = {k: v.detach().clone() for k, v in model.state_dict().items()}
    initial, masks = progress["initial"], None
    for cycle in range(max(1, resume_stage), config.cycles + 1):
        metrics = fit(model, cycle, f"{config.name()} cycle {cycle}/{config.cycles}")
        before = current_masks(model)
        masks = _prune_to(model, setting, config.compression ** (cycle / config.cycles))
        if config.rewind:
            rewind(model, initial)
        progress["cycles"].append({
            "cycle": cycle,
            "best_top1": metrics["best_top1"],
            "final_top1": metrics["final_top1"],
            "compression": compression_of(masks),
            "kept": sum(k for k, _ in count_kept(masks).values()),
            # self-checks: the mask only shrank; where the kept weights stand
            "masks_only_shrank": all(bool((masks[n] <= before[n]).all()) for n in masks),
            "kept_at_initial_values": at_initial_values(model, initial),
        })
    return masks


def _record_layers(history: list, epoch: int, model: torch.nn.Module) -> None:
    """Append ``model``'s :func:`layer_weight_statistics` at ``epoch`` to ``history``."""
    history.extend({"epoch": epoch, **row} for row in layer_weight_statistics(model))


def _assemble(config: RunConfig, training, metrics: dict, masks: dict, progress: dict, *,
             device: torch.device, wall_start: float, resume_stage: int,
             data: str | None) -> RunResult:
    """The run's :class:`RunResult` from the final training's ``metrics``, the final
    ``masks`` and the ``progress`` (IMP cycles, layer records, pruning time);
    ``wall_start`` is the ``time.time()`` the execution (or its resume) began."""
    kept = count_kept(masks)
    history = metrics.pop("history")
    metrics.update(
        compression_actual=compression_of(masks),
        kept=sum(k for k, _ in kept.values()),
        prunable=sum(n for _, n in kept.values()),
        empty_layers=len(empty_layers(masks)),
        prune_seconds=progress["prune_seconds"],
    )
    return RunResult(
        config=config,
        training=asdict(training),
        metrics=metrics,
        history=history,
        layers=[{"layer": name, "kept": k, "total": n} for name, (k, n) in kept.items()],
        empty_layers=empty_layers(masks),
        environment={
            "device": str(device),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "host": platform.node(),
            # wall-clock seconds of this execution (since the resume when resumed)
            "duration": time.time() - wall_start,
            "resumed_from_stage": resume_stage or None,
            "data": data,  # the dataset's copy (data.images.source_label)
        },
        cycles=progress["cycles"] or None,
        layer_history=progress["layer_history"] if config.record_layers else None,
    )
