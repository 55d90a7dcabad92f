"""The notebook interface: any model by name, as a scikit-learn estimator, on jets or on arrays.

    data = heplearn.load_data_config("configs/top_qcd_data.yaml")
    train, val, test = (heplearn.load_jets(data.files(s), data) for s in ("train", "val", "test"))
    bdt = heplearn.Classifier("bdt", model={"n_estimators": 300, "learning_rate": 0.05}).fit(train, val)
    probabilities = bdt.predict_proba(test)
    pnet = heplearn.Classifier("particlenet", preset="small", training={"epochs": 5}).fit(train, val)

Two dictionaries say where each setting goes: ``model`` holds the model's hyper-parameters (a
classical model's constructor arguments; a network's ``Hyperparameters``, on top of its
``preset``), ``training`` the trainer's settings (the keys of ``TrainingConfig``: ``epochs``,
``batch_size``, ``learning_rate``, ``seed``, ...), for the networks only: the classical models
are fitted in one pass, without the trainer. A plain keyword argument is a shorthand for either
where its name says which (``Classifier("bdt", n_estimators=300)``, ``Classifier("mlp",
epochs=5)``). A name that both take (``learning_rate`` or ``seed`` of the BDT), a name that
neither takes and a training setting for a classical model are errors that name the key, raised
by ``fit`` before it reads any data: a setting is never silently sent where it does nothing.

``Classifier`` is a scikit-learn estimator: ``get_params`` / ``set_params`` / ``clone`` work and
``fit`` sets ``classes_``. The jet-level models (the classical ones and ``mlp``) also fit on
arrays, ``fit(X, y, sample_weight)`` with ``X`` of shape ``(events, features)``, so they work in
``cross_val_score``, ``GridSearchCV`` and ``Pipeline``. There, as in scikit-learn, the columns of
``predict_proba`` follow ``classes_`` and the last class of a binary problem is the signal; on jets
from ``load_jets`` they follow the data config's classes, and the first class is the signal.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

import numpy as np
from numpy.typing import ArrayLike
from safetensors.torch import save_file
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import type_of_target

from heplearn.config import validate
from heplearn.data.config import DataConfig, InputGroup, LabelConfig
from heplearn.data.in_memory import InMemoryJets
from heplearn.data.jets import JetArrays
from heplearn.data.preprocessing import Preprocessing
from heplearn.errors import ConfigError, DataError
from heplearn.models import registry
from heplearn.models.base import NotFittedError, check_feature_names, check_features, check_weights
from heplearn.run_config import ModelConfig, RunConfig, TrainingConfig
from heplearn.runs import RunDirectory
from heplearn.tasks import Classification
from heplearn.trained_model import TrainedModel
from heplearn.training.checkpoint import model_weights
from heplearn.training.from_config import check_config, fit_classical, fit_torch, make_task, model_info
from heplearn.training.trainer import InMemorySource

__all__ = ["Classifier", "NotFittedError", "load_jets"]

#: The input group that arrays ``X`` stand for (the group the ``mlp`` reads).
ARRAY_GROUP = "jet"


class Classifier(ClassifierMixin, BaseEstimator):
    """Any heplearn model by name, trained and applied like a scikit-learn classifier.

    Parameters
    ----------
    name : str
        The model, one of ``heplearn.models.registry.model_names()``: the classical ``cuts``,
        ``likelihood`` and ``bdt``, the networks ``mlp``, ``pfn``, ``efn``, ``particlenet``,
        ``part``, ``cnn``, ``rnn``, ...
    preset : str, optional
        A network's named set of hyper-parameters (``"paper"`` when not given, ``"small"``,
        ``"lite"``, ...). The classical models have none.
    model : dict, optional
        The model's hyper-parameters, on top of the preset (a network's ``Hyperparameters``, a
        classical model's constructor arguments).
    training : dict, optional
        The trainer's settings, the keys of ``heplearn.run_config.TrainingConfig``
        (``epochs``, ``batch_size``, ``learning_rate``, ``seed``, ``max_steps_per_epoch``, ...).
        Networks only.
    **parameters
        A shorthand: each name goes to ``model`` if it is a hyper-parameter of the model, to
        ``training`` if it is a training setting. A name that is both is an error (say which
        with ``model=`` or ``training=``), as is a name that is neither.

    Attributes
    ----------
    classes_ : numpy.ndarray
        The labels ``predict`` returns, one per column of ``predict_proba``: the sorted values of
        ``y`` for arrays, ``0..K-1`` (the indices of the data config's classes) for jets.
    class_names_ : list of str
        heplearn's class names, signal first (the data config's classes; the labels of ``y``
        as text for arrays).
    n_features_in_ : int
        The number of features, after a fit on arrays.
    trained_ : heplearn.TrainedModel
        The trained model, its resolved run config and its standardisation.
    history_ : list of dict
        The metrics of each epoch (one record for the classical models).

    Notes
    -----
    As in scikit-learn, the constructor stores its arguments as given and ``fit`` checks them
    (before it reads any data), so that ``set_params`` and ``clone`` behave like the
    constructor: ``fit`` raises :class:`heplearn.errors.ConfigError` for an unknown model name or
    preset, and for a setting that the model does not take (or, given as a plain keyword, that
    both the model and the trainer take).

    Examples
    --------
    On arrays, a jet-level model is a scikit-learn classifier like any other:

    >>> import numpy as np
    >>> from sklearn.model_selection import cross_val_score
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 2, 600)
    >>> X = rng.normal(size=(600, 3)) + y[:, None]
    >>> bdt = Classifier("bdt", model={"n_estimators": 20, "learning_rate": 0.3, "n_jobs": 1})
    >>> bool(cross_val_score(bdt, X, y, cv=3, scoring="roc_auc").min() > 0.8)
    True
    >>> bdt.fit(X, y).classes_
    array([0, 1])

    The shorthand keeps its word: a name that the BDT and the trainer both take is refused.

    >>> Classifier("bdt", learning_rate=0.3).fit(X, y)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    heplearn.errors.ConfigError: Classifier('bdt'): 'learning_rate' is both a hyper-parameter of bdt ...

    A network that reads particles trains on jets from :func:`load_jets`, ``pnet.fit(train, val)``;
    its settings are kept as given:

    >>> pnet = Classifier("particlenet", preset="small", training={"epochs": 5})
    >>> pnet.get_params()["training"]
    {'epochs': 5}
    """

    def __init__(
        self,
        name: str,
        preset: str | None = None,
        model: Mapping[str, Any] | None = None,
        training: Mapping[str, Any] | None = None,
        **parameters: Any,
    ) -> None:
        self.name = name
        self.preset = preset
        self.model = model
        self.training = training
        self._shorthand = parameters  # checked by fit, as scikit-learn checks parameters: not here

    # -- the scikit-learn parameters: the named arguments and the shorthand keywords ------------

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor's arguments, shorthand keywords included, as given."""
        return {**super().get_params(deep=deep), **self._shorthand}

    def set_params(self, **params: Any) -> Self:
        """Set constructor arguments; a shorthand keyword may be new if the model or the trainer takes it."""
        named = set(self._get_param_names())
        super().set_params(**{key: value for key, value in params.items() if key in named})
        shorthand = {key: value for key, value in params.items() if key not in named}
        new = [key for key in shorthand if key not in self._shorthand]
        if new:
            known = {*registry.hyperparameter_names(self.name), *TrainingConfig.model_fields}
            for key in new:
                if key not in known:
                    raise ConfigError(
                        f"Classifier({self.name!r}).set_params: {key!r} is neither a hyper-parameter "
                        f"of {self.name} nor a training setting{_close_match(key, tuple(sorted(known)))}"
                    )
        self._shorthand = {**self._shorthand, **shorthand}
        return self

    def _settings(self) -> tuple[dict[str, Any], dict[str, Any]]:
        return _settings(self.name, self.preset, self.model, self.training, self._shorthand)

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "trained_")

    # -- training --------------------------------------------------------------------------------

    def _config(self, train: InMemoryJets, hyperparameters: dict[str, Any], settings: dict[str, Any]) -> RunConfig:
        preset = {"preset": self.preset or "paper"} if registry.is_torch_model(self.name) else {}
        model = {"name": self.name, **preset, **hyperparameters}
        return RunConfig(data=train.config, model=ModelConfig(**model), training=TrainingConfig(**settings))

    def fit(
        self,
        X: InMemoryJets | ArrayLike,
        y: InMemoryJets | ArrayLike | None = None,
        sample_weight: ArrayLike | None = None,
        *,
        X_val: ArrayLike | None = None,
        y_val: ArrayLike | None = None,
        w_val: ArrayLike | None = None,
        progress: bool = False,
    ) -> Self:
        """Train on jets from ``load_jets``, ``fit(train, val)``, or on arrays, ``fit(X, y)``.

        Parameters
        ----------
        X : InMemoryJets or array-like of shape (n_events, n_features)
            Unstandardised jets from :func:`load_jets`, or the features of a jet-level model
            (a classical one or ``mlp``).
        y : InMemoryJets or array-like of shape (n_events,), optional
            With jets: the validation split (a network keeps its best epoch on it). With
            arrays: the labels, any values (``classes_`` holds them, sorted).
        sample_weight : array-like of shape (n_events,), optional
            Per-event weights of array input (jets carry theirs, from ``data.weights``).
        X_val, y_val, w_val : array-like, optional
            A validation split of array input: features, labels and weights.
        progress : bool, default False
            Show the trainer's progress bar.

        Returns
        -------
        Classifier
            ``self``, fitted.
        """
        hyperparameters, settings = self._settings()
        train, val, classes, columns = self._training_data(X, y, sample_weight, X_val, y_val, w_val)
        config = self._config(train, hyperparameters, settings)
        check_config(config)
        preprocessing = Preprocessing.fit(train.arrays, config.data, train.class_names)
        if registry.is_torch_model(self.name):
            task = make_task(config, train.class_names, train.arrays.label, train.arrays.weight, train.arrays.observers)
            train_source = InMemorySource(
                InMemoryJets(train.arrays, train.class_names, preprocessing),
                config.training.batch_size,
                True,
                config.training.seed,
            )
            val_source = None
            if val is not None:
                val_source = InMemorySource(
                    InMemoryJets(val.arrays, val.class_names, preprocessing),
                    max(config.training.batch_size, 1024),
                    False,
                    0,
                )
            network, trainer = fit_torch(
                config, task, train_source, val_source, None, progress, preprocessing=preprocessing
            )
            network.eval()
            self.history_ = trainer.history
            self.trained_ = TrainedModel(config, task, preprocessing, network=network)
        else:
            model, record = fit_classical(config, train.arrays, val.arrays if val is not None else None)
            self.history_ = [record]
            self.trained_ = TrainedModel(config, Classification(train.class_names), preprocessing, classical=model)
        self._set_classes(classes, columns, train.class_names)
        if not isinstance(X, InMemoryJets):
            self.n_features_in_ = config.data.inputs[ARRAY_GROUP].size
        return self

    def _training_data(
        self, X: Any, y: Any, sample_weight: Any, X_val: Any, y_val: Any, w_val: Any
    ) -> tuple[InMemoryJets, InMemoryJets | None, np.ndarray, np.ndarray]:
        """The training and validation jets, ``classes_`` and the column order of ``predict_proba``."""
        if isinstance(X, InMemoryJets):
            if y is not None and not isinstance(y, InMemoryJets):
                raise DataError(
                    "fit(train, val): with jets from load_jets the second argument is the validation "
                    "split (InMemoryJets), not labels: the jets carry their labels"
                )
            if any(value is not None for value in (sample_weight, X_val, y_val, w_val)):
                raise DataError(
                    "sample_weight, X_val, y_val and w_val are for array input; jets carry their "
                    "weights (data.weights) and the validation split is fit's second argument"
                )
            for split in (X, y):
                if split is not None and split.config is None:
                    raise DataError("fit: these InMemoryJets carry no data config; read them with heplearn.load_jets")
            if X.config.labels.type != "classification":
                raise ConfigError(
                    f"data.labels.type: {X.config.labels.type!r}; Classifier trains classifiers, train "
                    "other tasks with heplearn.train and apply them with heplearn.TrainedModel"
                )
            classes = np.arange(len(X.class_names))
            return X, y, classes, classes
        return self._array_data(X, y, sample_weight, X_val, y_val, w_val)

    def _array_data(
        self, X: Any, y: Any, sample_weight: Any, X_val: Any, y_val: Any, w_val: Any
    ) -> tuple[InMemoryJets, InMemoryJets | None, np.ndarray, np.ndarray]:
        if not _jet_level(self.name):
            input_keys = registry.model_class(self.name).input_keys
            jet_level = [name for name in registry.model_names() if _jet_level(name)]
            raise ConfigError(
                f"Classifier({self.name!r}) reads {', '.join(input_keys)}: arrays X (events, features) "
                f"hold one feature vector per jet; give jets from heplearn.load_jets, or choose a "
                f"jet-level model ({', '.join(jet_level)})"
            )
        network = registry.is_torch_model(self.name)
        if y is None:
            raise DataError("fit(X, y): labels y are needed with array input")
        features = check_features(X, "X")
        labels = _label_array(y, len(features), "y")
        classes, encoded = np.unique(labels, return_inverse=True)
        if len(classes) < 2:
            raise DataError(f"y: only one class ({classes.tolist()[0]!r}); training needs at least two")
        # heplearn lists the signal first, scikit-learn takes the last class of two as the positive one
        order = np.array([1, 0]) if len(classes) == 2 else np.arange(len(classes))
        columns = np.argsort(order)  # columns[j]: heplearn's label (and column) of classes_[j]
        class_names = [str(value) for value in classes[order]]
        names = check_feature_names(None, features.shape[1], X)
        data = DataConfig(inputs={ARRAY_GROUP: InputGroup(variables=names)}, labels=LabelConfig(classes=class_names))
        dtype = np.float32 if network else np.float64  # networks compute in float32; the classical in float64

        def jets(values: np.ndarray, index: np.ndarray, weights: Any, name: str) -> InMemoryJets:
            arrays = JetArrays(
                {ARRAY_GROUP: values.astype(dtype)},
                None,
                columns[index].astype(np.int64),
                check_weights(weights, len(values), name).astype(dtype),
            )
            return InMemoryJets(arrays, class_names, None, data)

        val = None
        if X_val is not None or y_val is not None:
            if X_val is None or y_val is None:
                raise DataError("X_val and y_val must be given together")
            val_features = check_features(X_val, "X_val", features.shape[1])
            val_labels = _label_array(y_val, len(val_features), "y_val")
            index = np.searchsorted(classes, val_labels).clip(max=len(classes) - 1)
            unseen = classes[index] != val_labels
            if unseen.any():
                raise DataError(
                    f"y_val: label(s) {np.unique(val_labels[unseen])[:5].tolist()} not in y ({classes.tolist()})"
                )
            val = jets(val_features, index, w_val, "w_val")
        elif w_val is not None:
            raise DataError("w_val given without X_val and y_val")
        return jets(features, encoded, sample_weight, "sample_weight"), val, classes, columns

    def _set_classes(self, classes: np.ndarray, columns: np.ndarray, class_names: list[str]) -> None:
        self.classes_ = classes
        self.class_names_ = list(class_names)
        self._columns = columns
        self.__dict__.pop("n_features_in_", None)

    # -- prediction ------------------------------------------------------------------------------

    def _fitted(self) -> TrainedModel:
        if not self.__sklearn_is_fitted__():
            raise NotFittedError(
                f"Classifier({self.name!r}) is not fitted yet: call fit(train, val) or fit(X, y) "
                "first, or Classifier.load(directory)"
            )
        return self.trained_

    def predict_proba(self, X: InMemoryJets | ArrayLike) -> np.ndarray:
        """Class probabilities, shape ``(n_events, n_classes)``, one column per entry of ``classes_``.

        ``X`` is jets from ``load_jets`` (unstandardised, as for ``fit``) or, for a model that
        reads one per-jet group, an array ``(n_events, n_features)`` of that group.
        """
        trained = self._fitted()
        return trained.predict(self._arrays(trained, X))[:, self._columns]

    def predict(self, X: InMemoryJets | ArrayLike) -> np.ndarray:
        """The most probable class of each event, from ``classes_``."""
        probabilities = self.predict_proba(X)
        return self.classes_[probabilities.argmax(axis=1)]

    def _arrays(self, trained: TrainedModel, X: Any) -> JetArrays:
        if isinstance(X, InMemoryJets):
            return X.arrays
        data = trained.config.data
        if trained.network is not None:
            groups = list(trained.preprocessing.groups)
            if len(groups) != 1 or data.inputs[groups[0]].per_particle:
                raise DataError(
                    f"Classifier({self.name!r}) reads the input groups {', '.join(groups)}; an array X "
                    "holds one per-jet group: predict on jets from heplearn.load_jets"
                )
            group = groups[0]
        else:
            group = data.jet_group(self.name)
        features = check_features(X, "X", data.inputs[group].size)
        dtype = np.float32 if trained.network is not None else np.float64
        return JetArrays(
            {group: features.astype(dtype)}, None, np.zeros(len(features), np.int64), np.ones(len(features), dtype)
        )

    # -- persistence -----------------------------------------------------------------------------

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write a run directory that ``heplearn evaluate``/``export`` and ``load`` understand."""
        trained = self._fitted()
        run = RunDirectory(Path(directory))
        run.path.mkdir(parents=True, exist_ok=True)
        run.write_config(trained.config)
        trained.preprocessing.save(run.preprocessing_file)
        if trained.network is not None:
            save_file(model_weights(trained.network), run.weights_file)
        else:
            trained.classical.save(run.classical_model_dir)
        estimator = {
            "classes": self.classes_.tolist(),
            "columns": self._columns.tolist(),
            "n_features_in": getattr(self, "n_features_in_", None),
        }
        run.write_model_info(model_info(trained.config, trained.task, extra={"classifier": estimator}))
        return run.path

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> Classifier:
        """The classifier of a run directory (written by ``save`` or by ``heplearn train``)."""
        trained = TrainedModel.load(directory)
        if not trained.is_classifier:
            raise DataError(
                f"{directory}: holds a {trained.task.kind} model, not a classifier; apply it with "
                "heplearn.TrainedModel.load"
            )
        config = trained.config
        network = registry.is_torch_model(trained.name)
        training = config.training.model_dump(mode="json", exclude_defaults=True) if network else {}
        classifier = cls(
            trained.name,
            config.model.preset if network else None,
            model=config.model.hyperparameters or None,
            training=training or None,
        )
        classifier.trained_ = trained
        classifier.history_ = []
        info = RunDirectory(Path(directory)).read_model_info().get("classifier", {})
        classes = np.arange(len(trained.class_names))
        classifier._set_classes(
            np.asarray(info.get("classes", classes)), np.asarray(info.get("columns", classes)), trained.class_names
        )
        if info.get("n_features_in") is not None:
            classifier.n_features_in_ = int(info["n_features_in"])
        return classifier


def _settings(
    name: str,
    preset: str | None,
    model: Mapping[str, Any] | None,
    training: Mapping[str, Any] | None,
    shorthand: Mapping[str, Any],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The model's hyper-parameters and the trainer's settings, every key checked and in its place."""
    registry.check_name(name)
    where = f"Classifier({name!r})"
    network = registry.is_torch_model(name)
    model_keys = registry.hyperparameter_names(name)
    training_keys = tuple(TrainingConfig.model_fields)
    hyperparameters, settings = _mapping(model, "model", where), _mapping(training, "training", where)
    for key, value in shorthand.items():
        if key in model_keys and key in training_keys:
            raise ConfigError(
                f"{where}: {key!r} is both a hyper-parameter of {name} and a training setting; say "
                f"which: model={{{key!r}: ...}} or training={{{key!r}: ...}}"
            )
        if key not in model_keys and key not in training_keys:
            raise ConfigError(
                f"{where}: {key!r} is neither a hyper-parameter of {name} ({', '.join(model_keys)}) "
                f"nor a training setting (TrainingConfig){_close_match(key, model_keys, training_keys)}"
            )
        section, target = ("model", hyperparameters) if key in model_keys else ("training", settings)
        if key in target:
            raise ConfigError(f"{where}: {key!r} is given twice, as a keyword and in {section}=")
        target[key] = value
    for key in hyperparameters:
        if key not in model_keys:
            hint = "; give preset= as an argument of its own" if key == "preset" else _close_match(key, model_keys)
            raise ConfigError(
                f"{where}: model={{{key!r}: ...}}: {key!r} is not a hyper-parameter of {name}; it "
                f"takes {', '.join(model_keys)}{hint}"
            )
    if not network:
        if settings:
            raise ConfigError(
                f"{where}: {name} is fitted in one pass, without the trainer, so the training "
                f"setting(s) {', '.join(map(repr, settings))} would do nothing; set its own "
                f"hyper-parameters with model= ({', '.join(model_keys)})"
            )
        if preset is not None:
            raise ConfigError(
                f"{where}: preset={preset!r}: {name} has no presets (the networks have); set its "
                "hyper-parameters with model="
            )
        return hyperparameters, settings
    presets = registry.model_class(name).presets
    if preset is not None and preset not in presets:
        raise ConfigError(f"{where}: unknown preset {preset!r}; choose one of {', '.join(sorted(presets))}")
    validate(TrainingConfig, settings, "training")  # an unknown key or a bad value, named
    return hyperparameters, settings


