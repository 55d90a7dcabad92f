"""Templates: the histograms of a score (or any observable) for each sample, the input of every fit.

A ``Template`` is a weighted ``hist.Hist`` (sum of weights and sum of squared weights per bin, the
latter for the Monte-Carlo statistical terms of the fits) with a name. Templates come from

- arrays in memory: ``make_template(values, weights, binning)``;
- files written by ``heplearn predict`` (or any table with the column): ``template_from_files``;
- a trained run applied to labelled jets, one template per class: ``templates_from_run``;

and become densities for the unbinned fits (``histogram_density``, ``kde_density``). Values outside
the binning are not silently lost: the template records them (``overflow``) and a fit refuses data
that fall outside its templates' range.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import hist
import numpy as np
from scipy.stats import gaussian_kde

from heplearn.data.config import expand_files
from heplearn.data.io import open_source
from heplearn.errors import ConfigError, DataError

Density = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Binning:
    """Bin edges of a template: ``bins`` equal bins over ``[low, high]``, or explicit ``edges``."""

    bins: int = 20
    low: float = 0.0
    high: float = 1.0
    edges: tuple[float, ...] | None = None

    def axis(self, label: str = "") -> hist.axis.AxisProtocol:
        """The ``hist`` axis of this binning (no flow bins: out-of-range values are counted apart)."""
        if self.edges is not None:
            edges = np.asarray(self.edges, np.float64)
            if edges.ndim != 1 or len(edges) < 2 or np.any(np.diff(edges) <= 0):
                raise ConfigError(f"template bin edges must increase, got {list(self.edges)}")
            return hist.axis.Variable(edges, label=label, flow=False)
        if self.bins < 1 or not self.high > self.low:
            raise ConfigError(
                f"template binning needs bins ≥ 1 and high > low, got {self.bins} bins over [{self.low}, {self.high}]"
            )
        return hist.axis.Regular(self.bins, self.low, self.high, label=label, flow=False)


def merge_sparse_bins(edges: np.ndarray, samples: Sequence[np.ndarray], min_entries: int = 10) -> np.ndarray:
    """``edges`` with neighbouring bins merged until every sample has ``min_entries`` values in each bin.

    A template bin with no simulated events but data in it makes the likelihood zero (a tagger's
    last score bin often holds no background simulation): merging from low to high values, each
    new bin closes as soon as every sample reaches ``min_entries``; a short remainder joins the last bin.
    """
    edges = np.asarray(edges, np.float64)
    counts = np.array(
        [np.histogram(np.clip(values[~np.isnan(values)], edges[0], edges[-1]), edges)[0] for values in samples]
    )
    if np.any(counts.sum(axis=1) < min_entries):
        raise DataError(
            f"a template sample has fewer than {min_entries} values inside "
            f"[{edges[0]:g}, {edges[-1]:g}]: no binning can hold it"
        )
    merged = [edges[0]]
    running = np.zeros(len(samples))
    for index in range(len(edges) - 1):
        running += counts[:, index]
        if np.all(running >= min_entries):
            merged.append(edges[index + 1])
            running[:] = 0
    if merged[-1] != edges[-1]:
        merged[-1] = edges[-1]  # the remainder joins the last complete bin
    return np.asarray(merged)


@dataclass(frozen=True)
class Template:
    """One sample's histogram of an observable: weighted counts, their variances and the edges."""

    name: str
    histogram: hist.Hist
    entries: int  # unweighted entries inside the binning
    overflow: float = 0.0  # summed weight of the values outside the binning

    @property
    def counts(self) -> np.ndarray:
        """The weighted counts per bin."""
        return np.asarray(self.histogram.values(), np.float64)

    @property
    def variances(self) -> np.ndarray:
        """The variances (Σw²) per bin."""
        return np.asarray(self.histogram.variances(), np.float64)

    @property
    def edges(self) -> np.ndarray:
        """The bin edges."""
        return np.asarray(self.histogram.axes[0].edges, np.float64)

    @property
    def total(self) -> float:
        """The total weighted count."""
        return float(self.counts.sum())

    @property
    def label(self) -> str:
        """The label of the binned observable."""
        return str(self.histogram.axes[0].label)

    def scaled(self, factor: float, name: str | None = None) -> Template:
        """This template times ``factor`` (variances times factor²), e.g. normalised to a yield."""
        histogram = self.histogram * float(factor)
        return Template(name or self.name, histogram, self.entries, self.overflow * factor)

    def probabilities(self) -> np.ndarray:
        """The template normalised to unit sum (bin probabilities)."""
        check_template(self)
        return self.counts / self.total


