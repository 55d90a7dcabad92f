"""A failed training leaves nothing half-written; a finished run is never resumed (issue 15, items 8 and 9).

Before: a failed ``train`` left ``runs/<name>/`` with only ``config.yaml`` and ``train.log``, and
``train --resume`` on a finished BDT run trained it again, appended duplicate lines to
``metrics.jsonl`` and left ``model.onnx`` stale.
"""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import pytest

from heplearn.data import io
from heplearn.errors import ConfigError, DataError
from heplearn.run_config import load_run_config
from heplearn.runs import RunDirectory
from heplearn.training.from_config import train
from tests.conftest import make_jets
from tests.serving.conftest import run_config


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("lifecycle")
    jets = make_jets(300, seed=5)
    px = ak.to_list(jets.part_px)
    px[4][0] = float("nan")
    return {
        "train": str(io.write(jets, folder / "train.parquet")),
        "val": str(io.write(jets, folder / "val.parquet")),
        "nan": str(io.write(ak.with_field(jets, ak.Array(px), "part_px"), folder / "nan.parquet")),
    }


def test_a_failed_training_leaves_no_run_directory(files: dict[str, str], tmp_path: Path) -> None:
    config = load_run_config(
        run_config({"train": [files["nan"]], "val": [files["val"]]}, {"name": "pfn", "preset": "small"})
    )
    with pytest.raises(DataError, match="part_px"):
        train(config, name="broken", runs_dir=tmp_path, progress=False)
    assert not (tmp_path / "broken").exists()
    good = load_run_config(
        run_config({"train": [files["train"]], "val": [files["val"]]}, {"name": "bdt", "n_estimators": 3})
    )
    assert RunDirectory(train(good, name="broken", runs_dir=tmp_path, progress=False).run_dir).is_finished()


def test_resuming_a_finished_run_is_refused_and_changes_nothing(files: dict[str, str], tmp_path: Path) -> None:
    config = load_run_config(
        run_config({"train": [files["train"]], "val": [files["val"]]}, {"name": "bdt", "n_estimators": 3})
    )
    run = RunDirectory(train(config, name="bdt", runs_dir=tmp_path, progress=False).run_dir)
    before = {path.name: path.read_bytes() for path in run.path.iterdir() if path.is_file()}
    with pytest.raises(ConfigError, match=r"the run is finished \(model.json exists\); resuming would train it"):
        train(run.read_config(), resume=run.path, progress=False)
    assert {path.name: path.read_bytes() for path in run.path.iterdir() if path.is_file()} == before
