"""Training as in the paper: SGD with Nesterov momentum, MultiStepLR, weight decay.

:func:`train` trains a (possibly pruned) model
and returns its per-epoch history plus two summary accuracies:

* ``final_top1`` / ``final_top5``: test accuracy after the last epoch;
* ``best_top1`` / ``best_top5``: test accuracy of the epoch with the highest
  top-1 (``best_epoch``) -- the number the paper's figures plot.

Pruned weights stay exactly zero: a masked layer's weight is
``weight_orig * weight_mask`` inside the graph, so a pruned entry of
``weight_orig`` gets a zero gradient, zero weight decay and zero momentum.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from ..core.saving import load_pruned_state_dict
from ..data import batches as data_batches
from ..utils.progress import progress
from .checkpoints import restore_training_state, training_state
from .precision import autocast, resolve
from .precision import memory_format as memory_format_of
from .presets import TrainConfig


def optimizer_for(model: nn.Module, config: TrainConfig):
    """SGD (Nesterov) over every parameter exactly once, and its MultiStepLR.

    >>> from synflow.models import build_model
    >>> from synflow.training.presets import preset
    >>> model = build_model("mlp", input_shape=(1, 8, 8), width=0.1, seed=0)
    >>> optimizer, scheduler = optimizer_for(model, preset("vgg16", "cifar10", epochs=10))
    >>> type(optimizer).__name__, optimizer.defaults["nesterov"], scheduler.milestones
    ('SGD', True, Counter({4: 1, 8: 1}))
    """
    parameters = list(dict.fromkeys(p for p in model.parameters() if p.requires_grad))
    optimizer = torch.optim.SGD(
        parameters,
        lr=config.lr,
        momentum=config.momentum,
        nesterov=config.nesterov,
        weight_decay=config.weight_decay,
    )
    scheduler = torch.optim.lr_scheduler.MultiStepLR(
        optimizer, milestones=list(config.milestones), gamma=config.gamma
    )
    return optimizer, scheduler


def train_epoch(model, batches: Iterable, optimizer, device: torch.device,
                precision: str = "float32") -> float:
    """One pass over ``batches`` in ``precision`` (:mod:`synflow.training.precision`;
    the loss in float32); returns the mean training loss. No host sync per step.

    >>> import torch
    >>> from synflow.models import build_model
    >>> from synflow.training.presets import preset
    >>> model = build_model("mlp", input_shape=(1, 8, 8), width=0.1, seed=0)
    >>> optimizer, _ = optimizer_for(model, preset("mlp", "mnist"))
    >>> batches = [(torch.randn(4, 1, 8, 8), torch.tensor([0, 1, 2, 3]))]
    >>> loss = train_epoch(model, batches, optimizer, torch.device("cpu"))
    >>> type(loss).__name__, loss > 0
    ('float', True)
    """
    model.train()
    total = torch.zeros((), device=device)
    count = 0
    for inputs, targets in batches:
        inputs = inputs.to(device, non_blocking=True)
        targets = targets.to(device, non_blocking=True)
        with autocast(precision, device):
            logits = model(inputs)
        loss = F.cross_entropy(logits.float(), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.detach().float() * len(targets)  # no device sync per step
        count += len(targets)
    return float(total) / max(count, 1)


@torch.no_grad()
def evaluate(model, batches: Iterable, device: torch.device,
             precision: str = "float32") -> dict[str, float]:
    """Test loss, top-1 and top-5 accuracy (in %) of ``model`` on ``batches``, its forward
    pass in ``precision`` (the loss and accuracy in float32/float64).

    >>> import torch
    >>> from synflow.models import build_model
    >>> model = build_model("mlp", input_shape=(1, 8, 8), width=0.1, seed=0)
    >>> metrics = evaluate(model, [(torch.randn(4, 1, 8, 8), torch.tensor([0, 1, 2, 3]))], "cpu")
    >>> sorted(metrics), 0 <= metrics["top1"] <= metrics["top5"] <= 100
    (['test_loss', 'top1', 'top5'], True)
    >>> evaluate(model, [], "cpu")
    Traceback (most recent call last):
        ...
    ValueError: the test batches are empty
    """
    model.eval()
    loss = torch.zeros((), device=device, dtype=torch.float64)
    correct = torch.zeros(2, device=device, dtype=torch.int64)
    count = 0
    for inputs, targets in batches:
        inputs = inputs.to(device, non_blocking=True)
        targets = targets.to(device, non_blocking=True)
        with autocast(precision, device):
            logits = model(inputs)
        logits = logits.float()
        loss += F.cross_entropy(logits, targets, reduction="sum")
        top = logits.topk(min(5, logits.shape[1]), dim=1).indices
        hits = top == targets[:, None]
        correct[0] += hits[:, 0].sum()
        correct[1] += hits.any(dim=1).sum()
        count += len(targets)
    if count == 0:
        raise ValueError("the test batches are empty")
    top1, top5 = (100.0 * correct.double() / count).tolist()
    return {"test_loss": float(loss) / count, "top1": top1, "top5": top5}


def default_device() -> torch.device:
    """CUDA when available, else the CPU (the device training and scoring use by default).

    >>> default_device().type in ("cuda", "cpu")
    True
    """
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def train(
    model: nn.Module,
    data: str | tuple[Iterable, Iterable],
    config: TrainConfig,
    *,
    device: str | torch.device | None = None,
    seed: int = 0,
    root=None,
    cache=None,
    desc: str = "training",
    on_epoch: Callable[[int, nn.Module], None] | None = None,
    resume: dict | None = None,
    on_checkpoint: Callable[[dict], None] | None = None,
    checkpoint_every: int = 1,
    compile: bool = False,
) -> dict:
    """Train ``model`` in place and return its metrics.

    Args:
        data: a dataset name (see ``synflow.data``; batches are then built on
            ``device`` with the config's batch size and subset, shuffled and
            augmented by ``seed``) or a ``(train, test)`` pair of iterables of
            ``(inputs, targets)``.
        device: default CUDA when available, else CPU. The data (uint8) stays on the
            device; batches are shuffled, augmented and normalised there.
            ``config.precision`` says how the model runs (:mod:`synflow.training.precision`:
            "float32" NCHW, or "bfloat16" autocast and channels-last; "auto" is
            resolved for ``device``).
        root, cache: the data root and image cache (see ``synflow.data.load``).
        on_epoch: if given, called as ``on_epoch(epoch, model)`` after every
            epoch's evaluation (e.g. to record weight statistics); it must not
            change the model.
        resume: a state from ``on_checkpoint`` (:func:`training_state`):
            training continues after its epoch with its weights, masks,
            optimizer, scheduler, data order and RNG states, and ends with the
            same weights and metrics as an uninterrupted run (bit-identical on CPU).
        on_checkpoint: called as ``on_checkpoint(state)`` after every
            ``checkpoint_every``-th epoch but the last (e.g. to save it).
        compile: run the model through ``torch.compile`` (an option for long GPU
            runs: the first epoch pays the compilation; numerics differ slightly from
            eager mode, so stored runs never use it).

    Returns a dict with ``history`` (one dict per epoch: epoch, lr, train_loss,
    test_loss, top1, top5, seconds) and the summaries ``final_top1``,
    ``final_top5``, ``final_test_loss`` (last epoch), ``best_top1``,
    ``best_top5``, ``best_epoch`` (the epoch with the highest top-1, the
    paper's reported number; ties go to the earliest), and ``seconds``.
    Accuracies are in percent.

    >>> import torch
    >>> from synflow.models import build_model
    >>> from synflow.training.presets import preset
    >>> model = build_model("mlp", input_shape=(1, 8, 8), width=0.1, seed=0)
    >>> generator = torch.Generator().manual_seed(0)
    >>> batches = [(torch.randn(8, 1, 8, 8, generator=generator), torch.arange(8) % 10)]
    >>> config = preset("mlp", "mnist", epochs=2, precision="float32")
    >>> metrics = train(model, (batches, batches), config, device="cpu")
    >>> [row["epoch"] for row in metrics["history"]], metrics["best_epoch"] in (1, 2)
    ([1, 2], True)
    """
    device = torch.device(device) if device is not None else default_device()
    precision = resolve(config.precision, device)
    memory_format = memory_format_of(precision)
    if isinstance(data, str):
        train_batches, test_batches = data_batches.loaders(
            data,
            root=root,
            cache=cache,
            batch_size=config.batch_size,
            train_per_class=config.subset,
            seed=seed,
            device=device,
            memory_format=memory_format,
        )
    else:
        train_batches, test_batches = data
    if resume is not None:  # masks first: they change the model's parameters
        load_pruned_state_dict(model, resume["model"])
    model.to(device=device, memory_format=memory_format)
    optimizer, scheduler = optimizer_for(model, config)
    if not (isinstance(checkpoint_every, int) and checkpoint_every >= 1):
        raise ValueError(f"checkpoint_every must be an integer >= 1, got {checkpoint_every!r}")
    history, done_seconds = [], 0.0
    if resume is not None:
        history, done_seconds = list(resume["history"]), resume["seconds"]
        restore_training_state(resume, model, optimizer, scheduler, train_batches)
    step_model = torch.compile(model) if compile else model
    start = time.perf_counter()
    cudnn = torch.backends.cudnn.flags(enabled=True, benchmark=True, deterministic=False)
    with cudnn:
        bar = progress(range(len(history) + 1, config.epochs + 1), desc=desc, unit="epoch")
        for epoch in bar:
            epoch_start = time.perf_counter()
            lr = optimizer.param_groups[0]["lr"]
            train_loss = train_epoch(step_model, train_batches, optimizer, device, precision)
            scheduler.step()
            row = {"epoch": epoch, "lr": lr, "train_loss": train_loss}
            row.update(evaluate(step_model, test_batches, device, precision))
            row["seconds"] = time.perf_counter() - epoch_start
            history.append(row)
            if on_epoch is not None:
                on_epoch(epoch, model)
            if on_checkpoint is not None and epoch % checkpoint_every == 0 and (
                    epoch < config.epochs):
                on_checkpoint(training_state(
                    model, optimizer, scheduler, train_batches, history,
                    done_seconds + time.perf_counter() - start))
            bar.set_postfix(loss=f"{train_loss:.3f}", top1=f"{row['top1']:.2f}")
    best = max(history, key=lambda row: (row["top1"], -row["epoch"]))
    final = history[-1]
    return {
        "history": history,
        "final_top1": final["top1"],
        "final_top5": final["top5"],
        "final_test_loss": final["test_loss"],
        "best_top1": best["top1"],
        "best_top5": best["top5"],
        "best_epoch": best["epoch"],
        "seconds": done_seconds + time.perf_counter() - start,
    }