def make_template(
    values: np.ndarray,
    weights: np.ndarray | None = None,
    binning: Binning = Binning(),
    name: str = "sample",
    label: str = "",
) -> Template:
    """The weighted histogram of ``values``; NaN values (jets failing a run's selection) are dropped."""
    values = np.asarray(values, np.float64).ravel()
    weights = np.ones_like(values) if weights is None else np.asarray(weights, np.float64).ravel()
    if weights.shape != values.shape:
        raise ConfigError(f"template {name!r}: {len(weights)} weights for {len(values)} values")
    keep = ~np.isnan(values)
    values, weights = values[keep], weights[keep]
    axis = binning.axis(label)
    histogram = hist.Hist(axis, storage=hist.storage.Weight())
    inside = (values >= axis.edges[0]) & (values <= axis.edges[-1])
    # the last edge belongs to the last bin (a score of exactly 1 is a top jet, not overflow)
    clipped = np.minimum(values[inside], np.nextafter(axis.edges[-1], -np.inf))
    histogram.fill(clipped, weight=weights[inside])
    return Template(name, histogram, int(inside.sum()), float(weights[~inside].sum()))


def check_template(template: Template, where: str = "") -> None:
    """Refuse a template that cannot enter a fit: empty, negative or non-finite yields."""
    place = f" ({where})" if where else ""
    counts = template.counts
    if not np.all(np.isfinite(counts)):
        raise DataError(f"template {template.name!r}{place} has non-finite bin contents")
    if np.any(counts < 0):
        bins = np.flatnonzero(counts < 0).tolist()
        raise DataError(
            f"template {template.name!r}{place} has negative yields in bins {bins} "
            "(negative weights): merge bins or use positive weights"
        )
    if template.total <= 0:
        raise DataError(
            f"template {template.name!r}{place} is empty: no entries inside "
            f"[{template.edges[0]:g}, {template.edges[-1]:g}]"
        )


def check_same_binning(templates: Sequence[Template], where: str = "") -> None:
    """Every template must share the first one's bin edges."""
    reference = templates[0]
    for template in templates[1:]:
        if len(template.edges) != len(reference.edges) or not np.allclose(template.edges, reference.edges):
            place = f" ({where})" if where else ""
            raise ConfigError(
                f"template {template.name!r}{place} has other binning than {reference.name!r}: "
                f"{len(template.edges) - 1} bins over [{template.edges[0]:g}, {template.edges[-1]:g}] "
                f"against {len(reference.edges) - 1} over [{reference.edges[0]:g}, "
                f"{reference.edges[-1]:g}]; histogram both with the same Binning"
            )


