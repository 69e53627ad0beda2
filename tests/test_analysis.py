"""Tests of synflow.analysis against independent oracles on tiny nets."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import synflow
from synflow import analysis
from synflow.core.schedules import schedule_densities
from synflow.core.scorers.inputs import InputShapeError


def chain(widths, activation=nn.ReLU, bias=True, seed=0):
    """A Linear chain with the given widths (input first), Kaiming weights, zero biases."""
    torch.manual_seed(seed)
    layers = []
    for fan_in, fan_out in itertools.pairwise(widths):
        layers += [nn.Linear(fan_in, fan_out, bias=bias), activation()]
    return synflow.models.inits.kaiming_fan_in(nn.Sequential(*layers[:-1]))


def small_cnn(seed=0):
    """Conv, max-pool, conv, adaptive pool to 2x2, flatten (4 features per channel), two Linear."""
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 5, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(20, 6),
        nn.ReLU(),
        nn.Linear(6, 3),
    )
    return synflow.models.inits.kaiming_fan_in(net)


def path_products(matrices):
    """Brute force over every input-output path of a Linear chain (weights out x in):
    R = sum of path products, score[l][i, j] = sum of the products of paths through it."""
    widths = [matrices[0].shape[1]] + [m.shape[0] for m in matrices]
    R = 0.0
    scores = [torch.zeros_like(m, dtype=torch.float64) for m in matrices]
    for path in itertools.product(*[range(w) for w in widths]):
        product = math.prod(float(m[path[k + 1], path[k]]) for k, m in enumerate(matrices))
        R += product
        for k in range(len(matrices)):
            scores[k][path[k + 1], path[k]] += product
    return R, scores


# ------------------------------------------------------------------ saliency


def test_synflow_saliency_matches_path_enumeration():
    net = chain([3, 4, 3, 2])
    R, scores = analysis.synflow_saliency(net, (3,))
    matrices = [m.weight.detach().double().abs() for m in net if isinstance(m, nn.Linear)]
    R_brute, brute = path_products(matrices)
    assert R == pytest.approx(R_brute, rel=1e-12)
    names = list(synflow.prunable_layers(net))
    for name, expected in zip(names, brute):
        torch.testing.assert_close(scores[name], expected, rtol=1e-12, atol=0)


def test_loss_saliency_matches_plain_autograd():
    net = chain([5, 4, 3])
    x, y = torch.randn(7, 5), torch.tensor([0, 1, 2, 0, 1, 2, 0])
    _, scores = analysis.loss_saliency(net, [(x, y)])
    reference = net.double()
    F.cross_entropy(reference(x.double()), y).backward()
    for name, p in reference.named_parameters():
        torch.testing.assert_close(scores[name], p.grad * p.detach(), rtol=1e-10, atol=1e-14)


def test_saliency_leaves_the_model_untouched():
    net = synflow.build_model("vgg11_bn", width=0.125, seed=0).train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    analysis.loss_saliency(net, [(torch.randn(4, 3, 32, 32), torch.arange(4))], train=True)
    assert net.training
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), k


# ------------------------------------------------------- neuron-wise conservation


def test_neuron_flows_by_hand_on_a_chain():
    net = chain([3, 4, 2])
    scores = {"0.weight": torch.arange(12.0).view(4, 3), "2.weight": torch.arange(8.0).view(2, 4)}
    flows = analysis.neuron_flows(net, scores)
    assert flows["incoming"].tolist() == [3.0, 12.0, 21.0, 30.0]  # row sums of layer 0
    assert flows["outgoing"].tolist() == [4.0, 6.0, 8.0, 10.0]  # column sums of layer 2


def test_synflow_and_loss_saliency_are_conserved_per_unit_and_per_layer():
    net = small_cnn()
    _, synflow_scores = analysis.synflow_saliency(net, (3, 8, 8))
    data = [(torch.randn(6, 3, 8, 8), torch.tensor([0, 1, 2, 0, 1, 2]))]
    _, loss_scores = analysis.loss_saliency(net, data)
    for scores in (synflow_scores, loss_scores):
        assert analysis.neuronwise_residual(analysis.neuron_flows(net, scores)) < 1e-10
        totals = analysis.layer_statistics(analysis.weight_scores(scores, net))["total"]
        assert analysis.total_spread(totals) < 1e-10


def test_flatten_must_group_features_by_channel():
    """Outgoing flows read after a flatten: a wrong grouping breaks the exact balance."""
    net = small_cnn()
    _, scores = analysis.synflow_saliency(net, (3, 8, 8))
    flows = analysis.neuron_flows(net, scores)
    last_conv = flows[flows["layer"] == "3.weight"]
    reading = scores["7.weight"].sum(0)  # 20 features, channel-major
    wrong = reading.view(4, 5).sum(0)  # grouping the features position-major
    assert torch.allclose(torch.tensor(last_conv["outgoing"].values), reading.view(5, 4).sum(1))
    assert not torch.allclose(torch.tensor(last_conv["incoming"].values), wrong)


def test_conservation_breaks_for_tanh_biases_left_out_and_batchnorm_in_train_mode():
    data = [(torch.randn(8, 5), torch.arange(8) % 3)]
    tanh = analysis.with_activation(chain([5, 6, 6, 3]), nn.Tanh)
    _, scores = analysis.loss_saliency(tanh, data)
    assert analysis.neuronwise_residual(analysis.neuron_flows(tanh, scores)) > 1e-6

    biased = analysis.fill_biases(chain([5, 6, 6, 3]), 0.3)
    _, scores = analysis.synflow_saliency(biased, (5,))
    counted = analysis.neuronwise_residual(analysis.neuron_flows(biased, scores))
    left_out = analysis.neuron_flows(biased, analysis.weight_scores(scores, biased))
    assert counted < 1e-10
    assert analysis.neuronwise_residual(left_out) > 1e-6

    torch.manual_seed(0)
    bn = synflow.models.inits.kaiming_fan_in(
        nn.Sequential(nn.Linear(5, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3))
    )
    for train, conserved in ((False, True), (True, False)):
        _, scores = analysis.loss_saliency(bn, data, train=train)
        residual = analysis.neuronwise_residual(analysis.neuron_flows(bn, scores))
        assert (residual < 1e-10) is conserved


def test_chain_layers_rejects_a_resnet():
    with pytest.raises(ValueError, match="not a chain"):
        analysis.chain_layers(synflow.build_model("resnet20", width=0.25))


def test_fit_slope_and_spread():
    sizes = [10, 100, 1000, 10000]
    assert analysis.fit_slope(sizes, [5 / s for s in sizes]) == pytest.approx(1.0)
    assert analysis.fit_slope(sizes, [3.0] * 4) == pytest.approx(0.0, abs=1e-12)
    assert analysis.total_spread([2.0, 2.0, 2.0]) == 0.0
    assert analysis.total_spread([1.0, 2.0]) == 0.5


def test_conservation_summary_separates_synflow_from_magnitude():
    net = small_cnn()
    summary = {
        method: analysis.conservation_summary(
            net, synflow.compute_scores(net, method, input_shape=(3, 8, 8))
        )
        for method in ("synflow", "magnitude")
    }
    assert summary["synflow"]["layer_total_spread"] < 1e-4
    assert summary["synflow"]["slope"] == pytest.approx(1.0, abs=1e-3)
    assert summary["magnitude"]["layer_total_spread"] > 0.1


# ------------------------------------------------------------- layer-collapse


def test_find_critical_brackets_a_known_threshold():
    calls = []

    def empty_at(c):
        calls.append(c)
        return ["a"] if c > 123.4 else []

    found = analysis.find_critical(empty_at, 1e4, grid_step=0.25, bisection_steps=8)
    assert found.compression <= 123.4 < found.collapse_at
    assert math.log10(found.collapse_at / found.compression) <= 0.25 / 2**8 + 1e-12
    assert found.first_empty == ["a"] and found.evaluations == len(calls)
    down = analysis.find_critical(empty_at, 1e4, bisection_steps=2, search="downward")
    assert down.compression <= 123.4 < down.collapse_at
    # not monotone: safe again at 1e3; the downward walk finds the last safe grid point
    bumpy = analysis.find_critical(
        lambda c: ["a"] if 123.4 < c < 500 or c > 5000 else [],
        1e4,
        bisection_steps=0,
        search="downward",
    )
    assert bumpy.compression == pytest.approx(10**3.5)
    assert bumpy.collapse_at == pytest.approx(10**3.75)
    safe = analysis.find_critical(lambda c: [], 1e4)
    assert safe.reaches_max and safe.compression == 1e4 and safe.evaluations == 1


def three_layer_chain():
    """Linear 2->2->2->2 without biases; |w| = 0.1 in layer 0, 10 in layer 1, 1 in layer 2.
    Magnitude ranks layer 1, then 2, then 0: layer 0 empties unless 9 of 12 weights stay."""
    net = nn.Sequential(
        nn.Linear(2, 2, bias=False),
        nn.ReLU(),
        nn.Linear(2, 2, bias=False),
        nn.ReLU(),
        nn.Linear(2, 2, bias=False),
    )
    with torch.no_grad():
        for module, value in zip((net[0], net[2], net[4]), (0.1, 10.0, 1.0)):
            module.weight.copy_(value * torch.tensor([[1.0, -1.0], [-1.0, 1.0]]))
    return net


def test_critical_compression_of_a_hand_built_chain():
    found = analysis.critical_compression(three_layer_chain, "magnitude", input_shape=(2,))
    assert found.max_compression == 4.0
    # keeping round(12 / c) >= 9 weights is safe: 12 / 9 <= c < 12 / 8.5
    assert 12 / 9 - 1e-9 <= found.compression < 12 / 8.5 < found.collapse_at
    assert found.first_empty == ["0.weight"]
    assert analysis.exact_critical_compression(
        synflow.compute_scores(three_layer_chain(), "magnitude")
    ) == (12 / 9, "0.weight")


def test_exact_critical_compression_matches_brute_force_selection():
    generator = torch.Generator().manual_seed(1)
    scores = {
        name: torch.randint(0, 6, shape, generator=generator).float()  # many ties
        for name, shape in (("a", (3, 4)), ("b", (5,)), ("c", (2, 2)))
    }
    total = 21
    k_star = next(
        k
        for k in range(1, total + 1)
        if not synflow.empty_layers(synflow.select(scores, k / total))
    )
    compression, layer = analysis.exact_critical_compression(scores)
    assert compression == total / k_star
    assert synflow.empty_layers(synflow.select(scores, (k_star - 1) / total)) == [layer]


def test_exact_critical_compression_ranks_integers_as_select_does():
    """Integers above 2**53 tie in float64, select's ranking dtype: the closed form is the
    brute-force selection's (a comparison in int64 or through a rounded float was not)."""
    big = 2**53
    for scores in ({"a": torch.tensor([big]), "b": torch.tensor([big + 1])},
                   {"a": torch.tensor([big + 1, 0]), "b": torch.tensor([1])}):
        total = sum(s.numel() for s in scores.values())
        k_star = next(k for k in range(1, total + 1)
                      if not synflow.empty_layers(synflow.select(scores, k / total)))
        compression, layer = analysis.exact_critical_compression(scores)
        assert compression == total / k_star
        assert synflow.empty_layers(synflow.select(scores, (k_star - 1) / total)) == [layer]


