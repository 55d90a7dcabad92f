"""The ``heplearn anomaly`` commands: train a detector on background, set its trigger threshold, hunt a bump.

Registered in ``heplearn.cli`` as ``app.add_typer(anomaly_app, name="anomaly")``. Each command
parses its options and calls one library function:

- ``heplearn anomaly train``: ``heplearn.methods.anomaly.anomaly_run_config`` then ``heplearn.train``
  (the VAE, the dense autoencoder or CICADA's CNN; ``--step nae`` the normalized autoencoder);
- ``heplearn anomaly threshold``: ``heplearn.methods.thresholds.threshold_for_run``;
- ``heplearn anomaly quantile-cut``: ``heplearn.methods.quantile_cut.quantile_cut_files`` (VAE-QR);
- ``heplearn anomaly cwola``: ``heplearn.methods.cwola.hunt_files``;
- ``heplearn anomaly cathode``: ``heplearn.methods.cathode.cathode_files``;
- ``heplearn anomaly benchmark``: ``heplearn.methods.lhco_benchmark.run_benchmark`` (SIC of five
  methods on generated QCD and W' events, with an HTML report).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

anomaly_app = typer.Typer(
    help="Anomaly detection: trigger autoencoders at a fixed rate, CWoLa bump hunts, the LHCO-like benchmark.",
    no_args_is_help=True,
)


# options the k-fold commands (cwola, benchmark) share
Folds = Annotated[int, typer.Option(help="k of the k-fold classifiers (every event scored out of fold).")]
Seed = Annotated[int, typer.Option(help="Seed of the folds, the splits and the networks.")]


def _names(text: str, option: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise typer.BadParameter(f"{option}: give comma-separated field names")
    return names


def _numbers(text: str, option: str, kind: type[float] | type[int] = float) -> tuple[float, ...]:
    try:
        return tuple(kind(value) for value in text.split(",") if value.strip())
    except ValueError:
        raise typer.BadParameter(f"{option} {text!r}: expected comma-separated {kind.__name__}s") from None


def _pair(text: str, option: str) -> tuple[float, float]:
    try:
        low, high = (float(value) for value in text.split(","))
    except ValueError:
        raise typer.BadParameter(f"{option} {text!r}: expected LOW,HIGH") from None
    return low, high


@anomaly_app.command("train")
def train_command(
    train: Annotated[list[str], typer.Option("--train", help="Background files to train on (repeatable).")],
    variables: Annotated[
        str,
        typer.Option(
            help="Input fields, comma-separated (the event's objects, flat); for cicada the collections summed "
            "into the calorimeter-region image, e.g. Jet,Electron,Photon."
        ),
    ],
    model: Annotated[str, typer.Option(help="vae, autoencoder or cicada (CNN autoencoder of calorimeter regions).")] = (
        "vae"
    ),
    score: Annotated[
        str | None, typer.Option(help="mse, kl or latent_norm (Σμ², AXOL1TL; vae only). Default: latent_norm, mse.")
    ] = None,
    step: Annotated[
        str, typer.Option(help="plain, or nae: train the autoencoder/cicada as a normalized autoencoder.")
    ] = "plain",
    pretrain_steps: Annotated[int, typer.Option(help="nae: plain reconstruction steps before the NAE's.")] = 0,
    temperature: Annotated[float, typer.Option(help="nae: T of p(x) ∝ exp(−E(x)/T).")] = 1.0,
    beta: Annotated[float, typer.Option(help="β of the loss (1 − β)·MSE + β·KL.")] = 0.5,
    latent: Annotated[int | None, typer.Option(help="Latent dimension (default: the preset's).")] = None,
    preset: Annotated[str, typer.Option(help="Model preset: paper or small.")] = "paper",
    val: Annotated[list[str] | None, typer.Option("--val", help="Validation background files.")] = None,
    test: Annotated[list[str] | None, typer.Option("--test", help="Test files (export checks).")] = None,
    no_standardize: Annotated[
        bool, typer.Option("--no-standardize", help="Keep raw inputs: zero-padded slots are masked.")
    ] = False,
    overrides: Annotated[list[str] | None, typer.Option("--set", help="Override a key: training.epochs=5.")] = None,
    name: Annotated[str | None, typer.Option(help="Run name (default: model and time).")] = None,
    runs_dir: Annotated[Path, typer.Option(help="Where run directories go.")] = Path("runs"),
    no_progress: Annotated[bool, typer.Option("--no-progress", help="No progress bar.")] = False,
) -> None:
    """Train an autoencoder, VAE or CICADA CNN on background events (no labels); its run scores anomalies.

    ``--step nae`` trains it as a normalized autoencoder (Dillon et al. arXiv:2206.14225); tune the
    Langevin chains with ``--set training.step.x_steps=10`` and the like.
    """
    from heplearn.methods.anomaly import anomaly_run_config
    from heplearn.run_config import load_run_config
    from heplearn.training.from_config import train as train_run

    if step not in ("plain", "nae"):
        raise typer.BadParameter(f"--step {step!r}: choose plain or nae")
    nae = {"name": "normalized_autoencoder", "pretrain_steps": pretrain_steps, "temperature": temperature}
    config = anomaly_run_config(
        train,
        _names(variables, "--variables"),
        model=model,
        score=score or ("latent_norm" if model == "vae" else "mse"),
        step=nae if step == "nae" else None,
        beta=beta,
        latent=latent,
        val=val,
        test=test,
        standardize=not no_standardize,
        preset=preset,
    )
    result = train_run(load_run_config(config, overrides or []), name=name, runs_dir=runs_dir, progress=not no_progress)
    last = result.history[-1] if result.history else {}
    summary = ", ".join(f"{key} {value:.4g}" for key, value in last.items() if key.startswith(("val_", "train_loss")))
    typer.echo(f"run: {result.run_dir}" + (f" ({summary})" if summary else ""))


@anomaly_app.command("threshold")
def threshold_command(
    run: Annotated[Path, typer.Argument(help="Run directory of a trained anomaly detector.")],
    background: Annotated[list[str], typer.Option("--background", help="Background files to set it on.")],
    rate: Annotated[str | None, typer.Option(help="Trigger rate, e.g. 1kHz.")] = None,
    input_rate: Annotated[str, typer.Option(help="Rate of the events the trigger sees.")] = "40MHz",
    efficiency: Annotated[float | None, typer.Option(help="Target background efficiency (instead of a rate).")] = None,
    validate: Annotated[list[str] | None, typer.Option("--validate", help="Independent background files.")] = None,
    triggers: Annotated[
        list[str] | None,
        typer.Option("--trigger", help="Another trigger's cut, e.g. 'MET_pt > 200' (repeatable): for the pure rate."),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="JSON report (default: RUN/threshold.json).")
    ] = None,
) -> None:
    """Set the anomaly score's cut at a trigger rate (or efficiency) on background; validate; pure rate."""
    from heplearn.methods.thresholds import threshold_for_run

    destination = output or run / "threshold.json"
    report_dir = destination.with_name(destination.stem + "_report")
    report = threshold_for_run(
        run,
        background,
        rate=rate,
        input_rate=input_rate,
        efficiency=efficiency,
        validation=validate or (),
        triggers=triggers or (),
        output=destination,
        report_dir=report_dir,
    )
    threshold = report["threshold"]
    low, high = threshold["interval"]
    typer.echo(
        f"threshold: score > {threshold['value']:.6g} keeps {threshold['efficiency']:.3g} of background "
        f"[{low:.3g}, {high:.3g}] (target {threshold['target']:.3g})"
    )
    if "validation" in report:
        check = report["validation"]
        typer.echo(
            f"validation: {check['efficiency']:.3g} [{check['interval'][0]:.3g}, {check['interval'][1]:.3g}], "
            f"pull {check['pull']:.2f}"
        )
    for key in ("rates_hz", "efficiencies"):
        if key in report:
            typer.echo(f"{key}: total {report[key]['total']:.4g}, pure {report[key]['pure']:.4g}")
    typer.echo(f"report: {destination}")
    typer.echo(f"html: {report_dir / 'report.html'}")


