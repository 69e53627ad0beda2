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
import copy
import os
import pickle
import time
import warnings
import zipfile
from pathlib import Path

import torch

from ..core.files import atomic_write
from ..core.saving import load_pruned_state_dict
from ..core.stack import outside_stacklevel

CHECKPOINT_FORMAT = 1


def training_state(model, optimizer, scheduler, train_batches, history, seconds) -> dict:
    """Everything a training needs to continue exactly: the model's state dict
    (weights, masks, buffers), optimizer and scheduler states, the data order
    (the training batches' epoch counter), torch's CPU and CUDA RNG states, the
    history so far and the seconds spent. Tensors are cloned to the CPU.

    >>> import torch
    >>> from synflow.models import build_model
    >>> from synflow.training.loop import optimizer_for
    >>> from synflow.training.presets import preset
    >>> model = build_model("mlp", input_shape=(1, 8, 8), width=0.1, seed=0)
    >>> optimizer, scheduler = optimizer_for(model, preset("mlp", "mnist"))
    >>> state = training_state(model, optimizer, scheduler, None, [{"epoch": 1}], 2.5)
    >>> sorted(state), state["seconds"]
    (['data_epoch', 'history', 'model', 'optimizer', 'rng_cpu', 'rng_cuda', 'scheduler', 'seconds'], 2.5)
    """
    return {
        "model": {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()},
        "optimizer": _cpu_copy(optimizer.state_dict()),  # not the live momentum buffers
        "scheduler": _cpu_copy(scheduler.state_dict()),
        "data_epoch": getattr(train_batches, "epoch", None),
        "rng_cpu": torch.get_rng_state(),
        "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "history": [dict(row) for row in history],
        "seconds": float(seconds),
    }


def _cpu_copy(tree):
    """``tree`` (dicts, lists and tuples of tensors and plain values) with every tensor
    cloned to the CPU: a state that later steps of the optimizer cannot change."""
    if isinstance(tree, torch.Tensor):
        return tree.detach().to("cpu", copy=True)
    if isinstance(tree, dict):  # its own type kept (a scheduler's milestones are a Counter)
        copied = copy.copy(tree)
        for key, value in tree.items():
            copied[key] = _cpu_copy(value)
        return copied
    if isinstance(tree, (list, tuple)):
        return type(tree)(_cpu_copy(value) for value in tree)
    return tree


def restore_training_state(state, model, optimizer, scheduler, train_batches) -> None:
    """Put ``state`` (:func:`training_state`) back into a model with the same layers
    (masked where the state has masks), its optimizer, scheduler and batches.

    >>> import torch
    >>> from synflow.models import build_model
    >>> from synflow.training.loop import optimizer_for
    >>> from synflow.training.presets import preset
    >>> model = build_model("mlp", input_shape=(1, 8, 8), width=0.1, seed=0)
    >>> optimizer, scheduler = optimizer_for(model, preset("mlp", "mnist"))
    >>> state = training_state(model, optimizer, scheduler, None, [], 0.0)
    >>> other = build_model("mlp", input_shape=(1, 8, 8), width=0.1, seed=1)
    >>> restore_training_state(state, other, *optimizer_for(other, preset("mlp", "mnist")), None)
    >>> all(torch.equal(a, b) for a, b in zip(model.parameters(), other.parameters()))
    True
    """
    load_pruned_state_dict(model, state["model"])  # already masked alike: a copy
    # copies: load_state_dict keeps a state's tensors as the live buffers where device and
    # dtype fit, and training would change a state the caller keeps (to resume it again)
    optimizer.load_state_dict(_cpu_copy(state["optimizer"]))
    scheduler.load_state_dict(_cpu_copy(state["scheduler"]))
    if state["data_epoch"] is not None:
        train_batches.epoch = state["data_epoch"]
    torch.set_rng_state(state["rng_cpu"])
    if state["rng_cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["rng_cuda"])


def save_checkpoint(path: Path, config, stage: int, train_state: dict,
                    progress: dict) -> None:
    """Write the checkpoint atomically (temporary file in the same folder, fsync, rename).

    >>> import tempfile, types
    >>> from pathlib import Path
    >>> from synflow.models import build_model
    >>> from synflow.training.loop import optimizer_for
    >>> from synflow.training.presets import preset
    >>> model = build_model("mlp", input_shape=(1, 8, 8), width=0.1, seed=0)
    >>> state = training_state(model, *optimizer_for(model, preset("mlp", "mnist")), None, [], 0)
    >>> config = types.SimpleNamespace(key=lambda: "run-a")
    >>> path = Path(tempfile.mkdtemp()) / "checkpoint.pt"
    >>> save_checkpoint(path, config, 1, state, {"stage": 1})
    >>> saved = load_checkpoint(path, config)
    >>> saved["key"], saved["stage"], saved["progress"]
    ('run-a', 1, {'stage': 1})
    """
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
    checkpoint of another run (another config's key).

    >>> import tempfile, types, warnings
    >>> from pathlib import Path
    >>> from synflow.models import build_model
    >>> from synflow.training.loop import optimizer_for
    >>> from synflow.training.presets import preset
    >>> model = build_model("mlp", input_shape=(1, 8, 8), width=0.1, seed=0)
    >>> state = training_state(model, *optimizer_for(model, preset("mlp", "mnist")), None, [], 0)
    >>> config = types.SimpleNamespace(key=lambda: "run-a")
    >>> path = Path(tempfile.mkdtemp()) / "checkpoint.pt"
    >>> load_checkpoint(path, config) is None
    True
    >>> save_checkpoint(path, config, 2, state, {})
    >>> load_checkpoint(path, config)["stage"]
    2
    >>> load_checkpoint(path, types.SimpleNamespace(key=lambda: "run-b"))
    Traceback (most recent call last):
        ...
    ValueError: checkpoint ... is for run 'run-a', not 'run-b'; move it away to start afresh
    >>> _ = path.write_bytes(b"garbage")
    >>> with warnings.catch_warnings(record=True):
    ...     load_checkpoint(path, config) is None
    True
    >>> [p.name.split("-")[0] for p in path.parent.iterdir()]
    ['checkpoint.pt.damaged']
    """
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
                      "the run starts again from its beginning", stacklevel=outside_stacklevel())
        return None
    if saved["key"] != config.key():
        raise ValueError(
            f"checkpoint {path} is for run {saved['key']!r}, not {config.key()!r}; move it away "
            "to start afresh"
        )
    return saved