@pytest.mark.parametrize("scores, message", [
    ({}, "non-empty dict"),
    ({"a": torch.tensor([1.0, math.nan]), "b": torch.tensor([0.5])}, "NaN or inf: a"),
    ({"a": torch.ones(2), "b": torch.zeros(0)}, r"without weights.*'b'"),
])
def test_exact_critical_compression_refuses_meaningless_scores(scores, message):
    with pytest.raises(ValueError, match=message):
        analysis.exact_critical_compression(scores)


def test_iterative_critical_compression_uses_the_pruning_loop():
    def factory():
        # zero biases (Theorem 3's conservation): with the authors' PyTorch-default init the
        # MLP's biases feed paths that skip the input, and iterative SynFlow stops short
        return synflow.build_model("mlp", input_shape=(1, 4, 4), width=0.1, seed=0,
                                   init="kaiming_fan_in")

    single = analysis.critical_compression(factory, "synflow", input_shape=(1, 4, 4))
    iterative = analysis.critical_compression(
        factory, "synflow", iterations=20, input_shape=(1, 4, 4)
    )
    assert iterative.reaches_max and iterative.compression == iterative.max_compression
    assert single.compression <= iterative.compression


def test_input_output_paths_counts_paths_of_the_mask():
    net = chain([3, 4, 3, 2])
    generator = torch.Generator().manual_seed(3)
    masks = {
        name: torch.rand(m.weight.shape, generator=generator) < 0.5
        for name, m in synflow.prunable_layers(net).items()
    }
    product = torch.ones(3, dtype=torch.float64)
    for mask in masks.values():
        product = mask.double() @ product
    assert analysis.input_output_paths(net, masks, (3,)) == float(product.sum())
    # every layer keeps a weight, yet no path: unit 0 is fed, unit 1 is read
    cut = {name: torch.zeros_like(m) for name, m in masks.items()}
    cut["0.weight"][0, 0] = cut["2.weight"][0, 1] = cut["4.weight"][0, 0] = True
    assert not synflow.empty_layers(cut) and analysis.input_output_paths(net, cut, (3,)) == 0
    synflow.apply_masks(net, masks)  # the installed masks are read the same way
    assert analysis.input_output_paths(net, input_shape=(3,)) == float(product.sum())


