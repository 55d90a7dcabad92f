"""The ``heplearn`` command: each command parses its arguments and calls one library function.

Bad input anywhere (a ``HeplearnError``) ends the command with one line on stderr and exit code 2;
``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated

import click
import typer
from rich.console import Console
from rich.table import Table

from heplearn import __version__
from heplearn.errors import HeplearnError, one_line

app = typer.Typer(
    name="heplearn",
    help="Machine learning for collider physics: generate, train, evaluate, export, serve.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console()


@app.callback()
def _options(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log more.")] = False,
) -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("heplearn").setLevel(logging.DEBUG if verbose else logging.INFO)


@app.command()
def version() -> None:
    """Print the heplearn version."""
    typer.echo(__version__)


@app.command()
def inspect(
    files: Annotated[list[Path], typer.Argument(help="ROOT, Parquet or HDF5 files.")],
    tree: Annotated[str | None, typer.Option(help="ROOT TTree or RNTuple name (default: 'tree').")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Show each file's format, table, fields with types, entries, particles per jet and classes."""
    from dataclasses import asdict

    from heplearn.data.inspect import inspect_file

    summaries = [inspect_file(file, tree) for file in files]
    if as_json:
        typer.echo(json.dumps([asdict(summary) for summary in summaries], indent=2, default=str))
        return
    for summary in summaries:
        table_note = f", {summary.table_kind or 'table'} {summary.table!r}" if summary.table else ""
        console.print(f"[bold]{summary.path}[/bold]: {summary.format}{table_note}, {summary.entries} entries")
        fields = Table("field", "type", box=None, pad_edge=False)
        for field in summary.fields:
            fields.add_row(field.name, field.type)
        console.print(fields)
        if summary.particles_per_jet:
            m = summary.particles_per_jet
            console.print(
                f"particles per jet: min {m['min']:.0f}, median {m['median']:.0f}, "
                f"max {m['max']:.0f}, mean {m['mean']:.1f}"
            )
        if summary.class_counts:
            counts = ", ".join(f"{name} {count}" for name, count in summary.class_counts.items())
            console.print(f"classes: {counts}")
        if summary.provenance:
            console.print(f"provenance: {json.dumps(summary.provenance, default=str)[:300]}")


@app.command()
def train(
    config: Annotated[Path | None, typer.Option("--config", "-c", help="Run config (YAML).")] = None,
    overrides: Annotated[list[str] | None, typer.Option("--set", help="Override a key: training.epochs=5.")] = None,
    name: Annotated[str | None, typer.Option(help="Run name (default: model and time).")] = None,
    runs_dir: Annotated[Path, typer.Option(help="Where run directories go.")] = Path("runs"),
    resume: Annotated[Path | None, typer.Option(help="Continue the run in this directory.")] = None,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="No progress bar.")] = False,
) -> None:
    """Train the model a config describes (any model name); under torchrun, with DDP."""
    from heplearn.run_config import load_run_config
    from heplearn.runs import RunDirectory
    from heplearn.training.from_config import train as train_run

    if resume is not None:
        run_config = RunDirectory(Path(resume)).read_config()
        if overrides:
            run_config = load_run_config(run_config.model_dump(mode="json"), overrides)
    elif config is None:
        raise typer.BadParameter("give --config FILE (or --resume RUN)")
    else:
        run_config = load_run_config(config, overrides or [])
    result = train_run(run_config, name=name, runs_dir=runs_dir, resume=resume, progress=not no_progress)
    last = result.history[-1] if result.history else {}
    summary = ", ".join(f"{k} {v:.4g}" for k, v in last.items() if k.startswith("val_"))
    typer.echo(f"run: {result.run_dir}" + (f" ({summary})" if summary else ""))


@app.command()
def demo(
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for data, runs and results.")] = Path("demo"),
    jets: Annotated[int, typer.Option(help="Jets per class to generate.")] = 8000,
    workers: Annotated[int, typer.Option(help="Generator worker processes.")] = 2,
    models: Annotated[list[str] | None, typer.Option("--model", help="Only these models (repeatable).")] = None,
    seed: Annotated[int, typer.Option(help="Training seed of every model (the jets always use seed 1).")] = 0,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="No progress bars.")] = False,
) -> None:
    """Generate top and QCD jets, train the taggers on them and compare them on the same test jets."""
    from heplearn.demo import results_table, run_demo

    results = run_demo(output, jets, workers, models, progress=not no_progress, seed=seed)
    typer.echo(results_table(results))
    typer.echo(f"results: {output / 'results.md'}")
    typer.echo(f"report: {output / 'report.html'}")


