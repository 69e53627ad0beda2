"""Models as people build them: aliased submodules, transposed convolutions and RNNs,
pruning inside no_grad / inference_mode, mixed precision, meta-device, scripted and
compiled models (issue 19, items 1, 7, 13, 16 and 21). Each works, or is refused by name
with the reason before anything changes."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

import synflow
from synflow import CompressionWarning

METHODS = ["random", "magnitude", "snip", "grasp", "synflow", "synflow_l2", "random_erk"]
SHAPE = (3, 32, 32)


def data(classes=10, shape=SHAPE):
    g = torch.Generator().manual_seed(1)
    return [(torch.randn(6, *shape, generator=g), torch.arange(6) % classes)]


def vgg(seed=0):
    return synflow.build_model("vgg11_bn", width=0.125, input_shape=SHAPE, seed=seed)


def kept(masks):
    return sum(int(m.sum()) for m in masks.values())


def snapshot(model):
    """Every (module, slot) -> (the tensor object, its type, a copy of its values)."""
    return {(id(m), kind, key): (t, type(t), t.detach().clone())
            for m in model.modules()
            for kind, slots in (("p", m._parameters), ("b", m._buffers))
            for key, t in slots.items() if t is not None}


def assert_unchanged(model, before):
    after = snapshot(model)
    assert after.keys() == before.keys()
    for key, (tensor, kind, values) in before.items():
        now, now_kind, now_values = after[key]
        assert now is tensor and now_kind is kind, key  # the same objects, still Parameters
        assert torch.equal(now_values, values), key


# ------------------------------------------- item 1: a submodule under two names


class Aliased(nn.Module):
    """The common wrapper pattern: the backbone's features are also registered here."""

    def __init__(self, seed=0):
        super().__init__()
        self.backbone = vgg(seed)
        self.features = self.backbone.features

    def forward(self, x):
        return self.backbone(x)


@pytest.mark.parametrize("method", METHODS)
def test_scoring_an_aliased_model_leaves_it_exactly_as_it_was(method):
    model = Aliased()
    before = snapshot(model)
    scores = synflow.compute_scores(model, method, data=data(), input_shape=SHAPE)
    assert_unchanged(model, before)
    assert next(iter(scores)) == "backbone.features.0.weight"  # the first name, counted once
    model(torch.randn(2, *SHAPE)).sum().backward()  # the next forward and backward work


@pytest.mark.parametrize("method", METHODS)
def test_an_aliased_model_is_pruned_as_the_plain_one(method):
    reference = synflow.prune(vgg(), method, 20, iterations=2, data=data(), input_shape=SHAPE)
    model = Aliased()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    masks = synflow.prune(model, method, 20, iterations=2, data=data(), input_shape=SHAPE)
    assert list(masks) == [f"backbone.{name}" for name in reference]
    assert all(torch.equal(masks[f"backbone.{name}"], m) for name, m in reference.items())
    assert kept(masks) == kept(reference)  # N counts each weight once
    # both names reach the same masked layer, and the optimizer built before trains it
    assert model.features[0] is model.backbone.features[0]
    nn.functional.cross_entropy(model(torch.randn(4, *SHAPE)), torch.arange(4)).backward()
    optimizer.step()
    for name, module in synflow.prunable_layers(model).items():
        assert torch.all(module.weight[~masks[name]] == 0)


def test_an_aliased_model_saves_and_loads(tmp_path):
    model = Aliased()
    masks = synflow.prune(model, "synflow", 20, input_shape=SHAPE)
    path = synflow.save_pruned(model, tmp_path / "aliased.pt")
    fresh = Aliased(seed=1)
    synflow.load_pruned(fresh, path)
    assert all(torch.equal(synflow.current_masks(fresh)[k], m) for k, m in masks.items())
    x = torch.randn(2, *SHAPE)
    torch.testing.assert_close(fresh.eval()(x), model.eval()(x), rtol=0, atol=0)


# ---------------------------------- item 7: transposed convolutions, recurrent layers


def autoencoder():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, stride=2), nn.ReLU(), nn.Conv2d(8, 16, 3, stride=2), nn.ReLU(),
        nn.ConvTranspose2d(16, 8, 3, stride=2), nn.ReLU(), nn.ConvTranspose2d(8, 1, 3, stride=2),
    )


