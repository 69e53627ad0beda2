"""Whether scores can mean anything: networks SynFlow's theory does not cover, and
layers whose scores carry no information.

SynFlow (Tanaka et al. 2020, Section 5, Theorems 1-2) scores the network with every
parameter replaced by |p| on one all-ones input. Its conservation laws, and so its
protection against layer-collapse (Theorem 3), need positively homogeneous
activations, f(a x) = a f(x) for a > 0: ReLU, LeakyReLU, PReLU, RReLU in eval,
identity, max and average pooling, dropout (identity in eval), flatten; BatchNorm in
eval mode is an affine map (its running statistics), like a bias. On the all-ones
input |p| makes every pre-activation large and positive, so a saturating activation
(ReLU6, Hardtanh, Sigmoid, Tanh) passes no gradient at all (a ReLU6 MLP scores its
first layers exactly 0) and a smooth one (SiLU, GELU, ...) breaks conservation.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

# activations that are not positively homogeneous (f(a x) != a f(x) for some a > 0)
NON_HOMOGENEOUS = (
    nn.Hardtanh,  # ReLU6 is a Hardtanh
    nn.Sigmoid,
    nn.Tanh,
    nn.SiLU,
    nn.GELU,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Mish,
    nn.ELU,
    nn.CELU,
    nn.SELU,
    nn.Softplus,
    nn.Softsign,
    nn.Tanhshrink,
    nn.LogSigmoid,
    nn.Threshold,
    nn.Hardshrink,
    nn.Softshrink,
    nn.GLU,
    nn.Softmax,
    nn.Softmin,
    nn.LogSoftmax,
    nn.Softmax2d,
    nn.LayerNorm,
    nn.GroupNorm,
    nn.LocalResponseNorm,
)
_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)
_INSTANCE_NORMS = (nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)


class ScoreWarning(UserWarning):
    """Scores that may carry no information (see :func:`warn_uninformative` and
    :func:`check_synflow_network`); ``warnings.simplefilter("error", ScoreWarning)``
    turns them into errors."""


def check_synflow_network(model: nn.Module) -> None:
    """Refuse or warn about modules SynFlow's all-ones, |p| evaluation cannot score.

    Raises ValueError naming every BatchNorm or InstanceNorm layer without running
    statistics (``track_running_stats=False``): SynFlow evaluates the net in eval
    mode, where such a layer normalises the single all-ones sample by its own
    statistics instead of acting as a fixed affine map, so the scores are degenerate
    (BatchNorm2d: layer totals spread over 1e-8..5, a layer emptied at compression 10)
    or undefined (BatchNorm1d: one value per channel).

    Warns :class:`ScoreWarning` naming every module of ``NON_HOMOGENEOUS`` type
    (activations that are not positively homogeneous, and per-sample normalisations):
    SynFlow's theory does not cover them and its scores may carry no information.
    Activations called as functions inside ``forward`` (``F.relu6``) cannot be seen;
    :func:`warn_uninformative` catches their zero scores.
    """
    no_stats = [
        f"{name or type(model).__name__} ({type(m).__name__})"
        for name, m in model.named_modules()
        if isinstance(m, _BATCH_NORMS + _INSTANCE_NORMS) and not m.track_running_stats
    ]
    if no_stats:
        raise ValueError(
            f"SynFlow cannot score a network with normalisation layers that keep no "
            f"running statistics (track_running_stats=False): {', '.join(no_stats)}. "
            "SynFlow runs the net in eval mode on one all-ones input, where BatchNorm must "
            "be the fixed affine map of its running statistics; without them the layer "
            "normalises that single sample by its own statistics and the scores are "
            "degenerate. Build these layers with track_running_stats=True, or use a "
            "data-based method (snip, grasp)"
        )
    odd = [
        f"{name or type(model).__name__} ({type(m).__name__})"
        for name, m in model.named_modules()
        if isinstance(m, NON_HOMOGENEOUS)
    ]
    if odd:
        warnings.warn(
            f"SynFlow on modules that are not positively homogeneous: {', '.join(odd[:10])}"
            + (f" and {len(odd) - 10} more" if len(odd) > 10 else "")
            + ". SynFlow's conservation theory (Tanaka et al. 2020, Theorems 1-3) covers "
            "ReLU/LeakyReLU/identity activations, max/avg pooling and BatchNorm in eval "
            "mode; on its all-ones input saturating activations pass no gradient, so "
            "upstream layers may score 0 and the tie-break decides their masks",
            ScoreWarning,
            stacklevel=3,
        )


def uninformative_layers(
    flat: torch.Tensor, alive: torch.Tensor, names: list[str], sizes: list[int]
) -> list[str]:
    """Layers with alive weights that all score exactly 0 while another layer has a
    non-zero score. ``flat``: every layer's scores concatenated (1-D), pruned
    weights scoring 0; ``alive``: the boolean mask laid out the same way."""
    nonzero = [int(torch.count_nonzero(part)) for part in flat.split(sizes)]
    if all(nonzero) or not any(nonzero):
        return []
    alive_parts = alive.split(sizes)
    return [
        name
        for name, count, part in zip(names, nonzero, alive_parts)
        if count == 0 and bool(part.any())
    ]


def warn_uninformative(
    flat: torch.Tensor, alive: torch.Tensor, names: list[str], sizes: list[int]
) -> None:
    """Warn :class:`ScoreWarning` naming the :func:`uninformative_layers`: their masks
    would be decided by the tie-break (lowest index), not by the score."""
    empty = uninformative_layers(flat, alive, names, sizes)
    if empty:
        warnings.warn(
            f"every alive weight of {', '.join(empty)} scores exactly 0 while other layers' "
            "do not: the scores carry no information there and the tie-break (lowest "
            "index) decides which of its weights are kept. Causes: a saturating or "
            "non-homogeneous activation before it (SynFlow), no path through it to the "
            "output (a cut branch), or all-zero weights",
            ScoreWarning,
            stacklevel=3,
        )
