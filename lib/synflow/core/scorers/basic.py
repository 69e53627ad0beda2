"""The data-free baselines of the paper (Section 7): random and magnitude scores."""

from __future__ import annotations

import torch

from .functional import check_materialized


def random_scores(model, layers, weights, *, generator, dtype=None, **_):
    """Random: i.i.d. uniform scores in [0, 1) (the paper's "random" baseline, Section 7).

    Global masking of them is uniform random pruning. One tensor of the weight's shape,
    in ``dtype`` (default float32), on its device, drawn from ``generator`` (a CPU
    ``torch.Generator``: a seed fixes the scores on any device), weight after weight in
    the order of ``weights``. Needs no data; BatchNorm is not involved. The authors'
    code draws standard normal scores: the same masks in distribution (any i.i.d.
    continuous law ranks alike), other sums per unit (docs/differences.md).

    >>> w = {"0.weight": torch.zeros(2, 3)}
    >>> random_scores(None, None, w, generator=torch.Generator().manual_seed(0))["0.weight"].shape
    torch.Size([2, 3])
    """
    check_materialized(weights)
    return {
        name: torch.rand(w.shape, generator=generator, dtype=dtype).to(w.device)
        for name, w in weights.items()
    }


def magnitude_scores(model, layers, weights, *, dtype=None, **_):
    """Magnitude: |w| (Han et al. 2015; the paper's baseline, Section 7).

    Same shape and device as the weight, in ``dtype`` (default the weight's); units of
    the weight. Needs no data and no forward pass (BatchNorm is not involved). Pruned
    weights score 0.

    >>> magnitude_scores(None, None, {"0.weight": torch.tensor([[-2.0, 1.0]])})["0.weight"]
    tensor([[2., 1.]])
    """
    check_materialized(weights)
    return {name: (w.to(dtype) if dtype else w).abs() for name, w in weights.items()}
