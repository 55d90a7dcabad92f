"""The contract shared by the classical jet-level classifiers (cuts, likelihood, BDT).

Each model follows the scikit-learn estimator contract: hyper-parameters are constructor arguments
(``get_params`` / ``set_params`` / ``sklearn.base.clone`` work), ``fit`` learns attributes whose
names end in ``_``, and ``predict_proba`` returns one column per class. On top of it:

- ``fit(X, y, sample_weight, X_val, y_val, w_val, feature_names)``: per-event weights for the
  training and the validation split (Monte Carlo weights, cross-section scaling), and names for the
  input variables so that results (cuts, importances) are reported by name.
- Input validation lives here, once: 2-D finite features, labels ``0..K-1`` (or one-hot),
  finite non-negative weights of matching length. Bad input raises a :class:`HeplearnError`.
- ``save(directory)`` / ``load(directory)`` without pickle: ``model.json`` (class, hyper-parameters,
  fitted metadata) and ``arrays.safetensors`` (fitted arrays), plus any model-specific file. Every
  file is written atomically and ``model.json`` last, so a directory that has it is complete.
"""

from __future__ import annotations

import json
import logging
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray
from safetensors.numpy import load_file, save_file
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import NotFittedError as SklearnNotFittedError

from heplearn.data.files import atomic_path, write_text_atomic
from heplearn.errors import ConfigError, DataError, HeplearnError

logger = logging.getLogger(__name__)

MODEL_FILE = "model.json"
ARRAYS_FILE = "arrays.safetensors"
FORMAT_VERSION = 1

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


class NotFittedError(HeplearnError, SklearnNotFittedError):
    """A model was asked to predict or save before ``fit`` (also a scikit-learn ``NotFittedError``)."""


@dataclass(frozen=True)
class LabelledSample:
    """Validated features ``(n, d)``, integer labels ``(n,)`` and weights ``(n,)`` of one split."""

    features: FloatArray
    labels: IntArray
    weights: FloatArray

    def class_weights(self, n_classes: int) -> FloatArray:
        """Total weight of each class."""
        return np.asarray(np.bincount(self.labels, weights=self.weights, minlength=n_classes), np.float64)


# --- input validation ---------------------------------------------------------------------------


def check_features(X: ArrayLike, name: str = "X", n_features: int | None = None) -> FloatArray:
    """``X`` as a finite float64 array of shape ``(n_events, n_features)``."""
    try:
        array = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise DataError(f"{name}: cannot be read as an array of numbers ({error})") from None
    if array.ndim != 2:
        raise DataError(
            f"{name}: expected a 2-D array (events, features), got shape {array.shape}; "
            "reshape a single feature with X.reshape(-1, 1)"
        )
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise DataError(f"{name}: empty array of shape {array.shape}")
    if n_features is not None and array.shape[1] != n_features:
        raise DataError(f"{name}: has {array.shape[1]} features, the model was fitted on {n_features}")
    finite = np.isfinite(array)
    if not finite.all():
        rows, columns = np.nonzero(~finite)
        raise DataError(
            f"{name}: {rows.size} non-finite value(s) (NaN or inf), first at event {rows[0]}, "
            f"feature {columns[0]}; fill or drop them before fitting or predicting"
        )
    return array


def check_labels(y: ArrayLike, n_events: int, name: str = "y") -> IntArray:
    """Integer class labels ``0..K-1`` of shape ``(n_events,)``; one-hot ``(n, K)`` is accepted too."""
    try:
        array = np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise DataError(f"{name}: labels must be integers 0..K-1 ({error})") from None
    if array.ndim == 2 and array.shape[1] > 1:
        if not (np.isin(array, (0.0, 1.0)).all() and (array.sum(axis=1) == 1).all()):
            raise DataError(f"{name}: a 2-D label array must be one-hot (exactly one 1 per row)")
        array = array.argmax(axis=1).astype(np.float64)
    elif array.ndim == 2:
        array = array[:, 0]
    if array.ndim != 1:
        raise DataError(f"{name}: expected labels of shape (n_events,), got {array.shape}")
    if array.shape[0] != n_events:
        raise DataError(f"{name}: has {array.shape[0]} labels for {n_events} events")
    if not np.isfinite(array).all() or (array != np.round(array)).any() or (array < 0).any():
        raise DataError(f"{name}: labels must be integers 0..K-1 (found {np.unique(array)[:10]})")
    return array.astype(np.int64)


