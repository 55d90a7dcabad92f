"""The README's "Using it" and "Evaluation and deployment" commands chain on a fresh clone.

Running them takes an hour of CPU (20,000 generated jets, full trainings), so this test checks what
makes them chain without running them: every command and option parses with the real command line,
every config file exists, every run a command reads (``runs/<name>``) was named by an earlier
``--name``, and every data file it reads is one the ``generate`` command above writes.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest
import typer.main

from heplearn.cli import app

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ("## Using it", "## Evaluation and deployment")
SPLITS = ("train", "val", "test")


def readme_commands() -> list[list[str]]:
    """The ``heplearn`` command lines of the shell blocks of ``SECTIONS``, in order, without comments."""
    readme = (ROOT / "README.md").read_text()
    commands = []
    for title in SECTIONS:
        section = readme.split(title, 1)[1].split("\n## ", 1)[0]
        for block in re.findall(r"```sh\n(.*?)```", section, re.S):
            for line in block.splitlines():
                words = shlex.split(line, comments=True)
                if words[:1] == ["torchrun"]:
                    words = words[words.index("heplearn"):]  # torchrun ... -m heplearn train ...
                if words[:1] == ["heplearn"]:
                    commands.append(words[1:])
    return commands


def test_the_readme_commands_parse_and_chain() -> None:
    commands = readme_commands()
    assert len(commands) >= 10, commands
    group = typer.main.get_command(app)
    runs: set[str] = set()
    data: set[str] = set()
    for words in commands:
        name, arguments = words[0], words[1:]
        command = group.commands[name]  # type: ignore[attr-defined]
        try:
            context = command.make_context(name, list(arguments), resilient_parsing=False)
        except click.UsageError as error:
            pytest.fail(f"heplearn {shlex.join(words)}: {error}")
        if name == "generate":
            data |= {f"{context.params['output']}/{split}.parquet" for split in SPLITS}
        if name == "train" and context.params.get("name"):
            runs.add(f"runs/{context.params['name']}")
        for word in arguments:
            if word.startswith("runs/"):  # a run, or a file in one
                run = "/".join(word.split("/")[:2])
                assert run in runs, f"heplearn {shlex.join(words)}: {run} is not made above"
            elif word.startswith("data/") and name != "generate":
                assert word in data, f"heplearn {shlex.join(words)}: {word} is not generated above"
            elif word.startswith("configs/"):
                assert (ROOT / word).is_file(), word
    assert {"runs/bdt", "runs/particlenet"} <= runs