def test_an_empty_resnet_shortcut_keeps_paths():
    net = synflow.build_model("resnet20", width=0.25, seed=0)
    masks = synflow.current_masks(net)
    masks["layers.1.0.shortcut.0.weight"][:] = False
    assert analysis.input_output_paths(net, masks) > 0
    masks["layers.1.0.conv1.weight"][:] = False  # now both branches into stage 2 are cut
    assert analysis.input_output_paths(net, masks) == 0


def test_paths_do_not_depend_on_batchnorm_statistics():
    net = synflow.build_model("vgg16_bn", width=0.125, seed=0)
    masks = synflow.current_masks(net)
    masks["features.10.weight"][:] = False  # an empty layer: no path
    untrained = analysis.input_output_paths(net, masks), analysis.input_output_paths(net)
    generator = torch.Generator().manual_seed(0)
    for module in net.modules():  # as after training: shifts and means of both signs
        if isinstance(module, torch.nn.BatchNorm2d):
            for tensor in (module.weight.data, module.bias.data, module.running_mean,
                           module.running_var):
                tensor.add_(torch.randn(tensor.shape, generator=generator))
    assert untrained[0] == 0 and untrained[1] > 0
    assert (analysis.input_output_paths(net, masks), analysis.input_output_paths(net)) == untrained


