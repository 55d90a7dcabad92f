"""Statistics: from templates of a score to a physics result, with pyhf, iminuit and hist.

- ``templates``: score or observable histograms per sample (arrays, ``heplearn predict`` files, runs);
- ``fraction``: the signal fraction of a mixture, unbinned (iminuit) and binned (pyhf, Barlow–Beeston);
- ``model``: HistFactory workspaces (μ, normsys, histosys, lumi, MC statistics) as pyhf JSON;
- ``results``: best fits, profile scans, pulls, impacts, discovery q₀ and CLs limits (pyhf);
- ``scale_factors``: data/simulation scale factors of a working point from pass/fail template fits;
- ``scale_factor_fit``: those scale factors in bins of jet pT from files, with the systematics of
  varied simulation, and their report (``heplearn fit --working-point``);
- ``fitting``: ``fit_inputs``, the ``heplearn fit`` command's library call, and its report;
- ``abcd`` (the ABCD background estimate) and ``ibu`` (iterative Bayesian unfolding), imported by module.
"""

from __future__ import annotations

from heplearn._lazy import lazy_names

_API = {
    "Binning": "heplearn.stats.templates",
    "Template": "heplearn.stats.templates",
    "make_template": "heplearn.stats.templates",
    "template_from_files": "heplearn.stats.templates",
    "templates_from_run": "heplearn.stats.templates",
    "histogram_density": "heplearn.stats.templates",
    "kde_density": "heplearn.stats.templates",
    "FractionFit": "heplearn.stats.fraction",
    "fit_fraction": "heplearn.stats.fraction",
    "fit_fraction_binned": "heplearn.stats.fraction",
    "fisher_uncertainty": "heplearn.stats.fraction",
    "binned_fisher_uncertainty": "heplearn.stats.fraction",
    "Sample": "heplearn.stats.model",
    "Systematic": "heplearn.stats.model",
    "ModelSettings": "heplearn.stats.model",
    "build_workspace": "heplearn.stats.model",
    "write_workspace": "heplearn.stats.model",
    "model_and_data": "heplearn.stats.model",
    "FitResult": "heplearn.stats.results",
    "fit": "heplearn.stats.results",
    "profile_scan": "heplearn.stats.results",
    "scan_interval": "heplearn.stats.results",
    "pulls": "heplearn.stats.results",
    "impacts": "heplearn.stats.results",
    "discovery": "heplearn.stats.results",
    "upper_limit": "heplearn.stats.results",
    "FitSettings": "heplearn.stats.fitting",
    "fit_inputs": "heplearn.stats.fitting",
    "inputs_from_run": "heplearn.stats.fitting",
    "inputs_from_score_files": "heplearn.stats.fitting",
    "measure_scale_factor": "heplearn.stats.scale_factors",
    "scale_factors_in_bins": "heplearn.stats.scale_factors",
    "ScaleFactorInputs": "heplearn.stats.scale_factor_fit",
    "ScaleFactorSettings": "heplearn.stats.scale_factor_fit",
    "ScaleFactorRow": "heplearn.stats.scale_factor_fit",
    "ScaleFactorOutcome": "heplearn.stats.scale_factor_fit",
    "scale_factor_inputs": "heplearn.stats.scale_factor_fit",
    "measure_scale_factors": "heplearn.stats.scale_factor_fit",
    "scale_factor_report": "heplearn.stats.scale_factor_fit",
}
__all__ = list(_API)

__getattr__, __dir__ = lazy_names(__name__, _API)
