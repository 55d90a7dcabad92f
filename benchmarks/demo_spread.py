"""The demo's run-to-run spread: the same jets, the demo's models trained with several seeds.

``make demo`` is deterministic on one machine (fixed threads, fixed seeds, torch's deterministic
algorithms), but a network's training is chaotic: on a CPU whose vector kernels round differently
(AVX-512 against AVX2) the first differing bit grows into a different minimum. How far apart two
such trainings land is what the spread over training seeds measures, and it is the figure to read
beside the README's table. The jets are generated once (seed 1, as the demo) and shared.

    python benchmarks/demo_spread.py --seeds 5 --output demo_spread          # every demo model
    python benchmarks/demo_spread.py --seeds 3 --model pfn --model part      # only these
    python benchmarks/demo_spread.py --quick                                 # 2 seeds, 2,000 jets per class, pfn

Prints one row per model (mean, standard deviation, min and max of the AUC and of 1/ε_B at ε_S = 50%,
the mean bootstrap uncertainty of one AUC for comparison) and a last JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

from heplearn.demo import DEMO_MODELS, JETS_PER_CLASS, DemoResult, available_models, run_demo


def machine() -> str:
    """The CPU model and core count, for comparing figures from two machines."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores"


def main() -> None:
    """Train the demo's models with ``--seeds`` seeds on the same jets and print the spread of their figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--model", action="append", choices=list(DEMO_MODELS), help="Only these (repeatable).")
    parser.add_argument("--jets", type=int, default=JETS_PER_CLASS, help="Jets per class (the demo's by default).")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--output", type=Path, default=Path("demo_spread"))
    parser.add_argument("--quick", action="store_true", help="2 seeds, 2,000 jets per class, pfn only.")
    arguments = parser.parse_args()
    if arguments.quick:
        arguments.seeds, arguments.jets, arguments.model = 2, 2000, arguments.model or ["pfn"]
    models = arguments.model or available_models()
    print(f"machine: {machine()}; {arguments.seeds} seeds; {arguments.jets} jets per class; models: {models}")

    by_model: dict[str, list[DemoResult]] = {name: [] for name in models}
    shared = arguments.output / "data"
    started = time.perf_counter()
    for seed in range(arguments.seeds):
        folder = arguments.output / f"seed{seed}"
        folder.mkdir(parents=True, exist_ok=True)
        if seed > 0 and not (folder / "data").exists():
            (folder / "data").symlink_to(shared.resolve(), target_is_directory=True)  # the chunks are reused
        for result in run_demo(folder, arguments.jets, arguments.workers, models, progress=False, seed=seed):
            by_model[result.model].append(result)
        if seed == 0 and not shared.exists():
            shared.symlink_to((folder / "data").resolve(), target_is_directory=True)

    print("\n| model | AUC mean | AUC std over seeds | AUC min–max | bootstrap σ(AUC) | 1/ε_B at 50%: mean ± std |")
    print("|---|---|---|---|---|---|")
    rows = {}
    for name, results in by_model.items():
        aucs = [r.auc for r in results]
        rejections = [r.rejection_at_50 for r in results]
        spread = statistics.stdev(aucs) if len(aucs) > 1 else 0.0
        bootstrap = statistics.mean(r.auc_uncertainty or 0.0 for r in results)
        finite = [r for r in rejections if r != float("inf")]
        rejection = f"{statistics.mean(finite):.1f} ± {statistics.stdev(finite):.1f}" if len(finite) > 1 else "—"
        print(
            f"| {name} | {statistics.mean(aucs):.4f} | {spread:.4f} | {min(aucs):.4f}–{max(aucs):.4f} | "
            f"{bootstrap:.4f} | {rejection} |"
        )
        rows[name] = {
            "auc": aucs,
            "rejection_at_50": [r if r != float("inf") else None for r in rejections],
            "auc_std": spread,
            "bootstrap_auc_uncertainty": bootstrap,
        }
    print(f"\n{time.perf_counter() - started:.0f} s")
    print(
        json.dumps({"machine": machine(), "seeds": arguments.seeds, "jets_per_class": arguments.jets, "models": rows})
    )


if __name__ == "__main__":
    main()
