"""Advanced techniques on the trainer: reweighting, unfolding, decorrelation, domain adaptation,
anomaly detection, weak supervision, fast simulation (one module per technique).

The entry point of each technique, imported on first use (``heplearn._lazy``); the loss terms and
step strategies (DisCo, the adversary, DANN, INFERNO, ...) are chosen in a run config instead
(``training.loss``, ``training.step``) and live in their modules.
"""

from __future__ import annotations

from heplearn._lazy import lazy_api

__getattr__, __dir__ = lazy_api(
    __name__,
    {
        # reweighting and unfolding
        "heplearn.methods.reweighting": ["reweight"],
        "heplearn.methods.reweighting_parametrised": ["reweight_parametrised", "fit_parameters"],
        "heplearn.methods.unfolding": ["omnifold"],
        "heplearn.methods.unfold_run": ["unfold"],
        # decorrelation and systematic-aware training
        "heplearn.methods.decorrelation": ["distance_correlation"],
        "heplearn.methods.decorrelation_scan": ["decorrelation_scan"],
        "heplearn.methods.quantile_cut": ["fit_quantile_cut"],
        "heplearn.methods.inferno": ["train_inferno"],
        # anomaly detection and weak supervision
        "heplearn.methods.anomaly": ["anomaly_run_config"],
        "heplearn.methods.thresholds": ["threshold_at_rate"],
        "heplearn.methods.cwola": ["cwola_hunt"],
        "heplearn.methods.cathode": ["train_flow", "cathode_scores"],
        "heplearn.methods.weak_supervision": ["sic_curve"],
        # fast simulation
        "heplearn.methods.fastsim": ["train_fastsim", "sample_jets"],
        "heplearn.methods.fastsim_metrics": ["generation_metrics"],
    },
)
__all__ = [
    "anomaly_run_config",
    "cathode_scores",
    "cwola_hunt",
    "decorrelation_scan",
    "distance_correlation",
    "fit_parameters",
    "fit_quantile_cut",
    "generation_metrics",
    "omnifold",
    "reweight",
    "reweight_parametrised",
    "sample_jets",
    "sic_curve",
    "threshold_at_rate",
    "train_fastsim",
    "train_flow",
    "train_inferno",
    "unfold",
]
