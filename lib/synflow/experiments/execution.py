"""Executing one run: build, prune, train, measure -- resumable from a training checkpoint.

:func:`execute` turns a :class:`synflow.experiments.runconfig.RunConfig` into its
:class:`synflow.experiments.results.RunResult`
(pruning at initialization, IMP cycles, the mask variants of the sanity checks,
layer records). With ``checkpoint=<path>`` it saves the training state there
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
from dataclasses import asdict
from pathlib import Path

import torch

from ..core.loop import prune
from ..core.masks import (
    apply_masks,
    compression_of,
    count_kept,
    current_masks,
    effective_weight,
    empty_layers,
    prunable_layers,
    shuffle_masks,
)
from ..core.scorers import DATA_METHODS
from ..data import batches as data_batches
from ..data import images as data_images
from ..models.inits import reinitialize_kept
from ..models.registry import build_model, model_init
from ..training import loop as training_loop
from ..training import precision as precisions
from ..training.checkpoints import load_checkpoint, save_checkpoint
from .results import RunResult
from .runconfig import RunConfig


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
    """
    wall_start = time.time()
    device = torch.device(device) if device is not None else training_loop.default_device()
    saved = load_checkpoint(checkpoint, config) if checkpoint is not None else None
    info = data_images.dataset_info(config.dataset, root=root, cache=cache)

    def build():
        return build_model(
            config.model,
            num_classes=info.num_classes,
            input_shape=info.input_shape,
            width=config.width,
            seed=config.seed,
            init=config.init,
        ).to(device)

    model = build()
    training = config.training()
    data = _training_data(config, training, info, device, root, cache)

    def prune_to(compression):
        # pruning at init is deterministic in these fields: the masks of an earlier run of
        # this process (e.g. the "as_found" run of a "shuffled" one) are reused
        remembered = (config.model, config.init, config.dataset, config.width, config.seed,
                      config.pruner, compression, config.iterations, config.schedule,
                      config.scope, config.invert, config.prune_per_class, config.bn_mode,
                      str(root), os.environ.get("SYNFLOW_DATA"))
        if not config.cycles and remembered in _MASKS:
            masks = {name: mask.to(device) for name, mask in _MASKS[remembered].items()}
            apply_masks(model, masks)
            return masks
        batches = None
        if config.pruner in DATA_METHODS:
            batches = data_batches.pruning_batches(
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
            bn_mode=config.bn_mode,
        )
        if not config.cycles:
            _MASKS[remembered] = {name: mask.cpu().clone() for name, mask in masks.items()}
            while len(_MASKS) > 16:
                _MASKS.pop(next(iter(_MASKS)))
        return masks

    # the run's progress besides the training state: stage 1..cycles are IMP's trainings,
    # stage cycles + 1 the final one
    progress = saved["progress"] if saved else {
        "cycles": [], "prune_seconds": None, "layer_history": [], "initial": None}
    resume_stage = saved["stage"] if saved else 0

    def fit(stage, desc, on_epoch=None):
        def save(state):
            if checkpoint is not None:
                save_checkpoint(checkpoint, config, stage, state, progress)
                if on_checkpoint is not None:
                    on_checkpoint()

        resume = saved["train"] if stage == resume_stage else None
        return training_loop.train(
            model, data, training, device=device, seed=config.seed, root=root, cache=cache,
            desc=desc, on_epoch=on_epoch, resume=resume, on_checkpoint=save,
            checkpoint_every=checkpoint_every,
        )

    start = time.perf_counter()
    masks = None
    cycles = progress["cycles"]
    final_stage = config.cycles + 1
    if resume_stage == final_stage:
        pass  # pruned (and rewound) before the checkpoint: the state holds the masks
    elif config.pruned and config.cycles:
        # iterative magnitude pruning: train, prune, rewind (or not), ... then train again
        if progress["initial"] is None:
            progress["initial"] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        initial = progress["initial"]
        for cycle in range(max(1, resume_stage), config.cycles + 1):
            metrics = fit(cycle, f"{config.name()} cycle {cycle}/{config.cycles}")
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
            init = model_init(config.model, config.init)  # redraw from the net's own law
            reinitialize_kept(model, seed=config.seed, init=init)
    if progress["prune_seconds"] is None:
        progress["prune_seconds"] = time.perf_counter() - start
    prune_seconds = progress["prune_seconds"]
    progress["initial"] = None  # no longer needed by the final training's checkpoints
    layer_history = progress["layer_history"]

    def record(epoch, trained):
        layer_history.extend(
            {"epoch": epoch, **row} for row in layer_weight_statistics(trained)
        )

    if config.record_layers and resume_stage != final_stage:
        record(0, model)
    metrics = fit(final_stage, config.name(), on_epoch=record if config.record_layers else None)
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
        },
        cycles=cycles or None,
        layer_history=layer_history if config.record_layers else None,
    )


# masks of recent prunings at initialization in this process (see execute's prune_to)
_MASKS: dict[tuple, dict] = {}


def _training_data(config, training, info, device, root, cache):
    """What ``train`` gets: the dataset name (as before), or with ``test_subset`` a
    ``(train, test)`` pair whose test batches hold that many images per class (drawn
    with seed 0). The decoded subsets are kept in memory for the next run of the
    process (:func:`_subset_images`)."""
    if config.test_subset is None:
        return config.dataset
    memory_format = precisions.memory_format(training.precision)
    key = (config.dataset, str(root), str(cache))
    train_images = _subset_images(*key, "train", training.subset, config.seed)
    test_images = _subset_images(*key, "test", config.test_subset, 0)
    train_batches = data_batches.Batches(
        train_images, info, batch_size=training.batch_size, shuffle=True, seed=config.seed,
        augment=info.augment, device=device, memory_format=memory_format,
    )
    test_batches = data_batches.Batches(
        test_images, info, batch_size=1000, device=device, memory_format=memory_format
    )
    return train_batches, test_batches


@functools.lru_cache(maxsize=8)
def _subset_images(dataset, root, cache, split, per_class, seed):
    """``data.load`` of a split (class-balanced subset), remembered per process."""
    return data_images.load(
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
