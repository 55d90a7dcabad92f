"""A run killed with SIGKILL and resumed ends where an uninterrupted run ends; DDP on 2 CPU processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

from heplearn.data import io
from tests.conftest import make_jets

ROOT = Path(__file__).resolve().parents[2]


def write_config(folder: Path, **training: object) -> Path:
    jets = make_jets(1500, seed=21)
    jets_with_id = __import__("awkward").with_field(jets, np.arange(len(jets), dtype=np.float64), "aux_id")
    train = io.write(jets_with_id, folder / "train.parquet", row_group_size=300)
    val = io.write(make_jets(300, seed=22), folder / "val.parquet")
    config = {
        "data": {
            "train": str(train),
            "val": str(val),
            "inputs": {"jet": {"variables": ["jet_sdmass", "jet_nparticles", "jet_pt"]}},
            "labels": {"classes": ["label_top", "label_qcd"]},
        },
        "model": {"name": "mlp", "preset": "small", "dropout": 0.2},  # dropout: the RNG state matters
        "training": {
            "epochs": 3,
            "batch_size": 50,
            "seed": 7,
            "deterministic": True,
            "threads": 1,
            "early_stopping_patience": None,
            **training,
        },
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


SLOW_TRAIN = textwrap.dedent("""
    import sys, time
    from heplearn.run_config import load_run_config
    from heplearn.training.from_config import train
    config = load_run_config(sys.argv[1])
    train(config, name="killed", runs_dir=sys.argv[2], progress=False, on_batch=lambda batch: time.sleep(0.05))
""")


def environment() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


@pytest.mark.slow  # the CI budget: the adversary variant below kills and resumes in CI
def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path: Path) -> None:
    kill_and_resume(write_config(tmp_path, checkpoint_every=7), tmp_path / "runs", ["model"])


@pytest.mark.heavy
def test_sigkill_then_resume_with_an_adversary_matches_uninterrupted_run(tmp_path: Path) -> None:
    """Two networks trained in alternation (classifier + adversary): both resume bit for bit."""
    config = write_config(
        tmp_path,
        checkpoint_every=7,
        step={
            "name": "adversarial",
            "on": "jet_sdmass",
            "strength": 5.0,
            "adversary_steps": 2,
            "pretrain_steps": 10,
            "hidden": [16],
        },
    )
    content = yaml.safe_load(config.read_text())
    content["data"]["observers"] = ["jet_sdmass"]
    config.write_text(yaml.safe_dump(content))
    kill_and_resume(config, tmp_path / "runs", ["model", "adversary"])


def kill_and_resume(config: Path, runs: Path, modules: list[str]) -> None:
    """Train straight through; train again, SIGKILL mid-epoch and resume; the weights must be identical."""
    reference = subprocess.run(
        [
            sys.executable,
            "-m",
            "heplearn",
            "train",
            "-c",
            str(config),
            "--name",
            "straight",
            "--runs-dir",
            str(runs),
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        env=environment(),
        timeout=300,
        check=False,
    )
    assert reference.returncode == 0, reference.stderr

    script = runs.parent / "slow_train.py"
    script.write_text(SLOW_TRAIN)
    process = subprocess.Popen(
        [sys.executable, str(script), str(config), str(runs)],
        env=environment(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    pointer = runs / "killed" / "checkpoints" / "last.json"
    deadline = time.monotonic() + 120
    # kill in the middle of the second epoch (30 batches per epoch), after a mid-epoch checkpoint
    while time.monotonic() < deadline:
        if pointer.is_file() and "step-00000004" in pointer.read_text():  # step 42 = batch 12 of epoch 2
            break
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert not (runs / "killed" / "model.safetensors").exists()
    state = json.loads(
        (runs / "killed" / "checkpoints" / json.loads(pointer.read_text())["checkpoint"] / "state.json").read_text()
    )
    assert state["epoch"] == 1 and 0 < state["batch"] < 30

    resumed = subprocess.run(
        [sys.executable, "-m", "heplearn", "train", "--resume", str(runs / "killed"), "--no-progress"],
        capture_output=True,
        text=True,
        env=environment(),
        timeout=300,
        check=False,
    )
    assert resumed.returncode == 0, resumed.stderr
    straight = load_file(runs / "straight" / "model.safetensors")
    again = load_file(runs / "killed" / "model.safetensors")
    assert straight.keys() == again.keys()
    for name in straight:
        torch.testing.assert_close(again[name], straight[name], rtol=0, atol=0)
    last = {
        run: runs
        / run
        / "checkpoints"
        / json.loads((runs / run / "checkpoints" / "last.json").read_text())["checkpoint"]
        for run in ("straight", "killed")
    }
    for module in modules:  # every module of the step strategy, the adversary included
        straight, again = (load_file(last[run] / f"{module}.safetensors") for run in ("straight", "killed"))
        assert straight.keys() == again.keys()
        for name in straight:
            torch.testing.assert_close(again[name], straight[name], rtol=0, atol=0)


DDP_TRAIN = textwrap.dedent("""
    import json, os, sys
    import numpy as np
    from safetensors.torch import save_file
    from heplearn.run_config import load_run_config
    from heplearn.training.from_config import train
    from heplearn.training.checkpoint import model_weights
    seen = []
    config = load_run_config(sys.argv[1])
    captured = {}
    import heplearn.training.trainer as run_module
    original = run_module.Trainer
    class Recording(original):
        def __init__(self, model, *args, **kwargs):
            super().__init__(model, *args, **kwargs)
            captured["model"] = model
    run_module.Trainer = Recording
    train(config, name="ddp", runs_dir=sys.argv[2], progress=False,
          on_batch=lambda batch: seen.extend(batch["ids"][:, 0].tolist()))
    rank = os.environ["RANK"]
    out = sys.argv[3]
    save_file(model_weights(captured["model"]), f"{out}/rank{rank}.safetensors")
    with open(f"{out}/rank{rank}.json", "w") as stream:
        json.dump(seen, stream)
