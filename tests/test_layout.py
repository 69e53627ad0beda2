"""SynFlow's float64 pass on a CPU stores the weights of convolutions with small outputs
channels-last (synflow.core.scorers.layout): only the storage order changes, for the
scores, the masks, the model's own code and the pruning loop's bookkeeping."""

import warnings

import pytest
import torch
import torch.nn.utils.prune as torch_prune
from torch import nn

import synflow
from synflow.core.schedules import schedule_densities
from synflow.core.scorers import layout
from synflow.core.scorers import synflow as pathscores
from test_precision import count_passes
from test_synflow_loop import full_ranking

CPU = torch.device("cpu")


def small_vgg():
    """CIFAR's 32x32: the first convolutions at 32x32 and 16x16, the last at 4x4 and 2x2."""
    return synflow.build_model("vgg11_bn", width=1 / 16, seed=1), (3, 32, 32)


class FlattenByView(nn.Module):
    """A model whose forward flattens with ``view``, which needs a row-major activation."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, stride=2, padding=1)
        self.fc = nn.Linear(8 * 4 * 4, 10)

    def forward(self, x):
        x = torch.relu(self.conv2(torch.relu(self.conv1(x))))
        return self.fc(x.view(x.size(0), -1))


class ReadsAValue(FlattenByView):
    """A forward that reads a number from a tensor: it cannot run on the meta device."""

    def forward(self, x):
        return super().forward(x) * (2.0 if float(x.sum()) > 0 else 1.0)


def output_positions(model, shape):
    """Each prunable layer's output positions (height x width), by a real forward."""
    positions = {}
    layers = synflow.prunable_layers(model)
    hooks = [m.register_forward_hook(
        lambda mod, args, out, name=name: positions.__setitem__(name, out[0, 0].numel())
        if out.dim() == 4 else None) for name, m in layers.items()]
    model.eval()(torch.ones(1, *shape))
    for hook in hooks:
        hook.remove()
    return positions


def leaf_layouts(monkeypatch):
    """Which leaves of every SynFlow pass are stored channels-last, pass by pass."""
    seen = []
    original = pathscores.path_gradients

    def spying(model, layers, leaves, *args, **kwargs):
        seen.append({name for name, leaf in leaves.items() if not leaf.is_contiguous()})
        return original(model, layers, leaves, *args, **kwargs)

    monkeypatch.setattr(pathscores, "path_gradients", spying)
    return seen


def test_the_channels_last_layers_are_the_convolutions_with_small_outputs():
    model, shape = small_vgg()
    layers = synflow.prunable_layers(model)
    small = {name for name, count in output_positions(model, shape).items()
             if count <= layout.MAX_POSITIONS}
    chosen = layout.channels_last_layers(model, layers, shape, CPU, torch.float64)
    assert chosen == small and 0 < len(chosen) < len(layers) - 1  # not the 32x32 nor the head
    for dtype in (torch.float64, torch.float16):  # the probe runs in the pass's dtype
        model = model.to(dtype)
        assert layout.channels_last_layers(model, layers, shape, CPU, torch.float64) == chosen
    assert layout.channels_last_layers(model, layers, shape, CPU, torch.float32) == frozenset()
    assert layout.channels_last_layers(model, layers, shape, torch.device("cuda"),
                                       torch.float64) == frozenset()


def test_scores_are_row_major_and_the_row_major_pass_s_up_to_rounding(monkeypatch):
    model, shape = small_vgg()
    seen = leaf_layouts(monkeypatch)
    scores = synflow.compute_scores(model, "synflow", input_shape=shape)
    assert seen == [layout.channels_last_layers(model, synflow.prunable_layers(model), shape,
                                                CPU, torch.float64)]
    assert all(s.is_contiguous() for s in scores.values())
    monkeypatch.setattr(layout, "MAX_POSITIONS", 0)
    plain = synflow.compute_scores(model, "synflow", input_shape=shape)
    assert seen[-1] == set()
    for name in plain:
        torch.testing.assert_close(scores[name], plain[name], rtol=1e-12, atol=0)


def test_the_loop_s_records_and_masks_are_row_major():
    model, shape = small_vgg()
    steps = []
    masks = synflow.prune(model, "synflow", 10, iterations=2, input_shape=shape,
                          callback=steps.append)
    tensors = [*masks.values(), *(t for step in steps
                                  for part in (step.scores, step.before, step.after)
                                  for t in part.values())]
    assert all(t.is_contiguous() for t in tensors)
    assert torch.equal(steps[-1].after["features.18.weight"], masks["features.18.weight"])


def test_a_model_that_flattens_with_view_gets_row_major_activations(monkeypatch):
    model, shape = FlattenByView(), (3, 8, 8)
    seen = leaf_layouts(monkeypatch)
    masks = synflow.prune(model, "synflow", 10, iterations=3, input_shape=shape)
    assert seen[0] == {"conv1.weight", "conv2.weight"}  # outputs of 8x8 and 4x4
    assert sum(int(m.sum()) for m in masks.values()) == round(
        sum(m.numel() for m in masks.values()) / 10)


def test_a_model_that_cannot_run_on_meta_keeps_its_layout(monkeypatch):
    model, shape = ReadsAValue(), (3, 8, 8)
    layers = synflow.prunable_layers(model)
    assert layout.channels_last_layers(model, layers, shape, CPU, torch.float64) == frozenset()
    seen = leaf_layouts(monkeypatch)
    synflow.prune(model, "synflow", 10, iterations=2, input_shape=shape)
    assert seen == [set(), set()]


def test_float32_passes_redone_in_float64_use_float64_s_layout(monkeypatch):
    """Every float32 pass is redone in float64 (R 'out of range'): the loop's float32
    bookkeeping (row-major leaves) meets the float64 pass's channels-last leaves, and the
    masks are those of float64 throughout."""
    monkeypatch.setattr(pathscores, "FLOAT32_SAFE_RANGE", (1e-30, 1e-30))
    densities = schedule_densities(20, 4, "exponential")
    dtypes = count_passes(monkeypatch)
    model, shape = small_vgg()
    ours = synflow.prune_through(model, "synflow", densities, input_shape=shape,
                                 precision="float32")
    assert dtypes == [torch.float32, torch.float64] * len(densities)
    exact = synflow.prune_through(small_vgg()[0], "synflow", densities, input_shape=shape)
    assert all(torch.equal(ours[name], exact[name]) for name in exact)


@pytest.mark.parametrize("precision", ["float64", "float32"])
def test_a_torch_pruned_model_s_gradients_come_back_row_major(precision):
    """torch.nn.utils.prune computes weight_orig * weight_mask, a row-major product: the
    channels-last leaves' gradients come back row-major and are stored like the leaves."""
    def build():
        model, shape = small_vgg()
        for module in synflow.prunable_layers(model).values():
            torch_prune.l1_unstructured(module, "weight", amount=0.3)
        return model, shape

    densities = schedule_densities(10, 3, "exponential")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, shape = build()
        ours = synflow.prune_through(model, "synflow", densities, input_shape=shape,
                                     precision=precision)
        plain = full_ranking(build()[0], "synflow", densities, input_shape=shape,
                             precision=precision, scope="global", invert=False)
    assert all(torch.equal(ours[name], plain[name]) for name in plain)
