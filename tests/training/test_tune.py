"""``heplearn tune``: the search space is checked before any trial, TPE finds a known optimum,
pruning stops poor trials, a killed study resumes without repeating its trials, two processes
share one SQLite study, and the command runs end to end on a BDT."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml

from heplearn.data import io
from heplearn.errors import ConfigError
from heplearn.run_config import load_run_config
from heplearn.training.search_space import check_space, grid_size, load_space
from heplearn.training.tune import TuneSettings, default_storage, tune
from tests.conftest import make_jets
from tests.test_cli import run
from tests.training import tune_toy

ROOT = Path(__file__).resolve().parents[2]


def never(*_: Any) -> list[dict[str, Any]]:
    raise AssertionError("a trial ran although the search space is bad")


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"training.learning_rat": {"type": "float", "low": 1e-4, "high": 1e-2}}, "training.learning_rat.*unknown key"),
        ({"model.hiden": {"type": "categorical", "choices": [[8]]}}, "model.hiden: unknown key"),
        ({"training.weight_decay": {"type": "float", "low": 0.1, "high": 0.1}}, "training.weight_decay: empty range"),
        ({"training.epochs": {"type": "int", "low": 5, "high": 2}}, "training.epochs: empty range"),
        (
            {"training.learning_rate": {"type": "float", "low": 0.0, "high": 1e-2, "log": True}},
            "training.learning_rate: a log range must be above 0",
        ),
        (
            {"training.learning_rate": {"type": "float", "low": 0.0, "high": 1e-2}},
            r"training.learning_rate = 0.0: training.learning_rate: Input should be greater than 0",
        ),
        ({"training.optimizer": {"type": "categorical", "choices": []}}, "training.optimizer: a categorical parameter"),
        ({"training.optimizer": {"type": "categorical", "choices": ["adamw", "sgd"]}}, "training.optimizer = 'sgd'"),
        ({"model.name": {"type": "categorical", "choices": ["mlp", "bdt"]}}, "model.name: the model cannot vary"),
        ({"learning_rate": {"type": "float", "low": 1e-4, "high": 1e-2}}, "learning_rate: not a key of a run config"),
    ],
)
def test_a_bad_space_fails_before_any_trial(tmp_path: Path, parameters: dict[str, Any], message: str) -> None:
    def load_and_tune() -> None:  # the space's own check, or tune's against the base config, refuses it
        space = load_space({"parameters": parameters})
        tune(tune_toy.BASE, space, TuneSettings(trials=3, progress=False), "bad", tmp_path, trial_function=never)

    with pytest.raises(ConfigError, match=message):
        load_and_tune()
    assert not (tmp_path / "bad").exists()  # no study, no trial directory


def test_the_grid_sampler_needs_a_finite_grid_and_visits_it_once(tmp_path: Path) -> None:
    continuous = load_space({"parameters": {"training.weight_decay": {"type": "float", "low": 0.0, "high": 1.0}}})
    with pytest.raises(ConfigError, match=r"training.weight_decay: the grid sampler needs a step or grid_points"):
        check_space(continuous, tune_toy.BASE, "grid")
    space = load_space(
        {
            "parameters": {
                "training.weight_decay": {"type": "float", "low": 0.0, "high": 0.5, "step": 0.25},
                "model.hidden": {"type": "categorical", "choices": [[8], [16, 8]]},
            }
        }
    )
    assert grid_size(space) == 6
    result = tune(
        tune_toy.BASE,
        space,
        TuneSettings(trials=20, sampler="grid", pruner="none", seed=0, progress=False),
        "grid",
        tmp_path,
        storage="memory",
        trial_function=tune_toy.quadratic,
        report=False,
    )
    assert result.counts["complete"] == 6  # the grid is exhausted: 6 trials, not 20
    points = {(row["training.weight_decay"], str(row["model.hidden"])) for row in _rows(result.trials_json)}
    assert len(points) == 6
    assert result.best_values == {"training.weight_decay": 0.25, "model.hidden": [8]}  # 0.25 is the grid's nearest


def _rows(path: Path) -> list[dict[str, Any]]:
    import json

    return json.loads(path.read_text())["trials"]


def test_tpe_lands_near_the_known_optimum_and_prunes_poor_trials(tmp_path: Path) -> None:
    space = load_space(tune_toy.SPACE)
    settings = TuneSettings(trials=40, sampler="tpe", seed=0, progress=False)
    result = tune(
        tune_toy.BASE,
        space,
        settings,
        "toy",
        tmp_path,
        storage="memory",
        trial_function=tune_toy.quadratic,
        report=False,
    )
    best = load_run_config(yaml.safe_load(result.best_config.read_text()))  # a config `heplearn train` reads
    assert best.training.learning_rate == result.best_values["training.learning_rate"]
    assert best.training.weight_decay == result.best_values["training.weight_decay"] and best.model.name == "mlp"
    # the optimum is at log10(η) = -2.5, λ = 0.3, where the toy's loss is 0: TPE lands within 0.1 of it in both
    assert tune_toy.loss(best) < 0.01
    assert abs(math.log10(best.training.learning_rate) - tune_toy.BEST_LOG10_LEARNING_RATE) < 0.1
    assert abs(best.training.weight_decay - tune_toy.BEST_WEIGHT_DECAY) < 0.1
    # a trial's value is the metric of its kept (lowest-loss) epoch: the loss plus 1/3 at the last epoch
    assert result.best_value == pytest.approx(tune_toy.loss(best) + 1 / 3)
    # random search with the same budget and seed gets less close
    random = tune(
        tune_toy.BASE,
        space,
        replace(settings, sampler="random"),
        "random",
        tmp_path,
        storage="memory",
        trial_function=tune_toy.quadratic,
        report=False,
    )
    assert result.best_value < random.best_value
    # the median pruner stopped poor trials before their last epoch; pruned and complete make the 40
    assert result.counts["complete"] + result.counts["pruned"] == 40
    pruned = [row for row in _rows(result.trials_json) if row["state"] == "pruned"]
    assert pruned and all(row["epochs"] < tune_toy.EPOCHS for row in pruned)


@pytest.mark.parametrize(("sampler", "pruner"), [("nsga2", "none"), ("random", "hyperband")])
def test_the_other_samplers_and_pruners_search_the_same_space(tmp_path: Path, sampler: str, pruner: str) -> None:
    settings = TuneSettings(trials=12, sampler=sampler, pruner=pruner, seed=1, population_size=4, progress=False)
    result = tune(
        tune_toy.BASE,
        load_space(tune_toy.SPACE),
        settings,
        sampler,
        tmp_path,
        storage="memory",
        trial_function=tune_toy.quadratic,
        report=False,
    )
    assert result.counts["complete"] + result.counts["pruned"] == 12
    rows = _rows(result.trials_json)
    assert result.best_value == min(row["value"] for row in rows if row["state"] == "complete")
    if pruner == "hyperband":  # successive halving stops some trials after their first epoch
        assert any(row["state"] == "pruned" and row["epochs"] < tune_toy.EPOCHS for row in rows)


def _toy_worker(runs_dir: Path, study: str, trials: int, **environment: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.training.tune_toy", str(runs_dir), study, str(trials)],
        cwd=ROOT,
        env={**os.environ, **environment},
        stderr=subprocess.PIPE,
    )


def _finished(storage: str, study: str) -> list[optuna.trial.FrozenTrial]:
    if not Path(storage.removeprefix("sqlite:///")).is_file():  # the worker has not made it yet
        return []
    try:
        loaded = optuna.load_study(study_name=study, storage=storage)
    except KeyError:  # not created yet
        return []
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return loaded.get_trials(deepcopy=False, states=states)


def test_a_study_with_finished_and_dead_trials_resumes_without_repeating_them(tmp_path: Path) -> None:
    settings = TuneSettings(
        trials=3, sampler="random", pruner="none", seed=0, progress=False, heartbeat_interval=1, grace_period=2
    )
    space = load_space(tune_toy.SPACE)
    first = tune(tune_toy.BASE, space, settings, "resumed", tmp_path, trial_function=tune_toy.logged, report=False)
    assert first.counts["complete"] == 3
    storage = default_storage(tmp_path / "resumed")
    # a worker that died mid-trial: the trial stays RUNNING with a heartbeat that stops
    study = optuna.load_study(study_name="resumed", storage=storage)
    dead = study.ask(
        {
            "training.learning_rate": optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True),
            "training.weight_decay": optuna.distributions.FloatDistribution(0.0, 1.0),
        }
    )
    study._storage.record_heartbeat(dead._trial_id)
    before = {trial.number: trial.params for trial in _finished(storage, "resumed")}
    time.sleep(4.0)  # well past the 2 s grace period (2.2 s left the dead trial running once, in a full run)
    result = tune(
        tune_toy.BASE,
        space,
        replace(settings, trials=6),
        "resumed",
        tmp_path,
        trial_function=tune_toy.logged,
        report=False,
    )
    after = _finished(storage, "resumed")
    assert len(after) == 6 and result.counts == {"complete": 6, "pruned": 0, "fail": 1, "running": 0, "waiting": 0}
    assert all(trial.params == before[trial.number] for trial in after if trial.number in before)
    # the same --seed on resume does not draw the finished trials' points again
    assert len({tuple(sorted(trial.params.items())) for trial in after}) == 6
    ran = (tmp_path / "resumed" / "ran.log").read_text().split()[::2]
    assert len(ran) == 6 == len(set(ran))  # each finished trial ran once; the resumed study ran the 3 missing
    retried = [trial for trial in after if trial.system_attrs.get("failed_trial") == dead.number]
    assert [trial.params for trial in retried] == [dead.params]  # the dead trial ran again, with its parameters


@pytest.mark.slow
def test_a_killed_study_resumes_without_repeating_its_trials(tmp_path: Path) -> None:
    storage = default_storage(tmp_path / "killed")
    worker = _toy_worker(tmp_path, "killed", 6, TOY_SECONDS="0.3")
    try:
        deadline = time.monotonic() + 120
        while len(_finished(storage, "killed")) < 3 and worker.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        worker.send_signal(signal.SIGKILL)
        _, errors = worker.communicate()
    before = {trial.number: trial.params for trial in _finished(storage, "killed")}
    assert 3 <= len(before) < 6, errors.decode()
    time.sleep(2.5)  # past the grace period: the trial the kill interrupted is known to be dead
    settings = TuneSettings(
        trials=6, sampler="random", pruner="none", progress=False, heartbeat_interval=1, grace_period=2
    )
    result = tune(
        tune_toy.BASE,
        load_space(tune_toy.SPACE),
        settings,
        "killed",
        tmp_path,
        trial_function=tune_toy.logged,
        report=False,
    )
    after = _finished(storage, "killed")
    assert len(after) == 6 and result.counts["complete"] == 6
    assert all(trial.params == before[trial.number] for trial in after if trial.number in before)
    ran = (tmp_path / "killed" / "ran.log").read_text().split()[::2]
    assert len(ran) == len(set(ran))  # no trial ran twice
    assert {f"trial_{trial.number:04d}" for trial in after} <= set(ran)
    assert len(ran) - len(before) == 6 - len(before)  # the resumed study ran only the missing trials


@pytest.mark.slow
def test_two_processes_complete_n_trials_between_them(tmp_path: Path) -> None:
    storage = default_storage(tmp_path / "shared")
    workers = [_toy_worker(tmp_path, "shared", 8, TOY_SECONDS="0.2", TOY_WORKERS="2") for _ in range(2)]
    try:
        for worker in workers:
            _, errors = worker.communicate(timeout=240)
            assert worker.returncode == 0, errors.decode()
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.communicate()
    assert len(_finished(storage, "shared")) == 8
    lines = [line.split() for line in (tmp_path / "shared" / "ran.log").read_text().splitlines()]
    assert len(lines) == 8 and len({name for name, _ in lines}) == 8
    assert len({pid for _, pid in lines}) == 2  # both processes ran trials


@pytest.fixture(scope="module")
def bdt_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tune_bdt")
    train = io.write(make_jets(800, seed=21), folder / "train.parquet")
    val = io.write(make_jets(400, seed=22), folder / "val.parquet")
    config = {
        "data": {
            "train": str(train),
            "val": str(val),
            "inputs": {"jet": {"variables": ["jet_sdmass", "jet_nparticles", "jet_pt"]}},
            "labels": {"classes": ["label_top", "label_qcd"]},
        },
        "model": {"name": "bdt", "n_estimators": 20, "n_jobs": 1},
        "training": {"seed": 1},
    }
    (folder / "bdt.yaml").write_text(yaml.safe_dump(config))
    (folder / "space.yaml").write_text(
        yaml.safe_dump(
            {
                "metric": "val_auc",
                "direction": "maximize",
                "parameters": {
                    "model.max_depth": {"type": "int", "low": 1, "high": 4},
                    "model.learning_rate": {"type": "float", "low": 0.05, "high": 0.5, "log": True},
                },
            }
        )
    )
    return folder / "bdt.yaml"


def test_heplearn_tune_end_to_end_on_a_bdt(
    tmp_path: Path, bdt_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    arguments = [
        "tune",
        "-c",
        str(bdt_config),
        "--space",
        str(bdt_config.parent / "space.yaml"),
        "--trials",
        "3",
        "--seed",
        "0",
        "--startup-trials",
        "2",
        "--runs-dir",
        str(tmp_path),
        "--study",
        "bdt",
        "--no-progress",
    ]
    code, out, err = run(arguments, capsys)
    assert code == 0, err
    study = tmp_path / "bdt"
    assert "best: trial" in out and "report: " in out
    trials = sorted(study.glob("trial_*"))
    assert len(trials) == 3 and all((trial / "model.json").is_file() for trial in trials)  # ordinary runs
    best = load_run_config(yaml.safe_load((study / "best_config.yaml").read_text()))
    assert best.model.name == "bdt" and 1 <= best.model.hyperparameters["max_depth"] <= 4
    rows = _rows(study / "trials.json")
    assert max(row["value"] for row in rows) == pytest.approx(float(out.split("value ")[1].split()[0]), rel=1e-5)
    assert all(0.5 < row["value"] <= 1 for row in rows)  # AUCs of a tagger that learned something
    header = (study / "trials.csv").read_text().splitlines()[0].split(",")
    assert header[:3] == ["number", "state", "value"] and {"model.max_depth", "model.learning_rate"} < set(header)
    report = (study / "report.html").read_text()
    assert report.count("data:image/png;base64,") >= 3  # history, importances, parallel coordinates
    # run again with the same study: it is complete, nothing more runs
    code, out, err = run([*arguments, "--no-report"], capsys)
    assert code == 0, err
    assert len(sorted(study.glob("trial_*"))) == 3 and "trials: 3 complete" in out


@pytest.mark.parametrize(
    "url", ["sqlite:////nonexistent/folder/study.db", "postgresql://tuner:secret@127.0.0.1:9/studies"]
)
def test_a_storage_that_cannot_be_opened_is_one_line(
    tmp_path: Path, bdt_config: Path, url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(
        [
            "tune",
            "-c",
            str(bdt_config),
            "--space",
            str(bdt_config.parent / "space.yaml"),
            "--trials",
            "2",
            "--runs-dir",
            str(tmp_path),
            "--storage",
            url,
        ],
        capsys,
    )
    assert code == 2
    assert err.count("\n") == 1 and "--storage" in err and "cannot open it" in err and "secret" not in err
    assert not any(tmp_path.iterdir())  # nothing written


def test_the_trainer_hands_each_epoch_to_on_epoch_and_stops_when_it_raises(tmp_path: Path) -> None:
    from heplearn.training.from_config import train

    folder = tmp_path / "data"
    folder.mkdir()
    files = {
        "train": str(io.write(make_jets(200, seed=5), folder / "train.parquet")),
        "val": str(io.write(make_jets(100, seed=6), folder / "val.parquet")),
    }
    config = load_run_config(
        {
            "data": {
                **files,
                "inputs": {"jet": {"variables": ["jet_sdmass", "jet_nparticles"]}},
                "labels": {"classes": ["label_top", "label_qcd"]},
            },
            "model": {"name": "mlp", "preset": "small"},
            "training": {"epochs": 2, "batch_size": 128, "seed": 0},
        }
    )
    seen: list[dict[str, Any]] = []
    result = train(config, name="all", runs_dir=tmp_path, progress=False, on_epoch=seen.append)
    assert [record["epoch"] for record in seen] == [1, 2] and seen == result.history

    class Stop(Exception):
        pass

    def stop(record: dict[str, Any]) -> None:
        raise Stop

    with pytest.raises(Stop):
        train(config, name="stopped", runs_dir=tmp_path, progress=False, on_epoch=stop)
    assert len((tmp_path / "stopped" / "metrics.jsonl").read_text().splitlines()) == 1  # the first epoch only


@pytest.mark.slow
def test_dask_workers_of_a_local_cluster_share_the_study(tmp_path: Path) -> None:
    settings = TuneSettings(
        trials=6, sampler="random", pruner="none", progress=False, heartbeat_interval=1, grace_period=2
    )
    result = tune(
        tune_toy.BASE,
        load_space(tune_toy.SPACE),
        settings,
        "dask",
        tmp_path,
        workers=2,
        trial_function=tune_toy.logged,
        report=False,
    )
    assert result.counts["complete"] == 6
    lines = [line.split() for line in (tmp_path / "dask" / "ran.log").read_text().splitlines()]
    assert len(lines) == 6 and len({name for name, _ in lines}) == 6
    assert os.getpid() not in {int(pid) for _, pid in lines}  # the trials ran in the workers' processes


def test_a_bad_space_on_the_command_line_is_one_line(
    tmp_path: Path, bdt_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump({"parameters": {"model.max_depht": {"type": "int", "low": 2, "high": 6}}}))
    code, _, err = run(
        ["tune", "-c", str(bdt_config), "--space", str(space), "--runs-dir", str(tmp_path / "runs")], capsys
    )
    assert code == 2 and err.count("\n") == 1
    assert "model.max_depht: unknown key" in err and "max_depth" in err  # names the key and the known ones
    assert not (tmp_path / "runs").exists()
