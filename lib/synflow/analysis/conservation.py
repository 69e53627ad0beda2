"""Theorems 1 and 2 of Tanaka et al. (2020), measured: neuron-wise and network-wise
conservation of synaptic saliency (Figures 3 and 4), and the network edits of their
controls (another activation, non-zero biases, a rescaled layer)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..core.masks import prunable_layers
from .saliency import weight_scores


def with_activation(model: nn.Module, activation: Callable[[], nn.Module]) -> nn.Module:
    """Replace every ReLU of ``model`` (in place) by ``activation()``; returns the model.

    >>> from torch import nn
    >>> net = with_activation(nn.Sequential(nn.Linear(2, 2), nn.ReLU()), nn.Tanh)
    >>> type(net[1]).__name__
    'Tanh'
    """
    for parent in list(model.modules()):
        for child_name, child in parent.named_children():
            if isinstance(child, nn.ReLU):
                setattr(parent, child_name, activation())
    return model


def fill_biases(model: nn.Module, value: float) -> nn.Module:
    """Set every Conv/Linear bias to ``value`` (in place); returns the model.

    >>> from torch import nn
    >>> fill_biases(nn.Sequential(nn.Linear(2, 3)), 0.5)[0].bias.tolist()
    [0.5, 0.5, 0.5]
    """
    with torch.no_grad():
        for module in prunable_layers(model).values():
            if module.bias is not None:
                module.bias.fill_(value)
    return model


def rescale_layer(model: nn.Module, name: str, factor: float) -> nn.Module:
    """Multiply the prunable weight ``name`` by ``factor`` (in place); returns the model.

    >>> import torch
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(2, 1, bias=False))
    >>> _ = nn.init.ones_(net[0].weight)
    >>> rescale_layer(net, "0.weight", 3.0)[0].weight.tolist()
    [[3.0, 3.0]]
    """
    module = prunable_layers(model)[name]
    with torch.no_grad():
        target = module.weight_orig if hasattr(module, "weight_orig") else module.weight
        target.mul_(factor)
    return model


def _units(module: nn.Module, side: str) -> int:
    if isinstance(module, nn.Linear):
        return module.out_features if side == "out" else module.in_features
    if getattr(module, "groups", 1) != 1:
        raise ValueError("grouped convolutions are not supported")
    return module.out_channels if side == "out" else module.in_channels


def chain_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The prunable layers of a plain feed-forward net (MLP, VGG) in order.

    Checks that each layer reads exactly the previous layer's units (a Linear
    after a flatten reads ``k`` features per channel) and that each weight's axes are
    (output units, input units, ...); raises ValueError otherwise, e.g. for a ResNet's
    downsampling shortcuts, a ConvTranspose (axes (in, out, ...)) or a grouped
    convolution. Only shapes are checked, in registration order: an identity shortcut
    whose shapes match, or a forward that calls the layers in another order, is not
    seen, and gives meaningless flows.

    >>> from torch import nn
    >>> [name for name, _ in chain_layers(nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)))]
    ['0.weight', '2.weight']
    >>> chain_layers(nn.Sequential(nn.Linear(4, 3), nn.Linear(2, 2)))
    Traceback (most recent call last):
        ...
    ValueError: 1.weight does not read 0.weight's 3 units: not a chain of layers
    """
    layers = list(prunable_layers(model).items())
    for name, layer in layers:
        if isinstance(layer, nn.modules.conv._ConvTransposeNd) or getattr(layer, "groups", 1) > 1:
            raise ValueError(f"{name} is a {type(layer).__name__}{' with groups' * (layer.groups > 1)}"
                             ": its weight's axes are not (output units, input units, ...), "
                             "which the per-unit flows read; not supported")
    for (a, first), (b, second) in itertools.pairwise(layers):
        out, into = _units(first, "out"), _units(second, "in")
        flattens = isinstance(second, nn.Linear) and into % out == 0
        if out != into and not flattens:
            raise ValueError(f"{b} does not read {a}'s {out} units: not a chain of layers")
    return layers


