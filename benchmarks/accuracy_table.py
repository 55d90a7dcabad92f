"""The accuracy table of the README: every example config trained and evaluated on the same test jets.

Two samples, generated here beforehand (30k jets per class for top vs QCD, 20k for quark vs gluon):

    heplearn generate top qcd --jets 30000 --seed 7 -o data/top_qcd
    heplearn generate quark gluon --jets 20000 --radius 0.4 --pt-min 500 --pt-max 550 --seed 11 -o data/quark_gluon
    python benchmarks/accuracy_table.py --sample top_qcd
    python benchmarks/accuracy_table.py --sample quark_gluon
    python benchmarks/accuracy_table.py --write-subsets data/top_qcd/train.parquet
    python benchmarks/accuracy_table.py --sample top_qcd_learning_curve

Each model trains from its ``configs/`` file with the CPU sizes of ``TABLE`` below (the particle
networks in their "lite" presets for a few epochs: the paper presets train at tens of jets per
second on 2 cores); a finished run is reused. All runs are then applied to the same test file and
the table (AUC, background rejection 1/ε_B at ε_S = 30% and 50%, trainable parameters, training
minutes) is printed and written to ``<output>/table.md``, next to the full comparison report.
For quark vs gluon every network runs twice: with the particle-type inputs of
``quark_gluon_data.yaml`` and with the kinematic inputs only.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from heplearn.data.files import atomic_path, write_text_atomic
from heplearn.evaluation.compare import compare_runs
from heplearn.run_config import load_run_config
from heplearn.trained_model import TrainedModel
from heplearn.training.from_config import train

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
KINEMATIC = "[part_deta,part_dphi,part_logpt,part_loge,part_logptrel,part_logerel,part_deltaR]"

# sample -> row name -> (config file, overrides sized for about 1-25 minutes each on 2 CPU cores)
TABLE: dict[str, dict[str, tuple[str, list[str]]]] = {
    "top_qcd": {
        "cuts": ("top_qcd_cuts.yaml", []),
        "likelihood": ("top_qcd_likelihood.yaml", []),
        "bdt": ("top_qcd_bdt.yaml", []),
        "mlp": ("top_qcd_mlp.yaml", []),
        "pfn": ("top_qcd_pfn.yaml", ["training.epochs=8"]),
        "efn": ("top_qcd_efn.yaml", ["training.epochs=8"]),
        "cnn": ("top_qcd_cnn.yaml", ["training.epochs=8"]),
        "rnn": ("top_qcd_rnn.yaml", ["training.epochs=6"]),
        "particlenet": (
            "top_qcd_particlenet.yaml",
            ["model.preset=lite", "training.epochs=3", "training.learning_rate=0.003"],
        ),
        "part": ("top_qcd_part.yaml", ["model.preset=lite", "training.epochs=2"]),
    },
    # Is a network limited by the training sample? The same models on a quarter and a half of it
    # (the first 12,000 / 24,000 jets of train.parquet, written by --write-subsets).
    "top_qcd_learning_curve": {
        f"{model} ({size} training jets)": (config, [f"data.train=[data/top_qcd/train_{part}.parquet]", *overrides])
        for size, part in (("12k", "quarter"), ("24k", "half"))
        for model, config, overrides in (
            ("bdt", "top_qcd_bdt.yaml", []),
            ("pfn", "top_qcd_pfn.yaml", ["training.epochs=8"]),
            (
                "particlenet",
                "top_qcd_particlenet.yaml",
                ["model.preset=lite", "training.epochs=3", "training.learning_rate=0.003"],
            ),
        )
    },
    "quark_gluon": {
        "pfn": ("quark_gluon_pfn.yaml", ["training.epochs=8"]),
        "pfn (kinematics only)": (
            "quark_gluon_pfn.yaml",
            [
                "training.epochs=8",
                f"data.inputs.particles.variables={KINEMATIC}",
                "data.inputs.particles.skip_standardize=[]",
            ],
        ),
        "particlenet": ("quark_gluon_particlenet.yaml", ["training.epochs=3", "training.learning_rate=0.003"]),
        "particlenet (kinematics only)": (
            "quark_gluon_particlenet.yaml",
            [
                "training.epochs=3",
                "training.learning_rate=0.003",
                f"data.inputs.particles.variables={KINEMATIC}",
                "data.inputs.particles.skip_standardize=[]",
            ],
        ),
    },
}


def run_name(row: str) -> str:
    return row.replace(" (kinematics only)", "_kinematic").replace(" training jets)", "").replace(" (", "_")


def write_subsets(train: Path) -> None:
    """The first quarter and half of a (shuffled) training file, for the learning curve."""
    import pyarrow.parquet as pq

    table = pq.read_table(train)
    for fraction, part in ((0.25, "quarter"), (0.5, "half")):
        target = train.with_name(f"train_{part}.parquet")
        with atomic_path(target) as temporary:
            pq.write_table(table.slice(0, int(table.num_rows * fraction)), temporary, row_group_size=10_000)
        print(f"wrote {target}")


def count_parameters(run_dir: Path) -> str:
    """Trainable parameters of a network run ('-' for the classical models)."""
    network = TrainedModel.load(run_dir).network
    if network is None:
        return "-"
    return f"{sum(parameter.numel() for parameter in network.parameters() if parameter.requires_grad):,}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sample", choices=sorted(TABLE), default="top_qcd")
    parser.add_argument("--models", nargs="+", help="rows to run (default: all of the sample)")
    parser.add_argument("--output", type=Path, default=Path("runs/accuracy"))
    parser.add_argument(
        "--write-subsets",
        type=Path,
        metavar="TRAIN_PARQUET",
        help="write the learning curve's training subsets next to this file, then exit",
    )
    arguments = parser.parse_args()
    if arguments.write_subsets:
        write_subsets(arguments.write_subsets)
        return
    rows = TABLE[arguments.sample]
    names = arguments.models or list(rows)
    output = arguments.output / arguments.sample
    minutes: dict[str, float] = {}
    run_dirs: list[Path] = []
    test_files: list[str] = []
    for row in names:
        config_file, overrides = rows[row]
        config = load_run_config(CONFIGS / config_file, overrides)
        test_files = test_files or list(config.data.test)
        run_dir = output / "runs" / run_name(row)
        timing = run_dir / "training_minutes.json"
        if not timing.is_file():
            if run_dir.exists():
                shutil.rmtree(run_dir)  # an interrupted earlier run of this row: start it afresh
            started = time.perf_counter()
            print(f"training {row}", flush=True)
            train(config, name=run_name(row), runs_dir=output / "runs", progress=True)
            write_text_atomic(timing, json.dumps((time.perf_counter() - started) / 60))
        minutes[row] = json.loads(timing.read_text())
        run_dirs.append(run_dir)
    comparison = compare_runs(run_dirs, test_files, output, names=names, progress=True)
    lines = [
        f"{arguments.sample}, test file {', '.join(test_files)}",
        "",
        "| model | AUC | 1/ε_B at ε_S = 30% | 1/ε_B at ε_S = 50% | parameters | training minutes |",
        "|---|---|---|---|---|---|",
    ]
    for entry, run_dir in zip(comparison.metrics["models"], run_dirs, strict=True):
        figures = entry["figures"]
        lines.append(
            f"| {entry['name']} | {figures['auc']:.4f} | {_rejection(figures, 30)} "
            f"| {_rejection(figures, 50)} | {count_parameters(run_dir)} "
            f"| {minutes[entry['name']]:.1f} |"
        )
    table = "\n".join(lines)
    write_text_atomic(output / "table.md", table + "\n")
    print(table)
    print(f"report: {comparison.report}")


def _rejection(figures: dict, percent: int) -> str:
    """1/ε_B at ε_S = ``percent``%, with the ε_S of the cut that exists for a discrete score."""
    value, reached = figures[f"rejection_at_{percent}"], figures.get(f"signal_efficiency_at_{percent}")
    text = "inf" if value is None else f"{value:.1f}"
    return text + (f" (at ε_S = {reached:.0%})" if reached is not None else "")


if __name__ == "__main__":
    main()
