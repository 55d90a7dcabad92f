"""``export``, ``predict`` and ``serve`` as typer commands (registered on a tiny app, as the lead does)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import typer
from typer.testing import CliRunner

from heplearn.errors import HeplearnError
from heplearn.serving.cli import export_command, predict_command, serve_command
from heplearn.serving.export import ExportResult


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    application = typer.Typer()
    application.command("export")(export_command)
    application.command("predict")(predict_command)
    application.command("serve")(serve_command)
    return application


def test_export_and_predict_commands(
    app: typer.Typer, mlp_export: ExportResult, split_files: dict[str, str], tmp_path: Path
) -> None:
    run = tmp_path / "mlp"
    shutil.copytree(mlp_export.onnx_path.parent, run)
    (run / "model.onnx").unlink()
    runner = CliRunner()
    exported = runner.invoke(
        app,
        [
            "export",
            str(run),
            "--triton-repository",
            str(tmp_path / "repo"),
            "--name",
            "tagger",
            "--check-files",
            split_files["val"],
        ],
    )
    assert exported.exit_code == 0, exported.output
    assert "onnxruntime agrees with PyTorch" in exported.output and "jets" in exported.output
    assert "faster engine on this machine: 1 jets:" in exported.output  # timed and recorded (issue 23)
    assert (run / "model.onnx").is_file() and (tmp_path / "repo" / "tagger" / "config.pbtxt").is_file()
    predicted = runner.invoke(
        app, ["predict", str(run), split_files["test"], "-o", str(tmp_path / "out"), "--no-progress"]
    )
    assert predicted.exit_code == 0, predicted.output
    output = tmp_path / "out" / "test.scores.parquet"
    assert str(output) in predicted.output
    assert pq.read_table(output).column_names[:2] == ["score_top", "score_qcd"]
    torch_run = runner.invoke(
        app,
        [
            "predict",
            str(run),
            split_files["test"],
            "-o",
            str(tmp_path / "torch"),
            "--engine",
            "torch",
            "--format",
            "root",
            "--no-progress",
        ],
    )
    assert torch_run.exit_code == 0, torch_run.output
    assert (tmp_path / "torch" / "test.scores.root").is_file()


def test_commands_raise_heplearn_errors_for_the_cli_to_print(app: typer.Typer, cuts_run: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["export", str(cuts_run)])
    assert isinstance(result.exception, HeplearnError) and "not exportable" in str(result.exception)
    result = runner.invoke(
        app, ["predict", str(cuts_run), str(tmp_path / "x.parquet"), "-o", str(tmp_path), "--engine", "tensorflow"]
    )
    assert isinstance(result.exception, HeplearnError) and "choose one of auto, onnx, torch" in str(result.exception)
    result = runner.invoke(app, ["serve", str(tmp_path)])
    assert isinstance(result.exception, HeplearnError) and "no model found" in str(result.exception)
    help_text = runner.invoke(app, ["serve", "--help"]).output
    assert "127.0.0.1" in help_text and "--max-batch-size" in help_text and "--engine" in help_text
