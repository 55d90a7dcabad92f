"""Atomic output: every file heplearn writes appears complete or not at all."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


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
    with atomic_path(destination) as temporary:
        temporary.write_text(text)
