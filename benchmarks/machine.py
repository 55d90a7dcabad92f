"""The machine line every benchmark prints first, so that figures from two machines can be compared.

    from machine import print_machine     # benchmarks/ is on sys.path when a script in it runs
    print_machine({"onnxruntime intra-op": 2})

It prints ``heplearn.serving.machine.describe_machine().line()``: CPU model, the ISA flags that
change which kernels the libraries pick (AVX2, AVX-512, VNNI, BF16, AMX), usable and logical
cores, GPUs, the versions of torch, onnxruntime and numpy, and the thread settings (torch's own,
``OMP_NUM_THREADS``, and what the benchmark chose).
"""

from __future__ import annotations

from heplearn.serving.machine import MachineInfo, describe_machine


def print_machine(threads: dict[str, int | str] | None = None) -> MachineInfo:
    """Print the machine line (with the benchmark's own ``threads`` settings) and return the description."""
    machine = describe_machine(threads)
    print(machine.line(), flush=True)
    return machine
