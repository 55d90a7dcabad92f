"""Hyper-parameter search: ``heplearn tune -c CONFIG --space SPACE.yaml --trials N`` (Optuna).

Each trial is an ordinary training run (``runs/<study>/trial_<n>/``, made by ``heplearn.train``)
of the run config with one point of the search space (``search_space.py``) set. The samplers:
TPE for Bayesian optimisation (Bergstra et al., NeurIPS 2011; the role scikit-optimize's Gaussian
processes played in the DNN searches of the LHC experiments), NSGA-II as the genetic algorithm
(Deb et al. 2002; a GA searched the Pierre Auger muon-counting DNN, arXiv:1807.09024), random and
grid as baselines. Poor trials are pruned from the per-epoch validation metric: the trainer's
``on_epoch`` callback reports each epoch to Optuna, which stops a trial that falls below the
median of the earlier ones at the same epoch (or by successive halving, ``hyperband``).

The study lives in Optuna's RDB storage (SQLite beside the trials by default, any SQLAlchemy URL
such as ``postgresql://user@host/db``), so a killed study resumes where it stopped (finished
trials are kept; a trial whose process died is failed once its heartbeat is older than the grace
period and run again), and several processes — ``heplearn tune`` started more than once on one
storage, or Dask workers (a ``LocalCluster`` or a scheduler address) — run trials in parallel.
``--trials N`` is the study's total: every worker stops once N trials have finished or are running
(a trial counts what is finished and what started before it, so the workers never overshoot N).

The outputs beside the trials: ``best_config.yaml`` (the best trial's full run config, ready for
``heplearn train -c``), ``trials.csv`` / ``trials.json`` and ``report.html`` with Optuna's plots
(optimisation history, parameter importances by fANOVA, parallel coordinates).
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import os
import socket
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from heplearn.config import apply_overrides, read_yaml
from heplearn.data.files import write_json, write_text_atomic
from heplearn.errors import ConfigError, HeplearnError
from heplearn.models import registry
from heplearn.optional import optional_import
from heplearn.run_config import RunConfig, load_run_config
from heplearn.training.search_space import SearchSpace, check_space, config_with, grid_of

log = logging.getLogger(__name__)

PRUNERS = ("median", "hyperband", "none")
STORAGE_FILE = "study.db"
MEMORY = "memory"  # --storage memory: the study lives in this process only
BEST_CONFIG_FILE = "best_config.yaml"
TRIALS_CSV = "trials.csv"
TRIALS_JSON = "trials.json"
REPORT_FILE = "report.html"

EpochCallback = Callable[[dict[str, Any]], None]
# (config, run name, runs folder, per-epoch callback, progress) -> the epochs' records
TrialFunction = Callable[[RunConfig, str, Path, EpochCallback, bool], list[dict[str, Any]]]


class TuneError(HeplearnError):
    """A study that cannot run or cannot report: an unopenable storage, a study with no finished trial."""


@dataclass(frozen=True)
class TuneSettings:
    """How a study searches: its total number of trials, sampler, pruner and bookkeeping.

    ``seed`` makes a sampler reproducible (each worker's seed derives from it, the worker's index
    and the trials the study already has, so workers and resumed runs do not draw the same points).
    ``startup_trials``: random trials before TPE models the objective, and complete trials before
    the median pruner prunes. ``heartbeat_interval`` and
    ``grace_period`` (seconds): how a trial whose process died is recognised (and retried once).
    """

    trials: int
    sampler: str = "tpe"
    pruner: str = "median"
    seed: int | None = None
    population_size: int = 10
    startup_trials: int = 5
    heartbeat_interval: int = 10
    grace_period: int = 30
    progress: bool = True

    def check(self) -> None:
        """The settings on their own."""
        from heplearn.training.search_space import SAMPLERS

        if self.trials < 1:
            raise ConfigError(f"--trials {self.trials}: give at least one trial")
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"--sampler {self.sampler!r}: choose one of {', '.join(SAMPLERS)}")
        if self.pruner not in PRUNERS:
            raise ConfigError(f"--pruner {self.pruner!r}: choose one of {', '.join(PRUNERS)}")
        if self.population_size < 2:
            raise ConfigError(f"--population-size {self.population_size}: NSGA-II needs at least 2")
        if self.heartbeat_interval < 1 or self.grace_period <= self.heartbeat_interval:
            raise ConfigError("the heartbeat interval must be at least 1 s and below the grace period")


def train_trial(
    config: RunConfig, name: str, runs_dir: Path, on_epoch: EpochCallback, progress: bool
) -> list[dict[str, Any]]:
    """One trial as an ordinary training run ``runs_dir/name``; returns its epochs' records."""
    from heplearn.training.from_config import train

    return train(config, name=name, runs_dir=runs_dir, progress=progress, on_epoch=on_epoch).history


