"""The ``heplearn fit`` command: parse the options, call ``heplearn.stats.fitting`` (or, with
``--working-point``, ``heplearn.stats.scale_factor_fit``).

Registered in ``heplearn.cli`` as ``app.command("fit")(fit_command)``. Two ways in:

- a run: ``heplearn fit RUN --templates "test*.parquet" --data mixture.parquet`` scores labelled
  jets in memory (the run's first class is the signal, unless ``--signal``), and
  ``--systematic tune=alt_tune.parquet`` scores a varied sample the same way;
- score files of ``heplearn predict``: ``heplearn fit --signal-scores top.scores.parquet
  --background-scores qcd.scores.parquet --data mix.scores.parquet --column score_top``, with
  ``--systematic tune=SIGNAL_FILES:BACKGROUND_FILES`` (either side may be empty) and, for a
  two-sided variation, ``--systematic-down tune=SIGNAL_FILES:BACKGROUND_FILES`` (else mirrored);
- scale factors: ``heplearn fit --working-point 0.5 --pt-bins 300,500,800 --signal-scores top_sim.parquet
  --background-scores qcd_sim.parquet --data control.parquet --column score_top --sf-observable jet_sdmass
  --bins 25 --low 50 --high 300``: the pass/fail fits of the jet mass per pT bin, SF = ε_data / ε_sim
  with statistical and (``--systematic NAME=SIGNAL:BACKGROUND``, varied simulation) systematic σ.
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
    run: Annotated[
        Path | None,
        typer.Argument(
            help="Run directory whose scores make the templates (omit with --signal-scores/--background-scores)."
        ),
    ] = None,
    data: Annotated[
        list[str] | None, typer.Option("--data", "-d", help="The data to fit (files or globs, repeatable).")
    ] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="Output folder.")] = Path("fit"),
    templates: Annotated[
        FileList, typer.Option("--templates", help="Run mode: labelled jets for the templates (repeatable).")
    ] = None,
    signal: Annotated[str | None, typer.Option(help="Run mode: the signal class (default: the run's first).")] = None,
    observable: Annotated[str | None, typer.Option(help="Run mode: fit this observer instead of the score.")] = None,
    signal_scores: Annotated[
        FileList, typer.Option("--signal-scores", help="Score files of the signal sample (repeatable).")
    ] = None,
    background_scores: Annotated[
        FileList, typer.Option("--background-scores", help="Score files of the background sample (repeatable).")
    ] = None,
    column: Annotated[str, typer.Option(help="Score-file mode: the column to fit.")] = "score_top",
    weight: Annotated[str | None, typer.Option(help="Score-file mode: a weight column of the templates.")] = None,
    systematic: Annotated[
        list[str] | None,
        typer.Option(
            "--systematic",
            help="A varied sample: NAME=FILES (run) or NAME=SIGNAL:BACKGROUND (score files); repeatable.",
        ),
    ] = None,
    systematic_down: Annotated[
        list[str] | None,
        typer.Option(
            "--systematic-down",
            help="Score-file mode: the −1σ sample of a --systematic, NAME=SIGNAL:BACKGROUND "
            "(without one, the +1σ shape is mirrored); repeatable.",
        ),
    ] = None,
    bins: Annotated[int, typer.Option(help="Bins of the templates.")] = 20,
    low: Annotated[float, typer.Option(help="Lower edge of the binning.")] = 0.0,
    high: Annotated[float, typer.Option(help="Upper edge of the binning.")] = 1.0,
    expected_fraction: Annotated[
        float | None, typer.Option(help="α₀ with μ = α/α₀ (default: the binned stat-only fraction).")
    ] = None,
    background_uncertainty: Annotated[
        float | None,
        typer.Option(help="Relative background normalisation uncertainty (default: the background floats freely)."),
    ] = None,
    lumi_uncertainty: Annotated[float, typer.Option(help="Relative luminosity uncertainty (0: none).")] = 0.0,
    mc_statistics: Annotated[str, typer.Option(help="staterror, shapesys or none.")] = "staterror",
    unbinned: Annotated[bool, typer.Option("--unbinned/--no-unbinned", help="Also fit α unbinned.")] = True,
    scan_points: Annotated[
        int, typer.Option(help="Points of each μ profile (the 2-D one takes a third per axis).")
    ] = 21,
    scan_2d: Annotated[
        bool, typer.Option("--scan-2d/--no-scan-2d", help="Profile μ and the background normalisation together.")
    ] = True,
    limit: Annotated[bool, typer.Option("--limit/--no-limit", help="Compute the CLs upper limit.")] = True,
    working_point: Annotated[
        float | None,
        typer.Option(
            "--working-point",
            help="Scale-factor mode: jets with the score (--column) at or above it pass; the "
            "simulation is --signal-scores/--background-scores, the data --data, varied simulation --systematic.",
        ),
    ] = None,
    pt_bins: Annotated[
        str | None,
        typer.Option(
            "--pt-bins", help="Scale-factor mode: bin edges of --pt-column, comma-separated (e.g. 300,450,600,1000)."
        ),
    ] = None,
    pt_column: Annotated[str, typer.Option("--pt-column", help="Scale-factor mode: the binned variable.")] = "jet_pt",
    sf_observable: Annotated[
        str,
        typer.Option(
            "--sf-observable",
            help="Scale-factor mode: the column fitted in pass and fail (binned by --bins, --low, --high).",
        ),
    ] = "jet_sdmass",
    label: Annotated[str, typer.Option("--label", help="Experiment label of the plots.")] = DEFAULT_LABEL,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="No progress bars.")] = False,
) -> None:
    """Fit the signal fraction and strength of DATA from templates: workspace.json, results.json, report.html."""
    from heplearn.stats.fitting import FitSettings, fit_inputs, inputs_from_run, inputs_from_score_files, summary_line
    from heplearn.stats.templates import Binning

    if not data:
        raise typer.BadParameter("give the data to fit: --data FILES")
    if working_point is not None:
        if run is not None or systematic_down:
            raise typer.BadParameter(
                "--working-point (scale factors) reads files: --signal-scores, "
                "--background-scores, --data (no RUN, no --systematic-down)"
            )
        if not signal_scores or not background_scores or not pt_bins:
            raise typer.BadParameter(
                "--working-point needs --signal-scores and --background-scores (simulation) and --pt-bins EDGES"
            )
        _scale_factors(
            signal_scores,
            background_scores,
            data,
            working_point,
            pt_bins,
            pt_column,
            sf_observable,
            column,
            weight,
            _systematics(systematic, True),
            Binning(bins, low, high),  # type: ignore[arg-type]
            mc_statistics,
            PlotStyle(label=label),
            output,
        )
        return
    if run is not None:
        if systematic_down:
            raise typer.BadParameter("--systematic-down is for score files (--signal-scores/--background-scores)")
        if not templates:
            raise typer.BadParameter("a run needs --templates FILES: labelled jets for the templates")
        inputs = inputs_from_run(
            run,
            templates,
            data,
            _systematics(systematic, False),  # type: ignore[arg-type]
            signal=signal,
            observable=observable,
            progress=not no_progress,
        )
    else:
        if not signal_scores or not background_scores:
            raise typer.BadParameter("give a RUN with --templates, or --signal-scores and --background-scores")
        inputs = inputs_from_score_files(
            signal_scores,
            background_scores,
            data,
            column,
            weight,
            _systematics(systematic, True),  # type: ignore[arg-type]
            systematics_down=_systematics(systematic_down, True),
        )  # type: ignore[arg-type]
    settings = FitSettings(
        binning=Binning(bins, low, high),
        expected_fraction=expected_fraction,
        background_uncertainty=background_uncertainty,
        lumi_uncertainty=lumi_uncertainty,
        mc_statistics=mc_statistics,
        unbinned=unbinned,
        limit=limit,
        scan_points=scan_points,
        scan_2d=scan_2d,
        style=PlotStyle(label=label),
    )
    outcome = fit_inputs(inputs, output, settings, progress=not no_progress)
    typer.echo(summary_line(outcome))
    typer.echo(f"workspace: {output / 'workspace.json'}")
    typer.echo(f"report: {outcome.report}")


def _scale_factors(
    signal: list[str],
    background: list[str],
    data: list[str],
    working_point: float,
    pt_bins: str,
    pt_column: str,
    observable: str,
    column: str,
    weight: str | None,
    systematics: dict[str, tuple[list[str], list[str]]],
    binning: object,
    mc_statistics: str,
    style: PlotStyle,
    output: Path,
) -> None:
    """``heplearn fit --working-point``: the SF table and plot (``heplearn.stats.scale_factor_fit``)."""
    from heplearn.errors import ConfigError
    from heplearn.stats.scale_factor_fit import (
        ScaleFactorSettings,
        scale_factor_inputs,
        scale_factor_report,
        summary_line,
    )

    try:
        edges = tuple(float(edge) for edge in pt_bins.split(","))
    except ValueError as error:
        raise ConfigError(f"--pt-bins {pt_bins!r}: expected numbers separated by commas") from error
    inputs = scale_factor_inputs(signal, background, data, column, observable, pt_column, weight, systematics)
    settings = ScaleFactorSettings(working_point, edges, binning, mc_statistics, style)  # type: ignore[arg-type]
    outcome = scale_factor_report(inputs, output, settings)
    typer.echo(summary_line(outcome))
    typer.echo(f"report: {outcome.report}")
