"""The analysis as a workflow: one config from the samples to the fit, run on Snakemake.

- ``config``: the analysis config (``load_analysis_config``), validated like the run configs;
- ``plan``: the stages, each a heplearn command keyed by its resolved settings and inputs
  (``make_plan``), and the Snakefile (``write_plan``);
- ``engine``: runs the Snakefile with Snakemake, locally or with a cluster profile
  (``run_analysis``), and says which stages are done or stale and why (``stage_states``);
- ``report``: the one-page result (``write_analysis_report``).

The workflow holds no physics: every stage is a ``heplearn`` command.
"""

from __future__ import annotations

from heplearn._lazy import lazy_names

_API = {
    "AnalysisConfig": "heplearn.analysis.config",
    "load_analysis_config": "heplearn.analysis.config",
    "Plan": "heplearn.analysis.plan",
    "Stage": "heplearn.analysis.plan",
    "make_plan": "heplearn.analysis.plan",
    "write_plan": "heplearn.analysis.plan",
    "run_analysis": "heplearn.analysis.engine",
    "stage_states": "heplearn.analysis.engine",
    "analysis_results": "heplearn.analysis.report",
    "write_analysis_report": "heplearn.analysis.report",
}
__all__ = list(_API)

__getattr__, __dir__ = lazy_names(__name__, _API)
