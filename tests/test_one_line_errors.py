"""Bad input ends any command with exactly one line on stderr, exit 2, naming what to fix (issue 15, item 7).

Before: a truncated ROOT file gave three lines of raw uproot text, a YAML syntax error eight lines
of PyYAML (with ``"<unicode string>"``), an expression outside its signature a traceback, and a
NaN in ``part_px`` was reported as one in ``part_logpt`` for "entries 0-400".
"""

from __future__ import annotations

import warnings
from pathlib import Path

import awkward as ak
import pytest

from heplearn.data import io
from heplearn.errors import DataError, HeplearnError
from tests.conftest import make_jets
from tests.test_cli import run


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("one-line")
    jets = make_jets(200, seed=3)
    found = {"parquet": io.write(jets, folder / "a.parquet"), "root": io.write(jets, folder / "a.root")}
    data = io.write(make_jets(400, seed=1), folder / "big.root").read_bytes()
    (folder / "truncated.root").write_bytes(data[: len(data) // 2])
    found["truncated"] = folder / "truncated.root"
    px = ak.to_list(jets.part_px)
    px[7][1] = float("nan")
    found["nan"] = io.write(ak.with_field(jets, ak.Array(px), "part_px"), folder / "nan.parquet")
    return found


def _config(folder: Path, train: Path, **data: object) -> Path:
    import yaml

    config = {
        "data": {
            "train": [str(train)],
            "val": [str(train)],
            "inputs": {"particles": {"length": 16, "variables": ["part_deta", "part_dphi", "part_logpt"]}},
            "labels": {"classes": ["label_top", "label_qcd"]},
            **data,
        },
        "model": {"name": "pfn", "preset": "small"},
        "training": {"epochs": 1, "batch_size": 64, "seed": 1},
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _one_line(code: int, err: str) -> str:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("heplearn: error: "), err
    return lines[0]


def test_a_truncated_root_file(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["inspect", str(files["truncated"])], capsys)
    line = _one_line(code, err)
    assert "truncated.root" in line and "truncated or corrupt" in line


def test_a_yaml_syntax_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("data:\n  train: [a\n  x: 1\n")
    code, _, err = run(["train", "--config", str(bad), "--runs-dir", str(tmp_path / "runs")], capsys)
    line = _one_line(code, err)
    assert "bad.yaml: not valid YAML: line 3, column 4: expected ',' or ']'" in line and "<unicode" not in line


@pytest.mark.parametrize(
    ("selection", "message"),
    [
        ("hypot(jet_pt) > 1", "'hypot' takes 2 arguments"),
        ("sqrt(jet_pt, out=jet_pt) > 1", "the keyword 'out' of 'sqrt'"),
        ("ak.num(jet_pt) > 1", "AxisError"),
    ],
)
def test_an_expression_outside_its_signature(
    files: dict[str, Path], tmp_path: Path, selection: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path, files["parquet"], selection=selection)
    code, _, err = run(
        ["train", "--config", str(config), "--runs-dir", str(tmp_path / "runs"), "--no-progress"], capsys
    )
    line = _one_line(code, err)
    assert message in line and "data.selection" in line


def test_a_nan_names_the_files_field_and_entry_without_warnings(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path, files["nan"])
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a numpy warning would be a second line
        code, _, err = run(
            ["train", "--config", str(config), "--runs-dir", str(tmp_path / "runs"), "--no-progress"], capsys
        )
    line = _one_line(code, err)
    assert "1 NaN or infinite values in 'part_logpt'" in line
    assert "first in the file's field 'part_px' at entry 7" in line


def test_every_heplearn_error_is_one_line() -> None:
    error = DataError("x.root: cannot read: OSError: expected Chunk of length 19,\nreceived 0 bytes\n\n  for file")
    assert str(error) == "x.root: cannot read: OSError: expected Chunk of length 19, received 0 bytes for file"
    assert isinstance(error, HeplearnError)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["train", "--no-such-option"], "No such option: --no-such-option"),  # raised by typer's bundled click
        (["train"], "give --config FILE"),  # typer.BadParameter from inside a command
        (["decorrelate", "-c", "x.yaml", "--observer", "jet_sdmass", "--lambdas", "1,a"], "--lambdas"),
    ],
)
def test_usage_errors_are_a_usage_message_and_exit_2(
    arguments: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(arguments, capsys)
    assert code == 2 and message in err and "Traceback" not in err
