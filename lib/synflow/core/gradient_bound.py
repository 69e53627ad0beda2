"""A bound on every prunable weight's gradient from one pass's activations: it proves the
SynFlow loop's gradients and scores finite without reading them
(:mod:`synflow.core.synflow_loop`).
"""

from __future__ import annotations

import contextlib
import math

import torch

from .checks import all_finite
from .masked import _MaskedWeight
from .prunable import PRUNABLE_TYPES


@contextlib.contextmanager
def gradient_bound(layers):
    """Bound every prunable weight's gradient from the pass's activations: yields a dict
    that, after the forward and backward pass, maps each layer of a standard torch type
    (``PRUNABLE_TYPES`` exactly, or their masked versions: their forward is a convolution
    or a matrix product; a mask only zeroes gradient entries) to a
    list of 0-d tensors (float32 or float64), one per call, whose sum bounds every entry
    of dR/dW.
    An entry of a weight's gradient is a sum over the call's input positions of
    ``input * output gradient`` products, at most ``max(numel(input), numel(output))``
    terms, so ``max|input| * max|output gradient| * that count`` bounds it. A layer
    missing from the dict (another type, a call with no tensor input, never called
    through ``__call__``) has no bound. Finite, with a wide margin, the bound proves
    every gradient finite without reading them (a full pass over every weight's
    gradient costs about a fifth of a SynFlow pass on VGG-16).

    >>> import torch.nn as nn
    >>> layer = nn.Linear(3, 2)
    >>> with gradient_bound({"fc": layer}) as bounds:
    ...     layer(torch.ones(1, 3)).sum().backward()
    >>> float(sum(bounds["fc"])), layer.weight.grad.abs().max().item()  # 1 * 1 * 3 >= 1
    (3.0, 1.0)
    """
    bounds: dict[str, list] = {}
    names = {id(m): name for name, m in layers.items() if _standard_type(m) in PRUNABLE_TYPES}
    unbounded: set[str] = set()

    def record(module, args, output):
        name = names[id(module)]
        inputs = args[0] if args else None
        if not (isinstance(inputs, torch.Tensor) and isinstance(output, torch.Tensor)):
            unbounded.add(name)
            return
        if not output.requires_grad:
            return  # no gradient flows through this call
        term = largest(inputs) * max(inputs.numel(), output.numel())
        terms = bounds.setdefault(name, [])
        output.register_hook(lambda g: terms.append(term * largest(g)))

    handles = [m.register_forward_hook(record) for m in layers.values() if id(m) in names]
    try:
        yield bounds
    finally:
        for handle in handles:
            handle.remove()
        for name in unbounded:
            bounds.pop(name, None)


def largest(tensor):
    """max|tensor| as a 0-d tensor in float32 or float64 (a wider dtype only where the
    tensor has one: some devices have no float64). An overflow makes it inf, which no
    bound passes.

    >>> largest(torch.tensor([1.0, -3.0], dtype=torch.float16))
    tensor(3.)
    """
    wide = tensor.dtype in (torch.float32, torch.float64)
    return (tensor.detach() if wide else tensor.detach().float()).abs().amax()


def _standard_type(module):
    """The layer's torch class: its own, or the one our ``Masked<Class>`` extends."""
    cls = type(module)
    return cls.__bases__[1] if issubclass(cls, _MaskedWeight) else cls


def grads_finite(layers, grads, bounds, limit) -> tuple[bool, float]:
    """``(every gradient finite, B)``: finite by the :func:`gradient_bound` where each
    layer has one and their sum is below ``limit``, by one sum over the gradient
    otherwise; B bounds every gradient entry when every layer has a bound (inf when one
    has none).

    >>> bounds = {"fc": [torch.tensor(3.0)]}
    >>> grads_finite(["fc"], [torch.ones(2)], bounds, limit=1e30)
    (True, 3.0)
    >>> grads_finite(["fc", "out"], [torch.ones(2), torch.tensor([float("inf")])], bounds, 1e30)
    (False, inf)
    """
    terms = [t for name in layers if name in bounds for t in bounds[name]]
    total = float(sum(terms)) if terms else math.inf
    proven = total < limit
    # a called layer with no term had no gradient flowing through it
    finite = all((proven and name in bounds) or all_finite(g) for name, g in zip(layers, grads))
    return finite, total if all(name in bounds for name in layers) else math.inf
