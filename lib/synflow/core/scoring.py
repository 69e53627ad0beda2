"""One scoring pass on a model (:func:`compute_scores`), and the checks of a public
call: the method's name and options (:func:`check_options`), the loop's other arguments
(:func:`check_run`), the model (:func:`checked_model`) and the inputs
(:func:`check_inputs`), each made once at the public boundary and then trusted."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence

import torch
from torch import nn

from .checks import (
    all_finite,
    check_choice,
    check_seed,
    check_temperature,
    describe_non_finite,
    flag,
    sample_shape,
)
from .diagnostics import check_synflow_network, warn_dense, warn_uninformative
from .masks import (
    check_model,
    effective_weight,
    is_masked,
    layer_masks,
    prunable_layers,
    unwrap,
)
from .scorers import (
    BN_MODE_METHODS,
    DATA_METHODS,
    GLOBAL_ONLY_METHODS,
    SCORERS,
    SYNFLOW_METHODS,
    TEMPERATURE_METHODS,
    ZERO_WHEN_PRUNED,
)
from .scorers.functional import check_bn_mode
from .scorers.gradient import GRASP_TEMPERATURE
from .scorers.inputs import first_inputs
from .scorers.synflow import PRECISIONS, check_precision
from .selection import SCOPES


def check_method(method: str) -> None:
    """ValueError naming ``method`` and the names allowed unless it is a key of ``SCORERS``.

    >>> check_method("synflow")
    >>> check_method("synflo")
    Traceback (most recent call last):
    ValueError: unknown pruning method 'synflo'; choose one of: random, magnitude, snip, ...
    """
    check_choice(method, SCORERS, "pruning method")


def check_options(method, bn_mode="eval", temperature=GRASP_TEMPERATURE,
                  precision="float64") -> dict:
    """The scorer options ``{"bn_mode": ..., "temperature": ..., "precision": ...}``
    after checking them.

    ValueError naming the value and what is allowed: ``bn_mode`` not in ``BN_MODES``,
    or "train" for a method that runs no data (only snip and grasp); ``temperature``
    not a finite number > 0, or not the default for a method other than grasp;
    ``precision`` not in ``PRECISIONS``, or "float32" for a method other than synflow
    and synflow_l2.

    >>> check_options("grasp", temperature=1)
    {'bn_mode': 'eval', 'temperature': 1.0, 'precision': 'float64'}
    >>> check_options("magnitude", bn_mode="train")
    Traceback (most recent call last):
    ValueError: bn_mode 'train' is for the data-based scores (grasp, snip); 'magnitude' ...
    """
    check_bn_mode(bn_mode)
    if bn_mode != "eval" and method not in BN_MODE_METHODS:
        raise ValueError(
            f"bn_mode {bn_mode!r} is for the data-based scores ({', '.join(sorted(BN_MODE_METHODS))}); "
            f"{method!r} runs BatchNorm in eval mode only: use bn_mode='eval'"
        )
    temperature = check_temperature(temperature)
    if temperature != GRASP_TEMPERATURE and method not in TEMPERATURE_METHODS:
        raise ValueError(
            f"temperature {temperature!r} is for grasp only; {method!r} takes no temperature "
            f"(leave the default {GRASP_TEMPERATURE})"
        )
    check_precision(precision)
    if precision != PRECISIONS[0] and method not in SYNFLOW_METHODS:
        raise ValueError(
            f"precision {precision!r} is for the SynFlow passes ({', '.join(sorted(SYNFLOW_METHODS))}); "
            f"{method!r} takes no precision option (its gradients are taken in the model's "
            f"dtype, float32 for float16/bfloat16 models): leave precision={PRECISIONS[0]!r}"
        )
    return {"bn_mode": bn_mode, "temperature": temperature, "precision": precision}


def _ordinary(batch):
    """A batch whose tensors made under ``torch.inference_mode()`` are copied into
    ordinary ones (an inference tensor cannot take part in a gradient)."""
    if isinstance(batch, (tuple, list)):
        with torch.inference_mode(False):
            return type(batch)(t.clone() if isinstance(t, torch.Tensor) and t.is_inference()
                               else t for t in batch)
    return batch


def check_inputs(method: str, data, input_shape):
    """``(data, input_shape)`` for a named ``method``: ``data`` read into a list for the
    data-based scores (SNIP, GraSP; ValueError when None), else None; ``input_shape``
    None for those, else a tuple of ints (from ``data``'s first batch when not given)
    or None when neither is given.

    >>> check_inputs("synflow", None, [1, 8, 8])
    (None, (1, 8, 8))
    >>> check_inputs("snip", None, None)
    Traceback (most recent call last):
    ValueError: snip needs data: pass data=an iterable of (inputs, targets) batches
    """
    if method in DATA_METHODS:
        if data is None:
            raise ValueError(
                f"{method} needs data: pass data=an iterable of (inputs, targets) batches"
            )
        batches = [_ordinary(batch) for batch in data]  # read once, reused by every iteration
        given = None if input_shape is None else sample_shape(input_shape)
        if given is not None and given != (found := tuple(first_inputs(batches).shape[1:])):
            raise ValueError(f"input_shape {given} does not match the data's inputs {found}: "
                             f"{method} takes its input shape from data (leave input_shape out)")
        return batches, None
    if input_shape is None and data is not None:
        input_shape = first_inputs(data).shape[1:]
    if input_shape is None:
        return None, None
    return None, sample_shape(input_shape)


@contextlib.contextmanager
def scoring_context():
    """Gradients on and ordinary tensors, whatever the caller's context: scoring works
    inside ``torch.no_grad()`` and ``torch.inference_mode()``.

    >>> with torch.no_grad(), scoring_context():
    ...     torch.is_grad_enabled()
    True
    """
    with torch.inference_mode(False), torch.enable_grad():
        yield


def checked_model(model: nn.Module, method: str | None) -> tuple[nn.Module, dict[str, nn.Module]]:
    """``(unwrapped model, prunable layers)`` once the model is checked for ``method``
    (a name of ``SCORERS``, or None for a scorer function): layers a mask cannot govern
    and networks SynFlow cannot score refused, weights left dense warned about.
    Raises ValueError (:func:`synflow.core.masks.check_model`).

    >>> model, layers = checked_model(nn.Sequential(nn.Linear(2, 1)), "magnitude")
    >>> layers
    {'0.weight': Linear(in_features=2, out_features=1, bias=True)}
    """
    model = unwrap(model)
    layers = prunable_layers(model)
    check_model(model, layers)
    check_finite_weights(model, layers)
    if method in SYNFLOW_METHODS:
        check_synflow_network(model)
    warn_dense(model, layers)
    return model, layers


def check_finite_weights(model: nn.Module, layers: dict[str, nn.Module]) -> None:
    """ValueError naming every parameter of ``model`` that holds a NaN or an inf, with
    their counts: each prunable weight as its layer computes with it (masked, if it is
    masked: an inf at a pruned position counts as the NaN that inf * 0 gives), then every
    other floating parameter (biases, BatchNorm's affine parameters). No method can rank
    such weights (SynFlow's R_SF, a magnitude or a gradient would be NaN or inf, or the
    forward pass would). One sum per tensor (:func:`synflow.core.checks.all_finite`);
    buffers are not checked (a mask of -inf is a legitimate buffer).

    >>> model = nn.Linear(2, 1)
    >>> check_finite_weights(model, {"weight": model})
    >>> with torch.no_grad():
    ...     model.weight[0, 0], model.bias[0] = float("nan"), float("inf")
    >>> check_finite_weights(model, {"weight": model})
    Traceback (most recent call last):
    ValueError: NaN or inf in the model's parameters: weight (1 NaN, 0 inf of 2 values), bias ...
    """
    bad = []
    for name, module in layers.items():  # masked: finite exactly where weight_orig is
        stored = module.weight_orig if is_masked(module) else module.weight
        if not all_finite(stored):
            bad.append(describe_non_finite(name, effective_weight(module), "values"))
    for name, parameter in model.named_parameters():
        if (name not in layers and name.removesuffix("_orig") not in layers
                and parameter.is_floating_point() and not all_finite(parameter)):
            bad.append(describe_non_finite(name, parameter.detach(), "values"))
    if bad:
        raise ValueError(
            f"NaN or inf in the model's parameters: {', '.join(bad)}; every parameter must be "
            "finite to be scored (check the initialization or the checkpoint loaded)")


def check_run(method, scope, invert, seed, callback, bn_mode, temperature, precision) -> dict:
    """The arguments :func:`synflow.prune` and :func:`synflow.prune_through` share (the
    model and the data aside), checked: the pruning loop's keyword arguments (the scorer,
    its options, scope, invert, seed, callback). Raises ValueError naming a bad one.

    >>> run = check_run("magnitude", "global", False, 0, None, "eval", 200.0, "float64")
    >>> sorted(run), run["zero_when_pruned"]
    (['callback', 'invert', 'method', 'options', 'scope', 'scorer', 'seed', 'zero_when_pruned'], True)
    """
    named = isinstance(method, str)
    if named:
        check_method(method)
        options = check_options(method, bn_mode, temperature, precision)
    elif not callable(method):
        raise ValueError(f"method must be a name in SCORERS or a scorer function, got {method!r}")
    else:  # a scorer function gets the options only when they are set
        defaults = {"bn_mode": "eval", "temperature": GRASP_TEMPERATURE, "precision": "float64"}
        options = {key: value for key, value in (("bn_mode", check_bn_mode(bn_mode)),
                                                  ("temperature", check_temperature(temperature)),
                                                  ("precision", check_precision(precision)))
                   if value != defaults[key]}
    if callback is not None and not callable(callback):
        raise ValueError(f"callback must be a function of an Iteration (or None), got {callback!r}")
    return {"method": method if named else None,
            "scorer": SCORERS[method] if named else method, "options": options,
            "zero_when_pruned": named and method in ZERO_WHEN_PRUNED,
            "invert": (invert := flag(invert, "invert")),
            "scope": check_scope(method if named else None, scope, invert),
            "seed": check_seed(seed), "callback": callback}


def check_scope(method, scope, invert=False) -> str:
    """``scope`` if it is in ``SCOPES`` and ``method`` (a name, or None) can rank so; else
    ValueError naming them (``GLOBAL_ONLY_METHODS`` in local scope or inverted).

    >>> check_scope("random_erk", "local")
    Traceback (most recent call last):
    ValueError: method 'random_erk' sets each layer's density through the global ranking, ...
    """
    check_choice(scope, SCOPES, "scope")
    if method in GLOBAL_ONLY_METHODS and (scope != "global" or invert):
        raise ValueError(
            f"method {method!r} sets each layer's density through the global ranking, which "
            f"scope={scope!r}, invert={invert!r} undoes: local scope keeps the same fraction "
            "of every layer at random (method 'random'), invert the reverse of its densities "
            "(small layers emptied); use scope='global', invert=False")
    return scope


def check_data(method, data, input_shape):
    """``(data, input_shape)`` for a named method (:func:`check_inputs`) or a scorer
    function (data as a list; input_shape from the first batch when not given).

    >>> data = [(torch.zeros(2, 3), torch.tensor([0, 1]))]
    >>> check_data(lambda *args, **options: {}, data, None)[1]
    (3,)
    """
    if isinstance(method, str):
        return check_inputs(method, data, input_shape)
    data = [_ordinary(batch) for batch in data] if data is not None else None
    if input_shape is None and data:
        input_shape = data[0][0].shape[1:]
    return data, sample_shape(input_shape) if input_shape is not None else None


def compute_scores(
    model: nn.Module,
    method: str,
    *,
    data: Iterable | None = None,
    input_shape: Sequence[int] | None = None,
    seed: int = 0,
    bn_mode: str = "eval",
    temperature: float = GRASP_TEMPERATURE,
    precision: str = "float64",
) -> dict[str, torch.Tensor]:
    """One evaluation of ``method``'s scores for the model's current masks (no pruning).

    Args are :func:`synflow.prune`'s: ``method`` a key of ``SCORERS``; ``data`` an
    iterable of (inputs float (B, *input_shape), targets int64 (B,)) batches for snip
    and grasp; ``input_shape`` one sample's shape, e.g. (3, 32, 32), for synflow;
    ``seed`` fixes random scores; ``bn_mode`` ("eval" or "train", snip and grasp) and
    ``temperature`` (grasp) as in :func:`grasp_scores`; ``precision`` ("float64" or
    "float32", synflow and synflow_l2) as in :func:`synflow.core.scorers.synflow.synflow_scores`.

    Returns ``{"<module path>.weight": scores}`` for every prunable weight: tensors of
    the weight's shape on its device, in the scorer's dtype (see each scorer in
    ``SCORERS``); higher = keep. Masked weights score as their masked value (SynFlow,
    SNIP, GraSP and magnitude give 0 to pruned weights). The model runs in eval mode
    (BatchNorm with running statistics; ``bn_mode="train"``: batch statistics) and is
    left exactly as it was, whatever its structure (a submodule under two names
    included); works inside ``torch.no_grad()`` and ``torch.inference_mode()``.

    Raises ValueError for an unknown method, missing data or input shape, a model
    whose layers a mask cannot govern (:func:`synflow.core.masks.check_model`) or that
    SynFlow cannot score, a parameter with NaN or inf (:func:`check_finite_weights`) and
    scores with NaN or inf; warns :class:`ScoreWarning` and :class:`CompressionWarning`
    like :func:`synflow.prune`.

    >>> from torch import nn
    >>> scores = compute_scores(nn.Sequential(nn.Linear(2, 1)), "magnitude")
    >>> list(scores), tuple(scores["0.weight"].shape)
    (['0.weight'], (1, 2))
    """
    check_method(method)
    options = check_options(method, bn_mode, temperature, precision)
    generator = torch.Generator().manual_seed(check_seed(seed))
    model, layers = checked_model(model, method)
    data, input_shape = check_inputs(method, data, input_shape)
    with scoring_context():
        weights = {name: effective_weight(module) for name, module in layers.items()}
        result = SCORERS[method](model, layers, weights, data=data, input_shape=input_shape,
                                 generator=generator, **options)
    if method in ZERO_WHEN_PRUNED:
        flat = torch.cat([s.detach().flatten() for s in result.values()])
        alive = torch.cat([m.flatten() for m in layer_masks(layers).values()])
        warn_uninformative(flat, alive, list(result), [s.numel() for s in result.values()])
    return result
