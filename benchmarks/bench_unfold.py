"""OmniFold wall time of heplearn versus the PyPI ``omnifold`` package (0.1.36), on the same events.

The events are the Gaussian problem of the tests (generator N(0, 1), truth N(0.2, 0.8²), smearing
0.5, ``--events`` per sample, ``--dims`` independent copies), unfolded with ``--iterations``
iterations. Both sides train the same network size: an MLP with hidden layers (64, 128, 64) (the
package's ``omnifold.net.MLP`` default; GELU there, ReLU in heplearn's ``mlp``), batch ``--batch``,
``--epochs`` epochs per step (the package's early stopping is set longer than that, so both run all
of them), learning rate 1e-3 for Adam, 80% of the events for training and 20% for validation.
Ours: ``heplearn.methods.unfolding.omnifold`` (AdamW without weight decay, cosine schedule). The
reference runs in its own venv (``bash benchmarks/omnifold_env.sh``, TensorFlow CPU) in a child
process: this file run by that venv's python with ``--worker omnifold``, which only builds the
package's ``DataLoader``/``MLP``/``MultiFold`` and calls ``Unfold``. Both sides use ``--threads``
threads; rounds alternate (ours, reference, ours, ...). Each side's closure is printed: the
unfolded mean and σ of the first dimension beside the exact recursion's.

    bash benchmarks/omnifold_env.sh      # once: creates benchmarks/.omnifold-venv
    python benchmarks/bench_unfold.py [--quick]

The last line is JSON: ours and the reference in seconds (best round) and the speed-up
reference / ours (target: >= 1.5).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DEFAULT_VENV = Path(__file__).resolve().parent / ".omnifold-venv"
HIDDEN = (64, 128, 64)


def samples(events: int, dims: int, seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    gen = rng.normal(0, 1, (events, dims)).astype(np.float32)
    reco = (gen + rng.normal(0, 0.5, (events, dims))).astype(np.float32)
    data = (rng.normal(0.2, 0.8, (events, dims)) + rng.normal(0, 0.5, (events, dims))).astype(np.float32)
    return {"gen": gen, "reco": reco, "data": data}


def recursion(iterations: int) -> tuple[float, float]:
    """The exact (mean, σ) after ``iterations`` (tests/gaussian_unfolding.py)."""
    mean, variance = 0.0, 1.0
    for _ in range(iterations):
        gain = variance / (variance + 0.25)
        mean, variance = mean + gain * (0.2 - mean), gain**2 * (0.64 + 0.25) + gain * 0.25
    return mean, float(np.sqrt(variance))


def moments(values: np.ndarray, weights: np.ndarray) -> tuple[float, float]:
    mean = float(np.average(values, weights=weights))
    return mean, float(np.sqrt(np.average((values - mean) ** 2, weights=weights)))


def run_ours(events: dict[str, np.ndarray], args: argparse.Namespace) -> tuple[float, np.ndarray]:
    import torch

    import heplearn.evaluation.metrics  # noqa: F401 - imported by the first validation; not part of the timing
    from heplearn.methods.unfolding import OmniFoldSettings, level_arrays, omnifold
    from heplearn.run_config import ModelConfig, TrainingConfig

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    result = omnifold(
        level_arrays({"jet": events["gen"]}),
        level_arrays({"jet": events["reco"]}),
        level_arrays({"jet": events["data"]}),
        model=ModelConfig(name="mlp", hidden=HIDDEN, dropout=0.0, batch_norm=False),
        training=TrainingConfig(
            epochs=args.epochs,
            batch_size=args.batch,
            learning_rate=1e-3,
            weight_decay=0.0,
            early_stopping_patience=None,
            threads=args.threads,
        ),
        settings=OmniFoldSettings(iterations=args.iterations, validation_fraction=0.2),
        progress=False,
    )
    return time.perf_counter() - started, result.weights


def worker(args: argparse.Namespace) -> None:
    """In the omnifold venv: unfold the events of ``--events-file`` with the package, time it."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    from omnifold import MLP, DataLoader, MultiFold
    from omnifold.net import weighted_binary_crossentropy

    events = np.load(args.events_file)
    folder = tempfile.mkdtemp()
    started = time.perf_counter()
    data = DataLoader(reco=events["data"], normalize=True)
    mc = DataLoader(reco=events["reco"], gen=events["gen"], normalize=True)
    dims = events["gen"].shape[1]
    unfolding = MultiFold(
        "bench",
        MLP(dims, list(HIDDEN)),
        MLP(dims, list(HIDDEN)),
        data,
        mc,
        weights_folder=folder,
        log_folder=folder,
        niter=args.iterations,
        batch_size=args.batch,
        epochs=args.epochs,
        lr=1e-3,
        early_stop=args.epochs + 10,
        train_frac=0.8,
    )
    # Keras 3 clones compiled models through their config: the package's loss must be found by name
    with tf.keras.utils.custom_object_scope({"weighted_binary_crossentropy": weighted_binary_crossentropy}):
        unfolding.Unfold()
    weights = unfolding.reweight(events["gen"], unfolding.model2, batch_size=10_000)
    seconds = time.perf_counter() - started
    np.save(Path(folder) / "weights.npy", weights)
    print(json.dumps({"seconds": seconds, "weights": str(Path(folder) / "weights.npy")}), flush=True)


