import copy

import pytest
import torch
import torchvision
from torch import nn

import synflow


def mlp():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 4), nn.BatchNorm1d(4), nn.Linear(4, 3)
    )


def test_prunable_layers_are_conv_and_linear_weights_named_as_in_the_unpruned_model():
    model = synflow.build_model("resnet20", width=0.25)
    names = list(synflow.prunable_layers(model))
    assert names[0] == "conv1.weight" and names[-1] == "fc.weight"
    assert "layers.1.0.shortcut.0.weight" in names  # 1x1 shortcut convolutions count
    assert all(name in dict(model.named_parameters()) for name in names)
    assert not any("bn" in name for name in names)


def test_masked_forward_uses_masked_weights_and_keeps_names():
    model = mlp().eval()
    masks = {
        name: torch.rand(m.weight.shape) > 0.5 for name, m in synflow.prunable_layers(model).items()
    }
    reference = copy.deepcopy(model)
    with torch.no_grad():
        for name, m in synflow.prunable_layers(reference).items():
            m.weight.mul_(masks[name])
    synflow.apply_masks(model, masks)
    x = torch.randn(7, 6)
    torch.testing.assert_close(model(x), reference(x))
    assert set(synflow.current_masks(model)) == set(masks)
    assert all(torch.equal(synflow.current_masks(model)[k], masks[k]) for k in masks)
    assert "0.weight_orig" in dict(model.named_parameters())
    assert "0.weight_mask" in dict(model.named_buffers())


def test_pruned_weights_stay_exactly_zero_through_sgd_with_momentum_and_weight_decay():
    model = mlp().train()
    masks = synflow.prune(model, "magnitude", 4)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-2
    )
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        optimizer.zero_grad()
        x, y = torch.randn(16, 6, generator=g), torch.randint(3, (16,), generator=g)
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    model(torch.randn(2, 6))  # the hook recomputes the masked weight
    for name, module in synflow.prunable_layers(model).items():
        assert torch.all(module.weight[~masks[name]] == 0)
        assert torch.all(module.weight_orig[~masks[name]] == 0)
        assert torch.count_nonzero(module.weight[masks[name]]) == masks[name].sum()


def test_masked_model_can_be_deep_copied_and_saved():
    model = mlp()
    synflow.prune(model, "magnitude", 2)
    clone = copy.deepcopy(model)
    state = clone.state_dict()
    assert {"0.weight_orig", "0.weight_mask"} <= set(state)


def test_remove_masks_makes_them_permanent():
    model = mlp()
    masks = synflow.prune(model, "magnitude", 3)
    synflow.remove_masks(model)
    assert "0.weight" in dict(model.named_parameters())
    assert torch.equal(model[0].weight != 0, masks["0.weight"])


def test_masks_work_on_a_torchvision_model():
    model = torchvision.models.resnet18(weights=None, num_classes=10)
    masks = synflow.prune(model, "synflow", 1000, iterations=3, input_shape=(3, 32, 32))
    total = sum(m.numel() for m in masks.values())
    assert sum(int(m.sum()) for m in masks.values()) == round(total / 1000)
    assert model.eval()(torch.randn(1, 3, 32, 32)).shape == (1, 10)


def test_count_kept_empty_layers_and_compression():
    masks = {
        "a.weight": torch.tensor([True, False, False, False]),
        "b.weight": torch.zeros(4, dtype=torch.bool),
    }
    assert synflow.count_kept(masks) == {"a.weight": (1, 4), "b.weight": (0, 4)}
    assert synflow.empty_layers(masks) == ["b.weight"]
    assert synflow.compression_of(masks) == 8


def test_shuffle_keeps_each_layers_count_but_moves_the_weights():
    model = synflow.build_model("vgg11_bn", width=0.25, seed=0)
    masks = synflow.prune(model, "synflow", 20, input_shape=(3, 32, 32))
    shuffled = synflow.core.masks.shuffle_masks(masks, seed=1)
    assert synflow.count_kept(shuffled) == synflow.count_kept(masks)
    big = "features.25.weight"
    overlap = (shuffled[big] & masks[big]).sum() / masks[big].sum()
    assert overlap < 0.2  # a random placement overlaps ~ density (5 %); the original 100 %
    assert all(
        torch.equal(a, b)
        for a, b in zip(shuffled.values(), synflow.core.masks.shuffle_masks(masks, seed=1).values())
    )


