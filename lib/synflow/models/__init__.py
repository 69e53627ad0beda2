"""The paper's networks by name (:data:`MODELS`, :func:`build_model`) and their inits.

| module    | concern                                                                  |
|-----------|--------------------------------------------------------------------------|
| registry  | ``MODELS``, ``MODEL_INITS``, :func:`build_model` and its defaults, checks |
| networks  | the VGGs and ResNets as ``nn.Module`` classes                             |
| inits     | each family's weight laws (``INITS``), :func:`reinitialize_kept`         |

>>> from synflow.models import build_model
>>> build_model("mlp", input_shape=(1, 28, 28), seed=0)[1]
Linear(in_features=784, out_features=100, bias=True)
"""

from .inits import INITS, reinitialize_kept
from .networks import BasicBlock, CifarVGG, ImageNetVGG, ResNet, TinyImageNetVGG
from .registry import (
    DEFAULT_DATA,
    MODEL_INITS,
    MODELS,
    build_model,
    check_input_shape,
    default_data,
    model_init,
)

__all__ = [
    "DEFAULT_DATA",
    "INITS",
    "MODELS",
    "MODEL_INITS",
    "BasicBlock",
    "CifarVGG",
    "ImageNetVGG",
    "ResNet",
    "TinyImageNetVGG",
    "build_model",
    "check_input_shape",
    "default_data",
    "model_init",
    "reinitialize_kept",
]
