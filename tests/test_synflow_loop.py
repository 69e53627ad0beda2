"""The pruning loop's SynFlow path (synflow.core.synflow_loop: scores and ranks the alive
weights only) keeps exactly the masks of a straightforward full ranking: every weight
scored by compute_scores on the masked model, the pruned ones excluded, a stable sort
(ties to the lowest position), the masks installed after every step.
"""

import itertools
import math
import warnings
import weakref

import pytest
import torch
from torch import nn

import synflow
from synflow.core.schedules import schedule_densities
from test_precision import count_passes


def full_ranking(model, method, densities, *, input_shape, precision, scope, invert):
    """The loop written out plainly, one full ranking of every weight per step."""
    layers = synflow.prunable_layers(model)
    for density in densities:
        scores = synflow.compute_scores(model, method, input_shape=input_shape,
                                        precision=precision)
        alive = synflow.current_masks(model)
        groups = [list(layers)] if scope == "global" else [[name] for name in layers]
        new = {}
        for names in groups:
            flat = torch.cat([scores[n].flatten().double() for n in names])
            if invert:
                flat = -flat
            keep = torch.cat([alive[n].flatten() for n in names])
            size = flat.numel()
            target = round(size * density) if scope == "global" else max(1, round(size * density))
            flat[~keep] = -torch.inf
            order = torch.sort(-flat, stable=True).indices  # best first, ties by position
            chosen = torch.zeros(size, dtype=torch.bool)
            chosen[order[:min(target, int(keep.sum()))]] = True
            for n, part in zip(names, chosen.split([alive[n].numel() for n in names])):
                new[n] = part.view(alive[n].shape)
        synflow.apply_masks(model, new)
    return synflow.current_masks(model)


def tied_mlp():
    """Many exact ties: equal weights in every layer (every path scores the same)."""
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(),
                          nn.Linear(8, 3))
    with torch.no_grad():
        for m in model:
            if isinstance(m, nn.Linear):
                m.weight.fill_(0.5)
                m.bias.zero_()
        model[2].weight[:, :4] = 0.25  # two tie classes in the middle layer
    return model, (6,)


def small_vgg():
    return synflow.build_model("vgg11_bn", width=1 / 16, seed=1), (3, 32, 32)


def small_resnet():
    return synflow.build_model("resnet20", width=0.25, seed=0), (3, 8, 8)


@pytest.mark.parametrize("build", [tied_mlp, small_vgg, small_resnet])
@pytest.mark.parametrize("compression,iterations", [(3, 1), (10, 4), (50, 12)])
def test_synflow_masks_equal_a_full_ranking(build, compression, iterations):
    densities = schedule_densities(compression, iterations, "exponential")
    cases = [("synflow", "float64", "global", False), ("synflow", "float32", "global", False),
             ("synflow", "float64", "local", False), ("synflow", "float64", "global", True),
             ("synflow_l2", "float64", "global", False)]
    for method, precision, scope, invert in cases:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model, shape = build()
            ours = synflow.prune_through(model, method, densities, input_shape=shape,
                                         precision=precision, scope=scope, invert=invert)
            model, shape = build()
            plain = full_ranking(model, method, densities, input_shape=shape,
                                 precision=precision, scope=scope, invert=invert)
        assert list(ours) == list(plain)
        for name in plain:
            assert torch.equal(ours[name], plain[name]), (method, precision, scope, invert, name)


def test_synflow_path_continues_from_existing_masks_and_reports_each_step():
    model, shape = small_vgg()
    synflow.prune(model, "magnitude", 2)
    steps = []
    masks = synflow.prune(model, "synflow", 20, iterations=3, input_shape=shape,
                          callback=steps.append)
    plain_model, _ = small_vgg()
    synflow.prune(plain_model, "magnitude", 2)
    plain = full_ranking(plain_model, "synflow", schedule_densities(20, 3, "exponential"),
                         input_shape=shape, precision="float64", scope="global", invert=False)
    assert all(torch.equal(masks[k], plain[k]) for k in plain)
    assert [s.iteration for s in steps] == [1, 2, 3]
    for before, after in itertools.pairwise(steps):
        assert all(torch.equal(before.after[k], after.before[k]) for k in masks)
    last = steps[-1]
    assert all(torch.equal(last.after[k], masks[k]) for k in masks)
    # the recorded scores are every weight's, pruned ones scoring 0
    assert all(bool((last.scores[k][~last.before[k]] == 0).all()) for k in masks)
    assert all(last.scores[k].dtype == torch.float64 for k in masks)


