"""Running the plan on Snakemake, and saying which stages are done, stale (and why) or new.

``run_analysis`` writes the plan (``heplearn.analysis.plan.write_plan``) and runs
``python -m snakemake`` on its Snakefile in the output folder: locally on ``cores`` cores, or with
a Snakemake profile (``--profile htcondor``, ``--profile slurm``: the executor plugin and its
settings), unchanged. Snakemake decides what to run from the stage markers: a stage whose keyed
folder holds ``stage.json`` is done, so a rerun with nothing changed runs nothing, and a run that
was killed resumes with the stages it had not finished (``--rerun-incomplete``).

A run writes its process id and host into ``run.json`` in the output folder while it works. A run
killed with ``kill -9`` (or by the machine going down) leaves Snakemake's lock behind; the next run
on the same host sees that the process that held it is gone and removes the lock itself, and a run
started while another one is alive is refused with that run's process id.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from heplearn.analysis.plan import MARKER, Plan, Stage, write_plan
from heplearn.data.files import write_json
from heplearn.errors import HeplearnError
from heplearn.optional import require_extra

DONE, STALE, NEW, INCOMPLETE = "done", "stale", "new", "incomplete"
MAX_CHANGES = 4  # changed settings named in a stale stage's reason
SCHEDULED = re.compile(r"^(?:local)?rule (\w+):$")  # how Snakemake announces each job it runs (or would)
RUN_FILE = "run.json"  # the running analysis: its process id and host
PROFILES = Path(__file__).parent / "profiles"  # the profiles heplearn ships: htcondor, slurm


class AnalysisError(HeplearnError):
    """The workflow engine stopped: a stage failed, or the folder is locked by another run."""


@dataclass(frozen=True)
class StageState:
    """A stage's state (done, stale, new, incomplete) and why."""

    stage: Stage
    state: str
    reason: str


def _flatten(content: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(content, dict):
        flat: dict[str, Any] = {}
        for key, value in content.items():
            flat.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    return {prefix: content}


def _changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """``key: old → new`` for each setting that differs (flattened keys)."""
    before, after = _flatten(old), _flatten(new)
    return [
        f"{key}: {json.dumps(before.get(key))} → {json.dumps(after.get(key))}"
        for key in sorted(set(before) | set(after))
        if before.get(key) != after.get(key)
    ]


def _previous(plan: Plan, stage: Stage) -> dict[str, Any] | None:
    """The record of the last finished run of this stage under another key, if any."""
    stem = stage.folder.rsplit("-", 1)[0]
    markers = list(plan.output.glob(f"{stem}-*/{MARKER}"))
    records = []
    for path in sorted(markers, key=lambda p: p.stat().st_mtime, reverse=True):
        try:
            record = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if record.get("name") == stage.name:
            records.append(record)
    return records[0] if records else None


def stage_states(plan: Plan) -> list[StageState]:
    """Each stage of the plan: done, incomplete, stale (with the settings or inputs that changed) or new."""
    states: list[StageState] = []
    for stage in plan.stages:
        folder = plan.output / stage.folder
        if (folder / MARKER).is_file():
            states.append(StageState(stage, DONE, f"{stage.folder}"))
            continue
        if (folder / "log.txt").is_file():
            states.append(
                StageState(
                    stage,
                    INCOMPLETE,
                    f"started but did not finish (see {stage.folder}/log.txt); the next run does it again",
                )
            )
            continue
        previous = _previous(plan, stage)
        if previous is None:
            states.append(StageState(stage, NEW, "not run yet"))
            continue
        changes = _changes(previous.get("settings", {}), stage.settings)
        if changes:
            more = f" (and {len(changes) - MAX_CHANGES} more)" if len(changes) > MAX_CHANGES else ""
            reason = "settings changed: " + "; ".join(changes[:MAX_CHANGES]) + more
        else:
            old = previous.get("after", {})
            inputs = [name for name, key in stage.after.items() if old.get(name) != key]
            reason = f"input changed: {', '.join(inputs)}" if inputs else "heplearn version changed"
        states.append(StageState(stage, STALE, reason))
    return states


@dataclass(frozen=True)
class RunSummary:
    """What one ``run_analysis`` did: the rules Snakemake ran (or would run, in a dry run), the stages it reused."""

    scheduled: list[str]  # Snakemake's rules, in its order; "all" left out
    reused: list[str]
    report: Path


def resolve_profile(profile: str) -> str:
    """The profile Snakemake gets: a folder as given, the user's own profile of that name, else heplearn's.

    Snakemake looks a name up in ``$XDG_CONFIG_HOME/snakemake`` (``~/.config/snakemake``) and
    ``/etc/xdg/snakemake``; a profile there wins over the one heplearn ships under the same name.
    """
    if os.sep in profile or Path(profile).is_dir():
        return profile
    config_home = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    if any((root / "snakemake" / profile).is_dir() for root in (config_home, Path("/etc/xdg"))):
        return profile
    if (PROFILES / profile / "config.yaml").is_file():
        return str(PROFILES / profile)
    shipped = ", ".join(sorted(p.name for p in PROFILES.iterdir() if (p / "config.yaml").is_file()))
    raise AnalysisError(
        f"--profile {profile}: no such folder, no Snakemake profile of that name in "
        f"{config_home / 'snakemake'} or /etc/xdg/snakemake, and heplearn ships only: {shipped}"
    )


def snakemake_command(
    plan: Plan, snakefile: Path, cores: int | None, profile: str | None, dry_run: bool = False
) -> list[str]:
    """``python -m snakemake`` on the plan's Snakefile, in its output folder."""
    command = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(snakefile),
        "--directory",
        str(plan.output),
        "--rerun-incomplete",
        "--rerun-triggers",
        "mtime",
        "--printshellcmds",
    ]
    if profile is not None:
        command += ["--profile", resolve_profile(profile)]
    if cores is not None or profile is None:
        command += ["--cores", str(cores or 1)]
    if dry_run:
        command.append("--dry-run")
    return command


