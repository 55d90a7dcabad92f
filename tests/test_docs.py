"""The documentation site builds with warnings as errors, and its generated pages hold what the code holds."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("mkdocstrings")
    output = tmp_path_factory.mktemp("site")
    built = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "--site-dir", str(output)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    return output


def text(page: Path) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page.read_text()))


def test_every_config_key_is_documented(site: Path) -> None:
    from heplearn.data.config import DataConfig
    from heplearn.run_config import TrainingConfig

    reference = text(site / "data-configs" / "index.html")
    for section, model in (("data", DataConfig), ("training", TrainingConfig)):
        for key in model.model_fields:
            assert f"{section}.{key}" in reference, key
    assert "data.inputs.<name>.image.bins" in reference.replace("&lt;", "<").replace("&gt;", ">")


def test_every_model_and_method_has_its_page(site: Path) -> None:
    from heplearn.models import registry

    zoo = text(site / "models" / "index.html")
    for name in registry.model_names():
        assert registry.model_class(name).__name__ in zoo, name
    assert "paper: 2,139,758" in zoo  # ParT's published size (arXiv:2202.03772: 2.14 M parameters)
    methods = sorted(
        p.stem
        for p in (ROOT / "src/heplearn/methods").glob("*.py")
        if not p.stem.startswith("_") and not p.stem.endswith("_cli")
    )
    assert sorted(p.name for p in (site / "methods").iterdir()) == methods
    assert "arXiv:1911.09107" in text(site / "methods" / "unfolding" / "index.html")  # its docstring rendered


def test_the_analysis_page_names_every_command_and_shipped_profile(site: Path) -> None:
    from heplearn.analysis.cli import analysis_app
    from heplearn.analysis.engine import PROFILES

    page = text(site / "analysis" / "index.html")
    for command in analysis_app.registered_commands:
        assert f"heplearn analysis {command.name}" in page, command.name
    for profile in PROFILES.iterdir():  # its row of the profiles table: name, then the executor plugin
        assert f"{profile.name} snakemake-executor-plugin-{profile.name}" in page, profile.name
    assert "resolve_profile" in page  # the API reference rendered
