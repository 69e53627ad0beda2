"""Masks on any nn.Module, with torch.nn.utils.prune's parameter names.

A masked layer holds its dense parameter as ``weight_orig`` (the very Parameter that was
its ``weight``) and a 0/1 buffer ``weight_mask``, the state-dict layout of
``torch.nn.utils.prune``; its ``weight`` is ``weight_orig * weight_mask``, computed on
every access (how, and what that guarantees: :mod:`synflow.core.masked`).

Which weights are pruned, left dense or refused, and why:

+-------------------------------+------------+----------------------------------------------------+
| layer or weight               | pruned?    | why                                                |
+===============================+============+====================================================+
| Linear, Conv1d/2d/3d,         | pruned     | their forward computes with ``self.weight``, a     |
| ConvTranspose1d/2d/3d         |            | linear map: the masked ``weight`` property is what |
| (subclasses too:              |            | it uses. Their biases are never pruned.            |
| MultiheadAttention's          |            |                                                    |
| out_proj)                     |            |                                                    |
+-------------------------------+------------+----------------------------------------------------+
| RNN, LSTM, GRU and their      | left       | fused kernels read them (cuDNN's flat RNN weights, |
| cells, Bilinear, Embedding,   | dense,     | ``F.multi_head_attention_forward``) or they are    |
| MultiheadAttention's packed   | warned     | lookup tables: a ``weight`` property cannot mask   |
| ``in_proj_weight``, any other |            | them. A ``CompressionWarning`` names them and      |
| parameter of rank >= 2        |            | their share of the weights (compression counts the |
|                               |            | pruned layers' weights only).                      |
+-------------------------------+------------+----------------------------------------------------+
| normalisation layers, biases, | left dense | the paper prunes the weights of conv and linear    |
| other parameters of rank 0 or |            | layers only (Section 7).                           |
| 1                             |            |                                                    |
+-------------------------------+------------+----------------------------------------------------+
| a weight shared by two        | refused    | one tensor cannot take one mask per module, and it |
| modules (tied weights)        |            | would count twice in N.                            |
+-------------------------------+------------+----------------------------------------------------+
| a weight computed by a        | refused    | the computed weight would bypass or overwrite the  |
| parametrization or a hook     |            | mask.                                              |
| (weight_norm, spectral_norm,  |            |                                                    |
| orthogonal)                   |            |                                                    |
+-------------------------------+------------+----------------------------------------------------+
| a torch.jit ScriptModule      | refused    | its compiled forward reads the weights directly,   |
| (scripted or traced) anywhere |            | where no mask can apply: prune the Python module.  |
| in the model                  |            |                                                    |
+-------------------------------+------------+----------------------------------------------------+
| a weight on the meta device,  | refused    | nothing to score (no values yet), or nothing that  |
| an uninitialised lazy weight, |            | can be trained (made under torch.inference_mode).  |
| an inference tensor           |            |                                                    |
+-------------------------------+------------+----------------------------------------------------+
| nn.DataParallel,              | unwrapped  | the module they run is pruned; mask names have no  |
| DistributedDataParallel,      |            | ``module.`` or ``_orig_mod.`` prefix.              |
| torch.compile's               |            |                                                    |
| OptimizedModule               |            |                                                    |
+-------------------------------+------------+----------------------------------------------------+
| one module reachable under    | pruned     | its weights count once, named by the module's      |
| two names (``self.features =  | once       | first name in ``named_modules()`` order.           |
| self.backbone.features``)     |            |                                                    |
+-------------------------------+------------+----------------------------------------------------+

Masks are exchanged as ``dict[str, BoolTensor]`` keyed by the weight's name in
the *unpruned* model's ``named_parameters()`` (e.g. ``"features.0.weight"``).
Saving and loading: :func:`save_pruned` / :func:`load_pruned` (in :mod:`synflow.core.saving`);
finding the prunable layers and refusing the rest: :mod:`synflow.core.prunable`.

>>> from torch import nn
>>> model = nn.Sequential(nn.Linear(3, 2))
>>> weight = model[0].weight
>>> apply_masks(model, {"0.weight": torch.tensor([[True, False, True], [False, True, True]])})
>>> model[0].weight_orig is weight, int(model[0].weight.count_nonzero())
(True, 4)
>>> remove_masks(model)
>>> model[0].weight is weight
True
"""

from __future__ import annotations

import torch
from torch import nn

