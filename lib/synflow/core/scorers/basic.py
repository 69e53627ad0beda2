"""The data-free baselines of the paper (Section 7): random and magnitude scores."""

from __future__ import annotations

import torch


def random_scores(model, layers, weights, *, generator, **_):
    """Random: i.i.d. uniform scores in [0, 1) (the paper's "random" baseline, Section 7).

    Global masking of them is uniform random pruning. One tensor of the weight's shape,
    float32, on its device, drawn from ``generator`` (a CPU ``torch.Generator``: a
    seed fixes the scores on any device). Needs no data; BatchNorm is not involved.
    """
    return {
        name: torch.rand(w.shape, generator=generator).to(w.device) for name, w in weights.items()
    }


def magnitude_scores(model, layers, weights, **_):
    """Magnitude: |w| (Han et al. 2015; the paper's baseline, Section 7).

    Same shape, dtype and device as the weight; units of the weight. Needs no data
    and no forward pass (BatchNorm is not involved). Pruned weights score 0.
    """
    return {name: w.abs() for name, w in weights.items()}
