"""The anomaly reports: a threshold set at a rate, and SIC curves, as one self-contained HTML page."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from heplearn.methods.anomaly_report import plot_sic, write_anomaly_report
from heplearn.methods.thresholds import threshold_at_rate, write_threshold_report
from heplearn.methods.weak_supervision import sic_curve


def test_the_threshold_report_shows_scores_and_the_rate(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    score, check = rng.exponential(size=50_000), rng.exponential(size=50_000)
    threshold = threshold_at_rate(score, "40kHz", "40MHz")  # ε_B = 10⁻³
    result = {
        "run": "runs/vae",
        "score": "anomaly_score",
        "threshold": threshold,
        "validation": threshold.validate(check),
    }
    report = write_threshold_report(tmp_path / "report", result, score, np.ones_like(score), check, "40MHz")
    html = report.read_text()
    assert html.count("data:image/png;base64,") == 2  # the score distributions and the rate curve
    assert (tmp_path / "report" / "plots" / "rate.pdf").is_file()
    assert "efficiency on the validation sample" in html and f"{threshold.value:.6g}" in html


def test_the_sic_report_holds_the_table_and_the_figure(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    is_signal = np.r_[np.ones(1000, bool), np.zeros(5000, bool)]
    curves = {
        name: sic_curve(is_signal, rng.normal(size=6000) + shift * is_signal)
        for name, shift in (("good", 2.0), ("weak", 0.5))
    }
    rows = [[name, f"{curve.max_sic:.2f}"] for name, curve in curves.items()]
    report = write_anomaly_report(
        tmp_path,
        "SIC",
        "toy",
        [{"title": "Max SIC", "header": ["method", "max SIC"], "rows": rows, "note": ""}],
        [(plot_sic(curves), "sic", "SIC", "SIC against signal efficiency.")],
    )
    html = report.read_text()
    assert "Max SIC" in html and rows[0][1] in html and "data:image/png;base64," in html
    assert curves["good"].max_sic > curves["weak"].max_sic
