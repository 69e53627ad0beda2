"""The scorers on the models and data people really have (issue 19, items 5, 16, 17, 20,
22, 24): each case scores correctly, or is refused by a ValueError naming the cause, and
the model is exactly as before."""

from __future__ import annotations

import collections
import copy

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torch.utils.checkpoint import checkpoint

import synflow

SCORED = ["snip", "grasp", "synflow"]  # the methods that run the model


def data(features=8, classes=3, batches=2, size=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(size, features, generator=g), torch.randint(classes, (size,), generator=g))
            for _ in range(batches)]


def untouched(model):
    """A check that the model's state, parameter objects and masks are as they are now."""
    state = copy.deepcopy(model.state_dict())
    parameters = [id(p) for p in model.parameters()]

    def check():
        assert [id(p) for p in model.parameters()] == parameters
        assert model.state_dict().keys() == state.keys()
        assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    return check


# ------------------------------------------------ item 5: activation checkpointing


class Checkpointed(nn.Module):
    def __init__(self, reentrant=None):
        super().__init__()
        torch.manual_seed(0)
        self.a, self.b, self.c = nn.Linear(8, 16), nn.Linear(16, 16), nn.Linear(16, 3)
        self.reentrant = reentrant

    def block(self, x):
        return F.relu(self.b(F.relu(self.a(x))))

    def forward(self, x):
        if self.reentrant is None:
            return self.c(self.block(x))
        return self.c(checkpoint(self.block, x, use_reentrant=self.reentrant))


@pytest.mark.parametrize("method", SCORED)
@pytest.mark.parametrize("reentrant,cause", [
    (False, "activation checkpointing .* recomputes part of the forward"),
    (True, r"\['a.weight', 'b.weight'\] with gradients disabled.*use_reentrant=True"),
])
def test_activation_checkpointing_is_refused_naming_it(method, reentrant, cause):
    synflow.prune(Checkpointed(), method, 5, iterations=2, data=data(), input_shape=(8,))
    model = Checkpointed(reentrant)  # the same net: only the checkpointing differs
    check = untouched(model)
    with pytest.raises(ValueError, match=cause):
        synflow.prune(model, method, 5, iterations=2, data=data(), input_shape=(8,))
    check()


@pytest.mark.parametrize("method", SCORED)
@pytest.mark.parametrize("context", [torch.no_grad, torch.inference_mode])
def test_scores_are_the_same_inside_no_grad_and_inference_mode(method, context):
    model = Checkpointed()
    outside = synflow.compute_scores(model, method, data=data(), input_shape=(8,))
    with context():
        inside = synflow.compute_scores(model, method, data=data(), input_shape=(8,))
    assert all(torch.equal(inside[k], outside[k]) for k in outside)


# ------------------------------- item 16: mixed precision, meta device, TorchScript


class Mixed(nn.Module):
    """A float32 stem feeding a float16 head."""

    def __init__(self, follow_weights):
        super().__init__()
        torch.manual_seed(0)
        self.stem, self.head = nn.Linear(8, 16), nn.Linear(16, 3).half()
        self.follow_weights = follow_weights

    def forward(self, x):
        x = F.relu(self.stem(x))
        x = x.to(self.head.weight.dtype) if self.follow_weights else x.half()
        return self.head(x).float()


def test_synflow_refuses_a_forward_that_casts_naming_the_dtypes():
    model = Mixed(follow_weights=False)
    check = untouched(model)
    with pytest.raises(ValueError, match=r"mixes dtypes: scoring runs the whole model in "
                                         r"torch.float64.*float32: stem.weight.*float16: head.weight"):
        synflow.compute_scores(model, "synflow", input_shape=(8,))
    check()


def test_synflow_scores_a_mixed_model_whose_forward_follows_its_weights():
    model = Mixed(follow_weights=True)
    scores = synflow.compute_scores(model, "synflow", input_shape=(8,))
    oracle = copy.deepcopy(model).double()  # every layer in float64: no cast left
    with torch.no_grad():
        for p in oracle.parameters():
            p.abs_()
    oracle(torch.ones(1, 8, dtype=torch.float64)).sum().backward()
    for name, module in synflow.prunable_layers(oracle).items():
        torch.testing.assert_close(scores[name], module.weight.grad * module.weight, rtol=1e-12,
                                   atol=0)


