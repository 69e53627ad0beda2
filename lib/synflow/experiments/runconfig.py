"""What determines a run: the frozen :class:`RunConfig`, its identity (hash) and its name.

The store (:mod:`synflow.experiments.store`) names each run's folder by :meth:`RunConfig.name`
(train_precision "auto" is bfloat16 on a bf16 machine, named "-bf16-"; float32 here):

>>> from synflow.experiments.runconfig import RunConfig
>>> RunConfig("vgg16_bn", "cifar10", pruner="synflow", compression=100, iterations=100,
...           train_precision="float32").name()
'vgg16_bn-w1-cifar10-synflow-c100-s0-fcb3b4874f'
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
import re
import warnings
from dataclasses import asdict, dataclass, fields

import numpy as np

from ..core.schedules import SCHEDULES
from ..core.scorers import BN_MODE_METHODS, SCORERS
from ..core.scorers.functional import BN_MODES
from ..core.scoring import check_scope
from ..core.selection import SCOPES
from ..core.stack import outside_stacklevel
from ..data.datasets import DATASETS
from ..models.inits import AUTHORS, check_init
from ..models.registry import MODELS
from ..training import precision as precisions
from ..training import presets

DENSE = "dense"  # the pruner name of an unpruned run
MASK_VARIANTS = ("as_found", "shuffled", "reinit")
# Fields added after the first results were stored. At their defaults they are left
# out of a run's identity (its hash), so every earlier config keeps its key and its
# stored results; a stored config without them reads as having the defaults.
LATER_FIELDS = {"mask": "as_found", "cycles": 0, "rewind": True, "test_subset": None,
                "record_layers": False, "bn_mode": "eval", "train_precision": "float32"}
# ``init`` is NOT a later field: it is part of every run's identity, so no config made
# since each model got its family's init (issue 10) shares a key with an earlier one.
# A stored config without it was made with Kaiming fan-in for every model, and reads so.
INIT_BEFORE_THE_FIELD = "kaiming_fan_in"
# the numeric fields: integer fields with their lowest value and whether None is allowed
# (None: the preset's value / the full set; 0 never means "the default"), real fields
# (``lr`` may be None: the preset's), and the flags
INTEGER_FIELDS = {"iterations": (1, False), "seed": (0, False), "subset": (1, True),
                  "prune_per_class": (1, False), "epochs": (1, True), "batch_size": (1, True),
                  "cycles": (0, False), "test_subset": (1, True)}
REAL_FIELDS = {"compression": (1.0, True, "a finite number >= 1"),
               "width": (0.0, False, "a finite number > 0"),
               "lr": (0.0, False, "None (the preset's) or a finite number > 0")}
BOOL_FIELDS = ("invert", "rewind", "record_layers")


def is_integer(value) -> bool:
    """Whether ``value`` is an integer number: a Python or numpy integer, not a bool.

    >>> is_integer(np.int64(3)), is_integer(True), is_integer(3.0)
    (True, False, False)
    """
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_real(value) -> bool:
    """Whether ``value`` is a real number: a Python or numpy int or float, not a bool.

    >>> is_real(np.float32(0.5)), is_real(True), is_real("1")
    (True, False, False)
    """
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines a run.

    ``pruner`` is a key of ``synflow.SCORERS`` or "dense" (no pruning; so is
    ``compression=1`` with any pruner, which skips pruning). ``subset`` trains on
    that many images per class (class-balanced), ``None`` on the full training
    set. ``prune_per_class`` is the SNIP/GraSP pruning data per class.
    ``preset`` names a ``synflow.training.presets.PRESETS`` entry (``None``: the paper's
    for this model and dataset); ``epochs``, ``lr`` and ``batch_size`` override
    it when not ``None``. ``seed`` fixes the initial weights, the data order and
    augmentation, the subsets and the random scores. ``iterations`` (default 1, one
    shot, for every pruner, as in :func:`synflow.prune`): the paper's SynFlow takes 100,
    which the notebooks' sweeps pass; ``schedule`` and ``scope`` are ``prune``'s.

    Numbers may be Python or numpy numbers; they are stored as ``int`` (the integer
    fields: ``iterations``, ``seed``, ``subset``, ``prune_per_class``, ``epochs``,
    ``batch_size``, ``cycles``, ``test_subset``; a bool is not an integer) or ``float``
    (``compression``, ``width``, ``lr``), so ``seed=numpy.int64(1)`` is the same run as
    ``seed=1``. ``None``, never 0, means "the preset's value" or "the full set"; a value
    out of range (``epochs=0``, ``seed=-1``, ``lr=0``) raises ValueError naming it.

    Later fields (defaults = pruning at initialization, as before):

    * ``mask``: "as_found" (the pruner's mask on the initial weights),
      "shuffled" (each layer's mask randomly permuted within the layer,
      :func:`synflow.core.masks.shuffle_masks`, on the same initial weights) or
      "reinit" (the mask as found, the kept weights redrawn from the model's init,
      :func:`synflow.models.inits.reinitialize_kept`); both seeded by ``seed``. The
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
    * ``bn_mode``: BatchNorm while SNIP/GraSP score, "eval" (running statistics,
      the SynFlow authors' figures) or "train" (batch statistics, Wang et al.'s
      GraSP code); see :func:`synflow.prune`.

    ``init`` (always part of the identity): "authors" (each model's family init, as in
    the authors' runs) or a key of ``synflow.models.inits.INITS`` forced on the model (e.g.
    "kaiming_fan_in", the single init of every run stored before this field existed);
    see :func:`synflow.build_model`.

    ``train_precision`` (a later field): "float32" (every run stored before the field) or
    "bfloat16" (autocast, channels-last); the default "auto" is resolved when the config
    is made, by this machine (:func:`synflow.training.precision.resolve`:
    bfloat16 with a CUDA GPU or a CPU with native bf16, else float32;
    ``$SYNFLOW_TRAIN_PRECISION`` forces one), so a config always holds the precision its
    run trains in and a float32 run is never loaded as a bfloat16 one.

    >>> config = RunConfig("mlp", "mnist", pruner="synflow", compression=10, seed=np.int64(1))
    >>> config.seed, config.compression, config.pruned
    (1, 10.0, True)
    >>> RunConfig("mlp", "mnist", epochs=0)
    Traceback (most recent call last):
    ValueError: epochs 0 is not allowed; choose None or an integer >= 1
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
    bn_mode: str = "eval"
    init: str = AUTHORS
    train_precision: str = precisions.AUTO

    def __post_init__(self):
        def bad(name, allowed):
            return ValueError(f"{name} {getattr(self, name)!r} is not allowed; choose {allowed}")

        # numbers first, one spelling per value, so equal configs hash alike (1 and 1.0,
        # numpy.int64(1) and 1): integers as int, reals as float
        for name, (low, optional) in INTEGER_FIELDS.items():
            value = getattr(self, name)
            if value is None and optional:
                continue
            if not (is_integer(value) and value >= low):
                raise bad(name, f"{'None or ' if optional else ''}an integer >= {low}"
                          + (" (not a bool: True is not 1)" if isinstance(value, bool) else ""))
            object.__setattr__(self, name, int(value))
        for name, (low, inclusive, allowed) in REAL_FIELDS.items():
            value = getattr(self, name)
            if value is None and name == "lr":
                continue
            if not (is_real(value) and math.isfinite(value)
                    and (value >= low if inclusive else value > low)):
                raise bad(name, allowed)
            object.__setattr__(self, name, float(value))
        for name in BOOL_FIELDS:
            value = getattr(self, name)
            if isinstance(value, np.bool_):
                object.__setattr__(self, name, bool(value))
            elif not isinstance(value, bool):
                raise bad(name, "True or False")
        if self.model not in MODELS:
            raise bad("model", f"one of: {', '.join(sorted(MODELS))}")
        if self.pruner != DENSE and self.pruner not in SCORERS:
            raise bad("pruner", f"one of: {', '.join([DENSE, *SCORERS])}")
        if self.schedule not in SCHEDULES:
            raise bad("schedule", f"one of: {', '.join(SCHEDULES)}")
        if self.scope not in SCOPES:
            raise bad("scope", f"one of: {', '.join(SCOPES)}")
        if self.pruner != DENSE:
            try:
                check_scope(self.pruner, self.scope, self.invert)
            except ValueError as error:
                raise ValueError(f"RunConfig: {error}") from None
        if self.preset is not None and self.preset not in presets.PRESETS:
            raise bad("preset", f"None or one of: {', '.join(presets.PRESETS)}")
        if not isinstance(self.dataset, str) or self.dataset in ("", ".", "..") or any(
                c in self.dataset for c in "/\\"):  # a folder under the data root, not a path
            raise bad("dataset", f"{', '.join(DATASETS)} or a folder name (no / or \\)")
        if self.pruner == DENSE and self.compression != 1:
            raise ValueError(f"pruner 'dense' needs compression 1, got {self.compression!r}")
        if self.pruner != DENSE and self.compression == 1:  # one dense run, one identity
            raise ValueError(f"pruner {self.pruner!r} with compression 1 prunes nothing: that "
                             "is the dense run, pruner='dense'")
        if self.pruner == DENSE and (self.iterations, self.schedule, self.scope, self.invert,
                                     self.cycles, self.mask) != (1, "exponential", "global",
                                                                 False, 0, "as_found"):
            raise ValueError("iterations, schedule, scope, invert, cycles and mask are for a "
                             "pruner; the dense run keeps their defaults")
        if self.mask not in MASK_VARIANTS:
            raise bad("mask", f"one of: {', '.join(MASK_VARIANTS)}")
        if self.cycles and self.mask != "as_found":
            raise ValueError(f"mask {self.mask!r} is for pruning at initialization (cycles=0)")
        if self.bn_mode not in BN_MODES:
            raise bad("bn_mode", f"one of: {', '.join(BN_MODES)}")
        if self.bn_mode != "eval" and self.pruner not in BN_MODE_METHODS:
            raise ValueError(f"bn_mode {self.bn_mode!r} is for the pruners "
                             f"{', '.join(sorted(BN_MODE_METHODS))}, not {self.pruner!r}")
        try:
            check_init(self.init)
        except ValueError as error:
            raise ValueError(f"RunConfig: {error}") from None
        if self.train_precision not in (*precisions.PRECISIONS, precisions.AUTO):
            raise bad("train_precision", f"one of: {', '.join(precisions.PRECISIONS)} or auto")
        object.__setattr__(self, "train_precision", precisions.resolve(self.train_precision))

    @property
    def pruned(self) -> bool:
        return self.pruner != DENSE and self.compression > 1

    def identity(self) -> dict:
        """The fields that make the run's identity: every field (``init`` always), except
        the later fields (``LATER_FIELDS``) that are at their defaults."""
        return {
            name: value
            for name, value in asdict(self).items()
            if not (name in LATER_FIELDS and value == LATER_FIELDS[name]
                    and type(value) is type(LATER_FIELDS[name]))
        }

    def key(self) -> str:
        """A short hash of every field (the run's identity; later fields at their
        defaults are left out, so configs stored before they existed keep their key;
        ``init`` is always in, so no config made since it exists has an earlier key)."""
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
        if self.bn_mode != "eval":
            parts.append(f"bn{self.bn_mode}")
        if self.init != AUTHORS:
            parts.append(f"init_{self.init}")
        if self.train_precision != "float32":
            parts.append("bf16")
        parts.append(f"s{self.seed}")
        readable = "-".join(re.sub(r"[^A-Za-z0-9_.+=]+", "_", part) for part in parts)
        return f"{readable}-{self.key()}"

    def training(self) -> presets.TrainConfig:
        """The training hyperparameters: the preset with this run's overrides."""
        return presets.preset(
            self.model,
            self.dataset,
            name=self.preset,
            epochs=self.epochs,
            lr=self.lr,
            batch_size=self.batch_size,
            subset=self.subset,
            precision=self.train_precision,
        )