@anomaly_app.command("quantile-cut")
def quantile_cut_command(
    background: Annotated[list[str], typer.Option("--background", help="Background event files (repeatable).")],
    efficiency: Annotated[float, typer.Option(help="Background efficiency the cut keeps in every mass bin.")],
    run: Annotated[Path | None, typer.Option(help="A trained anomaly run whose score is cut.")] = None,
    score: Annotated[str | None, typer.Option(help="Or: the field of the files that holds the score.")] = None,
    mass: Annotated[str, typer.Option(help="The resonant variable's field (GeV).")] = "mjj",
    bins: Annotated[int, typer.Option(help="Mass bins of the efficiency table.")] = 20,
    epochs: Annotated[int, typer.Option(help="Epochs of the quantile regression.")] = 30,
    seed: Seed = 0,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Folder for quantile_cut.json and efficiency_by_bin.png.")
    ] = Path("quantile_cut"),
) -> None:
    """VAE-QR: regress the score's (1 − ε) quantile against the mass; the cut keeps ε of background in every bin."""
    from heplearn.methods.quantile_cut import quantile_cut_files
    from heplearn.run_config import TrainingConfig

    training = TrainingConfig(
        epochs=epochs, batch_size=512, learning_rate=3e-3, early_stopping_patience=None, weight_decay=0.0
    )
    report = quantile_cut_files(
        background, mass, efficiency, output, score=score, run=run, bins=bins, training=training, seed=seed
    )
    rows = [row for row in report["bins"] if row["events"]]
    spread = [row["efficiency"] for row in rows]
    typer.echo(
        f"cut at ε = {efficiency:g}: {report['passed']:.4g} of {report['events']} background events pass; per "
        f"{mass} bin {min(spread):.3g}–{max(spread):.3g} over {len(rows)} bins"
    )
    typer.echo(f"results: {output / 'quantile_cut.json'}")
    typer.echo(f"figure: {output / 'efficiency_by_bin.png'}")


