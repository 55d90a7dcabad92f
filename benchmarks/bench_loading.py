"""Jets per second from Parquet and ROOT into padded tensors, beside the raw read of the same columns.

Ours: ``JetStream`` (selection-free config, 7 per-particle features at 128 slots, pT ordering,
standardisation, shuffling buffer, batches of 256) through ``stream_loader`` with 0 and 2 workers,
one epoch per round. As in training, one loader serves every epoch (its workers persist), so the
first round also starts the workers: its rate is printed apart ("first epoch").
Reference: the raw columnar read, with pyarrow / uproot and no padding, of exactly the file
columns the loader reads (the features' inputs and the labels).
All run in the same process, interleaved (each round runs the raw read, then ours with 0 and 2
workers), best of ``--repeats`` rounds (5 by default: this shared machine has slow spells).

    python benchmarks/bench_loading.py [--quick] [--jets N]

The last line is JSON: ours (worst case, jets/s), reference (jets/s) and their ratio.
"""

from __future__ import annotations

import argparse
import itertools
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import awkward as ak
import numpy as np
import pyarrow.parquet as pq
import uproot
from machine import print_machine

from heplearn.data import io
from heplearn.data.config import load_data_config
from heplearn.data.in_memory import fit_preprocessing
from heplearn.data.pieces import PieceReader
from heplearn.data.stream import JetStream
from heplearn.data.stream_loader import stream_loader

FEATURES = ["part_deta", "part_dphi", "part_logpt", "part_loge", "part_logptrel", "part_logerel", "part_deltaR"]


def synthetic_jets(n: int, seed: int = 0) -> ak.Array:
    """JetClass-like jets: 10-120 constituents (mean ~50), exponential pT, Gaussian spread."""
    rng = np.random.default_rng(seed)
    counts = np.clip(rng.normal(50, 20, n).astype(int), 10, 120)
    total = int(counts.sum())
    pt = rng.exponential(15.0, total) + 0.5
    jet_index = np.repeat(np.arange(n), counts)
    pt = pt[np.lexsort((-pt, jet_index))]  # pT-ordered within each jet, as in JetClass files
    deta, dphi = rng.normal(0, 0.2, total), rng.normal(0, 0.2, total)
    eta, phi = np.repeat(rng.uniform(-2, 2, n), counts) + deta, np.repeat(rng.uniform(-3, 3, n), counts) + dphi
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    energy = np.sqrt(px**2 + py**2 + pz**2)

    def jagged(values: np.ndarray) -> ak.Array:
        return ak.unflatten(values.astype(np.float32), counts)

    return ak.zip(
        {
            "part_px": jagged(px),
            "part_py": jagged(py),
            "part_pz": jagged(pz),
            "part_energy": jagged(energy),
            "part_deta": jagged(deta),
            "part_dphi": jagged(dphi),
            "jet_pt": ak.to_numpy(np.hypot(ak.sum(jagged(px), axis=1), ak.sum(jagged(py), axis=1))).astype(np.float32),
            "jet_energy": ak.to_numpy(ak.sum(jagged(energy), axis=1)),
            "label_sig": (signal := rng.integers(0, 2, n)),
            "label_bkg": 1 - signal,
        },
        depth_limit=1,
    )


def rate(function: Callable[[], int]) -> float:
    """Jets/s of one call; ``function`` returns how many jets it read."""
    start = time.perf_counter()
    jets = function()
    return jets / (time.perf_counter() - start)


def interleaved(functions: dict[str, Callable[[], int]], repeats: int) -> dict[str, list[float]]:
    """The rates of each function over ``repeats`` rounds, each round calling every function once:
    the load of a shared machine changes over a run, and this spreads it over all of them."""
    rates: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            rates[name].append(rate(function))
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jets", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=5, help="rounds (epochs); at least 2")
    parser.add_argument("--quick", action="store_true", help="50k jets, 2 repeats (about a minute)")
    args = parser.parse_args()
    print_machine()
    if args.quick:
        args.jets, args.repeats = 50_000, 2
    args.repeats = max(args.repeats, 2)

    folder = Path(tempfile.mkdtemp(prefix="bench_loading_"))
    jets = synthetic_jets(args.jets)
    files = {
        "parquet": io.write(jets, folder / "jets.parquet", row_group_size=20_000),
        "root": io.write(jets, folder / "jets.root"),
    }
    config = load_data_config(
        {
            "train": [str(files["parquet"])],
            "chunk_size": 20_000,
            "inputs": {"particles": {"length": 128, "variables": FEATURES}},
        }
    )
    preprocessing = fit_preprocessing(config)
    columns = PieceReader(config).source(str(files["parquet"]))[1]

    def raw_parquet() -> int:
        return pq.read_table(files["parquet"], columns=columns).num_rows

    def raw_root() -> int:
        return len(uproot.open(files["root"])["tree"].arrays(columns, library="ak"))

    loaders = []

    def ours(kind: str, workers: int) -> Callable[[], int]:
        stream = JetStream([files[kind]], config, preprocessing, batch_size=256, buffer_size=40_000)
        loader = stream_loader(stream, num_workers=workers)
        loaders.append(loader)
        epochs = itertools.count()

        def run() -> int:
            loader.set_epoch(next(epochs))
            count = 0
            for batch in loader:
                assert batch["particles"].shape[1:] == (128, 7)
                count += len(batch["label"])
            return count

        return run

    rows = []
    for kind, raw in (("parquet", raw_parquet), ("root", raw_root)):
        rates = interleaved({"raw": raw, "0": ours(kind, 0), "2": ours(kind, 2)}, args.repeats)
        rows.extend(
            (kind, workers, max(rates[str(workers)]), rates[str(workers)][0], max(rates["raw"])) for workers in (0, 2)
        )
    for loader in loaders:
        loader.close()

    print(f"{'format':8} {'workers':>7} {'ours jets/s':>12} {'first epoch':>12} {'raw read jets/s':>16} {'ratio':>6}")
    for kind, workers, rate, first, reference in rows:
        print(f"{kind:8} {workers:7d} {rate:12,.0f} {first:12,.0f} {reference:16,.0f} {rate / reference:6.2f}")
    worst = min(rows, key=lambda row: row[2] / row[4])
    print(
        json.dumps(
            {
                "ours": round(worst[2]),
                "reference": round(worst[4]),
                "ratio": round(worst[2] / worst[4], 3),
                "case": f"{worst[0]}, {worst[1]} workers",
            }
        )
    )


if __name__ == "__main__":
    main()