@pytest.mark.parametrize("module", [torch.nn.LayerNorm(4), torch.nn.GroupNorm(2, 4),
                                    torch.nn.BatchNorm1d(4, track_running_stats=False),
                                    torch.nn.Softmax(dim=1), torch.nn.Sigmoid()])
def test_paths_refuse_a_self_normalising_module(module):
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), module, torch.nn.Linear(4, 2))
    name = type(module).__name__
    with pytest.raises(ValueError, match=rf"cannot count paths through \['1 \({name}\)'\]"):
        analysis.input_output_paths(net, input_shape=(3,))


class Offset(nn.Module):
    """Adds a learned per-feature offset named like no bias torch knows."""

    def __init__(self, features):
        super().__init__()
        self.offset_bias = nn.Parameter(torch.ones(features))

    def forward(self, x):
        return x + self.offset_bias


class PlusOne(nn.Module):
    """A head that is not 0 at 0, in forward code."""

    def forward(self, x):
        return x + 1.0


def test_paths_are_zero_when_the_input_cannot_reach_the_output():
    cut = {"0.weight": torch.zeros(4, 3), "3.weight": torch.ones(2, 4)}
    # an offset after the cut layer and a head that is not 0 at 0 feed the output anyway
    net = nn.Sequential(nn.Linear(3, 4), Offset(4), nn.ReLU(), nn.Linear(4, 2), PlusOne())
    assert analysis.input_output_paths(net, cut, (3,)) == 0
    kept = {"0.weight": torch.ones(4, 3), "3.weight": torch.ones(2, 4)}
    count = analysis.input_output_paths(net, kept, (3,))
    net[1].offset_bias.data.fill_(5.0)  # every bias is 0 on the pass: the same count
    assert count > 0 and analysis.input_output_paths(net, kept, (3,)) == count