@anomaly_app.command("cwola")
def cwola_command(
    data: Annotated[list[str], typer.Option("--data", help="Event files (repeatable).")],
    features: Annotated[str, typer.Option(help="Classifier features, comma-separated fields.")],
    mass: Annotated[str, typer.Option(help="The resonant variable's field (GeV).")] = "mjj",
    signal_region: Annotated[str, typer.Option(help="LOW,HIGH of the signal region (GeV).")] = "3300,3700",
    sidebands: Annotated[str, typer.Option(help="LOW,HIGH of the whole range (GeV).")] = "2500,5000",
    bin_width: Annotated[float, typer.Option(help="m_jj bin width of the fit (GeV).")] = 100.0,
    efficiencies: Annotated[str, typer.Option(help="Selection efficiencies, comma-separated.")] = "0.1,0.01,0.002",
    folds: Folds = 5,
    epochs: Annotated[int, typer.Option(help="Epochs per classifier.")] = 20,
    parameters: Annotated[int, typer.Option(help="Dijet function parameters: 3 or 4.")] = 3,
    seed: Seed = 0,
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for cwola.json and spectra.png.")] = Path(
        "cwola"
    ),
    no_progress: Annotated[bool, typer.Option("--no-progress", help="No progress bars.")] = False,
) -> None:
    """CWoLa hunting: k-fold SR-vs-sideband classifiers, cuts, dijet sideband fits, local significances."""
    from heplearn.methods.cwola import default_training, hunt_files

    chosen = _numbers(efficiencies, "--efficiencies")
    result = hunt_files(
        data,
        _names(features, "--features"),
        mass,
        _pair(signal_region, "--signal-region"),
        _pair(sidebands, "--sidebands"),
        bin_width,
        output,
        efficiencies=chosen,
        folds=folds,
        training=default_training(epochs=epochs),
        parameters=parameters,
        seed=seed,
        progress=not no_progress,
    )
    for row in result.table():
        typer.echo(
            f"ε = {row['efficiency']:g}: observed {row['observed']:.0f}, expected {row['expected']:.1f} ± "
            f"{row['uncertainty']:.1f}, Z = {row['significance']:.2f}"
        )
    typer.echo(f"results: {output / 'cwola.json'}")
    typer.echo(f"figure: {output / 'spectra.png'}")


