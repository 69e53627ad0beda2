"""The weights of a run beyond its masks: rewinding to init (IMP), whether the kept weights
still stand at their initial values, and the per-layer squared-weight records of the
paper's Figure 5b. Used by :mod:`synflow.experiments.execution`.

>>> import torch
>>> from synflow.experiments.weights import layer_weight_statistics
>>> net = torch.nn.Sequential(torch.nn.Linear(2, 1, bias=False))
>>> _ = torch.nn.init.ones_(net[0].weight)
>>> layer_weight_statistics(net)
[{'layer': '0.weight', 'size': 2, 'kept': 2, 'total_sq': 2.0, 'mean_sq': 1.0}]
"""

from __future__ import annotations

import torch

from ..core.masks import apply_masks, current_masks, effective_weight, prunable_layers


def rewind(model: torch.nn.Module, initial: dict) -> None:
    """Set every parameter and buffer of ``model`` back to ``initial`` (a state dict of
    the unmasked model at initialization), keeping the current masks: a masked
    layer's ``weight_orig`` gets the initial weight times its mask. Raises KeyError
    naming an entry of ``model``'s state dict that ``initial`` lacks.

    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 1))
    >>> initial = {k: v.clone() for k, v in net.state_dict().items()}
    >>> _ = torch.nn.init.zeros_(net[0].weight)
    >>> rewind(net, initial)
    >>> torch.equal(net[0].weight, initial["0.weight"])
    True
    """
    layers = prunable_layers(model)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name.endswith("weight_mask"):
                continue
            source = initial[name.removesuffix("_orig")] if name.endswith("weight_orig") else (
                initial[name])
            tensor.copy_(source)
        masks = current_masks(model)
    apply_masks(model, {name: masks[name] for name in layers})


def at_initial_values(model: torch.nn.Module, initial: dict) -> bool:
    """Whether every kept weight of ``model`` equals its value in ``initial`` (IMP's
    self-check after rewinding; pruned weights are not compared).

    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 1))
    >>> initial = {k: v.clone() for k, v in net.state_dict().items()}
    >>> at_initial_values(net, initial)
    True
    >>> _ = torch.nn.init.zeros_(net[0].weight)
    >>> at_initial_values(net, initial)
    False
    """
    for name, module in prunable_layers(model).items():
        mask = _current_masks_of(module).bool()
        if not torch.equal(effective_weight(module)[mask], initial[name].to(mask.device)[mask]):
            return False
    return True


def layer_weight_statistics(model: torch.nn.Module) -> list[dict]:
    """Per prunable layer: ``size`` (all weights), ``kept`` (unpruned), ``mean_sq`` (mean
    squared effective weight over the kept weights) and ``total_sq`` (their sum), in
    float64 -- the quantities of the paper's Figure 5b.

    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 2), torch.nn.ReLU(), torch.nn.Linear(2, 1))
    >>> [(row["layer"], row["size"], row["kept"]) for row in layer_weight_statistics(net)]
    [('0.weight', 8, 8), ('2.weight', 2, 2)]
    """
    rows = []
    for name, module in prunable_layers(model).items():
        weight = effective_weight(module).double()
        kept = int(torch.count_nonzero(_current_masks_of(module)))
        total = float(weight.pow(2).sum())
        rows.append(
            {"layer": name, "size": weight.numel(), "kept": kept, "total_sq": total,
             "mean_sq": total / max(kept, 1)}
        )
    return rows


def _current_masks_of(module: torch.nn.Module) -> torch.Tensor:
    mask = getattr(module, "weight_mask", None)
    return mask if mask is not None else torch.ones_like(module.weight, dtype=torch.bool)
