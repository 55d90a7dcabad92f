"""The analysis as stages: each one heplearn command line, its inputs, its outputs and its key.

A stage's key is the SHA-256 of its resolved settings (a model's whole run config with every
default filled in, a sample's generator settings), the keys of the stages it reads and
heplearn's version; existing files given to the analysis are keyed by their bytes. The key names
the stage's folder (``models/bdt-3f2a9c0d1e4b/``), so outputs are addressed by what made them:
change one model's learning rate and its training gets a new key, so do its evaluation, export,
prediction and fit (their inputs' keys changed), and nothing else does. A stage is done when its
folder holds ``stage.json`` (written last, by the rule that ran it); a run that is killed leaves
the stage without it, and the next run does that stage again.

The plan is pure: it reads the configs and the given files, and writes nothing. ``write_plan``
writes the resolved run configs, each stage's record and the Snakefile into the output folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

import heplearn
from heplearn.analysis.config import SPLITS, AnalysisConfig, PseudoDataConfig, SampleConfig
from heplearn.data.files import atomic_path, write_json, write_text_atomic
from heplearn.errors import ConfigError, DataError

# a stage's builder: its folder -> (its commands, named outputs, its own report or None, setup lines)
Build = Callable[[str], tuple[list[tuple[str, ...]], dict[str, str], str | None, list[str]]]
KEY_LENGTH = 12
MARKER = "stage.json"
PLAN_FILE = "plan.json"
SNAKEFILE = "Snakefile"
REPORT = "report.html"
PSEUDO_DATA = "pseudo_data"


@dataclass(frozen=True)
class Stage:
    """One step of the analysis: a heplearn command line that turns its inputs into its folder's files."""

    name: str  # the rule's name: generate_training, train_bdt, fit_bdt, ...
    kind: str  # generate, train, evaluate, export, predict, fit
    key: str
    folder: str  # relative to the analysis output folder
    settings: dict[str, Any]
    after: dict[str, str]  # the stages (or given files) it reads -> their keys
    commands: tuple[tuple[str, ...], ...]  # argv of each command, ``heplearn ...`` first
    files: dict[str, str] = field(default_factory=dict)  # named outputs (relative paths)
    report: str | None = None  # the stage's own report page, when it writes one
    setup: tuple[str, ...] = ()  # shell lines run first (clear a half-written run, link inputs)

    @property
    def marker(self) -> str:
        """``stage.json`` in the stage's folder: present only when the stage finished."""
        return f"{self.folder}/{MARKER}"

    def record(self) -> dict[str, Any]:
        """What ``stage.json`` holds: enough to say later why another key differs."""
        return {
            "name": self.name,
            "kind": self.kind,
            "key": self.key,
            "settings": self.settings,
            "after": self.after,
            "commands": [list(c) for c in self.commands],
            "heplearn": heplearn.__version__,
        }


@dataclass(frozen=True)
class Plan:
    """Every stage of one analysis, in an order where each comes after those it reads."""

    config: AnalysisConfig
    config_path: Path
    output: Path
    stages: tuple[Stage, ...]
    external: dict[str, dict[str, str]]  # files given to the analysis: sample -> name -> absolute path

    def stage(self, name: str) -> Stage:
        """The stage of that name."""
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(name)

    def has(self, name: str) -> bool:
        """Whether the plan has a stage of that name."""
        return any(stage.name == name for stage in self.stages)


def _digest(content: Any) -> str:
    text = json.dumps(content, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:KEY_LENGTH]


def file_digest(paths: Mapping[str, str]) -> str:
    """SHA-256 of the named files' bytes: the key of files given to the analysis."""
    digest = hashlib.sha256()
    for name in sorted(paths):
        path = Path(paths[name])
        if not path.is_file():
            raise DataError(f"{path}: no such file (given as {name!r} to the analysis)")
        digest.update(name.encode())
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:KEY_LENGTH]


def heplearn_command(*arguments: str) -> tuple[str, ...]:
    """``python -m heplearn ARGUMENTS`` with this interpreter (the same one runs on a batch node)."""
    return (sys.executable, "-m", "heplearn", *arguments)