def read_column(
    files: Sequence[str | os.PathLike[str]], column: str, weight: str | None = None, tree: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``column`` (and the optional ``weight`` column) of every entry of ``files`` (globs expanded).

    Made for the outputs of ``heplearn predict`` (``score_<class>`` columns, NaN for jets that
    failed the run's selection) but any flat column of a Parquet, ROOT or HDF5 file works.
    """
    paths = expand_files([str(file) for file in files], "template files")
    values, weights = [], []
    for path in paths:
        source = open_source(path, tree)
        fields = [column] + ([weight] if weight else [])
        table = source.read(fields)
        try:
            values.append(np.asarray(table[column], np.float64))
            weights.append(np.asarray(table[weight], np.float64) if weight else np.ones(len(table)))
        except ValueError as error:  # a jagged column cannot be one value per entry
            raise DataError(f"{path}: column {column!r} is not one number per entry: {error}") from error
    return np.concatenate(values), np.concatenate(weights)


def template_from_files(
    files: Sequence[str | os.PathLike[str]],
    column: str,
    binning: Binning = Binning(),
    name: str = "sample",
    weight: str | None = None,
    tree: str | None = None,
) -> Template:
    """The template of ``column`` in ``files`` (e.g. ``score_top`` of ``heplearn predict`` outputs)."""
    values, weights = read_column(files, column, weight, tree)
    return make_template(values, weights, binning, name, label=column)


def templates_from_run(
    run_dir: str | os.PathLike[str],
    files: Sequence[str | os.PathLike[str]],
    binning: Binning = Binning(),
    observable: str | None = None,
    progress: bool = True,
) -> dict[str, Template]:
    """One template per class: the run's signal score (or an observer) of the labelled jets of ``files``.

    The run is applied in memory (``heplearn.trained_model.TrainedModel``) with its own selection,
    labels and weights; ``observable`` names an observer of the data instead of the score.
    """
    values, labels, weights, class_names, label = run_observable(run_dir, files, observable, progress)
    return {
        name: make_template(values[labels == index], weights[labels == index], binning, name, label)
        for index, name in enumerate(class_names)
    }


def run_observable(
    run_dir: str | os.PathLike[str],
    files: Sequence[str | os.PathLike[str]],
    observable: str | None = None,
    progress: bool = True,
    labelled: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str], str]:
    """The run's signal score (or ``observable``) per jet of ``files``, with labels, weights, classes, axis label.

    A summary statistic (an INFERNO run, ``heplearn.methods.inferno``) gives each jet its bin, the
    argmax of the network, as (bin + ½) / bins in [0, 1]: any binning of [0, 1] with a multiple of
    ``bins`` bins reproduces its bins (the empty ones between are merged by the fit).
    ``labelled=False`` reads files without the run's label fields (data): their labels are all 0.
    """
    from heplearn.data.config import LabelConfig
    from heplearn.data.in_memory import load_arrays
    from heplearn.evaluation.scoring import data_files, evaluation_data_config, load_run, predict, signal_score

    model = load_run(run_dir, kinds=("summary_statistic",))
    paths = data_files(files)
    data = evaluation_data_config(model, paths)
    if observable is not None and observable not in data.observers:
        data = data.model_copy(update={"observers": [*data.observers, observable]})
    if not labelled:
        data = data.model_copy(update={"labels": LabelConfig(type="none")})
    arrays, _ = load_arrays(paths, data)
    if observable is not None:
        values, label = np.asarray(arrays.observers[observable], np.float64), observable
    elif model.task.kind == "summary_statistic":
        outputs = predict(model, arrays, progress)
        values, label = (outputs.argmax(1) + 0.5) / outputs.shape[1], "Summary-statistic bin"
    else:
        values, label = signal_score(predict(model, arrays, progress), model.class_names)
    labels = np.asarray(arrays.label) if labelled else np.zeros(len(values), np.int64)
    return values, labels, np.asarray(arrays.weight, np.float64), model.class_names, label


def has_fields(files: Sequence[str | os.PathLike[str]], fields: Sequence[str], tree: str | None = None) -> bool:
    """Whether every file (globs expanded) holds every one of ``fields``."""
    paths = expand_files([str(file) for file in files], "files")
    return all(set(fields) <= set(open_source(path, tree).field_names()) for path in paths)


def histogram_density(template: Template) -> Density:
    """The template as a piecewise-constant probability density (unit integral over its range)."""
    check_template(template)
    edges = template.edges
    density = template.probabilities() / np.diff(edges)

    def evaluate(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float64)
        index = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, len(density) - 1)
        inside = (x >= edges[0]) & (x <= edges[-1])
        return np.where(inside, density[index], 0.0)

    return evaluate


def kde_density(
    values: np.ndarray,
    weights: np.ndarray | None = None,
    bandwidth: str | float = "scott",
    bounds: tuple[float, float] | None = None,
) -> Density:
    """A Gaussian kernel density estimate (scipy) of a sample, renormalised inside ``bounds``.

    With bounds (a score in [0, 1]) the kernels' mass that leaks out of the range is put back by
    reflection at both edges, so the density stays unbiased near them (Silverman 1986, §2.10).
    """
    values = np.asarray(values, np.float64).ravel()
    keep = ~np.isnan(values)
    values = values[keep]
    weights = None if weights is None else np.asarray(weights, np.float64).ravel()[keep]
    if len(values) < 2:
        raise DataError(f"a kernel density needs at least 2 values, got {len(values)}")
    kde = gaussian_kde(values, bw_method=bandwidth, weights=weights)
    if bounds is None:
        return lambda x: kde(np.asarray(x, np.float64))
    low, high = bounds

    def evaluate(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float64)
        reflected = kde(x) + kde(2 * low - x) + kde(2 * high - x)
        return np.where((x >= low) & (x <= high), reflected, 0.0)

    return evaluate
