"""The faster engine per batch size: measured at export, recorded, and used by predict and serve (issue 23).

The choice logic runs on fake timings (a timer that reads a table), so that the tests say which
engine must win whatever this machine's real speeds; the override (``engine="onnx"|"torch"``)
wins over the record; a served ONNX file without weights beside it never runs PyTorch, and says so.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from heplearn.data import io
from heplearn.errors import ConfigError, DataError
from heplearn.serving.engine_choice import (
    METADATA_KEY,
    EngineChoice,
    EngineTiming,
    measure_engines,
    resolve_engine,
)
from heplearn.serving.engines import execution_providers
from heplearn.serving.export import ExportResult, _add_metadata, read_metadata
from heplearn.serving.machine import describe_machine, parse_cpuinfo
from heplearn.serving.predict import choose_engine, predict_files
from heplearn.serving.repository import ServedModel
from heplearn.serving.triton import find_models
from tests.conftest import make_jets

# jets/s per (engine, batch size): onnxruntime wins one jet, PyTorch the larger batches
FAKE_RATES = {
    ("onnx", 1): 500.0,
    ("torch", 1): 200.0,
    ("onnx", 32): 300.0,
    ("torch", 32): 400.0,
    ("onnx", 256): 250.0,
    ("torch", 256): 390.0,
}


def fake_timer(calls: list[tuple[str, int]]) -> Callable[[Callable[[], object], int, float], float]:
    """A timer that runs the engine once (it returns its name) and reports the table's rate."""

    def timer(run: Callable[[], object], jets: int, seconds: float) -> float:
        engine = str(run())
        calls.append((engine, jets))
        return FAKE_RATES[engine, jets] * (1 + 0.01 * len(calls))  # later rounds a little faster: best is kept

    return timer


def test_the_faster_engine_is_chosen_per_batch_size_range_from_the_timings() -> None:
    feed = {"particles": np.zeros((5, 3, 2), np.float32), "mask": np.ones((5, 3), bool)}
    seen: list[int] = []

    def engine(name: str) -> Callable[[dict[str, np.ndarray]], str]:
        def run(batch: dict[str, np.ndarray]) -> str:
            seen.append(len(batch["mask"]))
            return name

        return run

    calls: list[tuple[str, int]] = []
    choice = measure_engines(engine("onnx"), engine("torch"), feed, (1, 32, 256), rounds=2, timer=fake_timer(calls))
    # interleaved, round by round, on batches of the asked size (5 jets repeated up to 256)
    assert calls[:4] == [("onnx", 1), ("torch", 1), ("onnx", 1), ("torch", 1)] and len(calls) == 12
    assert set(seen) == {1, 32, 256}
    assert [timing.faster for timing in choice.timings] == ["onnx", "torch", "torch"]
    assert choice.timings[0].onnx_jets_per_second == pytest.approx(500 * 1.03)  # the best of two rounds
    assert choice.ranges() == [(1, 1, "onnx"), (2, 32, "torch"), (33, None, "torch")]
    assert [choice.engine_for(size) for size in (1, 2, 32, 33, 256, 10_000)] == ["onnx"] + ["torch"] * 5
    assert "1 jets: onnx" in choice.describe() and "33+ jets: torch" in choice.describe()
    assert EngineChoice.from_json(choice.to_json()) == choice
    with pytest.raises(DataError, match=r"model\.onnx: the recorded engine choice is malformed"):
        EngineChoice.from_json({"timings": [{"batch_size": 1}]}, "model.onnx")


def test_resolve_engine_follows_the_record_the_override_and_says_why() -> None:
    choice = EngineChoice((EngineTiming(1, 500, 200), EngineTiming(256, 250, 390)), {"cpu_model": "Test CPU"})
    assert resolve_engine("auto", choice, 1)[0] == "onnx"
    engine, reason = resolve_engine("auto", choice, 100)
    assert engine == "torch" and "250 jets/s" in reason and "390 jets/s" in reason and "Test CPU" in reason
    assert resolve_engine("onnx", choice, 100) == ("onnx", "onnx as asked (--engine onnx)")
    assert resolve_engine("torch", choice, 1)[0] == "torch"
    # never silently the slower one: the reason says torch would be faster, and why it is not used
    engine, reason = resolve_engine("auto", choice, 100, torch_available=False)
    assert engine == "onnx" and "although torch was faster" in reason and "no PyTorch weights" in reason
    assert "no engine timing recorded" in resolve_engine("auto", None, 1)[1]
    assert resolve_engine("auto", choice, 1, onnx_available=False)[0] == "torch"
    with pytest.raises(ConfigError, match="choose one of auto, onnx, torch"):
        resolve_engine("tensorflow", choice, 1)
    with pytest.raises(DataError, match="no PyTorch weights"):
        resolve_engine("torch", choice, 1, torch_available=False)


def test_export_records_measured_timings_and_the_machine(pfn_export: ExportResult) -> None:
    recorded = read_metadata(pfn_export.onnx_path)[METADATA_KEY]
    choice = EngineChoice.from_json(recorded)
    assert pfn_export.engine_choice == choice
    assert [timing.batch_size for timing in choice.timings] == [1, 32, 256]
    assert all(timing.onnx_jets_per_second > 0 and timing.torch_jets_per_second > 0 for timing in choice.timings)
    assert choice.machine["logical_cores"] >= 1 and "onnxruntime" in choice.machine["libraries"]