class _Planner:
    """Builds the stages in order, each keyed by its settings and the keys of what it reads."""

    def __init__(self, config: AnalysisConfig) -> None:
        self.config = config
        self.stages: list[Stage] = []
        self.keys: dict[str, str] = {}
        self.external: dict[str, dict[str, str]] = {}
        # (sample, process or split) -> (path relative to the output folder or absolute, stage or None)
        self.sample_files: dict[tuple[str, str], tuple[str, str | None]] = {}

    def add(
        self, name: str, kind: str, settings: dict[str, Any], after: list[str], folder_name: str, build: Build
    ) -> Stage:
        inputs = {name: self.keys[name] for name in after}
        key = _digest({"kind": kind, "settings": settings, "after": inputs, "heplearn": heplearn.__version__})
        folder = f"{folder_name}-{key}"
        commands, files, report, setup = build(folder)
        stage = Stage(
            name, kind, key, folder, settings, inputs, tuple(tuple(c) for c in commands), files, report, tuple(setup)
        )
        self.stages.append(stage)
        self.keys[name] = key
        return stage

    # ------------------------------------------------------------------ samples
    def _generator_arguments(self, sample: SampleConfig | PseudoDataConfig) -> list[str]:
        arguments = ["--seed", str(sample.seed)]
        if sample.variation:
            arguments += ["--variation", sample.variation]
        if sample.detector:
            arguments += ["--detector", sample.detector]
        for setting, value in sample.pythia.items():
            arguments += ["--pythia", f"{setting}={value}"]
        for option, value in sample.generator.items():
            flag = option.replace("_", "-")
            if isinstance(value, bool):
                arguments.append(f"--{flag}" if value else f"--no-{flag}")
            else:
                arguments += [f"--{flag}", str(value)]
        generation = self.config.generation
        arguments += ["--workers", str(generation.workers), "--no-progress"]
        if generation.chunk_size:
            arguments += ["--chunk-size", str(generation.chunk_size)]
        return arguments

    @staticmethod
    def _physics(sample: SampleConfig | PseudoDataConfig) -> dict[str, Any]:
        return {
            "seed": sample.seed,
            "variation": sample.variation,
            "detector": sample.detector,
            "pythia": sample.pythia,
            "generator": sample.generator,
        }

    def sample(self, name: str, sample: SampleConfig | PseudoDataConfig) -> None:
        if sample.files is not None:
            base = Path(self.config.base)
            paths = {part: str((base / path).resolve()) for part, path in sample.files.items()}
            self.external[name] = paths
            key = file_digest(paths)
            self.keys[f"files_{name}"] = key
            for part, path in paths.items():
                self.sample_files[(name, part)] = (path, f"files_{name}")
            return
        split = sample.split if isinstance(sample, SampleConfig) else None
        if split is not None:
            settings = {
                "processes": sample.processes,
                "jets": sample.jets,
                "split": list(split),
                **self._physics(sample),
            }

            def build(folder: str) -> tuple[list[tuple[str, ...]], dict[str, str], str | None, list[str]]:
                command = heplearn_command(
                    "generate",
                    *sample.processes,
                    "--jets",
                    str(sample.jets),
                    "-o",
                    folder,
                    "--split",
                    ",".join(str(f) for f in split),
                    *self._generator_arguments(sample),
                )
                return [command], {s: f"{folder}/{s}.parquet" for s in SPLITS}, None, []

            stage = self.add(f"generate_{name}", "generate", settings, [], f"samples/{name}", build)
            for part in SPLITS:
                self.sample_files[(name, part)] = (stage.files[part], stage.name)
            return
        for process, jets in sample.jets_per_process().items():
            settings = {"processes": [process], "jets": jets, **self._physics(sample)}

            def build_one(
                folder: str, process: str = process, jets: int = jets
            ) -> tuple[list[Any], dict[str, str], None, list[str]]:
                command = heplearn_command(
                    "generate",
                    process,
                    "--jets",
                    str(jets),
                    "-o",
                    folder,
                    "--split",
                    "0,0,1",
                    *self._generator_arguments(sample),
                )
                return [command], {"test": f"{folder}/test.parquet"}, None, []

            stage = self.add(
                f"generate_{name}_{process}", "generate", settings, [], f"samples/{name}_{process}", build_one
            )
            self.sample_files[(name, process)] = (stage.files["test"], stage.name)

    def upstream(self, *parts: tuple[str, str]) -> list[str]:
        """The stages (or file keys) that make these sample files, once each, in order."""
        names = [self.sample_files[part][1] for part in parts]
        return list(dict.fromkeys(name for name in names if name))

    def path(self, sample: str, part: str) -> str:
        return self.sample_files[(sample, part)][0]

    # ------------------------------------------------------------------ models
    def model(self, name: str) -> None:
        from heplearn.run_config import load_run_config

        config = self.config
        entry = config.models[name]
        overrides = [f"{key}={json.dumps(value)}" for key, value in entry.set.items()]
        try:
            run_config = load_run_config(config.model_config_path(name), overrides)
        except ConfigError as error:
            raise ConfigError(f"models.{name}: {error}") from None
        content = run_config.model_dump(mode="json")
        for split in SPLITS:
            content["data"][split] = [self.path(config.training, split)]
        run_config = load_run_config(content)
        content = run_config.model_dump(mode="json")
        data_after = self.upstream(*[(config.training, split) for split in SPLITS])

        def build_train(folder: str) -> tuple[list[tuple[str, ...]], dict[str, str], str | None, list[str]]:
            config_file = f"{folder}/config.yaml.in"
            return (
                [heplearn_command("train", "-c", config_file, "--name", "run", "--runs-dir", folder, "--no-progress")],
                {"run": f"{folder}/run", "config": config_file},
                None,
                [f"rm -rf {shlex.quote(folder + '/run')}"],
            )

        train = self.add(f"train_{name}", "train", {"run_config": content}, data_after, f"models/{name}", build_train)
        run = train.files["run"]

        evaluation = config.evaluation
        test, train_file = self.path(config.training, "test"), self.path(config.training, "train")

        def build_evaluate(folder: str) -> tuple[list[tuple[str, ...]], dict[str, str], str | None, list[str]]:
            arguments = ["evaluate", run, "--data", test, "--name", "test", "-o", folder, "--no-progress"]
            if evaluation.overtraining:
                arguments += ["--train-data", train_file]
            if not evaluation.importance:
                arguments.append("--no-importance")
            if evaluation.label:
                arguments += ["--label", evaluation.label]
            return [heplearn_command(*arguments)], {"metrics": f"{folder}/metrics.json"}, f"{folder}/report.html", []

        self.add(
            f"evaluate_{name}",
            "evaluate",
            evaluation.model_dump(mode="json"),
            [train.name, *data_after],
            f"evaluation/{name}",
            build_evaluate,
        )

        after = [train.name]
        if entry.export:

            def build_export(folder: str) -> tuple[list[tuple[str, ...]], dict[str, str], str | None, list[str]]:
                return [heplearn_command("export", run)], {"onnx": f"{run}/model.onnx"}, None, []

            export = self.add(
                f"export_{name}", "export", {"format": "onnx"}, [train.name], f"exports/{name}", build_export
            )
            after.append(export.name)
        self._predict(name, run, "onnx" if entry.export else "torch", after)

    def scored_parts(self) -> list[tuple[str, str, str]]:
        """(label, sample, process) of every file the fit reads: templates, variations, pseudo-data."""
        fit = self.config.fit
        parts = [(f"{fit.templates}_{p}", fit.templates, p) for p in (fit.signal, fit.background)]
        for sample_name in dict.fromkeys(s for pair in fit.systematics.values() for s in pair.samples):
            processes = self.config.samples[sample_name].processes
            parts += [(f"{sample_name}_{p}", sample_name, p) for p in (fit.signal, fit.background) if p in processes]
        parts += [(f"{PSEUDO_DATA}_{p}", PSEUDO_DATA, p) for p in self.config.pseudo_data.processes]
        return parts

    def _predict(self, name: str, run: str, engine: str, after: list[str]) -> None:
        parts = self.scored_parts()
        inputs = self.upstream(*[(sample, process) for _, sample, process in parts])

        def build_predict(folder: str) -> tuple[list[tuple[str, ...]], dict[str, str], str | None, list[str]]:
            links, setup = [], [f"mkdir -p {shlex.quote(folder + '/inputs')}"]
            for label, sample, process in parts:
                source = self.path(sample, process)
                suffix = "".join(Path(source).suffixes[-1:])
                link = f"{folder}/inputs/{label}{suffix}"
                target = source if Path(source).is_absolute() else os.path.relpath(source, f"{folder}/inputs")
                setup.append(f"ln -sfn {shlex.quote(target)} {shlex.quote(link)}")
                links.append(link)
            files = {
                label: f"{folder}/{label}.scores.{'root' if link.endswith('.root') else 'parquet'}"
                for (label, _, _), link in zip(parts, links, strict=True)
            }
            command = heplearn_command("predict", run, *links, "-o", folder, "--engine", engine, "--no-progress")
            return [command], files, None, setup

        predict = self.add(
            f"predict_{name}",
            "predict",
            {"engine": engine, "inputs": [p[0] for p in parts]},
            [*after, *inputs],
            f"scores/{name}",
            build_predict,
        )
        self._fit(name, predict)

    def _fit(self, name: str, predict: Stage) -> None:
        fit = self.config.fit
        settings = fit.model_dump(mode="json")

        def build_fit(folder: str) -> tuple[list[tuple[str, ...]], dict[str, str], str | None, list[str]]:
            scores = predict.files
            arguments = [
                "fit",
                "--signal-scores",
                scores[f"{fit.templates}_{fit.signal}"],
                "--background-scores",
                scores[f"{fit.templates}_{fit.background}"],
                "--column",
                f"score_{fit.signal}",
                "-o",
                folder,
                "--no-progress",
                "--bins",
                str(fit.bins),
                "--low",
                str(fit.low),
                "--high",
                str(fit.high),
                "--lumi-uncertainty",
                str(fit.lumi_uncertainty),
                "--mc-statistics",
                fit.mc_statistics,
                "--scan-points",
                str(fit.scan_points),
                "--unbinned" if fit.unbinned else "--no-unbinned",
                "--limit" if fit.limit else "--no-limit",
                "--scan-2d" if fit.scan_2d else "--no-scan-2d",
            ]
            for process in self.config.pseudo_data.processes:
                arguments += ["--data", scores[f"{PSEUDO_DATA}_{process}"]]
            for systematic, pair in fit.systematics.items():
                for option, sample in (("--systematic", pair.up), ("--systematic-down", pair.down)):
                    if sample is not None:
                        signal = scores.get(f"{sample}_{fit.signal}", "")
                        background = scores.get(f"{sample}_{fit.background}", "")
                        arguments += [option, f"{systematic}={signal}:{background}"]
            if fit.expected_fraction is not None:
                arguments += ["--expected-fraction", str(fit.expected_fraction)]
            if fit.background_uncertainty is not None:
                arguments += ["--background-uncertainty", str(fit.background_uncertainty)]
            return [heplearn_command(*arguments)], {"results": f"{folder}/results.json"}, f"{folder}/report.html", []

        self.add(f"fit_{name}", "fit", settings, [predict.name], f"fits/{name}", build_fit)