@app.command()
def decorrelate(
    config: Annotated[Path, typer.Option("--config", "-c", help="Run config of the tagger (YAML), with a test split.")],
    observer: Annotated[str, typer.Option(help="The mass to decorrelate from (a field of the files).")],
    lambdas: Annotated[str, typer.Option(help="Strengths λ, comma-separated (0: the plain tagger).")] = "0,1,3,10,30",
    method: Annotated[
        str,
        typer.Option(
            help="Comma-separated, drawn in one figure: disco (λ·dCor²), adversarial (learning to pivot), "
            "planing (one point, no λ)."
        ),
    ] = "disco",
    adversary: Annotated[
        list[str] | None, typer.Option(help="An adversary setting KEY=VALUE (repeatable): pretrain_steps=150.")
    ] = None,
    planing: Annotated[
        list[str] | None, typer.Option(help="A planing setting KEY=VALUE (repeatable): bins=40.")
    ] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for the runs, scan.json and plots.")] = Path(
        "decorrelation"
    ),
    signal_efficiency: Annotated[float, typer.Option(help="Signal efficiency of the working point.")] = 0.5,
    overrides: Annotated[list[str] | None, typer.Option("--set", help="Override a key: training.epochs=5.")] = None,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="No progress bar.")] = False,
) -> None:
    """Train the tagger once per λ and method and plot background rejection against 1/JSD of the background mass."""
    from heplearn.methods.decorrelation_scan import decorrelation_scan, method_settings
    from heplearn.run_config import load_run_config

    try:
        strengths = [float(value) for value in lambdas.split(",") if value.strip()]
    except ValueError as error:
        raise typer.BadParameter(f"--lambdas {lambdas!r}: {error}") from None
    settings = method_settings({"adversarial": adversary or [], "planing": planing or []})
    scan = decorrelation_scan(
        load_run_config(config, overrides or []),
        strengths,
        observer,
        method,
        output,
        signal_efficiency,
        progress=not no_progress,
        settings=settings,
    )
    for point in [*scan.points, scan.window]:
        typer.echo(f"{point.name}: rejection {point.rejection:.3g}, 1/JSD {point.inverse_jsd:.3g}")
    typer.echo(f"figure: {scan.figures[0]}")


def _register_commands() -> None:
    """Commands whose code lives beside their library (each a thin layer over it)."""
    from heplearn.evaluation.cli import compare_command, evaluate_command
    from heplearn.generate.cli import generate_command
    from heplearn.serving.cli import export_command, predict_command, serve_command
    from heplearn.stats.cli import fit_command
    from heplearn.training.tune_cli import tune_command

    app.command("generate")(generate_command)
    app.command("evaluate")(evaluate_command)
    app.command("compare")(compare_command)
    app.command("export")(export_command)
    app.command("predict")(predict_command)
    app.command("serve")(serve_command)
    app.command("fit")(fit_command)
    app.command("tune")(tune_command)


_register_commands()


# -- heplearn reweight (DCTR, heplearn.methods.reweighting) ------------------------------------------
reweight_app = typer.Typer(
    help="DCTR: per-event weights that morph a source sample into a target one.", no_args_is_help=True
)
app.add_typer(reweight_app, name="reweight")


def _pairs(values: list[str] | None, names: list[str], what: str) -> dict[str, float] | None:
    """``--at``/``--start`` values, one per parameter in the order of ``--parameter``."""
    if not values:
        return None
    if len(values) != len(names):
        raise typer.BadParameter(f"give one {what} per --parameter ({', '.join(names) or 'none given'})")
    try:
        return {name: float(value) for name, value in zip(names, values, strict=True)}
    except ValueError as error:
        raise typer.BadParameter(f"{what}: {error}") from None