def _stored_fields(stored: dict) -> dict:
    """A stored config's fields, with what each missing field meant when it was stored:
    the later fields at their defaults, ``init`` "kaiming_fan_in" (every model's init
    before the field existed)."""
    return {**LATER_FIELDS, "init": INIT_BEFORE_THE_FIELD, **stored}


def config_from_dict(stored: dict, where: str = "a stored config") -> RunConfig:
    """A RunConfig from its stored JSON dict (:func:`_stored_fields`: a config stored
    without ``init`` reads as init="kaiming_fan_in", what it was made with). Unknown keys
    are reported with a warning (they are kept by :func:`frame` as columns, not silently
    dropped). Raises TypeError or ValueError as :class:`RunConfig` does for a bad value.

    >>> config_from_dict({"model": "mlp", "dataset": "mnist"}).init  # stored before init
    'kaiming_fan_in'
    """
    known = {f.name for f in fields(RunConfig)}
    unknown = sorted(set(stored) - known)
    if unknown:
        warnings.warn(
            f"{where} has keys that RunConfig does not know: {unknown}; "
            f"they are ignored for the run's identity (known keys: {sorted(known)})",
            stacklevel=outside_stacklevel(),
        )
    return RunConfig(**{k: v for k, v in _stored_fields(stored).items() if k in known})
