"""The core and its extras: pyproject.toml and ``heplearn.optional.EXTRAS`` agree, importing heplearn loads no
optional package, and each feature without its package fails with the extra's ``pip install`` (one line from
the CLI, exit 2), while a package that is installed but broken is reported as such."""

from __future__ import annotations

import importlib
import logging
import re
import subprocess
import sys
import tomllib
import types
from pathlib import Path

import numpy as np
import pytest

from heplearn.cli import main
from heplearn.optional import EXTRAS, BrokenPackageError, MissingExtraError, optional_import

ROOT = Path(__file__).resolve().parents[1]
NOT_RUNTIME = {"test", "docs", "bench", "all", "cluster"}  # tools, and the batch-system plugins of a submit node


def _name(requirement: str) -> str:
    """The normalised distribution name of a requirement string (PEP 503)."""
    match = re.match(r"[A-Za-z0-9._-]+", requirement.strip())
    assert match, requirement
    return re.sub(r"[-_.]+", "-", match.group()).lower()


def _self_extras(requirements: list[str]) -> set[str]:
    """The extras of ``heplearn[...]`` entries (an extra that includes others)."""
    found: set[str] = set()
    for requirement in requirements:
        if match := re.fullmatch(r"heplearn\[([^\]]+)\]", requirement.strip()):
            found |= {extra.strip() for extra in match.group(1).split(",")}
    return found


@pytest.fixture(scope="module")
def project() -> dict[str, object]:
    with (ROOT / "pyproject.toml").open("rb") as file:
        return tomllib.load(file)["project"]


def test_every_optional_package_is_in_its_extra_and_not_in_the_core(project: dict[str, object]) -> None:
    extras: dict[str, list[str]] = project["optional-dependencies"]  # type: ignore[assignment]
    core = {_name(requirement) for requirement in project["dependencies"]}  # type: ignore[attr-defined]
    for extra, packages in EXTRAS.items():
        assert extra in extras, f"heplearn.optional names extra {extra!r}, which pyproject.toml lacks"
        listed = {_name(requirement) for requirement in extras[extra]}
        for distribution in packages.values():
            assert _name(distribution) in listed, (extra, distribution)
            assert _name(distribution) not in core, f"{distribution} is optional ({extra}) but in the core"
    # the packages the issue found mandatory are all out of the core
    assert not core & {
        "xgboost",
        "fastjet",
        "pythia8mc",
        "dask",
        "tensorboard",
        "onnx",
        "onnxruntime",
        "onnxscript",
        "onnxmltools",
        "fastapi",
        "uvicorn",
        "optuna",
        "snakemake",
        "tritonclient",
        "zuko",
        "hls4ml",
    }


def test_all_covers_every_runtime_extra_and_the_tests_and_make_install_everything(project: dict[str, object]) -> None:
    extras: dict[str, list[str]] = project["optional-dependencies"]  # type: ignore[assignment]
    runtime = set(extras) - NOT_RUNTIME
    assert _self_extras(extras["all"]) == runtime
    assert set(EXTRAS) <= runtime
    assert "all" in _self_extras(extras["test"])
    assert '-e ".[all,test]"' in (ROOT / "Makefile").read_text()


def test_importing_heplearn_and_the_cli_loads_no_optional_package() -> None:
    optional = sorted({name for packages in EXTRAS.values() for name in packages} | {"starlette", "torch.onnx"})
    code = f"import sys, heplearn, heplearn.cli\nprint(sorted(m for m in {optional!r} if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"


# -- a missing package: the library's error, then the command line's -----------------------------------------