def check_weights(weights: ArrayLike | None, n_events: int, name: str = "sample_weight") -> FloatArray:
    """Finite non-negative per-event weights of shape ``(n_events,)``; ``None`` means all ones."""
    if weights is None:
        return np.ones(n_events)
    try:
        array = np.asarray(weights, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise DataError(f"{name}: cannot be read as numbers ({error})") from None
    if array.shape != (n_events,):
        raise DataError(f"{name}: expected shape ({n_events},) to match the events, got {array.shape}")
    if not np.isfinite(array).all():
        raise DataError(f"{name}: contains NaN or inf")
    if (array < 0).any():
        raise DataError(
            f"{name}: {(array < 0).sum()} negative weight(s); these models need non-negative weights "
            "(drop or absorb negative NLO weights first)"
        )
    return array


def check_feature_names(names: ArrayLike | None, n_features: int, X: object = None) -> list[str]:
    """The variable names: given, taken from a DataFrame's columns, or ``x0, x1, ...``."""
    if names is None:
        columns = getattr(X, "columns", None)
        if columns is None:
            return [f"x{j}" for j in range(n_features)]
        names = list(columns)
    result = [str(n) for n in np.asarray(names, dtype=object).ravel()]
    if len(result) != n_features:
        raise DataError(f"feature_names: {len(result)} names for {n_features} features")
    if len(set(result)) != len(result) or any(not n for n in result):
        raise DataError(f"feature_names: names must be unique and non-empty, got {result}")
    return result


def check_choice(name: str, value: object, allowed: tuple[object, ...]) -> None:
    """A hyper-parameter that must be one of ``allowed``."""
    if value not in allowed:
        raise ConfigError(f"{name}={value!r} is not one of {list(allowed)}")


def check_number(name: str, value: object, low: float, high: float = np.inf, integer: bool = False) -> None:
    """A numeric hyper-parameter in ``[low, high]`` (an integer when ``integer``)."""
    is_number = isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)
    if not is_number or (integer and value != int(value)):  # type: ignore[call-overload]
        kind = "an integer" if integer else "a number"
        raise ConfigError(f"{name}={value!r} must be {kind}")
    if not low <= float(value) <= high:  # type: ignore[arg-type]
        raise ConfigError(f"{name}={value!r} must lie in [{low}, {high}]")


# --- the base class -----------------------------------------------------------------------------


