"""Scores against independent oracles: float64 brute force on deep copies of the model."""

import copy

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

import synflow
from synflow.core.scorers.synflow import synflow_pass


def tiny_data(shape=(3, 8, 8), classes=10, batches=2, size=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(size, *shape, generator=g), torch.randint(classes, (size,), generator=g))
        for _ in range(batches)
    ]


def small_cnn(seed=0, batch_norm=True):
    torch.manual_seed(seed)
    layers = [nn.Conv2d(3, 6, 3, padding=1)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(6))
    layers += [nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 8, 3, padding=1), nn.ReLU()]
    layers += [nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(32, 10)]
    model = nn.Sequential(*layers)
    with torch.no_grad():  # non-trivial biases and BN state, so every parameter matters
        for p in model.parameters():
            if p.dim() == 1:
                p.uniform_(-0.5, 0.5)
        if batch_norm:
            model[1].running_mean.uniform_(-0.2, 0.2)
            model[1].running_var.uniform_(0.5, 2.0)
    return model


def weights_of(model):
    return {name: m.weight for name, m in synflow.prunable_layers(model).items()}


def assert_close(actual, expected, rtol, atol_of_max=0.0):
    """Elementwise relative tolerance; ``atol_of_max`` allows float32 cancellation in
    entries far below the largest score."""
    assert actual.keys() == expected.keys()
    atol = atol_of_max * max(float(e.abs().max()) for e in expected.values())
    for name in expected:
        torch.testing.assert_close(actual[name].double(), expected[name], rtol=rtol, atol=atol)


# ----------------------------------------------------------------- oracles


def synflow_oracle(model, input_shape):
    """SynFlow as the paper describes it, on a float64 deep copy with |params|."""
    oracle = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        for p in oracle.parameters():
            p.abs_()
    oracle(torch.ones(1, *input_shape, dtype=torch.float64)).sum().backward()
    return {name: (w.grad * w).detach() for name, w in weights_of(oracle).items()}


def snip_oracle(model, data):
    oracle = copy.deepcopy(model).double().eval()
    oracle.zero_grad()
    for x, y in data:
        F.cross_entropy(oracle(x.double()), y).backward()
    return {name: (w.grad * w).abs().detach() for name, w in weights_of(oracle).items()}


def grasp_oracle(model, data, bn_mode="eval", temperature=200.0):
    """w * (H g) with the full Hessian of the summed loss w.r.t. the prunable weights;
    BatchNorm in ``bn_mode`` (train: batch statistics; the copy's buffers may change)."""
    oracle = copy.deepcopy(model).double().eval()
    for m in oracle.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.train(bn_mode == "train")
    names = list(weights_of(oracle))
    shapes = [w.shape for w in weights_of(oracle).values()]
    flat0 = torch.cat([w.detach().flatten() for w in weights_of(oracle).values()])

    def loss(flat):
        params = dict(oracle.named_parameters())
        offset = 0
        for name, shape in zip(names, shapes):
            params[name] = flat[offset : offset + shape.numel()].view(shape)
            offset += shape.numel()
        total = 0
        for x, y in data:
            logits = torch.func.functional_call(oracle, params, (x.double(),))
            total = total + F.cross_entropy(logits / temperature, y)
        return total

    g = torch.autograd.functional.jacobian(loss, flat0)
    H = torch.autograd.functional.hessian(loss, flat0)
    scores = flat0 * (H @ g)
    return dict(
        zip(
            names,
            (s.view(shape) for s, shape in zip(scores.split([s.numel() for s in shapes]), shapes)),
        )
    )


# ------------------------------------------------------------------- tests


def test_synflow_matches_float64_oracle_with_biases_and_batchnorm():
    model = small_cnn()
    assert_close(
        synflow.compute_scores(model, "synflow", input_shape=(3, 8, 8)),
        synflow_oracle(model, (3, 8, 8)),
        1e-5,
    )


