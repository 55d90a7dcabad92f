"""Boosted decision trees on jet-level features, with XGBoost (the role of TMVA's ``MethodBDT``).

Gradient boosting (Friedman 2001; XGBoost: Chen & Guestrin, KDD 2016) with the histogram tree
method: each split is searched over ``max_bin`` quantile bins per variable. Binary problems use the
logistic loss, K classes the softmax loss. With a validation split, boosting stops once its loss
has not improved for ``early_stopping_rounds`` rounds and the model keeps the best round's trees
(TMVA instead limits overtraining by tree depth and pruning, Users Guide §8.13).

Weights are rescaled to a mean of one; ``balance_classes`` rescales them so that every class has
the same total weight, TMVA's default normalisation ("NormMode=EqualNumEvents"): probabilities
then correspond to equal priors, like the projective likelihood's y_L. The model is stored in
XGBoost's own JSON format, readable by any XGBoost binding. XGBoost is the ``bdt`` extra
(``pip install 'heplearn[bdt]'``), imported on first use: configs naming the BDT validate without it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from heplearn.data.files import atomic_path
from heplearn.errors import DataError
from heplearn.models.base import (
    FloatArray,
    JetClassifier,
    LabelledSample,
    check_choice,
    check_number,
)
from heplearn.optional import optional_import

if TYPE_CHECKING:
    import xgboost as xgb

logger = logging.getLogger(__name__)

XGBOOST_FILE = "xgboost_model.json"


def _xgboost() -> ModuleType:
    """XGBoost (the ``bdt`` extra); a ``MissingExtraError`` naming it when it is not installed."""
    return optional_import("xgboost", "the BDT (model: bdt)")


class BoostedDecisionTrees(JetClassifier):
    """Gradient-boosted trees (XGBoost, ``tree_method="hist"``), binary or multiclass.

    Parameters
    ----------
    n_estimators:
        Maximum number of boosting rounds.
    learning_rate, max_depth, min_child_weight, subsample, colsample_bytree, reg_lambda, reg_alpha,
    gamma, max_bin:
        The XGBoost parameters of the same names (``eta``, ``lambda``, ``alpha`` in XGBoost).
    early_stopping_rounds:
        Rounds without improvement of the validation loss before stopping (only when ``fit`` gets
        ``X_val``/``y_val``); ``None`` disables early stopping.
    balance_classes:
        Rescale weights to equal total weight per class (in training and validation).
    n_jobs:
        XGBoost threads (``None``: XGBoost's default, all cores).
    seed:
        Seed of XGBoost's row and column sampling.
    """

    def __init__(
        self,
        *,
        n_estimators: int = 500,
        learning_rate: float = 0.1,
        max_depth: int = 4,
        min_child_weight: float = 1.0,
        subsample: float = 1.0,
        colsample_bytree: float = 1.0,
        reg_lambda: float = 1.0,
        reg_alpha: float = 0.0,
        gamma: float = 0.0,
        max_bin: int = 256,
        early_stopping_rounds: int | None = 20,
        balance_classes: bool = True,
        n_jobs: int | None = None,
        seed: int = 0,
    ) -> None:
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.max_depth = max_depth
        self.min_child_weight = min_child_weight
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.reg_lambda = reg_lambda
        self.reg_alpha = reg_alpha
        self.gamma = gamma
        self.max_bin = max_bin
        self.early_stopping_rounds = early_stopping_rounds
        self.balance_classes = balance_classes
        self.n_jobs = n_jobs
        self.seed = seed

    booster_: xgb.Booster
    best_iteration_: int
    n_rounds_: int
    validation_loss_: list[float]

    def _check_hyperparameters(self) -> None:
        _xgboost()  # fit fails first on a missing XGBoost
        check_number("n_estimators", self.n_estimators, 1, 1_000_000, integer=True)
        check_number("learning_rate", self.learning_rate, 1e-9, 1.0)
        check_number("max_depth", self.max_depth, 1, 64, integer=True)
        check_number("min_child_weight", self.min_child_weight, 0.0)
        check_number("subsample", self.subsample, 1e-9, 1.0)
        check_number("colsample_bytree", self.colsample_bytree, 1e-9, 1.0)
        check_number("reg_lambda", self.reg_lambda, 0.0)
        check_number("reg_alpha", self.reg_alpha, 0.0)
        check_number("gamma", self.gamma, 0.0)
        check_number("max_bin", self.max_bin, 2, 1_000_000, integer=True)
        if self.early_stopping_rounds is not None:
            check_number("early_stopping_rounds", self.early_stopping_rounds, 1, 1_000_000, integer=True)
        check_choice("balance_classes", self.balance_classes, (True, False))
        if self.n_jobs is not None:
            check_number("n_jobs", self.n_jobs, 1, 4096, integer=True)
        check_number("seed", self.seed, 0, 2**31 - 1, integer=True)

    def _xgboost_params(self) -> dict[str, Any]:
        params: dict[str, Any] = {
            "tree_method": "hist",
            "eta": float(self.learning_rate),
            "max_depth": int(self.max_depth),
            "min_child_weight": float(self.min_child_weight),
            "subsample": float(self.subsample),
            "colsample_bytree": float(self.colsample_bytree),
            "lambda": float(self.reg_lambda),
            "alpha": float(self.reg_alpha),
            "gamma": float(self.gamma),
            "max_bin": int(self.max_bin),
            "seed": int(self.seed),
            "verbosity": 0,
        }
        if self.n_classes_ == 2:
            params |= {"objective": "binary:logistic", "eval_metric": "logloss"}
        else:
            params |= {"objective": "multi:softprob", "num_class": self.n_classes_, "eval_metric": "mlogloss"}
        if self.n_jobs is not None:
            params["nthread"] = int(self.n_jobs)
        return params

    def _matrix(self, sample: LabelledSample) -> xgb.DMatrix:
        # only relative weights matter: rescale to a mean of one (as TMVA does), so that the
        # regularisation (min_child_weight, lambda) acts the same whatever the weights' units
        weights = sample.weights * (len(sample.weights) / sample.weights.sum())
        if self.balance_classes:
            totals = sample.class_weights(self.n_classes_)
            present = totals > 0
            per_class = len(sample.weights) / present.sum()
            weights = sample.weights * np.where(present, per_class / np.where(present, totals, 1.0), 0.0)[sample.labels]
        return _xgboost().DMatrix(sample.features, label=sample.labels, weight=weights, nthread=self._nthread())

    def _nthread(self) -> int:
        return -1 if self.n_jobs is None else int(self.n_jobs)

    def _fit(self, train: LabelledSample, validation: LabelledSample | None) -> None:
        history: dict[str, dict[str, list[float]]] = {}
        evals = [] if validation is None else [(self._matrix(validation), "validation")]
        early_stopping = self.early_stopping_rounds if evals else None
        booster = _xgboost().train(
            self._xgboost_params(),
            self._matrix(train),
            num_boost_round=int(self.n_estimators),
            evals=evals,
            early_stopping_rounds=None if early_stopping is None else int(early_stopping),
            evals_result=history,
            verbose_eval=False,
        )
        self.n_rounds_ = booster.num_boosted_rounds()
        self.best_iteration_ = booster.best_iteration if early_stopping is not None else self.n_rounds_ - 1
        self.booster_ = booster[: self.best_iteration_ + 1]  # keep the trees of the best round only
        self.validation_loss_ = [float(v) for v in next(iter(history.get("validation", {}).values()), [])]
        if early_stopping is not None:
            logger.info(
                "early stopping: best round %d of %d boosted (maximum %d)",
                self.best_iteration_ + 1,
                self.n_rounds_,
                self.n_estimators,
            )

    @property
    def feature_importances(self) -> dict[str, float]:
        """Average gain of the splits on each variable (XGBoost "gain"); 0 for unused variables."""
        self._check_fitted()
        gains = self.booster_.get_score(importance_type="gain")
        return {
            name: float(gains.get(f"f{j}", 0.0))  # type: ignore[arg-type]  # a float for "gain"
            for j, name in enumerate(self.feature_names_)
        }

    # -- predict -------------------------------------------------------------------------------

    def _predict_proba(self, X: FloatArray) -> FloatArray:
        probabilities = self.booster_.predict(_xgboost().DMatrix(X, nthread=self._nthread())).astype(np.float64)
        if self.n_classes_ == 2:
            return np.column_stack([1.0 - probabilities, probabilities])
        return probabilities / probabilities.sum(axis=1, keepdims=True)  # float32 rounding

    def _decision_function(self, X: FloatArray) -> FloatArray:
        """The raw boosted score: log-odds for binary, per-class margins ``(n, K)`` otherwise."""
        margin = self.booster_.predict(_xgboost().DMatrix(X, nthread=self._nthread()), output_margin=True)
        return margin.astype(np.float64)

    # -- persistence ---------------------------------------------------------------------------

    def _state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        state = {
            "best_iteration": self.best_iteration_,
            "n_rounds": self.n_rounds_,
            "validation_loss": self.validation_loss_,
            "xgboost_file": XGBOOST_FILE,
            "xgboost_version": _xgboost().__version__,
        }
        return state, {}

    def _save_extra(self, directory: Path) -> None:
        with atomic_path(directory / XGBOOST_FILE) as temporary:
            self.booster_.save_model(str(temporary))  # the ".json" suffix selects XGBoost's JSON format

    def _restore(self, state: dict[str, Any], arrays: dict[str, np.ndarray], directory: Path) -> None:
        path = directory / str(state.get("xgboost_file", XGBOOST_FILE))
        if not path.is_file():
            raise DataError(f"{directory}: missing {path.name}, the XGBoost model")
        xgboost = _xgboost()
        booster = xgboost.Booster()
        try:
            booster.load_model(str(path))
        except xgboost.core.XGBoostError as error:
            raise DataError(f"{path}: not a readable XGBoost model ({error})") from None
        self.booster_ = booster
        self.best_iteration_ = int(state["best_iteration"])
        self.n_rounds_ = int(state["n_rounds"])
        self.validation_loss_ = [float(v) for v in state["validation_loss"]]
