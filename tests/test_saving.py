"""Copying, pickling, saving and restoring pruned models (issue 11, items 6 and 11)."""

from __future__ import annotations

import copy
import io
import pickle

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import synflow
from synflow.core.saving import StateMismatchError


def pruned_mlp(seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 3)
    )
    masks = synflow.prune(model, "magnitude", 3)
    return model, masks


def forward_with_grad(model):
    model.train()
    loss = model(torch.randn(8, 6)).square().sum()  # a graph now hangs on the outputs
    return loss


def assert_same_model(a, b, masks):
    assert synflow.current_masks(b).keys() == masks.keys()
    for name, mask in synflow.current_masks(b).items():
        assert torch.equal(mask, masks[name])
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(x, y), name
    x = torch.randn(4, 6)
    torch.testing.assert_close(a.eval()(x), b.eval()(x), rtol=0, atol=0)


@pytest.mark.parametrize("copier", ["deepcopy", "pickle", "torch.save"])
@pytest.mark.parametrize("when", ["after pruning", "after a forward with grad", "after backward"])
def test_pruned_model_copies_at_any_point(copier, when):
    model, masks = pruned_mlp()
    if when != "after pruning":
        loss = forward_with_grad(model)
        if when == "after backward":
            loss.backward()
    if copier == "deepcopy":
        clone = copy.deepcopy(model)
    elif copier == "pickle":
        clone = pickle.loads(pickle.dumps(model))
    else:
        buffer = io.BytesIO()
        torch.save(model, buffer)
        clone = torch.load(io.BytesIO(buffer.getvalue()), weights_only=False)
    assert_same_model(model, clone, masks)
    # the copy still trains inside its masks
    optimizer = torch.optim.SGD(clone.parameters(), lr=0.5)
    forward_with_grad(clone).backward()
    optimizer.step()
    for name, module in synflow.prunable_layers(clone).items():
        assert torch.all(module.weight[~masks[name]] == 0)
        assert module.weight_orig.grad is not None


def test_weight_is_never_stale():
    model, _ = pruned_mlp()
    layer = model[0]
    with torch.no_grad():
        layer.weight_orig.add_(1.0)  # e.g. an optimizer step, before any forward
    torch.testing.assert_close(layer.weight, (layer.weight_orig * layer.weight_mask))
    model.double()
    assert layer.weight.dtype == torch.float64


def test_a_module_reading_the_weight_directly_sees_the_mask():
    # nn.MultiheadAttention reads out_proj.weight without calling out_proj
    torch.manual_seed(0)
    attention = nn.MultiheadAttention(8, 2)
    masks = synflow.prune(attention, "magnitude", 4)
    x = torch.randn(3, 1, 8)
    out, _ = attention(x, x, x)
    out.sum().backward()
    pruned = ~masks["out_proj.weight"]
    assert torch.all(attention.out_proj.weight[pruned] == 0)
    assert attention.out_proj.weight_orig.grad is not None  # the layer trains


@pytest.mark.parametrize("target", ["fresh", "masked alike", "masked otherwise"])
def test_save_and_load_pruned_restores_masks_and_weights(tmp_path, target):
    model, masks = pruned_mlp(seed=0)
    forward_with_grad(model).backward()  # a used model
    path = synflow.save_pruned(model, tmp_path / "sub" / "pruned.pt")
    assert [p.name for p in path.parent.iterdir()] == ["pruned.pt"]  # no temporary left
    fresh, _ = pruned_mlp(seed=1)
    if target == "fresh":
        synflow.remove_masks(fresh)
    elif target == "masked otherwise":
        synflow.apply_masks(fresh, synflow.core.masks.shuffle_masks(masks, seed=3))
    loaded = synflow.load_pruned(fresh, path)
    assert loaded is fresh
    for name, module in synflow.prunable_layers(fresh).items():
        # right after loading, before any forward: weight is the loaded masked weight
        expected = synflow.core.masks.effective_weight(synflow.prunable_layers(model)[name])
        assert torch.equal(module.weight.detach(), expected)
    assert_same_model(model, fresh, masks)


