"""Domain adaptation and ABCDisCo on generated jets (slow: Pythia samples and several trainings).

The example configs of the README's demonstrations (``configs/top_qcd_dann.yaml``,
``configs/top_qcd_double_disco.yaml``), on small samples generated here:

- DANN (arXiv:1409.7495): a tagger trained on nominal-detector jets with a miscalibrated detector's
  jets as its unlabelled target, on the physics sample, keeps its AUC and leaves the domain head
  unable to tell the domains apart at full reversal strength. (The jet-feature tagger's score
  moves little between these detectors — a separation AUC of 0.016 on 8,000 jets — so a gain in
  agreement is below the statistics of a test-sized sample; the toy of ``test_domain.py`` shows the
  adaptation itself.)
- Double DisCo (arXiv:2007.14400): the ABCD estimate of QCD in the (f, g) plane closes, where the
  undecorrelated pair of taggers does not.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from heplearn.evaluation.evaluate import evaluate_run
from heplearn.evaluation.figures import EvaluationSettings
from heplearn.generate.detector import load_detector
from heplearn.generate.driver import generate
from heplearn.generate.processes import GeneratorOptions
from heplearn.methods.decorrelation import pair_scores
from heplearn.run_config import load_run_config
from heplearn.stats.abcd import abcd_estimate, region_counts
from heplearn.training.from_config import train

pytestmark = pytest.mark.slow

CONFIGS = Path(__file__).resolve().parents[2] / "src" / "heplearn" / "configs"
JETS = 1000  # per process and detector


@pytest.fixture(scope="module")
def detector_samples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Top and QCD jets through the nominal and the miscalibrated "data" detector (different seeds)."""
    root = tmp_path_factory.mktemp("detectors")
    for name, detector, seed in (("nominal", "nominal", 21), ("data", CONFIGS / "detector_miscalibrated.yaml", 23)):
        generate(
            ["top", "qcd"],
            JETS,
            root / name,
            seed=seed,
            fractions=(0.6, 0.1, 0.3),
            chunk_size=500,
            workers=2,
            options=GeneratorOptions(detector=load_detector(detector)),
            progress=False,
        )
    return {"nominal": root / "nominal", "data": root / "data"}


def data_overrides(sample: Path) -> list[str]:
    """``--set`` overrides that point a run config at ``sample``'s splits."""
    return [f"data.{split}=[{sample / f'{split}.parquet'}]" for split in ("train", "val", "test")]


@pytest.mark.timeout(3600)
def test_dann_on_generated_detectors_keeps_the_tagger(detector_samples: dict[str, Path], tmp_path: Path) -> None:
    nominal, alt = detector_samples["nominal"], detector_samples["data"]
    common = [*data_overrides(nominal), f"training.step.target=[{alt / 'train.parquet'}]", "training.epochs=12"]
    settings = EvaluationSettings(importance=False)
    measured = {}
    for name, overrides in (("plain", ["training.step={name: single}"]), ("dann", [])):
        result = train(
            load_run_config(CONFIGS / "top_qcd_dann.yaml", common + overrides),
            name=name,
            runs_dir=tmp_path,
            progress=False,
        )
        metrics = evaluate_run(
            result.run_dir,
            [nominal / "test.parquet"],
            tmp_path / name / "eval",
            domain_files=[alt / "test.parquet"],
            settings=settings,
            progress=False,
        ).metrics
        separation = metrics["domain_agreement"]["separation_auc"]
        measured[name] = (metrics["auc"], abs(separation - 0.5), metrics["domain_agreement"]["chi2_ndf"])
        if name == "dann":
            last = result.history[-1]
            assert last["train_reversal"] > 0.99 * 30  # the schedule reached the config's strength
            assert last["train_domain_loss"] > np.log(2) - 0.01  # the domain head is left guessing
    print(measured)  # measured: AUC 0.957 / 0.954, |separation AUC − ½| 0.032 / 0.033, χ²/ndf 1.51 / 1.23
    (plain_auc, plain_separation, _), (dann_auc, dann_separation, _) = measured.values()
    assert dann_auc > plain_auc - 0.02  # adaptation costs little AUC
    assert dann_separation < plain_separation + 0.03  # and does not pull the domains apart


@pytest.mark.timeout(3600)
def test_double_disco_closes_the_abcd_estimate_of_qcd(detector_samples: dict[str, Path], tmp_path: Path) -> None:
    nominal = detector_samples["nominal"]
    pulls, aucs = {}, {}
    for strength in (0.0, 10.0):
        config = load_run_config(
            CONFIGS / "top_qcd_double_disco.yaml",
            [
                *data_overrides(nominal),
                f"training.step.strength={strength}",
                "training.epochs=20",
                "training.batch_size=128",
            ],
        )  # ~10 steps an epoch on these 1,200 jets
        result = train(config, name=f"double{strength:g}", runs_dir=tmp_path, progress=False)
        first, second, arrays = pair_scores(result.run_dir, [nominal / "test.parquet"])
        qcd = arrays.label == 1
        f, g = first[qcd], second[qcd]
        estimate = abcd_estimate(region_counts(f, g, float(np.median(f)), float(np.median(g))))
        pulls[strength] = estimate.closure_pull
        aucs[strength] = sorted(roc_auc_score(arrays.label == 0, score) for score in (first, second))
    print(pulls, aucs)  # measured: pulls −11.9 and −1.2; AUCs of the decorrelated pair 0.874 and 0.903
    assert pulls[0.0] < -3  # two taggers of the same jets: N_A underestimated
    assert abs(pulls[10.0]) < 2.5  # decorrelated on QCD: the estimate closes
    assert aucs[10.0][0] > 0.75 and aucs[10.0][1] > 0.85  # with two taggers, neither starved
