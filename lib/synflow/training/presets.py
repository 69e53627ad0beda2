"""The paper's training hyperparameters (paper/NOTES.md) as frozen configs, by name.

``PRESETS`` holds them; :func:`preset` picks one for a (model, dataset) pair and applies
overrides for smaller profiles.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

from ..models import MODELS
from .precision import AUTO, check_precision


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of one training run.

    ``milestones`` are the epochs after which the learning rate is multiplied
    by ``gamma``; ``subset`` trains on that many images per class
    (class-balanced, drawn by the run's seed), ``None`` on the full set.
    ``precision`` is "float32", "bfloat16" or "auto" (:mod:`synflow.training.precision`).

    >>> config = TrainConfig(epochs=10, lr=0.1, milestones=[4, 8], gamma=0.1, weight_decay=1e-4)
    >>> config.milestones, config.batch_size, config.precision
    ((4, 8), 128, 'auto')
    >>> TrainConfig(epochs=0, lr=0.1, milestones=(), gamma=0.1, weight_decay=0.0)
    Traceback (most recent call last):
        ...
    ValueError: epochs must be an integer >= 1, got 0
    """

    epochs: int
    lr: float
    milestones: tuple[int, ...]
    gamma: float
    weight_decay: float
    momentum: float = 0.9
    nesterov: bool = True
    batch_size: int = 128
    subset: int | None = None
    precision: str = AUTO

    def __post_init__(self):
        check_precision(self.precision)
        if not (isinstance(self.epochs, int) and self.epochs >= 1):
            raise ValueError(f"epochs must be an integer >= 1, got {self.epochs!r}")
        if not (isinstance(self.batch_size, int) and self.batch_size >= 1):
            raise ValueError(f"batch_size must be an integer >= 1, got {self.batch_size!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        if self.subset is not None and not (isinstance(self.subset, int) and self.subset >= 1):
            raise ValueError(f"subset must be None or an integer >= 1, got {self.subset!r}")
        object.__setattr__(self, "milestones", tuple(int(m) for m in self.milestones))


PRESETS: dict[str, TrainConfig] = {
    # the paper's table
    "vgg-cifar": TrainConfig(160, 0.1, (60, 120), 0.1, 1e-4),
    "resnet-cifar": TrainConfig(160, 0.01, (60, 120), 0.2, 5e-4),
    "tinyimagenet": TrainConfig(100, 0.01, (30, 60, 80), 0.2, 1e-4),
    # not in the paper: the toy nets (mlp, conv) and MNIST
    "toy": TrainConfig(10, 0.01, (), 0.1, 1e-4),
}


def family(model: str) -> str:
    """"vgg", "resnet" or "toy", the model families the presets are set for.

    >>> family("vgg16"), family("resnet20"), family("mlp")
    ('vgg', 'resnet', 'toy')
    >>> family("alexnet")
    Traceback (most recent call last):
        ...
    ValueError: unknown model 'alexnet'; choose one of: conv, mlp, ...
    """
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; choose one of: {', '.join(sorted(MODELS))}")
    if model.startswith("vgg"):
        return "vgg"
    if model.startswith(("resnet", "wrn")):
        return "resnet"
    return "toy"


def _preset_name(model: str, dataset: str) -> str:
    """The key of ``PRESETS`` the paper uses for ``model`` on ``dataset``."""
    kind = family(model)
    if kind == "toy" or dataset == "mnist":
        return "toy"
    if dataset == "tinyimagenet":
        return "tinyimagenet"
    return f"{kind}-cifar"  # CIFAR-10/100 and other image-folder datasets


def preset(model: str, dataset: str, *, name: str | None = None, **overrides) -> TrainConfig:
    """The preset for (``model``, ``dataset``) (or the one called ``name``) with
    ``overrides`` (any ``TrainConfig`` field; ``None`` values are ignored).

    When ``epochs`` is overridden and ``milestones`` is not, the milestones are
    scaled to the same fractions of training (60/160 and 120/160 of 10 epochs
    give 4 and 8), so a short profile keeps the shape of the schedule. Raises ValueError
    for an unknown model, preset ``name`` or ``TrainConfig`` field.

    >>> config = preset("vgg16", "cifar10", epochs=10)
    >>> config.epochs, config.lr, config.milestones
    (10, 0.1, (4, 8))
    >>> preset("vgg16", "cifar10", name="vgg-imagenet")
    Traceback (most recent call last):
        ...
    ValueError: unknown training preset 'vgg-imagenet'; choose one of: vgg-cifar, resnet-cifar, ...
    """
    name = name if name is not None else _preset_name(model, dataset)
    if name not in PRESETS:
        raise ValueError(f"unknown training preset {name!r}; choose one of: {', '.join(PRESETS)}")
    base = PRESETS[name]
    overrides = {key: value for key, value in overrides.items() if value is not None}
    allowed = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(overrides) - allowed)
    if unknown:
        raise ValueError(f"unknown TrainConfig fields {unknown}; allowed: {', '.join(sorted(allowed))}")
    if "epochs" in overrides and "milestones" not in overrides:
        scale = overrides["epochs"] / base.epochs
        overrides["milestones"] = tuple(max(1, round(m * scale)) for m in base.milestones)
    return replace(base, **overrides)
