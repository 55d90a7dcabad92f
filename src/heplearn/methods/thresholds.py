"""Thresholds of an anomaly score at a trigger rate, with their statistical uncertainty.

A Level-1 trigger keeps a fixed rate of the collisions it sees: an anomaly trigger allotted
``rate`` = 1 kHz of the LHC's ``input_rate`` = 40 MHz bunch crossings must accept a background
(zero-bias) efficiency ε_B = rate / input_rate = 2.5 × 10⁻⁵. ``threshold_at_efficiency`` sets the
cut on a background sample so that the (weighted) fraction of events above it is ε_B, and
reports the efficiency the cut gives there with its Clopper–Pearson interval;
``Threshold.validate`` measures it on an independent sample, which must agree within the
uncertainty. ``pure_rate`` is the rate AXOL1TL quotes beside the total: the events the anomaly
trigger accepts and none of the other (cut-based) triggers of the menu does.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from heplearn.errors import ConfigError, DataError
from heplearn.evaluation.metrics import clopper_pearson, effective_count

__all__ = [
    "Threshold",
    "TriggerRates",
    "Validation",
    "parse_rate",
    "pure_rate",
    "target_efficiency",
    "threshold_at_efficiency",
    "threshold_at_rate",
    "threshold_for_run",
    "trigger_decisions",
]

#: One standard deviation of a Gaussian: the confidence of the reported intervals.
ONE_SIGMA = 0.6827

_UNITS = {"hz": 1.0, "khz": 1e3, "mhz": 1e6, "ghz": 1e9}


def parse_rate(text: str | float, where: str = "rate") -> float:
    """A rate in Hz from ``"1kHz"``, ``"40 MHz"``, ``"250Hz"`` or a number (already in Hz).

    Example:
    >>> parse_rate("1kHz"), parse_rate("40 MHz")
    (1000.0, 40000000.0)
    """
    if isinstance(text, int | float):
        value = float(text)
    else:
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([kKmMgG]?[hH][zZ])?\s*", text)
        if match is None:
            raise ConfigError(f"{where}: {text!r} is not a rate; write e.g. 1kHz, 40MHz or 250Hz")
        value = float(match.group(1)) * _UNITS[(match.group(2) or "hz").lower()]
    if not np.isfinite(value) or value <= 0:
        raise ConfigError(f"{where}: a rate must be positive and finite, got {text!r}")
    return value


def target_efficiency(rate: str | float, input_rate: str | float = "40MHz") -> float:
    """The background efficiency ε_B = rate / input_rate a trigger of ``rate`` may accept.

    Example:
    >>> target_efficiency("1kHz", "40MHz")
    2.5e-05
    """
    output, incoming = parse_rate(rate, "rate"), parse_rate(input_rate, "input rate")
    if output > incoming:
        raise ConfigError(
            f"rate: {output:g} Hz is above the input rate {incoming:g} Hz; a trigger cannot keep "
            "more events than it sees"
        )
    return output / incoming


@dataclass(frozen=True)
class Validation:
    """The efficiency of a threshold on an independent sample, and whether it agrees with the target."""

    efficiency: float
    interval: tuple[float, float]  # Clopper–Pearson, one sigma
    effective_events: float
    target: float
    pull: float  # (measured − target) / σ, σ² = ε(1 − ε)(1/N_calibration + 1/N_validation)

    @property
    def agrees(self) -> bool:
        """Whether the measured efficiency is the target within two standard deviations."""
        return abs(self.pull) < 2.0


@dataclass(frozen=True)
class Threshold:
    """A cut ``score > value`` set on background so that it keeps ``target`` of it.

    ``efficiency`` is what the cut keeps of the calibration sample (k of N effective events: the
    target up to the discreteness of the sample), ``interval`` its central Clopper–Pearson
    interval, and ``value_interval`` the cuts that would keep the interval's two ends: the
    threshold's statistical uncertainty.
    """

    value: float
    target: float
    efficiency: float
    interval: tuple[float, float]
    value_interval: tuple[float, float]
    effective_events: float
    passing_events: float
    rate_hz: float | None = None  # the rate it stands for, if it was set from one
    input_rate_hz: float | None = None

    def accepts(self, score: np.ndarray) -> np.ndarray:
        """True for the events the trigger keeps."""
        return np.asarray(score) > self.value

    def validate(self, score: np.ndarray, weight: np.ndarray | None = None) -> Validation:
        """The cut's efficiency on an independent background sample (scores and weights)."""
        efficiency, effective = weighted_fraction(self.accepts(score), weight)
        low, high = clopper_pearson(efficiency, effective, ONE_SIGMA)
        # the cut's true efficiency scatters about the target with the calibration sample's binomial
        # error, the measurement about it with the validation sample's: the two add in quadrature
        sigma = np.sqrt(self.target * (1 - self.target) * (1 / self.effective_events + 1 / max(effective, 1e-300)))
        return Validation(
            efficiency,
            (float(low), float(high)),
            effective,
            self.target,
            float((efficiency - self.target) / sigma) if sigma > 0 else 0.0,
        )

    def as_dict(self) -> dict[str, Any]:
        """The threshold as a plain mapping (for JSON)."""
        return asdict(self)


