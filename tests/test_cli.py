from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from heplearn.cli import main
from tests.data.test_io import write_toptagging


def run(arguments: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        main(arguments)
        code = 0
    except SystemExit as stop:
        code = int(stop.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_help_lists_commands(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["--help"], capsys)
    assert code == 0 and "inspect" in out


@pytest.mark.parametrize("kind", ["parquet", "root", "hdf5", "rntuple"])
def test_inspect_reports_fields_counts_and_classes(
    kind: str, jet_files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(["inspect", "--json", str(jet_files[kind])], capsys)
    assert code == 0
    (summary,) = json.loads(out)
    assert summary["entries"] == 600
    types = {f["name"]: f["type"] for f in summary["fields"]}
    assert types["part_px"].startswith("var *") and not types["jet_pt"].startswith("var")
    assert summary["class_counts"]["top"] + summary["class_counts"]["qcd"] == 600
    assert summary["particles_per_jet"]["min"] >= 5
    assert summary["provenance"] == {"seed": 1}
    code, out, _ = run(["inspect", str(jet_files[kind])], capsys)
    assert code == 0 and "particles per jet: min" in out and "classes: " in out
    if kind in {"root", "rntuple"}:
        assert f"root, {'RNTuple' if kind == 'rntuple' else 'TTree'} 'tree', 600 entries" in " ".join(out.split())


def test_inspect_top_tagging_layout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "test.h5"
    frame = write_toptagging(path)
    code, out, _ = run(["inspect", "--json", str(path)], capsys)
    assert code == 0
    (summary,) = json.loads(out)
    assert summary["format"] == "toptagging" and summary["table"] == "table"
    assert summary["class_counts"]["Top"] == int(frame["is_signal_new"].sum())


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "heplearn", "inspect", str(tmp_path / "nope.root")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == f"heplearn: error: {tmp_path / 'nope.root'}: no such file"
    assert "Traceback" not in result.stderr
    debug = subprocess.run(
        [sys.executable, "-m", "heplearn", "--debug", "inspect", str(tmp_path / "nope.root")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert "Traceback" in debug.stderr