def test_paths_of_a_wrapped_model_are_its_own():
    net = chain([3, 4, 2])
    plain = analysis.input_output_paths(net, input_shape=(3,))
    assert plain == 24
    for wrapped in (nn.DataParallel(net), torch.compile(net)):
        assert analysis.input_output_paths(wrapped, input_shape=(3,)) == plain
    synflow.prune(net, "magnitude", 2)
    assert analysis.input_output_paths(torch.compile(net), input_shape=(3,)) == \
        analysis.input_output_paths(net, input_shape=(3,))


def test_paths_refuse_masks_that_do_not_fit_and_shapes_the_model_cannot_take():
    net = chain([3, 4, 2])
    with pytest.raises(KeyError, match=r"no mask for the prunable weight\(s\) \['2.weight'\]"):
        analysis.input_output_paths(net, {"0.weight": torch.ones(4, 3)}, (3,))
    with pytest.raises(KeyError, match="no prunable weight named"):
        analysis.input_output_paths(net, {**synflow.current_masks(net), "x": torch.ones(1)}, (3,))
    with pytest.raises(InputShapeError, match=r"inputs of shape \(5,\)"):
        analysis.input_output_paths(net, input_shape=(5,))
    with pytest.raises(ValueError, match="input_shape must be one sample's shape.*got 3"):
        analysis.input_output_paths(net, input_shape=3)
    with pytest.raises(TypeError, match="masks must be a dict .* got list"):
        analysis.input_output_paths(net, [torch.ones(4, 3)], (3,))
    tied = chain([3, 3, 3])
    tied[2].weight = tied[0].weight  # one mask could not govern both uses
    with pytest.raises(ValueError, match="tied weights"):
        analysis.input_output_paths(tied, input_shape=(3,))


# ----------------------------------------------------- the SynFlow loop, traced


def test_synflow_iterations_match_synflow_prune():
    def factory():
        return synflow.build_model("conv", input_shape=(3, 8, 8), width=0.25, seed=0)

    densities = schedule_densities(30.0, 5, "exponential")
    model = factory()
    steps = analysis.synflow_iterations(model, densities, (3, 8, 8))
    kept_per_step = []
    masks = synflow.prune(
        factory(), "synflow", 30.0, iterations=5, input_shape=(3, 8, 8),
        callback=lambda step: kept_per_step.append(
            {name: int(m.sum()) for name, m in step.after.items()}),
    )
    assert [s.kept for s in steps] == kept_per_step  # every step, not only the last
    assert all(torch.equal(m, masks[n]) for n, m in synflow.current_masks(model).items())
    assert [s.density for s in steps] == densities and densities[-1] == 1 / 30
    # R is SynFlow's R of the net before the first step; the step removes part of it
    assert steps[0].R == pytest.approx(analysis.synflow_saliency(factory(), (3, 8, 8))[0], rel=1e-5)
    assert 0 < steps[0].removed < steps[0].R


def test_prune_size_ratio_of_one_step_by_path_enumeration():
    net = chain([3, 4, 3, 2], bias=False)
    matrices = [m.weight.detach().double().abs() for m in net if isinstance(m, nn.Linear)]
    R, brute = path_products(matrices)
    flat = torch.cat([s.flatten() for s in brute])
    kept = round(flat.numel() / 3)
    removed = float(flat.sort(descending=True).values[kept:].sum())
    ratio = analysis.prune_size_ratio(
        lambda: chain([3, 4, 3, 2], bias=False), 3.0, 1, input_shape=(3,)
    )
    assert ratio == pytest.approx(removed / R, rel=1e-9)
    assert analysis.prune_size_ratio(lambda: chain([3, 4, 3, 2]), 1.0, 5) == 0.0