from .counts import compression_of, count_kept, empty_layers, shuffle_masks  # noqa: F401
from .masked import _rebuild_masked, install, is_masked, remove_mask  # noqa: F401
from .prunable import (  # noqa: F401
    PRUNABLE_TYPES,
    READS_CHILD_WEIGHTS,
    WRAPPERS,
    check_masks,
    check_model,
    dense_weights,
    inside_reader,
    prunable_layers,
    unwrap,
    weight_count,
)

Masks = dict[str, torch.Tensor]


def effective_weight(module: nn.Module) -> torch.Tensor:
    """The weight the layer computes with (masked if it is masked), detached; same shape
    and dtype as the layer's weight.

    >>> model = nn.Sequential(nn.Linear(3, 2))
    >>> apply_masks(model, {"0.weight": torch.tensor([[True, False, True], [False, True, True]])})
    >>> int(effective_weight(model[0]).count_nonzero()), effective_weight(model[0]).requires_grad
    (4, False)
    """
    if is_masked(module):
        return (module.weight_orig * module.weight_mask).detach()
    return module.weight.detach()


def current_masks(model: nn.Module) -> Masks:
    """The boolean mask of every prunable weight (all True where none is set), keyed like
    :func:`prunable_layers`; each a copy, of the weight's shape and device.

    >>> model = nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 1))
    >>> apply_masks(model, {"0.weight": torch.tensor([[True, False, True], [False, True, True]])})
    >>> count_kept(current_masks(model))
    {'0.weight': (4, 6), '2.weight': (2, 2)}
    """
    return layer_masks(prunable_layers(model))


def layer_masks(layers: dict[str, nn.Module]) -> Masks:
    """:func:`current_masks` of the layers ``prunable_layers`` returned.

    >>> layer_masks({"0.weight": nn.Linear(3, 2)})["0.weight"].shape
    torch.Size([2, 3])
    """
    return {
        name: module.weight_mask.detach().bool().clone()
        if is_masked(module)
        else torch.ones_like(module.weight, dtype=torch.bool)
        for name, module in layers.items()
    }


def apply_masks(model: nn.Module, masks: Masks) -> None:
    """Install (or update) the masks on ``model`` in place.

    Keys must name prunable weights; shapes must match; values boolean or 0/1. Layers
    not named keep their current mask. Everything is checked before any layer changes
    (KeyError for an unknown name, ValueError otherwise); a masked layer's
    ``weight_orig`` is the Parameter that was its ``weight``. Works inside
    ``torch.no_grad()`` and ``torch.inference_mode()`` (the masks are ordinary tensors).

    >>> model = nn.Sequential(nn.Linear(3, 2))
    >>> apply_masks(model, {"0.weight": torch.tensor([[1, 0, 1], [0, 1, 1]])})
    >>> model[0].weight_mask.dtype, int(model[0].weight.count_nonzero())
    (torch.float32, 4)
    >>> apply_masks(model, {"fc.weight": torch.ones(2, 3)})
    Traceback (most recent call last):
    KeyError: "no prunable weight named ['fc.weight']; prunable: ['0.weight']"
    """
    layers = prunable_layers(model)
    check_model(model, layers)
    check_masks(layers, masks)
    install(layers, masks)


@torch.inference_mode(False)
def remove_masks(model: nn.Module) -> None:
    """Make the pruning permanent, for export (like ``torch.nn.utils.prune.remove``).

    Every masked layer gets back a plain ``weight`` parameter holding
    ``weight_orig * weight_mask`` (pruned entries exactly 0) and its original class;
    that parameter is the same object as ``weight_orig`` (and as the layer's ``weight``
    before pruning), so an optimizer built earlier keeps updating it. ``weight_orig``
    and ``weight_mask`` are gone, so the state dict has the unpruned model's keys, in its
    order (so do ``parameters()`` and an optimizer built afterwards; a layer masked by
    ``torch.nn.utils.prune`` before keeps torch's order, weight after bias), and loads
    into a fresh model of the same architecture. The zeros are no longer
    enforced: further training can make them non-zero.

    >>> model = nn.Sequential(nn.Linear(3, 2))
    >>> apply_masks(model, {"0.weight": torch.tensor([[True, False, True], [False, True, True]])})
    >>> remove_masks(model)
    >>> list(model.state_dict()), int(model[0].weight.count_nonzero())
    (['0.weight', '0.bias'], 4)
    """
    for module in prunable_layers(model).values():
        if is_masked(module):
            remove_mask(module)