def test_load_pruned_state_dict_of_an_unpruned_model_unmasks():
    model, _ = pruned_mlp()
    dense = copy.deepcopy(model)
    synflow.remove_masks(dense)
    dense_state = {k: v.clone() for k, v in dense.state_dict().items()}
    synflow.load_pruned_state_dict(model, dense_state)
    assert set(model.state_dict()) == set(dense_state)
    assert_same_model(dense, model, synflow.current_masks(dense))


def test_remove_masks_exports_plain_weights_that_load_into_a_fresh_model():
    model, masks = pruned_mlp()
    forward_with_grad(model)
    with torch.no_grad():  # whatever weight_orig holds under the mask, export the masked weight
        model[0].weight_orig.add_(1.0)
    synflow.remove_masks(model)
    assert type(model[0]) is nn.Linear
    state = model.state_dict()
    assert "0.weight" in state and not any("mask" in k or "orig" in k for k in state)
    fresh = nn.Sequential(
        nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 3)
    )
    fresh.load_state_dict(state)
    assert torch.equal(fresh[0].weight != 0, masks["0.weight"])
    x = torch.randn(2, 6)
    torch.testing.assert_close(fresh.eval()(x), model.eval()(x))


@pytest.mark.parametrize("copied", [False, True])
def test_remove_masks_puts_every_weight_back_in_its_place(copied):
    """A fresh model's parameter order (parameters(), state_dict(), an optimizer's param
    indices) after remove_masks, also on a deep copy of the masked model;
    torch.nn.utils.prune.remove puts the weight after its bias."""
    model, _ = pruned_mlp()
    model = copy.deepcopy(model) if copied else model
    synflow.remove_masks(model)
    by_torch = nn.Linear(6, 5)
    torch.nn.utils.prune.random_unstructured(by_torch, "weight", amount=0.5)
    torch.nn.utils.prune.remove(by_torch, "weight")
    assert [n for n, _ in by_torch.named_parameters()] == ["bias", "weight"]
    dense = nn.Sequential(
        nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 3)
    )
    assert [n for n, _ in model.named_parameters()] == [n for n, _ in dense.named_parameters()]
    assert list(model.state_dict()) == list(dense.state_dict())


def test_a_model_masked_by_torch_prune_is_adopted():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    torch.nn.utils.prune.random_unstructured(model[0], "weight", amount=0.5)
    before = model[0].weight_mask.bool().clone()
    masks = synflow.prune(model, "magnitude", 2)
    assert not torch.any(masks["0.weight"] & ~before)  # torch's pruned weights stay pruned
    F.mse_loss(model(torch.randn(2, 6)), torch.zeros(2, 3)).backward()
    copy.deepcopy(model)


def test_torch_pruned_weights_round_trip_and_other_tensors_are_refused(tmp_path):
    # a torch-pruned layer weight travels as weight_orig/weight_mask and loads into a fresh
    # model; a torch-pruned bias or Embedding weight could not be loaded back: refused
    def net():
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))

    model = net()
    torch.nn.utils.prune.random_unstructured(model[0], "weight", amount=0.5)
    loaded = synflow.load_pruned(net(), synflow.save_pruned(model, tmp_path / "layer.pt"))
    assert torch.equal(loaded[0].weight_mask, model[0].weight_mask)
    for module, tensor in ((model[2], "bias"), (nn.Embedding(4, 6), "weight")):
        other = nn.Sequential(module, nn.Linear(6, 3)) if tensor == "weight" else model
        torch.nn.utils.prune.random_unstructured(module, tensor, amount=0.5)
        synflow.prune(other, "magnitude", 2)
        path = tmp_path / f"{tensor}.pt"
        with pytest.raises(ValueError, match=rf"cannot save \d\.{tensor}: torch.nn.utils.prune "
                                             rf"masks them.*prune.remove\(module, '{tensor}'\)"):
            synflow.save_pruned(other, path)
        assert not path.exists() and list(tmp_path.iterdir()) == [tmp_path / "layer.pt"]
    # a model without prunable layers, or with a TorchScript part, saves as before
    synflow.save_pruned(nn.Sequential(nn.Embedding(4, 6), nn.LayerNorm(6)), tmp_path / "e.pt")
    state = model.state_dict()  # saved some other way, then loaded: the error says why
    with pytest.raises(StateMismatchError, match=r"unexpected key\(s\) \['2.bias_orig', "
                                                        r"'2.bias_mask'\].*torch.nn.utils.prune's masks"):
        synflow.load_pruned_state_dict(net(), state)


