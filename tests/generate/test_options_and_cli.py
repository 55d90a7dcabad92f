"""Process cards, option validation, and the `heplearn generate` command."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from heplearn.data import io
from heplearn.errors import ConfigError, HeplearnError
from heplearn.generate.cli import generate_command
from heplearn.generate.processes import PROCESSES, GeneratorOptions, get_card, pythia_settings


def test_every_card_has_settings_and_truth() -> None:
    assert set(PROCESSES) == {"top", "w", "z", "hbb", "hcc", "bjets", "bjets_qcd", "qcd", "quark", "gluon"}
    for card in PROCESSES.values():
        assert card.settings and card.truth in ("resonance", "parton", "flavour")
        assert (card.resonance_id != 0) == (card.truth == "resonance")
    assert {get_card(name).default_radius for name in ("quark", "gluon", "bjets", "bjets_qcd")} == {0.4}
    assert get_card("top").default_radius == 0.8
    assert get_card(" TOP ").name == "top"


def test_pythia_settings() -> None:
    options = GeneratorOptions(sqrt_s=13_000.0, mpi=False)
    settings = pythia_settings(get_card("top"), options, seed=42)
    assert "Beams:eCM = 13000" in settings
    assert "PartonLevel:MPI = off" in settings
    assert "Random:seed = 42" in settings
    assert "PhaseSpace:pTHatMin = 467.5" in settings  # 0.85 × 550
    assert "PhaseSpace:pTHatMax = 780" in settings  # 1.2 × 650
    assert "24:onIfAny = 1 2 3 4 5" in settings
    custom = GeneratorOptions(pthat_min=300.0, pthat_max=900.0)
    assert custom.pthat_range() == (300.0, 900.0)


def test_radius_default_follows_the_card() -> None:
    assert GeneratorOptions().radius_for(get_card("gluon")) == 0.4
    assert GeneratorOptions(radius=1.0).radius_for(get_card("gluon")) == 1.0


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"pt_min": 700.0}, "bad jet pT window"),
        ({"pt_max": -1.0}, "pt_max must be positive"),
        ({"pt_min": float("nan")}, "finite number"),
        ({"eta_max": 0.0}, "eta_max must be positive"),
        ({"eta_max": 6.0}, "beyond the detector"),
        ({"radius": 3.0}, "radius 3"),
        ({"algorithm": "siscone"}, "unknown jet algorithm 'siscone'"),
        ({"max_particles": 0}, "max_particles"),
        ({"max_particles": 2.5}, "max_particles"),
        ({"pthat_min": 900.0}, "bad pT-hat range"),
        ({"sqrt_s": 1000.0}, "out of reach"),
    ],
)
def test_bad_options(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        GeneratorOptions(**changes)  # type: ignore[arg-type]


def test_unknown_process() -> None:
    with pytest.raises(ConfigError, match=r"unknown process 'ttbar'.*top, w, z"):
        get_card("ttbar")


# ----------------------------------------------------------------------------- CLI
def make_app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """heplearn (test app)."""

    app.command("generate")(generate_command)
    return app


def invoke(*arguments: str) -> object:
    return CliRunner().invoke(make_app(), ["generate", *arguments])


def test_cli_toy(tmp_path: Path) -> None:
    result = invoke("toy", "--events", "200", "--dimensions", "3", "-o", str(tmp_path))
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    assert "train:" in result.output  # type: ignore[attr-defined]
    assert io.open_source(tmp_path / "train.parquet").num_entries == 160


def test_cli_physics(tmp_path: Path) -> None:
    result = invoke(
        "w",
        "--jets",
        "4",
        "-o",
        str(tmp_path),
        "--no-mpi",
        "--no-progress",
        "--seed",
        "5",
        "--split",
        "0.5,0.25,0.25",
        "--max-particles",
        "16",
    )
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    jets = io.open_source(tmp_path / "train.parquet").read()
    assert len(jets) == 2
    assert int(max(jets.jet_nparticles)) <= 16
    provenance = io.open_source(tmp_path / "train.parquet").provenance()
    assert provenance["options"]["mpi"] is False and provenance["seed"] == 5


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("toy", "qcd", "--events", "10"), "cannot be mixed"),
        (("toy",), "--events"),
        (("toy", "--events", "10", "--jets", "5"), "--jets is for physics"),
        (("qcd",), "--jets"),
        (("qcd", "--jets", "5", "--events", "10"), "--events is for the toy"),
        (("gravitino", "--jets", "5"), "unknown process 'gravitino'"),
        (("qcd", "--jets", "5", "--pt-min", "700"), "bad jet pT window"),
        (("qcd", "--jets", "5", "--split", "a,b,c"), "--split"),
        (("qcd", "--jets", "5", "--format", "csv"), "unknown file format"),
    ],
)
def test_cli_bad_input_raises_heplearn_errors(tmp_path: Path, arguments: tuple[str, ...], message: str) -> None:
    result = invoke(*arguments, "-o", str(tmp_path / "out"))
    assert isinstance(result.exception, HeplearnError), result.output  # type: ignore[attr-defined]
    assert message in str(result.exception)  # type: ignore[attr-defined]
    assert not (tmp_path / "out").exists()
