"""Models a mask cannot govern, and scores that carry no information (issue 11, items 1-3)."""

import copy
import inspect
import re
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrizations

import synflow
from synflow import ScoreWarning, analysis


def attention_net(seed=0):
    torch.manual_seed(seed)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Linear(4, 8)
            self.attention = nn.MultiheadAttention(8, 2, batch_first=True)
            self.head = nn.Linear(8, 3)

        def forward(self, x):
            h = self.embed(x)
            h, _ = self.attention(h, h, h)
            return self.head(h.mean(1))

    return Net()


def batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(5, 6, 4, generator=g), torch.randint(3, (5,), generator=g)


# ------------------------------------------- item 1: weights read around the mask


def test_multihead_attention_out_proj_is_masked_and_trains():
    model = attention_net()
    reference = copy.deepcopy(model)
    masks = synflow.prune(model, "magnitude", 4)
    mask = masks["attention.out_proj.weight"]
    assert 0 < int(mask.sum()) < mask.numel()
    # the forward computes with the masked out_proj ...
    with torch.no_grad():
        for name, module in synflow.prunable_layers(reference).items():
            module.weight.mul_(masks[name])
    x, y = batch()
    assert torch.allclose(model(x), reference(x), atol=1e-6)
    # ... and its kept weights get a gradient (the pruned ones none)
    F.cross_entropy(model(x), y).backward()
    grad = model.attention.out_proj.weight_orig.grad
    assert grad is not None and grad[mask].abs().sum() > 0
    assert not grad[~mask].any()


@pytest.mark.parametrize("method", ["synflow", "snip"])
def test_multihead_attention_prunes_iteratively_and_rescoring_sees_the_mask(method):
    model = attention_net()
    x, y = batch()
    masks = synflow.prune(model, method, 4, iterations=3, data=[(x, y)], input_shape=(6, 4))
    scores = synflow.compute_scores(model, method, data=[(x, y)], input_shape=(6, 4))
    pruned = ~masks["attention.out_proj.weight"]
    assert not scores["attention.out_proj.weight"][pruned].any()  # pruned weights score 0
    assert scores["attention.out_proj.weight"][~pruned].any()


def test_transformer_layers_train_their_attention_out_proj():
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True)
    masks = synflow.prune(layer, "magnitude", 3)
    x = torch.randn(2, 5, 8, generator=torch.Generator().manual_seed(1))
    layer(x).square().sum().backward()
    for name, module in synflow.prunable_layers(layer).items():
        grad = module.weight_orig.grad
        assert grad is not None and grad[masks[name]].abs().sum() > 0, name


