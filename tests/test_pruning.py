import math
import warnings

import pytest
import torch
from torch import nn

import synflow
from synflow.core import selection
from synflow.core.selection import top_k


def sort_oracle(values, k):
    """Top k by (value descending, index ascending), via a full stable sort."""
    order = torch.sort(values, descending=True, stable=True).indices[:k]
    chosen = torch.zeros(values.numel(), dtype=torch.bool)
    chosen[order] = True
    return chosen


@pytest.mark.parametrize("n", [10, 1000, 300_000])
@pytest.mark.parametrize("fraction", [0.0, 0.001, 0.3, 0.97, 1.0])
def test_top_k_matches_a_full_sort_with_ties_to_the_lowest_index(n, fraction):
    g = torch.Generator().manual_seed(n)
    values = torch.randint(0, 50, (n,), generator=g).float()  # heavy ties
    values[: n // 3] = torch.rand(n // 3, generator=g)  # and a continuous part
    k = round(n * fraction)
    chosen, kth = top_k(values, k)
    assert torch.equal(chosen, sort_oracle(values, k))
    if 0 < k < n:
        assert kth == float(values[chosen].min())


def test_top_k_sampled_path_falls_back_when_the_sample_misleads():
    # a periodic layout: every 7th value is 0.5 — must still be exact
    values = torch.rand(500_000, generator=torch.Generator().manual_seed(0))
    values[::7] = 0.5
    for k in (1, 5, 123_456, 499_999):
        assert torch.equal(top_k(values, k)[0], sort_oracle(values, k))


@pytest.mark.parametrize("layout", ["shuffled", "ascending", "descending"])
def test_top_k_sample_brackets_the_threshold_so_only_a_narrow_band_is_ranked(monkeypatch, layout):
    """The sample spans the whole tensor (a sample of one region misplaces the threshold
    of sorted values, and the exact path then ranks everything)."""
    n = 1_000_000
    values = torch.randperm(n, generator=torch.Generator().manual_seed(0)).double()
    if layout != "shuffled":
        values = values.sort(descending=layout == "descending").values
    ranked = []
    choose = selection._choose
    monkeypatch.setattr(selection, "_choose", lambda chosen, positions, candidates, k: (
        ranked.append(candidates.numel()), choose(chosen, positions, candidates, k))[1])
    for k in (1_000, 300_000, 990_000):
        assert torch.equal(top_k(values.clone(), k)[0], sort_oracle(values, k))
    assert max(ranked) < n // 50, ranked


@pytest.mark.parametrize("k", [1, 500, 999])
def test_top_k_with_a_sample_too_small_to_bracket_ranks_everything(k):
    """A sample whose margin covers all of it brackets nothing (-inf, inf): the exact path."""
    values = torch.rand(1000, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert torch.equal(top_k(values.clone(), k, sample_size=16)[0], sort_oracle(values, k))


def test_density_schedules():
    assert synflow.core.schedules.density_after(100, 100, 1000, "exponential") == pytest.approx(1e-3)
    assert synflow.core.schedules.density_after(50, 100, 100, "exponential") == pytest.approx(0.1)
    assert synflow.core.schedules.density_after(1, 2, 100, "linear") == pytest.approx(1 - 0.99 / 2)
    with pytest.raises(ValueError, match="unknown schedule 'cosine'.*exponential, linear"):
        synflow.core.schedules.density_after(1, 2, 10, "cosine")


def kept(masks):
    return sum(int(m.sum()) for m in masks.values())


@pytest.mark.parametrize("method", ["random", "magnitude", "snip", "grasp", "synflow"])
@pytest.mark.parametrize("compression", [1, 3.7, 100])
def test_global_pruning_keeps_exactly_round_n_over_compression(method, compression, tiny_batches):
    model = synflow.build_model("conv", width=0.5, seed=0)
    masks = synflow.prune(model, method, compression, data=tiny_batches, input_shape=(3, 8, 8))
    total = sum(m.numel() for m in masks.values())
    assert kept(masks) == round(total / compression)
    assert set(masks) == set(synflow.prunable_layers(model))


def test_local_scope_prunes_every_layer_to_the_same_density():
    model = synflow.build_model("vgg11_bn", width=0.25, seed=0)
    masks = synflow.prune(model, "synflow", 10, scope="local", input_shape=(3, 32, 32))
    for name, (k, n) in synflow.count_kept(masks).items():
        assert k == round(n / 10), name


@pytest.fixture
def tiny_batches():
    g = torch.Generator().manual_seed(0)
    return [
        (torch.randn(20, 3, 8, 8, generator=g), torch.randint(10, (20,), generator=g))
        for _ in range(2)
    ]


@pytest.mark.parametrize("method", ["random", "magnitude", "snip", "grasp", "synflow"])
@pytest.mark.parametrize("invert", [False, True])
def test_masks_only_shrink_across_iterations_and_calls(method, invert, tiny_batches):
    model = synflow.build_model("conv", width=0.5, seed=0)
    kwargs = {"data": tiny_batches, "input_shape": (3, 8, 8), "invert": invert}
    first = synflow.prune(model, method, 4, iterations=3, **kwargs)
    second = synflow.prune(model, method, 40, iterations=5, **kwargs)
    for name in first:
        assert not torch.any(second[name] & ~first[name]), name
    total = sum(m.numel() for m in first.values())
    assert kept(second) == round(total / 40)


def test_invert_keeps_the_lowest_scores():
    model = nn.Sequential(nn.Linear(4, 1, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[0.1, -3.0, 2.0, -0.5]]))
    masks = synflow.prune(model, "magnitude", 2, invert=True)
    assert masks["0.weight"].tolist() == [[True, False, False, True]]


def test_ties_are_broken_deterministically_and_the_count_is_exact():
    model = nn.Sequential(nn.Linear(10, 10, bias=False))
    with torch.no_grad():
        model[0].weight.fill_(0.3)
    masks = synflow.prune(model, "magnitude", 100 / 7)
    assert kept(masks) == 7
    assert masks["0.weight"].flatten()[:7].all()  # lowest flat indices win ties


def test_same_seed_same_masks_different_seed_different_masks():
    def masks_for(seed, method):
        model = synflow.build_model("vgg11_bn", width=0.25, seed=seed)
        return synflow.prune(model, method, 50, iterations=5, input_shape=(3, 32, 32), seed=seed)

    for method in ("random", "synflow"):
        a, b, c = masks_for(0, method), masks_for(0, method), masks_for(1, method)
        assert all(torch.equal(a[k], b[k]) for k in a)
        assert not all(torch.equal(a[k], c[k]) for k in a)


def test_existing_masks_are_respected():
    model = synflow.build_model("conv", width=0.5, seed=0)
    layers = synflow.prunable_layers(model)
    manual = {
        name: torch.rand(m.weight.shape, generator=torch.Generator().manual_seed(1)) > 0.5
        for name, m in layers.items()
    }
    synflow.apply_masks(model, manual)
    masks = synflow.prune(model, "synflow", 10, input_shape=(3, 8, 8))
    assert all(not torch.any(masks[k] & ~manual[k]) for k in masks)


def test_prune_through_refuses_a_density_that_keeps_no_weight_in_global_scope():
    """round(N * density) = 0 would empty every layer: an error naming the density and N,
    the model untouched; local scope keeps one weight per layer, so it is allowed."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))  # N = 80
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for densities in ([0.001], [0.5, 0.006]):  # round(80 * 0.006) = 0
        with pytest.raises(ValueError, match=rf"density {densities[-1]} keeps no weight.*N = 80"):
            synflow.prune_through(model, "synflow", densities, input_shape=(8,))
        assert list(model.state_dict()) == list(before)
        assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())
    masks = synflow.prune_through(model, "synflow", [1 / 80], input_shape=(8,))  # one kept
    assert sum(int(m.sum()) for m in masks.values()) == 1
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
    with pytest.warns(synflow.CompressionWarning):
        masks = synflow.prune_through(model, "synflow", [0.001], input_shape=(8,), scope="local")
    assert [int(m.sum()) for m in masks.values()] == [1, 1]


def test_select_refuses_a_density_that_keeps_no_weight_in_global_scope():
    scores = {"a": torch.rand(4, 5), "b": torch.rand(6)}  # N = 26
    with pytest.raises(ValueError, match=r"density 0.01 keeps no weight.*N = 26"):
        synflow.select(scores, 0.01)
    assert int(synflow.select(scores, 1 / 26)["a"].sum() + synflow.select(scores, 1 / 26)["b"].sum()) == 1
    local = synflow.select(scores, 0.01, scope="local")
    assert [int(m.sum()) for m in local.values()] == [1, 1]


def test_prune_errors(tiny_batches):
    model = synflow.build_model("conv", width=0.5)
    n = sum(m.weight.numel() for m in synflow.prunable_layers(model).values())
    for bad in (0.5, 0, -2, math.nan, math.inf, "ten"):
        with pytest.raises(ValueError, match=rf"compression must be .*{bad!r}"):
            synflow.prune(model, "magnitude", bad)
    with pytest.raises(ValueError, match=f"keeps N / compression < 1 weight.*at most {n}"):
        synflow.prune(model, "magnitude", n + 1)
    with pytest.raises(
        ValueError, match="unknown pruning method 'synflw'.*random, magnitude, snip, grasp, synflow"
    ):
        synflow.prune(model, "synflw", 10)
    for method in ("snip", "grasp"):
        with pytest.raises(ValueError, match=f"{method} needs data"):
            synflow.prune(model, method, 10)
    with pytest.raises(ValueError, match="synflow needs input_shape"):
        synflow.prune(model, "synflow", 10)
    with pytest.raises(ValueError, match="unknown scope 'layer'.*global, local"):
        synflow.prune(model, "magnitude", 10, scope="layer")
    with pytest.raises(ValueError, match="iterations must be an integer >= 1"):
        synflow.prune(model, "magnitude", 10, iterations=0)
    # nothing was half-done by the failed calls
    assert all(m.all() for m in synflow.current_masks(model).values())


def test_nan_scores_are_an_error():
    model = nn.Sequential(nn.Linear(4, 2))
    with torch.no_grad():
        model[0].weight[0, 0] = math.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        synflow.prune(model, "magnitude", 2)


def test_select_sweeps_compressions_from_one_scoring_pass():
    model = synflow.build_model("vgg11_bn", width=0.25, seed=0)
    scores = synflow.compute_scores(model, "magnitude")
    direct = synflow.prune(model, "magnitude", 30)
    swept = synflow.select(scores, 1 / 30)
    assert all(torch.equal(direct[k], swept[k]) for k in direct)


@pytest.mark.parametrize("scope", ["global", "local"])
@pytest.mark.parametrize("invert", [False, True])
def test_select_without_masks_is_select_with_every_weight_alive(scope, invert):
    """select(scores) skips the masking pass: the same masks as all-True masks, on many
    scores (the sampled bracket) with heavy ties and negative values."""
    g = torch.Generator().manual_seed(3)
    scores = {"a": torch.randint(-3, 4, (300, 1000), generator=g).float(),
              "b": torch.randn(70_000, generator=g), "c": torch.randint(0, 2, (50,), generator=g)}
    alive = {name: torch.ones_like(s, dtype=torch.bool) for name, s in scores.items()}
    for density in (0.9, 0.3, 1e-3):
        plain = synflow.select(scores, density, scope=scope, invert=invert)
        masked = synflow.select(scores, density, masks=alive, scope=scope, invert=invert)
        assert all(torch.equal(plain[k], masked[k]) for k in scores)


# -------------------------------------------------------- layer-collapse

VGG16_N, VGG16_L = 14_715_584, 14


@pytest.mark.parametrize("seed", range(5))
def test_iterative_synflow_never_collapses_vgg16_at_half_max_compression(seed):
    model = synflow.build_model("vgg16_bn", seed=seed)
    masks = synflow.prune(
        model, "synflow", VGG16_N / VGG16_L / 2, iterations=100, input_shape=(3, 32, 32)
    )
    assert synflow.empty_layers(masks) == []
    assert kept(masks) == round(VGG16_N / (VGG16_N / VGG16_L / 2))


def test_single_shot_synflow_and_snip_collapse_vgg16_far_earlier():
    model = synflow.build_model("vgg16_bn", seed=0)
    assert synflow.empty_layers(synflow.prune(model, "synflow", 1e3, input_shape=(3, 32, 32)))
    model = synflow.build_model("vgg16_bn", seed=0)
    g = torch.Generator().manual_seed(0)
    data = [(torch.randn(100, 3, 32, 32, generator=g), torch.randint(10, (100,), generator=g))]
    rho_max = VGG16_N / VGG16_L
    assert synflow.empty_layers(synflow.prune(model, "snip", rho_max / 20, data=data))


# -------------------------------------------------- the loop's callback


def test_prune_callback_sees_every_step_and_can_stop_early():
    def factory():
        return synflow.build_model("conv", width=0.5, seed=0)

    seen = []
    masks = synflow.prune(factory(), "magnitude", 100, iterations=4, callback=seen.append)
    total = sum(m.numel() for m in masks.values())
    assert [s.iteration for s in seen] == [1, 2, 3, 4] and {s.iterations for s in seen} == {4}
    assert [s.density for s in seen] == synflow.core.schedules.schedule_densities(100, 4, "exponential")
    fresh = synflow.compute_scores(factory(), "magnitude")
    assert all(torch.equal(seen[0].scores[n], fresh[n]) for n in fresh)
    assert all(seen[0].before[n].all() for n in fresh)
    for previous, step in zip([None, *seen], seen):
        assert kept(step.after) == round(total * step.density)
        assert all(not (step.after[n] & ~step.before[n]).any() for n in fresh)  # only shrink
        if previous is not None:
            assert all(torch.equal(step.before[n], previous.after[n]) for n in fresh)
    assert all(torch.equal(seen[-1].after[n], masks[n]) for n in masks)

    model = factory()
    stopped = synflow.prune(model, "magnitude", 100, iterations=4, callback=lambda s: s.iteration == 2)
    assert all(torch.equal(stopped[n], seen[1].after[n]) for n in stopped)
    installed = synflow.current_masks(model)
    assert all(torch.equal(installed[n], stopped[n]) for n in stopped)


def test_iterative_random_draws_new_scores_each_iteration():
    def factory():
        return synflow.build_model("conv", width=0.5, seed=0)

    single = synflow.prune(factory(), "random", 10, seed=1)
    again = synflow.prune(factory(), "random", 10, seed=1)
    iterative = synflow.prune(factory(), "random", 10, iterations=3, seed=1)
    assert all(torch.equal(single[n], again[n]) for n in single)  # a seed fixes the mask
    # the same scores every iteration would make iterating a no-op (nested top-k)
    assert any(not torch.equal(single[n], iterative[n]) for n in single)
    assert kept(iterative) == kept(single)


def test_prune_through_checks_its_densities():
    model = synflow.build_model("conv", width=0.5, seed=0)
    for bad in ([], [0.5, 0.0], [1.5], [math.nan]):
        with pytest.raises(ValueError, match=r"densities must be a non-empty sequence .*\(0, 1\]"):
            synflow.prune_through(model, "magnitude", bad)
    assert all(m.all() for m in synflow.current_masks(model).values())


@pytest.mark.parametrize("method", ["grasp", "snip", "synflow"])
def test_iterations_score_the_pruned_net_as_a_masked_model_does(method, tiny_batches):
    # reference: install each step's masks and score the masked model (torch's hook
    # masks the gradient, as the authors' masked layers do): a pruned weight is no
    # parameter of the pruned net, so it must not enter GraSP's g or H g
    def factory():
        return synflow.build_model("conv", width=0.5, seed=0)

    densities = synflow.core.schedules.schedule_densities(20, 3, "exponential")
    model = factory()
    masks = synflow.current_masks(model)
    for density in densities:
        scores = synflow.compute_scores(model, method, data=tiny_batches, input_shape=(3, 8, 8))
        masks = synflow.select(scores, density, masks=masks)
        synflow.apply_masks(model, masks)
    ours = synflow.prune(
        factory(), method, 20, iterations=3, data=tiny_batches, input_shape=(3, 8, 8))
    assert all(torch.equal(ours[n], masks[n]) for n in masks)


# ---------------------------------- issue 19, items 11, 12 and 18; issue 16 (checked once)


def test_local_scope_never_empties_a_small_layer():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(100, 50), nn.ReLU(), nn.Linear(50, 10), nn.ReLU(), nn.Linear(10, 1))
    masks = synflow.prune(model, "magnitude", 100, scope="local")  # 56 kept, 55 asked
    counts = synflow.count_kept(masks)
    assert counts == {"0.weight": (50, 5000), "2.weight": (5, 500), "4.weight": (1, 10)}
    tiny = nn.Sequential(nn.Linear(10, 10), nn.ReLU(), nn.Linear(10, 10), nn.ReLU(), nn.Linear(10, 1))
    with pytest.warns(synflow.CompressionWarning, match=r"compression 100 was asked, the masks "
                      r"have compression 70 \(3 of 210 weights kept, 2 asked\): local scope keeps"):
        synflow.prune(tiny, "magnitude", 100, scope="local")
    scores = synflow.compute_scores(nn.Sequential(nn.Linear(3, 2)), "magnitude")
    assert synflow.count_kept(synflow.select(scores, 0.01, scope="local")) == {"0.weight": (1, 6)}


def test_an_unmet_compression_as_an_error_leaves_the_model_as_it_was():
    """Found by a new-user trial: warnings.simplefilter("error", CompressionWarning) raised
    after the masks were installed (the library's rule: an error leaves the model as it
    was)."""
    tiny = nn.Sequential(nn.Linear(10, 10), nn.ReLU(), nn.Linear(10, 10), nn.ReLU(), nn.Linear(10, 1))
    before = {name: t.clone() for name, t in tiny.state_dict().items()}
    with warnings.catch_warnings():
        warnings.simplefilter("error", synflow.CompressionWarning)
        with pytest.raises(synflow.CompressionWarning, match="local scope keeps"):
            synflow.prune(tiny, "magnitude", 100, scope="local")
    after = tiny.state_dict()
    assert after.keys() == before.keys() and all(torch.equal(after[k], before[k]) for k in before)


def test_a_tiny_global_prune_blames_the_rounding_not_local_scope():
    """Found by a new-user trial: 32 weights at compression 20 keep round(1.6) = 2, as
    asked; the warning named local scope's rule though the scope was global."""
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 4))
    with pytest.warns(synflow.CompressionWarning) as caught:
        synflow.prune(model, "magnitude", 20)
    message = str(caught[0].message)
    assert "(2 of 32 weights kept, 2 asked)" in message
    assert "exactly the round(N * density) asked are kept" in message
    assert "local scope" not in message


