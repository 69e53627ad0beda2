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
float64, with the method's own formula (a scorer of ``synflow.SCORERS`` gives the
weights only); :func:`layer_averages` turns them into the per-layer statistic.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from ..core.masks import prunable_layers
from ..core.scorers.functional import buffer_copies, scoring_view
from ..core.scorers.gradient import GRASP_TEMPERATURE
from ..core.scoring import check_method, check_options

PAPER_METHODS = ("random", "magnitude", "snip", "grasp", "synflow")


def _leaves(model: nn.Module, transform=None) -> dict[str, torch.Tensor]:
    """Float64 autograd leaves of every parameter (masked layers: ``x.weight_orig``
    holds the effective, masked weight)."""
    leaves = {}
    for name, p in model.named_parameters():
        module_name, _, kind = name.rpartition(".")
        if kind == "weight_orig":
            p = model.get_submodule(module_name).weight
        p = p.detach().double().clone()
        leaves[name] = (transform(p) if transform else p).requires_grad_(True)
    return leaves


def _batch_gradients(model, leaves, buffers, data, temperature=1.0, direction=None):
    """Sum over ``data``'s batches of dL_b/dp (``direction`` None) or of H_b @ direction
    (one batch's graph alive at a time, so memory does not grow with the batch count);
    L_b is batch b's mean cross-entropy of logits / ``temperature``."""
    params = list(leaves.values())
    totals = [torch.zeros_like(p) for p in params]
    for inputs, targets in data:
        logits = functional_call(model, {**leaves, **buffers}, (inputs.double(),))
        loss = F.cross_entropy(logits / temperature, targets)
        grads = torch.autograd.grad(loss, params, create_graph=direction is not None,
                                    allow_unused=True)
        if direction is not None:
            inner = sum((g * d).sum() for g, d in zip(grads, direction) if g is not None)
            grads = torch.autograd.grad(inner, params, allow_unused=True)
        for total, g in zip(totals, grads):
            if g is not None:
                total += g
    return totals


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
    """Every parameter's score under ``method``, biases included, float64, on the CPU.

    The formulas of the scorers in ``synflow.SCORERS``, applied to every parameter p:
    random U[0, 1) (``seed``); magnitude |p|; SNIP |dL/dp * p| and GraSP
    p * (H g)_p (g, H w.r.t. all parameters, L the cross-entropy summed over the
    ``data`` batches, GraSP's logits / ``temperature``; BatchNorm in ``bn_mode``);
    SynFlow dR/d|p| * |p| on an all-ones input of ``input_shape`` (every parameter
    as |p|). Returns ``{parameter name: scores}`` with masked weights named
    ``x.weight`` (pruned weights score 0, except under random). The model is not
    changed. Raises ValueError like :func:`synflow.compute_scores` for an unknown
    method or option (``synflow_l2`` is not one of the paper's Figure 4 methods but
    is accepted: SynFlow with p**2).
    """
    check_method(method)
    check_options(method, bn_mode, temperature)
    if method in ("snip", "grasp") and data is None:
        raise ValueError(f"{method} needs data: an iterable of (inputs, targets) batches")
    if method in ("synflow", "synflow_l2") and input_shape is None:
        raise ValueError(f"{method} needs input_shape (one sample's shape, e.g. (3, 32, 32))")
    if method == "random_erk":
        raise ValueError("random_erk gives layer densities, not per-parameter scores")
    data = list(data) if data is not None else None
    if method == "random":
        generator = torch.Generator().manual_seed(seed)
        scores = {n: torch.rand(p.shape, generator=generator, dtype=torch.float64)
                  for n, p in _leaves(model).items()}
    elif method == "magnitude":
        scores = {n: p.detach().abs() for n, p in _leaves(model).items()}
    else:
        power = 2 if method == "synflow_l2" else 1
        leaves = _leaves(model, (lambda p: p.abs() ** power) if power == 2 else torch.abs) \
            if method.startswith("synflow") else _leaves(model)
        buffers = buffer_copies(model, torch.float64)
        params = list(leaves.values())
        with scoring_view(model, bn_mode):
            if method.startswith("synflow"):
                ones = torch.ones((1, *input_shape), dtype=torch.float64)
                R = functional_call(model, {**leaves, **buffers}, (ones,)).sum()
                grads = torch.autograd.grad(R, params, allow_unused=True)
            elif method == "snip":
                grads = _batch_gradients(model, leaves, buffers, data)
            else:  # grasp: H g, g summed over batches, then H_b g by a double backward
                gradient = _batch_gradients(model, leaves, buffers, data, temperature)
                grads = _batch_gradients(model, leaves, buffers, data, temperature, gradient)
        grads = [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]
        scores = {n: g * p.detach() for (n, p), g in zip(leaves.items(), grads)}
        if method == "snip":
            scores = {n: s.abs() for n, s in scores.items()}
    return {name.removesuffix("_orig"): s.detach() for name, s in scores.items()}


def layer_averages(model: nn.Module, scores: dict[str, torch.Tensor]) -> pd.DataFrame:
    """Per prunable layer, Figure 4's statistic and the mean of |score| beside it.

    ``scores`` as :func:`parameter_scores` returns them (a layer's bias is read from
    ``"<layer>.bias"`` when present; weight-only scores give a bias-free statistic).
    Columns: ``layer`` (the weight's name), ``size`` (weights + biases of the layer),
    ``average`` = |sum of the layer's weight and bias scores| / size (the paper's,
    Figure 4), ``mean_abs`` = mean of |score| over the same parameters (labelled as
    ours), ``total`` = the signed sum; float64.
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
    """``x.weight_orig`` (a masked layer's dense weight) is reported as ``x.weight``."""
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
    The model runs in eval mode unless ``train`` (BatchNorm then uses batch
    statistics); its parameters, buffers and mode are left untouched.
    Returns ``(R, {name: saliency})`` with masked weights named ``x.weight``.
    """
    leaves = {}
    for name, p in model.named_parameters():
        p = p.detach().to(dtype).clone()
        leaves[name] = (transform(p) if transform else p).requires_grad_(True)
    buffers = buffer_copies(model, dtype)
    R = torch.zeros((), dtype=dtype)
    grads = [torch.zeros_like(p) for p in leaves.values()]
    with scoring_view(model):
        model.train(train)
        for x, *rest in batches:
            output = functional_call(model, {**leaves, **buffers}, (x.to(dtype),))
            value = objective(output, *rest)
            for total, g in zip(grads, torch.autograd.grad(value, list(leaves.values()))):
                total += g
            R += value.detach()
    return float(R), {
        parameter_name(name): g * p.detach() for (name, p), g in zip(leaves.items(), grads)
    }


def synflow_saliency(model, input_shape: Sequence[int], dtype=torch.float64):
    """R_SF and the SynFlow saliency of every parameter (|p|, all-ones input), in float64."""
    ones = torch.ones((1, *input_shape))
    return saliency(model, torch.sum, [(ones,)], transform=torch.abs, dtype=dtype)


def loss_saliency(model, data, dtype=torch.float64, train: bool = False):
    """Signed loss saliency ``dL/dp * p`` (L = cross-entropy summed over batches)."""
    return saliency(model, F.cross_entropy, data, dtype=dtype, train=train)


def weight_scores(scores: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Only the prunable weights' entries of ``scores`` (drops biases and BatchNorm)."""
    return {name: scores[name] for name in prunable_layers(model)}
