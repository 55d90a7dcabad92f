"""The ``heplearn fit`` command: parse the options, call ``heplearn.stats.fitting``.

Registered in ``heplearn.cli`` as ``app.command("fit")(fit_command)``. Two ways in:

- a run: ``heplearn fit RUN --templates "test*.parquet" --data mixture.parquet`` scores labelled
  jets in memory (the run's first class is the signal, unless ``--signal``), and
  ``--systematic tune=alt_tune.parquet`` scores a varied sample the same way;
- score files of ``heplearn predict``: ``heplearn fit --signal-scores top.scores.parquet
  --background-scores qcd.scores.parquet --data mix.scores.parquet --column score_top``, with
  ``--systematic tune=SIGNAL_FILES:BACKGROUND_FILES`` (either side may be empty).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from heplearn.evaluation.plots import DEFAULT_LABEL, PlotStyle

FileList = list[str] | None


def _systematics(values: list[str] | None, score_files: bool) -> dict[str, object]:
    """``NAME=FILES`` (run) or ``NAME=SIGNAL_FILES:BACKGROUND_FILES`` (score files), files comma-separated."""
    parsed: dict[str, object] = {}
    for value in values or []:
        name, equals, files = value.partition("=")
        if not equals or not name or not files:
            raise typer.BadParameter(f"--systematic {value!r}: expected NAME=FILES")
        if score_files:
            signal, colon, background = files.partition(":")
            if not colon:
                raise typer.BadParameter(f"--systematic {value!r}: expected NAME=SIGNAL_FILES:BACKGROUND_FILES")
            parsed[name] = ([f for f in signal.split(",") if f], [f for f in background.split(",") if f])
        else:
            parsed[name] = [f for f in files.split(",") if f]
    return parsed


def fit_command(
    run: Annotated[Path | None, typer.Argument(help="Run directory whose scores make the templates "
                                               "(omit with --signal-scores/--background-scores).")] = None,
    data: Annotated[list[str] | None, typer.Option("--data", "-d", help="The data to fit (files or globs, "
                                                   "repeatable).")] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="Output folder.")] = Path("fit"),
    templates: Annotated[FileList, typer.Option("--templates", help="Run mode: labelled jets for the templates "
                                                "(repeatable).")] = None,
    signal: Annotated[str | None, typer.Option(help="Run mode: the signal class (default: the run's first).")]
    = None,
    observable: Annotated[str | None, typer.Option(help="Run mode: fit this observer instead of the score.")]
    = None,
    signal_scores: Annotated[FileList, typer.Option("--signal-scores", help="Score files of the signal sample "
                                                    "(repeatable).")] = None,
    background_scores: Annotated[FileList, typer.Option("--background-scores", help="Score files of the "
                                                        "background sample (repeatable).")] = None,
    column: Annotated[str, typer.Option(help="Score-file mode: the column to fit.")] = "score_top",
    weight: Annotated[str | None, typer.Option(help="Score-file mode: a weight column of the templates.")] = None,
    systematic: Annotated[list[str] | None, typer.Option(
        "--systematic", help="A varied sample: NAME=FILES (run) or NAME=SIGNAL:BACKGROUND (score files); "
        "repeatable.")] = None,
    bins: Annotated[int, typer.Option(help="Bins of the templates.")] = 20,
    low: Annotated[float, typer.Option(help="Lower edge of the binning.")] = 0.0,
    high: Annotated[float, typer.Option(help="Upper edge of the binning.")] = 1.0,
    expected_fraction: Annotated[float | None, typer.Option(
        help="α₀ with μ = α/α₀ (default: the binned stat-only fraction).")] = None,
    background_uncertainty: Annotated[float | None, typer.Option(
        help="Relative background normalisation uncertainty (default: the background floats freely).")] = None,
    lumi_uncertainty: Annotated[float, typer.Option(help="Relative luminosity uncertainty (0: none).")] = 0.0,
    mc_statistics: Annotated[str, typer.Option(help="staterror, shapesys or none.")] = "staterror",
    unbinned: Annotated[bool, typer.Option("--unbinned/--no-unbinned", help="Also fit α unbinned.")] = True,
    scan_points: Annotated[int, typer.Option(help="Points of each μ profile (the 2-D one takes a third per "
                                             "axis).")] = 21,
    scan_2d: Annotated[bool, typer.Option("--scan-2d/--no-scan-2d", help="Profile μ and the background "
                                          "normalisation together.")] = True,
    limit: Annotated[bool, typer.Option("--limit/--no-limit", help="Compute the CLs upper limit.")] = True,
    label: Annotated[str, typer.Option("--label", help="Experiment label of the plots.")] = DEFAULT_LABEL,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="No progress bars.")] = False,
) -> None:
    """Fit the signal fraction and strength of DATA from templates: workspace.json, results.json, report.html."""
    from heplearn.stats.fitting import FitSettings, fit_inputs, inputs_from_run, inputs_from_score_files, summary_line
    from heplearn.stats.templates import Binning

    if not data:
        raise typer.BadParameter("give the data to fit: --data FILES")
    if run is not None:
        if not templates:
            raise typer.BadParameter("a run needs --templates FILES: labelled jets for the templates")
        inputs = inputs_from_run(run, templates, data, _systematics(systematic, False),  # type: ignore[arg-type]
                                 signal=signal, observable=observable, progress=not no_progress)
    else:
        if not signal_scores or not background_scores:
            raise typer.BadParameter("give a RUN with --templates, or --signal-scores and --background-scores")
        inputs = inputs_from_score_files(signal_scores, background_scores, data, column, weight,
                                         _systematics(systematic, True))  # type: ignore[arg-type]
    settings = FitSettings(binning=Binning(bins, low, high), expected_fraction=expected_fraction,
                           background_uncertainty=background_uncertainty, lumi_uncertainty=lumi_uncertainty,
                           mc_statistics=mc_statistics, unbinned=unbinned, limit=limit, scan_points=scan_points,
                           scan_2d=scan_2d, style=PlotStyle(label=label))
    outcome = fit_inputs(inputs, output, settings, progress=not no_progress)
    typer.echo(summary_line(outcome))
    typer.echo(f"workspace: {output / 'workspace.json'}")
    typer.echo(f"report: {outcome.report}")