@dataclass(frozen=True)
class StudyPlan:
    """Everything a worker needs to run trials of a study (picklable: it travels to Dask workers)."""

    name: str
    directory: Path
    storage: str
    base: dict[str, Any]
    space: SearchSpace
    settings: TuneSettings
    trial_function: TrialFunction = train_trial


@dataclass
class TuneResult:
    """What a study produced: the best trial and the files written beside the trials."""

    directory: Path
    best_value: float
    best_trial: int
    best_values: dict[str, Any]
    best_config: Path
    trials_csv: Path
    trials_json: Path
    report: Path | None
    counts: dict[str, int] = field(default_factory=dict)


def read_base_config(path: str | os.PathLike[str], overrides: list[str] | None = None) -> dict[str, Any]:
    """A run config file as the dict the trials start from (a ``data:`` file path read in, overrides applied)."""
    content = read_yaml(path)
    if isinstance(content.get("data"), str):
        content["data"] = read_yaml(Path(path).parent / content["data"])
    apply_overrides(content, overrides or [])
    load_run_config(content)  # a bad config fails here, before any trial
    return content


def default_storage(directory: str | os.PathLike[str]) -> str:
    """The study's SQLite database beside its trials."""
    return f"sqlite:///{(Path(directory) / STORAGE_FILE).resolve()}"


@contextlib.contextmanager
def quiet_experimental() -> Iterator[None]:
    """Optuna flags the heartbeat and some plots as experimental; they are used knowingly here."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


def _shown(url: str) -> str:
    """A storage URL for messages: the password hidden."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not even a URL: show it as given
        return url


def open_storage(url: str, settings: TuneSettings) -> Any:
    """Optuna's RDB storage at ``url``, with heartbeats (a dead worker's trial is failed and retried once).

    ``memory`` keeps the study in this process only (nothing to resume or share: quick searches).
    """
    import optuna
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    if url == MEMORY:
        return optuna.storages.InMemoryStorage()
    try:
        with quiet_experimental():
            # SQLite locks the whole file per write: wait for the other workers' writes rather than fail
            engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else None
            return RDBStorage(
                url,
                engine_kwargs=engine,
                heartbeat_interval=settings.heartbeat_interval,
                grace_period=settings.grace_period,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=1),
            )
    except (ImportError, ValueError, RuntimeError, optuna.exceptions.StorageInternalError) as error:
        raise TuneError(f"--storage {_shown(url)}: cannot open it ({type(error).__name__}: {error})") from None
    except Exception as error:  # SQLAlchemy's errors: a server that does not answer, a file that cannot be made
        if type(error).__module__.startswith("sqlalchemy"):
            raise TuneError(
                f"--storage {_shown(url)}: cannot open it ({type(error).__name__}: {str(error).splitlines()[0]})"
            ) from None
        raise


def _sampler(settings: TuneSettings, space: SearchSpace, worker: int, started: int = 0) -> Any:
    """The sampler of worker ``worker`` joining a study that has ``started`` trials.

    Its seed derives from ``seed``, the worker and ``started``: parallel workers, and a study
    resumed with the same ``--seed``, do not draw again the points already drawn.
    """
    import numpy as np
    import optuna

    seed = (
        None
        if settings.seed is None
        else int(np.random.SeedSequence([settings.seed, worker, started]).generate_state(1)[0])
    )
    if settings.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=settings.startup_trials)
    if settings.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(population_size=settings.population_size, seed=seed)
    if settings.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.GridSampler(grid_of(space), seed=seed)


def _pruner(settings: TuneSettings, base: dict[str, Any]) -> Any:
    import optuna

    if settings.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=settings.startup_trials, n_warmup_steps=1)
    if settings.pruner == "hyperband":
        epochs = load_run_config(base).training.epochs
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(epochs, 2))
    return optuna.pruners.NopPruner()


