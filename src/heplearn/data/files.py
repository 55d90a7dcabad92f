"""Atomic output: every file heplearn writes appears complete or not at all.

JSON output is valid JSON for every parser: NaN and ±inf are written as ``null`` (``jsonable``,
``write_json``), never as the ``NaN``/``Infinity`` that Python's ``json`` writes by default.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np


@contextlib.contextmanager
def atomic_path(destination: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``destination``; rename it into place only on success.

    The temporary name keeps the destination's suffix, so writers that look at it still work.
    On any exception (including KeyboardInterrupt) the temporary file is removed.
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(
        dir=destination.parent, prefix=f".{destination.name}.", suffix=f".tmp{destination.suffix}"
    )
    os.close(handle)
    temporary_path = Path(temporary)
    try:
        yield temporary_path
        temporary_path.chmod(0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        temporary_path.replace(destination)
    except BaseException:
        temporary_path.unlink(missing_ok=True)
        raise


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def write_text_atomic(destination: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``destination`` atomically (a temporary file, then a rename)."""
    with atomic_path(destination) as temporary:
        temporary.write_text(text)


def jsonable(value: Any) -> Any:
    """Plain JSON types: dataclasses and numpy values converted, NaN and ±inf as ``None``."""
    if is_dataclass(value) and not isinstance(value, type):
        return jsonable(asdict(value))
    if isinstance(value, Mapping):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    return value


def write_json(path: str | os.PathLike[str], content: Any) -> None:
    """``content`` as strict JSON (``jsonable``: NaN and ±inf as null), written atomically."""
    write_text_atomic(path, dumps(content, indent=2) + "\n")


def dumps(content: Any, indent: int | None = None) -> str:
    """``content`` as one strict JSON text: NaN and ±inf as null, never ``NaN``/``Infinity``."""
    return json.dumps(jsonable(content), indent=indent, allow_nan=False)
