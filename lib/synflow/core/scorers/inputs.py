"""What the scorers take and what they need back: data batches, input shapes, logits.

Every check here names the value it was given and what is allowed, so that a wrong
input never surfaces as a raw Python or torch error from inside a scorer:

* ``data`` gives (inputs, targets) pairs (:func:`check_batch`);
* the model returns its logits as one tensor (:func:`check_logits`);
* batches reach the model on its device, in the scoring dtype (:func:`batches_of`);
* torch's shape and dtype errors from a scoring forward are re-raised naming the
  cause (:func:`explained_errors`), and an embedding fed float values is named
  (:func:`embedding_guard`): SynFlow's all-ones float input cannot index one.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Iterable

import torch
from torch import nn
from torch.nn.modules.module import register_module_forward_pre_hook

BATCHES = ("an iterable of (inputs, targets) pairs: inputs a float tensor (B, *input_shape) "
           "(or integer token ids), targets int64 class indices (B,)")


def _describe(value) -> str:
    if isinstance(value, torch.Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    if isinstance(value, dict):
        return f"a dict with keys {list(value)[:6]}"
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return f"a namedtuple {type(value).__name__} with fields {list(value._fields)}"
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)}: ({', '.join(type(v).__name__ for v in value)})"
    return f"a {type(value).__name__}"


def check_batch(batch, index: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``batch`` as ``(inputs, targets)``: inputs a float (or integer) tensor (B, ...),
    targets integer class indices (B,), returned as int64.

    Raises ValueError naming batch ``index`` and what it holds otherwise (a dict, a
    triple, a lone tensor, float or one-hot targets, B that differ).

    >>> inputs, targets = check_batch((torch.zeros(2, 3), torch.tensor([0, 1])), 0)
    >>> check_batch({"x": torch.zeros(2, 3)}, 0)
    Traceback (most recent call last):
    ValueError: data must be an iterable of (inputs, targets) pairs: ...
    """
    pair = isinstance(batch, (tuple, list)) and len(batch) == 2
    if not pair or not all(isinstance(t, torch.Tensor) for t in batch):
        hint = " (e.g. ((b['image'], b['label']) for b in loader))" if isinstance(batch, dict) else ""
        raise ValueError(f"data must be {BATCHES}; batch {index} is {_describe(batch)}{hint}")
    inputs, targets = batch
    if inputs.dim() == 0 or not (inputs.is_floating_point() or _integral(inputs)):
        raise ValueError(f"data must be {BATCHES}; the inputs of batch {index} are "
                         f"{_describe(inputs)}")
    if not _integral(targets) or targets.dim() != 1 or len(targets) != len(inputs):
        why = (" (class probabilities or one-hot targets are not taken: give the class "
               "indices, e.g. targets.argmax(1), or targets.long() for whole numbers)"
               if targets.is_floating_point() else "")
        raise ValueError(f"data must be {BATCHES}; the targets of batch {index} are "
                         f"{_describe(targets)} for {len(inputs)} inputs{why}")
    return inputs, targets.long()


def _integral(tensor: torch.Tensor) -> bool:
    return not (tensor.is_floating_point() or tensor.is_complex() or tensor.dtype == torch.bool)


def first_inputs(data: Iterable) -> torch.Tensor:
    """The inputs of ``data``'s first batch (checked by :func:`check_batch`); ValueError
    if ``data`` gives none.

    >>> first_inputs([(torch.zeros(2, 3), torch.tensor([0, 1]))]).shape
    torch.Size([2, 3])
    """
    for batch in data:
        return check_batch(batch, 0)[0]
    raise ValueError(f"data gave no batches; it must be {BATCHES}")


def check_logits(model: nn.Module, output) -> torch.Tensor:
    """``output`` if it is a tensor, else ValueError: the scorers need the model to return
    its logits as one tensor (SNIP and GraSP take the cross-entropy of it, SynFlow sums
    it); a tuple, dict or namedtuple (e.g. logits with auxiliary outputs) is refused
    naming what it holds, with the wrapper that picks the logits.

    >>> check_logits(nn.Identity(), torch.zeros(1, 2)).shape
    torch.Size([1, 2])
    >>> check_logits(nn.Identity(), (torch.zeros(1, 2), torch.zeros(1)))
    Traceback (most recent call last):
    ValueError: the scorers need the model to return its logits as one tensor (B, classes);
    Identity returned a tuple of 2: (Tensor, Tensor). Prune a wrapper ...
    """
    if isinstance(output, torch.Tensor):
        return output
    raise ValueError(
        f"the scorers need the model to return its logits as one tensor (B, classes); "
        f"{type(model).__name__} returned {_describe(output)}. Prune a wrapper whose forward "
        "returns the logits, e.g. class Logits(nn.Module): __init__: self.net = model; "
        "forward(x): return self.net(x)[0] (or ['logits']). Pruning the wrapper masks the "
        "model's own layers in place (mask names get the prefix 'net.')"
    )


