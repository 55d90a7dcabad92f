"""Adversarial input robustness on generated top vs QCD: the ROC figure of the CMS UParT note.

    heplearn generate top qcd --jets 30000 --seed 7 -o data/top_qcd --workers 2
    python benchmarks/robustness_top.py              # 12,000 training jets, 10 epochs
    python benchmarks/robustness_top.py --quick      # 4,000 training jets, 3 epochs, 2,000 test jets

UParT (CMS-DP-2024-066) trains the tagger on inputs perturbed along the gradient of its loss and
shows four ROC curves: the nominal and the adversarially trained tagger, each on nominal inputs
and on inputs attacked against that tagger itself. Here the tagger is the PFN of
``configs/top_qcd_pfn_adversarial.yaml`` on the constituents; the attack is the normed gradient
method (NGM, Stein et al., arXiv:2303.14511), δ = ε·∇ₓL/rms(∇ₓL) per jet on the standardised
particle features of the real particles (``heplearn.methods.robustness``). UParT's "R-NGM"
(rectified NGM) is not reproduced: its published definition was not found (see the module).

Both taggers are trained with the same seed, data and network, the nominal one with
``training.step={name: single}``. Each is evaluated on the test jets as they are, attacked against
itself (the UParT figure), and attacked against the other tagger (the transfer case: an attack
that does not know the network it meets), plus an ε scan of the self-attack. The training subset
is the first ``--train-jets`` jets of the (shuffled) training file, written under ``--runs-dir``.

The last line is ``{"ours": AUC of the adversarially trained tagger under attack, "reference": the
nominal tagger's under attack, "ratio": ours/reference}``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch

from heplearn.data.batches import to_batch, trim_padding
from heplearn.data.files import atomic_path
from heplearn.data.in_memory import load_arrays
from heplearn.evaluation import plots
from heplearn.evaluation.metrics import Roc, roc
from heplearn.methods.robustness import Attack, attack_batch, attacked_keys
from heplearn.progress import progress_bar
from heplearn.run_config import LossTermConfig, load_run_config
from heplearn.tasks import Classification
from heplearn.trained_model import TrainedModel
from heplearn.training.from_config import train
from heplearn.training.losses import TermContext, build_terms

PLAIN_STEP = "training.step={name: single}"


def subset(source: str, jets: int, destination: Path) -> Path:
    """The first ``jets`` jets of the Parquet file ``source`` written to ``destination`` (kept if there)."""
    if destination.is_file() and pq.ParquetFile(destination).metadata.num_rows == jets:
        return destination
    table = pq.read_table(source)
    if table.num_rows < jets:
        raise SystemExit(f"{source}: {table.num_rows} jets, fewer than the {jets} asked for")
    with atomic_path(destination) as temporary:
        pq.write_table(table.slice(0, jets), temporary)
    return destination


def cross_entropy_task(model: TrainedModel) -> Classification:
    """The run's classification task with the cross entropy as its loss (what the attack climbs)."""
    task = model.task
    if not isinstance(task, Classification):
        raise SystemExit(f"{model.run_dir}: not a classifier")
    task.terms = build_terms([LossTermConfig(name="cross_entropy")], task, TermContext(model.config.training))
    return task


def attacked_scores(
    model: TrainedModel,
    attacker: TrainedModel | None,
    arrays: object,
    attack: Attack,
    epsilon: float,
    batch_size: int = 500,
    label: str = "",
) -> np.ndarray:
    """p(top) of ``model`` on the test jets, attacked against ``attacker`` (nominal inputs if None).

    Both runs standardise their inputs with the same constants (same training jets), so an attack
    computed in the attacker's standardised space applies to the other model as it is; this is checked.
    """
    assert model.network is not None
    network = model.network.eval()
    scaled = model.preprocessing.apply(arrays)  # type: ignore[arg-type]
    if attacker is not None:
        assert attacker.network is not None
        attacker_network = attacker.network.eval()
        task = cross_entropy_task(attacker)
        keys = attacked_keys(attacker_network, attacker.config.data)
        other = attacker.preprocessing.apply(arrays)  # type: ignore[arg-type]
        for key in keys:
            if not np.array_equal(other.inputs[key], scaled.inputs[key]):
                raise SystemExit(f"{model.run_dir} and {attacker.run_dir} standardise {key!r} differently")
    scores = []
    for start in progress_bar(range(0, len(scaled), batch_size), desc=label or "scoring", unit="batch"):
        batch = trim_padding(to_batch(scaled.take(slice(start, start + batch_size))))
        if attacker is not None:
            batch = attack_batch(attacker_network, task, batch, keys, attack, epsilon)
        with torch.no_grad():
            scores.append(torch.softmax(network(batch).float(), -1)[:, 0].numpy())
    return np.concatenate(scores)