""")


@pytest.mark.heavy
# the streaming variant runs with -m slow: the in-memory one covers DDP in CI (the CI budget)
@pytest.mark.parametrize("streaming", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_ddp_two_cpu_processes(tmp_path: Path, streaming: bool) -> None:
    config_path = write_config(tmp_path, epochs=1, streaming=streaming)
    content = yaml.safe_load(config_path.read_text())
    content["data"]["inputs"]["ids"] = {"variables": ["aux_id"], "standardize": False}
    content["data"]["val"] = []
    config_path.write_text(yaml.safe_dump(content))
    script = tmp_path / "ddp_train.py"
    script.write_text(DDP_TRAIN)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            str(script),
            str(config_path),
            str(tmp_path / "runs"),
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        env=environment(),
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    weights = [load_file(tmp_path / f"rank{r}.safetensors") for r in (0, 1)]
    for name in weights[0]:
        torch.testing.assert_close(weights[0][name], weights[1][name], rtol=0, atol=0)
    seen = [set(json.loads((tmp_path / f"rank{r}.json").read_text())) for r in (0, 1)]
    assert not seen[0] & seen[1]
    assert len(seen[0] | seen[1]) >= 1500 - 1  # at most world_size - 1 jets left out per epoch
    assert (tmp_path / "runs" / "ddp" / "model.safetensors").is_file()


def test_streaming_with_workers_is_reproducible_over_epochs(tmp_path: Path) -> None:
    from heplearn.run_config import load_run_config
    from heplearn.training.from_config import train

    config = load_run_config(write_config(tmp_path, epochs=2, streaming=True, num_workers=2, buffer_size=200))
    weights = []
    for name in ("first", "second"):
        result = train(config, name=name, runs_dir=tmp_path / "runs", progress=False)
        assert len(result.history) == 2
        weights.append(load_file(result.run_dir / "model.safetensors"))
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][key], weights[1][key]) for key in weights[0])