def load_study(plan: StudyPlan, worker: int = 0, storage: Any = None) -> Any:
    """Create the study in its storage, or load it; a study begun with another space or direction is refused.

    ``storage``: an opened storage to use instead of opening ``plan.storage``.
    """
    import optuna

    storage = storage if storage is not None else open_storage(plan.storage, plan.settings)
    study = optuna.create_study(
        storage=storage,
        study_name=plan.name,
        load_if_exists=True,
        direction=plan.space.direction,
        pruner=_pruner(plan.settings, plan.base),
    )
    study.sampler = _sampler(plan.settings, plan.space, worker, len(study.get_trials(deepcopy=False)))
    space = plan.space.model_dump(mode="json")
    stored = study.user_attrs.get("space")
    if stored is None:
        study.set_user_attr("space", space)
        study.set_user_attr("base_config", plan.base)
    elif stored != space:
        raise ConfigError(
            f"study {plan.name!r} in {_shown(plan.storage)} was begun with another search space; "
            "give a new --study name to search this one"
        )
    if study.direction.name.lower() != plan.space.direction:
        raise ConfigError(f"study {plan.name!r} {study.direction.name.lower()}s; the space says {plan.space.direction}")
    return study


def _states() -> tuple[Any, Any, Any]:
    from optuna.trial import TrialState

    return TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING


def counted(study: Any, below: int | None = None) -> int:
    """Trials that count towards the total: finished (complete or pruned) and, with ``below``,
    those running with a smaller number (started earlier)."""
    complete, pruned, running = _states()
    trials = study.get_trials(deepcopy=False, states=(complete, pruned, running))
    return sum(
        1
        for trial in trials
        if not trial.user_attrs.get("surplus")
        and (
            trial.state in (complete, pruned) or (below is not None and trial.state == running and trial.number < below)
        )
    )


def _report_epochs(trial: Any, metric: str, last_epoch: int) -> EpochCallback:
    """The trainer's ``on_epoch``: report the metric to Optuna; stop the training if the pruner says so
    (never after ``last_epoch``: a trial that has run to its end is scored, not pruned)."""
    import optuna

    def on_epoch(record: dict[str, Any]) -> None:
        if record.get(metric) is None:
            raise ConfigError(f"metric {metric}: not among the epoch's figures ({', '.join(sorted(record))})")
        trial.report(float(record[metric]), step=int(record["epoch"]))
        if int(record["epoch"]) < last_epoch and trial.should_prune():
            raise optuna.TrialPruned(f"pruned after epoch {record['epoch']}: {metric} {record[metric]:.4g}")

    return on_epoch


def trial_value(history: list[dict[str, Any]], metric: str) -> float:
    """A trial's figure of merit: ``metric`` at the epoch whose weights the run keeps.

    The trainer keeps the weights of the epoch with the lowest validation loss (or the last
    epoch when there is no validation split); the trial is scored on that same model.
    """
    if not history:
        raise TuneError("the trial recorded no epoch")
    losses = [record.get("val_loss") for record in history]
    kept = (
        min(range(len(history)), key=lambda index: losses[index])  # type: ignore[arg-type,return-value]
        if all(loss is not None for loss in losses)
        else len(history) - 1
    )
    if history[kept].get(metric) is None:
        raise ConfigError(f"metric {metric}: not among the epoch's figures ({', '.join(sorted(history[kept]))})")
    return float(history[kept][metric])


def trial_name(number: int) -> str:
    """The run directory of trial ``number`` inside the study's folder."""
    return f"trial_{number:04d}"


def _objective(plan: StudyPlan) -> Callable[[Any], float]:
    import optuna

    def objective(trial: Any) -> float:
        if counted(trial.study, below=trial.number) >= plan.settings.trials:
            # started as another worker finished the study's last trials: it runs nothing, counts for nothing
            # and is left out of the tables (Optuna has no way to take a trial back)
            trial.set_user_attr("surplus", True)
            trial.study.stop()
            raise optuna.TrialPruned(f"surplus: the study has its {plan.settings.trials} trials")
        values = {key: spec.suggest(trial, key) for key, spec in plan.space.parameters.items()}
        trial.set_user_attr("values", values)
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")  # which process ran it
        trial.set_user_attr("run_dir", str(plan.directory / trial_name(trial.number)))
        config = config_with(plan.base, values)
        # a classical model (BDT, cuts, likelihood) reports once, when it is fitted
        last_epoch = config.training.epochs if registry.is_torch_model(config.model.name) else 1
        history = plan.trial_function(
            config,
            trial_name(trial.number),
            plan.directory,
            _report_epochs(trial, plan.space.metric, last_epoch),
            plan.settings.progress,
        )
        return trial_value(history, plan.space.metric)

    return objective


