"""The ``heplearn evaluate`` and ``heplearn compare`` commands: parse the options, call the library.

Registered in ``heplearn.cli`` as ``app.command("evaluate")(evaluate_command)`` and
``app.command("compare")(compare_command)``. ``--data`` is repeatable and takes glob patterns
(``--data "data/test*.parquet"``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from heplearn.evaluation.plots import DEFAULT_LABEL, PlotStyle

DataOption = Annotated[list[str], typer.Option("--data", "-d", help="Data files or glob patterns (repeatable).")]
LabelOption = Annotated[str, typer.Option("--label", help="Experiment label of the plots.")]
NoProgressOption = Annotated[bool, typer.Option("--no-progress", help="No progress bars.")]
UncertaintyOption = Annotated[
    float, typer.Option("--background-uncertainty", help="Relative background uncertainty σ_b/b for the Asimov Z.")
]


def evaluate_command(
    run: Annotated[Path, typer.Argument(help="Run directory (runs/<name>).")],
    data: DataOption,
    name: Annotated[str | None, typer.Option("--name", help="Dataset name (default: the first file's name).")] = None,
    train_data: Annotated[
        list[str] | None, typer.Option("--train-data", help="Training files, for the overtraining check (repeatable).")
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Output folder (default: RUN/eval/DATASET).")
    ] = None,
    domain_data: Annotated[
        list[str] | None,
        typer.Option(
            "--domain-data",
            help="A sample of another domain (data, another detector or tune; labels not needed) "
            "whose score distribution is compared with the test jets' (repeatable).",
        ),
    ] = None,
    label: LabelOption = DEFAULT_LABEL,
    background_uncertainty: UncertaintyOption = 0.0,
    no_importance: Annotated[bool, typer.Option("--no-importance", help="Skip the permutation importance.")] = False,
    no_progress: NoProgressOption = False,
) -> None:
    """Evaluate a trained run on data: metrics.json, plots and a self-contained report.html."""
    from heplearn.evaluation.evaluate import EvaluationSettings, evaluate_run

    settings = EvaluationSettings(
        style=PlotStyle(label=label), background_uncertainty=background_uncertainty, importance=not no_importance
    )
    result = evaluate_run(
        run,
        data,
        output,
        train_data or None,
        dataset=name,
        settings=settings,
        progress=not no_progress,
        domain_files=domain_data or None,
    )
    metrics = result.metrics
    if metrics.get("task") == "regression":
        for target in metrics["targets"]:
            coverage = ", ".join(f"P(y < q{level}) {value:.3f}" for level, value in target["coverage"].items())
            typer.echo(
                f"{target['name']}: bias {target['bias']:.4g}, resolution {target['resolution']:.4g}"
                + (f", {coverage}" if coverage else "")
            )
        typer.echo(f"report: {result.report}")
        return
    rejections = ", ".join(
        f"1/εB({row['signal_efficiency']:.0%}) {row['rejection']:.1f}"
        for row in metrics["rejection"]
        if row["rejection"] is not None
    )
    typer.echo(f"AUC {metrics['auc']:.4f} ± {metrics['auc_uncertainty'] or 0:.4f}, {rejections}")
    if metrics["domain_agreement"]:
        agreement = metrics["domain_agreement"]
        typer.echo(
            f"domain agreement: χ²/ndf {agreement['chi2_ndf']:.2f}, KS p {agreement['ks_pvalue']:.3g}, "
            f"separation AUC {agreement['separation_auc']:.4f}, "
            f"domain-classifier AUC {agreement['classifier_auc']:.4f}"
        )
    typer.echo(f"report: {result.report}")


def compare_command(
    runs: Annotated[list[Path], typer.Argument(help="Run directories; the first is the reference.")],
    data: DataOption,
    output: Annotated[Path, typer.Option("--output", "-o", help="Output folder for report.html and plots.")],
    label: LabelOption = DEFAULT_LABEL,
    background_uncertainty: UncertaintyOption = 0.0,
    no_progress: NoProgressOption = False,
) -> None:
    """Compare several runs on the same jets: ROC overlay with ratio to the first, and a table."""
    from heplearn.evaluation.compare import compare_runs
    from heplearn.evaluation.evaluate import EvaluationSettings

    settings = EvaluationSettings(style=PlotStyle(label=label), background_uncertainty=background_uncertainty)
    result = compare_runs(runs, data, output, settings=settings, progress=not no_progress)
    for row in result.metrics["models"]:
        typer.echo(f"{row['name']}: AUC {row['auc']:.4f}")
    typer.echo(f"report: {result.report}")
