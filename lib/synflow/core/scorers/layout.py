"""The memory layout of SynFlow's pass on a CPU: convolution weights stored channels-last
where the convolution's output is small.

A CPU convolution's weight gradient is a matrix product over the output's positions;
with one input image (SynFlow's all-ones input) a layer with few positions (CIFAR's
deep layers: 8x8, 4x4, 2x2) makes it a skinny product, which runs about twice as fast
channels-last in float64 (one thread of AMD EPYC Zen 4, forward and backward of a 3x3
convolution: 512 -> 512 channels at 4x4 11.8 -> 7.1 ms, at 2x2 8.8 -> 4.7 ms) and is
slower channels-last at many positions (64 -> 64 at 32x32 3.5 -> 4.0 ms, 128 -> 128 at
112x112 200 -> 313 ms). So a weight whose convolution has at most ``MAX_POSITIONS`` output
positions is stored channels-last, every other one as it is: VGG-16 at 32x32 gets 9 of its
13 convolutions channels-last (a float64 pass about 25 % faster), VGG-19 at 224x224
none. Only the storage order changes: the activations between layers stay row-major
(:func:`row_major_outputs`: a model's own ``x.view(...)`` works as before), and the
scores are the same numbers up to the convolution's summation order (float64 roundings,
about 1e-15 relative). In float32 (oneDNN's convolutions) and on other devices nothing
changes: channels-last float32 passes were about 10 % faster on VGG-16 at 32x32 but
changed the roundings enough to move float32's masks.
"""

from __future__ import annotations

import contextlib

import torch

from .functional import call_on_meta

MAX_POSITIONS = 64  # output positions (height x width) up to which a weight is channels-last


def channels_last_layers(model, layers, input_shape, device, dtype) -> frozenset[str]:
    """The names of the ``layers`` whose weights a SynFlow pass in ``dtype`` on ``device``
    stores channels-last (:func:`path_leaves`: the 4-D ones): the layers whose 4-D output,
    for one input of ``input_shape``, has at most ``MAX_POSITIONS`` positions; none off
    the CPU, in another dtype than float64 or for an input that is not one image
    (``input_shape`` not channels x height x width). The output shapes come from
    one forward pass on the ``meta`` device (shapes only, no arithmetic); a model that
    cannot run there gets none (the pass then runs as the model is stored).

    >>> import torch.nn as nn
    >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Conv2d(4, 4, 3, stride=4))
    >>> layers = {"0.weight": net[0], "1.weight": net[1]}
    >>> sorted(channels_last_layers(net, layers, (3, 30, 30), torch.device("cpu"),
    ...                             torch.float64))
    ['1.weight']
    """
    if torch.device(device).type != "cpu" or dtype != torch.float64 or len(input_shape) != 3:
        return frozenset()
    positions = {}
    names = {id(module): name for name, module in layers.items()}

    def record(module, args, output):  # a layer called twice: its larger output
        if isinstance(output, torch.Tensor) and output.dim() == 4:
            name = names[id(module)]
            positions[name] = max(positions.get(name, 0), output.shape[2] * output.shape[3])

    handles = [module.register_forward_hook(record) for module in layers.values()]
    try:
        call_on_meta(model, input_shape, dtype)
    except Exception:  # noqa: BLE001 - any failure only means: no layout change
        return frozenset()
    finally:
        for handle in handles:
            handle.remove()
    return frozenset(name for name, count in positions.items() if count <= MAX_POSITIONS)


def path_leaves(leaves, channels_last) -> dict[str, torch.Tensor]:
    """``leaves`` (fresh autograd leaves) with the 4-D ones named in ``channels_last``
    stored channels-last: the same values, new leaves.

    >>> leaves = {"w": torch.ones(2, 3, 1, 2, requires_grad=True)}
    >>> path_leaves(leaves, {"w"})["w"].stride()
    (6, 1, 6, 3)
    """
    return {name: leaf.detach().contiguous(memory_format=torch.channels_last).requires_grad_(True)
            if name in channels_last and leaf.dim() == 4 else leaf for name, leaf in leaves.items()}


@contextlib.contextmanager
def row_major_outputs(layers, leaves):
    """Within the block, the layers whose leaf is stored channels-last return their
    output row-major (a copy of the activation, a few hundred KB at CIFAR's sizes), so the
    rest of the model sees the tensors it would without the layout change.

    >>> import torch.nn as nn
    >>> conv = nn.Conv2d(2, 2, 1)
    >>> leaves = path_leaves({"weight": conv.weight.detach().clone()}, {"weight"})
    >>> with row_major_outputs({"weight": conv}, leaves):
    ...     torch.func.functional_call(conv, leaves, (torch.ones(1, 2, 3, 3),)).is_contiguous()
    True
    """
    def row_major(module, args, output):
        return output.contiguous() if isinstance(output, torch.Tensor) else output

    handles = [layers[name].register_forward_hook(row_major) for name, leaf in leaves.items()
               if name in layers and leaf.dim() == 4 and not leaf.is_contiguous()]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
