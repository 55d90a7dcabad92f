"""The ``heplearn tune`` command: parse the options, call ``heplearn.training.tune.tune``.

Registered in ``heplearn.cli`` as ``app.command("tune")(tune_command)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def tune_command(
    config: Annotated[Path, typer.Option("--config", "-c", help="Run config (YAML) the trials start from.")],
    space: Annotated[Path, typer.Option("--space", help="Search space (YAML): metric, direction, parameters.")],
    trials: Annotated[
        int, typer.Option("--trials", "-n", help="Trials in the study in all (a resumed study runs the missing ones).")
    ] = 20,
    overrides: Annotated[
        list[str] | None, typer.Option("--set", help="Override a key of the run config: training.epochs=5.")
    ] = None,
    sampler: Annotated[str, typer.Option(help="tpe (Bayesian), nsga2 (genetic), random or grid.")] = "tpe",
    pruner: Annotated[str, typer.Option(help="median, hyperband or none (prunes on the per-epoch metric).")] = "median",
    study: Annotated[
        str | None,
        typer.Option("--study", help="Study name (default: CONFIG-SPACE file stems); the same name resumes it."),
    ] = None,
    runs_dir: Annotated[Path, typer.Option(help="The study's folder goes here: RUNS_DIR/STUDY/trial_<n>.")] = Path(
        "runs"
    ),
    storage: Annotated[
        str | None,
        typer.Option(
            help="SQLAlchemy URL of the study's database (default: "
            "sqlite:///RUNS_DIR/STUDY/study.db; postgresql://... works)."
        ),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the samplers (each worker's derives from it).")] = None,
    population_size: Annotated[int, typer.Option(help="NSGA-II population per generation.")] = 10,
    startup_trials: Annotated[
        int, typer.Option(help="Random trials before TPE models the objective, and trials before the pruner prunes.")
    ] = 5,
    workers: Annotated[int, typer.Option(help="Run the trials on a Dask LocalCluster of this many processes.")] = 0,
    dask: Annotated[
        str | None,
        typer.Option("--dask", help="Run the trials on the Dask cluster at this scheduler address (tcp://host:8786)."),
    ] = None,
    no_report: Annotated[
        bool, typer.Option("--no-report", help="No plots and report.html (the tables and the best config are written).")
    ] = False,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="No progress bars.")] = False,
) -> None:
    """Search hyper-parameters (any key of the run config) with Optuna; each trial is a run directory."""
    from heplearn.training.search_space import load_space
    from heplearn.training.tune import TuneSettings, check_packages, read_base_config, tune

    check_packages(workers, dask)
    settings = TuneSettings(
        trials=trials,
        sampler=sampler,
        pruner=pruner,
        seed=seed,
        population_size=population_size,
        startup_trials=startup_trials,
        progress=not no_progress,
    )
    base = read_base_config(config, overrides or [])
    result = tune(
        base,
        load_space(space),
        settings,
        study or f"{config.stem}-{space.stem}",
        runs_dir,
        storage,
        workers=workers,
        scheduler=dask,
        report=not no_report,
    )
    counts = ", ".join(f"{count} {state}" for state, count in result.counts.items() if count)
    typer.echo(f"trials: {counts}")
    values = ", ".join(f"{key}={value}" for key, value in result.best_values.items())
    typer.echo(f"best: trial {result.best_trial}, value {result.best_value:.6g} ({values})")
    typer.echo(f"best config: {result.best_config}")
    typer.echo(f"trials: {result.trials_csv}")
    if result.report:
        typer.echo(f"report: {result.report}")