# ------------------------------- issue 19, item 3: a failed load leaves its target as it was


def parameters_and_state(model):
    """The parameter objects by name and a copy of the state dict."""
    return ({name: p for name, p in model.named_parameters()},
            {key: value.clone() for key, value in model.state_dict().items()})


def assert_as_before(model, before):
    parameters, state = before
    assert {name: p for name, p in model.named_parameters()}.keys() == parameters.keys()
    assert all(p is parameters[name] for name, p in model.named_parameters())
    assert model.state_dict().keys() == state.keys()
    assert all(torch.equal(value, state[key]) for key, value in model.state_dict().items())


def vgg(classes, seed=0, name="vgg11_bn"):
    return synflow.build_model(name, num_classes=classes, width=0.125, seed=seed)


@pytest.mark.parametrize("target", ["fresh", "masked otherwise"])
@pytest.mark.parametrize("other", ["vgg11_bn", "vgg13_bn"])
def test_a_load_that_does_not_fit_changes_nothing(tmp_path, target, other):
    source = vgg(10)
    synflow.prune(source, "magnitude", 10)
    path = synflow.save_pruned(source, tmp_path / "pruned.pt")
    model = vgg(100, seed=1, name=other)  # another head (and for vgg13 other layers)
    if target == "masked otherwise":
        synflow.prune(model, "random", 3)
    before = parameters_and_state(model)
    with pytest.raises(synflow.core.saving.StateMismatchError,
                       match=r"nothing was loaded.*classifier.weight_orig has shape \(10, 64\) in "
                             r"the state, \(100, 64\) in the model"):
        synflow.load_pruned(model, path)
    assert_as_before(model, before)
    with pytest.raises(RuntimeError):  # what torch raises for it, as before
        synflow.load_pruned_state_dict(model, source.state_dict())
    assert_as_before(model, before)


def test_masks_of_other_values_keys_or_dtypes_change_nothing():
    source, _ = pruned_mlp()
    state = source.state_dict()
    model, _ = pruned_mlp(seed=1)
    synflow.remove_masks(model)
    before = parameters_and_state(model)
    bad_mask = dict(state, **{"2.weight_mask": state["2.weight_mask"] * 2})
    with pytest.raises(ValueError, match=r"mask for 2.weight must be boolean or 0/1"):
        synflow.load_pruned_state_dict(model, bad_mask)
    extra = dict(state, **{"9.weight": torch.ones(2)})
    with pytest.raises(ValueError, match=r"unexpected key\(s\) \['9.weight'\]"):
        synflow.load_pruned_state_dict(model, extra)
    missing = {k: v for k, v in state.items() if k != "3.running_mean"}
    with pytest.raises(ValueError, match=r"missing key\(s\) \['3.running_mean'\]"):
        synflow.load_pruned_state_dict(model, missing)
    integer = dict(state, **{"0.bias": state["0.bias"].long()})
    with pytest.raises(ValueError, match=r"0.bias is torch.int64 in the state, torch.float32"):
        synflow.load_pruned_state_dict(model, integer)
    assert_as_before(model, before)


@pytest.mark.parametrize("damage", ["truncated", "text", "empty"])
def test_a_damaged_file_is_named(tmp_path, damage):
    """Whatever the bytes (half a file, a few letters: a raw KeyError from the unpickler,
    an empty file: an EOFError without a message), a ValueError names the file and says
    what went wrong; the model is unchanged."""
    model, _ = pruned_mlp()
    path = synflow.save_pruned(model, tmp_path / "pruned.pt")
    data = {"truncated": path.read_bytes()[: len(path.read_bytes()) // 2], "text": b"hello",
            "empty": b""}[damage]
    path.write_bytes(data)
    fresh, _ = pruned_mlp(seed=1)
    before = parameters_and_state(fresh)
    with pytest.raises(ValueError, match=f"cannot read a saved model from {path}: ") as caught:
        synflow.load_pruned(fresh, path)
    reason = str(caught.value).split(f"{path}: ", 1)[1]
    assert reason.strip(), "the reason is empty"
    assert_as_before(fresh, before)