def neuron_flows(model: nn.Module, scores: dict[str, torch.Tensor]) -> pd.DataFrame:
    """Incoming vs outgoing total score of every hidden unit of a chain net.

    For the unit (channel) ``c`` of layer ``l``: incoming = the summed scores of
    its incoming weights (plus its bias's score when ``scores`` holds
    ``"<layer>.bias"``), outgoing = the summed scores of the next layer's
    weights that read it (all spatial positions; after a flatten, all the
    features the channel becomes). Pooling between layers keeps channels, so a
    channel is the unit. Returns one row per unit: layer, depth, unit, incoming, outgoing.

    >>> import torch
    >>> from torch import nn
    >>> from synflow.analysis.saliency import synflow_saliency
    >>> net = nn.Sequential(nn.Linear(4, 3, bias=False), nn.ReLU(), nn.Linear(3, 2, bias=False))
    >>> _, scores = synflow_saliency(net, (4,))
    >>> flows = neuron_flows(net, scores)
    >>> list(flows.columns), len(flows), bool((flows.incoming - flows.outgoing).abs().max() < 1e-9)
    (['layer', 'depth', 'unit', 'incoming', 'outgoing'], 3, True)
    """
    layers = chain_layers(model)
    if len(layers) < 2:
        raise ValueError(f"neuron_flows needs two or more prunable layers (hidden units between "
                         f"them), got {len(layers)}")
    rows = []
    for depth, ((name, _), (next_name, _)) in enumerate(itertools.pairwise(layers)):
        incoming = scores[name].double().flatten(1).sum(1)
        bias = name[: -len("weight")] + "bias"
        if bias in scores:
            incoming = incoming + scores[bias].double()
        reading = scores[next_name].double().transpose(0, 1).flatten(1).sum(1)
        outgoing = reading.view(len(incoming), -1).sum(1)  # flatten: k features per channel
        rows.append(
            pd.DataFrame(
                {
                    "layer": name,
                    "depth": depth,
                    "unit": np.arange(len(incoming)),
                    "incoming": incoming.numpy(),
                    "outgoing": outgoing.numpy(),
                }
            )
        )
    return pd.concat(rows, ignore_index=True)


def neuronwise_residual(flows: pd.DataFrame) -> float:
    """max |incoming - outgoing| over units, relative to the largest |flow| (0 = conserved).

    >>> import pandas as pd
    >>> neuronwise_residual(pd.DataFrame({"incoming": [1.0, 2.0], "outgoing": [1.0, 1.5]}))
    0.25
    """
    scale = max(flows["incoming"].abs().max(), flows["outgoing"].abs().max())
    return float((flows["incoming"] - flows["outgoing"]).abs().max() / scale)


def layer_statistics(scores: dict[str, torch.Tensor]) -> pd.DataFrame:
    """Per layer: size, total score (signed sum) and mean |score|, in float64.

    >>> import torch
    >>> layer_statistics({"a.weight": torch.tensor([1.0, -3.0]), "b.weight": torch.ones(4)})
          layer  size  total  mean_abs
    0  a.weight     2   -2.0       2.0
    1  b.weight     4    4.0       1.0
    """
    return pd.DataFrame(
        [
            {
                "layer": name,
                "size": s.numel(),
                "total": float(s.double().sum()),
                "mean_abs": float(s.double().abs().mean()),
            }
            for name, s in scores.items()
        ]
    )


def total_spread(totals: Iterable[float]) -> float:
    """(max - min) / max |total| of the layer totals (0 = every layer carries the same total).

    >>> total_spread([2.0, 2.0, 1.0])
    0.5
    """
    values = np.asarray(list(totals), dtype=float)
    return float((values.max() - values.min()) / np.abs(values).max())


def fit_slope(sizes: Iterable[float], averages: Iterable[float]) -> float:
    """Least-squares slope of log10(average) against log10(1 / size).

    Slope 1: the average score is proportional to 1/size, i.e. every layer's
    total is the same (Theorem 2); slope 0: the average does not depend on size.

    >>> round(fit_slope([10, 100, 1000], [0.1, 0.01, 0.001]), 6)
    1.0
    >>> fit_slope([10, 10], [0.1, 0.2])  # one size: no slope to fit
    nan
    """
    x = -np.log10(np.asarray(list(sizes), dtype=float))
    y = np.log10(np.asarray(list(averages), dtype=float))
    if len(np.unique(x)) < 2:
        return math.nan
    return float(np.polyfit(x, y, 1)[0])


def conservation_summary(model: nn.Module, scores: dict[str, torch.Tensor]) -> dict[str, float]:
    """The Figure 3/4 numbers of one score: correlation and median relative
    difference of incoming vs outgoing unit flows, worst relative residual,
    fitted slope of mean |score| vs 1/size and the spread of layer totals.

    >>> import torch
    >>> from torch import nn
    >>> from synflow.analysis.saliency import synflow_saliency
    >>> _ = torch.manual_seed(0)
    >>> net = nn.Sequential(nn.Linear(4, 3, bias=False), nn.ReLU(), nn.Linear(3, 2, bias=False))
    >>> summary = conservation_summary(net, synflow_saliency(net, (4,))[1])
    >>> sorted(summary)
    ['correlation', 'layer_total_spread', 'median_relative_difference', 'neuronwise_residual', 'slope']
    >>> round(summary["correlation"], 6), round(summary["layer_total_spread"], 6)
    (1.0, 0.0)
    """
    flows = neuron_flows(model, scores)
    inc, out = flows["incoming"].to_numpy(), flows["outgoing"].to_numpy()
    scale = (np.abs(inc) + np.abs(out)) / 2
    relative = np.abs(inc - out) / np.where(scale > 0, scale, 1)  # a dead unit: 0 in, 0 out
    stats = layer_statistics(weight_scores(scores, model))
    return {
        "correlation": float(np.corrcoef(inc, out)[0, 1]),
        "median_relative_difference": float(np.median(relative)),
        "neuronwise_residual": neuronwise_residual(flows),
        "slope": fit_slope(stats["size"], stats["mean_abs"]),
        "layer_total_spread": total_spread(stats["total"]),
    }
