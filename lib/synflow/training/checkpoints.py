"""Training checkpoints: the complete state of a training, saved and restored exactly.

:func:`training_state` / :func:`restore_training_state` capture and restore what a
training needs to continue bit-identically (on CPU): weights, masks and buffers,
optimizer and scheduler, the data order and torch's RNG states.
:func:`save_checkpoint` / :func:`load_checkpoint` write such a state (plus a run's
progress) atomically and read it back, checked to belong to the run; a damaged one is
set aside (named in a warning) and the run starts again. Files are ``torch.save``
archives read with ``weights_only=True`` (no arbitrary pickles).
"""

from __future__ import annotations

import collections
import os
import pickle
import time
import warnings
import zipfile
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


# what a checkpoint holds (save_checkpoint), its training state (training_state) and the
# run's progress (synflow.experiments.execution)
CHECKPOINT_KEYS = frozenset({"format", "key", "stage", "train", "progress"})
TRAIN_KEYS = frozenset({"model", "optimizer", "scheduler", "data_epoch", "rng_cpu", "rng_cuda",
                        "history", "seconds"})
# what torch.load raises for a truncated or garbled open file (RuntimeError "failed finding
# central directory", OSError "Invalid argument" on a seek, UnpicklingError, ...), and a
# wrong structure when checked
UNREADABLE = (OSError, RuntimeError, EOFError, ValueError, TypeError, KeyError, AttributeError,
              IndexError, pickle.UnpicklingError, zipfile.BadZipFile)


class _DamagedCheckpoint(ValueError):
    """A training checkpoint that cannot be read or is not one of this format."""


def _read(handle) -> dict:
    # MultiStepLR keeps its milestones in a Counter
    with torch.serialization.safe_globals([collections.Counter]):
        saved = torch.load(handle, map_location="cpu", weights_only=True)
    if not (isinstance(saved, dict) and CHECKPOINT_KEYS <= set(saved)
            and isinstance(saved["train"], dict) and TRAIN_KEYS <= set(saved["train"])
            and isinstance(saved["progress"], dict)):
        raise _DamagedCheckpoint("not a training checkpoint: keys missing")
    if saved["format"] != CHECKPOINT_FORMAT:
        raise _DamagedCheckpoint(f"format {saved['format']!r}; this synflow resumes format "
                                f"{CHECKPOINT_FORMAT} only")
    return saved


def _set_aside(path: Path) -> Path:
    """Rename ``path`` to ``<name>.damaged-<time>-<pid>`` beside it (never deleted)."""
    target = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}")
    os.replace(path, target)
    return target


def load_checkpoint(path: Path, config) -> dict | None:
    """The checkpoint at ``path`` (None if there is none), checked to be ``config``'s.

    A damaged checkpoint (truncated, garbled, not a training checkpoint, another format
    version) is set aside (:func:`_set_aside`: renamed, never deleted) with a warning naming
    both paths, and None is returned: the run starts again from its beginning instead of
    failing on every retry. Raises ValueError naming the file when it is a valid
    checkpoint of another run (another config's key)."""
    path = Path(path)
    if not path.is_file():
        return None
    with open(path, "rb") as handle:  # a file that cannot be opened is not damaged: raised
        try:
            saved = _read(handle)
        except UNREADABLE as error:
            saved = None
            reason = f"{type(error).__name__}: {(str(error).strip().splitlines() or [''])[0]}"
    if saved is None:
        aside = _set_aside(path)
        warnings.warn(f"training checkpoint {path} is damaged ({reason}); moved it to {aside}; "
                      "the run starts again from its beginning", stacklevel=2)
        return None
    if saved["key"] != config.key():
        raise ValueError(
            f"checkpoint {path} is for run {saved['key']!r}, not {config.key()!r}; move it away "
            "to start afresh"
        )
    return saved
