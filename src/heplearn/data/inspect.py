"""What is in a file: format, table, fields and types, entries, particle multiplicities, classes."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import awkward as ak
import numpy as np

from heplearn.data.io import FieldInfo, detect_format, open_source
from heplearn.data.schema import LABEL_PREFIX, PARTICLE_PREFIX

READ_CHUNK = 100_000


@dataclass
class FileSummary:
    """What ``heplearn inspect`` reports of one file."""

    path: str
    format: str
    table: str
    entries: int
    fields: list[FieldInfo]
    particles_per_jet: dict[str, float] = field(default_factory=dict)  # min, median, max, mean
    class_counts: dict[str, int] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    table_kind: str = ""  # "TTree" or "RNTuple" for a ROOT file


def inspect_file(path: str | os.PathLike[str], tree: str | None = None) -> FileSummary:
    """Summarise ``path``: its format and table, fields, entries, particles per jet and class counts."""
    kind = detect_format(path)
    source = open_source(path, tree)
    fields = source.fields()
    names = [f.name for f in fields]
    labels = [name for name in names if name.startswith(LABEL_PREFIX)]
    jagged = next((f.name for f in fields if f.jagged and f.name.startswith(PARTICLE_PREFIX)), None)
    counter = "jet_nparticles" if "jet_nparticles" in names else jagged
    counts: list[np.ndarray] = []
    class_counts = dict.fromkeys(labels, 0)
    wanted = [*labels, *([counter] if counter else [])]
    if wanted:
        for start in range(0, source.num_entries, READ_CHUNK):
            chunk = source.read(wanted, start, start + READ_CHUNK)
            for label in labels:
                class_counts[label] += int(ak.sum(chunk[label]))
            if counter:
                column = chunk[counter]
                counts.append(ak.to_numpy(ak.num(column, axis=1) if column.ndim == 2 else column))
    multiplicity: dict[str, float] = {}
    if counts and source.num_entries:
        values = np.concatenate(counts)
        multiplicity = {
            "min": float(values.min()),
            "median": float(np.median(values)),
            "max": float(values.max()),
            "mean": float(values.mean()),
        }
    return FileSummary(
        str(path),
        kind,
        source.table_name,
        source.num_entries,
        fields,
        multiplicity,
        {label.removeprefix(LABEL_PREFIX): count for label, count in class_counts.items()},
        source.provenance(),
        source.table_kind,
    )