class Twice(nn.Module):
    """One Linear called twice (its gradient sums both calls) on inputs with leading dims."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(6, 6)

    def forward(self, x):
        return self.fc(torch.relu(self.fc(x)))


BOUND_CASES = [
    lambda: (Twice(), (4, 5, 6)),
    lambda: (nn.Sequential(nn.Conv1d(4, 6, 3, stride=2, dilation=2, padding=3), nn.ReLU(),
                           nn.Conv1d(6, 6, 3, groups=3, padding_mode="circular", padding=1)),
             (4, 17)),
    lambda: (nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
                           nn.ConvTranspose2d(8, 4, 3, stride=2, output_padding=1),
                           nn.Flatten(), nn.LazyLinear(5)), (3, 6, 6)),
    lambda: (nn.Sequential(nn.Conv3d(2, 3, 2), nn.ReLU(), nn.ConvTranspose3d(3, 2, 2, stride=2)),
             (2, 4, 4, 4)),
    lambda: (nn.Sequential(nn.ConvTranspose1d(4, 3, 3, stride=3, dilation=2)), (4, 5)),
]


@pytest.mark.parametrize("case", range(len(BOUND_CASES)))
def test_gradient_bound_bounds_every_weight_gradient(case):
    """gradient_bound's sum per layer is >= every entry of that layer's weight gradient,
    on a pass like SynFlow's (positive weights, positive input) and on a signed one."""
    from synflow.core.gradient_bound import gradient_bound

    torch.manual_seed(case)
    model, shape = BOUND_CASES[case]()
    model(torch.ones(1, *shape))  # materialises a lazy layer
    for sign in (False, True):
        layers = synflow.prunable_layers(model)
        for m in layers.values():
            m.weight.grad = None
            m.weight.data.abs_().mul_(3.0)  # large weights: large gradients
            if sign:
                m.weight.data.mul_(torch.randn_like(m.weight).sign())
        inputs = torch.rand(2, *shape) if not sign else torch.randn(2, *shape) * 5
        with gradient_bound(layers) as bounds:
            model(inputs).sum().backward()
        assert set(bounds) == set(layers)
        for name, m in layers.items():
            worst = float(m.weight.grad.abs().max())
            assert worst > 0 and float(sum(bounds[name])) >= worst, (case, sign, name)


