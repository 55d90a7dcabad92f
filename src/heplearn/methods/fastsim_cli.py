"""The ``heplearn fastsim`` commands: train a jet generator, sample jets from it, evaluate samples.

Registered in ``heplearn.cli`` as ``app.add_typer(fastsim_app, name="fastsim")``. Each command
parses its options and calls ``heplearn.methods.fastsim``:

- ``heplearn fastsim train``: ``load_sources`` then ``train_fastsim`` (a run directory);
- ``heplearn fastsim sample``: ``load_fastsim``, ``sample_jets``, ``write_jets`` (JetClass schema);
- ``heplearn fastsim evaluate``: ``evaluate_generated`` (JetNet metrics, classifier test, plots).

Jet sources are labelled JetClass files, or ``CLASS=FILE`` for a file of one class (a chunk of
``heplearn generate``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

fastsim_app = typer.Typer(
    help="Generative fast simulation of jets: flow matching, VAE and GAN on particle clouds.", no_args_is_help=True
)


@fastsim_app.command("train")
def train_command(
    train: Annotated[
        list[str], typer.Option("--train", help="Training jets: a labelled file or CLASS=FILE (repeatable).")
    ],
    model: Annotated[str, typer.Option(help="flow_matching, vae or gan.")] = "flow_matching",
    val: Annotated[list[str] | None, typer.Option("--val", help="Validation jets (same forms).")] = None,
    particles: Annotated[int, typer.Option(help="Highest-pT particles kept per jet.")] = 30,
    max_jets: Annotated[int | None, typer.Option(help="At most this many training jets per class.")] = None,
    epochs: Annotated[int, typer.Option(help="Training epochs.")] = 30,
    batch_size: Annotated[int, typer.Option(help="Jets per step.")] = 128,
    learning_rate: Annotated[float | None, typer.Option(help="Learning rate (default 1e-3; GAN 2e-4).")] = None,
    hidden: Annotated[int | None, typer.Option(help="Width of the EPiC layers (default 64).")] = None,
    layers: Annotated[int | None, typer.Option(help="Number of EPiC layers (default 3).")] = None,
    global_size: Annotated[
        int | None, typer.Option(help="Width of the EPiC layers' global vector (default 16).")
    ] = None,
    attention: Annotated[
        int | None,
        typer.Option(
            help="Flow matching: self-attention blocks after the first EPiC layers (0 to --layers; default 0)."
        ),
    ] = None,
    pair_bias: Annotated[
        int | None,
        typer.Option(
            help="Flow matching: the attention logits also get a function of the particles' distances ln dR^2: "
            "0 none (default), 1 linear per head, k > 1 an MLP of k hidden units."
        ),
    ] = None,
    init: Annotated[
        Path | None,
        typer.Option(
            help="Continue training this run's generator (fine-tuning: its architecture, weights and scaling; "
            "the options above only if they agree with it; --ot and --time-sampling as given here)."
        ),
    ] = None,
    ema: Annotated[
        float | None, typer.Option(help="Keep a moving average of the weights with this decay (e.g. 0.999).")
    ] = None,
    ot: Annotated[
        bool, typer.Option("--ot", help="Flow matching: minibatch optimal-transport coupling (OT-CFM).")
    ] = False,
    time_sampling: Annotated[
        str, typer.Option(help="Flow matching: how training draws t: uniform or logit_normal (sigmoid of N(0, 1)).")
    ] = "uniform",
    threads: Annotated[int | None, typer.Option(help="torch threads.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the network and the batches.")] = 0,
    name: Annotated[str | None, typer.Option(help="Run name (default: fastsim, model and time).")] = None,
    runs_dir: Annotated[Path, typer.Option(help="Where run directories go.")] = Path("runs"),
    no_progress: Annotated[bool, typer.Option("--no-progress", help="No progress bar.")] = False,
) -> None:
    """Train a conditional generator of jets (class, pT) on particle clouds through the engine; on files of
    several detector profiles (their provenance's), conditioned on the profile too."""
    import torch

    from heplearn.methods.fastsim import (
        INIT_FILE,
        default_training,
        load_fastsim,
        load_sources,
        train_fastsim,
    )

    if threads:
        torch.set_num_threads(threads)
    if ot and model != "flow_matching":
        raise typer.BadParameter(f"--ot couples noise and jets of flow matching, not of {model}")
    if attention and model != "flow_matching":
        raise typer.BadParameter(f"--attention is a block of the flow-matching network, not of {model}")
    if time_sampling != "uniform" and model != "flow_matching":
        raise typer.BadParameter(f"--time-sampling is flow matching's, not {model}'s")
    if time_sampling not in ("uniform", "logit_normal"):
        raise typer.BadParameter(f"--time-sampling: uniform or logit_normal, not {time_sampling!r}")
    asked = {"hidden": hidden, "layers": layers, "global_size": global_size, "attention": attention}
    asked["pair_bias"] = pair_bias
    architecture = {key: value for key, value in asked.items() if value is not None}
    if init is None:  # a new network (train_fastsim fills the defaults): no attention or pair bias is no key
        architecture = {
            key: value for key, value in architecture.items() if value or key not in ("attention", "pair_bias")
        }
    initial = load_fastsim(init) if init is not None else None
    training = default_training(model, epochs, batch_size, learning_rate, ema)
    jets = load_sources(train, particles, max_jets)
    validation = load_sources(val, particles) if val else None
    run_dir = runs_dir / (name or f"fastsim-{model}-{time.strftime('%Y%m%d-%H%M%S')}")
    started = time.perf_counter()
    train_fastsim(
        jets,
        model,
        val=validation,
        hyperparameters={
            **architecture,
            **({"ot_coupling": 1} if ot else {}),
            **({"time_sampling": time_sampling} if time_sampling != "uniform" else {}),
        },
        training=training,
        run_dir=run_dir,
        seed=seed,
        progress=not no_progress,
        init=initial,
    )
    if init is not None:
        from heplearn.data.files import write_json

        write_json(run_dir / INIT_FILE, {"init": str(init), "epochs": epochs, "learning_rate": training.learning_rate})
    typer.echo(
        f"run: {run_dir} ({model}, {len(jets)} jets of {', '.join(jets.class_names)}"
        + (f", detector profiles {', '.join(jets.detector_names)}" if len(jets.detector_names) > 1 else "")
        + f", {epochs} epochs, {time.perf_counter() - started:.0f} s)"
    )


@fastsim_app.command("sample")
def sample_command(
    run: Annotated[Path, typer.Argument(help="Run directory of a trained generator.", show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output file (.parquet, .root or .h5).")],
    jets: Annotated[int, typer.Option("--jets", "-n", help="Jets per class.")] = 1000,
    classes: Annotated[
        list[str] | None, typer.Option("--class", help="Classes to sample (repeatable; default: all of the model's).")
    ] = None,
    pt: Annotated[
        float | None, typer.Option(help="Every jet at this pT (GeV; default: drawn from the training pT distribution).")
    ] = None,
    steps: Annotated[
        int | None, typer.Option(help="ODE steps of the flow-matching sampler (default 25; a one-step student: 1).")
    ] = None,
    solver: Annotated[
        str | None, typer.Option(help="ODE solver of flow matching: euler, midpoint (default) or heun.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the noise.")] = 0,
    no_substructure: Annotated[
        bool, typer.Option("--no-substructure", help="Leave out jet_sdmass and jet_tau1..4 (FastJet's cost).")
    ] = False,
    momentum_conservation: Annotated[
        str,
        typer.Option(
            help="Complete jets (fewer particles than the model's N) made to sum to the jet: scale (the pT sum's "
            "magnitude), full (and its direction) or none.",
        ),
    ] = "scale",
    detector: Annotated[
        str | None,
        typer.Option(
            help="Detector profile of the jets (nominal, alt, particle, ...): needed by a model trained on "
            "several, which is conditioned on it.",
        ),
    ] = None,
    backend: Annotated[
        str,
        typer.Option(
            help="Flow matching's network: torch, onnx (onnxruntime) or onnx-int8 (int8 weights: faster, "
            "slightly different jets).",
        ),
    ] = "torch",
) -> None:
    """Sample jets of each class and write them in the JetClass schema."""
    import numpy as np

    from heplearn.methods.fastsim import load_fastsim, sample_jets, write_jets

    model = load_fastsim(run)
    one_step = model.hyperparameters.get("time_sampling") == "start"  # a one-step student (fastsim distil)
    steps = steps if steps is not None else (1 if one_step else 25)
    solver = solver if solver is not None else ("euler" if one_step else "midpoint")
    names = classes or model.scaling.class_names
    counts = {name: jets for name in names}
    values = {name: np.full(jets, pt) for name in names} if pt is not None else None
    started = time.perf_counter()
    sampled = sample_jets(
        model,
        counts,
        pt=values,
        steps=steps,
        seed=seed,
        solver=solver,
        momentum_conservation=momentum_conservation,
        progress=True,
        detector=detector,
        backend=backend,
    )
    seconds = time.perf_counter() - started
    provenance = {
        "run": str(run),
        "model": model.kind,
        "seed": seed,
        "steps": steps,
        "solver": solver,
        "momentum_conservation": momentum_conservation,
        "backend": backend,
    }
    write_jets(sampled, output, provenance, substructure=not no_substructure)
    typer.echo(
        f"{output}: {len(sampled.clouds)} jets ({', '.join(names)}) from {model.kind} in {seconds:.1f} s "
        f"({len(sampled.clouds) / max(seconds, 1e-9):.0f} jets/s, network only)"
    )


@fastsim_app.command("distil")
def distil_command(
    teacher: Annotated[Path, typer.Argument(help="Run directory of a trained flow-matching generator.")],
    mode: Annotated[
        str,
        typer.Option(
            help="one_step (one network pass per jet), reflow (straight paths for few steps) or adversarial "
            "(one_step plus a conditional GAN term against the teacher's jets)."
        ),
    ] = "one_step",
    student: Annotated[
        Path | None,
        typer.Option(help="Start from this one-step student of the teacher (one_step, adversarial) instead."),
    ] = None,
    adversarial_weight: Annotated[
        float, typer.Option(help="adversarial: the weight of the GAN term beside the regression.")
    ] = 0.2,
    pairs: Annotated[int, typer.Option(help="Teacher jets (noise, jet pairs) per class.")] = 25000,
    steps: Annotated[int, typer.Option(help="ODE steps of the teacher's sampler.")] = 5,
    solver: Annotated[str, typer.Option(help="ODE solver of the teacher: euler, midpoint or heun.")] = "midpoint",
    epochs: Annotated[int, typer.Option(help="Training epochs of the student.")] = 10,
    batch_size: Annotated[int, typer.Option(help="Pairs per step.")] = 128,
    learning_rate: Annotated[float, typer.Option(help="Learning rate of the student.")] = 3e-4,
    ema: Annotated[float | None, typer.Option(help="Moving average of the student's weights.")] = 0.999,
    threads: Annotated[int | None, typer.Option(help="torch threads.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the pairs' noise and of the batches.")] = 0,
    name: Annotated[str | None, typer.Option(help="Run name (default: the teacher's, mode and time).")] = None,
    runs_dir: Annotated[Path, typer.Option(help="Where run directories go.")] = Path("runs"),
    no_progress: Annotated[bool, typer.Option("--no-progress", help="No progress bar.")] = False,
) -> None:
    """Distil a flow-matching generator into a student that needs fewer network passes per jet."""
    import torch

    from heplearn.methods.fastsim import default_training, load_fastsim
    from heplearn.methods.fastsim_distil import (
        DISTILLATION_MODES,
        adversarial_training,
        check_student,
        distil_fastsim,
        teacher_pairs,
    )

    if mode not in DISTILLATION_MODES:
        raise typer.BadParameter(f"--mode: one of {', '.join(DISTILLATION_MODES)}, not {mode!r}")
    if adversarial_weight < 0:
        raise typer.BadParameter(f"--adversarial-weight: must be 0 or more, got {adversarial_weight}")
    if threads:
        torch.set_num_threads(threads)
    model = load_fastsim(teacher)
    initial = load_fastsim(student) if student is not None else None
    if initial is not None:
        check_student(initial, model, mode)  # before the teacher's pairs are made
    if mode == "adversarial":
        training = adversarial_training(epochs, batch_size, learning_rate, ema, adversarial_weight)
    else:
        training = default_training("flow_matching", epochs, batch_size, learning_rate, ema)
    started = time.perf_counter()
    made = teacher_pairs(model, pairs, steps=steps, solver=solver, seed=seed, progress=not no_progress)
    paired = time.perf_counter() - started
    run_dir = runs_dir / (name or f"{teacher.name}-{mode}-{time.strftime('%Y%m%d-%H%M%S')}")
    distil_fastsim(
        model,
        made,
        mode,
        training=training,
        run_dir=run_dir,
        provenance={"teacher": str(teacher), "steps": steps, "solver": solver, "seed": seed}
        | ({"student": str(student)} if student is not None else {})
        | ({"adversarial_weight": adversarial_weight} if mode == "adversarial" else {}),
        seed=seed,
        progress=not no_progress,
        student=initial,
    )
    sampler = "a few Euler steps" if mode == "reflow" else "--steps 1 --solver euler"
    typer.echo(
        f"run: {run_dir} ({mode} student of {teacher}: {len(made)} pairs in {paired:.0f} s, {epochs} epochs, "
        f"{time.perf_counter() - started:.0f} s in all; sample it with {sampler})"
    )


@fastsim_app.command("evaluate")
def evaluate_command(
    reference: Annotated[
        list[str],
        typer.Option("--reference", help="Reference (Pythia) jets: a labelled file or CLASS=FILE (repeatable)."),
    ],
    generated: Annotated[
        list[str],
        typer.Option(
            "--generated", help="NAME:SOURCE, SOURCE a labelled file or CLASS=FILE (repeatable; one NAME per model)."
        ),
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for metrics.json and the plots.")] = Path(
        "fastsim-eval"
    ),
    particles: Annotated[int, typer.Option(help="Highest-pT particles per jet compared.")] = 30,
    max_jets: Annotated[int | None, typer.Option(help="At most this many jets per class and sample.")] = None,
    classifier_epochs: Annotated[int, typer.Option(help="Epochs of the classifier test's network.")] = 10,
    classifier: Annotated[
        str, typer.Option(help="Network of the classifier test: pfn, or particlenet (ParticleNet-Lite, stronger).")
    ] = "pfn",
    seed: Annotated[int, typer.Option(help="Seed of the batches and the classifier.")] = 0,
) -> None:
    """JetNet metrics (W1 mass / particles / EFPs, FPD, KPD), the classifier test and physics plots."""
    from heplearn.methods.fastsim import concatenate_clouds, evaluate_generated, load_sources

    sources: dict[str, list[str]] = {}
    for entry in generated:
        name, separator, source = entry.partition(":")
        if not separator or not name or not source:
            raise typer.BadParameter(f"--generated {entry!r}: expected NAME:FILE or NAME:CLASS=FILE")
        sources.setdefault(name, []).append(source)
    samples = {
        name: concatenate_clouds([load_sources([source], particles, max_jets) for source in files])
        for name, files in sources.items()
    }
    results = evaluate_generated(
        load_sources(reference, particles, max_jets),
        samples,
        output,
        classifier_epochs=classifier_epochs,
        seed=seed,
        classifier=classifier,
    )
    for class_name, rows in results["classes"].items():
        for model, row in rows.items():
            typer.echo(
                f"{class_name} {model}: W1M×10³ {row['w1m_e3']:.2f}, W1P×10³ {row['w1p_e3']:.2f}, "
                f"W1EFP×10⁵ {row['w1efp_e5']:.2f}, FPD×10³ {row['fpd_e3']:.2f} ± {row['fpd_e3_error']:.2f}, "
                f"KPD×10³ {row['kpd_e3']:.3f} ± {row['kpd_e3_error']:.3f}, AUC {row['auc']:.3f}, "
                f"JSD {row['jsd']:.3f}, W1τ21×10³ {row['w1_tau21_e3']:.1f}, W1τ32×10³ {row['w1_tau32_e3']:.1f} "
                f"(median τ32 {row['median_tau32']:.3f}, reference {row['reference_median_tau32']:.3f})"
            )
    typer.echo(f"results: {output / 'metrics.json'}")
