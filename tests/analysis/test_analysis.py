"""``heplearn analysis``: the config, the keyed stages, Snakemake's view of them, and the tiny analysis end to end.

The fast tests mark stages done by writing their records (what the rules write last) and ask
Snakemake for a dry run. One test runs the tiny analysis of ``tests.analysis.synthetic`` (synthetic
jets, cuts and a BDT) for real: killed with ``kill -9`` in the middle, resumed through a stand-in
batch system, then rerun with nothing to do. The slow ones rerun a changed branch for real and run
the generated tiny config.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from heplearn.analysis.config import load_analysis_config
from heplearn.analysis.engine import DONE, INCOMPLETE, STALE, AnalysisError, resolve_profile, run_analysis, stage_states
from heplearn.analysis.plan import REPORT, Plan, make_plan
from heplearn.cli import main
from heplearn.errors import ConfigError
from tests.analysis.synthetic import TRUE_FRACTION, write_analysis, write_batch_profile

BDT_BRANCH = ["train_bdt", "evaluate_bdt", "export_bdt", "predict_bdt", "fit_bdt"]
CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.fixture(scope="module")
def analysis_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_analysis(tmp_path_factory.mktemp("analysis"))


def _plan(path: Path) -> Plan:
    return make_plan(load_analysis_config(path), path)


def _mark_done(plan: Plan) -> None:
    """What a finished run leaves: each stage's record in its keyed folder (in order), then the report."""
    for stage in plan.stages:
        marker = plan.output / stage.marker
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps(stage.record()))


def _edit(path: Path, change: dict, target: Path | None = None) -> Path:
    content = yaml.safe_load(path.read_text())
    for dotted, value in change.items():
        node = content
        *parents, last = dotted.split(".")
        for part in parents:
            node = node[part]
        node[last] = value
    target = target or path
    target.write_text(yaml.safe_dump(content, sort_keys=False))
    return target


def _more_trees(path: Path) -> Path:
    """The analysis beside ``path`` with 30 trees in the BDT instead of 20."""
    return _edit(path, {"models.bdt.set": {"model.n_estimators": 30}}, path.parent / "changed.yaml")


def test_a_typo_names_its_key(analysis_file: Path, tmp_path: Path) -> None:
    content = yaml.safe_load(analysis_file.read_text())
    content["models"]["bdt"]["confg"] = "bdt.yaml"
    bad = analysis_file.parent / "typo.yaml"
    bad.write_text(yaml.safe_dump(content))
    with pytest.raises(ConfigError, match=r"models\.bdt\.confg: unknown key"):
        load_analysis_config(bad)
    _edit(analysis_file, {"fit.templates": "training"}, bad)
    with pytest.raises(ConfigError, match=r"fit\.templates: sample 'training' has a split"):
        load_analysis_config(bad)
    _edit(analysis_file, {"models.bdt.set": {"training.epoch": 1}}, bad)
    with pytest.raises(ConfigError, match=r"models\.bdt: training\.epoch: unknown key"):
        _plan(bad)


def test_samples_with_the_same_jets_are_refused(tmp_path: Path) -> None:
    config = yaml.safe_load((CONFIGS / "analysis_top_fraction.yaml").read_text())
    config["pseudo_data"]["seed"] = config["samples"]["templates"]["seed"]
    path = tmp_path / "same.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(
        ConfigError,
        match=r"same\.yaml: pseudo_data: its (top|qcd) jets would be those of "
        r"samples\.templates",
    ):
        load_analysis_config(path)


def test_the_example_plans_every_stage_with_the_two_sided_fsr() -> None:
    plan = _plan(CONFIGS / "analysis_top_fraction.yaml")
    names = [stage.name for stage in plan.stages]
    assert names[:9] == [
        "generate_training",
        "generate_templates_top",
        "generate_templates_qcd",
        "generate_fsr_up_top",
        "generate_fsr_up_qcd",
        "generate_fsr_down_top",
        "generate_fsr_down_qcd",
        "generate_pseudo_data_top",
        "generate_pseudo_data_qcd",
    ]
    assert {
        f"{kind}_{model}" for kind in ("train", "evaluate", "predict", "fit") for model in ("cuts", "bdt", "part")
    } <= set(names)
    assert "export_cuts" not in names and "export_part" in names  # the cuts are scored by the torch engine
    pseudo = [plan.stage(f"generate_pseudo_data_{p}").settings["jets"] for p in ("top", "qcd")]
    assert pseudo == [240, 1360]  # 15% of 1600
    fit = plan.stage("fit_part").commands[0]
    assert fit[fit.index("--systematic") + 1].startswith("fsr=scores/part-")
    assert "fsr_down_top.scores.parquet" in fit[fit.index("--systematic-down") + 1]


def test_changing_one_model_changes_only_its_branch(analysis_file: Path) -> None:
    before = _plan(analysis_file)
    changed_file = _more_trees(analysis_file)
    after = _plan(changed_file)
    differ = [s.name for s in before.stages if s.key != after.stage(s.name).key]
    assert differ == BDT_BRANCH
    assert before.stage("train_cuts").folder == after.stage("train_cuts").folder


