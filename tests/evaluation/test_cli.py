"""``heplearn evaluate`` and ``heplearn compare`` through typer, on a tiny app of their own."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from heplearn.errors import DataError, HeplearnError
from heplearn.evaluation.cli import compare_command, evaluate_command

app = typer.Typer()
app.command("evaluate")(evaluate_command)
app.command("compare")(compare_command)
runner = CliRunner()


def test_evaluate_command(tagging_runs: dict[str, Path], tagging_files: dict[str, str], tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "evaluate",
            str(tagging_runs["bdt"]),
            "--data",
            tagging_files["test"],
            "--train-data",
            tagging_files["train"],
            "--name",
            "my test",
            "-o",
            str(tmp_path / "out"),
            "--label",
            "heplearn Private Work",
            "--no-importance",
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "AUC 0." in result.output and f"report: {tmp_path / 'out' / 'report.html'}" in result.output
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["dataset"] == "my_test" and metrics["overtraining"] is not None
    assert metrics["feature_importance"] is None
    assert (tmp_path / "out" / "plots" / "roc.pdf").is_file()


def test_compare_command(tagging_runs: dict[str, Path], tagging_files: dict[str, str], tmp_path: Path) -> None:
    test_glob = str(Path(tagging_files["test"]).parent / "tes*.parquet")  # a glob pattern works too
    result = runner.invoke(
        app,
        [
            "compare",
            str(tagging_runs["bdt"]),
            str(tagging_runs["pfn"]),
            "--data",
            test_glob,
            "-o",
            str(tmp_path),
            "--background-uncertainty",
            "0.1",
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "bdt: AUC" in result.output and "pfn: AUC" in result.output
    assert (tmp_path / "report.html").is_file()


@pytest.mark.parametrize("case", ["missing run", "missing data"])
def test_bad_input_raises_a_heplearn_error(
    case: str, tagging_runs: dict[str, Path], tagging_files: dict[str, str], tmp_path: Path
) -> None:
    run = str(tmp_path / "no-run") if case == "missing run" else str(tagging_runs["bdt"])
    data = tagging_files["test"] if case == "missing run" else str(tmp_path / "missing.parquet")
    for arguments in (["evaluate", run, "--data", data], ["compare", run, "--data", data, "-o", str(tmp_path)]):
        result = runner.invoke(app, arguments)
        assert result.exit_code != 0
        assert isinstance(result.exception, DataError), result.exception  # the CLI prints it on one line
        assert isinstance(result.exception, HeplearnError)
    assert not (tmp_path / "report.html").exists()