def draw(curves: dict[tuple[str, str], Roc], attack: str, epsilon: float, path: Path, sample: str) -> None:
    """UParT's figure: 1/ε_B against ε_S, colour the training, solid nominal and dashed attacked inputs."""
    from matplotlib import pyplot

    grid = np.linspace(0.05, 1.0, 191)
    style = plots.PlotStyle(formats=("png",))
    trainings = {
        "nominal": ("nominal training", plots.COLORS[0]),
        "adversarial": (f"{attack.upper()} training", plots.COLORS[2]),
    }
    with plots.plot_style():
        figure, axis = pyplot.subplots(figsize=(9, 8), layout="constrained")
        for name, (training, color) in trainings.items():
            for inputs, linestyle in (("clean", "-"), (name, "--")):
                curve = curves[name, inputs]
                background = np.interp(grid, curve.signal_efficiency, curve.background_efficiency)
                with np.errstate(divide="ignore"):
                    rejection = np.where(background > 0, 1.0 / np.maximum(background, 1e-300), np.nan)
                shown = "nominal inputs" if inputs == "clean" else f"{attack.upper()} attack, ε = {epsilon:g}"
                axis.plot(
                    grid,
                    rejection,
                    color=color,
                    linestyle=linestyle,
                    label=f"{training}, {shown} (AUC {curve.auc:.3f})",
                )
        axis.set_yscale("log")
        axis.set_xlim(0, 1)
        axis.set_ylim(0.8, 5e4)  # room for the legend above the curves
        axis.set_xlabel(r"Signal efficiency $\varepsilon_\mathrm{S}$ (top)")
        axis.set_ylabel(r"Background rejection $1/\varepsilon_\mathrm{B}$ (QCD)")
        axis.legend(
            loc="upper right",
            fontsize="x-small",
            title=f"{sample}\nattack computed against each tagger itself",
            title_fontsize="x-small",
        )
        plots.experiment_label(axis, style)
        plots.save_figure(figure, path.parent, path.stem, style)


def train_or_reuse(config_path: str, overrides: list[str], run_dir: Path, reuse: bool) -> tuple[Path, str]:
    """Train one variant into ``run_dir`` (or take the finished run there with ``reuse``); its time."""
    if reuse and (run_dir / "model.safetensors").is_file():
        return run_dir, "reused"
    started = time.perf_counter()
    config = load_run_config(config_path, overrides)
    result = train(config, name=run_dir.name, runs_dir=run_dir.parent, progress=True)
    return result.run_dir, f"{time.perf_counter() - started:.0f}"