def test_gradient_bound_sums_every_call_and_covers_masked_layers():
    """A layer called twice: its gradient sums both calls, and so does the bound (here
    exactly: one weight, all-ones input). A masked layer is bounded as its torch class."""
    from synflow.core.gradient_bound import gradient_bound

    class Doubled(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(1, 1, bias=False)

        def forward(self, x):
            return self.fc(x) + self.fc(x)

    model = Doubled()
    model.fc.weight.data.fill_(1.0)
    synflow.apply_masks(model, {"fc.weight": torch.ones(1, 1, dtype=torch.bool)})
    layers = synflow.prunable_layers(model)
    with gradient_bound(layers) as bounds:
        model(torch.ones(4, 1)).sum().backward()
    assert float(model.fc.weight_orig.grad) == 8.0 == float(sum(bounds["fc.weight"]))


def test_gradient_bound_leaves_out_what_it_cannot_bound():
    """A layer of another type (a subclass with its own forward) and a call with no tensor
    input get no bound, so their gradients are read in full."""
    from synflow.core.gradient_bound import gradient_bound

    class Scaled(nn.Linear):
        def forward(self, x):
            return super().forward(x) * 1e3

    class KeywordOnly(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = Scaled(3, 3), nn.Linear(3, 2)

        def forward(self, x):
            return self.b(self.a(x)) + self.b(input=self.a(x))

    model = KeywordOnly()
    with gradient_bound(synflow.prunable_layers(model)) as bounds:
        model(torch.ones(1, 3)).sum().backward()
    assert bounds == {}


def test_float32_falls_back_when_only_a_pruned_weight_gradient_overflows(monkeypatch):
    """R and every alive score fit float32, but a pruned weight's gradient does not (a
    neuron with a huge inflow next to one with a huge outflow): the float32 pass is redone
    in float64, as when every score is read (the general loop's rule)."""
    model = nn.Sequential(nn.Linear(1, 2, bias=False), nn.Linear(2, 2, bias=False),
                          nn.Linear(2, 1, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1e20], [1.0]]))
        model[1].weight.copy_(torch.tensor([[1.0, 1.0], [0.0, 1.0]]))  # [1, 0]: pruned
        model[2].weight.copy_(torch.tensor([[1e-20, 1e20]]))
    synflow.apply_masks(model, {name: m.weight != 0 for name, m in
                                synflow.prunable_layers(model).items()})
    # R = 1e20*1*1e-20 + 1*1*1e-20 + 1*1*1e20 ~ 1e20; the pruned weight's dR/dw = 1e40
    dtypes = count_passes(monkeypatch)
    synflow.prune(model, "synflow", 1.2, iterations=1, input_shape=(1,), precision="float32")
    assert dtypes == [torch.float32, torch.float64]


def test_float32_falls_back_when_an_alive_score_overflows_but_no_gradient_does(monkeypatch):
    """Every gradient is small and R fits float32, but the BatchNorm's running mean cancels
    most of w1's path, so w1's score, |w1| * dR/dw1 = 1e30 * 1e10, overflows: the quick
    proof (gradient bound * largest leaf) fails and the scores are read; the pass is
    redone in float64."""
    model = nn.Sequential(nn.Linear(1, 1, bias=False), nn.BatchNorm1d(1),
                          nn.Linear(1, 1, bias=False))
    with torch.no_grad():
        model[0].weight.fill_(1e30)
        model[1].running_mean.fill_(torch.nextafter(torch.tensor(1e30), torch.tensor(0.0)))
        model[2].weight.fill_(1e10)
    # R = (1e30 - mean) * 1e10 = one float32 step at 1e30 (7.6e22) * 1e10 < 1e36
    dtypes = count_passes(monkeypatch)
    synflow.prune(model, "synflow", 1.2, iterations=1, input_shape=(1,), precision="float32")
    assert dtypes == [torch.float32, torch.float64]


def channels_last_vgg():
    return small_vgg()[0].to(memory_format=torch.channels_last), (3, 32, 32)