def test_prune_size_ratio_falls_with_iterations_and_exceeds_one_at_collapse():
    def factory():
        return chain([6, 8, 8, 3], bias=False, seed=2)

    shape = (6,)
    single = analysis.prune_size_ratio(factory, 30.0, 1, input_shape=shape)
    many = analysis.prune_size_ratio(factory, 30.0, 50, input_shape=shape)
    assert many < 1 <= single  # one shot to 4 of 120 weights removes a whole layer's total


@pytest.mark.parametrize("method", sorted(synflow.SCORERS))
def test_iterative_masks_match_synflow_prune(method):
    def factory():
        return synflow.build_model("conv", input_shape=(3, 8, 8), width=0.25, seed=0)

    data = [(torch.randn(6, 3, 8, 8, generator=torch.Generator().manual_seed(0)), torch.arange(6))]
    densities = schedule_densities(20.0, 4, "exponential")
    ours = analysis.iterative_masks(
        factory(), method, densities, data=data, input_shape=(3, 8, 8), seed=5,
        stop_on_collapse=False,
    )
    theirs = synflow.prune(
        factory(), method, 20.0, iterations=4, data=data, input_shape=(3, 8, 8), seed=5
    )
    assert all(torch.equal(ours[name], theirs[name]) for name in theirs)


def test_iterative_masks_stop_at_the_first_collapsed_step():
    def factory():
        return chain([6, 8, 8, 3], bias=False, seed=2)  # 48 + 64 + 24 = 136 weights

    densities = [0.5, 2 / 136, 1 / 136]  # step 2 keeps 2 weights in 3 layers: collapsed
    early = analysis.iterative_masks(factory(), "magnitude", densities)
    assert synflow.empty_layers(early) and sum(int(m.sum()) for m in early.values()) == 2
    full = analysis.iterative_masks(factory(), "magnitude", densities, stop_on_collapse=False)
    assert sum(int(m.sum()) for m in full.values()) == 1


def test_single_removal_iterations():
    # L = 4, rho = 5**4: (1 + 1/4)**n >= 625 first at n = 29
    assert analysis.single_removal_iterations(625.0, 4) == 29
    assert 1.25**28 < 625 <= 1.25**29


def test_kept_weight_signs_match_a_loop_over_units():
    model = small_cnn(seed=3)
    masks = {name: torch.rand(m.weight.shape, generator=torch.Generator().manual_seed(i)) < 0.3
             for i, (name, m) in enumerate(synflow.prunable_layers(model).items())}
    first = next(iter(masks))
    masks[first][0] = False  # a unit with nothing kept is left out of unit_bias
    synflow.apply_masks(model, masks)
    table = analysis.kept_weight_signs(model)
    assert list(table.index) == list(masks)
    for name, module in synflow.prunable_layers(model).items():
        weight = module.weight_orig.detach()
        signs = []
        positives = kept_total = 0
        for unit in range(weight.shape[0]):
            kept = weight[unit][masks[name][unit]].tolist()
            positives += sum(w > 0 for w in kept)
            kept_total += len(kept)
            if kept:
                signs.append(abs(2 * sum(w > 0 for w in kept) / len(kept) - 1))
        assert table.loc[name, "kept"] == kept_total
        assert table.loc[name, "positive"] == pytest.approx(positives / kept_total)
        assert table.loc[name, "unit_bias"] == pytest.approx(sum(signs) / len(signs))


def test_kept_weight_signs_of_one_signed_units_is_one():
    model = chain([4, 6, 3], bias=False)
    with torch.no_grad():
        for module in synflow.prunable_layers(model).values():
            module.weight.abs_()  # every weight positive
    table = analysis.kept_weight_signs(model)
    assert (table["positive"] == 1).all() and (table["unit_bias"] == 1).all()


