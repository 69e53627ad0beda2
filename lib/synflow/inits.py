"""How each network's weights are initialised: one small table of plain functions.

``INITS`` maps an init's name to a function that re-initialises a freshly built model in
place (and returns it). :data:`synflow.models.MODEL_INITS` gives every model its family's
init, as in the authors' runs (paper/NOTES.md, "How the authors initialised each network",
from their ``Models/*.py``); ``build_model(..., init=<key>)`` forces one on any model.

================  =======================================  ======================  ============
init              Conv2d weight                            Linear weight           bias, BN
================  =======================================  ======================  ============
kaiming_fan_in    N(0, 2 / fan_in)                         N(0, 2 / fan_in)        0; 1 / 0
resnet_fan_out    N(0, 2 / fan_out)                        PyTorch default         -; 1 / 0
vgg_fan_out       N(0, 2 / fan_out)                        N(0, 0.01^2)            0; 1 / 0
pytorch_default   PyTorch default                          PyTorch default         default
================  =======================================  ======================  ============

fan_in = in_channels * kh * kw (Linear: in_features), fan_out = out_channels * kh * kw
(Kaiming normal with the ReLU gain sqrt(2)). "PyTorch default" is what the layer's own
``reset_parameters`` drew when it was built: weight and bias U(-1/sqrt(fan_in),
1/sqrt(fan_in)) (``kaiming_uniform_`` with a = sqrt(5)), BatchNorm weight 1 and bias 0.
"1 / 0" is BatchNorm's weight 1 and bias 0 (running statistics are left as built).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)


def _batch_norm_one_zero(module: nn.Module) -> None:
    nn.init.ones_(module.weight)
    nn.init.zeros_(module.bias)


def kaiming_fan_in(model: nn.Module) -> nn.Module:
    """Kaiming normal, fan_in, ReLU gain, for every Conv2d and Linear weight: std
    sqrt(2 / fan_in); their biases 0; BatchNorm weight 1, bias 0. The authors' CIFAR
    "lottery" VGGs and ResNet-20..110 (their Models/lottery_vgg.py, lottery_resnet.py);
    until the per-family inits, this project's init for every model."""
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(module.weight)  # mode fan_in, gain sqrt(2)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, _BATCH_NORMS):
            _batch_norm_one_zero(module)
    return model


def resnet_fan_out(model: nn.Module) -> nn.Module:
    """Kaiming normal, fan_out, ReLU gain, for every Conv2d weight: std
    sqrt(2 / (out_channels * kh * kw)); BatchNorm weight 1, bias 0; Linear layers (and any
    conv bias) keep PyTorch's default. The authors' ResNet-18 and "WRN-18" (their
    Models/tinyimagenet_resnet.py, used for CIFAR and Tiny ImageNet in Figure 6); also
    torchvision's ResNet init."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, _BATCH_NORMS):
            _batch_norm_one_zero(module)
    return model


def vgg_fan_out(model: nn.Module) -> nn.Module:
    """Kaiming normal, fan_out, ReLU gain, for every Conv2d weight, conv biases 0; Linear
    weights N(0, 0.01^2) (std 0.01), Linear biases 0; BatchNorm weight 1, bias 0. The
    authors' ImageNet VGG (Figures 2-4, 7; their Models/imagenet_vgg.py, torchvision's
    VGG init) and Tiny ImageNet VGGs (Figure 6; their Models/tinyimagenet_vgg.py)."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, 0.0, 0.01)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, _BATCH_NORMS):
            _batch_norm_one_zero(module)
    return model


def pytorch_default(model: nn.Module) -> nn.Module:
    """No re-initialisation: every layer keeps what its ``reset_parameters`` drew when it
    was built (Linear and Conv2d weight and bias U(+-1/sqrt(fan_in)), BatchNorm 1 / 0).
    The authors' toy MLP and conv nets (their Models/mlp.py sets no init)."""
    return model


INITS: dict[str, Callable[[nn.Module], nn.Module]] = {
    "kaiming_fan_in": kaiming_fan_in,
    "resnet_fan_out": resnet_fan_out,
    "vgg_fan_out": vgg_fan_out,
    "pytorch_default": pytorch_default,
}
AUTHORS = "authors"  # build_model's default: each model's family init (MODEL_INITS)
INIT_CHOICES = (AUTHORS, *INITS)


def check_init(init) -> str:
    """``init`` if it is "authors" or a key of ``INITS``, else ValueError naming it and them."""
    if not isinstance(init, str) or init not in INIT_CHOICES:
        raise ValueError(
            f"init {init!r} is not allowed; choose {AUTHORS!r} (each model's family init, as "
            f"in the authors' runs) or one of: {', '.join(INITS)}"
        )
    return init
