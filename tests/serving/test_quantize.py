"""Post-training int8 quantisation at export (issue 23): only when asked, checked, AUC change reported."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest

from heplearn.serving.export import ExportError, ExportResult, export_run, read_metadata


def test_int8_export_is_checked_and_reports_the_auc_change(mlp_export: ExportResult, tmp_path: Path) -> None:
    run = tmp_path / "mlp"
    shutil.copytree(mlp_export.onnx_path.parent, run)
    result = export_run(run, output=tmp_path / "int8.onnx", timing_seconds=0, quantize="int8")
    quantized = result.quantization
    assert quantized is not None and quantized.kind == "int8"
    assert 0 < quantized.max_difference <= 0.1  # int8 rounds: not the float graph's 1e-5, but close
    assert quantized.auc_float is not None and quantized.auc_quantized is not None
    assert abs(quantized.auc_change) < 0.02 and quantized.auc_float > 0.5  # type: ignore[arg-type]
    assert read_metadata(result.onnx_path)["quantization"] == "int8"
    graph = onnx.load(str(result.onnx_path)).graph
    assert any(
        node.op_type in {"DynamicQuantizeLinear", "MatMulInteger", "DynamicQuantizeMatMul"} for node in graph.node
    )
    # the float export (the default) has none of it, and agrees to 1e-5
    assert mlp_export.quantization is None and "quantization" not in read_metadata(mlp_export.onnx_path)
    assert mlp_export.max_difference is not None and mlp_export.max_difference <= 1e-5


def test_a_failed_int8_check_or_an_unknown_kind_writes_nothing(mlp_export: ExportResult, tmp_path: Path) -> None:
    run = mlp_export.onnx_path.parent
    with pytest.raises(ExportError, match="quantize 'int4': choose one of int8"):
        export_run(run, output=tmp_path / "a.onnx", timing_seconds=0, quantize="int4")
    with pytest.raises(ExportError, match=r"the int8 model differs from PyTorch by up to .* \(tolerance -1\)"):
        export_run(run, output=tmp_path / "b.onnx", timing_seconds=0, quantize="int8", quantized_tolerance=-1.0)
    assert not list(tmp_path.glob("*.onnx*")) and np.isfinite(mlp_export.max_difference or 0.0)