def weighted_fraction(passed: np.ndarray, weight: np.ndarray | None = None) -> tuple[float, float]:
    """The weighted fraction of ``passed`` events and the sample's effective number of events."""
    passed = np.asarray(passed, bool)
    weight = np.ones(len(passed)) if weight is None else np.asarray(weight, np.float64)
    total = float(weight.sum())
    if len(passed) == 0 or total <= 0:
        raise DataError("background sample: no events (or no positive weight) to set or check a threshold on")
    return float(weight[passed].sum()) / total, effective_count(weight)


def threshold_at_efficiency(
    score: np.ndarray,
    efficiency: float,
    weight: np.ndarray | None = None,
    *,
    rate: str | float | None = None,
    input_rate: str | float | None = None,
) -> Threshold:
    """The cut that keeps the fraction ``efficiency`` of a background sample (higher score: more anomalous).

    The events are ranked by score and the cut is placed halfway between the last kept and the
    first rejected score, keeping the smallest weighted share ≥ ``efficiency``. The sample must
    hold enough events: at least one is needed above the cut (ε N_eff ≥ 1), else the threshold
    is an extrapolation and a ``DataError`` says how many more events to take.
    """
    score = np.asarray(score, np.float64)
    if not 0 < efficiency < 1:
        raise ConfigError(f"efficiency: a target background efficiency lies in (0, 1), got {efficiency}")
    weight = np.ones(len(score)) if weight is None else np.asarray(weight, np.float64)
    if len(weight) != len(score):
        raise DataError(f"background sample: {len(score)} scores but {len(weight)} weights")
    if not np.isfinite(score).all():
        raise DataError("background sample: some anomaly scores are not finite")
    effective = effective_count(weight)
    if efficiency * effective < 1:
        raise DataError(
            f"background sample: ε = {efficiency:.3g} of {effective:.0f} effective events keeps less "
            f"than one; take at least {int(np.ceil(1 / efficiency))} background events"
        )
    order = np.argsort(-score, kind="stable")
    ranked, shares = score[order], np.cumsum(weight[order]) / weight.sum()

    def cut_keeping(fraction: float) -> float:
        kept = min(int(np.searchsorted(shares, fraction * (1 - 1e-12))), len(ranked) - 1)  # last kept event
        below = ranked[kept + 1] if kept + 1 < len(ranked) else ranked[kept] - 1.0
        return float(0.5 * (ranked[kept] + below))

    value = cut_keeping(efficiency)
    kept_fraction, _ = weighted_fraction(score > value, weight)
    low, high = clopper_pearson(kept_fraction, effective, ONE_SIGMA)
    # a higher efficiency is a lower cut: the interval of cuts runs the other way
    value_interval = (cut_keeping(float(high)), cut_keeping(max(float(low), 1.0 / len(score))))
    return Threshold(
        value,
        efficiency,
        kept_fraction,
        (float(low), float(high)),
        value_interval,
        effective,
        kept_fraction * effective,
        None if rate is None else parse_rate(rate),
        None if input_rate is None else parse_rate(input_rate, "input rate"),
    )