@reweight_app.callback(invoke_without_command=True)
def reweight_command(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="Run config: data (how both samples are read), model, training."),
    ] = None,
    source: Annotated[list[Path] | None, typer.Option(help="Source files (they get the weights; repeatable).")] = None,
    target: Annotated[list[Path] | None, typer.Option(help="Target files (repeatable).")] = None,
    overrides: Annotated[list[str] | None, typer.Option("--set", help="Override a key: training.epochs=5.")] = None,
    folds: Annotated[int, typer.Option(help="k-fold: each weight from a model that did not see the event.")] = 5,
    ensemble: Annotated[
        int, typer.Option(help="Classifiers (per fold) from different seeds; their mean log f/(1−f) is used.")
    ] = 1,
    clip_min: Annotated[float | None, typer.Option(help="Clip weights below this value.")] = None,
    clip_max: Annotated[float | None, typer.Option(help="Clip weights above this value.")] = None,
    normalise: Annotated[
        str, typer.Option(help="Σw to the source's total (source), the target's, or none.")
    ] = "source",
    friend_format: Annotated[
        str | None, typer.Option("--format", help="Friend files: parquet or root (default: root for ROOT sources).")
    ] = None,
    beside_source: Annotated[
        bool, typer.Option("--beside-source/--run-only", help="Also write each friend file beside its source file.")
    ] = True,
    parametrised: Annotated[bool, typer.Option("--parametrised", help="Train f(x, θ) over a range of θ.")] = False,
    parameter: Annotated[
        list[str] | None, typer.Option(help="Parametrised: target field holding θ (repeatable).")
    ] = None,
    ranges: Annotated[
        list[str] | None,
        typer.Option("--range", help="Parametrised: LO:HI per --parameter (default: the target's span)."),
    ] = None,
    at: Annotated[
        list[str] | None, typer.Option(help="Parametrised: write the source's weights at this θ (one per --parameter).")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Run name (default: model and time).")] = None,
    runs_dir: Annotated[Path, typer.Option(help="Where run directories go.")] = Path("runs"),
    report: Annotated[bool, typer.Option("--report/--no-report", help="Write the closure report.")] = True,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="No progress bars.")] = False,
) -> None:
    """Train the DCTR classifier between SOURCE and TARGET and write the source's weights as friend files."""
    if ctx.invoked_subcommand is not None:
        return
    from heplearn.methods import reweighting, reweighting_parametrised
    from heplearn.run_config import load_run_config

    if config is None or not source or not target:
        raise typer.BadParameter("give --config FILE, --source FILES and --target FILES")
    run_config = load_run_config(config, overrides or [])
    options = reweighting.WeightOptions(
        (clip_min, clip_max),
        normalise,
        friend_format,  # type: ignore[arg-type]
        beside_source,
        report,
    )
    common = {
        "options": options,
        "ensemble": ensemble,
        "name": name,
        "runs_dir": runs_dir,
        "progress": not no_progress,
    }
    if not parametrised:
        result = reweighting.reweight(run_config, source, target, folds=folds, **common)  # type: ignore[arg-type]
        summary = result.summary
        typer.echo(
            f"run: {result.run_dir} (Σw·f/(1−f) scaled to the target: "
            f"{summary['reweighted_total_raw_times_target_over_source']:.6g} vs N_target "
            f"{summary['target_total_weight']:.6g}; largest weight {summary['weight_max']:.4g})"
        )
        for path in result.friends:
            typer.echo(str(path))
        return
    names = list(parameter or [])
    spans = None
    if ranges:
        if len(ranges) != len(names):
            raise typer.BadParameter("give one --range LO:HI per --parameter")
        try:
            spans = {p: (float(r.split(":")[0]), float(r.split(":")[1])) for p, r in zip(names, ranges, strict=True)}
        except (ValueError, IndexError):
            raise typer.BadParameter(f"--range: expected LO:HI, got {ranges}") from None
    made = reweighting_parametrised.reweight_parametrised(
        run_config, source, target, names, ranges=spans, at=_pairs(at, names, "--at"), **common
    )  # type: ignore[arg-type]
    typer.echo(f"run: {made.run_dir} (trained over {made.ranges})")
    for path in made.friends:
        typer.echo(str(path))