def _snakemake(command: Sequence[str]) -> tuple[int, list[str], list[str]]:
    """Run Snakemake, passing its output through to stderr; its exit code, last lines and scheduled rules."""
    tail: list[str] = []
    scheduled: list[str] = []
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as process:
        assert process.stdout is not None
        for line in process.stdout:
            sys.stderr.write(line)
            tail = [*tail[-40:], line.rstrip()]
            match = SCHEDULED.match(line.strip())
            if match and match.group(1) != "all":
                scheduled.append(match.group(1))
        return process.wait(), tail, scheduled


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _previous_run(plan: Plan) -> str | None:
    """Whether the lock of an earlier run is left: ``None`` when free, ``"dead"`` or a live run's description."""
    locks = plan.output / ".snakemake" / "locks"
    if not locks.is_dir() or not any(locks.iterdir()):
        return None
    try:
        owner = json.loads((plan.output / RUN_FILE).read_text())
        pid, host = int(owner["pid"]), str(owner["host"])
    except (OSError, ValueError, KeyError, TypeError):
        return "unknown"  # locked by a run that did not say who it was (Snakemake by hand)
    if host == socket.gethostname() and not _alive(pid):
        return "dead"
    return f"process {pid} on {host}"


def run_analysis(
    plan: Plan, cores: int | None = None, profile: str | None = None, dry_run: bool = False, unlock: bool = False
) -> RunSummary:
    """Run every stage that is not done (Snakemake decides, from the keyed markers), then write the report."""
    from heplearn.analysis.plan import REPORT

    if cores is not None and cores < 1:
        raise AnalysisError(f"--cores must be 1 or more, got {cores}")
    require_extra("analysis", "heplearn analysis run")  # Snakemake runs in a subprocess: say it here
    before = {state.stage.name: state.state for state in stage_states(plan)}
    snakefile = write_plan(plan)
    previous = _previous_run(plan)
    if previous == "dead" and not dry_run:
        sys.stderr.write(
            f"heplearn analysis: the run that locked {plan.output} was killed; removing its lock and resuming\n"
        )
        unlock = True
    elif previous not in (None, "dead", "unknown") and not (unlock or dry_run):
        raise AnalysisError(
            f"{plan.output} is locked by a running analysis ({previous}); wait for it, or stop it "
            "and rerun with --unlock"
        )
    if unlock:
        _snakemake([*snakemake_command(plan, snakefile, cores, profile), "--unlock"])
    if not dry_run:
        write_json(plan.output / RUN_FILE, {"pid": os.getpid(), "host": socket.gethostname()})
    code, tail, scheduled = _snakemake(snakemake_command(plan, snakefile, cores, profile, dry_run))
    if code != 0:
        text = "\n".join(tail)
        if "LockException" in text or "cannot be locked" in text:
            raise AnalysisError(
                f"{plan.output} is locked: another run is working there, or a killed run left its "
                "lock; if none is running, rerun with --unlock"
            )
        failed = [state.stage for state in stage_states(plan) if state.state == "incomplete"]
        where = "; ".join(f"{stage.name}: see {plan.output / stage.folder / 'log.txt'}" for stage in failed)
        raise AnalysisError(f"snakemake stopped (exit {code})" + (f": {where}" if where else ""))
    reused = [name for name, state in before.items() if state == DONE]
    report = plan.output / REPORT
    if not dry_run:
        from heplearn.analysis.report import write_analysis_report

        report = write_analysis_report(plan)
    return RunSummary(scheduled, reused, report)


__all__ = [
    "AnalysisError",
    "RunSummary",
    "StageState",
    "resolve_profile",
    "run_analysis",
    "snakemake_command",
    "stage_states",
]
