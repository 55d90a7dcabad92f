"""The machine a timing was taken on: CPU model, instruction sets, cores, libraries and threads.

Inference figures depend on the machine far more than on the code (the same exported ParT is
faster or slower than eager PyTorch depending on AVX-512/AMX and the core count), so every
benchmark prints ``describe_machine().line()`` and ``heplearn export`` records
``describe_machine().to_json()`` beside the engine timings it takes (``serving.engine_choice``).

    >>> from heplearn.serving.machine import describe_machine
    >>> machine = describe_machine()
    >>> machine.logical_cores >= 1
    True
"""

from __future__ import annotations

import math
import os
import platform
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

#: The instruction-set flags (as /proc/cpuinfo names them) that change which kernels the libraries pick.
ISA_FLAGS = (
    "avx2",
    "fma",
    "avx512f",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "avx_vnni",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
)
LIBRARIES = ("torch", "onnxruntime", "onnxruntime-gpu", "numpy")
CPUINFO = Path("/proc/cpuinfo")
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")  # cgroup v2: "<quota> <period>" or "max <period>"


@dataclass(frozen=True)
class MachineInfo:
    """What identifies a machine for inference timings (see ``describe_machine``)."""

    cpu_model: str
    isa_flags: tuple[str, ...]
    logical_cores: int
    usable_cores: int  # the cores this process may use: its affinity, capped by a container's CPU quota
    system: str
    libraries: dict[str, str]
    threads: dict[str, int | str] = field(default_factory=dict)
    gpus: tuple[str, ...] = ()

    def line(self) -> str:
        """One line for a benchmark's output: CPU, ISA flags, cores, GPUs, library versions, threads."""
        flags = "/".join(self.isa_flags) or "none of " + "/".join(ISA_FLAGS[:3])
        libraries = ", ".join(f"{name} {version}" for name, version in self.libraries.items())
        threads = ", ".join(f"{name} {value}" for name, value in self.threads.items())
        gpus = f"; GPU: {', '.join(self.gpus)}" if self.gpus else "; no GPU"
        return (
            f"machine: {self.cpu_model} ({flags}), {self.usable_cores} of {self.logical_cores} logical cores"
            f"{gpus}; {self.system}; {libraries}; threads: {threads or 'library defaults'}"
        )

    def to_json(self) -> dict[str, Any]:
        """The fields as JSON values (lists for tuples)."""
        return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()}


def describe_machine(threads: dict[str, int | str] | None = None) -> MachineInfo:
    """This machine: ``threads`` adds the thread settings a caller chose (e.g. onnxruntime's
    intra-op threads) to torch's own and the ``OMP_NUM_THREADS`` environment variable.

    Reads ``/proc/cpuinfo`` on Linux; elsewhere the CPU model is ``platform.processor()`` and the
    ISA flags are unknown (empty).
    """
    model, flags = _cpuinfo()
    settings: dict[str, int | str] = {}
    gpus: tuple[str, ...] = ()
    try:
        import torch
    except ImportError:  # the ONNX-only deployments need no torch
        pass
    else:
        settings["torch intra-op"] = torch.get_num_threads()
        settings["torch inter-op"] = torch.get_num_interop_threads()
        if torch.cuda.is_available():
            gpus = tuple(torch.cuda.get_device_name(index) for index in range(torch.cuda.device_count()))
    if "OMP_NUM_THREADS" in os.environ:
        settings["OMP_NUM_THREADS"] = os.environ["OMP_NUM_THREADS"]
    settings.update(threads or {})
    return MachineInfo(
        cpu_model=model,
        isa_flags=flags,
        logical_cores=os.cpu_count() or 1,
        usable_cores=usable_cores(),
        system=f"{platform.system()} {platform.machine()}, Python {platform.python_version()}",
        libraries=_library_versions(),
        threads=settings,
        gpus=gpus,
    )


def parse_cpuinfo(text: str) -> tuple[str, tuple[str, ...]]:
    """The CPU model name and the ``ISA_FLAGS`` present, from the text of ``/proc/cpuinfo``."""
    model, present = "", set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not model:
            model = value.strip()
        elif key == "flags" and not present:
            present = set(value.split())
    return model, tuple(flag for flag in ISA_FLAGS if flag in present)


def _cpuinfo() -> tuple[str, tuple[str, ...]]:
    try:
        model, flags = parse_cpuinfo(CPUINFO.read_text())
    except OSError:
        model, flags = "", ()
    return model or platform.processor() or "unknown CPU", flags


def cpu_quota(text: str) -> float | None:
    """The CPUs a cgroup v2 ``cpu.max`` (``"<quota> <period>"``) allows; None without a limit."""
    fields = text.split()
    if len(fields) != 2 or fields[0] == "max":
        return None
    try:
        return int(fields[0]) / int(fields[1])
    except (ValueError, ZeroDivisionError):
        return None


def usable_cores() -> int:
    """The cores this process may use: its CPU affinity, capped by the container's CPU quota
    (a container limited to 2 CPUs on a 64-core host sees 64 cores, and onnxruntime would start
    a thread per physical core)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    try:
        quota = cpu_quota(CGROUP_CPU_MAX.read_text())
    except OSError:
        quota = None
    return max(1, min(cores, math.ceil(quota))) if quota else cores


def _library_versions() -> dict[str, str]:
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions
