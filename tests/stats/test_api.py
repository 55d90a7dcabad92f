"""The public names of ``heplearn.stats``: a change to them is deliberate."""

from __future__ import annotations

import heplearn.stats


def test_stats_names() -> None:
    assert dir(heplearn.stats) == sorted(heplearn.stats.__all__)
    assert set(heplearn.stats.__all__) == {
        "Binning",
        "Template",
        "make_template",
        "template_from_files",
        "templates_from_run",
        "histogram_density",
        "kde_density",
        "FractionFit",
        "fit_fraction",
        "fit_fraction_binned",
        "fisher_uncertainty",
        "binned_fisher_uncertainty",
        "Sample",
        "Systematic",
        "ModelSettings",
        "build_workspace",
        "write_workspace",
        "model_and_data",
        "FitResult",
        "fit",
        "profile_scan",
        "scan_interval",
        "pulls",
        "impacts",
        "discovery",
        "upper_limit",
        "FitSettings",
        "fit_inputs",
        "inputs_from_run",
        "inputs_from_score_files",
        "measure_scale_factor",
        "scale_factors_in_bins",
        "ScaleFactorInputs",
        "ScaleFactorSettings",
        "ScaleFactorRow",
        "ScaleFactorOutcome",
        "scale_factor_inputs",
        "measure_scale_factors",
        "scale_factor_report",
    }
    for name in heplearn.stats.__all__:
        assert getattr(heplearn.stats, name) is not None


def test_scale_factor_fit_from_the_package() -> None:
    """The pT-binned scale-factor measurement (``heplearn fit --working-point``) is public API:
    ``heplearn.stats`` gives the same objects as its module."""
    from heplearn.stats import (
        ScaleFactorSettings,
        measure_scale_factors,
        scale_factor_fit,
        scale_factor_inputs,
        scale_factor_report,
    )

    assert measure_scale_factors is scale_factor_fit.measure_scale_factors
    assert scale_factor_inputs is scale_factor_fit.scale_factor_inputs
    assert scale_factor_report is scale_factor_fit.scale_factor_report
    assert ScaleFactorSettings(0.5, (300.0, 500.0)).edges == (300.0, 500.0)