class JetClassifier(ClassifierMixin, BaseEstimator, ABC):
    """Base of the jet-level classifiers: validation, prediction plumbing, save and load.

    Subclasses implement ``_check_hyperparameters``, ``_fit``, ``_predict_proba``,
    ``_decision_function`` and the state hooks ``_state`` / ``_restore``.
    """

    #: the largest number of classes the model handles (2 for binary-only models)
    max_classes: ClassVar[int | None] = None
    _registry: ClassVar[dict[str, type[JetClassifier]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        JetClassifier._registry[cls.__name__] = cls

    # fitted attributes (set by ``fit`` or ``load``)
    feature_names_: list[str]
    n_features_in_: int
    n_classes_: int
    classes_: IntArray

    # -- training ------------------------------------------------------------------------------

    def fit(
        self,
        X: ArrayLike,
        y: ArrayLike,
        sample_weight: ArrayLike | None = None,
        *,
        X_val: ArrayLike | None = None,
        y_val: ArrayLike | None = None,
        w_val: ArrayLike | None = None,
        feature_names: ArrayLike | None = None,
    ) -> Self:
        """Fit on ``(X, y)`` with optional per-event weights and a validation split.

        ``y`` holds integer classes ``0..K-1`` (for binary models 1 = signal, 0 = background).
        """
        self._check_hyperparameters()
        train = self._sample(X, y, sample_weight, names=("X", "y", "sample_weight"))
        n_classes = int(train.labels.max()) + 1
        if n_classes < 2:
            raise DataError("y: only one class present; training needs at least two (0 = background, 1 = signal)")
        if self.max_classes is not None and n_classes > self.max_classes:
            raise DataError(f"y: {type(self).__name__} handles at most {self.max_classes} classes, got {n_classes}")
        empty = np.flatnonzero(train.class_weights(n_classes) <= 0)
        if empty.size:
            raise DataError(f"y: class(es) {empty.tolist()} have no events (or zero total weight)")
        validation = None
        if X_val is not None or y_val is not None:
            if X_val is None or y_val is None:
                raise DataError("X_val and y_val must be given together")
            validation = self._sample(
                X_val, y_val, w_val, names=("X_val", "y_val", "w_val"), n_features=train.features.shape[1]
            )
            if validation.labels.max() >= n_classes:
                raise DataError(f"y_val: label {validation.labels.max()} not seen in training (0..{n_classes - 1})")
        elif w_val is not None:
            raise DataError("w_val given without X_val and y_val")

        self.feature_names_ = check_feature_names(feature_names, train.features.shape[1], X)
        self.n_features_in_ = train.features.shape[1]
        self.n_classes_ = n_classes
        self.classes_ = np.arange(n_classes, dtype=np.int64)
        logger.info(
            "fitting %s on %d events, %d features, %d classes%s",
            type(self).__name__,
            train.labels.size,
            self.n_features_in_,
            n_classes,
            f", validation {validation.labels.size} events" if validation is not None else "",
        )
        try:
            self._fit(train, validation)
        except BaseException:
            del self.n_classes_  # a failed fit leaves the model unfitted, not half-fitted
            raise
        return self

    @staticmethod
    def _sample(
        X: ArrayLike,
        y: ArrayLike,
        w: ArrayLike | None,
        *,
        names: tuple[str, str, str],
        n_features: int | None = None,
    ) -> LabelledSample:
        x_name, y_name, w_name = names
        features = check_features(X, x_name, n_features)
        labels = check_labels(y, features.shape[0], y_name)
        weights = check_weights(w, features.shape[0], w_name)
        return LabelledSample(features, labels, weights)

    # -- prediction ----------------------------------------------------------------------------

    def predict_proba(self, X: ArrayLike) -> FloatArray:
        """Class probabilities, shape ``(n_events, n_classes)``; each row sums to one."""
        return self._predict_proba(self._checked_input(X))

    def predict(self, X: ArrayLike) -> IntArray:
        """The most probable class of each event."""
        probabilities = self.predict_proba(X)
        return self.classes_[np.argmax(probabilities, axis=1)]

    def decision_function(self, X: ArrayLike) -> FloatArray:
        """A score per event: ``(n,)`` and increasing with signal-likeness for binary models."""
        return self._decision_function(self._checked_input(X))

    def _checked_input(self, X: ArrayLike) -> FloatArray:
        self._check_fitted()
        return check_features(X, "X", self.n_features_in_)

    def _check_fitted(self) -> None:
        if not hasattr(self, "n_classes_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet: call fit(X, y) or load() first")

    # -- persistence ---------------------------------------------------------------------------

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write the fitted model to ``directory`` (created if needed); returns the directory."""
        self._check_fitted()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state, arrays = self._state()
        with atomic_path(directory / ARRAYS_FILE) as temporary:
            save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(temporary))
        self._save_extra(directory)
        document = {
            "format_version": FORMAT_VERSION,
            "class": type(self).__name__,
            "params": _jsonable(self.get_params(deep=False)),
            "feature_names": self.feature_names_,
            "n_classes": self.n_classes_,
            "state": _jsonable(state),
        }
        write_text_atomic(directory / MODEL_FILE, json.dumps(document, indent=2, allow_nan=False))
        logger.info("saved %s to %s", type(self).__name__, directory)
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> Self:
        """Read a model written by :meth:`save` (on the base class: whichever model it holds)."""
        directory = Path(directory)
        path = directory / MODEL_FILE
        if not path.is_file():
            raise DataError(f"{directory}: no {MODEL_FILE}; not a saved heplearn model directory")
        try:
            document = json.loads(path.read_text())
            class_name, params = document["class"], document["params"]
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise DataError(f"{path}: not a heplearn model file ({error})") from None
        if document.get("format_version") != FORMAT_VERSION:
            raise DataError(f"{path}: format version {document.get('format_version')} is not supported")
        target = _model_class(class_name, path)
        if not issubclass(target, cls):
            raise DataError(f"{path}: holds a {class_name}, not a {cls.__name__}")
        try:
            model = target(**params)
        except TypeError as error:
            raise DataError(f"{path}: hyper-parameters do not match this heplearn version ({error})") from None
        if not (directory / ARRAYS_FILE).is_file():
            raise DataError(f"{directory}: missing {ARRAYS_FILE}, the fitted arrays")
        arrays = load_file(str(directory / ARRAYS_FILE))
        model.feature_names_ = list(document["feature_names"])
        model.n_features_in_ = len(model.feature_names_)
        model.n_classes_ = int(document["n_classes"])
        model.classes_ = np.arange(model.n_classes_, dtype=np.int64)
        model._restore(document["state"], arrays, directory)
        return model  # type: ignore[return-value]

    # -- hooks for the models ------------------------------------------------------------------

    @abstractmethod
    def _check_hyperparameters(self) -> None:
        """Raise ConfigError naming a constructor argument whose value is invalid."""

    @abstractmethod
    def _fit(self, train: LabelledSample, validation: LabelledSample | None) -> None: ...

    @abstractmethod
    def _predict_proba(self, X: FloatArray) -> FloatArray: ...

    @abstractmethod
    def _decision_function(self, X: FloatArray) -> FloatArray: ...

    @abstractmethod
    def _state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """The fitted state: a JSON-able dict and named arrays."""

    @abstractmethod
    def _restore(self, state: dict[str, Any], arrays: dict[str, np.ndarray], directory: Path) -> None:
        """Inverse of ``_state`` (``directory`` for model-specific files)."""

    def _save_extra(self, directory: Path) -> None:
        """Write model-specific files (before ``model.json``); none by default."""


def load_model(directory: str | os.PathLike[str]) -> JetClassifier:
    """Load whichever jet-level classifier ``directory`` holds."""
    return JetClassifier.load(directory)


def _model_class(name: str, where: Path) -> type[JetClassifier]:
    if name not in JetClassifier._registry:
        # the models register themselves on import; import the built-in ones on demand
        from heplearn.models import bdt, cuts, likelihood  # noqa: F401
    if name not in JetClassifier._registry:
        raise DataError(f"{where}: unknown model class {name!r}")
    return JetClassifier._registry[name]


def _jsonable(value: Any) -> Any:
    """Plain JSON types: arrays and tuples to lists, numpy scalars to Python, inf to strings."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return "inf" if value > 0 else "-inf" if value < 0 else "nan"
    return value


def float_from_json(value: float | str | None) -> float:
    """Inverse of ``_jsonable`` for floats (``"inf"``/``"-inf"`` strings)."""
    return float("nan") if value is None else float(value)
