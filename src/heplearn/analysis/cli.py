"""The ``heplearn analysis`` commands: run the analysis of a config, say what is done, write its report.

Registered in ``heplearn.cli`` as ``app.add_typer(analysis_app, name="analysis")``:

    heplearn analysis run -c configs/analysis_top_fraction.yaml --cores 2
    heplearn analysis run -c configs/analysis_top_fraction.yaml --profile htcondor   # or slurm, or your own
    heplearn analysis status -c configs/analysis_top_fraction.yaml
    heplearn analysis report -c configs/analysis_top_fraction.yaml
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from heplearn.analysis.plan import Plan

analysis_app = typer.Typer(
    help="The analysis from one config, on Snakemake: samples, models, fit, report.", no_args_is_help=True
)

ConfigOption = Annotated[Path, typer.Option("--config", "-c", help="Analysis config (YAML).")]


def _plan(config: Path) -> Plan:
    from heplearn.analysis.config import load_analysis_config
    from heplearn.analysis.plan import make_plan

    return make_plan(load_analysis_config(config), config)


@analysis_app.command("run")
def run_command(
    config: ConfigOption,
    cores: Annotated[
        int | None, typer.Option(help="Cores Snakemake may use at once (default 1, or the profile's).")
    ] = None,
    profile: Annotated[
        str | None,
        typer.Option(
            help="Snakemake profile (folder or name): the executor and its "
            "settings. heplearn ships htcondor and slurm; a profile of "
            "that name in ~/.config/snakemake wins."
        ),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say what would run.")] = False,
    unlock: Annotated[
        bool,
        typer.Option(
            "--unlock",
            help="Remove the lock a killed run left, then run (a run killed on this host is unlocked without it).",
        ),
    ] = False,
) -> None:
    """Run every stage that is not done (each keyed by its settings and inputs), then write the report."""
    from heplearn.analysis.engine import run_analysis
    from heplearn.analysis.report import relative

    plan = _plan(config)
    summary = run_analysis(plan, cores, profile, dry_run, unlock)
    stages = [name for name in summary.scheduled if name != "report"]
    if dry_run:
        typer.echo(f"would run: {', '.join(summary.scheduled) or 'nothing'}")
        return
    typer.echo(f"{len(stages)} stage(s) run, {len(summary.reused)} reused")
    typer.echo(f"report: {relative(summary.report, plan)}")


@analysis_app.command("status")
def status_command(config: ConfigOption) -> None:
    """Each stage: done, new, incomplete, or stale and why (which settings or inputs changed)."""
    from heplearn.analysis.engine import stage_states

    for state in stage_states(_plan(config)):
        typer.echo(f"{state.stage.name:<28} {state.state:<10} {state.reason}")


@analysis_app.command("report")
def report_command(config: ConfigOption) -> None:
    """Write the analysis report: the fraction per tagger beside the truth, then every stage's report."""
    from heplearn.analysis.report import analysis_results, relative, write_analysis_report

    plan = _plan(config)
    path = write_analysis_report(plan)
    results = analysis_results(plan)
    truth = results["true_fraction"]
    for tagger in results["taggers"]:
        typer.echo(
            f"{tagger['model']}: {results['signal']} fraction {tagger['fraction']:.4f} ± "
            f"{tagger['uncertainty']:.4f}" + (f" (true {truth:.4f})" if truth is not None else "")
        )
    typer.echo(f"report: {relative(path, plan)}")