class InputShapeError(ValueError, RuntimeError):
    """The model cannot take inputs of the given shape (a ValueError; also a RuntimeError,
    what torch raised before this check existed).

    >>> from synflow.core.scoring import compute_scores
    >>> try:
    ...     compute_scores(nn.Sequential(nn.Linear(4, 2)), "synflow", input_shape=(3,))
    ... except InputShapeError as error:
    ...     print(isinstance(error, ValueError), isinstance(error, RuntimeError))
    True True
    """


class ForwardDtypeError(ValueError, RuntimeError):
    """The model's forward mixes dtypes when run in the scoring dtype (a ValueError; also
    the RuntimeError torch raised).

    >>> from synflow.core.scoring import compute_scores
    >>> net = nn.Sequential(nn.Linear(2, 1))
    >>> _ = net.register_forward_pre_hook(lambda module, args: (args[0].float(),))  # a cast
    >>> compute_scores(net, "synflow", input_shape=(2,))
    Traceback (most recent call last):
    synflow.core.scorers.inputs.ForwardDtypeError: the forward pass mixes dtypes: scoring runs
    the whole model in torch.float64 ...
    """


_SHAPE_WORDS = ("shape", "size", "channel", "dimension", "Expected", "expected")
_DTYPE_ERROR = re.compile(r"dtype|scalar type|type \(|Tensor type|should be the same|"
                          r"have the same type|to have type", re.IGNORECASE)
_SPATIAL = {1: "L", 2: "H, W", 3: "D, H, W"}  # torch's layout after the channels


def _expected_input(layers: dict[str, nn.Module], sample: tuple) -> str:
    """What the first prunable layer expects, in words, e.g. "features.0.weight (Conv2d)
    expects 3 input channels: input_shape=(3, H, W)"; when ``sample`` gives it what it
    expects, that the clash is elsewhere."""
    name, module = next(iter(layers.items()))
    kind = type(module).__name__
    def elsewhere(count, unit):
        return (f"{name} ({kind}), the first prunable layer, gets the {count} {unit} it "
                "expects; the clash is elsewhere (an image too small for a kernel or for the "
                "network's pooling, a flattened size that is not a Linear's in_features)")

    if hasattr(module, "in_features"):
        if module.in_features in (sample[-1] if sample else None, math.prod(sample)):
            return elsewhere(module.in_features, "input features")
        return (f"{name} ({kind}) expects {module.in_features} input features: an input_shape "
                f"whose last dimension (or flattened size) is {module.in_features}")
    if hasattr(module, "in_channels"):
        if len(sample) == len(module.kernel_size) + 1 and sample[0] == module.in_channels:
            return elsewhere(module.in_channels, "input channels")
        spatial = _SPATIAL.get(len(module.kernel_size), "...")
        return (f"{name} ({kind}) expects {module.in_channels} input channels: input_shape="
                f"({module.in_channels}, {spatial}), channels first, no batch dimension")
    return f"{name} ({kind}) is the first prunable layer"


def _dtypes(model: nn.Module) -> str:
    found: dict[torch.dtype, list[str]] = {}
    for name, p in model.named_parameters():
        if p.is_floating_point():
            found.setdefault(p.dtype, []).append(name)
    return "; ".join(f"{str(d).removeprefix('torch.')}: {', '.join(n[:3])}"
                     + (f" and {len(n) - 3} more" if len(n) > 3 else "") for d, n in found.items())


@contextlib.contextmanager
def explained_errors(model: nn.Module, layers: dict[str, nn.Module], inputs: torch.Tensor,
                     dtype: torch.dtype | None):
    """Re-raise torch's errors from a scoring forward naming their cause: a dtype clash
    as :class:`ForwardDtypeError` (the forward casts tensors itself while scoring runs
    the whole model in one dtype), a shape clash as :class:`InputShapeError` (naming
    the input shape given and the one the first layer expects).

    >>> model = nn.Sequential(nn.Linear(4, 2))
    >>> with explained_errors(model, {"0.weight": model[0]}, torch.zeros(1, 3), None):
    ...     model(torch.zeros(1, 3))
    Traceback (most recent call last):
    synflow.core.scorers.inputs.InputShapeError: the model cannot take inputs of shape (3,)
    (one sample, from input_shape or data): 0.weight (Linear) expects 4 input features: ...
    """
    try:
        yield
    except RuntimeError as error:
        if isinstance(error, ValueError):
            raise
        if _DTYPE_ERROR.search(str(error)):
            dtype = dtype or inputs.dtype
            raise ForwardDtypeError(
                f"the forward pass mixes dtypes: scoring runs the whole model in {dtype} (every "
                "parameter, buffer and input cast to it: SynFlow's passes in float64, or "
                "float32 with precision='float32'; SNIP and GraSP in the model's dtype, float32 "
                "for float16/bfloat16 models), but the forward converts some tensors to a dtype "
                "of its own (x.float(), .half(), a mixed-precision model; its parameters: "
                f"{_dtypes(model)}). Make the forward follow its parameters' dtype (e.g. "
                f"x.to(self.head.weight.dtype)) for pruning. torch said: {error}"
            ) from error
        if not any(word in str(error) for word in _SHAPE_WORDS):
            raise
        sample = tuple(inputs.shape[1:])
        hint = ""
        # channels last: the last dimension is what the first layer expects as channels
        # and the first is not
        channels = getattr(next(iter(layers.values()), None), "in_channels", None)
        if len(sample) == 3 and sample[-1] == channels != sample[0]:
            hint = f" {sample} looks channels-last (H, W, C): try {(sample[-1], *sample[:-1])}."
        raise InputShapeError(
            f"the model cannot take inputs of shape {sample} (one sample, from input_shape or "
            f"data): {_expected_input(layers, sample)}.{hint} torch said: {error}"
        ) from error