def run_reference(events_file: Path, args: argparse.Namespace) -> tuple[float, np.ndarray]:
    python = Path(args.venv) / "bin" / "python"
    if not python.is_file():
        sys.exit(f"no omnifold venv at {args.venv}: run `bash benchmarks/omnifold_env.sh` first")
    command = [
        str(python),
        __file__,
        "--worker",
        "omnifold",
        "--events-file",
        str(events_file),
        "--iterations",
        str(args.iterations),
        "--epochs",
        str(args.epochs),
        "--batch",
        str(args.batch),
        "--threads",
        str(args.threads),
    ]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    output = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if output.returncode != 0:
        sys.exit(f"the omnifold worker failed:\n{output.stderr[-3000:]}")
    answer = json.loads(output.stdout.strip().splitlines()[-1])
    return answer["seconds"], np.load(answer["weights"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000, help="events per sample (simulation, data)")
    parser.add_argument("--dims", type=int, default=1)
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="5×10⁴ events, 2 iterations, 3 epochs")
    parser.add_argument("--venv", default=str(DEFAULT_VENV))
    parser.add_argument("--worker", choices=["omnifold"], help=argparse.SUPPRESS)
    parser.add_argument("--events-file", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:  # the omnifold venv has no heplearn, which machine.py imports
        worker(args)
        return
    from machine import print_machine

    print_machine()
    if args.quick:
        args.events, args.iterations, args.epochs, args.batch = 50_000, 2, 3, 2_000
    events = samples(args.events, args.dims)
    folder = Path(tempfile.mkdtemp())
    events_file = folder / "events.npz"
    np.savez(events_file, **events)
    times: dict[str, list[float]] = {"ours": [], "reference": []}
    closure: dict[str, tuple[float, float]] = {}
    for _ in range(args.rounds):
        for side, run in (
            ("ours", lambda: run_ours(events, args)),
            ("reference", lambda: run_reference(events_file, args)),
        ):
            seconds, weights = run()
            times[side].append(seconds)
            closure[side] = moments(events["gen"][:, 0].astype(np.float64), np.asarray(weights, np.float64))
            print(
                f"{side:>9}: {seconds:8.1f} s   unfolded (mean, σ) = ({closure[side][0]:.4f}, {closure[side][1]:.4f})",
                flush=True,
            )
    expected = recursion(args.iterations)
    ours, reference = min(times["ours"]), min(times["reference"])
    print(
        f"\n{args.events} events per sample, {args.dims}-D, {args.iterations} iterations, {args.epochs} epochs, "
        f"batch {args.batch}, {args.threads} threads"
    )
    print(f"{'':>9}  {'seconds':>8}  {'mean':>7}  {'σ':>7}")
    print(f"{'exact':>9}  {'':>8}  {expected[0]:7.4f}  {expected[1]:7.4f}")
    for side, seconds in (("ours", ours), ("reference", reference)):
        print(f"{side:>9}  {seconds:8.1f}  {closure[side][0]:7.4f}  {closure[side][1]:7.4f}")
    print(json.dumps({"ours": round(ours, 2), "reference": round(reference, 2), "ratio": round(reference / ours, 2)}))


if __name__ == "__main__":
    main()
