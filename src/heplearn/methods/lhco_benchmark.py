"""The LHC Olympics R&D-like resonant anomaly benchmark on heplearn's own generated events.

Background: ``heplearn generate events dijet_qcd``; signal: ``heplearn generate events wprime``
(W' → X(→qq̄) Y(→qq̄), m_W' = 3.5 TeV, m_X = 500 GeV, m_Y = 100 GeV; leading large-R jet pT > 1.2 TeV).
Features as in CATHODE (Hallin et al., arXiv:2109.00546) from the two leading R = 0.8 jets: m_jj,
m_J1 (the lighter jet's mass), Δm_J = m_J2 − m_J1, τ21 of J1 and of J2 (TeV for masses); signal
region 3.3 < m_jj < 3.7 TeV, sidebands the rest of ``mass_range``. Signal is injected into the
"data" at S/B = ``injection`` in the SR (0.6% by default, the R&D default of 1000 signal events in 10⁶).

The background events are dealt into three parts: the data (half, with the injected signal), a
second background sample for the idealised detector and the supervised classifier (a quarter), and
the test background (a quarter); the SR signal events not injected are split in two: the supervised
classifier's training signal and the test signal. Each method scores the independent SR test
events, and the figure is SIC = ε_S/√ε_B against ε_S (``heplearn.methods.weak_supervision``), with
the max SIC beside the LHCO R&D values of the CATHODE paper (supervised 17.6, idealised 15.1,
CATHODE 14.0, CWoLa 10.8). ``heplearn anomaly benchmark`` and ``benchmarks/bench_lhco.py`` run it.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from heplearn.errors import ConfigError, DataError
from heplearn.methods.cwola import check_regions, default_training
from heplearn.methods.weak_supervision import (
    LITERATURE_MAX_SIC,
    SicCurve,
    cwola_scores,
    ensemble_score,
    idealised_scores,
    in_window,
    sic_curve,
    supervised_scores,
    vae_scores,
)
from heplearn.run_config import TrainingConfig

__all__ = [
    "MASS_RANGE",
    "METHODS",
    "SIGNAL_REGION",
    "BenchmarkResult",
    "event_features",
    "run_benchmark",
    "write_benchmark",
]

SIGNAL_REGION = (3.3, 3.7)  # TeV, the LHCO R&D signal region
MASS_RANGE = (1.5, 9.0)  # TeV: every dijet event of the generated samples
FEATURE_NAMES = ("m_J1", "delta_m_J", "tau21_J1", "tau21_J2")
METHODS = ("supervised", "idealised", "CATHODE", "CWoLa", "VAE")
_LITERATURE = {"supervised": "supervised", "idealised": "idealised", "CATHODE": "cathode", "CWoLa": "cwola"}


@dataclass
class BenchmarkResult:
    """The SIC curves of each method on the SR test events, the sample sizes, and where the report went."""

    curves: dict[str, SicCurve]
    sizes: dict[str, float]
    ceiling: float  # the largest SIC the test background's size allows
    seconds: float
    report: Path | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    def table(self) -> list[dict[str, Any]]:
        """One row per method: max SIC, AUC, the LHCO R&D max SIC (None for the VAE) and ours / theirs."""
        rows = []
        for name, curve in self.curves.items():
            reference = LITERATURE_MAX_SIC.get(_LITERATURE.get(name, ""))
            rows.append(
                {
                    "method": name,
                    "max_sic": curve.max_sic,
                    "auc": curve.auc,
                    "literature": reference,
                    "ratio": curve.max_sic / reference if reference else None,
                }
            )
        return rows


def event_features(folder: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """(features (n, 4), m_jj (n,)) in TeV of the events under ``folder`` with two large-R jets.

    Reads the generator's split files of the folder, or, while the generator still runs, its
    finished chunks.
    """
    import awkward as ak

    folder = Path(folder)
    files = sorted(folder.glob("*.parquet")) or sorted(folder.rglob("chunk-*.parquet"))
    if not files:
        raise DataError(f"{folder}: no event files (*.parquet, or generator chunks) to read")
    try:
        events = ak.concatenate([ak.from_parquet(path, columns=["FatJet_*"]) for path in files])
        events = events[ak.num(events.FatJet_pt) >= 2]
        jets = [
            {
                name: ak.to_numpy(events[f"FatJet_{name}"][:, i]).astype(np.float64)
                for name in ("pt", "eta", "phi", "mass", "tau1", "tau2")
            }
            for i in (0, 1)
        ]
    except (AttributeError, ValueError, KeyError) as error:
        raise DataError(f"{folder}: not NanoAOD-layout events with FatJet_* fields ({error})") from error
    px = sum(j["pt"] * np.cos(j["phi"]) for j in jets)
    py = sum(j["pt"] * np.sin(j["phi"]) for j in jets)
    pz = sum(j["pt"] * np.sinh(j["eta"]) for j in jets)
    energy = sum(np.sqrt((j["pt"] * np.cosh(j["eta"])) ** 2 + j["mass"] ** 2) for j in jets)
    mjj = np.sqrt(np.maximum(energy**2 - px**2 - py**2 - pz**2, 0.0)) / 1000.0
    tau21 = [np.where(j["tau1"] > 0, j["tau2"] / np.where(j["tau1"] > 0, j["tau1"], 1.0), 0.0) for j in jets]
    lighter_first = jets[0]["mass"] <= jets[1]["mass"]  # J1 is the lighter jet (CATHODE's convention)
    m1 = np.where(lighter_first, jets[0]["mass"], jets[1]["mass"]) / 1000.0
    m2 = np.where(lighter_first, jets[1]["mass"], jets[0]["mass"]) / 1000.0
    t1 = np.where(lighter_first, tau21[0], tau21[1])
    t2 = np.where(lighter_first, tau21[1], tau21[0])
    return np.stack([m1, m2 - m1, t1, t2], axis=1), mjj


def run_benchmark(
    background: str | os.PathLike[str],
    signal: str | os.PathLike[str],
    output: str | os.PathLike[str] | None,
    *,
    injection: float = 0.006,
    signal_region: tuple[float, float] = SIGNAL_REGION,
    mass_range: tuple[float, float] = MASS_RANGE,
    epochs: int = 30,
    flow_epochs: int = 60,
    folds: int = 5,
    min_background: int = 20,
    methods: Sequence[str] = METHODS,
    seed: int = 0,
    log: Callable[[str], None] = print,
) -> BenchmarkResult:
    """Run the benchmark on the event folders; ``output``: ``sic.json`` and ``report.html`` there (None: none).

    ``mass_range`` (TeV) bounds the events used (the sidebands are the range outside the SR): narrow
    it to the m_jj window a generator cut (e.g. Pythia's ``PhaseSpace:mHatMin/Max``) leaves unbiased.
    """
    from heplearn.methods.cathode import cathode_scores

    check_regions(signal_region, mass_range)
    if not 0.0 <= injection < 1.0:
        raise ConfigError(f"injection: S/B in the signal region lies in [0, 1), got {injection}")
    unknown = [name for name in methods if name not in METHODS]
    if unknown or not methods:
        raise ConfigError(f"methods: {', '.join(unknown) or 'none given'}; choose from {', '.join(METHODS)}")
    if epochs < 1 or flow_epochs < 1:
        raise ConfigError(f"epochs ({epochs}) and flow epochs ({flow_epochs}) must be at least 1")
    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    background_x, background_mass = event_features(background)
    signal_x, signal_mass = event_features(signal)
    keep = in_window(background_mass, mass_range)
    background_x, background_mass = background_x[keep], background_mass[keep]
    part = rng.permutation(len(background_x)) % 4  # 0, 1: data; 2: extra background; 3: test
    data_x, data_m = background_x[part <= 1], background_mass[part <= 1]
    extra = background_x[(part == 2) & in_window(background_mass, signal_region)]
    test_background = background_x[(part == 3) & in_window(background_mass, signal_region)]
    sr_background = int(in_window(data_m, signal_region).sum())
    if len(test_background) < min_background or sr_background == 0:
        raise DataError(
            f"{background}: {len(test_background)} test and {sr_background} data background events in the "
            f"signal region {signal_region}; the SIC needs at least {min_background} test events: generate more"
        )
    signal_sr = in_window(signal_mass, signal_region) & in_window(signal_mass, mass_range)
    wanted = round(injection * sr_background)
    if wanted > signal_sr.sum() // 2:
        raise DataError(
            f"{signal}: S/B = {injection:g} needs {wanted} SR signal events in the data, but only "
            f"{int(signal_sr.sum())} SR signal events exist (half go to the tests); generate more or inject less"
        )
    order = rng.permutation(len(signal_x))
    # inject signal events (all masses in the range) until the SR holds S/B = injection
    in_range = in_window(signal_mass[order], mass_range)
    order = order[in_range]
    n_inject = int(np.searchsorted(np.cumsum(signal_sr[order]), wanted)) + (1 if wanted else 0)
    injected, rest = order[:n_inject], order[n_inject:]
    data_x, data_m = np.r_[data_x, signal_x[injected]], np.r_[data_m, signal_mass[injected]]
    rest_sr = signal_x[rest][signal_sr[rest]]
    supervised_signal, test_signal = rest_sr[::2], rest_sr[1::2]  # SR signal: half trains the supervised bound
    sizes = {
        "background_events": len(background_x),
        "background_sr": int(in_window(background_mass, signal_region).sum()),
        "signal_events": len(signal_x),
        "signal_sr_fraction": float(signal_sr.mean()),
        "data_events": len(data_x),
        "data_sr_background": sr_background,
        "injected_sr_signal": int(signal_sr[injected].sum()),
        "extra_sr_background": len(extra),
        "test_signal": len(test_signal),
        "test_background": len(test_background),
    }
    log(
        f"background events {sizes['background_events']} in {mass_range[0]:g}–{mass_range[1]:g} TeV (SR "
        f"{sizes['background_sr']}), signal events {len(signal_x)} (SR fraction {signal_sr.mean():.2f}); data: "
        f"{len(data_x)} events, SR background {sr_background}, injected SR signal {sizes['injected_sr_signal']} "
        f"(S/B {sizes['injected_sr_signal'] / sr_background:.4f}); extra SR background {len(extra)}; "
        f"test: {len(test_signal)} signal, {len(test_background)} background"
    )

    classifier = default_training(epochs=epochs, batch_size=256)
    kfold = {"folds": folds, "hidden": (64, 64, 64), "training": classifier, "seed": seed}
    test = np.r_[test_signal, test_background]
    is_signal = np.r_[np.ones(len(test_signal), bool), np.zeros(len(test_background), bool)]
    in_sr = in_window(data_m, signal_region)
    flow_training = TrainingConfig(
        epochs=flow_epochs, batch_size=256, learning_rate=1e-3, early_stopping_patience=None, weight_decay=1e-6
    )

    def cathode() -> np.ndarray:
        scores, _ = cathode_scores(
            data_x,
            data_m,
            signal_region,
            mass_range,
            oversampling=4,
            folds=folds,
            transforms=4,
            hidden=(64, 64),
            flow_training=flow_training,
            classifier_training=classifier,
            seed=seed,
        )
        return ensemble_score(scores, test)

    runners: dict[str, Callable[[], np.ndarray]] = {
        "supervised": lambda: ensemble_score(supervised_scores(supervised_signal, extra, **kfold), test),
        "idealised": lambda: ensemble_score(idealised_scores(data_x[in_sr], extra, **kfold), test),
        "CATHODE": cathode,
        "CWoLa": lambda: ensemble_score(cwola_scores(data_x, data_m, signal_region, mass_range, **kfold), test),
        "VAE": lambda: vae_scores(
            data_x[in_sr], test, training=default_training(class_weights=None, epochs=epochs), seed=seed
        ),
    }
    curves: dict[str, SicCurve] = {}
    for index, name in enumerate(name for name in METHODS if name in methods):
        step_started = time.perf_counter()
        curves[name] = sic_curve(is_signal, runners[name](), min_background=min_background)
        log(
            f"[{index + 1}/{len(methods)}] {name}: max SIC {curves[name].max_sic:.2f}, AUC {curves[name].auc:.3f} "
            f"({time.perf_counter() - step_started:.0f} s)"
        )
    settings = {
        "injection": injection,
        "signal_region": list(signal_region),
        "mass_range": list(mass_range),
        "epochs": epochs,
        "flow_epochs": flow_epochs,
        "folds": folds,
        "min_background": min_background,
        "seed": seed,
    }
    result = BenchmarkResult(
        curves, sizes, 1 / np.sqrt(min_background / len(test_background)), time.perf_counter() - started, None, settings
    )
    if output is not None:
        result.report = write_benchmark(result, output)
    return result


def write_benchmark(result: BenchmarkResult, output: str | os.PathLike[str]) -> Path:
    """``output/sic.json`` (rows, sizes, settings) and ``output/report.html`` (SIC figure, max-SIC table)."""
    from heplearn.data.files import atomic_path
    from heplearn.methods.anomaly_report import plot_sic, write_anomaly_report

    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    rows = result.table()
    with atomic_path(output / "sic.json") as temporary:
        Path(temporary).write_text(
            json.dumps(
                {
                    "rows": rows,
                    "ceiling": result.ceiling,
                    "sizes": result.sizes,
                    "settings": result.settings,
                    "seconds": result.seconds,
                },
                indent=1,
            )
        )
    table = [
        [
            row["method"],
            f"{row['max_sic']:.2f}",
            f"{row['auc']:.3f}",
            f"{row['literature']}" if row["literature"] else "–",
            f"{row['ratio']:.2f}" if row["ratio"] else "–",
        ]
        for row in rows
    ]
    sizes = result.sizes
    subtitle = (
        f"generated W' (3.5 TeV) → X(500) Y(100) vs QCD dijets · {sizes['injected_sr_signal']} signal events "
        f"injected under {sizes['data_sr_background']} SR background events "
        f"(S/B = {result.settings['injection']:.2%} asked) · {sizes['background_events']} background, "
        f"{sizes['signal_events']} signal events"
    )
    return write_anomaly_report(
        output,
        "Resonant anomaly detection: SIC of the weakly supervised and unsupervised methods",
        subtitle,
        [
            {
                "title": "Max SIC",
                "header": ["method", "max SIC", "AUC", "LHCO R&D", "ours / LHCO"],
                "rows": table,
                "note": f"Max SIC over cuts keeping at least {result.settings['min_background']} of the "
                f"{sizes['test_background']} SR test background events (ceiling {result.ceiling:.1f}). "
                "LHCO R&D values: CATHODE paper, arXiv:2109.00546.",
            }
        ],
        [
            (
                plot_sic(result.curves),
                "sic",
                "SIC against signal efficiency",
                "SIC = ε_S/√ε_B of a cut on each method's score, on the independent SR test events.",
            )
        ],
    )