def make_plan(config: AnalysisConfig, config_path: str | os.PathLike[str]) -> Plan:
    """Every stage of the analysis ``config`` describes, keyed; reads configs and given files, writes nothing."""
    planner = _Planner(config)
    for name, sample in config.samples.items():
        planner.sample(name, sample)
    planner.sample(PSEUDO_DATA, config.pseudo_data)
    for name in config.models:
        planner.model(name)
    return Plan(
        config, Path(config_path).resolve(), Path(config.output).resolve(), tuple(planner.stages), planner.external
    )


# --------------------------------------------------------------------------- files
def _shell(stage: Stage) -> str:
    """The rule's shell command: setup, the heplearn commands (output to the log), then the marker."""
    lines = [
        f"mkdir -p {shlex.quote(stage.folder)}",
        *stage.setup,
        *(shlex.join(command) for command in stage.commands),
        f"cp {shlex.quote(_record_path(stage))} {shlex.quote(stage.marker)}",
    ]
    return " && ".join(lines).replace("{", "{{").replace("}", "}}")


def _record_path(stage: Stage) -> str:
    return f"plan/{stage.name}-{stage.key}.json"


def _rules(plan: Plan) -> Iterator[str]:
    stages = {stage.name: stage for stage in plan.stages}
    finals = [stage.marker for stage in plan.stages if stage.kind in ("fit", "evaluate")]
    yield "# Written by `heplearn analysis run` from the analysis config; edits are overwritten."
    yield f"# Config: {plan.config_path}\n"
    # the report is written after Snakemake, from the plan: which stages it shows is not a file's age
    yield f"rule all:\n    input: {', '.join(repr(p) for p in finals)}\n"
    for stage in plan.stages:
        # given files are not rule inputs: their key is their content (touching one reruns nothing)
        inputs = [stages[name].marker for name in stage.after if name in stages]
        yield f"rule {stage.name}:"
        if inputs:
            yield f"    input: {', '.join(repr(p) for p in inputs)}"
        yield f"    output: {stage.marker!r}"
        yield f"    log: {stage.folder + '/log.txt'!r}"
        yield f"    benchmark: {stage.folder + '/benchmark.tsv'!r}"
        yield f"    shell: {'(' + _shell(stage) + ') > {log} 2>&1'!r}\n"


def write_plan(plan: Plan) -> Path:
    """Write each stage's record and run config, ``plan.json`` and the Snakefile; returns the Snakefile."""
    output = plan.output
    for stage in plan.stages:
        record = output / _record_path(stage)
        if not record.is_file():
            write_json(record, stage.record())
        if stage.kind == "train":
            config_file = output / stage.files["config"]
            if not config_file.is_file():
                with atomic_path(config_file) as temporary:
                    temporary.write_text(yaml.safe_dump(stage.settings["run_config"], sort_keys=False))
    write_json(output / PLAN_FILE, {"config": str(plan.config_path), "stages": [asdict(s) for s in plan.stages]})
    snakefile = output / SNAKEFILE
    write_text_atomic(snakefile, "\n".join(_rules(plan)) + "\n")
    return snakefile


__all__ = ["MARKER", "PLAN_FILE", "REPORT", "Plan", "Stage", "file_digest", "make_plan", "write_plan"]
