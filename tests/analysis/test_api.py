"""The public names of ``heplearn.analysis``: a change to them is deliberate."""

from __future__ import annotations

import heplearn.analysis


def test_analysis_names() -> None:
    assert dir(heplearn.analysis) == sorted(heplearn.analysis.__all__)
    assert set(heplearn.analysis.__all__) == {
        "AnalysisConfig",
        "load_analysis_config",
        "Plan",
        "Stage",
        "make_plan",
        "write_plan",
        "run_analysis",
        "stage_states",
        "analysis_results",
        "write_analysis_report",
    }
    for name in heplearn.analysis.__all__:
        assert getattr(heplearn.analysis, name) is not None