def transposed_mlp():
    """A Linear weight whose strides are not row-major (a transposed parameter)."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3))
        model[0].weight = nn.Parameter(torch.randn(5, 4).t())
    return model, (5,)


@pytest.mark.parametrize("build", [channels_last_vgg, transposed_mlp])
@pytest.mark.parametrize("precision", ["float64", "float32"])
def test_synflow_prunes_models_whose_weights_are_not_row_major(build, precision):
    """A channels-last model (the usual layout for fast training) or a transposed weight:
    the loop's flat positions are row-major whatever the strides; the masks are a full
    ranking's on the same model, and the model's weights keep their layout."""
    densities = schedule_densities(20, 5, "exponential")
    model, shape = build()
    assert not all(m.weight.is_contiguous() for m in synflow.prunable_layers(model).values())
    ours = synflow.prune_through(model, "synflow", densities, input_shape=shape,
                                 precision=precision)
    plain = full_ranking(build()[0], "synflow", densities, input_shape=shape,
                         precision=precision, scope="global", invert=False)
    assert ours.keys() == plain.keys()
    assert all(torch.equal(ours[name], plain[name]) for name in ours)
    assert sum(int(m.sum()) for m in ours.values()) == round(
        sum(m.numel() for m in ours.values()) * densities[-1])


def alive_case(n=400_000, dead=0.2, ties=False, negative=False, seed=0):
    """Scores of a loop iteration: dead entries (pruned since the last compaction) exactly
    0, the others positive (or partly negative), with or without heavy ties."""
    g = torch.Generator().manual_seed(seed)
    values = torch.rand(n, generator=g, dtype=torch.float64)
    if ties:
        values = torch.randint(1, 40, (n,), generator=g).double()
    if negative:
        values -= 0.9
    live = torch.rand(n, generator=g) >= dead
    values[~live] = 0
    return values, live


@pytest.mark.parametrize("case", [{}, {"ties": True}, {"dead": 0.0}, {"dead": 0.6},
                                  {"negative": True}, {"n": 1_000}])
@pytest.mark.parametrize("density_of_alive", [0.999, 0.955, 0.5, 0.01])
def test_drop_alive_is_the_general_selection_and_what_it_dropped(monkeypatch, case,
                                                                  density_of_alive):
    """The loop's one-scan selection (global scope, many scores) keeps exactly what the
    general selection keeps and returns the alive positions it dropped, ascending; where
    it cannot decide (the k-th best not above 0, few scores, the other scopes) the general
    path does."""
    from synflow.core import alive_selection as selection

    values, live = alive_case(**case)
    counts = [values.numel() // 3, values.numel() - values.numel() // 3]
    sizes = [c + 1_000 for c in counts]  # pruned weights outside the positions
    density = round(int(live.sum()) * density_of_alive) / sum(sizes)
    general = []
    select_alive = selection._select_alive
    monkeypatch.setattr(selection, "_select_alive",
                        lambda *a, **k: (general.append(1), select_alive(*a, **k))[1])
    for scope, invert in [("global", False), ("local", False), ("global", True)]:
        general.clear()
        kept, gone = selection._drop_alive(values.clone(), live.clone(), counts, sizes, density,
                                           scope=scope, invert=invert)
        expected = select_alive(values.clone(), live, counts, sizes, density, scope=scope,
                                invert=invert)
        assert torch.equal(kept, expected), (scope, invert)
        assert torch.equal(gone, torch.nonzero(live & ~expected).flatten()), (scope, invert)
        if case.get("ties"):
            continue  # the bracket may fall inside one tie class: either path may decide
        fast = scope == "global" and not invert and values.numel() > 4 * selection.SAMPLE_SIZE \
            and float(values[expected].min()) > 0
        assert general == ([] if fast else [1]), (scope, invert)


def medium_vgg():
    """Over 4 * 65,536 weights: the loop's one-scan selection runs (small models take the
    general path)."""
    return synflow.build_model("vgg11_bn", width=1 / 4, seed=2), (3, 32, 32)


@pytest.mark.parametrize("precision", ["float64", "float32"])
def test_synflow_masks_equal_a_full_ranking_with_many_weights(precision):
    densities = schedule_densities(30, 4, "exponential")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, shape = medium_vgg()
        ours = synflow.prune_through(model, "synflow", densities, input_shape=shape,
                                     precision=precision)
        plain = full_ranking(medium_vgg()[0], "synflow", densities, input_shape=shape,
                             precision=precision, scope="global", invert=False)
    assert sum(m.numel() for m in ours.values()) > 4 * 65_536
    assert all(torch.equal(ours[name], plain[name]) for name in plain)


@pytest.mark.parametrize("bracket", [(0.9, 0.95), (0.01, 0.02), (-math.inf, -1.0)])
def test_drop_alive_falls_back_when_the_bracket_misses(monkeypatch, bracket):
    """A sample that misplaces the threshold (its bracket above, below or left of it)
    sends the selection to the general path, with the same result."""
    from synflow.core import alive_selection as selection

    values, live = alive_case()
    monkeypatch.setattr(selection, "_bracket", lambda *args: bracket)
    sizes = [values.numel()]
    density = round(int(live.sum()) * 0.5) / values.numel()
    kept, gone = selection._drop_alive(values.clone(), live, sizes, sizes, density,
                                       scope="global", invert=False)
    monkeypatch.undo()
    expected = selection._select_alive(values.clone(), live, sizes, sizes, density,
                                       scope="global", invert=False)
    assert torch.equal(kept, expected)
    assert torch.equal(gone, torch.nonzero(live & ~expected).flatten())


@pytest.mark.parametrize("precision", ["float64", "float32"])
def test_the_callback_gets_R_SF_of_each_steps_pass(precision):
    """Iteration.R is the R of checked_pass on the model masked as before the step (what
    analysis.synflow_iterations records); None for a method without a SynFlow pass."""
    from synflow.core.masks import effective_weight
    from synflow.core.scorers.synflow import checked_pass

    def build():
        return synflow.build_model("vgg11_bn", input_shape=(3, 16, 16), width=0.25, seed=3)

    steps = []
    synflow.prune(build(), "synflow", 200, iterations=4, input_shape=(3, 16, 16),
                  precision=precision, callback=steps.append)
    assert len(steps) == 4
    for step in steps:
        model = build()
        synflow.apply_masks(model, step.before)
        layers = synflow.prunable_layers(model)
        weights = {name: effective_weight(module) for name, module in layers.items()}
        R, _ = checked_pass(model, layers, weights, (3, 16, 16), precision)
        assert isinstance(step.R, float) and step.R == float(R)
    assert steps[0].R > steps[-1].R > 0  # pruning lowers R_SF
    others = []
    synflow.prune(build(), "magnitude", 10, iterations=2, callback=others.append)
    assert [step.R for step in others] == [None, None]


@pytest.mark.parametrize("large", [False, True])
def test_the_loop_releases_a_passs_gradients_after_the_next_forward(monkeypatch, large):
    """The previous pass's gradients live through the next forward and are released
    before its backward: one set of gradients at the peak, and the backward reuses their
    memory (released before the forward, the allocator returned their pages to the
    system and the backward faulted them back in: 1-4 s of 10 on VGG-16 in float64).
    A compaction releases them before it allocates its arrays, and a set larger than
    HOLD_BYTES is released at once (the ImageNet VGG-19's peak grew by a set of
    gradients, 1.1 GB, with no fewer page faults)."""
    from synflow.core import synflow_loop as loop
    from synflow.core.scorers import synflow as paths

    previous, seen = [], []
    real = {"forward": paths.call_with_weights, "backward": paths.gradients,
            "compaction": loop.nonzero}
    real_path = paths.path_gradients

    def path_gradients(*args, **kwargs):
        R, grads = real_path(*args, **kwargs)
        previous[:] = [weakref.ref(g) for g in grads]
        return R, grads

    def alive(step):
        def wrapper(*args, **kwargs):
            seen.append((step, sum(ref() is not None for ref in previous)))
            return real[step](*args, **kwargs)
        return wrapper

    monkeypatch.setattr(paths, "path_gradients", path_gradients)
    monkeypatch.setattr(paths, "call_with_weights", alive("forward"))
    monkeypatch.setattr(paths, "gradients", alive("backward"))
    monkeypatch.setattr(loop, "nonzero", alive("compaction"))  # the loop's only scan
    if large:
        monkeypatch.setattr(loop, "HOLD_BYTES", 0)
    model, shape = small_vgg()
    layers = len(synflow.prunable_layers(model))
    synflow.prune(model, "synflow", 2, iterations=10, input_shape=shape)
    steps = [step for step, _ in seen]
    assert steps.count("forward") == steps.count("backward") == 10
    assert 1 <= steps.count("compaction") <= 4  # 7 % pruned per iteration, compacted at 25 %
    expected = []
    for i, step in enumerate(steps):
        held = not large and i > 0 and step == "forward" and steps[i - 1] == "backward"
        expected.append((step, layers if held else 0))
    assert seen == expected, seen
    assert large or (("forward", layers) in seen and ("forward", 0) in seen[1:])  # both met