def test_a_module_reading_a_child_weight_directly_is_refused_by_name():
    class Bypass(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = nn.Linear(4, 4)
            self.out = nn.Linear(4, 2)

        def forward(self, x):
            return self.out(F.linear(x, self.inner.weight, self.inner.bias))

    torch.manual_seed(0)
    with pytest.raises(ValueError, match=r"never called the prunable layer\(s\) \['inner.weight'\]"):
        synflow.prune(Bypass(), "synflow", 2, input_shape=(4,))
    x = torch.randn(3, 4)
    with pytest.raises(ValueError, match="inner.weight"):
        synflow.prune(Bypass(), "snip", 2, data=[(x, torch.tensor([0, 1, 0]))])


def test_tied_weights_are_refused_by_name():
    encoder, decoder = nn.Linear(4, 4), nn.Linear(4, 4)
    decoder.weight = encoder.weight
    with pytest.raises(ValueError, match=r"0.weight is shared .*1.weight is shared"):
        synflow.prune(nn.Sequential(encoder, decoder), "magnitude", 2)
    embedding, head = nn.Embedding(10, 4), nn.Linear(4, 10, bias=False)
    head.weight = embedding.weight  # a language model's tied output layer
    model = nn.Sequential(embedding, head)
    with pytest.raises(ValueError, match=r"1.weight is shared with another module"):
        synflow.apply_masks(model, {"1.weight": torch.ones(10, 4, dtype=torch.bool)})
    assert not hasattr(head, "weight_mask")  # refused before any change
    # one layer called twice is fine: the mask applies at each call
    layer = nn.Linear(4, 4)
    twice = nn.Sequential(layer, nn.ReLU(), layer)
    masks = synflow.prune(twice, "magnitude", 2)
    assert list(masks) == ["0.weight"]


def test_parametrized_and_weight_normed_layers_are_refused_by_name():
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    parametrizations.weight_norm(model[2])
    with pytest.raises(ValueError, match=r"2.weight \(ParametrizedLinear\) is computed by a parametrization"):
        synflow.prune(model, "magnitude", 2)
    old = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.nn.utils.weight_norm(old[0])
    with pytest.raises(ValueError, match=r"0.weight \(Linear\) is not a parameter but computed"):
        synflow.prune(old, "magnitude", 2)


# --------------------------------------- item 2: activations SynFlow cannot score


def three_layer_mlp(activation, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(256, 64), activation(), nn.Linear(64, 64), activation(), nn.Linear(64, 10)
    )


def test_relu6_mlp_zero_layers_are_named_in_a_warning():
    with pytest.warns(ScoreWarning) as record:
        scores = synflow.compute_scores(three_layer_mlp(nn.ReLU6), "synflow", input_shape=(256,))
    totals = [float(s.sum()) for s in scores.values()]
    assert totals[0] == totals[1] == 0 < totals[2]  # saturated ReLU6: no gradient upstream
    messages = [str(w.message) for w in record]
    assert any("1 (ReLU6), 3 (ReLU6)" in m and "homogeneous" in m for m in messages)
    assert any("every alive weight of 0.weight, 2.weight scores exactly 0" in m for m in messages)
    with pytest.warns(ScoreWarning) as record:
        synflow.prune(three_layer_mlp(nn.ReLU6), "synflow", 10, iterations=2, input_shape=(256,))
    assert any("every alive weight of 0.weight, 2.weight" in str(w.message) for w in record)


def test_relu_mlp_scores_every_layer_without_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error", ScoreWarning)
        scores = synflow.compute_scores(three_layer_mlp(nn.ReLU), "synflow", input_shape=(256,))
        synflow.prune(three_layer_mlp(nn.ReLU), "synflow", 10, iterations=2, input_shape=(256,))
    assert all(float(s.sum()) > 0 for s in scores.values())


@pytest.mark.parametrize("activation", [nn.Tanh, nn.GELU, nn.SiLU, nn.Hardswish, nn.Sigmoid])
def test_other_non_homogeneous_activations_warn(activation):
    with pytest.warns(ScoreWarning, match=rf"1 \({activation.__name__}\)"):
        synflow.compute_scores(three_layer_mlp(activation), "synflow", input_shape=(256,))


class Recurrent(nn.Module):
    def __init__(self, cell):
        super().__init__()
        self.inp, self.rnn, self.fc = nn.Linear(4, 8), cell(8, 8, batch_first=True), nn.Linear(8, 3)

    def forward(self, x):
        return self.fc(self.rnn(torch.relu(self.inp(x)))[0][:, -1])


class Attention(nn.Module):
    def __init__(self, norm):
        super().__init__()
        self.inp, self.att, self.norm = nn.Linear(4, 8), nn.MultiheadAttention(8, 2), norm(8)
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        h = self.inp(x)
        return self.fc(self.norm(h + self.att(h, h, h)[0]).mean(0))


@pytest.mark.parametrize(("model", "named"), [
    (lambda: Recurrent(nn.GRU), "rnn (GRU)"), (lambda: Recurrent(nn.LSTM), "rnn (LSTM)"),
    (lambda: Attention(nn.RMSNorm), "att (MultiheadAttention), norm (RMSNorm)")])
def test_gated_recurrences_attention_and_rms_norm_warn(model, named):
    # their saturating gates, softmax and per-sample normalisation are inside the module
    with pytest.warns(ScoreWarning, match=re.escape(named)):
        synflow.compute_scores(model(), "synflow", input_shape=(5, 4))


def test_mobilenet_v2_synflow_warns_about_relu6_and_empty_scores():
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    model = torchvision.models.mobilenet_v2(num_classes=10)
    with pytest.warns(ScoreWarning) as record:
        synflow.prune(model, "synflow", 10, input_shape=(3, 32, 32))
    messages = " ".join(str(w.message) for w in record)
    assert "features.0.2 (ReLU6)" in messages
    assert "every alive weight of features.0.0.weight" in messages


# ----------------------------- issue 19, item 2: every score 0 (a zero-initialised head)


def zero_head_mlp():
    model = three_layer_mlp(nn.ReLU)
    nn.init.zeros_(model[4].weight)  # the classifier starts at zero: R_SF = 0, SNIP's g * w = 0
    return model


ALL_ZERO = r"every alive weight of every layer \(0.weight, 2.weight, 4.weight\) scores exactly 0"


@pytest.mark.parametrize("method", ["synflow", "synflow_l2", "snip"])  # GraSP's H g is not 0
def test_all_zero_scores_warn_as_loudly_as_one_zero_layer(method):
    x = torch.randn(8, 256, generator=torch.Generator().manual_seed(0))
    kwargs = {"input_shape": (256,), "data": [(x, torch.arange(8) % 10)]}
    with pytest.warns(ScoreWarning, match=ALL_ZERO + ".*decided by position"):
        scores = synflow.compute_scores(zero_head_mlp(), method, **kwargs)
    assert all(not s.any() for s in scores.values())
    with pytest.warns(ScoreWarning, match=ALL_ZERO) as caught:
        synflow.prune(zero_head_mlp(), method, 10, **kwargs)
    # at the caller's line, from either loop (snip: the general one)
    assert [w.filename for w in caught if w.category is ScoreWarning] == [__file__]
    flat = torch.cat([s.flatten() for s in scores.values()])
    names, sizes = list(scores), [s.numel() for s in scores.values()]
    assert synflow.core.diagnostics.uninformative_layers(
        flat, torch.ones_like(flat, dtype=torch.bool), names, sizes) == names


def test_a_torchvision_vision_transformer_with_its_zero_head_warns():
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    vit = torchvision.models.VisionTransformer(
        image_size=16, patch_size=8, num_layers=1, num_heads=2, hidden_dim=16, mlp_dim=32,
        num_classes=10)
    x = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    with pytest.warns(ScoreWarning, match=r"every alive weight of every layer \(conv_proj.weight"):
        synflow.prune(vit, "snip", 10, data=[(x, torch.arange(4))])


# ------------------------------------------- item 3: BatchNorm without statistics


@pytest.mark.parametrize("norm, shape", [(nn.BatchNorm2d, (3, 8, 8)), (nn.BatchNorm1d, (12,))])
def test_batchnorm_without_running_stats_is_refused_for_synflow(norm, shape):
    torch.manual_seed(0)
    if norm is nn.BatchNorm2d:
        layer = nn.Conv2d(3, 4, 3, padding=1)
        tail = [nn.Flatten(), nn.Linear(4 * 8 * 8, 2)]
    else:
        layer, tail = nn.Linear(12, 4), [nn.Linear(4, 2)]
    model = nn.Sequential(layer, norm(4, track_running_stats=False), nn.ReLU(), *tail)
    message = rf"1 \({norm.__name__}\).*track_running_stats=True"
    with pytest.raises(ValueError, match=message):
        synflow.prune(model, "synflow", 4, input_shape=shape)
    with pytest.raises(ValueError, match=message):
        synflow.compute_scores(model, "synflow_l2", input_shape=shape)
    assert all(m.all() for m in synflow.current_masks(model).values())  # nothing half-done
    # a data-based score normalises real batches, as in training: allowed
    x = torch.randn(6, *shape, generator=torch.Generator().manual_seed(0))
    masks = synflow.prune(model, "snip", 4, data=[(x, torch.arange(6) % 2)])
    assert synflow.compression_of(masks) == pytest.approx(4, rel=0.05)


def collapsing_call(call):
    """The LayerCollapseWarnings of ``call()`` (every warning recorded)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        masks = call()
    return masks, [w for w in caught if issubclass(w.category, synflow.LayerCollapseWarning)]


@pytest.mark.parametrize("method,iterations", [("magnitude", 1), ("random", 3), ("synflow", 1),
                                               ("synflow", 3)])
def test_masks_that_empty_a_layer_warn_naming_it_at_the_callers_line(method, iterations):
    """Layer-collapse (Section 4): prune and prune_through warn naming every empty layer
    (the general loop and SynFlow's own), pointing at the caller's line."""
    model = synflow.build_model("vgg11_bn", width=1 / 16, seed=0)
    masks, caught = collapsing_call(lambda: synflow.prune(
        model, method, 3000, iterations=iterations, input_shape=(3, 32, 32)))
    empty = synflow.empty_layers(masks)
    assert empty and len(caught) == 1
    assert all(name in str(caught[0].message) for name in empty)
    assert caught[0].filename == __file__
    masks, caught = collapsing_call(lambda: synflow.prune_through(
        synflow.build_model("vgg11_bn", width=1 / 16, seed=0), method, [1 / 3000],
        input_shape=(3, 32, 32)))
    assert synflow.empty_layers(masks) and len(caught) == 1 and caught[0].filename == __file__


@pytest.mark.parametrize("method", ["magnitude", "synflow"])
def test_masks_that_keep_every_layer_do_not_warn_of_collapse(method):
    model = synflow.build_model("vgg11_bn", width=1 / 16, seed=0)
    masks, caught = collapsing_call(lambda: synflow.prune(
        model, method, 10, iterations=10, input_shape=(3, 32, 32)))
    assert not synflow.empty_layers(masks) and caught == []
    _, caught = collapsing_call(lambda: synflow.core.counts.warn_collapsed(
        {"none.weight": torch.zeros(0, 3, dtype=torch.bool), "one.weight": torch.ones(2, 2) > 0}))
    assert caught == []  # a layer of no weights has none to lose


@pytest.mark.parametrize("method", ["magnitude", "synflow"])
def test_collapse_as_an_error_leaves_the_model_as_it_was(method):
    """warnings.simplefilter("error", LayerCollapseWarning): prune raises before it masks
    the model (the library's rule for errors)."""
    model = synflow.build_model("vgg11_bn", width=1 / 16, seed=0)
    before = {name: t.clone() for name, t in model.state_dict().items()}
    with warnings.catch_warnings():
        warnings.simplefilter("error", synflow.LayerCollapseWarning)
        with pytest.raises(synflow.LayerCollapseWarning, match="every weight of"):
            synflow.prune(model, method, 3000, input_shape=(3, 32, 32))
    after = model.state_dict()
    assert after.keys() == before.keys() and all(torch.equal(after[k], before[k]) for k in before)


def test_analyses_that_prune_to_collapse_on_purpose_do_not_warn_of_it():
    """critical_compression, iterative_masks, synflow_iterations and empty_layer_counts empty
    layers to find, trace or count collapse, and their results say it: no LayerCollapseWarning from them (nor
    left behind), while iterative_masks(stop_on_collapse=False), a plain prune, still warns."""
    def net():
        return synflow.build_model("vgg11_bn", width=1 / 16, seed=0)

    densities = synflow.core.schedules.schedule_densities(3000, 2, "exponential")
    masks, caught = collapsing_call(lambda: analysis.iterative_masks(net(), "magnitude", densities))
    assert synflow.empty_layers(masks) and caught == []
    found, caught = collapsing_call(lambda: analysis.critical_compression(
        net, "magnitude", iterations=2, input_shape=(3, 32, 32), bisection_steps=1))
    assert found.first_empty and caught == []
    steps, caught = collapsing_call(lambda: analysis.synflow_iterations(
        nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)), [0.1], (4,)))
    assert 0 in steps[-1].kept.values() and caught == []
    counts, caught = collapsing_call(lambda: analysis.empty_layer_counts(
        lambda: (torch.manual_seed(0), nn.Sequential(nn.Linear(4, 8), nn.ReLU(),
                                                     nn.Linear(8, 2)))[1],
        ["synflow"], [1.0, 1.7, 2.0], synflow_iterations=3, input_shape=(4,)))
    assert counts["empty_layers"].max() > 0 and caught == []
    masks, caught = collapsing_call(lambda: analysis.iterative_masks(
        net(), "magnitude", densities, stop_on_collapse=False))
    assert synflow.empty_layers(masks) and len(caught) == 1
    _, caught = collapsing_call(lambda: synflow.prune(net(), "magnitude", 3000))
    assert len(caught) == 1  # the filter was put back


def test_a_runs_pruning_warnings_name_the_run(env):
    """A sweep's run that empties a layer says which run it is (its name after the
    warning), at the caller's line, also when its masks are the process's remembered ones
    (caught by an earlier call); filters on the message's start or on the module (the
    caller's, as for prune's own warnings) match it."""
    from synflow.experiments import execution, store

    config = store.RunConfig("mlp", "blobs", pruner="magnitude", compression=100, width=0.2,
                             epochs=1, batch_size=12, lr=0.05)
    first = collapsing_call(lambda: execution.execute(config, device="cpu"))
    second = collapsing_call(lambda: execution.execute(config, device="cpu"))  # remembered
    line = inspect.currentframe().f_lineno - 2
    for (result, caught), at in ((first, line), (second, line + 1)):
        assert result.empty_layers and len(caught) == 1
        message = str(caught[0].message)
        assert message.startswith("the masks prune every weight of 1 layer(s)")
        assert message.endswith(f" (run {config.name()})")
        assert (caught[0].filename, caught[0].lineno) == (__file__, at)
    for rule in ({"message": "the masks prune every weight"},
                 {"category": synflow.LayerCollapseWarning, "module": __name__}):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            warnings.filterwarnings("ignore", **rule)
            execution.execute(config, device="cpu")
        assert caught == [], rule


def test_warnings_from_inside_an_analysis_point_at_the_callers_line():
    """However deep inside synflow a warning is issued (here an analysis calling the
    loop), it names the first line outside the package (synflow.core.stack)."""
    from synflow import analysis
    from synflow.core.schedules import schedule_densities

    def collapse():
        return analysis.iterative_masks(
            synflow.build_model("vgg11_bn", width=1 / 16, seed=0), "synflow",
            schedule_densities(3000, 2, "exponential"), input_shape=(3, 32, 32),
            stop_on_collapse=False)

    masks, caught = collapsing_call(collapse)
    assert synflow.empty_layers(masks) and len(caught) == 1
    assert caught[0].filename == __file__
    x = torch.randn(8, 256, generator=torch.Generator().manual_seed(0))
    with pytest.warns(ScoreWarning, match=ALL_ZERO) as scored:
        analysis.iterative_masks(zero_head_mlp(), "snip", [0.5],
                                 data=[(x, torch.arange(8) % 10)])
    assert {w.filename for w in scored if w.category is ScoreWarning} == {__file__}


def test_a_torch_pruned_embedding_is_named_by_its_weight_in_the_dense_warning():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.e, self.fc = nn.Embedding(20, 8), nn.Linear(8, 3)

        def forward(self, x):
            return self.fc(self.e(x).mean(1))

    model = Net()
    torch.nn.utils.prune.l1_unstructured(model.e, "weight", amount=0.5)
    with pytest.warns(synflow.CompressionWarning) as record:
        synflow.prune(model, "magnitude", 2)
    message = " ".join(str(w.message) for w in record)
    assert "e.weight (masked by torch.nn.utils.prune, not by synflow) (160 weights" in message
    assert "weight_orig" not in message
