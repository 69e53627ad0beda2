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

import math
import warnings

import torch
from torch import nn

from .masks import dense_weights, unwrap, weight_count
from .stack import outside_stacklevel

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
    nn.RMSNorm,
    nn.LocalResponseNorm,
    nn.MultiheadAttention,  # a softmax inside
    nn.RNNBase,  # RNN, LSTM, GRU: tanh and sigmoid gates, and a recurrence
    nn.RNNCellBase,
)
_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)
_INSTANCE_NORMS = (nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)


class ScoreWarning(UserWarning):
    """Scores that may carry no information (see :func:`warn_uninformative` and
    :func:`check_synflow_network`); ``warnings.simplefilter("error", ScoreWarning)``
    turns them into errors.

    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     check_synflow_network(nn.Sequential(nn.Linear(2, 2), nn.Tanh()))
    >>> [w.category.__name__ for w in caught]
    ['ScoreWarning']
    """


class CompressionWarning(UserWarning):
    """The model's real compression is not the one asked: weights no mask can govern are
    left dense (:func:`warn_dense`), or the masks end far from the asked compression
    (:func:`warn_far_from`).

    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     warn_far_from(10, 100, density=0.5, scope="global", layers=2)
    >>> [w.category.__name__ for w in caught]
    ['CompressionWarning']
    """