@pytest.mark.parametrize("method", ["random", "magnitude", "snip", "grasp", "synflow",
                                    "random_erk"])
def test_a_meta_device_model_is_refused_by_name(method):
    with torch.device("meta"):
        model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    with pytest.raises(ValueError, match=r"0.weight is on the meta device .*; 2.weight is on"):
        synflow.prune(model, method, 5, data=data(), input_shape=(8,))
    assert not any(synflow.core.masks.is_masked(m) for m in model)


@pytest.mark.filterwarnings("ignore::FutureWarning")  # torch deprecates TorchScript
@pytest.mark.parametrize("compile_", ["script", "trace", "inner script"])
def test_torchscript_modules_are_refused_by_name(compile_):
    net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    if compile_ == "script":
        model, name = torch.jit.script(net), "RecursiveScriptModule"
    elif compile_ == "trace":
        model, name = torch.jit.trace(net, torch.ones(1, 8)), "TopLevelTracedModule"
    else:
        model, name = nn.Sequential(torch.jit.script(net), nn.Linear(3, 3)), "0"
    with pytest.raises(ValueError, match=rf"cannot prune TorchScript modules \({name}, "):
        synflow.prune(model, "synflow", 5, input_shape=(8,))


def test_a_conv3d_input_shape_hint_is_torchs_layout():
    model = nn.Sequential(nn.Conv3d(2, 4, 3), nn.Flatten(), nn.LazyLinear(3))
    model(torch.ones(1, 2, 4, 4, 4))  # materialise the lazy layer
    with pytest.raises(ValueError, match=r"input_shape=\(2, D, H, W\)"):
        synflow.compute_scores(model, "synflow", input_shape=(3, 4, 4, 4))


# ------------------------------------- item 17: GraSP through scaled_dot_product_attention


class Attention(nn.Module):
    def __init__(self, kind):
        super().__init__()
        torch.manual_seed(0)
        self.embed, self.head = nn.Linear(4, 8), nn.Linear(8, 3)
        self.kind = kind
        if kind == "mha":
            self.block = nn.MultiheadAttention(8, 2, batch_first=True)
        else:
            self.block = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True)

    def forward(self, x):
        h = self.embed(x.view(len(x), 2, 4))
        h = self.block(h, h, h, need_weights=False)[0] if self.kind == "mha" else self.block(h)
        return self.head(h.mean(1))


@pytest.mark.parametrize("kind", ["mha", "encoder"])
def test_grasp_through_attention_matches_the_full_hessian_oracle(kind):
    from test_scores import assert_close, grasp_oracle

    model, batches = Attention(kind), data()
    check = untouched(model)
    ours = synflow.compute_scores(model, "grasp", data=batches)
    check()
    with torch.nn.attention.sdpa_kernel(torch.nn.attention.SDPBackend.MATH):
        oracle = grasp_oracle(model, batches)
    assert_close(ours, oracle, 1e-4, 1e-5)


def test_grasp_prunes_torchvisions_vision_transformer():
    torch.manual_seed(0)
    model = torchvision.models.VisionTransformer(image_size=8, patch_size=4, num_layers=1,
                                                 num_heads=2, hidden_dim=8, mlp_dim=16,
                                                 num_classes=3)
    nn.init.normal_(model.heads.head.weight)  # torchvision zeroes it: every score would be 0
    batches = [(torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 2, 0]))]
    masks = synflow.prune(model, "grasp", 4, data=batches)
    total = sum(m.numel() for m in masks.values())
    assert sum(int(m.sum()) for m in masks.values()) == round(total / 4)


# -------------------------------------------------- item 20: models that return no tensor


class Returns(nn.Module):
    def __init__(self, kind):
        super().__init__()
        self.linear, self.kind = nn.Linear(8, 3), kind

    def forward(self, x):
        y = self.linear(x)
        if self.kind == "tuple":
            return y, x
        if self.kind == "dict":
            return {"logits": y, "features": x}
        return collections.namedtuple("Output", "logits aux")(y, x)