SYNFLOW_INPUT = "SynFlow's all-ones float input"
EMBEDDINGS = (nn.Embedding, nn.EmbeddingBag)


@contextlib.contextmanager
def embedding_guard(model: nn.Module, source: str):
    """For the duration, refuse float values fed to an ``nn.Embedding``/``EmbeddingBag`` of
    ``model``, naming the module: an embedding takes integer indices. ``source`` names
    where the input came from (e.g. :data:`SYNFLOW_INPUT`). One global forward pre-hook:
    nothing is traversed unless an embedding gets float values.

    >>> model = nn.Sequential(nn.Embedding(4, 2))
    >>> with embedding_guard(model, SYNFLOW_INPUT):
    ...     model(torch.ones(1, 3))
    Traceback (most recent call last):
    ValueError: 0 (Embedding) was given torch.float32 values from SynFlow's all-ones float
    input, but an embedding looks up integer indices: ...
    """

    def check(module, args):
        if not (isinstance(module, EMBEDDINGS) and args and isinstance(args[0], torch.Tensor)
                and args[0].is_floating_point()):
            return
        name = next((n for n, m in model.named_modules() if m is module), None)
        if name is None:  # another model's (another thread)
            return
        cause = (
            "SynFlow scores with one all-ones float input of input_shape (Tanaka et al. 2020, "
            "Algorithm 1: R = 1^T prod|W| 1), which cannot index an embedding, so SynFlow "
            "cannot score a model whose input is token ids: prune the layers after the "
            "embedding as a model of their own (its input the embedded vectors), or use a "
            "data-based method (snip, grasp) with integer token ids" if source == SYNFLOW_INPUT
            else "give the token ids as an integer tensor"
        )
        raise ValueError(f"{name or type(model).__name__} ({type(module).__name__}) was given "
                         f"{args[0].dtype} values from {source}, but an embedding looks up "
                         f"integer indices: {cause}")

    handle = register_module_forward_pre_hook(check)
    try:
        yield
    finally:
        handle.remove()


def device_of(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (where scoring runs).

    >>> device_of(nn.Linear(2, 1))
    device(type='cpu')
    """
    return next(model.parameters()).device


def _model_dtype(model: nn.Module) -> torch.dtype | None:
    """The dtype of the model's first floating parameter (None if it has none)."""
    return next((p.dtype for p in model.parameters() if p.is_floating_point()), None)


LOW_PRECISION = (torch.float16, torch.bfloat16)


def gradient_dtype(model: nn.Module) -> torch.dtype | None:
    """The dtype the data-based scores (SNIP, GraSP) are computed in, ``None`` for the
    model's own: float32 for a float16 or bfloat16 model (their gradients, sums and
    Hessian-vector products under- and overflow), else the model's dtype.

    >>> gradient_dtype(nn.Linear(2, 1).half()), gradient_dtype(nn.Linear(2, 1))
    (torch.float32, None)
    """
    return torch.float32 if _model_dtype(model) in LOW_PRECISION else None


def batches_of(model, data: Iterable, dtype=None):
    """``data``'s batches checked (:func:`check_batch`), on the model's device, floating
    inputs in ``dtype`` (else the model's), targets int64 (plain tensors, also for
    batches made under ``torch.inference_mode()``).

    Raises ValueError naming a malformed batch, or if ``data`` gives none.

    >>> data = [(torch.zeros(2, 3, dtype=torch.float64), torch.tensor([0, 1], dtype=torch.int32))]
    >>> [(inputs.dtype, targets.dtype) for inputs, targets in batches_of(nn.Linear(3, 2), data)]
    [(torch.float32, torch.int64)]
    """
    device = device_of(model)
    dtype = dtype or _model_dtype(model)
    count = 0
    for count, batch in enumerate(data, start=1):
        inputs, targets = check_batch(batch, count - 1)
        cast = dtype if inputs.is_floating_point() else None
        with torch.inference_mode(False):  # a batch made under inference_mode: a plain copy
            inputs, targets = inputs.to(device=device, dtype=cast), targets.to(device)
            inputs, targets = (t.clone() if t.is_inference() else t for t in (inputs, targets))
        yield inputs, targets
    if count == 0:
        raise ValueError(f"data gave no batches; it must be {BATCHES}")
