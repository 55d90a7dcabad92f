"""Triton model repositories: ``<repository>/<name>/config.pbtxt`` and ``<name>/<version>/model.onnx``.

``write_triton_model`` lays out an exported model so that an NVIDIA Triton server loads it with
its onnxruntime backend (``platform: "onnxruntime_onnx"``) and batches requests dynamically.
``config.pbtxt`` is protobuf text format (``inference.ModelConfig``); dims exclude the batch axis
(``max_batch_size`` > 0) and are -1 where the size varies (the particle axis).

Triton batches only requests whose non-batch shapes agree: clients should pad jets to one particle
count (the run's ``length``) for dynamic batching to combine their requests.

``find_models`` reads a repository (or heplearn runs) back for ``heplearn serve``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from heplearn.data.files import atomic_path, write_text_atomic
from heplearn.errors import DataError
from heplearn.serving.protocol import TensorSpec

CONFIG_FILE = "config.pbtxt"
MODEL_FILE = "model.onnx"
PLATFORM = "onnxruntime_onnx"
#: KServe datatype → Triton config data_type.
TRITON_TYPES = {
    "BOOL": "TYPE_BOOL",
    "UINT8": "TYPE_UINT8",
    "INT8": "TYPE_INT8",
    "INT16": "TYPE_INT16",
    "INT32": "TYPE_INT32",
    "INT64": "TYPE_INT64",
    "FP16": "TYPE_FP16",
    "FP32": "TYPE_FP32",
    "FP64": "TYPE_FP64",
}
_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")


@dataclass(frozen=True)
class ModelSource:
    """One model to serve: its name, version and ONNX file."""

    name: str
    version: str
    onnx_path: Path
    max_batch_size: int | None = None


def model_config_text(
    name: str,
    inputs: list[TensorSpec],
    outputs: list[TensorSpec],
    max_batch_size: int = 1024,
    max_queue_delay_microseconds: int = 1000,
    preferred_batch_sizes: tuple[int, ...] = (),
) -> str:
    """The ``config.pbtxt`` of an ONNX model whose tensors all have the batch axis first."""
    if not _NAME.match(name):
        raise DataError(f"model name {name!r}: use letters, digits, '_', '-' and '.' only")
    lines = [f'name: "{name}"', f'platform: "{PLATFORM}"', f"max_batch_size: {max_batch_size}"]
    for kind, specs in (("input", inputs), ("output", outputs)):
        lines.append(f"{kind} [")
        entries = []
        for spec in specs:
            dims = spec.shape[1:] if max_batch_size > 0 else spec.shape
            entries.append(
                f'  {{\n    name: "{spec.name}"\n    data_type: {TRITON_TYPES[spec.datatype]}\n'
                f"    dims: [ {', '.join(str(d) for d in dims)} ]\n  }}"
            )
        lines.append(",\n".join(entries))
        lines.append("]")
    if max_batch_size > 0:
        lines.append("dynamic_batching {")
        if preferred_batch_sizes:
            lines.append(f"  preferred_batch_size: [ {', '.join(map(str, preferred_batch_sizes))} ]")
        lines.append(f"  max_queue_delay_microseconds: {max_queue_delay_microseconds}")
        lines.append("}")
    lines.append("instance_group [ { kind: KIND_CPU, count: 1 } ]")
    return "\n".join(lines) + "\n"


def write_triton_model(
    onnx_path: str | os.PathLike[str],
    repository: str | os.PathLike[str],
    name: str,
    inputs: list[TensorSpec],
    outputs: list[TensorSpec],
    *,
    version: int = 1,
    max_batch_size: int = 1024,
    max_queue_delay_microseconds: int = 1000,
) -> Path:
    """Copy ``onnx_path`` into ``repository/name/version/model.onnx`` and write its ``config.pbtxt``."""
    text = model_config_text(name, inputs, outputs, max_batch_size, max_queue_delay_microseconds)
    folder = Path(repository) / name
    with atomic_path(folder / str(version) / MODEL_FILE) as temporary:
        shutil.copyfile(onnx_path, temporary)
    write_text_atomic(folder / CONFIG_FILE, text)
    return folder


def find_models(source: str | os.PathLike[str]) -> list[ModelSource]:
    """The models in ``source``: an ONNX file, an exported run, a directory of runs or a Triton repository."""
    path = Path(source)
    if path.is_file():
        if path.suffix != ".onnx":
            raise DataError(f"{path}: not an ONNX file")
        name = path.parent.name if path.name == MODEL_FILE else path.stem
        return [ModelSource(name, "1", path)]
    if not path.is_dir():
        raise DataError(f"{path}: no such file or directory")
    single = _model_in(path)
    if single is not None:
        return [single]
    models = [model for child in sorted(path.iterdir()) if child.is_dir() and (model := _model_in(child))]
    if not models:
        raise DataError(
            f"{path}: no model found; give an exported run (heplearn export RUN first), a directory of "
            "them, or a Triton model repository"
        )
    return models


def _model_in(folder: Path) -> ModelSource | None:
    """The model of a run directory (``model.onnx``) or of a Triton model folder (latest version)."""
    if (folder / MODEL_FILE).is_file():
        return ModelSource(folder.name, "1", folder / MODEL_FILE)
    versions = sorted(
        (
            int(child.name)
            for child in folder.iterdir()
            if child.is_dir() and child.name.isdigit() and (child / MODEL_FILE).is_file()
        ),
        reverse=True,
    )
    if versions:
        return ModelSource(
            folder.name, str(versions[0]), folder / str(versions[0]) / MODEL_FILE, _max_batch_size(folder / CONFIG_FILE)
        )
    if (folder / "model.json").is_file() and (folder / "config.yaml").is_file():
        raise DataError(f"{folder}: the run has no {MODEL_FILE}; export it first (heplearn export {folder})")
    return None


def _max_batch_size(config: Path) -> int | None:
    if not config.is_file():
        return None
    found = re.search(r"^\s*max_batch_size\s*:\s*(\d+)", config.read_text(), re.MULTILINE)
    return int(found.group(1)) if found else None


def model_config_json(
    name: str,
    inputs: list[TensorSpec],
    outputs: list[TensorSpec],
    max_batch_size: int,
    max_queue_delay_microseconds: int,
    parameters: dict[str, int] | None = None,
) -> str:
    """The model configuration as Triton's ``GET /v2/models/<name>/config`` returns it (JSON);
    ``parameters`` (the server's limits) go into Triton's ``parameters`` map as strings."""

    def tensors(specs: list[TensorSpec]) -> list[dict[str, object]]:
        return [
            {
                "name": spec.name,
                "data_type": TRITON_TYPES.get(spec.datatype, spec.datatype),
                "dims": list(spec.shape[1:]),
            }
            for spec in specs
        ]

    return json.dumps(
        {
            "name": name,
            "platform": PLATFORM,
            "backend": "onnxruntime",
            "max_batch_size": max_batch_size,
            "input": tensors(inputs),
            "output": tensors(outputs),
            "dynamic_batching": {"max_queue_delay_microseconds": max_queue_delay_microseconds},
            **(
                {"parameters": {key: {"string_value": str(value)} for key, value in parameters.items()}}
                if parameters
                else {}
            ),
        }
    )