@reweight_app.command("fit")
def reweight_fit_command(
    run: Annotated[Path, typer.Argument(help="A parametrised reweighting run.", show_default=False)],
    source: Annotated[list[Path], typer.Option(help="Source files (the nominal sample; repeatable).")],
    target: Annotated[list[Path], typer.Option(help="The sample whose θ is fitted (repeatable).")],
    start: Annotated[list[str] | None, typer.Option(help="Starting θ per parameter (default: mid-range).")] = None,
    epochs: Annotated[int, typer.Option(help="Passes over both samples.")] = 10,
    batch_size: Annotated[int, typer.Option(help="Events per gradient step.")] = 10_000,
    learning_rate: Annotated[float, typer.Option(help="Adam step on θ in units of its trained range.")] = 0.05,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="No progress bars.")] = False,
) -> None:
    """Fit θ to TARGET by gradient descent on θ alone, the parametrised classifier frozen."""
    from heplearn.methods import reweighting, reweighting_parametrised

    names = list(reweighting.read_settings(run).get("parameters", []))
    fitted = reweighting_parametrised.fit_parameters(
        run,
        source,
        target,
        start=_pairs(start, names, "--start"),
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        progress=not no_progress,
    )
    for name, value in fitted.values.items():
        typer.echo(f"{name} = {value:.6g} ± {fitted.uncertainties[name]:.2g}")
    typer.echo(f"fit: {run / reweighting.FIT_FILE}")


# -- heplearn unfold (OmniFold, heplearn.methods.unfolding) -----------------------------------------
@app.command()
def unfold(
    config: Annotated[
        Path,
        typer.Option("--config", "-c", help="Unfolding config (YAML): samples, levels, model, training, unfolding."),
    ],
    overrides: Annotated[
        list[str] | None, typer.Option("--set", help="Override a key: unfolding.iterations=5.")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Run name (default: omnifold and the time).")] = None,
    runs_dir: Annotated[Path, typer.Option(help="Where run directories go.")] = Path("runs"),
    no_progress: Annotated[bool, typer.Option("--no-progress", help="No progress bar.")] = False,
) -> None:
    """Unfold data with a paired simulation by OmniFold; per-event weights of the generator events."""
    from heplearn.methods.unfold_run import load_unfold_config
    from heplearn.methods.unfold_run import unfold as unfold_files

    run = unfold_files(
        load_unfold_config(config, overrides or []), name=name, runs_dir=runs_dir, progress=not no_progress
    )
    typer.echo(f"run: {run.run_dir}")
    typer.echo(f"weights: {run.weights_file}")


# -- heplearn anomaly (trigger autoencoders, thresholds, CWoLa: heplearn.methods.anomaly_cli) --------
def _register_anomaly() -> None:
    from heplearn.methods.anomaly_cli import anomaly_app

    app.add_typer(anomaly_app, name="anomaly")


_register_anomaly()


# -- heplearn fastsim (generative fast simulation of jets: heplearn.methods.fastsim_cli) --------------
def _register_fastsim() -> None:
    from heplearn.methods.fastsim_cli import fastsim_app

    app.add_typer(fastsim_app, name="fastsim")


_register_fastsim()


# -- heplearn analysis (the workflow from one config, on Snakemake: heplearn.analysis) ---------------
def _register_analysis() -> None:
    from heplearn.analysis.cli import analysis_app

    app.add_typer(analysis_app, name="analysis")


_register_analysis()


def _bundled(name: str, typer_class: type) -> type[Exception]:
    """The class ``name`` of the click that typer runs on (typer ≥ 0.20 bundles its own copy)."""
    return next(base for base in typer_class.__mro__ if base.__name__ == name)


# A usage error (unknown option, missing argument, typer.BadParameter) is one of these: click's own
# and typer's bundled click's, so that neither ends in a traceback.
COMMAND_LINE_ERRORS: tuple[type[Exception], ...] = tuple(
    {click.ClickException, _bundled("ClickException", typer.BadParameter)}
)
ABORTS: tuple[type[BaseException], ...] = tuple({click.exceptions.Abort, typer.Abort, KeyboardInterrupt})


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``heplearn`` console script."""
    arguments = sys.argv[1:] if argv is None else argv
    debug = "--debug" in arguments
    try:
        app(args=arguments, prog_name="heplearn", standalone_mode=False)
    except (HeplearnError, OSError) as error:
        if debug:
            raise
        message = str(error) if isinstance(error, HeplearnError) else one_line(f"{type(error).__name__}: {error}")
        print(f"heplearn: error: {message}", file=sys.stderr)  # noqa: T201 - the command's one-line error
        sys.exit(2)
    except COMMAND_LINE_ERRORS as error:
        error.show()
        sys.exit(error.exit_code)
    except ABORTS:
        print("heplearn: interrupted", file=sys.stderr)  # noqa: T201
        sys.exit(130)
