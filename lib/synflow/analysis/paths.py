"""Whether a mask still links input to output (Section 4): layer-collapse is the special
case of an empty layer, but masks can cut every input-output path without emptying one.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.func import functional_call

from ..core.checks import sample_shape
from ..core.masks import Masks, current_masks
from ..core.prunable import check_masks, check_model, prunable_layers, unwrap
from ..core.scorers.functional import buffer_copies, scoring_view
from ..core.scorers.inputs import explained_errors
from .saliency import parameter_name

# modules whose output on the pass below says nothing about paths: normalisations that
# subtract their input's own mean (an all-ones input comes out as zeros) and outputs
# normalised against each other (a softmax sums to 1 whatever reaches it)
SELF_NORMALISING = (nn.LayerNorm, nn.GroupNorm, nn.modules.instancenorm._InstanceNorm,
                    nn.Softmax, nn.LogSoftmax, nn.Softmin, nn.Softmax2d)
# BatchNorm's tensors on the pass: the identity map, whatever its trained statistics
BATCHNORM_IDENTITY = {"weight": torch.ones_like, "bias": torch.zeros_like,
                      "running_mean": torch.zeros_like, "running_var": torch.ones_like}


def input_output_paths(
    model: nn.Module, masks: Masks | None = None, input_shape: Sequence[int] = (3, 32, 32)
) -> float:
    """Weighted count of input-to-output paths through the kept weights (float64).

    The net is evaluated on an all-ones input and on an all-zeros input (shape
    ``(1, *input_shape)``) with every prunable weight replaced by its 0/1 mask
    (``masks``, one per prunable weight; default: the model's installed masks),
    every bias (any parameter with "bias" in its name) set to 0, BatchNorm as
    the identity (scale 1, shift 0, running mean 0, running variance 1, so that
    trained statistics neither feed the layers after an empty one nor cut a
    path) and every other parameter replaced by its absolute value; the result
    is the sum of the outputs' differences. For a ReLU network the zeros give 0
    and the result counts paths (BatchNorm's eps and the other parameters weight
    it). The result is > 0 exactly when some path from input to output
    survives: 0 means the mask disconnects the net, whether or not a layer is
    empty. That holds for networks of convolutions, linear layers, BatchNorm,
    ReLU-like activations, pooling, concatenations and residual sums; count the
    logits, not a saturating head's output (a Sigmoid or Hardsigmoid can round
    both passes to the same value: 0 for a connected net), and a forward that
    normalises, negates or subtracts in its own code (``F.layer_norm``,
    ``-x``) is outside what the pass can see. A wrapper (``nn.DataParallel``,
    ``torch.compile``) is unwrapped first.

    Raises ValueError naming the modules whose output says nothing about paths
    (``SELF_NORMALISING``: LayerNorm, GroupNorm, InstanceNorm, BatchNorm without
    running statistics, Softmax and its kin) or layers a mask cannot govern (tied
    weights, parametrizations: :func:`synflow.core.prunable.check_model`);
    TypeError when ``masks`` is not a dict; KeyError naming masks for no
    prunable weight or prunable weights with no mask; ValueError for a mask of
    the wrong shape or an ``input_shape`` that is not one sample's shape; and
    :class:`synflow.core.scorers.inputs.InputShapeError` when the model cannot
    take ``input_shape``.

    >>> import torch
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1))
    >>> input_output_paths(net, {"0.weight": torch.ones(2, 2), "2.weight": torch.ones(1, 2)}, (2,))
    4.0
    >>> input_output_paths(net, {"0.weight": torch.ones(2, 2), "2.weight": torch.zeros(1, 2)}, (2,))
    0.0
    """
    model = unwrap(model)
    norms = {name: m for name, m in model.named_modules()
             if isinstance(m, nn.modules.batchnorm._BatchNorm)}
    refused = [f"{name or '(the model itself)'} ({type(m).__name__})"
               for name, m in model.named_modules() if isinstance(m, SELF_NORMALISING) or (
                   name in norms and m.running_mean is None)]
    if refused:
        raise ValueError(
            f"input_output_paths cannot count paths through {refused[:5]}"
            f"{' ...' if len(refused) > 5 else ''}: a normalisation that subtracts its input's "
            "own mean (LayerNorm, GroupNorm, InstanceNorm, BatchNorm with "
            "track_running_stats=False) maps the all-ones pass to zeros, and a softmax sums to "
            "1 whatever reaches it. Supported: convolutions, linear layers, BatchNorm with "
            "running statistics, ReLU-like activations, pooling and residual sums (count the "
            "paths of the logits: leave a softmax head out)")
    input_shape = sample_shape(input_shape)
    layers = prunable_layers(model)
    check_model(model, layers)
    if masks is not None and not isinstance(masks, dict):
        raise TypeError(f"masks must be a dict {{weight name: 0/1 tensor}} or None, got "
                        f"{type(masks).__name__}")
    masks = current_masks(model) if masks is None else masks
    check_masks(layers, masks)
    missing = sorted(set(layers) - set(masks))
    if missing:
        raise KeyError(f"no mask for the prunable weight(s) {missing}: give one for every "
                       f"prunable weight ({len(layers)}), or masks=None for the installed ones")
    params = {}
    for name, p in model.named_parameters():
        base = parameter_name(name)
        module, _, kind = base.rpartition(".")
        if base in masks:
            params[name] = masks[base].to(torch.float64)
        elif "bias" in kind or (module in norms and kind in BATCHNORM_IDENTITY):
            params[name] = (BATCHNORM_IDENTITY.get(kind) or torch.zeros_like)(
                p, dtype=torch.float64)
        else:
            params[name] = p.detach().to(torch.float64).abs()
    buffers = buffer_copies(model, torch.float64)
    for name in list(buffers):
        module, _, kind = name.rpartition(".")
        if name.endswith("weight_mask"):  # a masked layer's mask buffer: keep it as the mask
            buffers[name] = masks[name[: -len("_mask")]].to(torch.float64)
        elif module in norms and kind in BATCHNORM_IDENTITY:
            buffers[name] = BATCHNORM_IDENTITY[kind](buffers[name])
    ones = torch.ones((1, *input_shape), dtype=torch.float64)
    with torch.no_grad(), scoring_view(model), explained_errors(model, layers, ones,
                                                                 torch.float64):
        outputs = [functional_call(model, {**params, **buffers}, (x,))
                   for x in (ones, torch.zeros_like(ones))]
    return float((outputs[0] - outputs[1]).sum())