def _with_choice(pfn_export: ExportResult, folder: Path, onnx_faster_at: set[int]) -> Path:
    """A copy of the PFN run whose model.onnx records fake timings: onnx faster at ``onnx_faster_at``."""
    run = folder / "run"
    shutil.copytree(pfn_export.onnx_path.parent, run)
    timings = tuple(EngineTiming(size, 400.0 if size in onnx_faster_at else 100.0, 200.0) for size in (1, 32, 256))
    _add_metadata(run / "model.onnx", {METADATA_KEY: EngineChoice(timings).to_json()})
    return run


def test_predict_runs_the_recorded_faster_engine_unless_told_otherwise(
    pfn_export: ExportResult, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    run = _with_choice(pfn_export, tmp_path, onnx_faster_at={1})
    data = io.write(make_jets(40, seed=3), tmp_path / "a.parquet")
    with caplog.at_level(logging.INFO, logger="heplearn.serving.predict"):
        assert choose_engine(run, "auto", 1) == "onnx" and choose_engine(run, "auto", 1000) == "torch"
    assert "torch, the faster engine for 1000 jets" in caplog.text
    (scores,) = predict_files(run, [data], tmp_path / "auto", progress=False)
    assert io.open_source(scores).provenance()["engine"] == "torch"
    (forced,) = predict_files(run, [data], tmp_path / "onnx", engine="onnx", progress=False)
    assert io.open_source(forced).provenance()["engine"] == "onnx"
    first, second = (
        io.open_source(path).read(["score_top"], 0, 40)["score_top"].to_numpy() for path in (scores, forced)
    )
    np.testing.assert_allclose(first, second, atol=1e-5, equal_nan=True)


def test_serve_runs_each_batch_size_on_its_faster_engine(
    pfn_export: ExportResult, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    run = _with_choice(pfn_export, tmp_path, onnx_faster_at={32, 256})
    (source,) = find_models(run)
    with caplog.at_level(logging.INFO, logger="heplearn.serving.repository"):
        served = ServedModel.load(source, 256, 0.001)
    assert served.engines == {1: "torch", 32: "onnx", 256: "onnx"}
    assert "batches of up to 1 jets: torch, the faster engine" in caplog.text
    assert ServedModel.load(source, 256, 0.001, engine="onnx").engines == {256: "onnx"}
    assert ServedModel.load(source, 256, 0.001, engine="torch").engines == {256: "torch"}
    rng = np.random.default_rng(0)
    feed = {"particles": rng.normal(size=(1, 24, 3)).astype(np.float32), "mask": np.arange(24)[None] < 10}
    one_jet = served.batcher.run(feed)["probabilities"]  # PyTorch (batch of 1)
    reference = served.session.run(None, feed)[0]
    np.testing.assert_allclose(one_jet, reference, atol=1e-5)


def test_a_served_onnx_file_without_weights_runs_onnx_and_says_torch_was_faster(
    pfn_export: ExportResult, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    run = _with_choice(pfn_export, tmp_path, onnx_faster_at=set())
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(run / "model.onnx", alone / "model.onnx")  # no model.json, no weights
    (source,) = find_models(run)
    source = type(source)(source.name, source.version, alone / "model.onnx")
    with caplog.at_level(logging.INFO, logger="heplearn.serving.repository"):
        served = ServedModel.load(source, 256, 0.001)
    assert set(served.engines.values()) == {"onnx"} and "although torch was faster" in caplog.text
    with pytest.raises(DataError, match="no PyTorch weights"):
        ServedModel.load(source, 256, 0.001, engine="torch")


def test_execution_providers_take_the_gpu_when_onnxruntime_has_it() -> None:
    cpu_only = ["AzureExecutionProvider", "CPUExecutionProvider"]
    gpu = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert execution_providers("auto", cpu_only) == ["CPUExecutionProvider"]
    assert execution_providers("auto", gpu) == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert execution_providers("cpu", gpu) == ["CPUExecutionProvider"]
    assert execution_providers("tensorrt", gpu) == gpu
    with pytest.raises(DataError, match="device cuda: this onnxruntime has no CUDAExecutionProvider"):
        execution_providers("cuda", cpu_only)
    with pytest.raises(DataError, match="choose one of auto, cpu, cuda, tensorrt"):
        execution_providers("gpu", gpu)


def test_machine_description_names_cpu_flags_cores_and_libraries() -> None:
    text = (
        "processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Platinum 8480+\n"
        "flags\t\t: fpu avx2 fma avx512f avx512_vnni avx512_bf16 amx_tile amx_bf16 amx_int8\n"
        "processor\t: 1\nmodel name\t: Intel(R) Xeon(R) Platinum 8480+\nflags\t\t: fpu\n"
    )
    assert parse_cpuinfo(text) == (
        "Intel(R) Xeon(R) Platinum 8480+",
        ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8"),
    )
    machine = describe_machine({"onnxruntime intra-op": 2})
    line = machine.line()
    assert f"of {machine.logical_cores} logical cores" in line and "onnxruntime intra-op 2" in line
    assert "torch " in line and "onnxruntime " in line and machine.to_json()["threads"]["onnxruntime intra-op"] == 2


def test_a_container_cpu_quota_caps_the_usable_cores(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from heplearn.serving import engines, machine

    assert machine.cpu_quota("max 100000") is None and machine.cpu_quota("150000 100000") == 1.5
    limit = tmp_path / "cpu.max"
    limit.write_text("100000 100000\n")  # one CPU
    monkeypatch.setattr(machine, "CGROUP_CPU_MAX", limit)
    assert machine.usable_cores() == 1
    if (os.cpu_count() or 1) > 1:  # onnxruntime would start a thread per core it sees: capped to the quota
        assert engines.session_options().intra_op_num_threads == 1
