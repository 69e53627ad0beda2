"""Whether a mask still links input to output (Section 4): layer-collapse is the special
case of an empty layer, but masks can cut every input-output path without emptying one
(:func:`input_output_paths`; :func:`warn_disconnected`, which ``prune`` calls).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
from torch import nn
from torch.func import functional_call

from .checks import sample_shape
from .counts import LayerCollapseWarning
from .masks import Masks, current_masks
from .prunable import check_masks, check_model, prunable_layers, unwrap
from .scorers.functional import buffer_copies, scoring_view
from .scorers.inputs import explained_errors, first_inputs
from .stack import outside_stacklevel

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
    refused = _uncountable(model)
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
    outputs = _passes(model, layers, masks, input_shape)
    return float((outputs[0] - outputs[1]).sum())


def _uncountable(model: nn.Module) -> list[str]:
    """The modules of ``model`` whose output on the path pass says nothing about paths."""
    return [f"{name or '(the model itself)'} ({type(m).__name__})"
            for name, m in model.named_modules() if isinstance(m, SELF_NORMALISING) or (
                isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is None)]


def _passes(model, layers, masks, input_shape) -> list:
    """The model's outputs on the all-ones and all-zeros inputs of the path pass (float64,
    on the model's device), as :func:`input_output_paths` describes it."""
    norms = {name for name, m in model.named_modules()
             if isinstance(m, nn.modules.batchnorm._BatchNorm)}
    params = {}
    for name, p in model.named_parameters():
        base = name.removesuffix("_orig")  # a masked layer's dense weight is its weight
        module, _, kind = base.rpartition(".")
        if base in masks:
            params[name] = masks[base].to(p.device, torch.float64)
        elif "bias" in kind or (module in norms and kind in BATCHNORM_IDENTITY):
            params[name] = (BATCHNORM_IDENTITY.get(kind) or torch.zeros_like)(
                p, dtype=torch.float64)
        else:
            params[name] = p.detach().to(torch.float64).abs()
    buffers = buffer_copies(model, torch.float64)
    for name in list(buffers):
        module, _, kind = name.rpartition(".")
        if name.endswith("weight_mask"):  # a masked layer's mask buffer: keep it as the mask
            buffers[name] = masks[name[: -len("_mask")]].to(buffers[name].device, torch.float64)
        elif module in norms and kind in BATCHNORM_IDENTITY:
            buffers[name] = BATCHNORM_IDENTITY[kind](buffers[name])
    device = next(iter(layers.values())).weight.device
    ones = torch.ones((1, *input_shape), dtype=torch.float64, device=device)
    with torch.no_grad(), scoring_view(model), explained_errors(model, layers, ones,
                                                                 torch.float64):
        return [functional_call(model, {**params, **buffers}, (x,))
                for x in (ones, torch.zeros_like(ones))]


def warn_disconnected(model: nn.Module, layers: dict[str, nn.Module], masks: Masks,
                      input_shape: Sequence[int] | None, data: list | None = None) -> None:
    """Warn :class:`synflow.core.counts.LayerCollapseWarning` when ``masks`` cut every
    input-output path of ``model`` while no layer is empty (an empty layer has its own
    warning): the output of :func:`input_output_paths`' two passes is then the same, so
    the pruned net's output no longer depends on its input. Silent where it cannot
    decide: no ``input_shape`` and no floating-point ``data`` (checked batches, whose first
    inputs give the shape; magnitude and random need neither: give one), a module
    whose output says nothing about paths (``SELF_NORMALISING``), a forward that fails
    or returns something other than a tensor on the float64 all-ones input (an
    Embedding's indices, a float32-only forward). ``layers`` are ``model``'s prunable
    layers, ``masks`` one 0/1 mask per layer, checked by the caller.

    >>> import warnings
    >>> net = nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 1))
    >>> layers = {"0.weight": net[0], "2.weight": net[2]}
    >>> cut = {"0.weight": torch.tensor([[1, 0, 0], [0, 0, 0]]), "2.weight": torch.tensor([[0, 1]])}
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     warn_disconnected(net, layers, cut, (3,))
    >>> str(caught[0].message)[:57]
    'the masks cut every input-output path without emptying a '
    """
    if input_shape is None and data and first_inputs(data).is_floating_point():
        input_shape = first_inputs(data).shape[1:]
    if input_shape is None or not layers or _uncountable(model) or any(
            mask.numel() and not mask.any() for mask in masks.values()):
        return
    try:
        outputs = _passes(model, layers, masks, sample_shape(input_shape))
    except Exception:  # noqa: BLE001 (a diagnostic: the pruning itself has succeeded)
        return
    if not all(isinstance(out, torch.Tensor) for out in outputs) or \
            not torch.equal(outputs[0], outputs[1]):
        return
    warnings.warn(
        "the masks cut every input-output path without emptying a layer (no path from an "
        "input to an output unit runs through kept weights only: every path has a pruned "
        "weight on it), so the pruned net's output no longer depends on its input; counted "
        "by synflow.analysis.input_output_paths. Prune less, or iteratively with SynFlow "
        "(Theorem 3). A forward that normalises in its own code (F.layer_norm) can look "
        "so; the count is then meaningless",
        LayerCollapseWarning, stacklevel=outside_stacklevel())