def main() -> None:
    """Train the nominal and the adversarially trained tagger, evaluate both, draw and tabulate."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-c", "--config", default="configs/top_qcd_pfn_adversarial.yaml")
    parser.add_argument("--train", default="data/top_qcd/train.parquet")
    parser.add_argument("--val", default="data/top_qcd/val.parquet")
    parser.add_argument("--test", default="data/top_qcd/test.parquet")
    parser.add_argument("--train-jets", type=int, default=None, help="default 12000 (--quick: 4000)")
    parser.add_argument("--val-jets", type=int, default=2000)
    parser.add_argument("--test-jets", type=int, default=None, help="default all (--quick: 2000)")
    parser.add_argument("--epochs", type=int, default=None, help="default the config's (--quick: 3)")
    parser.add_argument("--attack", choices=["fgsm", "ngm"], default=None, help="default the config's")
    parser.add_argument("--epsilon", type=float, default=None, help="default the config's")
    parser.add_argument("--clean-weight", type=float, default=None, help="share of the loss on nominal inputs")
    parser.add_argument("--scan", type=float, nargs="*", default=[0.01, 0.05, 0.1], help="extra ε of the self-attack")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs/robustness_top"))
    parser.add_argument("--plot", type=Path, default=Path("docs/robustness_top.png"))
    parser.add_argument("--reuse", action="store_true", help="take a variant's finished run from --runs-dir")
    parser.add_argument("--quick", action="store_true")
    arguments = parser.parse_args()
    torch.set_num_threads(1)
    train_jets = arguments.train_jets or (4000 if arguments.quick else 12000)
    test_jets = arguments.test_jets or (2000 if arguments.quick else None)
    epochs = arguments.epochs or (3 if arguments.quick else None)
    arguments.runs_dir.mkdir(parents=True, exist_ok=True)
    train_file = subset(arguments.train, train_jets, arguments.runs_dir / f"train_{train_jets}.parquet")
    val_file = subset(arguments.val, arguments.val_jets, arguments.runs_dir / f"val_{arguments.val_jets}.parquet")
    common = [f"data.train=[{train_file}]", f"data.val=[{val_file}]", "training.threads=1"]
    if epochs:
        common.append(f"training.epochs={epochs}")
    if arguments.attack:
        common.append(f"training.step.attack={arguments.attack}")
    if arguments.epsilon:
        common.append(f"training.step.epsilon={arguments.epsilon}")
    if arguments.clean_weight is not None:
        common.append(f"training.step.clean_weight={arguments.clean_weight}")
    step = load_run_config(arguments.config, common).training.step
    attack, epsilon = step.settings["attack"], float(step.settings["epsilon"])
    clean = float(step.settings.get("clean_weight", 0.0))
    size = f"{train_jets}_{epochs or 'cfg'}"
    variants = {
        "nominal": ([PLAIN_STEP], f"nominal_{size}"),  # the same run whatever the attack
        "adversarial": ([], f"adversarial_{size}_{attack}{epsilon:g}_clean{clean:g}"),
    }
    models, seconds = {}, {}
    for name, (overrides, directory) in variants.items():
        run_dir, seconds[name] = train_or_reuse(
            arguments.config, common + overrides, arguments.runs_dir / directory, arguments.reuse
        )
        models[name] = TrainedModel.load(run_dir)
    arrays, _ = load_arrays([arguments.test], models["nominal"].config.data, max_jets=test_jets)
    is_signal = arrays.label == 0
    curves: dict[tuple[str, str], Roc] = {}  # (tagger, "clean" or the tagger the attack was computed on)
    for name, model in models.items():
        curves[name, "clean"] = roc(is_signal, attacked_scores(model, None, arrays, attack, epsilon, label=name))
        for attacker_name, attacker in models.items():
            scores = attacked_scores(model, attacker, arrays, attack, epsilon, label=f"{name} ← {attacker_name}")
            curves[name, attacker_name] = roc(is_signal, scores)
    scan = {
        (name, value): roc(is_signal, attacked_scores(model, model, arrays, attack, value, label=f"{name} ε={value:g}"))
        for value in arguments.scan
        for name, model in models.items()
        if value != epsilon
    }
    for name in models:
        scan[name, 0.0], scan[name, epsilon] = curves[name, "clean"], curves[name, name]
    n_background = int((~is_signal).sum())
    draw(curves, attack, epsilon, arguments.plot, f"top vs QCD, PFN, {len(arrays)} test jets")

    print(f"{train_jets} training jets, {len(arrays)} test jets ({n_background} QCD); attack {attack}, ε = {epsilon:g}")
    print("| tagger | inputs | AUC | 1/ε_B at ε_S = 50% |")
    print("|---|---|---|---|")
    for name in models:
        for inputs in ("clean", *models):
            where = "nominal" if inputs == "clean" else f"attacked against the {inputs} tagger"
            curve = curves[name, inputs]
            print(f"| {name} | {where} | {curve.auc:.4f} | {curve.rejection_at(0.5):.1f} |")
    print(f"\nself-attack ε scan ({attack}): AUC / 1/ε_B at ε_S = 50%")
    print("| ε | " + " | ".join(models) + " |")
    print("|---|" + "---|" * len(models))
    for value in sorted({*arguments.scan, epsilon, 0.0}):
        cells = [f"{scan[name, value].auc:.4f} / {scan[name, value].rejection_at(0.5):.1f}" for name in models]
        print(f"| {value:g} | " + " | ".join(cells) + " |")
    print(f"training seconds: {seconds}")
    ours, reference = curves["adversarial", "adversarial"].auc, curves["nominal", "nominal"].auc
    print(json.dumps({"ours": ours, "reference": reference, "ratio": ours / reference}))


if __name__ == "__main__":
    main()
