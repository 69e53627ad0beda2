"""Whether a mask still links input to output (Section 4): layer-collapse is the special
case of an empty layer, but masks can cut every input-output path without emptying one
(:func:`input_output_paths`; :func:`warn_cut`, which ``prune`` calls).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import torch
from torch import nn
from torch.func import functional_call

from .checks import sample_shape
from .counts import LayerCollapseWarning, warn_collapsed
from .masks import Masks, current_masks
from .prunable import check_masks, check_model, prunable_layers, unwrap
from .scorers.functional import buffer_copies, scoring_view
from .scorers.inputs import InputShapeError, explained_errors, first_inputs
from .stack import outside_stacklevel

# modules whose output on the pass below says nothing about paths: normalisations that
# subtract their input's own mean (an all-ones input comes out as zeros) and outputs
# normalised against each other (a softmax sums to 1 whatever reaches it)
SELF_NORMALISING = (nn.LayerNorm, nn.GroupNorm, nn.modules.instancenorm._InstanceNorm,
                    nn.Softmax, nn.LogSoftmax, nn.Softmin, nn.Softmax2d)
# activations that are not 0 at 0: the all-zeros pass feeds every later unit, and a
# Sigmoid rounds both passes to 1.0 (a large count unscaled; a small gap between the
# passes, rescaled, below float64's precision after a few dozen layers)
NOT_ZERO_AT_ZERO = (nn.Sigmoid, nn.Hardsigmoid, nn.LogSigmoid, nn.Softplus)
# activations that zero small inputs: warn_cut's rescaled passes would cut live units
THRESHOLDING = (nn.Softshrink, nn.Hardshrink, nn.Threshold)
# the modules whose nets the path check does not judge (warn_cut, paths_remain)
UNDECIDED = SELF_NORMALISING + NOT_ZERO_AT_ZERO + THRESHOLDING
# BatchNorm's tensors on the pass: the identity map, whatever its trained statistics
BATCHNORM_IDENTITY = {"weight": torch.ones_like, "bias": torch.zeros_like,
                      "running_mean": torch.zeros_like, "running_var": torch.ones_like}


class DisconnectedWarning(LayerCollapseWarning):
    """Masks that cut every input-output path with no layer empty (:func:`warn_cut`); a
    :class:`synflow.LayerCollapseWarning`, so filters for that catch it too.

    >>> issubclass(DisconnectedWarning, LayerCollapseWarning)
    True
    """


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
    and the result counts paths (BatchNorm's eps, average pooling and the other
    parameters weight it; max pooling keeps the largest count, and activations
    that clamp, ReLU6, Hardtanh, Tanh, give less: the count is then a lower
    bound). The result is > 0 exactly when some path from input to output
    survives: 0 means the mask disconnects the net, whether or not a layer is
    empty; ``inf`` when the count passes float64's range (about 1e308: a deep
    ResNet at 224) while a path survives (decided on passes rescaled by powers
    of 2 after every prunable layer). That holds for networks of convolutions,
    linear layers, BatchNorm, ReLU-like activations, pooling, concatenations and
    residual sums; count the logits, and a forward that normalises, negates or
    subtracts in its own code (``F.layer_norm``, ``F.log_softmax``,
    ``x - x.mean()``) is outside what the pass can see: its count means nothing
    and can be negative. A wrapper (``nn.DataParallel``, ``torch.compile``) is
    unwrapped first.

    Raises ValueError naming the modules whose output says nothing about paths
    (``SELF_NORMALISING``: LayerNorm, GroupNorm, InstanceNorm, BatchNorm without
    running statistics, Softmax and its kin; and ``NOT_ZERO_AT_ZERO``: Sigmoid,
    Hardsigmoid, LogSigmoid, Softplus) or layers a mask cannot govern (tied
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
    refused = _uncountable(model, SELF_NORMALISING + NOT_ZERO_AT_ZERO)
    if refused:
        raise ValueError(
            f"input_output_paths cannot count paths through {refused[:5]}"
            f"{' ...' if len(refused) > 5 else ''}: a normalisation that subtracts its input's "
            "own mean (LayerNorm, GroupNorm, InstanceNorm, BatchNorm with "
            "track_running_stats=False) maps the all-ones pass to zeros, and a softmax sums to "
            "1 whatever reaches it, and an activation that is not 0 at 0 (Sigmoid, Softplus) "
            "feeds every later unit on the all-zeros pass. Supported: convolutions, linear "
            "layers, BatchNorm with running statistics, ReLU-like activations, pooling and "
            "residual sums (count the paths of the logits: leave a softmax head out)")
    input_shape = sample_shape(input_shape)
    layers, masks = _checked(model, masks)
    ones, zeros = _passes(model, layers, masks, input_shape)
    count = sum(float((a - b).sum()) for a, b in zip(ones, zeros))
    if math.isfinite(count):
        return count
    return math.inf if _connected(model, layers, masks, input_shape) else 0.0


def paths_remain(model: nn.Module, masks: Masks | None = None,
                 input_shape: Sequence[int] = (3, 32, 32)) -> bool | None:
    """Whether some input-output path survives ``masks`` (default: the model's installed
    masks): True or False as :func:`warn_cut` decides it (rescaled path passes on
    ``input_shape``), None where that check does not judge the model (a module of
    ``UNDECIDED``, BatchNorm without running statistics, a forward that fails on float64
    input or gives NaN or inf); a run's ``run.json`` records it as ``connected``. Raises
    as :func:`input_output_paths` for bad ``masks`` or ``input_shape``.

    >>> net = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1))
    >>> paths_remain(net, {"0.weight": torch.eye(2), "2.weight": torch.tensor([[0, 1]])}, (2,))
    True
    >>> paths_remain(net, {"0.weight": torch.tensor([[1, 1], [0, 0]]),
    ...                    "2.weight": torch.tensor([[0, 1]])}, (2,))
    False
    """
    model = unwrap(model)
    input_shape = sample_shape(input_shape)
    layers, masks = _checked(model, masks)
    if not layers or _uncountable(model, UNDECIDED):
        return None
    try:
        return _connected(model, layers, masks, input_shape)
    except (InputShapeError, MemoryError, torch.cuda.OutOfMemoryError):
        raise  # a bad argument, or no memory for the passes: not "undecided"
    except Exception:  # noqa: BLE001 (undecided: the model's forward is not the check's)
        return None


def _checked(model: nn.Module, masks: Masks | None) -> tuple[dict, Masks]:
    """``(prunable layers, masks)`` of an unwrapped ``model``, ``masks`` (None: the
    installed ones) checked to be one 0/1 mask of the right shape per prunable weight."""
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
    return layers, masks


def _uncountable(model: nn.Module, kinds: tuple = SELF_NORMALISING) -> list[str]:
    """The modules of ``model`` whose output on the path pass says nothing about paths:
    of ``kinds``, or BatchNorm without running statistics."""
    return [f"{name or '(the model itself)'} ({type(m).__name__})"
            for name, m in model.named_modules() if isinstance(m, kinds) or (
                isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is None)]


class _Rescaler:
    """Forward hooks on the prunable layers that scale each output by a power of 2 (exact
    in floating point) to a largest entry in [0.5, 1): chosen on the all-ones pass,
    replayed in the same order on the all-zeros pass, so a path count past float64's
    range neither overflows (inf, then inf * 0 = NaN) nor differs between the passes."""

    def __init__(self):
        self.scales, self.replay = [], None

    def __call__(self, module, args, output):
        if not isinstance(output, torch.Tensor):
            return None
        if self.replay is not None:
            if not self.replay:
                raise RuntimeError("the all-zeros pass called more layers than the all-ones")
            return output * self.replay.pop(0)
        largest = float(output.abs().max()) if output.numel() else 0.0
        exponent = min(max(math.frexp(largest)[1], -1000), 1000)  # 2.0 ** 1074 overflows
        scale = 2.0 ** -exponent if 0 < largest < math.inf else 1.0
        self.scales.append(scale)
        return output * scale


def _passes(model, layers, masks, input_shape, rescale=False) -> tuple[list, list]:
    """The tensors the model outputs on the all-ones and on the all-zeros input of the
    path pass (float64, on the model's device), as :func:`input_output_paths` describes
    it, each pass's as a list (a tuple's or a dict's tensors in order); ``rescale``: with
    :class:`_Rescaler`'s hooks. The global random state is left as it was."""
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
        if name.removesuffix("_mask") in masks:  # a masked layer's mask buffer: the mask
            buffers[name] = masks[name[: -len("_mask")]].to(buffers[name].device, torch.float64)
        elif module in norms and kind in BATCHNORM_IDENTITY:
            buffers[name] = BATCHNORM_IDENTITY[kind](buffers[name])
    device = next(iter(layers.values())).weight.device
    ones = torch.ones((1, *input_shape), dtype=torch.float64, device=device)
    rescaler = _Rescaler()
    hooks = [layer.register_forward_hook(rescaler) for layer in layers.values()] \
        if rescale else []
    outputs = []
    try:
        # no warnings.catch_warnings here: leaving one resets Python's once-per-location
        # record, so every warning the user's session had shown would show again
        with torch.no_grad(), scoring_view(model), explained_errors(
                model, layers, ones, torch.float64), \
                torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            for x in (ones, torch.zeros_like(ones)):
                outputs.append(_tensors(functional_call(model, {**params, **buffers}, (x,))))
                rescaler.replay = rescaler.scales
        if not outputs[0]:
            raise ValueError("the model's output holds no tensor: no path can be counted")
    finally:
        for hook in hooks:
            hook.remove()
    return outputs[0], outputs[1]


def _tensors(output) -> list[torch.Tensor]:
    """The tensors of a forward's output, in order (a tensor, or tuples, lists and dicts
    of them)."""
    if isinstance(output, torch.Tensor):
        return [output]
    if isinstance(output, dict):
        output = list(output.values())
    return [t for part in output for t in _tensors(part)] \
        if isinstance(output, (tuple, list)) else []


def _connected(model, layers, masks, input_shape) -> bool | None:
    """Whether some input-output path survives (the rescaled passes differ); None when
    the passes give NaN or inf (a count that means nothing)."""
    ones, zeros = _passes(model, layers, masks, input_shape, rescale=True)
    if not all(bool(torch.isfinite(t).all()) for t in ones + zeros):
        return None
    return any(not torch.equal(a, b) for a, b in zip(ones, zeros))


def warn_cut(model: nn.Module, layers: dict[str, nn.Module], masks: Masks,
             input_shape: Sequence[int] | None = None, data: list | None = None) -> None:
    """The warnings ``prune`` gives about what its masks leave of the net, before they are
    installed: :func:`synflow.core.counts.warn_collapsed` for empty layers, told whether
    input-output paths remain, and :class:`DisconnectedWarning` when the masks cut every
    path with no layer empty (the pruned net's output no longer depends on its input).

    Whether a path remains is decided by :func:`input_output_paths`' two float64 passes
    (rescaled after every prunable layer, so no count overflows), one forward each of the
    model (its hooks run, and its own warnings show; the global random state is kept),
    where an input shape is known: ``input_shape``, else the first inputs of ``data``
    (checked batches) when they are floating point; magnitude and random need neither:
    without one nothing is checked. Not decided (no such warning, nothing raised): a
    module whose output says nothing about paths (``SELF_NORMALISING``,
    ``NOT_ZERO_AT_ZERO``, ``THRESHOLDING``: Sigmoid, Softplus, Softshrink ...), samples
    of shape (), a forward that fails on the float64 input (an Embedding's indices, a
    float32-only forward) or returns no tensor, NaN or inf outputs. A forward that
    normalises in its own code, or whose control flow depends on the input's values, can
    look disconnected (the message says the first). Raises
    :class:`synflow.core.scorers.inputs.InputShapeError` when the model cannot take a
    given ``input_shape``. ``layers`` are ``model``'s prunable layers, ``masks`` one 0/1
    mask per layer, checked by the caller.

    >>> net = nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 1))
    >>> layers = {"0.weight": net[0], "2.weight": net[2]}
    >>> cut = {"0.weight": torch.tensor([[1, 0, 0], [0, 0, 0]]), "2.weight": torch.tensor([[0, 1]])}
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     warn_cut(net, layers, cut, (3,))
    >>> caught[0].category.__name__, str(caught[0].message)[:37]
    ('DisconnectedWarning', 'the masks cut every input-output path')
    """
    given = input_shape is not None
    if not given and data:
        inputs = first_inputs(data)
        input_shape = inputs.shape[1:] if inputs.is_floating_point() else None
    connected = None
    if input_shape is not None and layers and not _uncountable(model, UNDECIDED):
        try:
            input_shape = sample_shape(input_shape)  # data's may be () (one number each)
            connected = _connected(model, layers, masks, input_shape)
        except InputShapeError:
            if given:
                raise
        except Exception:  # noqa: BLE001 (a diagnostic: the pruning itself has succeeded)
            connected = None
    warn_collapsed(masks, connected, input_shape)
    if connected is False and all(mask.any() for mask in masks.values() if mask.numel()):
        warnings.warn(
            f"the masks cut every input-output path without emptying a layer: every path "
            f"from an input to an output unit has a pruned weight on it, so the pruned net's "
            f"output no longer depends on its input (two float64 passes on input shape "
            f"{tuple(input_shape)}; synflow.analysis.input_output_paths(model, masks, "
            f"input_shape={tuple(input_shape)}) counts the paths left). Prune less, or "
            "iteratively with SynFlow (Theorem 3). A forward that normalises its input or "
            "activations in its own code (F.layer_norm, x - x.mean()) can look so; the "
            "check then means nothing", DisconnectedWarning, stacklevel=outside_stacklevel())
