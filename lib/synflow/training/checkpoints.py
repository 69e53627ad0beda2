"""Training checkpoints: the complete state of a training, saved and restored exactly.

:func:`training_state` / :func:`restore_training_state` capture and restore what a
training needs to continue bit-identically (on CPU): weights, masks and buffers,
optimizer and scheduler, the data order and torch's RNG states.
:func:`save_checkpoint` / :func:`load_checkpoint` write such a state (plus a run's
progress) atomically and read it back, checked to belong to the run. Files are
``torch.save`` archives read with ``weights_only=True`` (no arbitrary pickles).
"""

from __future__ import annotations

import collections
from pathlib import Path

import torch

from ..core.files import atomic_write
from ..core.saving import load_pruned_state_dict

CHECKPOINT_FORMAT = 1


def training_state(model, optimizer, scheduler, train_batches, history, seconds) -> dict:
    """Everything a training needs to continue exactly: the model's state dict
    (weights, masks, buffers), optimizer and scheduler states, the data order
    (the training batches' epoch counter), torch's CPU and CUDA RNG states, the
    history so far and the seconds spent. Tensors are cloned to the CPU."""
    return {
        "model": {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "data_epoch": getattr(train_batches, "epoch", None),
        "rng_cpu": torch.get_rng_state(),
        "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "history": [dict(row) for row in history],
        "seconds": float(seconds),
    }


def restore_training_state(state, model, optimizer, scheduler, train_batches) -> None:
    """Put ``state`` (:func:`training_state`) back into a model with the same layers
    (masked where the state has masks), its optimizer, scheduler and batches."""
    load_pruned_state_dict(model, state["model"])  # already masked alike: a copy
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    if state["data_epoch"] is not None:
        train_batches.epoch = state["data_epoch"]
    torch.set_rng_state(state["rng_cpu"])
    if state["rng_cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["rng_cuda"])


def save_checkpoint(path: Path, config, stage: int, train_state: dict,
                    progress: dict) -> None:
    """Write the checkpoint atomically (temporary file in the same folder, fsync, rename)."""
    payload = {"format": CHECKPOINT_FORMAT, "key": config.key(), "stage": stage,
               "train": train_state, "progress": progress}
    atomic_write(path, lambda file: torch.save(payload, file))


def load_checkpoint(path: Path, config) -> dict | None:
    """The checkpoint at ``path`` (None if there is none), checked to be ``config``'s."""
    path = Path(path)
    if not path.is_file():
        return None
    # MultiStepLR keeps its milestones in a Counter
    with torch.serialization.safe_globals([collections.Counter]):
        saved = torch.load(path, map_location="cpu", weights_only=True)
    if saved.get("key") != config.key() or saved.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(
            f"checkpoint {path} is for run {saved.get('key')!r} (format {saved.get('format')}), "
            f"not {config.key()!r} (format {CHECKPOINT_FORMAT}); move it away to start afresh"
        )
    return saved