@pytest.mark.parametrize("method", SCORED)
@pytest.mark.parametrize("kind,described", [
    ("tuple", r"a tuple of 2: \(Tensor, Tensor\)"),
    ("dict", r"a dict with keys \['logits', 'features'\]"),
    ("namedtuple", r"a namedtuple Output with fields \['logits', 'aux'\]"),
])
def test_a_model_that_returns_no_tensor_is_refused_naming_what_it_returned(method, kind, described):
    model = Returns(kind)
    check = untouched(model)
    with pytest.raises(ValueError, match=r"need the model to return its logits as one tensor.*"
                                         rf"Returns returned {described}"):
        synflow.prune(model, method, 2, data=data(), input_shape=(8,))
    check()


# --------------------------------------------------------------- item 22: malformed data


x, y = data(batches=1)[0]


@pytest.mark.parametrize("method", SCORED)
@pytest.mark.parametrize("batches,described", [
    ([(x, y, y)], r"batch 0 is a tuple of 3: \(Tensor, Tensor, Tensor\)"),
    ([{"image": x, "label": y}], r"batch 0 is a dict with keys \['image', 'label'\] \(e.g. "),
    ([x], r"batch 0 is a torch.float32 tensor of shape \(6, 8\)"),
    ([(x, y), (x, y.float())],
     r"targets of batch 1 are a torch.float32 tensor of shape \(6,\) for 6 inputs \(class probab"),
    ([(x, F.one_hot(y, 3))], r"targets of batch 0 are a torch.int64 tensor of shape \(6, 3\)"),
    ([(x, y[:4])], r"targets of batch 0 are a torch.int64 tensor of shape \(4,\) for 6 inputs"),
    ([(x > 0, y)], r"the inputs of batch 0 are a torch.bool tensor"),
    ([], "data gave no batches"),
])
def test_malformed_data_is_refused_naming_what_was_given(method, batches, described):
    if method == "synflow" and batches and len(batches) > 1:
        batches = batches[1:]  # synflow reads only the first batch (for its input shape)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    check = untouched(model)
    with pytest.raises(ValueError, match=described.replace("batch 1", "batch [01]")):
        synflow.prune(model, method, 2, data=batches)
    check()


@pytest.mark.parametrize("method", ["snip", "grasp"])
def test_integer_targets_of_any_width_score_as_int64(method):
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    expected = synflow.compute_scores(model, method, data=data())
    narrow = [(inputs, targets.to(torch.int32)) for inputs, targets in data()]
    got = synflow.compute_scores(model, method, data=narrow)
    assert all(torch.equal(got[k], expected[k]) for k in expected)


# ----------------------------------------------------------- item 24: token models


class Tokens(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.embedding, self.linear = nn.Embedding(10, 8), nn.Linear(8, 3)

    def forward(self, tokens):
        return self.linear(self.embedding(tokens).mean(1))


def test_synflow_on_a_token_model_names_the_embedding_and_the_all_ones_input():
    model = Tokens()
    with pytest.raises(ValueError, match=r"embedding \(Embedding\) was given torch.float64 values "
                                         r"from SynFlow's all-ones float input.*cannot index an "
                                         r"embedding") as error:
        synflow.prune(model, "synflow", 2, input_shape=(5,))
    assert "input_shape=(" not in str(error.value)  # no shape to suggest: none would work
    assert not isinstance(error.value, synflow.core.scorers.inputs.InputShapeError)


def test_data_methods_score_a_token_model_from_integer_ids():
    model = Tokens()
    tokens = [(torch.randint(10, (6, 5)), torch.randint(3, (6,)))]
    scores = synflow.compute_scores(model, "snip", data=tokens)
    assert scores.keys() == {"linear.weight"} and bool((scores["linear.weight"] > 0).any())
    with pytest.raises(ValueError, match=r"embedding \(Embedding\) was given torch.float32 values "
                                         r"from data.*give the token ids as an integer tensor"):
        synflow.compute_scores(model, "snip", data=[(tokens[0][0].float(), tokens[0][1])])
