"""What a maintainer relies on: metadata and licence, the type check, spelling, lint settings that mean something."""

from __future__ import annotations

import fnmatch
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_metadata_licence_and_typing_marker() -> None:
    project = PYPROJECT["project"]
    assert project["license"] == {"text": "BSD-3-Clause"}
    licence = (ROOT / "LICENSE").read_text()
    assert licence.startswith("BSD 3-Clause License") and "heplearn developers" in licence
    assert project["authors"] == [{"name": "heplearn developers"}]
    assert "License :: OSI Approved :: BSD License" in project["classifiers"]
    assert "Typing :: Typed" in project["classifiers"] and (ROOT / "src/heplearn/py.typed").is_file()
    assert {"Homepage", "Documentation", "Source", "Issues"} <= set(project["urls"])
    assert project["keywords"]


def test_no_dead_per_file_ignores() -> None:
    """Every per-file ignore still silences something: ruff run without them finds each code there."""
    ignores: dict[str, list[str]] = PYPROJECT["tool"]["ruff"]["lint"]["per-file-ignores"]
    found = subprocess.run(
        [
            sys.executable,
            "-m",
            "ruff",
            "check",
            "src",
            "tests",
            "benchmarks",
            "--no-cache",
            "--exit-zero",
            "--output-format",
            "json",
            "--config",
            "lint.per-file-ignores = {}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    violations = {(str(Path(v["filename"]).relative_to(ROOT)), v["code"]) for v in json.loads(found.stdout)}
    assert ("tests/test_packaging.py", "D103") in violations  # the check sees what the ignores hide
    dead = [
        f"{pattern}: {code}"
        for pattern, codes in ignores.items()
        for code in codes
        if not any(fnmatch.fnmatch(path, pattern) and found_code.startswith(code) for path, found_code in violations)
    ]
    assert dead == [], "remove these per-file ignores from pyproject.toml (nothing left to ignore)"


@pytest.mark.heavy  # ~20 s of CPU without mypy's cache: `make test` (CI) runs it, plain pytest not
def test_types_check() -> None:
    """mypy on the paths of [tool.mypy] (training/, models/, data/, runs.py)."""
    api = pytest.importorskip("mypy.api")
    out, err, status = api.run(
        ["--config-file", str(ROOT / "pyproject.toml"), "--cache-dir", str(ROOT / ".mypy_cache")]
    )
    assert status == 0, out + err


def test_spelling() -> None:
    pytest.importorskip("codespell_lib")
    paths = ["src", "tests", "benchmarks", "docs", "configs", "README.md", "Makefile"]
    found = subprocess.run(
        [sys.executable, "-m", "codespell_lib", *paths], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert found.returncode == 0, found.stdout + found.stderr


def test_the_tree_is_formatted() -> None:
    """``ruff format`` has nothing to change (the pre-commit hook and ``make lint`` run it too)."""
    checked = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--check", "src", "tests", "benchmarks", "docs/hooks.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout[-2000:]
