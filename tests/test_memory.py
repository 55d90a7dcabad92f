"""retain_freed_memory: a loop that allocates and frees the same large block faults its pages in once."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from heplearn.memory import retain_freed_memory

_FAULTS_PER_LOOP = textwrap.dedent(
    """
    import resource, sys
    import torch
    from heplearn.memory import retain_freed_memory

    def faults():  # minor page faults of 20 allocations of 48 MiB, each written and freed
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(20):
            block = torch.empty(12 << 20)
            block.fill_(1.0)
            del block
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

    default = faults()
    applied = retain_freed_memory()
    faults()  # the first allocation after the change still faults its pages in
    print(default, faults(), applied, retain_freed_memory())
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_freed_blocks_are_reused_instead_of_faulted_in_again() -> None:
    result = subprocess.run([sys.executable, "-c", _FAULTS_PER_LOOP], capture_output=True, text=True, check=True)
    default, retained, applied, again = result.stdout.split()
    if applied != "True":
        pytest.skip("not glibc")
    pages = 20 * (48 << 20) // 4096
    assert int(default) > 0.9 * pages  # 48 MiB is above glibc's mmap threshold: every block faults anew
    assert int(retained) < 0.01 * pages
    assert again == "True"  # once per process, and it says so again


def test_retain_freed_memory_says_whether_it_took_effect() -> None:
    assert isinstance(retain_freed_memory(), bool)