@pytest.mark.timeout(300)
def test_snakemake_runs_nothing_when_done_and_only_the_changed_branch(analysis_file: Path) -> None:
    plan = _plan(analysis_file)
    _mark_done(plan)
    assert {state.state for state in stage_states(plan)} == {DONE}
    assert run_analysis(plan, cores=1, dry_run=True).scheduled == []

    changed = _plan(_more_trees(analysis_file))
    states = {state.stage.name: state for state in stage_states(changed)}
    assert states["train_bdt"].state == STALE
    assert states["train_bdt"].reason == "settings changed: run_config.model.n_estimators: 20 → 30"
    assert states["evaluate_bdt"].reason == "input changed: train_bdt"
    assert states["fit_bdt"].reason == "input changed: predict_bdt"
    assert all(states[name].state == DONE for name in states if not name.endswith("_bdt"))
    assert sorted(run_analysis(changed, cores=1, dry_run=True).scheduled) == sorted(BDT_BRANCH)


def test_status_command(analysis_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["analysis", "status", "-c", str(analysis_file)])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(_plan(analysis_file).stages)
    assert all(line.split()[1] in {"done", "new", "stale", "incomplete"} for line in lines)


def test_a_missing_model_config_ends_with_one_line(
    analysis_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = _edit(analysis_file, {"models.bdt.config": "nowhere.yaml"}, analysis_file.parent / "missing.yaml")
    with pytest.raises(SystemExit) as exit_info:
        main(["analysis", "status", "-c", str(bad)])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert "models.bdt.config" in error and "nowhere.yaml: no such run config" in error and error.count("\n") == 1


def _check_results(plan: Plan) -> None:
    """The hidden fraction recovered by both taggers, and the report with the result first."""
    results = json.loads((plan.output / "results.json").read_text())
    assert results["true_fraction"] == pytest.approx(TRUE_FRACTION, abs=1e-3)
    assert {t["model"] for t in results["taggers"]} == {"cuts", "bdt"}
    for tagger in results["taggers"]:
        # σ ≈ 0.03 for 1200 jets: the check has teeth, and the fit must land within 2σ of the truth
        assert tagger["uncertainty"] < 0.05
        assert abs(tagger["fraction"] - TRUE_FRACTION) < 2 * tagger["uncertainty"], tagger
    report = (plan.output / REPORT).read_text()
    assert report.index('<h2 id="result">') < report.index('<h2 id="stages">')
    assert all(f'href="{stage.report}"' in report for stage in plan.stages if stage.report)


def _markers(plan: Plan) -> dict[str, int]:
    """The finished stages and when their markers were written."""
    return {
        stage.name: (plan.output / stage.marker).stat().st_mtime_ns
        for stage in plan.stages
        if (plan.output / stage.marker).is_file()
    }


def _kill_and_resume(tmp_path: Path, capsys: pytest.CaptureFixture[str], resume: list[str]) -> None:
    """``kill -9`` in the middle of a run; the next run (``resume``: its options) removes the dead run's lock,
    keeps what finished, redoes what did not, recovers the hidden fraction; a third run does nothing."""
    path = write_analysis(tmp_path / "work")
    plan = _plan(path)
    command = [sys.executable, "-m", "heplearn", "analysis", "run", "-c", str(path), "--cores", "2"]
    with subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    ) as killed:
        deadline = time.monotonic() + 300
        while not (plan.output / plan.stage("train_cuts").marker).is_file():
            assert killed.poll() is None and time.monotonic() < deadline, "the run ended before it was killed"
            time.sleep(0.1)
        os.killpg(killed.pid, signal.SIGKILL)  # the run, Snakemake and the stage jobs it started
    before = _markers(plan)
    assert "train_cuts" in before and "fit_cuts" not in before
    assert any((plan.output / ".snakemake" / "locks").iterdir())  # what kill -9 leaves
    capsys.readouterr()

    main(["analysis", "run", "-c", str(path), *resume])
    out, err = capsys.readouterr()
    assert "was killed; removing its lock and resuming" in err
    finished = _markers(plan)
    assert set(finished) == {stage.name for stage in plan.stages}
    assert {name: finished[name] for name in before} == before  # what had finished was not redone
    assert f"{len(plan.stages) - len(before)} stage(s) run, {len(before)} reused" in out
    _check_results(plan)

    main(["analysis", "run", "-c", str(path)])
    assert "0 stage(s) run" in capsys.readouterr().out
    assert _markers(plan) == finished


@pytest.mark.timeout(600)
def test_a_killed_run_resumes_and_a_rerun_does_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _kill_and_resume(tmp_path, capsys, ["--cores", "2"])


@pytest.mark.slow  # the same through a stand-in batch system: every stage a cluster job (the CI budget)
@pytest.mark.timeout(900)
def test_a_killed_run_resumes_on_a_batch_system(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _kill_and_resume(tmp_path, capsys, ["--profile", str(write_batch_profile(tmp_path / "batch"))])


def test_a_live_run_is_not_unlocked(analysis_file: Path, tmp_path: Path) -> None:
    """A lock held by a process that is alive (this test) is refused with its process id."""
    plan = _plan(_edit(analysis_file, {"output": str(tmp_path / "out")}, analysis_file.parent / "live.yaml"))
    locks = plan.output / ".snakemake" / "locks"
    locks.mkdir(parents=True)
    (locks / "0.input.lock").write_text("")
    (plan.output / "run.json").write_text(json.dumps({"pid": os.getpid(), "host": os.uname().nodename}))
    with pytest.raises(AnalysisError, match=rf"locked by a running analysis \(process {os.getpid()} on "):
        run_analysis(plan, cores=1)


def test_profiles_resolve_to_the_users_then_heplearns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    shipped = Path(resolve_profile("htcondor"))
    assert (shipped / "config.yaml").is_file() and yaml.safe_load((shipped / "config.yaml").read_text())[
        "executor"
    ] == "htcondor"
    assert yaml.safe_load((Path(resolve_profile("slurm")) / "config.yaml").read_text())["executor"] == "slurm"
    (tmp_path / "snakemake" / "htcondor").mkdir(parents=True)
    assert resolve_profile("htcondor") == "htcondor"  # the user's own, found by Snakemake
    assert resolve_profile(str(tmp_path)) == str(tmp_path)
    with pytest.raises(AnalysisError, match=r"--profile lsf: no such folder.*heplearn ships only: htcondor, slurm"):
        resolve_profile("lsf")


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_the_tiny_analysis_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Recovers the hidden fraction; a rerun does nothing; a changed BDT reruns its branch only."""
    path = write_analysis(tmp_path)
    main(["analysis", "run", "-c", str(path), "--cores", "2"])
    plan = _plan(path)
    _check_results(plan)
    capsys.readouterr()

    markers = {stage.name: (plan.output / stage.marker).stat().st_mtime_ns for stage in plan.stages}
    time.sleep(0.01)
    main(["analysis", "run", "-c", str(path)])
    assert "0 stage(s) run" in capsys.readouterr().out
    assert markers == {stage.name: (plan.output / stage.marker).stat().st_mtime_ns for stage in plan.stages}

    _edit(path, {"models.bdt.set": {"model.n_estimators": 30}})
    summary = run_analysis(_plan(path), cores=2)
    assert sorted(summary.scheduled) == sorted(BDT_BRANCH)
    results = json.loads((plan.output / "results.json").read_text())
    # the report shows the new fit
    assert {stage["name"]: stage["key"] for stage in results["stages"]}["fit_bdt"] == _plan(path).stage("fit_bdt").key

    _edit(path, {"models.bdt.set": {"model.n_estimators": 20}})  # back: its folders are there, nothing runs
    assert run_analysis(_plan(path), cores=2).scheduled == []


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_the_generated_tiny_analysis(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The tiny config generates its jets with Pythia and fits the top fraction it hid in the pseudo-data."""
    monkeypatch.chdir(tmp_path)
    main(["analysis", "run", "-c", str(CONFIGS / "analysis_top_fraction_tiny.yaml"), "--cores", "2"])
    results = json.loads((tmp_path / "analysis" / "top_fraction_tiny" / "results.json").read_text())
    assert len(results["taggers"]) == 2
    for tagger in results["taggers"]:
        assert abs(tagger["fraction"] - results["true_fraction"]) < 2 * tagger["uncertainty"], tagger


def test_a_stage_that_started_and_did_not_finish_is_incomplete(analysis_file: Path, tmp_path: Path) -> None:
    plan = _plan(_edit(analysis_file, {"output": str(tmp_path / "out")}, analysis_file.parent / "killed.yaml"))
    _mark_done(plan)
    train = plan.stage("train_bdt")
    (plan.output / train.marker).unlink()  # what a killed run leaves: the log, no marker
    (plan.output / train.folder / "log.txt").write_text("killed")
    states = {state.stage.name: state for state in stage_states(plan)}
    assert states["train_bdt"].state == INCOMPLETE
    assert states["train_bdt"].reason.startswith(f"started but did not finish (see {train.folder}/log.txt)")
    assert states["train_cuts"].state == DONE


def test_without_snakemake_the_run_names_the_extra(
    analysis_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import heplearn.optional

    real = heplearn.optional.is_installed
    monkeypatch.setattr(heplearn.optional, "is_installed", lambda package: package != "snakemake" and real(package))
    with pytest.raises(SystemExit) as exit_info:
        main(["analysis", "run", "-c", str(analysis_file), "--dry-run"])
    assert exit_info.value.code == 2
    assert "pip install 'heplearn[analysis]'" in capsys.readouterr().err
