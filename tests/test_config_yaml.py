"""Config YAML is read with YAML 1.2 booleans: ``on`` (DisCo's and the adversary's key) stays a string."""

from __future__ import annotations

from pathlib import Path

from heplearn.config import load_yaml
from heplearn.run_config import load_run_config

RUN = """
data: {train: x.parquet, inputs: {jet: {variables: [jet_x]}}, labels: {classes: [label_sig, label_bkg]},
       observers: [jet_sdmass]}
model: {name: mlp, batch_norm: false}
training:
  loss: [{name: cross_entropy}, {name: disco, weight: 10, on: jet_sdmass}]
"""


def test_only_true_and_false_are_booleans() -> None:
    assert load_yaml("{on: a, off: b, yes: c, no: d, t: true, f: False}") == {
        "on": "a",
        "off": "b",
        "yes": "c",
        "no": "d",
        "t": True,
        "f": False,
    }


def test_a_disco_term_on_an_observer_loads_from_a_file_and_from_set(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text(RUN)
    config = load_run_config(path)
    assert config.training.loss[1].settings == {"on": "jet_sdmass"}  # type: ignore[index]
    config = load_run_config(
        path, ["training.loss=[{name: cross_entropy}, {name: disco, weight: 3, on: jet_pt}]", "model.batch_norm=true"]
    )
    assert config.training.loss[1].settings == {"on": "jet_pt"}  # type: ignore[index]
    assert config.model.hyperparameters["batch_norm"] is True