def test_reinitialize_kept_draws_new_weights_inside_the_same_masks():
    model = synflow.build_model("conv", width=0.5, seed=0)
    masks = synflow.prune(model, "magnitude", 5)
    before = {k: m.weight.detach().clone() for k, m in synflow.prunable_layers(model).items()}
    synflow.models.reinitialize_kept(model, seed=3)
    for name, module in synflow.prunable_layers(model).items():
        assert torch.equal(module.weight != 0, masks[name])
        assert not torch.equal(module.weight, before[name])


def test_apply_masks_errors():
    model = mlp()
    with pytest.raises(KeyError, match="no prunable weight named"):
        synflow.apply_masks(model, {"9.weight": torch.ones(3, dtype=torch.bool)})
    with pytest.raises(ValueError, match="has shape"):
        synflow.apply_masks(model, {"0.weight": torch.ones(3, dtype=torch.bool)})


def test_model_without_prunable_layers():
    with pytest.raises(ValueError, match="no prunable layers"):
        synflow.prune(nn.Sequential(nn.ReLU()), "magnitude", 2)


@pytest.mark.parametrize("optimizer_class", [torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW])
def test_an_optimizer_built_before_pruning_trains_through_masks_and_after_export(optimizer_class):
    # issue 19, item 4: the same Parameter object throughout, as torch.nn.utils.prune
    model = mlp()
    weights = {name: m.weight for name, m in synflow.prunable_layers(model).items()}
    optimizer = optimizer_class(model.parameters(), lr=0.1)

    def step():
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(torch.randn(8, 6)), torch.arange(8) % 3).backward()
        optimizer.step()

    masks = synflow.prune(model, "magnitude", 3)
    for name, module in synflow.prunable_layers(model).items():
        assert module.weight_orig is weights[name]
    before = {name: w.detach().clone() for name, w in weights.items()}
    step()
    for name, w in weights.items():  # the masked layers train; pruned weights stay 0
        assert not torch.equal(w.detach()[masks[name]], before[name][masks[name]])
        assert torch.all(synflow.prunable_layers(model)[name].weight[~masks[name]] == 0)
    synflow.remove_masks(model)
    for name, module in synflow.prunable_layers(model).items():
        assert module.weight is weights[name] and isinstance(module.weight, nn.Parameter)
        assert torch.equal(module.weight != 0, masks[name])
    exported = {name: w.detach().clone() for name, w in weights.items()}
    step()
    assert all(not torch.equal(w.detach(), exported[name]) for name, w in weights.items())


def test_apply_masks_checks_every_mask_before_changing_any_layer():
    model = mlp()
    good = torch.ones(5, 6, dtype=torch.bool)
    with pytest.raises(ValueError, match=r"mask for 2.weight has shape \(3,\), weight has \(4, 5\)"):
        synflow.apply_masks(model, {"0.weight": good, "2.weight": torch.ones(3, dtype=torch.bool)})
    with pytest.raises(ValueError, match=r"mask for 2.weight must be boolean or 0/1"):
        synflow.apply_masks(model, {"0.weight": good, "2.weight": torch.full((4, 5), 0.5)})
    assert not any(synflow.core.masks.is_masked(m) for m in synflow.prunable_layers(model).values())


@pytest.mark.parametrize("function", [synflow.count_kept, synflow.empty_layers,
                                      synflow.compression_of, synflow.shuffle_masks])
def test_mask_counts_refuse_a_model_and_masks_of_other_values(function):
    model = nn.Sequential(nn.Linear(3, 2))
    with pytest.raises(ValueError, match=rf"{function.__name__} takes masks.*got Sequential: "
                                         r"for a model's masks, synflow.current_masks\(model\)"):
        function(model)
    with pytest.raises(ValueError, match=r"the mask of '0.weight' must be boolean or 0/1"):
        function({"0.weight": torch.full((2, 3), 3.0)})
    with pytest.raises(ValueError, match=r"the mask of '0.weight' is a list, not a tensor"):
        function({"0.weight": [1, 0]})
    function({"0.weight": torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])})  # 0/1 floats count