def check_synflow_network(model: nn.Module) -> None:
    """Refuse or warn about modules SynFlow's all-ones, |p| evaluation cannot score.

    Raises ValueError naming every
    BatchNorm or InstanceNorm layer without running
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

    >>> check_synflow_network(nn.Sequential(nn.Linear(2, 2), nn.ReLU()))  # nothing to say
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("error")
    ...     check_synflow_network(nn.Sequential(nn.Linear(2, 2), nn.Sigmoid()))
    Traceback (most recent call last):
    synflow.core.diagnostics.ScoreWarning: SynFlow on modules that are not positively homogeneous: 1 (Sigmoid). ...
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
            stacklevel=outside_stacklevel(),
        )


def uninformative_layers(
    flat: torch.Tensor, alive: torch.Tensor, names: list[str], sizes: list[int]
) -> list[str]:
    """Layers with alive weights that all score exactly 0: while another layer has a
    non-zero score, or, when no alive weight scores anything but 0, every layer with
    alive weights. ``flat``: every layer's scores concatenated (1-D), pruned weights
    scoring 0; ``alive``: the boolean mask laid out the same way; ``sizes``: the layers'
    numbers of weights, in ``names``' order.

    >>> scores, alive = torch.tensor([0.0, 0.0, 0.5]), torch.ones(3, dtype=torch.bool)
    >>> uninformative_layers(scores, alive, ["a.weight", "b.weight"], [2, 1])
    ['a.weight']
    """
    nonzero = [int(torch.count_nonzero(part)) for part in flat.split(sizes)]
    return _uninformative(nonzero, [bool(part.any()) for part in alive.split(sizes)], names)


def _uninformative(nonzero: list[int], alive: list[bool], names: list[str]) -> list[str]:
    """:func:`uninformative_layers` from each layer's count of non-zero scores and whether
    it has alive weights."""
    if all(nonzero):
        return []
    return [name for name, count, any_alive in zip(names, nonzero, alive)
            if count == 0 and any_alive]


def warn_uninformative(
    flat: torch.Tensor, alive: torch.Tensor, names: list[str], sizes: list[int]
) -> None:
    """Warn :class:`ScoreWarning` naming the :func:`uninformative_layers`: their masks
    would be decided by the tie-break (lowest index), not by the score. When no alive
    weight scores anything but 0 the whole mask would be decided so, and the warning
    says that.

    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("error")
    ...     warn_uninformative(torch.tensor([0.0, 0.0, 0.5]), torch.ones(3, dtype=torch.bool),
    ...                        ["a.weight", "b.weight"], [2, 1])
    Traceback (most recent call last):
    synflow.core.diagnostics.ScoreWarning: every alive weight of a.weight scores exactly 0 while
    other layers' do not: ...
    """
    nonzero = [int(torch.count_nonzero(part)) for part in flat.split(sizes)]
    alive_any = [bool(part.any()) for part in alive.split(sizes)]
    warn_uninformative_counts(nonzero, alive_any, names)


def warn_uninformative_counts(nonzero: list[int], alive: list[bool], names: list[str]) -> None:
    """:func:`warn_uninformative` from each layer's count of non-zero scores (pruned
    weights scoring 0) and whether it has alive weights (the pruning loop's SynFlow path,
    which scores the alive weights only).

    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("error")
    ...     warn_uninformative_counts([0, 1], [True, True], ["a.weight", "b.weight"])
    Traceback (most recent call last):
    synflow.core.diagnostics.ScoreWarning: every alive weight of a.weight scores exactly 0 while
    other layers' do not: ...
    """
    empty = _uninformative(nonzero, alive, names)
    if not empty:
        return
    if not any(nonzero):  # pruned weights score 0 too
        message = (
            f"every alive weight of every layer ({', '.join(empty[:10])}"
            + (f" and {len(empty) - 10} more" if len(empty) > 10 else "")
            + ") scores exactly 0: the scores carry no information at all and the mask is "
            "decided by position (lowest index first), not by the score. Causes: an output "
            "layer initialised to zero (torchvision's VisionTransformer zeroes its head; "
            "SynFlow's R and SNIP's gradients are then 0), a network with no path left from "
            "input to output (layer-collapse), or all-zero weights. Initialise the last "
            "layer with non-zero weights, or use a method that does not need a signal "
            "through the network (magnitude, random)"
        )
    else:
        message = (
            f"every alive weight of {', '.join(empty)} scores exactly 0 while other layers' "
            "do not: the scores carry no information there and the tie-break (lowest "
            "index) decides which of its weights are kept. Causes: a saturating or "
            "non-homogeneous activation before it (SynFlow), no path through it to the "
            "output (a cut branch), or all-zero weights"
        )
    warnings.warn(message, ScoreWarning, stacklevel=outside_stacklevel())


def warn_dense(model: nn.Module, layers: dict[str, nn.Module]) -> None:
    """Warn :class:`CompressionWarning` naming the weights of rank >= 2 that no mask
    governs (:func:`synflow.core.masks.dense_weights`: RNN/LSTM/GRU weights, embeddings,
    MultiheadAttention's ``in_proj_weight``, ...) and their share of all such weights.

    >>> model = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 2))
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("error")
    ...     warn_dense(model, {"1.weight": model[1]})
    Traceback (most recent call last):
    synflow.core.diagnostics.CompressionWarning: 0.weight (40 weights, 83.3 % of the model's 48
    weights of rank >= 2) are left dense: ...
    """
    dense = dense_weights(model, layers)
    if not dense:
        return
    left = sum(dense.values())
    total = left + weight_count(layers)
    buffers = {name for name, _ in unwrap(model).named_buffers()}
    names = [f"{name.removesuffix('_orig')} (masked by torch.nn.utils.prune, not by synflow)"
             if name.endswith("_orig") and name.removesuffix("_orig") + "_mask" in buffers
             else name for name in dense]
    warnings.warn(
        f"{', '.join(names[:8])}" + (f" and {len(names) - 8} more" if len(names) > 8 else "")
        + f" ({left:,} weights, {100 * left / total:.1f} % of the model's {total:,} weights "
        "of rank >= 2) are left dense: only Linear, Conv and ConvTranspose weights take a "
        "mask (the table in synflow.core.masks says why). Compression counts the pruned "
        "layers' weights only, so the model as a whole is compressed less",
        CompressionWarning,
        stacklevel=outside_stacklevel(),
    )


def warn_far_from(masks_kept: int, total: int, density: float, scope: str, layers: int) -> None:
    """Warn :class:`CompressionWarning` when the masks keep ``masks_kept`` of ``total``
    weights and their compression is more than 10 % away from ``1 / density``, the
    asked one (existing masks sparser than asked, local scope's rounding and its one
    weight kept per layer, the rounding of round(N * density) for a tiny N).

    >>> warn_far_from(52, 100, density=0.5, scope="global", layers=2)  # within 10 %: silent
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("error")
    ...     warn_far_from(10, 100, density=0.5, scope="global", layers=2)
    Traceback (most recent call last):
    synflow.core.diagnostics.CompressionWarning: compression 2 was asked, the masks have
    compression 10 (10 of 100 weights kept, 50 asked): masks only shrink: ...
    """
    asked, got = 1 / density, (total / masks_kept if masks_kept else math.inf)
    if abs(got / asked - 1) <= 0.1:
        return
    if masks_kept < round(total * density):
        why = ("masks only shrink: weights pruned earlier (before this call, or at an "
               "earlier step's lower density) stay pruned and too few were alive"
               + (" in some layers (local scope keeps each layer's share of ALL its weights, "
                  "at most its alive ones)" if scope == "local" else ""))
    elif masks_kept == round(total * density):
        why = (f"exactly the round(N * density) asked are kept; with N = {total:,} weights "
               "that rounding moves the compression this far")
    else:
        why = (f"local scope keeps max(1, round(n_l * density)) weights in each of the "
               f"{layers} layers")
    warnings.warn(
        f"compression {asked:.4g} was asked, the masks have compression {got:.4g} "
        f"({masks_kept:,} of {total:,} weights kept, {round(total * density):,} asked): {why}",
        CompressionWarning,
        stacklevel=outside_stacklevel(),
    )