def _jet_level(name: str) -> bool:
    """Whether model ``name`` reads one feature vector per jet only (so that it fits on arrays too)."""
    return not registry.is_torch_model(name) or tuple(registry.model_class(name).input_keys) == (ARRAY_GROUP,)


def _mapping(value: Mapping[str, Any] | None, section: str, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(key, str) for key in value):
        raise ConfigError(f"{where}: {section}= takes a dict of settings by name, got {value!r}")
    return dict(value)


def _close_match(key: str, *choices: tuple[str, ...]) -> str:
    matches = difflib.get_close_matches(key, [choice for group in choices for choice in group], n=1)
    return f"; did you mean {matches[0]!r}?" if matches else ""


def _label_array(y: ArrayLike, n_events: int, name: str) -> np.ndarray:
    labels = np.asarray(y)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise DataError(f"{name}: expected labels of shape (n_events,), got shape {labels.shape}")
    if len(labels) != n_events:
        raise DataError(f"{name}: has {len(labels)} labels for {n_events} events")
    if labels.dtype.kind in "fc" and not np.isfinite(labels).all():
        raise DataError(f"{name}: NaN or inf among the labels")
    kind = type_of_target(labels, input_name=name)
    if kind not in {"binary", "multiclass"}:
        raise DataError(
            f"{name}: {kind} values, not classes; a classifier needs labels such as 0 and 1 "
            "(use a regression task for continuous targets)"
        )
    return labels


def load_jets(files: list[str] | list[Path], config: Any) -> InMemoryJets:
    """The jets of ``files`` as the data config describes them (unstandardised), for ``Classifier``."""
    from heplearn.data.config import load_data_config
    from heplearn.data.in_memory import load_arrays

    data = config if isinstance(config, DataConfig) else load_data_config(config)
    arrays, class_names = load_arrays(files, data)
    return InMemoryJets(arrays, class_names, None, data)