def hide(monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
    """Make ``import name`` fail as if the package were not installed."""
    for name in names:
        monkeypatch.setitem(sys.modules, name, None)


def test_the_bdt_names_the_bdt_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from heplearn.models import registry
    from heplearn.models.bdt import BoostedDecisionTrees

    hide(monkeypatch, "xgboost")
    assert "n_estimators" in registry.hyperparameter_names("bdt")  # a BDT config still validates
    X, y = np.random.default_rng(0).normal(size=(40, 2)), np.arange(40) % 2
    with pytest.raises(
        MissingExtraError,
        match=r"the BDT \(model: bdt\) needs xgboost, which is not installed: "
        r"pip install 'heplearn\[bdt\]'$",
    ):
        BoostedDecisionTrees(n_estimators=2).fit(X, y)
    with pytest.raises(MissingExtraError, match=r"the BDT \(model: bdt\) needs xgboost.*heplearn\[bdt\]"):
        registry.check_installed("bdt")
    registry.check_installed("likelihood")  # the core's models need nothing


def test_the_demo_leaves_out_the_bdt_without_xgboost(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from heplearn.demo import DEMO_MODELS, available_models

    hide(monkeypatch, "xgboost")
    with caplog.at_level(logging.WARNING, logger="heplearn.demo"):
        assert available_models() == [name for name in DEMO_MODELS if name != "bdt"]
    assert "pip install 'heplearn[bdt]'" in caplog.text


def test_generation_names_the_generate_and_dask_extras_before_writing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from heplearn.generate.driver import generate

    with monkeypatch.context() as patch:
        hide(patch, "pythia8mc")
        with pytest.raises(MissingExtraError, match=r"needs pythia8mc.*pip install 'heplearn\[generate\]'"):
            generate(["top"], 10, tmp_path / "out", progress=False)
    hide(monkeypatch, "distributed")
    with pytest.raises(MissingExtraError, match=r"several workers.*needs distributed.*'heplearn\[dask\]'"):
        generate(["top"], 10, tmp_path / "out", workers=2, progress=False)
    assert not (tmp_path / "out").exists()


def test_fastjet_names_the_generate_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "heplearn.generate._fastjet", raising=False)
    hide(monkeypatch, "fastjet")
    with pytest.raises(MissingExtraError, match=r"needs fastjet.*'heplearn\[generate\]'"):
        importlib.import_module("heplearn.generate._fastjet")


@pytest.mark.parametrize("package", ["onnx", "onnxruntime"])
def test_export_names_the_export_extra_before_reading_the_run(
    package: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from heplearn.serving.export import export_run

    hide(monkeypatch, package)
    with pytest.raises(MissingExtraError, match=rf"needs {package}, .*pip install 'heplearn\[export\]'"):
        export_run(tmp_path / "no-such-run")


def test_the_network_exporter_needs_onnxscript_and_the_bdt_exporter_onnxmltools(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import torch

    from heplearn.serving.export import _write_classical, export_network

    hide(monkeypatch, "onnxscript", "onnxmltools")
    with pytest.raises(MissingExtraError, match=r"needs onnxscript.*'heplearn\[export\]'"):  # not an ExportError
        export_network(torch.nn.Linear(2, 1), [torch.zeros(3, 2)], ["x"], "y", tmp_path / "m.onnx", [{0: "batch"}])
    with pytest.raises(MissingExtraError, match=r"exporting the BDT to ONNX \(model bdt\) needs onnxmltools"):
        _write_classical(types.SimpleNamespace(name="bdt"), tmp_path / "bdt.onnx")  # type: ignore[arg-type]


def test_the_server_and_grpc_name_their_extras(monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as patch:
        patch.delitem(sys.modules, "heplearn.serving.server", raising=False)
        hide(patch, "fastapi")
        with pytest.raises(MissingExtraError, match=r"inference server.*needs fastapi.*'heplearn\[serve\]'"):
            importlib.import_module("heplearn.serving.server")
    monkeypatch.delitem(sys.modules, "heplearn.serving.grpc_service", raising=False)
    hide(monkeypatch, "grpc")
    with pytest.raises(MissingExtraError, match=r"gRPC.*needs grpc, which is not installed.*'heplearn\[grpc\]'"):
        importlib.import_module("heplearn.serving.grpc_service")


def test_tune_flows_and_hls4ml_name_their_extras(monkeypatch: pytest.MonkeyPatch) -> None:
    from heplearn.methods.cathode import ConditionalFlow
    from heplearn.methods.trigger_emulation import emulate_latent_score
    from heplearn.training.tune import check_packages

    hide(monkeypatch, "optuna", "zuko", "hls4ml")
    with pytest.raises(MissingExtraError, match=r"heplearn tune .* needs optuna.*'heplearn\[tune\]'"):
        check_packages()
    with pytest.raises(MissingExtraError, match=r"CATHODE.*needs zuko.*'heplearn\[flows\]'"):
        ConditionalFlow(2)
    with pytest.raises(MissingExtraError, match=r"needs hls4ml.*'heplearn\[hls4ml\]'"):
        emulate_latent_score(None, np.zeros((1, 2)), "unused")  # type: ignore[arg-type]


def test_training_goes_on_without_tensorboard_and_says_so_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from heplearn.training import trainer

    trainer._log_once.cache_clear()
    hide(monkeypatch, "tensorboard", "torch.utils.tensorboard")
    with caplog.at_level(logging.INFO, logger="heplearn.training.trainer"):
        assert trainer.tensorboard_writer(tmp_path / "tb") is None
        assert trainer.tensorboard_writer(tmp_path / "tb") is None
    notes = [record for record in caplog.records if "TensorBoard logging is off" in record.getMessage()]
    assert len(notes) == 1 and notes[0].levelno == logging.INFO
    assert "pip install 'heplearn[tensorboard]'" in notes[0].getMessage()
    assert not (tmp_path / "tb").exists()


def run(arguments: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as stopped:
        main(arguments)
    return int(stopped.value.code or 0), capsys.readouterr().err


@pytest.mark.parametrize(
    ("hidden", "command", "extra"),
    [
        ("pythia8mc", ["generate", "top", "--jets", "10", "-o", "{tmp}/out", "--no-progress"], "generate"),
        ("distributed", ["generate", "top", "--jets", "10", "-o", "{tmp}/out", "--workers", "2"], "dask"),
        ("onnx", ["export", "{tmp}/run"], "export"),
        ("fastapi", ["serve", "{tmp}/run"], "serve"),
        ("uvicorn", ["serve", "{tmp}/run"], "serve"),
        ("distributed", ["predict", "{tmp}/run", "{tmp}/jets.parquet", "-o", "{tmp}/out", "--workers", "2"], "dask"),
        ("optuna", ["tune", "-c", "{tmp}/run.yaml", "--space", "{tmp}/space.yaml"], "tune"),
    ],
)
def test_the_cli_says_which_extra_in_one_line(
    hidden: str,
    command: list[str],
    extra: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    hide(monkeypatch, hidden)
    code, err = run([part.format(tmp=tmp_path) for part in command], capsys)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("heplearn: error: ")
    assert f"needs {hidden}, which is not installed: pip install 'heplearn[{extra}]'" in err
    assert not (tmp_path / "out").exists()


def test_training_a_bdt_without_xgboost_is_one_line_and_leaves_no_run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import yaml

    from heplearn.data import io
    from tests.conftest import make_jets
    from tests.serving.conftest import run_config

    jets = str(io.write(make_jets(60, seed=3), tmp_path / "jets.parquet"))
    config = tmp_path / "bdt.yaml"
    config.write_text(yaml.safe_dump(run_config({"train": [jets], "val": [jets]}, {"name": "bdt", "n_estimators": 2})))
    hide(monkeypatch, "xgboost")
    code, err = run(
        ["train", "-c", str(config), "--name", "bdt", "--runs-dir", str(tmp_path / "runs"), "--no-progress"], capsys
    )
    assert code == 2 and err.count("\n") == 1
    assert err.strip() == (
        "heplearn: error: the BDT (model: bdt) needs xgboost, which is not installed: pip install 'heplearn[bdt]'"
    )
    assert not (tmp_path / "runs" / "bdt").exists()


CORE_ONLY = """
import sys
hidden = {hidden!r}
for name in hidden:
    sys.modules[name] = None  # as if `pip install heplearn` had installed the core only
import yaml
from heplearn.cli import main
from heplearn.data import io
from tests.conftest import make_jets
from tests.serving.conftest import run_config
tmp = {tmp!r}
jets = str(io.write(make_jets(200, seed=3), tmp + "/jets.parquet"))
config = run_config({{"train": [jets], "val": [jets]}}, {{"name": "mlp", "preset": "small"}})
open(tmp + "/mlp.yaml", "w").write(yaml.safe_dump(config))
for command in (["train", "-c", tmp + "/mlp.yaml", "--name", "mlp", "--runs-dir", tmp + "/runs", "--no-progress"],
                ["evaluate", tmp + "/runs/mlp", "--data", jets],
                ["predict", tmp + "/runs/mlp", jets, "-o", tmp + "/scores", "--engine", "torch", "--no-progress"],
                ["export", tmp + "/runs/mlp"]):
    try:
        main(command)
    except SystemExit as stop:
        print(command[0], "exit", stop.code)
print("loaded", sorted(name for name in hidden if sys.modules.get(name) is not None))
"""


@pytest.mark.slow  # the CI budget: the per-package tests above cover each missing extra in CI
def test_the_core_alone_trains_evaluates_and_predicts(tmp_path: Path) -> None:
    """The core's promise: with every optional package absent, a network trains (TensorBoard off, said once),
    is evaluated and applied to files; export, which needs an extra, says which."""
    hidden = sorted({name for packages in EXTRAS.values() for name in packages} | {"starlette"})
    done = subprocess.run(
        [sys.executable, "-c", CORE_ONLY.format(hidden=hidden, tmp=str(tmp_path))],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    exits = [line for line in done.stdout.splitlines() if " exit " in line or line.startswith("loaded ")]
    assert exits == ["export exit 2", "loaded []"], done.stdout + done.stderr
    assert done.stderr.count("TensorBoard logging is off") == 1
    assert (
        "heplearn: error: ONNX export (heplearn export) needs onnx, which is not installed: "
        "pip install 'heplearn[export]'" in done.stderr
    )
    assert (tmp_path / "runs" / "mlp" / "eval").is_dir() and (tmp_path / "scores" / "jets.scores.parquet").is_file()
    assert not (tmp_path / "runs" / "mlp" / "tensorboard").exists()


# -- a package that is there but whose import fails: said as it is -------------------------------------------


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("raise ImportError('libxgboost.so: cannot open shared object file')", "libxgboost.so: cannot open"),
        ("import a_dependency_that_is_gone", "No module named 'a_dependency_that_is_gone'"),
    ],
)
def test_a_broken_package_is_not_called_missing(
    body: str, reason: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from heplearn.models.bdt import BoostedDecisionTrees

    (tmp_path / "xgboost").mkdir()
    (tmp_path / "xgboost" / "__init__.py").write_text(body + "\n")
    monkeypatch.delitem(sys.modules, "xgboost", raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(BrokenPackageError) as raised:
        optional_import("xgboost", "the BDT (model: bdt)")
    message = str(raised.value)
    assert "xgboost, which is installed but failed to import" in message and reason in message
    assert "not installed" not in message
    assert isinstance(raised.value.__cause__, ImportError)
    X, y = np.random.default_rng(0).normal(size=(40, 2)), np.arange(40) % 2
    with pytest.raises(BrokenPackageError, match="installed but failed to import"):
        BoostedDecisionTrees(n_estimators=2).fit(X, y)


def test_a_broken_package_is_one_line_on_the_command_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "optuna").mkdir()
    (tmp_path / "optuna" / "__init__.py").write_text("raise ImportError('sqlalchemy is too old\\nfor optuna')\n")
    monkeypatch.delitem(sys.modules, "optuna", raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    code, err = run(["tune", "-c", str(tmp_path / "run.yaml"), "--space", str(tmp_path / "space.yaml")], capsys)
    assert code == 2 and err.count("\n") == 1
    assert "optuna, which is installed but failed to import (ImportError: sqlalchemy is too old for optuna)" in err
