"""The public names of ``heplearn.stats``: a change to them is deliberate."""

from __future__ import annotations

import heplearn.stats


def test_stats_names() -> None:
    assert dir(heplearn.stats) == sorted(heplearn.stats.__all__)
    assert set(heplearn.stats.__all__) == {
        "Binning", "Template", "make_template", "template_from_files", "templates_from_run", "histogram_density",
        "kde_density", "FractionFit", "fit_fraction", "fit_fraction_binned", "fisher_uncertainty",
        "binned_fisher_uncertainty", "Sample", "Systematic", "ModelSettings", "build_workspace", "write_workspace",
        "model_and_data", "FitResult", "fit", "profile_scan", "scan_interval", "pulls", "impacts", "discovery",
        "upper_limit", "FitSettings", "fit_inputs", "inputs_from_run", "inputs_from_score_files",
        "measure_scale_factor", "scale_factors_in_bins"}
    for name in heplearn.stats.__all__:
        assert getattr(heplearn.stats, name) is not None