def run_worker(
    plan: StudyPlan, worker: int = 0, storage: Any = None, on_trial: Callable[[], None] | None = None
) -> int:
    """Run trials of the study until it has ``plan.settings.trials``; returns how many this worker ran.

    Any number of workers may run this at once on one storage (processes, machines, Dask tasks).
    ``on_trial`` is called after each trial (a progress bar).
    """
    study = load_study(plan, worker, storage)
    total = plan.settings.trials
    ran = [0]

    def stop_when_full(study_: Any, trial: Any) -> None:
        if not trial.user_attrs.get("surplus"):
            ran[0] += 1
        if on_trial:
            on_trial()
        if counted(study_, below=2**62) >= total:  # every running trial counts: the others will finish theirs
            study_.stop()

    if counted(study) < total:
        with quiet_experimental():
            study.optimize(_objective(plan), n_trials=None, callbacks=[stop_when_full])
    return ran[0]


def _dask_worker(plan: StudyPlan, worker: int) -> int:
    """One Dask task: a worker of the study (module level, so that Dask can pickle it)."""
    _route_optuna_logs()
    return run_worker(plan, worker)


def _route_optuna_logs() -> None:
    """Optuna's per-trial lines go through ``logging`` (the ``optuna`` logger) instead of its own stderr handler."""
    import optuna

    optuna.logging.disable_default_handler()
    optuna.logging.enable_propagation()


def check_packages(workers: int = 0, scheduler: str | None = None) -> None:
    """Optuna (the ``tune`` extra), and Dask (the ``dask`` extra) for ``workers`` or ``scheduler``: a
    ``MissingExtraError`` naming the extra before anything is written."""
    optional_import("optuna", "heplearn tune (hyper-parameter search with Optuna)")
    if workers or scheduler:
        optional_import("dask.distributed", "heplearn tune on Dask workers (--workers, --dask)")


def tune(
    base: dict[str, Any],
    space: SearchSpace,
    settings: TuneSettings,
    name: str,
    runs_dir: str | os.PathLike[str] = "runs",
    storage: str | None = None,
    workers: int = 0,
    scheduler: str | None = None,
    trial_function: TrialFunction = train_trial,
    report: bool = True,
) -> TuneResult:
    """Run (or resume) study ``name`` over ``space`` and write its outputs; returns the best trial.

    ``base`` is a run config as a dict (``read_base_config``). The trials go to
    ``runs_dir/name/trial_<n>``; the study to ``storage`` (default: ``study.db`` there). With
    ``workers`` > 0 a Dask ``LocalCluster`` of that many processes runs the trials; with
    ``scheduler`` the workers of that Dask cluster do (they must see ``runs_dir`` and the storage).
    ``report=False`` skips the plots and ``report.html``.
    """
    settings.check()
    check_packages(workers, scheduler)
    if storage == MEMORY and (workers or scheduler):
        raise ConfigError(
            "--storage memory lives in one process; Dask workers need a database (the default SQLite "
            "file, or a server URL)"
        )
    check_space(space, base, settings.sampler)
    directory = Path(runs_dir) / name
    _route_optuna_logs()
    # a URL that cannot be opened fails before anything is written
    opened = open_storage(storage, settings) if storage is not None else None
    directory.mkdir(parents=True, exist_ok=True)
    plan = StudyPlan(
        name, directory.resolve(), storage or default_storage(directory), base, space, settings, trial_function
    )
    opened = opened if opened is not None else open_storage(plan.storage, settings)
    study = load_study(plan, storage=opened)
    if workers or scheduler:
        _run_on_dask(plan, workers, scheduler)
    else:
        with _trial_bar(study, settings) as update:
            run_worker(plan, 0, opened, update)
    return write_outputs(study, plan, report)


@contextlib.contextmanager
def _trial_bar(study: Any, settings: TuneSettings) -> Iterator[Callable[[], None]]:
    """A progress bar of the study's finished trials (updated by calling what it yields)."""
    from heplearn.progress import progress_bar

    bar = progress_bar(
        total=settings.trials,
        initial=min(counted(study), settings.trials),
        desc="trials",
        unit="trial",
        disable=not settings.progress,
        dynamic_ncols=True,
    )

    def update() -> None:
        bar.n = min(counted(study), settings.trials)
        bar.refresh()

    try:
        yield update
    finally:
        update()
        bar.close()


