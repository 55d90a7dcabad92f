"""``heplearn generate``: the command line of the event generator (it only parses and calls).

    heplearn generate top qcd --jets 100000 -o data/top-vs-qcd --workers 4
    heplearn generate quark gluon --jets 50000 -o data/qg --radius 0.4
    heplearn generate qcd --jets 50000 -o data/qcd-fsr-up --variation fsr-up
    heplearn generate qcd --jets 50000 -o data/qcd-as016 --pythia TimeShower:alphaSvalue=0.16
    heplearn generate top qcd --jets 50000 -o data/pseudo-data --detector alt
    heplearn generate top qcd --jets 50000 -o data/top-pu40 --pileup 40
    heplearn generate toy --events 100000 -o data/toy
    heplearn generate events wprime dijet_qcd --events 100000 -o data/lhco --format root

Register with ``app.command("generate")(generate_command)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from heplearn.errors import ConfigError
from heplearn.generate.processes import DEFAULT_CHUNK_SIZE, PROCESSES, GeneratorOptions

TOY = "toy"
EVENTS = "events"


def _parse_split(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(part) for part in text.split(","))
    except ValueError as error:
        raise ConfigError(f"--split {text!r}: expected three comma-separated fractions, e.g. 0.8,0.1,0.1") from error


def generate_command(
    *,
    processes: Annotated[
        list[str],
        typer.Argument(
            help=f"Processes to mix ({', '.join(PROCESSES)}); 'toy' alone for the analytic toy; 'events' then "
            "event processes (wprime, dijet_qcd, zmumu_jets, ztautau, tth, ttbb, ttlf) for NanoAOD-layout "
            "events.",
            show_default=False,
        ),
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output directory.", show_default=False)],
    jets: Annotated[int | None, typer.Option("--jets", "-n", help="Jets per process.")] = None,
    workers: Annotated[int, typer.Option(help="Worker processes (Dask LocalCluster when > 1).")] = 1,
    seed: Annotated[int, typer.Option(help="Global seed; every chunk's seed derives from it.")] = 0,
    file_format: Annotated[str, typer.Option("--format", help="parquet, root or hdf5.")] = "parquet",
    pt_min: Annotated[float, typer.Option(help="Jet pT window: lower edge (GeV).")] = 550.0,
    pt_max: Annotated[float, typer.Option(help="Jet pT window: upper edge (GeV).")] = 650.0,
    eta_max: Annotated[float, typer.Option(help="Largest jet |η|.")] = 2.0,
    radius: Annotated[float | None, typer.Option(help="Jet radius R (default 0.8; 0.4 for quark/gluon).")] = None,
    algorithm: Annotated[str, typer.Option(help="antikt, kt or cambridge.")] = "antikt",
    mpi: Annotated[bool, typer.Option("--mpi/--no-mpi", help="Multiple parton interactions.")] = True,
    max_particles: Annotated[int, typer.Option(help="Constituents stored per jet (pT-ordered).")] = 128,
    detector: Annotated[
        str | None, typer.Option(help="Parametric detector: a profile (nominal, alt) or a YAML file; none by default.")
    ] = None,
    variation: Annotated[
        str | None,
        typer.Option(
            help="Named Pythia variation: fsr-up, fsr-down, fsr-alphas-up, fsr-alphas-down, isr-up, "
            "isr-down, hadronization."
        ),
    ] = None,
    pileup: Annotated[float, typer.Option(help="Pileup μ: Poisson(μ) minimum-bias interactions per event.")] = 0.0,
    pileup_pool: Annotated[int, typer.Option(help="Minimum-bias events made once and drawn from for pileup.")] = 1000,
    pythia: Annotated[
        list[str] | None,
        typer.Option("--pythia", help="Any Pythia setting KEY=VALUE (repeatable; read last, so it wins)."),
    ] = None,
    sqrt_s: Annotated[
        float | None, typer.Option(help="Collision energy √s (GeV); 14 TeV for jets, 13 TeV for events.")
    ] = None,
    pthat_min: Annotated[float | None, typer.Option(help="Hard-process pT-hat minimum (GeV).")] = None,
    pthat_max: Annotated[float | None, typer.Option(help="Hard-process pT-hat maximum (GeV).")] = None,
    chunk_size: Annotated[
        int, typer.Option(help="Jets (or events) per chunk (the unit of work and of restart).")
    ] = DEFAULT_CHUNK_SIZE,
    split: Annotated[str, typer.Option(help="train,val,test fractions.")] = "0.8,0.1,0.1",
    scheduler: Annotated[str | None, typer.Option(help="Address of an existing Dask scheduler.")] = None,
    events: Annotated[int | None, typer.Option(help="Toy and event samples: number of events (per process).")] = None,
    wprime_mass: Annotated[float, typer.Option(help="Events, wprime: W' mass (GeV).")] = 3500.0,
    x_mass: Annotated[float, typer.Option(help="Events, wprime: X mass (GeV), X → qq̄.")] = 500.0,
    y_mass: Annotated[float, typer.Option(help="Events, wprime: Y mass (GeV), Y → qq̄.")] = 100.0,
    higgs_mass: Annotated[float, typer.Option(help="Events, tth: Higgs mass (GeV), H → bb̄.")] = 125.0,
    dimensions: Annotated[int, typer.Option(help="Toy only: number of features.")] = 4,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")] = True,
) -> None:
    """Generate labelled jets with Pythia 8 and FastJet (or the analytic toy) into OUTPUT."""
    # Imported here so that `heplearn --help` does not load FastJet, awkward and Dask.
    from heplearn.generate.detector import load_detector
    from heplearn.generate.driver import generate
    from heplearn.generate.toy import write_toy

    fractions = _parse_split(split)
    names = [name.strip().lower() for name in processes]
    if names and names[0] == EVENTS:
        from heplearn.generate.event_driver import generate_events_sample
        from heplearn.generate.nanoaod import EventOptions

        if events is None:
            raise ConfigError("events: give the number of events per process with --events N")
        if jets is not None:
            raise ConfigError("events: --jets is for jet samples; use --events")
        event_options = EventOptions(
            sqrt_s=13_000.0 if sqrt_s is None else sqrt_s,
            mpi=mpi,
            wprime_mass=wprime_mass,
            x_mass=x_mass,
            y_mass=y_mass,
            higgs_mass=higgs_mass,
            detector=load_detector(detector),
            variation=variation,
            pythia=tuple(pythia or ()),
            pileup=pileup,
            pileup_pool=pileup_pool,
            pthat_min=pthat_min,
        )
        summary = generate_events_sample(
            names[1:],
            events,
            output,
            seed=seed,
            workers=workers,
            chunk_size=chunk_size,
            fractions=fractions,
            file_format=file_format,
            options=event_options,
            scheduler=scheduler,
            progress=progress,
        )
        for split_name, path in summary.files.items():
            typer.echo(f"{split_name}: {path} ({summary.jets_per_split[split_name]} events)")
        typer.echo(
            f"{summary.jets_generated} events generated in {summary.seconds:.1f} s; "
            f"{summary.chunks_skipped} chunk(s) reused"
        )
        return
    if TOY in names:
        if len(names) > 1:
            raise ConfigError("'toy' cannot be mixed with physics processes; run it alone")
        if events is None:
            raise ConfigError("toy: give the number of events with --events N")
        if jets is not None:
            raise ConfigError("toy: --jets is for physics processes; use --events")
        paths = write_toy(
            output,
            events,
            dimensions,
            seed=seed,
            fractions=fractions,  # type: ignore[arg-type]
            file_format=file_format,
        )
        for split_name, path in paths.items():
            typer.echo(f"{split_name}: {path}")
        return
    if events is not None:
        raise ConfigError(
            "--events is for the toy and event samples (generate events PROCESS...); use --jets N for jet processes"
        )
    if jets is None:
        raise ConfigError("give the number of jets per process with --jets N")
    options = GeneratorOptions(
        sqrt_s=14_000.0 if sqrt_s is None else sqrt_s,
        pt_min=pt_min,
        pt_max=pt_max,
        eta_max=eta_max,
        radius=radius,
        algorithm=algorithm,
        mpi=mpi,
        max_particles=max_particles,
        pthat_min=pthat_min,
        pthat_max=pthat_max,
        detector=load_detector(detector),
        variation=variation,
        pythia=tuple(pythia or ()),
        pileup=pileup,
        pileup_pool=pileup_pool,
    )
    summary = generate(
        names,
        jets,
        output,
        seed=seed,
        workers=workers,
        chunk_size=chunk_size,
        fractions=fractions,
        file_format=file_format,
        options=options,
        scheduler=scheduler,
        progress=progress,
    )
    for split_name, path in summary.files.items():
        typer.echo(f"{split_name}: {path} ({summary.jets_per_split[split_name]} jets)")
    typer.echo(
        f"{summary.jets_generated} jets generated in {summary.seconds:.1f} s "
        f"({summary.jets_per_second:.1f} jets/s); {summary.chunks_skipped} chunk(s) reused"
    )