def test_synflow_equals_closed_form_on_a_linear_chain():
    torch.manual_seed(0)
    chain = nn.Sequential(
        nn.Linear(5, 4, bias=False), nn.Linear(4, 3, bias=False), nn.Linear(3, 2, bias=False)
    )
    W1, W2, W3 = (m.weight.detach().double().abs() for m in chain)
    ones = lambda n: torch.ones(n, dtype=torch.float64)
    # R = 1^T |W3| |W2| |W1| 1, so dR/d|W2|_ij = (1^T |W3|)_i (|W1| 1)_j
    expected = {
        "0.weight": torch.outer(ones(2) @ W3 @ W2, ones(5)) * W1,
        "1.weight": torch.outer(ones(2) @ W3, W1 @ ones(5)) * W2,
        "2.weight": torch.outer(ones(2), W2 @ W1 @ ones(5)) * W3,
    }
    assert_close(synflow.compute_scores(chain, "synflow", input_shape=(5,)), expected, 1e-6)
    R = ones(2) @ W3 @ W2 @ W1 @ ones(5)
    for s in expected.values():  # every layer is a cut: its scores sum to R
        torch.testing.assert_close(s.sum(), R)


def test_synflow_uses_only_the_kept_weights():
    model = small_cnn()
    masks = synflow.current_masks(model)
    g = torch.Generator().manual_seed(1)
    masks = {k: torch.rand(m.shape, generator=g) > 0.5 for k, m in masks.items()}
    synflow.apply_masks(model, masks)
    reference = copy.deepcopy(model)
    synflow.remove_masks(reference)  # plain weights holding zeros where pruned
    scores = synflow.compute_scores(model, "synflow", input_shape=(3, 8, 8))
    assert_close(scores, synflow_oracle(reference, (3, 8, 8)), 1e-5)
    for name, mask in masks.items():
        assert torch.all(scores[name][~mask] == 0)


def test_snip_matches_oracle_and_sums_gradients_over_batches_before_abs():
    model, data = small_cnn(), tiny_data()
    assert_close(synflow.compute_scores(model, "snip", data=data), snip_oracle(model, data), 1e-4, 1e-6)


def test_grasp_matches_full_hessian_oracle():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 6), nn.ReLU(), nn.Linear(6, 3))
    data = tiny_data(shape=(3, 2, 2), classes=3)
    assert_close(synflow.compute_scores(model, "grasp", data=data), grasp_oracle(model, data), 1e-4, 1e-5)


def mlp_with_batchnorm(seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 6), nn.BatchNorm1d(6), nn.ReLU(),
                          nn.Linear(6, 3))
    with torch.no_grad():  # running statistics far from any batch's: the modes differ
        model[2].running_mean.uniform_(-1.0, 1.0)
        model[2].running_var.uniform_(0.2, 3.0)
        model[2].weight.uniform_(0.5, 1.5)
        model[2].bias.uniform_(-0.5, 0.5)
    return model


@pytest.mark.parametrize("bn_mode", ["eval", "train"])
@pytest.mark.parametrize("temperature", [1.0, 200.0])
def test_grasp_matches_full_hessian_oracle_with_batchnorm_in_both_modes(bn_mode, temperature):
    model = mlp_with_batchnorm()
    data = tiny_data(shape=(3, 2, 2), classes=3)
    state = copy.deepcopy(model.state_dict())
    ours = synflow.compute_scores(model, "grasp", data=data, bn_mode=bn_mode,
                                  temperature=temperature)
    assert_close(ours, grasp_oracle(model, data, bn_mode, temperature), 1e-4, 1e-5)
    # the other mode and the other temperature give other scores: the oracle tells them apart
    other_mode = grasp_oracle(model, data, {"eval": "train", "train": "eval"}[bn_mode], temperature)
    other_temperature = grasp_oracle(model, data, bn_mode, 201.0 - temperature)
    for other in (other_mode, other_temperature):
        with pytest.raises(AssertionError):
            assert_close(ours, other, 1e-4, 1e-5)
    for key, value in model.state_dict().items():  # running statistics untouched
        assert torch.equal(value, state[key]), key