def _run_on_dask(plan: StudyPlan, workers: int, scheduler: str | None) -> None:
    """Run one study worker per Dask worker (on a LocalCluster, or on the cluster at ``scheduler``)."""
    from dask.distributed import Client, LocalCluster

    worker_plan = replace(plan, settings=replace(plan.settings, progress=False))
    with contextlib.ExitStack() as stack:
        if scheduler:
            client = stack.enter_context(Client(scheduler))
            count = max(1, len(client.scheduler_info(n_workers=-1).get("workers", {})))
        else:
            cluster = stack.enter_context(
                LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
            )
            client = stack.enter_context(Client(cluster))
            count = workers
        futures = [client.submit(_dask_worker, worker_plan, index, pure=False) for index in range(count)]
        study = load_study(plan)
        with _trial_bar(study, plan.settings) as update:
            while not all(future.done() for future in futures):
                time.sleep(1)
                update()
        ran = client.gather(futures)
    log.info("trials run per Dask worker: %s", ran)


# -- outputs -------------------------------------------------------------------------------------------------


def trial_rows(study: Any, space: SearchSpace) -> list[dict[str, Any]]:
    """One row per trial (surplus ones left out): number, state, value, the varied keys, epochs, seconds,
    the process that ran it (host:pid) and its run directory."""
    rows = []
    for trial in study.get_trials(deepcopy=False):
        if trial.user_attrs.get("surplus"):
            continue
        values = trial.user_attrs.get("values", {})
        duration = (
            (trial.datetime_complete - trial.datetime_start).total_seconds()
            if trial.datetime_complete and trial.datetime_start
            else None
        )
        rows.append(
            {
                "number": trial.number,
                "state": trial.state.name.lower(),
                "value": trial.value,
                **{key: values.get(key) for key in space.parameters},
                "epochs": len(trial.intermediate_values),
                "seconds": duration,
                "worker": trial.user_attrs.get("worker"),
                "run_dir": trial.user_attrs.get("run_dir"),
            }
        )
    return rows


def _csv_text(rows: list[dict[str, Any]]) -> str:
    stream = io.StringIO()
    if rows:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(
            {
                key: (
                    yaml.safe_dump(value, default_flow_style=True).strip() if isinstance(value, list | dict) else value
                )
                for key, value in row.items()
            }
            for row in rows
        )
    return stream.getvalue()


def write_outputs(study: Any, plan: StudyPlan, report: bool = True) -> TuneResult:
    """``best_config.yaml``, ``trials.csv``, ``trials.json`` and (with ``report``) ``report.html``, plots in
    ``plots/``."""
    from optuna.trial import TrialState

    rows = trial_rows(study, plan.space)
    counts = {
        state: sum(1 for row in rows if row["state"] == state)
        for state in ("complete", "pruned", "fail", "running", "waiting")
    }
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        raise TuneError(f"study {plan.name!r}: no trial completed ({counts}); see the trials' train.log files")
    best = study.best_trial
    best_values = best.user_attrs["values"]
    directory = plan.directory
    best_config = directory / BEST_CONFIG_FILE
    header = (
        f"# heplearn tune: best trial {best.number} of study {plan.name!r} "
        f"({plan.space.metric} {best.value:.6g}, {plan.space.direction}d)\n"
        f"# train it with: heplearn train -c {best_config}\n"
    )
    content = config_with(plan.base, best_values).model_dump(mode="json")
    write_text_atomic(best_config, header + yaml.safe_dump(content, sort_keys=False))
    write_text_atomic(directory / TRIALS_CSV, _csv_text(rows))
    summary = {
        "study": plan.name,
        "storage": _shown(plan.storage),
        "metric": plan.space.metric,
        "direction": plan.space.direction,
        "sampler": plan.settings.sampler,
        "pruner": plan.settings.pruner,
        "trials_requested": plan.settings.trials,
        "counts": counts,
        "best": {
            "number": best.number,
            "value": best.value,
            "values": best_values,
            "run_dir": best.user_attrs.get("run_dir"),
        },
        "space": plan.space.model_dump(mode="json"),
        "trials": rows,
    }
    write_json(directory / TRIALS_JSON, summary)
    report_file = None
    if report:
        from heplearn.training.tune_report import write_tune_report

        report_file = write_tune_report(study, plan, summary, directory)
    return TuneResult(
        directory,
        float(best.value),
        best.number,
        best_values,
        best_config,
        directory / TRIALS_CSV,
        directory / TRIALS_JSON,
        report_file,
        counts,
    )
