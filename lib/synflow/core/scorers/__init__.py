"""Pruning scores, one plain function per method, registered in ``SCORERS`` (one literal).

Every scorer takes ``(model, layers, weights, *, data, input_shape, generator)`` and
returns ``{"<module path>.weight": scores}`` for the weights in ``layers``
(as returned by :func:`synflow.core.masks.prunable_layers`): one tensor of the weight's
shape per layer, in the weight's dtype (SynFlow: float32 or float64), on its device,
dimensionless. Sign convention: higher = keep (``prune(invert=True)`` keeps the lowest).
``weights`` are the layers' current effective (masked) weights; the pruning loop also
passes ``alive``, the current boolean masks (scorers take ``**_`` for what they ignore).

Scorers never touch the live model's state: the forward passes run through
``torch.func.functional_call`` on detached copies of the parameters, so the
model's weights, buffers, ``.grad`` fields and train/eval flags are the same
afterwards, even when scoring raises (see :func:`synflow.core.scorers.functional.scoring_view`).

The sets below are the one definition of what each method needs and does.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .basic import magnitude_scores, random_scores
from .erk import random_erk_scores
from .gradient import grasp_scores, snip_scores
from .synflow import synflow_l2_scores, synflow_scores

Scorer = Callable[..., dict[str, torch.Tensor]]

SCORERS: dict[str, Scorer] = {
    "random": random_scores,
    "magnitude": magnitude_scores,
    "snip": snip_scores,
    "grasp": grasp_scores,
    "synflow": synflow_scores,
    "synflow_l2": synflow_l2_scores,
    "random_erk": random_erk_scores,
}

DATA_METHODS = frozenset({"snip", "grasp"})  # score with labelled data
SYNFLOW_METHODS = frozenset({"synflow", "synflow_l2"})  # SynFlow's path-norm passes
# pruned in many iterations in the paper's experiments (Algorithm 1, 100 iterations); the
# other methods single-shot (Section 7)
ITERATIVE_METHODS = SYNFLOW_METHODS
# scores of the form f(w) * w or |w|: a pruned (zero) weight scores exactly 0
ZERO_WHEN_PRUNED = frozenset({"magnitude", "snip", "grasp", "synflow", "synflow_l2"})
BN_MODE_METHODS = DATA_METHODS  # the scores that run data through BatchNorm
TEMPERATURE_METHODS = frozenset({"grasp"})
# scores that set each layer's density through the global ranking: in local scope every
# layer keeps the same fraction, uniformly at random ("random"'s masks)
GLOBAL_ONLY_METHODS = frozenset({"random_erk"})
# the paper's five methods, in the order of its figures (Figures 1-4, 6)
PAPER_METHODS = ("random", "magnitude", "snip", "grasp", "synflow")