@anomaly_app.command("cathode")
def cathode_command(
    data: Annotated[list[str], typer.Option("--data", help="Event files (repeatable).")],
    features: Annotated[str, typer.Option(help="The flow's and the classifier's features, comma-separated fields.")],
    mass: Annotated[str, typer.Option(help="The resonant variable's field (GeV).")] = "mjj",
    signal_region: Annotated[str, typer.Option(help="LOW,HIGH of the signal region (GeV).")] = "3300,3700",
    sidebands: Annotated[str, typer.Option(help="LOW,HIGH of the whole range (GeV).")] = "2500,5000",
    label: Annotated[
        str | None, typer.Option(help="A truth field (1: signal) of simulated events: the SIC on the SR events.")
    ] = None,
    oversampling: Annotated[int, typer.Option(help="Flow samples per signal-region event.")] = 4,
    flow_epochs: Annotated[int, typer.Option(help="Epochs of the conditional flow on the sidebands.")] = 60,
    transforms: Annotated[int, typer.Option(help="Autoregressive transforms of the flow.")] = 4,
    hidden: Annotated[str, typer.Option(help="Hidden widths of each transform, comma-separated.")] = "64,64",
    epochs: Annotated[int, typer.Option(help="Epochs per classifier.")] = 20,
    folds: Folds = 5,
    min_background: Annotated[int, typer.Option(help="Background events a cut must keep (SIC).")] = 20,
    seed: Seed = 0,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Folder for scores.parquet, cathode.json and cathode.png.")
    ] = Path("cathode"),
    no_progress: Annotated[bool, typer.Option("--no-progress", help="No progress bars.")] = False,
) -> None:
    """CATHODE: a flow p(x | m) on the sidebands, sampled in the SR; k-fold classifiers of SR data vs samples."""
    from heplearn.methods.cathode import cathode_files
    from heplearn.methods.cwola import default_training
    from heplearn.run_config import TrainingConfig

    widths = tuple(int(width) for width in _numbers(hidden, "--hidden", int))
    flow_training = TrainingConfig(
        epochs=flow_epochs, batch_size=256, learning_rate=1e-3, early_stopping_patience=None, weight_decay=1e-6
    )
    summary = cathode_files(
        data,
        _names(features, "--features"),
        mass,
        _pair(signal_region, "--signal-region"),
        _pair(sidebands, "--sidebands"),
        output,
        label=label,
        min_background=min_background,
        oversampling=oversampling,
        flow_training=flow_training,
        classifier_training=default_training(epochs=epochs),
        folds=folds,
        transforms=transforms,
        hidden=widths,
        seed=seed,
        progress=not no_progress,
    )
    typer.echo(
        f"flow on {summary['sideband_events']} sideband events, {summary['samples']} samples for "
        f"{summary['signal_region_events']} SR events; AUC SR data vs samples {summary['data_vs_samples_auc']:.3f}"
    )
    if "labelled" in summary:
        labelled = summary["labelled"]
        typer.echo(
            f"on the labels ({labelled['signal']} signal, {labelled['background']} background in the SR): "
            f"AUC {labelled['auc']:.3f}, max SIC {labelled['max_sic']:.2f}"
        )
    typer.echo(f"scores: {output / 'scores.parquet'}")
    typer.echo(f"results: {output / 'cathode.json'}")
    typer.echo(f"figure: {output / 'cathode.png'}")


@anomaly_app.command("benchmark")
def benchmark_command(
    background: Annotated[Path, typer.Option(help="Folder of dijet_qcd events (heplearn generate events).")],
    signal: Annotated[Path, typer.Option(help="Folder of wprime events.")],
    injection: Annotated[float, typer.Option(help="S/B of the injected signal in the signal region.")] = 0.006,
    signal_region: Annotated[str, typer.Option(help="LOW,HIGH of the signal region in m_jj (TeV).")] = "3.3,3.7",
    mass_range: Annotated[str, typer.Option(help="LOW,HIGH of the m_jj range used (TeV); sidebands: the rest.")] = (
        "1.5,9"
    ),
    methods: Annotated[
        str, typer.Option(help="Comma-separated: supervised, idealised, CATHODE, CWoLa, VAE.")
    ] = "supervised,idealised,CATHODE,CWoLa,VAE",
    epochs: Annotated[int, typer.Option(help="Epochs of every classifier (and the VAE).")] = 30,
    flow_epochs: Annotated[int, typer.Option(help="Epochs of CATHODE's flow.")] = 60,
    folds: Folds = 5,
    min_background: Annotated[int, typer.Option(help="Test background events a cut must keep (SIC).")] = 20,
    seed: Seed = 0,
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for sic.json and report.html.")] = Path(
        "lhco_benchmark"
    ),
) -> None:
    """The LHC Olympics-like benchmark: inject W' into QCD, score with five methods, SIC figure and table."""
    from heplearn.methods.lhco_benchmark import run_benchmark

    result = run_benchmark(
        background,
        signal,
        output,
        injection=injection,
        signal_region=_pair(signal_region, "--signal-region"),
        mass_range=_pair(mass_range, "--mass-range"),
        methods=_names(methods, "--methods"),
        epochs=epochs,
        flow_epochs=flow_epochs,
        folds=folds,
        min_background=min_background,
        seed=seed,
        log=typer.echo,
    )
    for row in result.table():
        reference = f", LHCO R&D {row['literature']} (ours / theirs {row['ratio']:.2f})" if row["literature"] else ""
        typer.echo(f"{row['method']}: max SIC {row['max_sic']:.2f}, AUC {row['auc']:.3f}{reference}")
    typer.echo(f"max SIC ceiling from the test background's size: {result.ceiling:.1f}")
    typer.echo(f"results: {output / 'sic.json'}")
    typer.echo(f"html: {result.report}")
