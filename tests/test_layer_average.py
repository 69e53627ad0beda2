"""Figure 4's statistic (|sum of a layer's weight and bias scores| / its size) against
brute force: a float64 full-Hessian GraSP oracle over every parameter, biases included."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import synflow
from synflow.analysis.saliency import layer_averages, parameter_scores


def mlp(seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 6), nn.ReLU(), nn.Linear(6, 5), nn.ReLU(),
                          nn.Linear(5, 3))
    with torch.no_grad():
        for m in model:
            if isinstance(m, nn.Linear):
                m.bias.uniform_(-0.5, 0.5)
    return model


def data(seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(10, 3, 2, 2, generator=g), torch.randint(3, (10,), generator=g))
            for _ in range(2)]


def grasp_oracle_all_parameters(model, batches, temperature):
    """p * (H g) with the full Hessian over every parameter (weights and biases), float64."""
    oracle = copy.deepcopy(model).double().eval()
    names = [n for n, _ in oracle.named_parameters()]
    shapes = [p.shape for _, p in oracle.named_parameters()]
    flat0 = torch.cat([p.detach().flatten() for _, p in oracle.named_parameters()])

    def loss(flat):
        params, offset = {}, 0
        for name, shape in zip(names, shapes):
            params[name] = flat[offset : offset + shape.numel()].view(shape)
            offset += shape.numel()
        return sum(F.cross_entropy(torch.func.functional_call(oracle, params, (x.double(),))
                                   / temperature, y) for x, y in batches)

    g = torch.autograd.functional.jacobian(loss, flat0)
    H = torch.autograd.functional.hessian(loss, flat0)
    scores = (flat0 * (H @ g)).split([s.numel() for s in shapes])
    return {n: s.view(shape) for n, s, shape in zip(names, scores, shapes)}


@pytest.mark.parametrize("temperature", [1.0, 200.0])
def test_grasp_layer_average_is_the_paper_statistic_by_brute_force(temperature):
    model, batches = mlp(), data()
    scores = parameter_scores(model, "grasp", data=batches, temperature=temperature)
    oracle = grasp_oracle_all_parameters(model, batches, temperature)
    for name in oracle:
        torch.testing.assert_close(scores[name], oracle[name], rtol=1e-6, atol=1e-12)
    table = layer_averages(model, scores).set_index("layer")
    for layer in ("1", "3", "5"):
        values = [float(v) for v in oracle[f"{layer}.weight"].flatten()]
        values += [float(v) for v in oracle[f"{layer}.bias"].flatten()]
        row = table.loc[f"{layer}.weight"]
        assert row["size"] == len(values)
        assert row["average"] == pytest.approx(abs(sum(values)) / len(values), rel=1e-9)
        assert row["mean_abs"] == pytest.approx(sum(abs(v) for v in values) / len(values), rel=1e-9)
    # GraSP is signed: the paper's statistic is not the mean of |score|
    assert (table["average"] < 0.9 * table["mean_abs"]).any()


def test_positive_scores_give_the_same_statistic_both_ways_and_biases_count():
    model = mlp()
    scores = parameter_scores(model, "synflow", input_shape=(3, 2, 2))
    table = layer_averages(model, scores)
    torch.testing.assert_close(torch.tensor(table["average"].to_numpy()),
                               torch.tensor(table["mean_abs"].to_numpy()), rtol=1e-12, atol=0)
    assert list(table["size"]) == [12 * 6 + 6, 6 * 5 + 5, 5 * 3 + 3]
    # the weights' scores equal the library's SynFlow scores
    weights = synflow.compute_scores(model, "synflow", input_shape=(3, 2, 2))
    for name, s in weights.items():
        torch.testing.assert_close(scores[name], s.double(), rtol=1e-5, atol=0)
    # dropping the biases changes the statistic (they are part of the layer)
    without = layer_averages(model, {n: s for n, s in scores.items() if n.endswith("weight")})
    assert (without["average"] != table["average"]).all()


def test_snip_and_magnitude_scores_of_every_parameter():
    model, batches = mlp(), data()
    oracle = copy.deepcopy(model).double().eval()
    sum(F.cross_entropy(oracle(x.double()), y) for x, y in batches).backward()
    snip = parameter_scores(model, "snip", data=batches)
    for name, p in oracle.named_parameters():
        torch.testing.assert_close(snip[name], (p.grad * p).abs().detach())
    magnitude = parameter_scores(model, "magnitude")
    assert all(torch.equal(magnitude[n], p.detach().double().abs())
               for n, p in model.named_parameters())


def test_parameter_scores_errors_and_leaves_the_model_alone():
    model = mlp()
    state = copy.deepcopy(model.state_dict())
    with pytest.raises(ValueError, match="grasp needs data"):
        parameter_scores(model, "grasp")
    with pytest.raises(ValueError, match="unknown pruning method 'grsp'"):
        parameter_scores(model, "grsp")
    with pytest.raises(ValueError, match="synflow needs input_shape"):
        parameter_scores(model, "synflow")
    parameter_scores(model, "grasp", data=data())
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())


# ------------------------------------------- issue 16: one implementation of each formula


def test_the_analyses_are_the_scorers_own_formulas():
    """parameter_scores, loss_saliency and synflow_saliency run the scorers' code: the
    weights' entries are bit-equal to the scorers' on a float64 copy, and SNIP is the
    absolute value of the loss saliency."""
    from synflow import analysis

    model, batches = mlp(), data()
    model64 = copy.deepcopy(model).double()
    for method in ("magnitude", "snip", "synflow", "synflow_l2"):
        everything = parameter_scores(model, method, data=batches, input_shape=(3, 2, 2))
        weights = synflow.compute_scores(model64, method, data=batches, input_shape=(3, 2, 2))
        assert all(torch.equal(everything[name], s) for name, s in weights.items()), method
    L, signed = analysis.loss_saliency(model, batches)
    snip = parameter_scores(model, "snip", data=batches)
    assert signed.keys() == snip.keys()
    assert all(torch.equal(signed[name].abs(), snip[name]) for name in snip)
    assert (torch.stack([s.flatten().min() for s in signed.values()]) < 0).any()  # signed
    with torch.no_grad():
        expected = sum(float(F.cross_entropy(model64(x.double()), y)) for x, y in batches)
    assert L == pytest.approx(expected, rel=1e-12)
    R, synflow_saliency = analysis.synflow_saliency(model, (3, 2, 2))
    sf = parameter_scores(model, "synflow", input_shape=(3, 2, 2))
    assert all(torch.equal(synflow_saliency[name], sf[name]) for name in sf)
    assert R == pytest.approx(float(sf["5.weight"].sum() + sf["5.bias"].sum()), rel=1e-12)


def test_no_score_formula_is_written_twice():
    """Derivatives are taken in one place (core/scorers/guards.py: gradients) and model
    runs in one (core/scorers/functional.py: call_with_weights); the analyses call the
    scorers instead of computing scores themselves."""
    import ast
    from pathlib import Path

    lib = Path(synflow.__file__).parent
    machinery = {"grad", "functional_call", "cross_entropy", "hessian", "jacobian", "backward"}
    for path in [lib / "analysis" / "saliency.py", *(lib / "core" / "scorers").glob("*.py")]:
        names = {node.attr if isinstance(node, ast.Attribute) else node.id
                 for node in ast.walk(ast.parse(path.read_text()))
                 if isinstance(node, (ast.Attribute, ast.Name))}
        allowed = {"functional.py": {"functional_call"}, "guards.py": {"grad"},
                   "gradient.py": {"cross_entropy"}}.get(path.name, set())
        assert not (names & machinery) - allowed, (path.name, (names & machinery) - allowed)