def threshold_at_rate(
    score: np.ndarray, rate: str | float, input_rate: str | float = "40MHz", weight: np.ndarray | None = None
) -> Threshold:
    """``threshold_at_efficiency`` for the efficiency ``rate / input_rate`` (e.g. 1 kHz of 40 MHz)."""
    return threshold_at_efficiency(score, target_efficiency(rate, input_rate), weight, rate=rate, input_rate=input_rate)


@dataclass(frozen=True)
class TriggerRates:
    """Rates (Hz) of the anomaly trigger, of the others, and the anomaly trigger's pure rate."""

    total: float
    pure: float
    others: dict[str, float]
    pure_interval: tuple[float, float]  # Clopper–Pearson, one sigma


def pure_rate(
    accepted: np.ndarray,
    others: Mapping[str, np.ndarray],
    input_rate: str | float = "40MHz",
    weight: np.ndarray | None = None,
) -> TriggerRates:
    """The anomaly trigger's total and pure rate on a zero-bias (background) sample.

    ``accepted`` marks the events the anomaly trigger keeps; ``others`` the events each other
    trigger of the menu keeps (cut-based selections, e.g. ``MET_pt > 200``). The pure rate counts
    the events only the anomaly trigger keeps: what it adds to the menu.
    """
    accepted = np.asarray(accepted, bool)
    incoming = parse_rate(input_rate, "input rate")
    any_other = np.zeros(len(accepted), bool)
    rates: dict[str, float] = {}
    for name, decisions in others.items():
        passed = np.asarray(decisions, bool)
        if passed.shape != accepted.shape:
            raise DataError(f"trigger {name!r}: {len(passed)} decisions for {len(accepted)} events")
        any_other |= passed
        rates[name] = weighted_fraction(passed, weight)[0] * incoming
    total, _ = weighted_fraction(accepted, weight)
    pure, effective = weighted_fraction(accepted & ~any_other, weight)
    low, high = clopper_pearson(pure, effective, ONE_SIGMA)
    return TriggerRates(total * incoming, pure * incoming, rates, (float(low) * incoming, float(high) * incoming))


def trigger_decisions(
    files: Sequence[str | os.PathLike[str]], triggers: Sequence[str], events: int
) -> dict[str, np.ndarray]:
    """Each cut-based trigger (an expression of the files' fields, e.g. ``MET_pt > 200``) per event."""
    from heplearn.data import io
    from heplearn.expressions import Expression

    expressions = [Expression(text, f"trigger {text!r}") for text in triggers]
    names = sorted({name for expression in expressions for name in expression.names})
    tables = [io.read(path, names) for path in files]
    decisions: dict[str, np.ndarray] = {}
    for text, expression in zip(triggers, expressions, strict=True):
        parts = [
            np.asarray(expression.evaluate({name: table[name] for name in expression.names}), bool) for table in tables
        ]
        passed = np.concatenate(parts) if parts else np.zeros(0, bool)
        if passed.shape != (events,):
            raise DataError(
                f"trigger {text!r}: {passed.size} decisions for {events} scored events (a trigger is "
                "a per-event cut on fields, and the run's data.selection must keep every event)"
            )
        decisions[text] = passed
    return decisions


