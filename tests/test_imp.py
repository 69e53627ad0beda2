"""IMP (cycles, rewinding), mask sanity-check variants, and layer records in synflow.experiments.store."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math

import pytest
import torch

import synflow
from synflow.experiments import execution, runconfig, store


def config(**changes) -> store.RunConfig:
    # Kaiming fan-in: no layer of this MLP empties at compression 8 (with the authors'
    # PyTorch-default init of the toy MLP, magnitude empties its first layer)
    base = store.RunConfig("mlp", "blobs", pruner="magnitude", compression=8, width=0.2,
                           epochs=1, batch_size=12, lr=0.05, init="kaiming_fan_in")
    return dataclasses.replace(base, **changes)


@pytest.fixture
def spy(monkeypatch):
    """Record the model's masks and weights at the start of every training."""
    seen = []
    original = execution.training_loop.train

    def train(model, *args, **kwargs):
        seen.append((synflow.current_masks(model),
                     {n: p.detach().clone() for n, p in model.state_dict().items()}))
        return original(model, *args, **kwargs)

    monkeypatch.setattr(execution.training_loop, "train", train)
    return seen


def weights(state):
    return {n.removesuffix("_orig"): v for n, v in state.items() if not n.endswith("_mask")}


def test_old_configs_keep_their_key_and_name():
    run = config()
    old = {k: v for k, v in dataclasses.asdict(run).items() if k not in runconfig.LATER_FIELDS}
    import hashlib
    import json
    assert run.key() == hashlib.sha256(json.dumps(old, sort_keys=True).encode()).hexdigest()[:10]
    assert config(cycles=2).key() != run.key() and config(mask="shuffled").key() != run.key()
    assert "imp2norewind" in config(cycles=2, rewind=False).name()


def test_stored_runs_without_later_fields_are_loaded(env, monkeypatch):
    run = config()
    first = store.run_or_load(run, "exp")
    path = store.run_dir(run, "exp") / "run.json"
    stored = json.loads(path.read_text())
    for name in runconfig.LATER_FIELDS:
        stored["config"].pop(name)
    path.write_text(json.dumps(stored))
    monkeypatch.setattr(execution, "execute", lambda *a, **k: pytest.fail("ran again"))
    assert store.run_or_load(run, "exp").metrics == first.metrics


def test_bad_later_fields_are_named():
    with pytest.raises(ValueError, match="mask 'flipped'"):
        config(mask="flipped")
    with pytest.raises(ValueError, match="cycles -1"):
        config(cycles=-1)
    with pytest.raises(ValueError, match="cycles=0"):
        config(cycles=2, mask="shuffled")


@pytest.mark.parametrize("rewind", [True, False])
def test_imp_masks_shrink_and_rewind_restores_the_initial_weights(env, spy, rewind):
    run = config(cycles=3, rewind=rewind)
    result = execution.execute(run)
    assert len(spy) == 4  # three train-prune cycles, then the final training
    initial = weights(spy[0][1])
    kept = [sum(int(m.sum()) for m in masks.values()) for masks, _ in spy]
    total = sum(m.numel() for m in spy[0][0].values())
    assert kept == [total] + [round(total / 8 ** (j / 3)) for j in (1, 2, 3)]
    for (before, _), (after, _) in itertools.pairwise(spy):
        assert all(bool((after[n] <= before[n]).all()) for n in before)  # only shrinks
    assert [c["kept"] for c in result.cycles] == kept[1:]
    assert all(c["masks_only_shrank"] for c in result.cycles)
    assert [c["kept_at_initial_values"] for c in result.cycles] == [rewind] * 3
    assert result.metrics["kept"] == kept[-1]
    for masks, state in spy[1:]:
        now = weights(state)
        for name, mask in masks.items():
            if rewind:  # every kept weight is back at its initial value, pruned ones are 0
                assert torch.equal(now[name], initial[name] * mask)
            else:  # trained values are kept: they differ from the initial ones
                assert not torch.equal(now[name][mask], initial[name][mask])
                assert bool((now[name][~mask] == 0).all())
        if rewind:  # biases too
            assert all(torch.equal(now[n], initial[n]) for n in now if n.endswith("bias"))


def test_shuffled_masks_keep_layer_counts_and_initial_weights(env, spy):
    execution.execute(config(compression=4))
    execution.execute(config(compression=4, mask="shuffled"))
    (found, _), (shuffled, shuffled_state) = spy
    assert synflow.count_kept(found) == synflow.count_kept(shuffled)
    assert any(not torch.equal(found[n], shuffled[n]) for n in found)
    initial = weights(synflow.build_model("mlp", num_classes=3, input_shape=(1, 8, 8),
                                          width=0.2, seed=0, init="kaiming_fan_in").state_dict())
    now = weights(shuffled_state)
    assert all(torch.equal(now[n], initial[n] * shuffled[n]) for n in shuffled)


def test_reinit_keeps_the_mask_and_redraws_the_weights(env, spy):
    execution.execute(config(compression=4))
    execution.execute(config(compression=4, mask="reinit"))
    (found, state), (mask, reinit_state) = spy
    assert all(torch.equal(found[n], mask[n]) for n in found)
    before, after = weights(state), weights(reinit_state)
    for name, m in mask.items():
        assert not torch.equal(before[name][m], after[name][m])
        assert bool((after[name][~m] == 0).all())


def test_layer_records_and_test_subset(env):
    result = execution.execute(config(pruner="dense", compression=1, epochs=2, record_layers=True,
                                  test_subset=2))
    rows = result.layer_history
    layers = synflow.prunable_layers(synflow.build_model("mlp", num_classes=3,
                                                         input_shape=(1, 8, 8), width=0.2))
    assert len(rows) == 3 * len(layers) and {r["epoch"] for r in rows} == {0, 1, 2}
    first = [r for r in rows if r["epoch"] == 0]
    assert all(r["mean_sq"] == pytest.approx(r["total_sq"] / r["size"]) for r in first)
    assert len(result.history) == 2


def test_reinit_redraws_from_the_models_own_init(env, spy):
    """The toy MLP's init is PyTorch's default, U(+-1/sqrt(fan_in)): the redrawn kept
    weights stay inside that bound (a Kaiming-normal redraw leaves it for about half)."""
    execution.execute(config(pruner="random", compression=2, mask="reinit", init="authors"))
    (mask, state), = spy
    after = weights(state)
    layers = synflow.prunable_layers(synflow.build_model("mlp", num_classes=3,
                                                         input_shape=(1, 8, 8), width=0.2))
    for name, m in mask.items():
        bound = 1 / math.sqrt(layers[name].weight.shape[1])
        assert 0 < after[name][m].abs().max() <= bound, name
