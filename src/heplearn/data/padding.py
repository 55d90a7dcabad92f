"""Padding unpadded jets into a batch in one compiled pass: gather, standardise, pad, mask.

The shuffling buffer keeps the kept particles of every jet in a row (``RaggedJets``). A batch
takes jets in random order, so with numpy it costs a gather of 28-byte rows into a new array,
a fill of the padded array and a masked copy into it, and the standardisation is one more pass
before. Here each jet is one contiguous run of ``count × F`` values in and out, standardised on
the way with the row pattern of the constants (``F`` per slot, ``length`` slots), which the
compiler vectorises; the slots after the jet get the pad value. Same float32 operations, same
order, as ``Preprocessing.scale``: the values are bit for bit those of the numpy path.

The kernel (``padding_kernel``, numba) is compiled on first use and cached next to its file
(``cache=True``), so later processes load it; numba is imported on first use, not with the package.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np

Constants = tuple[np.ndarray, np.ndarray, np.ndarray]  # per variable: centre, 1 / scale, clip bound


@functools.cache
def _compiled() -> Callable[..., None]:
    from heplearn.data.padding_kernel import pad_rows

    return pad_rows  # type: ignore[no-any-return]


def row_pattern(constants: Constants | None, length: int, features: int) -> Constants:
    """The constants repeated for every slot of a padded jet (``length × features`` values each);
    without constants, the identity: x − 0 and x · 1 are exact, and ±inf clips nothing."""
    if constants is None:
        constants = (
            np.zeros(features, np.float32),
            np.ones(features, np.float32),
            np.full(features, np.inf, np.float32),
        )
    centre, inverse_scale, bound = (np.tile(np.asarray(values, np.float32), length) for values in constants)
    return centre, inverse_scale, bound


def pad_particles(
    flat: np.ndarray,
    starts: np.ndarray,
    counts: np.ndarray,
    index: np.ndarray,
    pattern: Constants,
    pad_value: float,
    out: np.ndarray,
    mask: np.ndarray,
) -> None:
    """Write jets ``index`` into ``out`` (B, length, F) float32 and ``mask`` (B, length) bool.

    Jet ``i`` has rows ``[starts[i], starts[i] + counts[i])`` of ``flat`` (particles, F) float32,
    ``counts[i] <= length``, all C-contiguous (``starts``, ``counts``, ``index`` int64). Every
    value becomes ``clip((x − centre) · inverse_scale, ±bound)`` with the constants of
    ``pattern`` (``row_pattern``); slots after a jet's last particle hold ``pad_value``.
    """
    _compiled()(flat, starts, counts, index, *pattern, np.float32(pad_value), out, mask)