def test_single_shot_analyses_refuse_a_model_with_masks_installed():
    net = nn.Sequential(nn.Linear(8, 16, bias=False), nn.ReLU(), nn.Linear(16, 4, bias=False))
    synflow.prune(net, "magnitude", 4)  # its pruned weights would be ranked again
    for name, call in (
            ("empty_layer_counts", lambda: analysis.empty_layer_counts(
                lambda: net, ["random"], [0.0], input_shape=(8,))),
            ("critical_compression", lambda: analysis.critical_compression(
                lambda: net, "random", input_shape=(8,))),
            ("critical_table", lambda: analysis.critical_table(
                {"net": lambda: net}, ["random"], input_shape=(8,)))):
        with pytest.raises(ValueError, match=rf"{name} measures a freshly built model.*"
                                             r"\(144 of 192 weights pruned\)"):
            call()


@pytest.mark.parametrize("groups", [1, 2])
def test_kept_weight_signs_reads_a_conv_transposes_output_units(groups):
    layer = nn.ConvTranspose2d(4, 6, 1, groups=groups, bias=False)  # weight (4, 6 / groups, 1, 1)
    with torch.no_grad():  # every output unit reads inputs 0 and 1 (+) or 2 and 3 (-) ...
        layer.weight.copy_(torch.tensor([1.0, -1.0, 1.0, -1.0]).view(4, 1, 1, 1).expand_as(
            layer.weight))  # ... inputs alternate in sign, so each unit keeps one of each
    signs = analysis.kept_weight_signs(nn.Sequential(layer)).loc["0.weight"]
    assert signs["positive"] == 0.5 and signs["unit_bias"] == 0.0  # by input units: 1.0


@pytest.mark.parametrize("layer", [nn.ConvTranspose2d(3, 4, 3), nn.Conv2d(4, 4, 3, groups=2)])
def test_chain_layers_refuses_weights_whose_axes_are_not_out_in(layer):
    net = nn.Sequential(nn.Conv2d(1, 3 if isinstance(layer, nn.ConvTranspose2d) else 4, 3),
                        nn.ReLU(), layer)
    with pytest.raises(ValueError, match=rf"2\.weight is a {type(layer).__name__}.*not "
                                         r"\(output units, input units, \.\.\.\)"):
        analysis.chain_layers(net)


def test_find_critical_checks_compression_1_and_its_grid_step():
    with pytest.raises(ValueError, match=r"\['a'\] are empty at compression 1"):
        analysis.find_critical(lambda c: ["a"], 1000.0)  # empty before any pruning
    for step in (0, -0.25, float("nan")):
        with pytest.raises(ValueError, match=rf"grid_step a finite number > 0.*{step!r}"):
            analysis.find_critical(lambda c: ["x"] if c > 5 else [], 1000.0, grid_step=step)
    calls = []  # where the search ends above compression 1, 1 is not tried again
    found = analysis.find_critical(lambda c: calls.append(c) or (["x"] if c > 5 else []), 1000.0)
    assert found.compression > 4.9 and 1.0 not in calls


def test_single_removal_iterations_refuses_what_has_no_answer():
    assert analysis.single_removal_iterations(1.0, 3) == 1
    for compression, layers in ((0.5, 3), (10.0, 0)):
        with pytest.raises(ValueError, match="compression >= 1 and layers >= 1"):
            analysis.single_removal_iterations(compression, layers)


def test_prune_size_ratio_refuses_a_compression_outside_1_to_n():
    factory = lambda: nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    for compression in (0.5, 49):  # 48 prunable weights
        with pytest.raises(ValueError, match=rf"compression must be in \[1, 48\].*{compression}"):
            analysis.prune_size_ratio(factory, compression, 2, input_shape=(4,))
    assert analysis.prune_size_ratio(factory, 1, 2, input_shape=(4,)) == 0.0


def test_edge_inputs_get_an_answer_or_a_clear_error():
    with pytest.raises(ValueError, match="max_compression needs at least one prunable weight"):
        analysis.max_compression({})
    assert math.isnan(analysis.layer_fractions({"a": torch.ones(0)})["a"])
    assert math.isnan(analysis.fit_slope([10, 10], [0.1, 0.2]))  # one size: no slope
    one = nn.Sequential(nn.Linear(4, 2, bias=False))
    with pytest.raises(ValueError, match="neuron_flows needs two or more prunable layers"):
        analysis.conservation_summary(one, {"0.weight": torch.ones(2, 4)})