def test_select_on_scores_that_require_grad_warns_nothing():
    scores = {"w": torch.randn(1000, requires_grad=True)}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert int(synflow.select(scores, 0.5)["w"].sum()) == 500


def test_pruning_again_in_local_scope_after_global_says_what_it_got():
    model = synflow.build_model("conv", width=0.5, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", synflow.CompressionWarning)
        synflow.prune(model, "magnitude", 50)
        synflow.prune(model, "magnitude", 55)  # global again: exactly round(N / 55)
    with pytest.warns(synflow.CompressionWarning,
                      match=r"compression 60 was asked, the masks have compression .*masks only "
                            r"shrink.*local scope keeps each layer's share of ALL its weights"):
        masks = synflow.prune(model, "magnitude", 60, scope="local")
    assert synflow.compression_of(masks) > 66  # more than 10 % away: hence the warning
    with pytest.warns(synflow.CompressionWarning, match=r"compression 10 was asked.*masks only shrink"):
        synflow.prune(model, "magnitude", 10)  # a denser target than the masks already are
    with pytest.warns(synflow.CompressionWarning, match=r"compression 2 was asked.*masks only "
                      r"shrink: weights pruned earlier \(before this call, or at an earlier step"):
        synflow.prune_through(synflow.build_model("conv", width=0.5, seed=0), "magnitude",
                              [0.1, 0.5])  # rising densities within one call


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.uint8, torch.bool, torch.float16])
def test_select_ranks_scores_of_any_real_dtype(dtype):
    g = torch.Generator().manual_seed(0)
    values = {"a.weight": torch.randint(0, 200, (6, 5), generator=g),
              "b.weight": torch.randint(0, 200, (4,), generator=g)}
    scores = {k: (v > 100 if dtype == torch.bool else v).to(dtype) for k, v in values.items()}
    masks = {k: torch.rand(v.shape, generator=g) > 0.2 for k, v in values.items()}
    for scope in ("global", "local"):
        expected = synflow.select({k: v.double() for k, v in scores.items()}, 0.4,
                                  masks=masks, scope=scope)
        got = synflow.select(scores, 0.4, masks=masks, scope=scope)
        assert all(torch.equal(got[k], expected[k]) for k in expected), scope
    with pytest.raises(ValueError, match="scores must be real numbers to be ranked, got torch.complex64"):
        synflow.select({"a.weight": torch.ones(3, dtype=torch.complex64)}, 0.5)
    with pytest.raises(ValueError, match=r"no score tensor for 'b.weight'"):
        synflow.select({"a.weight": scores["a.weight"]}, 0.5, masks=masks)


def test_prune_checks_the_model_once_per_call(monkeypatch):
    calls = []
    original = synflow.core.masks.check_model

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(synflow.core.masks, "check_model", counting)
    monkeypatch.setattr(synflow.core.scoring, "check_model", counting)
    model = synflow.build_model("conv", width=0.5, seed=0)
    synflow.prune(model, "synflow", 10, iterations=3, input_shape=(3, 8, 8))
    assert len(calls) == 1
    synflow.prune_through(model, "magnitude", [0.05, 0.01])
    assert len(calls) == 2
