"""The compiled padding kernel of ``padding`` (numba); importing this module imports numba.

The jets of a batch are scattered over a shuffling buffer far larger than the caches, so each
jet's first cache lines would be a memory stall. The kernel asks for the particles of the jet
``PREFETCH_AHEAD`` places ahead while it copies the current one (``llvm.prefetch``), which
halves its time on a 40k-jet buffer.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

PREFETCH_AHEAD = 4  # jets; 2 to 16 measure the same
FLOATS_PER_LINE = 16  # 64-byte cache lines


@intrinsic
def _prefetch(typing_context: Any, array: Any, position: Any) -> Any:
    """Hint the CPU to load element ``position`` of a 1-D ``array`` into the caches (no fault if
    the address is out of range: it is a hint)."""
    signature = types.void(array, position)

    def codegen(context: Any, builder: Any, signature: Any, arguments: Any) -> Any:
        data = context.make_array(signature.args[0])(context, builder, arguments[0]).data
        address = builder.bitcast(builder.gep(data, [arguments[1]]), ir.IntType(8).as_pointer())
        int32 = ir.IntType(32)
        function = builder.module.declare_intrinsic(
            "llvm.prefetch", [address.type], ir.FunctionType(ir.VoidType(), [address.type, int32, int32, int32])
        )
        # read, keep in all cache levels, data cache
        builder.call(function, [address, ir.Constant(int32, 0), ir.Constant(int32, 3), ir.Constant(int32, 1)])
        return context.get_dummy_value()

    return signature, codegen


@numba.njit(nogil=True, cache=True)
def pad_rows(
    flat: np.ndarray,
    starts: np.ndarray,
    counts: np.ndarray,
    index: np.ndarray,
    centre: np.ndarray,
    inverse_scale: np.ndarray,
    bound: np.ndarray,
    pad_value: np.float32,
    out: np.ndarray,
    mask: np.ndarray,
) -> None:
    """Gather, standardise, clip and pad the particles of the jets ``index`` into ``out`` and ``mask``, in place."""
    features = flat.shape[1]
    source = flat.reshape(-1)
    padded = out.reshape(out.shape[0], -1)
    jets = index.shape[0]
    for slot in range(jets):
        if slot + PREFETCH_AHEAD < jets:
            ahead = index[slot + PREFETCH_AHEAD]
            for line in range(0, counts[ahead] * features, FLOATS_PER_LINE):
                _prefetch(source, starts[ahead] * features + line)  # type: ignore[call-arg]  # numba supplies the typing context
        jet = index[slot]
        count = counts[jet]
        size = count * features
        values = source[starts[jet] * features : starts[jet] * features + size]  # a view: no negative indices
        row = padded[slot]
        for k in range(size):
            value = (values[k] - centre[k]) * inverse_scale[k]
            value = -bound[k] if value < -bound[k] else value
            row[k] = bound[k] if value > bound[k] else value
        row[size:] = pad_value
        mask[slot, :count] = True
        mask[slot, count:] = False
