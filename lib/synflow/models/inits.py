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

import math
from collections.abc import Callable

import torch
from torch import nn

from ..core.checks import check_seed
from ..core.masks import is_masked, prunable_layers

_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)


def _batch_norm_one_zero(module: nn.Module) -> None:
    nn.init.ones_(module.weight)
    nn.init.zeros_(module.bias)


# The weight laws, as functions of (weight, generator) that draw in place: the init
# functions below apply them with the global generator (generator=None), and
# :func:`_redraw_weight` with a caller's one (synflow.core.masks.reinitialize_kept, Frankle et
# al.'s "reinit" check). "_torch_default" is what a layer's reset_parameters draws.
def _fan_in_normal(weight, generator=None):
    nn.init.kaiming_normal_(weight, generator=generator)  # mode fan_in, gain sqrt(2)


def _fan_out_normal(weight, generator=None):
    nn.init.kaiming_normal_(weight, mode="fan_out", nonlinearity="relu", generator=generator)


def _normal_001(weight, generator=None):
    nn.init.normal_(weight, 0.0, 0.01, generator=generator)


def _torch_default(weight, generator=None):
    nn.init.kaiming_uniform_(weight, a=math.sqrt(5), generator=generator)


def kaiming_fan_in(model: nn.Module) -> nn.Module:
    """Kaiming normal, fan_in, ReLU gain, for every Conv2d and Linear weight: std
    sqrt(2 / fan_in); their biases 0; BatchNorm weight 1, bias 0. The authors' CIFAR
    "lottery" VGGs and ResNet-20..110 (their Models/lottery_vgg.py, lottery_resnet.py);
    until the per-family inits, this project's init for every model. Returns ``model``,
    changed in place (the global RNG draws).

    >>> model = kaiming_fan_in(nn.Sequential(nn.Linear(200, 100)))  # std sqrt(2 / 200) = 0.1
    >>> round(float(model[0].weight.detach().std()), 2), float(model[0].bias.abs().sum())
    (0.1, 0.0)
    """
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            _fan_in_normal(module.weight)
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
    torchvision's ResNet init. Returns ``model``, changed in place.

    >>> conv = resnet_fan_out(nn.Sequential(nn.Conv2d(32, 50, 3)))[0]  # std sqrt(2 / 450)
    >>> round(float(conv.weight.detach().std()), 2)
    0.07
    """
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            _fan_out_normal(module.weight)
        elif isinstance(module, _BATCH_NORMS):
            _batch_norm_one_zero(module)
    return model


def vgg_fan_out(model: nn.Module) -> nn.Module:
    """Kaiming normal, fan_out, ReLU gain, for every Conv2d weight, conv biases 0; Linear
    weights N(0, 0.01^2) (std 0.01), Linear biases 0; BatchNorm weight 1, bias 0. The
    authors' ImageNet VGG (Figures 2-4, 7; their Models/imagenet_vgg.py, torchvision's
    VGG init) and Tiny ImageNet VGGs (Figure 6; their Models/tinyimagenet_vgg.py).
    Returns ``model``, changed in place.

    >>> model = vgg_fan_out(nn.Sequential(nn.Conv2d(3, 8, 3), nn.Flatten(), nn.Linear(200, 100)))
    >>> round(float(model[2].weight.detach().std()), 3), float(model[0].bias.abs().sum())
    (0.01, 0.0)
    """
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            _fan_out_normal(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            _normal_001(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, _BATCH_NORMS):
            _batch_norm_one_zero(module)
    return model


def pytorch_default(model: nn.Module) -> nn.Module:
    """No re-initialisation: every layer keeps what its ``reset_parameters`` drew when it
    was built (Linear and Conv2d weight and bias U(+-1/sqrt(fan_in)), BatchNorm 1 / 0).
    The authors' toy MLP and conv nets (their Models/mlp.py sets no init). Returns
    ``model`` untouched.

    >>> model = nn.Linear(2, 2)
    >>> before = model.weight.clone()
    >>> pytorch_default(model) is model, torch.equal(model.weight, before)
    (True, True)
    """
    return model


INITS: dict[str, Callable[[nn.Module], nn.Module]] = {
    "kaiming_fan_in": kaiming_fan_in,
    "resnet_fan_out": resnet_fan_out,
    "vgg_fan_out": vgg_fan_out,
    "pytorch_default": pytorch_default,
}


# every init's weight law per layer kind ("pytorch_default": what reset_parameters drew)
WEIGHT_LAWS: dict[str, dict[str, Callable]] = {
    "kaiming_fan_in": {"conv": _fan_in_normal, "linear": _fan_in_normal},
    "resnet_fan_out": {"conv": _fan_out_normal, "linear": _torch_default},
    "vgg_fan_out": {"conv": _fan_out_normal, "linear": _normal_001},
    "pytorch_default": {"conv": _torch_default, "linear": _torch_default},
}


def _redraw_weight(init: str, module: nn.Module, weight: torch.Tensor,
                  generator: torch.Generator | None = None) -> None:
    """Fill ``weight`` (a tensor of ``module``'s weight shape, any float dtype, on the
    CPU) in place with a fresh draw from ``init``'s law for that layer (Conv1d/2d/3d and
    ConvTranspose1d/2d/3d: its "conv" law, Linear: its "linear" law, see
    :data:`WEIGHT_LAWS`).

    Raises ValueError for an init that is not a key of ``INITS`` (naming the allowed
    ones), TypeError for a module that is neither a convolution nor Linear."""
    if init not in WEIGHT_LAWS:
        raise ValueError(f"init {init!r} is not allowed; choose one of: {', '.join(WEIGHT_LAWS)}")
    if isinstance(module, nn.Linear):
        kind = "linear"
    elif isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d,
                             nn.ConvTranspose2d, nn.ConvTranspose3d)):
        kind = "conv"  # fans as torch computes them for the weight's own layout
    else:
        raise TypeError(f"{type(module).__name__} has no init law; a Conv or Linear layer is needed")
    WEIGHT_LAWS[init][kind](weight, generator)


AUTHORS = "authors"  # build_model's default: each model's family init (MODEL_INITS)
INIT_CHOICES = (AUTHORS, *INITS)


def check_init(init) -> str:
    """``init`` if it is "authors" or a key of ``INITS``, else ValueError naming it and them.

    >>> check_init("authors"), check_init("vgg_fan_out")
    ('authors', 'vgg_fan_out')
    >>> check_init("xavier")
    Traceback (most recent call last):
    ValueError: init 'xavier' is not allowed; choose 'authors' (each model's family init, ...
    """
    if not isinstance(init, str) or init not in INIT_CHOICES:
        raise ValueError(
            f"init {init!r} is not allowed; choose {AUTHORS!r} (each model's family init, as "
            f"in the authors' runs) or one of: {', '.join(INITS)}"
        )
    return init


def reinitialize_kept(model: nn.Module, seed: int = 0, init: str = "kaiming_fan_in") -> None:
    """Redraw every prunable weight from ``init``'s law, keeping the masks (pruned
    weights stay 0); biases and other parameters are left as they are.

    The "reinit" sanity check of Frankle et al. (ICLR 2021): the mask as found, the
    kept weights re-initialised from the network's own initial distribution, so pass
    the model's init (``synflow.models.model_init(name)``; a key of
    ``INITS``, see :data:`WEIGHT_LAWS`). ``seed`` fixes the
    draw (one CPU stream through the layers in order). Raises ValueError for an
    unknown ``init``.

    >>> from synflow.core.masks import apply_masks, current_masks
    >>> model = nn.Sequential(nn.Linear(4, 3))
    >>> apply_masks(model, {"0.weight": torch.eye(3, 4, dtype=torch.bool)})
    >>> before = model[0].weight_orig.clone()
    >>> reinitialize_kept(model, seed=0, init="kaiming_fan_in")
    >>> int(model[0].weight.count_nonzero()), torch.equal(model[0].weight_orig, before)
    (3, False)
    """
    generator = torch.Generator().manual_seed(check_seed(seed))
    with torch.no_grad():
        for module in prunable_layers(model).values():
            target = module.weight_orig if is_masked(module) else module.weight
            fresh = torch.empty(target.shape, dtype=target.dtype)
            _redraw_weight(init, module, fresh, generator)
            target.copy_(fresh.to(target.device))
            if is_masked(module):
                target.mul_(module.weight_mask)
