"""synflow.experiments.store: configs, run_or_load, resuming, atomic writes, frame."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pandas as pd
import pytest

from synflow.core.counts import LayerCollapseWarning
from synflow.core.files import atomic_write
from synflow.experiments import execution, runconfig, store
from synflow.experiments.results import RunResult
from synflow.utils import paths, progress


def config(**changes) -> store.RunConfig:
    base = store.RunConfig(
        "mlp", "blobs", pruner="magnitude", compression=4, width=0.2, epochs=1, batch_size=12,
        lr=0.05,
    )
    return dataclasses.replace(base, **changes)


@pytest.fixture
def counted(monkeypatch):
    """Count the runs that are really executed (not loaded)."""
    executed = []
    original = execution.execute

    def execute(run, **kwargs):
        executed.append(run)
        return original(run, **kwargs)

    monkeypatch.setattr(execution, "execute", execute)
    return executed


# ------------------------------------------------------------------ configs


def test_config_identity_and_name():
    a = config(compression=4, width=1)
    b = config(compression=4.0, width=1.0)
    assert a == b and a.key() == b.key() and a.name() == b.name()
    assert a.name().startswith("mlp-w1-blobs-magnitude-c4-s0-")
    assert config(seed=1).key() != a.key()
    assert store.RunConfig("mlp", "blobs").name().startswith("mlp-w1-blobs-dense-s0-")
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.seed = 3


def test_bn_mode_keeps_the_identity_of_earlier_runs_at_its_default():
    grasp = config(pruner="grasp")
    assert "bn_mode" not in grasp.identity()  # stored runs (no bn_mode) keep their key
    assert grasp.key() == config(pruner="grasp", bn_mode="eval").key()
    train = config(pruner="grasp", bn_mode="train")
    assert train.key() != grasp.key() and train.identity()["bn_mode"] == "train"
    assert "-bntrain-" in train.name() and "-bn" not in grasp.name()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"model": "vgg17"}, r"model 'vgg17'.*vgg16_bn"),
        ({"pruner": "snipp"}, r"pruner 'snipp'.*dense, .*synflow"),
        ({"schedule": "cosine"}, r"schedule 'cosine'.*exponential, linear"),
        ({"scope": "layer"}, r"scope 'layer'.*global, local"),
        ({"compression": 0.5}, r"compression 0.5.*>= 1"),
        ({"iterations": 0}, r"iterations 0.*integer >= 1"),
        ({"preset": "fast"}, r"preset 'fast'.*vgg-cifar"),
        ({"pruner": "dense"}, r"pruner 'dense' needs compression 1"),
        # one dense run has one identity: not also "synflow at compression 1" or "dense in
        # 100 iterations" (two stored copies would count as two seeds)
        ({"compression": 1}, r"pruner 'magnitude' with compression 1 prunes nothing.*'dense'"),
        ({"pruner": "dense", "compression": 1, "iterations": 100},
         r"iterations, schedule, scope, invert, cycles and mask are for a pruner"),
        ({"pruner": "dense", "compression": 1, "scope": "local"}, r"the dense run keeps"),
        ({"pruner": "dense", "compression": 1, "cycles": 2}, r"cycles and mask are for a pruner"),
        ({"pruner": "dense", "compression": 1, "mask": "reinit"}, r"the dense run keeps"),
        ({"pruner": "grasp", "bn_mode": "batch"}, r"bn_mode 'batch'.*eval, train"),
        ({"bn_mode": "train"}, r"bn_mode 'train' is for the pruners grasp, snip, not 'magnitude'"),
        ({"init": "he"}, r"init 'he' is not allowed.*'authors'.*kaiming_fan_in, "),
        # 0 never means "the preset's" or "the full set": that is None
        ({"epochs": 0}, r"epochs 0 is not allowed; choose None or an integer >= 1"),
        ({"subset": 0}, r"subset 0 is not allowed; choose None or an integer >= 1"),
        ({"lr": 0}, r"lr 0 is not allowed; choose None \(the preset's\) or a finite number > 0"),
        ({"batch_size": 0}, r"batch_size 0 .*None or an integer >= 1"),
        ({"test_subset": 0}, r"test_subset 0 .*None or an integer >= 1"),
        ({"prune_per_class": 0}, r"prune_per_class 0 .*an integer >= 1"),
        ({"seed": -1}, r"seed -1 .*an integer >= 0"),
        ({"seed": 1.5}, r"seed 1.5 .*an integer >= 0"),
        ({"epochs": "3"}, r"epochs '3' .*an integer >= 1"),
        ({"compression": "10"}, r"compression '10' .*a finite number >= 1"),
        ({"compression": float("inf")}, r"compression inf .*a finite number >= 1"),
        ({"width": 0}, r"width 0 .*a finite number > 0"),
        ({"cycles": True}, r"cycles True .*\(not a bool: True is not 1\)"),
        ({"invert": 1}, r"invert 1 .*True or False"),
    ],
)
def test_bad_config_values_are_named(changes, message):
    with pytest.raises(ValueError, match=message):
        config(**changes)


def test_training_overrides_apply_to_the_preset():
    training = config(epochs=3, lr=0.2, subset=5, batch_size=7).training()
    assert (training.epochs, training.lr, training.subset, training.batch_size) == (3, 0.2, 5, 7)
    assert store.RunConfig("vgg16_bn", "cifar10").training().lr == 0.1


def main_identity_name(run: store.RunConfig) -> tuple[dict, str]:
    """The stored config and folder name main (27f975b, before ``init``) wrote for ``run``:
    every field but ``init`` and the later fields at their defaults, hashed."""
    import hashlib

    stored = {k: v for k, v in dataclasses.asdict(run).items() if k != "init"}
    identity = {k: v for k, v in stored.items()
                if not (k in runconfig.LATER_FIELDS and v == runconfig.LATER_FIELDS[k])}
    key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:10]
    return stored, f"{run.name().rsplit('-', 1)[0]}-{key}"


def test_init_is_always_part_of_the_identity():
    run = config()
    assert run.init == "authors" and run.identity()["init"] == "authors"
    forced = config(init="kaiming_fan_in")
    assert forced.key() != run.key() and "-init_kaiming_fan_in-" in forced.name()
    for each in (run, forced, config(pruner="grasp", bn_mode="train"), config(cycles=2)):
        assert each.name() != main_identity_name(each)[1]  # no new name is an old one


def test_a_run_stored_before_init_existed_is_never_loaded_as_a_new_one(env, counted):
    new = config()
    old_config, old_name = main_identity_name(new)
    old_folder = env / "results" / "exp" / old_name
    payload = execution.execute(new).to_json()  # a complete result, as main wrote them
    payload.update(config=old_config, key=old_name.rsplit("-", 1)[1])
    payload["metrics"].update(best_top1=99.0, final_top1=99.0)
    atomic_write(old_folder / "run.json", lambda f: json.dump(payload, f), text=True)
    counted.clear()
    # read back as what it was made with
    old = RunResult.read(old_folder / "run.json").config
    assert old.init == "kaiming_fan_in" and old == dataclasses.replace(new, init="kaiming_fan_in")
    # neither the new default config nor the same init forced finds it
    for run in (new, old):
        assert store.stored_result(run, "exp") is None
    result = store.run_or_load(new, "exp")
    assert counted == [new] and result.metrics["best_top1"] != 99.0
    assert (old_folder / "run.json").is_file()  # left alone, not overwritten
    table = store.frame("exp").set_index("key")
    assert table.loc[old_name.rsplit("-", 1)[1], "init"] == "kaiming_fan_in"
    assert table.loc[new.key(), "init"] == "authors"


# ------------------------------------------------------------------ running


def test_run_or_load_runs_once_and_stores_json(env, counted):
    run = config()
    result = store.run_or_load(run, "exp")
    folder = env / "results" / "exp" / run.name()
    assert (folder / "run.json").is_file()
    assert len(counted) == 1
    again = store.run_or_load(run, "exp")
    assert len(counted) == 1  # loaded, not recomputed
    assert again == result  # the first call returns what every later load gives
    stored = json.loads((folder / "run.json").read_text())
    assert stored["config"] == dataclasses.asdict(run)
    metrics = stored["metrics"]
    assert {"best_top1", "final_top1", "best_top5", "final_top5", "best_epoch"} <= set(metrics)
    assert metrics["compression_actual"] == pytest.approx(4, rel=0.05)
    assert sum(layer["kept"] for layer in stored["layers"]) == metrics["kept"]
    assert sum(layer["total"] for layer in stored["layers"]) == metrics["prunable"]
    assert len(stored["history"]) == 1 and stored["training"]["epochs"] == 1
    assert not list(paths.repo_root().glob("results/exp"))  # never into the repository


def test_a_run_trained_on_another_copy_of_its_data_is_not_reused(env, counted, monkeypatch):
    # the copy of the dataset (torchvision's exact files, a JPEG or PNG folder) changes the
    # result: a run records it, and is not loaded where the data root holds another copy
    run = config()
    first = store.run_or_load(run, "exp")
    assert first.environment["data"] == "folder blobs"
    assert store.run_or_load(run, "exp") == first and len(counted) == 1
    (env / "data" / "blobs").rename(env / "data" / "blobs-png")
    with pytest.raises(store.OtherDataError, match=r"trained on blobs from 'folder blobs', and "
                       r"this process reads it from 'folder blobs-png'.*not reused"):
        store.run_or_load(run, "exp")
    assert len(counted) == 1
    (env / "data" / "blobs-png").rename(env / "data" / "elsewhere")
    assert store.run_or_load(run, "exp") == first  # the data is not here: results are read
    (env / "data" / "elsewhere").rename(env / "data" / "blobs-png")  # in this same process,
    other = store.run_or_load(config(seed=1), "exp")  # a new run records the copy it used
    assert other.environment["data"] == "folder blobs-png"


def test_a_run_that_can_only_fail_is_refused_before_anything_is_written(env, counted):
    from synflow.experiments.runnable import RunRefused

    with pytest.raises(RunRefused, match="unknown dataset 'blbos'"):
        store.run_or_load(config(dataset="blbos"), "exp")
    with pytest.raises(RunRefused, match=r"compression 1e\+06 keeps N / compression < 1 weight"):
        store.run_or_load(config(dataset="mnist", compression=1e6), "exp")
    assert counted == [] and not (env / "results").exists()  # no run folder, no failed.json
    for path in ("../../etc", "a/b", ".."):  # a folder under the data root, not a path
        with pytest.raises(ValueError, match=rf"dataset '{re.escape(path)}' is not allowed"):
            config(dataset=path)
    assert config(dataset="my data (png)").dataset == "my data (png)"  # as before


def test_runs_are_reproducible_for_a_seed(env):
    first = execution.execute(config(seed=3))
    second = execution.execute(config(seed=3))
    assert first.history[0]["train_loss"] == second.history[0]["train_loss"]
    assert first.layers == second.layers


def test_data_pruners_get_the_pruning_subset(env):
    result = store.run_or_load(config(pruner="snip", prune_per_class=2), "exp")
    assert result.metrics["kept"] == round(result.metrics["prunable"] / 4)


def test_a_runs_bn_mode_reaches_the_pruner_and_its_masks_are_not_reused_across_modes(
        env, monkeypatch):
    seen = []
    original = execution.prune

    def spy(*args, **kwargs):
        seen.append(kwargs.get("bn_mode"))
        return original(*args, **kwargs)

    monkeypatch.setattr(execution, "prune", spy)
    for mode in ("eval", "train"):  # same run otherwise: the masks of the first are remembered
        execution.execute(config(pruner="grasp", prune_per_class=2, bn_mode=mode))
    assert seen == ["eval", "train"]


def test_a_runs_init_builds_its_model_and_its_masks_are_not_reused_across_inits(env):
    dense = {init: execution.execute(config(pruner="dense", compression=1, record_layers=True,
                                            init=init))
             for init in ("pytorch_default", "kaiming_fan_in")}
    for init, result in dense.items():  # the MLP's first layer reads 64 pixels
        first = result.layer_history[0]
        expected = {"pytorch_default": 1 / (3 * 64), "kaiming_fan_in": 2 / 64}[init]
        assert first["epoch"] == 0 and first["mean_sq"] == pytest.approx(expected, rel=0.25)
    # same run otherwise: the masks of the first would be remembered for the second
    layers = [execution.execute(config(init=init)).layers
              for init in ("pytorch_default", "kaiming_fan_in")]
    assert layers[0] != layers[1]


def test_dense_runs_are_not_pruned(env):
    result = store.run_or_load(store.RunConfig("mlp", "blobs", width=0.2, epochs=1), "exp")
    assert result.metrics["kept"] == result.metrics["prunable"]
    assert result.empty_layers == []


def test_a_run_records_whether_an_input_output_path_survives_its_masks(env):
    dense = store.run_or_load(store.RunConfig("mlp", "blobs", width=0.2, epochs=1), "exp")
    kept = store.run_or_load(config(compression=4), "exp")
    with pytest.warns(LayerCollapseWarning, match="no input-output path is left"):
        cut = store.run_or_load(config(compression=1000), "exp")  # magnitude empties layers
    assert dense.metrics["connected"] is True and kept.metrics["connected"] is True
    assert cut.empty_layers and cut.metrics["connected"] is False
    table = store.frame("exp").set_index("compression")["connected"]
    assert table.to_dict() == {1.0: True, 4.0: True, 1000.0: False}


def test_interrupted_sweep_redoes_only_unfinished_runs(env, counted, monkeypatch):
    runs = [config(compression=c) for c in (2, 4, 8)]
    original = execution.training_loop.train
    calls = []

    def dies_on_the_third(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt("killed")
        return original(*args, **kwargs)

    monkeypatch.setattr(execution.training_loop, "train", dies_on_the_third)
    with pytest.raises(KeyboardInterrupt):
        store.sweep(runs, "sweep")
    assert sorted(p.parent.name for p in (env / "results" / "sweep").glob("*/run.json")) == sorted(
        r.name() for r in runs[:2])
    counted.clear()
    store.sweep(runs, "sweep")
    assert counted == [runs[2]]  # no finished run recomputed
    assert len(store.frame("sweep")) == 3


def test_sweep_appends_one_line_per_run_to_the_progress_log(env, monkeypatch, tmp_path):
    runs = [config(compression=c) for c in (2, 4)]
    log = tmp_path / "runs.log"
    monkeypatch.setenv(progress.PROGRESS_LOG_VARIABLE, str(log))
    store.sweep(runs, "logged")
    store.sweep(runs[:1], "logged")  # loaded, still reported
    lines = log.read_text().splitlines()
    assert [line.split(" (")[0] for line in lines] == [
        f"logged: run 1/2 {runs[0].name()}", f"logged: run 2/2 {runs[1].name()}",
        f"logged: run 1/1 {runs[0].name()}",
    ]


def test_crash_while_writing_leaves_no_half_written_file(env, counted, monkeypatch):
    run = config()
    real_dump = json.dump

    def dump_half_then_die(payload, handle, **kwargs):
        handle.write(json.dumps(payload)[:50])
        raise KeyboardInterrupt("killed while writing")

    monkeypatch.setattr(json, "dump", dump_half_then_die)  # the json module store writes with
    with pytest.raises(KeyboardInterrupt):
        store.run_or_load(run, "exp")
    folder = env / "results" / "exp" / run.name()
    assert not (folder / "run.json").exists()
    assert list(folder.iterdir()) == []  # the temporary file is gone too
    monkeypatch.setattr(json, "dump", real_dump)
    counted.clear()
    store.run_or_load(run, "exp")  # redone, and readable
    assert counted == [run]
    assert json.loads((folder / "run.json").read_text())["config"]["compression"] == 4.0


# -------------------------------------------------------------------- frame


def test_frame_has_one_row_per_run(env):
    runs = [config(compression=2), config(compression=4), config(compression=4, seed=1)]
    store.sweep(runs, "fig")
    table = store.frame("fig")
    assert isinstance(table, pd.DataFrame) and len(table) == 3
    assert {"model", "compression", "seed", "best_top1", "final_top1", "path"} <= set(table)
    assert sorted(table["compression"]) == [2.0, 4.0, 4.0]
    per_epoch = store.frame("fig", history=True)
    assert len(per_epoch) == 3 and {"epoch", "train_loss", "top1"} <= set(per_epoch)


def test_frame_has_connected_even_when_no_stored_run_recorded_it(env):
    run = config()
    stored = RunResult(run, {}, dict.fromkeys(RunResult.REQUIRED_METRICS, 0), [], [], [], {})
    stored.write(store.run_dir(run, "old") / "run.json")  # stored before "connected" existed
    assert store.frame("old")["connected"].tolist() == [None]


def test_frame_history_keeps_the_runs_lr_beside_each_epochs(env):
    runs = [config(lr=lr, epochs=3, preset="vgg-cifar") for lr in (0.1, 0.02)]
    results = store.sweep(runs, "lr")
    per_epoch = store.frame("lr", history=True)
    assert per_epoch.groupby("lr").size().to_dict() == {0.02: 3, 0.1: 3}  # the runs' lr
    for result in results:
        rows = per_epoch[per_epoch["lr"] == result.config.lr]
        assert rows["epoch_lr"].tolist() == [row["lr"] for row in result.history]
    assert per_epoch["epoch_lr"].nunique() > 2  # the schedule's steps, not the runs' lr


def test_frame_leaves_out_a_copy_of_another_runs_result(env):
    # a run.json copied into another run's folder: status calls it damaged, and the table
    # must not count its run twice
    runs = [config(compression=2), config(compression=4)]
    store.sweep(runs, "fig")
    folders = [env / "results" / "fig" / run.name() for run in runs]
    (folders[1] / "run.json").write_text((folders[0] / "run.json").read_text())
    with pytest.warns(UserWarning, match=rf"{folders[1].name}/run.json holds the run of "
                                         rf"{runs[0].name()}.*left out"):
        table = store.frame("fig")
    assert table["path"].tolist() == [str(folders[0])]


def test_frame_reports_unknown_config_keys_and_keeps_them(env):
    run = config()
    store.run_or_load(run, "exp")
    path = env / "results" / "exp" / run.name() / "run.json"
    stored = json.loads(path.read_text())
    stored["config"]["temperature"] = 200
    path.write_text(json.dumps(stored))
    with pytest.warns(UserWarning, match=r"\['temperature'\]"):
        table = store.frame("exp")
    assert table["temperature"].tolist() == [200]


def test_frame_of_a_missing_experiment(env):
    store.run_or_load(config(), "there")
    with pytest.raises(FileNotFoundError, match=r"no experiment 'nowhere'.*there"):
        store.frame("nowhere")
    with pytest.raises(ValueError, match="plain folder name"):
        store.frame("../up")


def test_results_argument_overrides_environment(env):
    elsewhere = env / "elsewhere"
    store.run_or_load(config(), "exp", results=elsewhere)
    assert len(store.frame("exp", results=elsewhere)) == 1
    assert not (env / "results").exists()


FIXTURE = min((Path(__file__).parent / "fixtures" / "stored_runs").glob("*/run.json"))


@pytest.mark.parametrize(("change", "message"), [
    ({"format": 99}, "has format 99; this synflow reads format 1 only"),
    ({"format": True}, "has format True"),
    ({"history": None}, r"has the wrong kind of history \(not a list\)"),
    ({"history": [1, 2]}, r"has the wrong kind of history \(not a list of objects\)"),
    ({"metrics": []}, r"has the wrong kind of metrics \(not an object\)"),
    ({"metrics": {**json.loads(FIXTURE.read_text())["metrics"], "kept": True}},
     r"has metrics that are not numbers: \{'kept': True\}"),
    ({"environment": "gpu"}, r"has the wrong kind of environment \(not an object\)"),
    ({"config": {"model": "vgg17", "dataset": "cifar10"}}, "holds no valid config: model"),
])
def test_a_result_of_the_wrong_shape_is_refused_by_name(change, message):
    payload = {**json.loads(FIXTURE.read_text()), **change}
    with pytest.raises(store.DamagedResult, match=rf"^stored.json {message}"):
        RunResult.from_json(payload, where="stored.json")
    assert RunResult.from_json(json.loads(FIXTURE.read_text()), where="stored.json").metrics
