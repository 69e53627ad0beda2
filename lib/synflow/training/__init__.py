"""Training as in the paper: SGD with Nesterov momentum, MultiStepLR, weight decay.

| module       | concern                                                              |
|--------------|----------------------------------------------------------------------|
| presets      | the paper's hyperparameters (``PRESETS``, :class:`TrainConfig`)        |
| loop         | :func:`train`, one epoch, evaluation                                  |
| checkpoints  | the complete training state, saved and restored exactly               |
| precision    | float32 or bfloat16 autocast (channels-last), "auto" by the hardware  |
"""

from .loop import evaluate, train
from .presets import PRESETS, TrainConfig, preset

__all__ = ["PRESETS", "TrainConfig", "evaluate", "preset", "train"]