def threshold_for_run(
    run_dir: str | os.PathLike[str],
    background: Sequence[str | os.PathLike[str]],
    *,
    rate: str | None = None,
    input_rate: str = "40MHz",
    efficiency: float | None = None,
    validation: Sequence[str | os.PathLike[str]] = (),
    triggers: Sequence[str] = (),
    output: str | os.PathLike[str] | None = None,
    report_dir: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Set a trained anomaly detector's threshold on background files, validate it, and report the rates.

    Give ``rate`` (with ``input_rate``) or ``efficiency``. The report (also written to ``output``
    as JSON) holds the threshold, its validation on ``validation`` files and, with ``triggers``,
    the total and pure rates on the validation sample (the background sample without one). With
    ``report_dir`` (a folder), ``report.html`` shows the score distributions with the cut, and the
    rate against the cut.
    """
    from heplearn.data.files import jsonable, write_json
    from heplearn.trained_model import TrainedModel

    if (rate is None) == (efficiency is None):
        raise ConfigError("threshold: give either a rate (with the input rate) or a target efficiency")
    model = TrainedModel.load(run_dir)
    scores, arrays = model.predict_files(background)
    if rate is not None:
        threshold = threshold_at_rate(scores[:, 0], rate, input_rate, arrays.weight)
    else:
        threshold = threshold_at_efficiency(scores[:, 0], float(efficiency), arrays.weight)  # type: ignore[arg-type]
    report: dict[str, Any] = {"run": str(run_dir), "score": model.task.output_names[0], "threshold": threshold}
    check_files, check_scores, check_weight = background, scores, arrays.weight
    if validation:
        check_scores, check_arrays = model.predict_files(validation)
        check_files, check_weight = validation, check_arrays.weight
        report["validation"] = threshold.validate(check_scores[:, 0], check_weight)
    if triggers:
        others = trigger_decisions(check_files, triggers, len(check_scores))
        # without a rate, the "rates" are efficiencies (an input rate of 1)
        key = "rates_hz" if rate is not None else "efficiencies"
        report[key] = pure_rate(
            threshold.accepts(check_scores[:, 0]), others, input_rate if rate is not None else 1.0, check_weight
        )
    if report_dir is not None:
        write_threshold_report(
            report_dir,
            report,
            scores[:, 0],
            arrays.weight,
            check_scores[:, 0] if validation else None,
            input_rate if rate is not None else None,
        )
    report = jsonable(report)
    if output is not None:
        write_json(output, report)
    return report


def write_threshold_report(
    directory: str | os.PathLike[str],
    result: dict[str, Any],
    score: np.ndarray,
    weight: np.ndarray,
    validation_score: np.ndarray | None,
    input_rate: str | float | None,
) -> Path:
    """``directory/report.html`` of ``threshold_for_run``: the threshold table, score and rate plots."""
    from heplearn.evaluation.report import number
    from heplearn.methods.anomaly_report import plot_rate, plot_scores, write_anomaly_report

    threshold: Threshold = result["threshold"]
    low, high = threshold.interval
    cut_low, cut_high = threshold.value_interval
    rows = [
        ["cut (score >)", number(threshold.value, 6)],
        ["target efficiency", number(threshold.target)],
        ["efficiency on the calibration sample", f"{number(threshold.efficiency)} [{number(low)}, {number(high)}]"],
        ["cut uncertainty", f"[{number(cut_low, 6)}, {number(cut_high, 6)}]"],
    ]
    if "validation" in result:
        check: Validation = result["validation"]
        rows.append(
            [
                "efficiency on the validation sample",
                f"{number(check.efficiency)} [{number(check.interval[0])}, "
                f"{number(check.interval[1])}], pull {check.pull:.2f}",
            ]
        )
    for key in ("rates_hz", "efficiencies"):
        if key in result:
            rows.append(
                [f"{key.replace('_', ' ')}: total, pure", f"{number(result[key].total)}, {number(result[key].pure)}"]
            )
    samples = {"background (calibration)": score}
    if validation_score is not None:
        samples["background (validation)"] = validation_score
    figures = [
        (
            plot_scores(samples, threshold.value, result["score"]),
            "scores",
            "Anomaly score",
            "Normalised score distributions of the background samples; the dashed line is the cut.",
        )
    ]
    if input_rate is not None:
        figures.append(
            (
                plot_rate(score, parse_rate(input_rate, "input rate"), threshold.value, weight, threshold.rate_hz),
                "rate",
                "Trigger rate",
                "The rate of the cut score > t on the calibration background, input rate × ε_B(t).",
            )
        )
    return write_anomaly_report(
        directory,
        f"Anomaly trigger threshold: {result['run']}",
        f"score {result['score']} · target efficiency {threshold.target:.3g}",
        [
            {
                "title": "Threshold",
                "header": ["", "value"],
                "rows": rows,
                "note": "Intervals are one-sigma Clopper–Pearson intervals.",
            }
        ],
        figures,
    )