@pytest.mark.parametrize("method", ["magnitude", "synflow"])
def test_transposed_convolutions_are_pruned(method):
    model = autoencoder()
    masks = synflow.prune(model, method, 10, input_shape=(1, 15, 15))
    assert {"4.weight", "6.weight"} <= set(masks)
    assert synflow.compression_of(masks) == pytest.approx(10, rel=0.01)
    for name in ("4.weight", "6.weight"):
        layer = synflow.prunable_layers(model)[name]
        assert isinstance(layer, nn.ConvTranspose2d)
        assert torch.all(layer.weight[~masks[name]] == 0) and 0 < masks[name].sum()


def test_transposed_convolutions_are_reinitialised_inside_their_masks():
    model = autoencoder()
    masks = synflow.prune(model, "magnitude", 5)
    before = {k: m.weight.detach().clone() for k, m in synflow.prunable_layers(model).items()}
    synflow.models.reinitialize_kept(model, seed=np.int64(3))
    for name, module in synflow.prunable_layers(model).items():
        assert torch.equal(module.weight != 0, masks[name])
        assert not torch.equal(module.weight, before[name])


@pytest.mark.parametrize("rnn", [nn.LSTM, nn.GRU, nn.RNN])
def test_recurrent_weights_left_dense_are_named_with_their_share(rnn):
    class Tagger(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = rnn(8, 16, num_layers=2)
            self.head = nn.Linear(16, 3)

        def forward(self, x):
            return self.head(self.rnn(x)[0][-1])

    model = Tagger()
    dense = sum(p.numel() for n, p in model.rnn.named_parameters() if "weight" in n)
    share = 100 * dense / (dense + 48)
    with pytest.warns(CompressionWarning, match=rf"rnn.weight_ih_l0, rnn.weight_hh_l0, "
                      rf"rnn.weight_ih_l1, rnn.weight_hh_l1 \({dense:,} weights, {share:.1f} %"):
        synflow.prune(model, "magnitude", 4)
    with pytest.warns(CompressionWarning, match="left dense"):
        synflow.compute_scores(model, "magnitude")


def test_models_with_only_prunable_weights_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error", CompressionWarning)
        synflow.prune(vgg(), "synflow", 10, iterations=2, input_shape=SHAPE)
        synflow.prune(autoencoder(), "magnitude", 10)


# ----------------------------------------- item 13: inside no_grad and inference_mode


@pytest.mark.parametrize("context", [torch.no_grad, torch.inference_mode])
@pytest.mark.parametrize("method", METHODS)
def test_prune_works_inside_no_grad_and_inference_mode(method, context):
    reference = synflow.prune(vgg(), method, 10, iterations=2, data=data(), input_shape=SHAPE)
    model = vgg()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    with context():
        batches = data()  # made inside the context too
        masks = synflow.prune(model, method, 10, iterations=2, data=batches, input_shape=SHAPE)
        scores = synflow.compute_scores(model, method, data=batches, input_shape=SHAPE)
    assert all(torch.equal(masks[k], reference[k]) for k in reference)
    assert scores.keys() == reference.keys()
    assert not any(m.is_inference() for m in masks.values())
    # the first training step afterwards works and keeps the pruned weights at zero
    loss = nn.functional.cross_entropy(model(torch.randn(4, *SHAPE)), torch.arange(4))
    loss.backward()
    optimizer.step()
    for name, module in synflow.prunable_layers(model).items():
        assert not module.weight_mask.is_inference()
        assert torch.all(module.weight[~masks[name]] == 0)


def test_masks_applied_or_loaded_inside_inference_mode_still_train():
    torch.manual_seed(0)
    source = nn.Sequential(nn.Linear(4, 3))
    synflow.prune(source, "magnitude", 2)
    mask = torch.rand(3, 4, generator=torch.Generator().manual_seed(0)) > 0.5
    for step in (lambda model: synflow.apply_masks(model, {"0.weight": mask}),
                 lambda model: synflow.load_pruned_state_dict(model, source.state_dict())):
        model = nn.Sequential(nn.Linear(4, 3))
        with torch.inference_mode():
            step(model)
        assert not model[0].weight_mask.is_inference()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        model(torch.randn(2, 4)).sum().backward()
        optimizer.step()


# ------------------------------------- item 16: mixed precision, meta, jit, lazy


class Mixed(nn.Module):
    """A float32 stem feeding a float16 head (the forward casts between them)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.stem = nn.Linear(8, 16)
        self.head = nn.Linear(16, 3).half()

    def forward(self, x):
        return self.head(torch.relu(self.stem(x)).half())


@pytest.mark.parametrize("method", ["random", "magnitude", "snip", "grasp"])
def test_a_mixed_precision_model_is_pruned_like_one_scoring_pass(method):
    batches = [(torch.randn(6, 8, generator=torch.Generator().manual_seed(0)), torch.arange(6) % 3)]
    model = Mixed()
    expected = synflow.select(synflow.compute_scores(model, method, data=batches), 0.25)
    masks = synflow.prune(model, method, 4, data=batches)
    assert all(torch.equal(masks[k], expected[k]) for k in expected)
    assert model.head.weight.dtype == torch.float16 and model.stem.weight.dtype == torch.float32


@pytest.mark.parametrize("method", ["synflow", "synflow_l2"])
def test_synflow_refuses_a_mixed_precision_model_by_name(method):
    model = Mixed()
    with pytest.raises(ValueError, match=r"mixes dtypes: scoring runs the whole model in "
                                         r"torch.float64.*float32: stem.weight.*"
                                         r"float16: head.weight"):
        synflow.prune(model, method, 4, input_shape=(8,))
    assert not synflow.core.masks.is_masked(model.stem)


def test_meta_lazy_and_scripted_models_are_refused_by_name():
    meta = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)).to("meta")
    with pytest.raises(ValueError, match=r"0.weight is on the meta device .*; 2.weight is on"):
        synflow.prune(meta, "magnitude", 2)
    lazy = nn.Sequential(nn.LazyLinear(4), nn.ReLU(), nn.Linear(4, 2))
    with pytest.raises(ValueError, match=r"0.weight \(LazyLinear\) is an uninitialised lazy"):
        synflow.prune(lazy, "magnitude", 2)
    with torch.inference_mode():
        frozen = nn.Sequential(nn.Linear(4, 2))
    with pytest.raises(ValueError, match=r"0.weight is an inference tensor"):
        synflow.prune(frozen, "magnitude", 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated
        scripted = torch.jit.script(nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)))
        inner = nn.Sequential(torch.jit.script(nn.Linear(4, 4)), nn.Linear(4, 2))
    with pytest.raises(ValueError, match=r"cannot prune TorchScript modules \(RecursiveScriptModule"):
        synflow.prune(scripted, "magnitude", 2)
    with pytest.raises(ValueError, match=r"cannot prune TorchScript modules \(0,"):
        synflow.prune(inner, "magnitude", 2)  # a scripted part would be left dense silently
    assert not synflow.core.masks.is_masked(inner[1])


# ------------------------------------------------------- item 21: torch.compile


def test_a_compiled_model_is_pruned_saved_and_loaded_as_the_plain_one(tmp_path):
    plain = vgg()
    reference = synflow.prune(plain, "synflow", 20, input_shape=SHAPE)
    compiled = torch.compile(vgg(), backend="eager")
    assert synflow.unwrap(compiled) is compiled._orig_mod
    masks = synflow.prune(compiled, "synflow", 20, input_shape=SHAPE)
    assert list(masks) == list(reference)  # no "_orig_mod." prefix
    assert all(torch.equal(masks[k], reference[k]) for k in reference)
    x = torch.randn(2, *SHAPE)
    torch.testing.assert_close(compiled.eval()(x), plain.eval()(x), rtol=0, atol=0)
    fresh = vgg(seed=1)
    synflow.load_pruned(fresh, synflow.save_pruned(compiled, tmp_path / "compiled.pt"))
    torch.testing.assert_close(fresh.eval()(x), plain(x), rtol=0, atol=0)
    other = vgg(seed=2)  # the compiled model's own state dict ("_orig_mod." keys) loads too
    synflow.load_pruned_state_dict(other, compiled.state_dict())
    torch.testing.assert_close(other.eval()(x), plain(x), rtol=0, atol=0)
