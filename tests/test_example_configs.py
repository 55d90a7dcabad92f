"""Every example run config of ``configs/`` validates, so that a README command never starts from a broken file."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from heplearn.run_config import load_run_config

CONFIGS = Path(__file__).resolve().parents[1] / "src" / "heplearn" / "configs"
RUN_CONFIGS = sorted(
    path for path in CONFIGS.glob("*.yaml") if {"data", "model"} <= set(yaml.safe_load(path.read_text()) or {})
)


def test_the_examples_are_found() -> None:
    assert len(RUN_CONFIGS) > 10 and CONFIGS / "btag_particlenet.yaml" in RUN_CONFIGS


@pytest.mark.parametrize("path", RUN_CONFIGS, ids=lambda path: path.stem)
def test_an_example_run_config_validates(path: Path) -> None:
    config = load_run_config(path)
    assert config.model.name and config.data.inputs
