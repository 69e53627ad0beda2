"""Synaptic saliency of every parameter, biases included, and Figure 4's statistic.

:func:`saliency` is dR/dp * p of every parameter for any objective R in float64
(:func:`synflow_saliency`: SynFlow's R on |p|; :func:`loss_saliency`: the signed loss
saliency), the quantity of Theorems 1 and 2 (Figures 3 and 4).

Tanaka et al. (2020), Figure 4, plot for every layer the *average score* against
1 / layer size; their code (Experiments/theory/layer_conservation.py) computes it
as ``|sum of the scores of the layer's weights and bias| / (number of weights +
biases)``, the absolute value of the signed mean. For scores that are never
negative (SynFlow, magnitude, SNIP, random) this equals the mean of |score|; for
GraSP's signed scores it does not (positive and negative scores cancel).

:func:`parameter_scores` scores every parameter of a layer, its bias too, in
float64, with the method's own formula (a scorer of ``synflow.SCORERS`` given every
parameter instead of the prunable weights); :func:`layer_averages` turns them into
the per-layer statistic. No formula is written here: each is the scorer's own
(:mod:`synflow.core.scorers`), run on :func:`synflow.core.scorers.functional.all_parameters`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import pandas as pd
import torch
from torch import nn

from ..core.masks import prunable_layers
from ..core.scorers import DATA_METHODS, SCORERS, SYNFLOW_METHODS
from ..core.scorers.functional import (
    all_parameters,
    fresh_leaves,
    scoring_view,
    summed_gradient,
)
from ..core.scorers.gradient import GRASP_TEMPERATURE, loss_saliencies
from ..core.scorers.synflow import synflow_pass
from ..core.scoring import check_method, check_options

PAPER_METHODS = ("random", "magnitude", "snip", "grasp", "synflow")


def parameter_scores(
    model: nn.Module,
    method: str,
    *,
    data=None,
    input_shape=None,
    seed: int = 0,
    bn_mode: str = "eval",
    temperature: float = GRASP_TEMPERATURE,
) -> dict[str, torch.Tensor]:
    """Every parameter's score under ``method``, biases included, float64, on the
    model's device.

    The scorer ``synflow.SCORERS[method]`` applied to every parameter p in float64:
    random U[0, 1) (``seed``); magnitude |p|; SNIP |dL/dp * p| and GraSP
    p * (H g)_p (g, H w.r.t. all parameters, L the cross-entropy summed over the
    ``data`` batches, GraSP's logits / ``temperature``; BatchNorm in ``bn_mode``);
    SynFlow dR/d|p| * |p| on an all-ones input of ``input_shape`` (every parameter
    as |p|). Returns ``{parameter name: scores}`` with masked weights named
    ``x.weight`` (pruned weights score 0, except under random). The model is not
    changed. Raises ValueError like :func:`synflow.compute_scores` for an unknown
    method or option, or bad data (``synflow_l2`` is not one of the paper's Figure 4
    methods but is accepted: SynFlow with p**2).

    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    >>> sorted(parameter_scores(net, "synflow", input_shape=(4,)))
    ['0.bias', '0.weight', '2.bias', '2.weight']
    """
    check_method(method)
    check_options(method, bn_mode, temperature)
    if method in DATA_METHODS and data is None:
        raise ValueError(f"{method} needs data: an iterable of (inputs, targets) batches")
    if method in SYNFLOW_METHODS and input_shape is None:
        raise ValueError(f"{method} needs input_shape (one sample's shape, e.g. (3, 32, 32))")
    if method == "random_erk":
        raise ValueError("random_erk gives layer densities, not per-parameter scores")
    scores = SCORERS[method](
        model, prunable_layers(model), all_parameters(model),
        data=list(data) if data is not None else None,
        input_shape=tuple(input_shape) if input_shape is not None else None,
        generator=torch.Generator().manual_seed(seed), bn_mode=bn_mode,
        temperature=temperature, dtype=torch.float64,
    )
    return {name: s.detach() for name, s in scores.items()}


def layer_averages(model: nn.Module, scores: dict[str, torch.Tensor]) -> pd.DataFrame:
    """Per prunable layer, Figure 4's statistic and the mean of |score| beside it.

    ``scores`` as :func:`parameter_scores` returns them (a layer's bias is read from
    ``"<layer>.bias"`` when present; weight-only scores give a bias-free statistic).
    Columns: ``layer`` (the weight's name), ``size`` (weights + biases of the layer),
    ``average`` = |sum of the layer's weight and bias scores| / size (the paper's,
    Figure 4), ``mean_abs`` = mean of |score| over the same parameters (labelled as
    ours), ``total`` = the signed sum; float64.

    >>> import torch
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(2, 1))
    >>> layer_averages(net, {"0.weight": torch.tensor([[1.0, -3.0]]), "0.bias": torch.tensor([1.0])})
          layer  size   average  mean_abs  total
    0  0.weight     3  0.333333  1.666667   -1.0
    """
    rows = []
    for name, module in prunable_layers(model).items():
        parts = [scores[name].double().flatten()]
        bias = name.removesuffix("weight") + "bias"
        if getattr(module, "bias", None) is not None and bias in scores:
            parts.append(scores[bias].double().flatten())
        values = torch.cat(parts)
        total = float(values.sum())
        rows.append({"layer": name, "size": values.numel(), "average": abs(total) / values.numel(),
                     "mean_abs": float(values.abs().mean()), "total": total})
    return pd.DataFrame(rows)


def parameter_name(name: str) -> str:
    """``x.weight_orig`` (a masked layer's dense weight) is reported as ``x.weight``.

    >>> parameter_name("features.0.weight_orig"), parameter_name("features.0.bias")
    ('features.0.weight', 'features.0.bias')
    """
    return name.removesuffix("_orig")


def saliency(
    model: nn.Module,
    objective: Callable[..., torch.Tensor],
    batches: Iterable[tuple],
    *,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    dtype: torch.dtype = torch.float64,
    train: bool = False,
) -> tuple[float, dict[str, torch.Tensor]]:
    """Synaptic saliency ``dR/dp * p`` of every parameter, weights and biases.

    ``R = sum over batches (x, *rest) of objective(model(x), *rest)``, in ``dtype``, with
    every parameter replaced by ``transform(p)`` (e.g. ``abs`` for SynFlow).
    The model runs in eval mode; ``train=True``: BatchNorm with each batch's
    statistics (dropout stays off). Its parameters, buffers and modes are left untouched.
    Returns ``(R, {name: saliency})`` with masked weights named ``x.weight``.

    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(2, 1))
    >>> R, s = saliency(net, lambda out: out.sum(), [(torch.ones(1, 2),)])
    >>> sorted(s)
    ['0.bias', '0.weight']
    """
    leaves = fresh_leaves(all_parameters(model), transform, dtype)
    with scoring_view(model, "train" if train else "eval"):
        R, grads = summed_gradient(model, prunable_layers(model), leaves,
                                   ((x.to(dtype), *rest) for x, *rest in batches),
                                   objective, dtype=dtype)
    return float(R), {name: g * p.detach() for (name, p), g in zip(leaves.items(), grads)}


def synflow_saliency(model, input_shape: Sequence[int], dtype=torch.float64):
    """R_SF and the SynFlow saliency of every parameter (|p|, all-ones input), in
    ``dtype`` (float64): SynFlow's own pass
    (:func:`synflow.core.scorers.synflow.synflow_pass`) on every parameter.

    >>> from torch import nn
    >>> R, s = synflow_saliency(nn.Sequential(nn.Linear(2, 1, bias=False)), (2,))
    >>> R == float(s["0.weight"].sum())
    True
    """
    R, scores = synflow_pass(model, prunable_layers(model), all_parameters(model),
                             tuple(input_shape), dtype)
    return float(R), scores


def loss_saliency(model, data, dtype=torch.float64, train: bool = False):
    """Signed loss saliency ``dL/dp * p`` of every parameter and L (L = cross-entropy
    summed over ``data``'s (inputs, int64 targets) batches), in ``dtype``: SNIP's own
    formula (:func:`synflow.core.scorers.gradient.loss_saliencies`) before its absolute
    value. ``train=True``: BatchNorm with each batch's statistics (dropout stays off).

    >>> from torch import nn
    >>> L, s = loss_saliency(nn.Linear(2, 3), [(torch.ones(4, 2), torch.tensor([0, 1, 2, 0]))])
    >>> sorted(s)
    ['bias', 'weight']
    """
    L, scores = loss_saliencies(model, prunable_layers(model), all_parameters(model), data=data,
                                dtype=dtype, bn_mode="train" if train else "eval")
    return float(L), scores


def weight_scores(scores: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Only the prunable weights' entries of ``scores`` (drops biases and BatchNorm).

    >>> import torch
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(2, 1))
    >>> sorted(weight_scores({"0.weight": torch.ones(1, 2), "0.bias": torch.ones(1)}, net))
    ['0.weight']
    """
    return {name: scores[name] for name in prunable_layers(model)}