@pytest.mark.parametrize("bn_mode", ["eval", "train"])
def test_snip_matches_oracle_in_both_batchnorm_modes(bn_mode):
    model, data = mlp_with_batchnorm(), tiny_data(shape=(3, 2, 2), classes=3)
    oracle = copy.deepcopy(model).double().eval()
    oracle[2].train(bn_mode == "train")
    for x, y in data:
        F.cross_entropy(oracle(x.double()), y).backward()
    expected = {name: (w.grad * w).abs().detach() for name, w in weights_of(oracle).items()}
    assert_close(synflow.compute_scores(model, "snip", data=data, bn_mode=bn_mode),
                 expected, 1e-4, 1e-6)


def test_bn_mode_and_temperature_errors():
    model, data = mlp_with_batchnorm(), tiny_data(shape=(3, 2, 2), classes=3)
    with pytest.raises(ValueError, match=r"bn_mode 'training' is not allowed.*eval, train"):
        synflow.compute_scores(model, "grasp", data=data, bn_mode="training")
    with pytest.raises(ValueError, match=r"bn_mode 'train' is for .*grasp, snip.*'synflow'"):
        synflow.prune(model, "synflow", 2, input_shape=(3, 2, 2), bn_mode="train")
    for bad in (0, -1.0, float("inf"), float("nan"), True, "200"):
        with pytest.raises(ValueError, match=r"temperature must be a finite number > 0"):
            synflow.compute_scores(model, "grasp", data=data, temperature=bad)
    with pytest.raises(ValueError, match=r"temperature 1.0 is for grasp only; 'snip'"):
        synflow.prune_through(model, "snip", [0.5], data=data, temperature=1.0)
    assert all(not synflow.core.masks.is_masked(m) for m in synflow.prunable_layers(model).values())


def test_prune_passes_bn_mode_and_temperature_through_every_iteration():
    data = tiny_data(shape=(3, 2, 2), classes=3)
    seen = []

    def spy(model, layers, weights, **options):
        seen.append((options.get("bn_mode"), options.get("temperature")))
        return synflow.core.scorers.gradient.grasp_scores(model, layers, weights, **options)

    masks = {}
    for mode, temperature in [("eval", 200.0), ("train", 200.0), ("eval", 1.0), ("train", 1.0)]:
        model = mlp_with_batchnorm()
        masks[mode, temperature] = synflow.prune(model, "grasp", 4, iterations=3, data=data,
                                                 bn_mode=mode, temperature=temperature)
        expected = mlp_with_batchnorm()
        synflow.prune_through(expected, spy, synflow.core.schedules.schedule_densities(4, 3, "exponential"),
                              data=data, bn_mode=mode, temperature=temperature)
        assert all(torch.equal(masks[mode, temperature][k], m)
                   for k, m in synflow.current_masks(expected).items())
    assert seen[:3] == [(None, None)] * 3  # defaults: a scorer function gets no options
    assert seen[3:6] == [("train", None)] * 3 and seen[6:9] == [(None, 1.0)] * 3
    # the four settings do not all give one mask (otherwise nothing reached the scorer)
    digests = {tuple(torch.cat([m.flatten() for m in ms.values()]).tolist()) for ms in masks.values()}
    assert len(digests) > 1


def test_magnitude_and_random():
    model = small_cnn()
    mag = synflow.compute_scores(model, "magnitude")
    for name, w in weights_of(model).items():
        assert torch.equal(mag[name], w.detach().abs())
    r1 = synflow.compute_scores(model, "random", seed=3)
    r2 = synflow.compute_scores(model, "random", seed=3)
    r3 = synflow.compute_scores(model, "random", seed=4)
    assert all(torch.equal(r1[k], r2[k]) for k in r1)
    assert not torch.equal(r1["0.weight"], r3["0.weight"])


@pytest.mark.parametrize("method,bn_mode", [
    ("snip", "eval"), ("snip", "train"), ("grasp", "eval"), ("grasp", "train"),
    ("synflow", "eval"), ("magnitude", "eval"), ("random", "eval")])
