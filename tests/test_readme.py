"""The README's "Using it" and "Evaluation and deployment" commands chain on a fresh clone.

Running them takes an hour of CPU (20,000 generated jets, full trainings), so this test checks what
makes them chain without running them: every command and option parses with the real command line,
every config file exists, every run a command reads (``runs/<name>``) was named by an earlier
``--name``, and every data file it reads is one the ``generate`` command above writes.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Callable
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
                    words = words[words.index("heplearn") :]  # torchrun ... -m heplearn train ...
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


# The README's sizes made small: (command, option) -> value, and settings added to each training.
SMALL = {("generate", "--jets"): "400"}
SMALL_TRAINING = {
    "bdt": ["model.n_estimators=20"],
    "mlp": ["training.epochs=1", "training.max_steps_per_epoch=5"],
    "particlenet": ["training.epochs=1", "training.max_steps_per_epoch=5"],
    "part": ["model.preset=small", "training.epochs=1", "training.max_steps_per_epoch=5"],
}


def _small(words: list[str], ports: list[int]) -> list[str]:
    """The command with the README's sizes made small and its ports free ones."""
    words = list(words)
    for (command, option), value in SMALL.items():
        if words[0] == command and option in words:
            words[words.index(option) + 1] = value
    if words[0] == "train" and "--name" in words:
        words += [f"--set={setting}" for setting in SMALL_TRAINING[words[words.index("--name") + 1]]]
    for option in ("--port", "--grpc-port"):
        if option in words:
            words[words.index(option) + 1] = str(ports.pop())
    return words


def _exit_code(main: Callable[[list[str]], object], arguments: list[str]) -> int | str | None:
    """The exit code ``main`` gives (None or 0 when it returns)."""
    try:
        main(arguments)
    except SystemExit as exit_info:
        return exit_info.code
    return 0


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _serve_until_ready(arguments: list[str], cwd: Path) -> None:
    """Start ``heplearn serve``, wait for its readiness endpoint, then stop it."""
    import subprocess
    import sys
    import time
    import urllib.request

    port = arguments[arguments.index("--port") + 1] if "--port" in arguments else str(_free_port())
    if "--port" not in arguments:
        arguments = [*arguments, "--port", port]
    with subprocess.Popen(
        [sys.executable, "-m", "heplearn", *arguments], cwd=cwd, stderr=subprocess.PIPE, text=True
    ) as server:
        try:
            deadline = time.monotonic() + 120
            while True:
                assert server.poll() is None, f"heplearn {shlex.join(arguments)} stopped: {server.stderr.read()}"
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=2) as answer:
                        assert answer.status == 200
                        return
                except OSError:
                    assert time.monotonic() < deadline, f"heplearn {shlex.join(arguments)} never became ready"
                    time.sleep(0.5)
        finally:
            server.terminate()


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_the_readme_commands_run_in_order(tmp_path: Path) -> None:
    """Every README command of ``SECTIONS`` runs as written, in order, in a fresh folder, with small sizes.

    The ``torchrun`` line is run as the plain command (one process): DDP has its own tests.
    """
    from heplearn.cli import main

    (tmp_path / "configs").symlink_to(ROOT / "configs", target_is_directory=True)
    ports = [_free_port() for _ in range(8)]
    previous = Path.cwd()
    os.chdir(tmp_path)
    try:
        for words in readme_commands():
            arguments = _small(words, ports)
            if arguments[0] == "serve":
                _serve_until_ready(arguments, tmp_path)
                continue
            code = _exit_code(main, arguments)
            assert code in (0, None), f"heplearn {shlex.join(arguments)} exited {code}"
    finally:
        os.chdir(previous)
    for run in ("particlenet", "part"):  # each run's scores in its own folder
        assert sorted(p.name for p in (tmp_path / "scores" / run).iterdir()) == ["test.scores.parquet"]
    assert (tmp_path / "models" / "particlenet" / "config.pbtxt").is_file()  # the Triton repository
    assert (tmp_path / "runs" / "mlp" / "model.int8.onnx").is_file()