def test_scoring_leaves_the_model_exactly_as_it_was(method, bn_mode):
    model = small_cnn().train()
    model[1].eval()  # a mixed-mode model: every module's own flag must come back
    synflow.apply_masks(model, {"4.weight": torch.rand(8, 6, 3, 3) > 0.3})
    for p in model.parameters():  # stale gradients must neither leak in nor be touched
        p.grad = torch.full_like(p, 7.0)
    state = copy.deepcopy(model.state_dict())
    modes = [m.training for m in model.modules()]
    cached_weight = model[4].weight
    s = synflow.compute_scores(model, method, data=tiny_data(), input_shape=(3, 8, 8),
                               bn_mode=bn_mode)
    fresh = copy.deepcopy(model)
    for p in fresh.parameters():
        p.grad = None
    again = synflow.compute_scores(fresh, method, data=tiny_data(), input_shape=(3, 8, 8),
                                   bn_mode=bn_mode)
    assert all(torch.equal(s[k], again[k]) for k in s)
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key
    assert [m.training for m in model.modules()] == modes
    assert torch.equal(model[4].weight, cached_weight)  # the masked weight it computes with
    assert all(torch.all(p.grad == 7.0) for p in model.parameters())


def test_scoring_restores_the_model_when_it_raises():
    model = small_cnn().train()
    synflow.apply_masks(model, {"0.weight": torch.rand(6, 3, 3, 3) > 0.5})
    state = copy.deepcopy(model.state_dict())
    cached = model[0].weight
    bad = [(torch.randn(4, 5, 8, 8), torch.zeros(4, dtype=torch.long))]  # 5 channels: conv fails
    with pytest.raises(RuntimeError):
        synflow.compute_scores(model, "snip", data=bad)
    with pytest.raises(RuntimeError):
        synflow.compute_scores(model, "synflow", input_shape=(5, 8, 8))
    assert model.training and all(m.training for m in model.modules())
    assert torch.equal(model[0].weight, cached)
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_synflow_is_finite_and_exact_for_resnet110():
    model = synflow.build_model("resnet110", seed=0)
    R32, _ = synflow_pass(
        model,
        synflow.prunable_layers(model),
        {k: w.detach() for k, w in weights_of(model).items()},
        (3, 32, 32),
        torch.float32,
    )
    assert not torch.isfinite(R32)  # the authors' float32 computation overflows here
    ours = synflow.compute_scores(model, "synflow", input_shape=(3, 32, 32))
    assert all(torch.isfinite(s).all() for s in ours.values())
    assert_close(ours, synflow_oracle(model, (3, 32, 32)), 1e-5)


def test_synflow_is_finite_and_exact_for_torchvision_resnet50_at_224():
    torch.manual_seed(0)
    model = torchvision.models.resnet50(weights=None)
    ours = synflow.compute_scores(model, "synflow", input_shape=(3, 224, 224))
    assert all(torch.isfinite(s).all() for s in ours.values())
    assert_close(ours, synflow_oracle(model, (3, 224, 224)), 1e-5)


def test_scores_errors():
    model = small_cnn()
    with pytest.raises(ValueError, match="unknown pruning method 'snp'.*synflow"):
        synflow.compute_scores(model, "snp")
    with pytest.raises(ValueError, match="snip needs data"):
        synflow.compute_scores(model, "snip")
    with pytest.raises(ValueError, match="synflow needs input_shape"):
        synflow.compute_scores(model, "synflow")


def test_synflow_reads_input_shape_from_data():
    model = small_cnn()
    from_data = synflow.compute_scores(model, "synflow", data=tiny_data())
    from_shape = synflow.compute_scores(model, "synflow", input_shape=(3, 8, 8))
    assert all(torch.equal(from_data[k], from_shape[k]) for k in from_shape)


# ------------------------------------------- the temperature takes effect


def test_grasps_temperature_takes_effect():
    model = synflow.build_model("conv", input_shape=(3, 8, 8), width=0.25, seed=0)
    data = tiny_data()
    before = synflow.compute_scores(model, "grasp", data=data)
    after = synflow.compute_scores(model, "grasp", data=data, temperature=1.0)
    assert synflow.core.scorers.gradient.GRASP_TEMPERATURE == 200.0  # the default temperature
    assert any(not torch.allclose(before[n], after[n]) for n in before)
