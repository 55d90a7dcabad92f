"""Read and write jet files: Parquet, ROOT and HDF5, all as awkward arrays in one schema.

``open_source(path)`` detects the format from the file's first bytes and returns a ``Source``
that knows the file's fields, its entry count and its natural chunks (Parquet row groups, the
clusters of a ROOT TTree or RNTuple, HDF5 slices), and reads any entry range of any fields. The
public Top Tagging HDF5 layout (a pandas table of ``E_i, PX_i, PY_i, PZ_i`` columns) is read into
the JetClass schema on the fly (see ``toptagging.py``).

Every problem with a file raises ``DataError`` naming the file (and the field).
"""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import awkward as ak
import h5py
import numpy as np
import pyarrow.parquet as pq
import uproot
from typing_extensions import override

from heplearn.data.files import atomic_path
from heplearn.data.schema import DEFAULT_TREE, PARTICLE_PREFIX
from heplearn.errors import DataError

PARQUET_MAGIC = b"PAR1"
ROOT_MAGIC = b"root"
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
PROVENANCE_KEY = "heplearn_provenance"
FORMATS = ("parquet", "root", "hdf5")


@dataclass(frozen=True)
class FieldInfo:
    """One field of a file: its name, its awkward type, and whether it is jagged (per particle)."""

    name: str
    type: str  # e.g. "float32" or "var * float32"
    jagged: bool


class Source(ABC):
    """One readable file: its fields, entries and chunks."""

    format_name: str = ""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._field_names: list[str] | None = None

    @property
    @abstractmethod
    def num_entries(self) -> int:
        """The number of entries (jets or events) in the file's table."""

    @abstractmethod
    def fields(self) -> list[FieldInfo]:
        """The file's fields with their types, in the file's order."""

    @abstractmethod
    def _read(self, fields: list[str], start: int, stop: int) -> ak.Array: ...

    def chunk_boundaries(self) -> list[int]:
        """Entry numbers where the file's natural storage units begin (and its end)."""
        return [0, self.num_entries]

    def provenance(self) -> dict[str, Any]:
        """The provenance heplearn wrote into the file (generator settings, seed, version), or {}."""
        return {}

    @property
    def table_name(self) -> str:
        """The name of the table read in a file that holds several (a ROOT TTree or RNTuple), else ""."""
        return ""

    @property
    def table_kind(self) -> str:
        """What kind of table ``table_name`` is ("TTree" or "RNTuple" in a ROOT file), else ""."""
        return ""

    def field_names(self) -> list[str]:
        """The names of ``fields()``, listed once per source (every ``read`` checks against them)."""
        if self._field_names is None:
            self._field_names = [field.name for field in self.fields()]
        return list(self._field_names)

    def read(self, fields: list[str] | None = None, start: int = 0, stop: int | None = None) -> ak.Array:
        """Entries ``[start, stop)`` of ``fields`` (all fields if None) as a record array."""
        available = self.field_names()
        wanted = available if fields is None else list(dict.fromkeys(fields))
        missing = [name for name in wanted if name not in available]
        if missing:
            raise DataError(
                f"{self.path}: no field {', '.join(repr(m) for m in missing)} (the file has: {', '.join(available)})"
            )
        stop = self.num_entries if stop is None else min(stop, self.num_entries)
        start = max(0, start)
        try:
            return self._read(wanted, start, stop)
        except DataError:
            raise
        except Exception as error:  # a file that opened but whose data is damaged
            raise DataError(
                f"{self.path}: cannot read entries {start}-{stop} of "
                f"{self.format_name}: {type(error).__name__}: {error}"
            ) from error


# ----------------------------------------------------------------------------- Parquet
class ParquetSource(Source):
    """A Parquet file; its row groups are its storage units."""

    format_name = "Parquet"

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._file = pq.ParquetFile(path)
        metadata = self._file.metadata
        sizes = [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]
        self._row_group_starts = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)])

    @property
    @override
    def num_entries(self) -> int:
        return int(self._file.metadata.num_rows)

    @override
    def fields(self) -> list[FieldInfo]:
        form = ak.from_arrow_schema(self._file.schema_arrow)
        return [_field_info(name, str(ak.types.ArrayType(form.content(name).type, 0).content)) for name in form.fields]

    @override
    def chunk_boundaries(self) -> list[int]:
        return [int(x) for x in self._row_group_starts]

    @override
    def provenance(self) -> dict[str, Any]:
        metadata = self._file.schema_arrow.metadata or {}
        raw = metadata.get(PROVENANCE_KEY.encode())
        return json.loads(raw) if raw else {}

    def _read(self, fields: list[str], start: int, stop: int) -> ak.Array:
        starts = self._row_group_starts
        first = int(np.searchsorted(starts, start, side="right") - 1)
        last = int(np.searchsorted(starts, stop, side="left"))
        groups = list(range(max(first, 0), max(last, first + 1)))
        groups = [g for g in groups if g < len(starts) - 1]
        if not groups:
            return ak.Array({name: np.empty(0) for name in fields})[0:0]
        table = self._file.read_row_groups(groups, columns=fields)
        offset = int(starts[groups[0]])
        array = ak.from_arrow(table, generate_bitmasks=False)
        return array[start - offset : stop - offset]


# ----------------------------------------------------------------------------- ROOT
# uproot's class names of the two ROOT tables heplearn reads: the classic TTree, and the RNTuple
# that uproot >= 5.7 writes when a dict is assigned (``file["tree"] = {...}``) and that ROOT 7
# makes its default.
ROOT_TABLE_KINDS = {"TTree": "TTree", "ROOT::RNTuple": "RNTuple"}


def root_tables(file: Any) -> dict[str, str]:
    """The tables of an open uproot file: ``{name: "TTree" | "RNTuple"}``, in the file's order."""
    return {
        key.split(";")[0]: ROOT_TABLE_KINDS[cls] for key, cls in file.classnames().items() if cls in ROOT_TABLE_KINDS
    }


def _choose_table(path: Path, tables: dict[str, str], tree: str | None) -> str:
    """The table to read: ``tree`` if given, else ``DEFAULT_TREE``, else the only table there is."""
    name = tree or (DEFAULT_TREE if DEFAULT_TREE in tables else (next(iter(tables)) if len(tables) == 1 else None))
    if name is None or name not in tables:
        held = [
            f"{kind}s: {', '.join(n for n, k in tables.items() if k == kind)}"
            for kind in ROOT_TABLE_KINDS.values()
            if kind in tables.values()
        ]
        raise DataError(
            f"{path}: no TTree or RNTuple {tree or DEFAULT_TREE!r} "
            f"(the file has {'; '.join(held) or 'no TTree and no RNTuple'}); choose one with `treename`"
        )
    return name


class RootSource(Source):
    """A TTree or an RNTuple of a ROOT file; ``open_root`` picks the class for the table it finds."""

    format_name = "ROOT"
    kind = ""

    def __init__(self, path: Path, file: Any, name: str) -> None:
        super().__init__(path)
        self._file = file
        self._tree_name = name
        self._tree = file[name]

    @property
    @override
    def table_name(self) -> str:
        return self._tree_name

    @property
    @override
    def table_kind(self) -> str:
        return self.kind

    @property
    @override
    def num_entries(self) -> int:
        return int(self._tree.num_entries)

    @override
    def provenance(self) -> dict[str, Any]:
        try:
            if PROVENANCE_KEY in self._file:
                return json.loads(str(self._file[PROVENANCE_KEY]))
        except Exception as error:  # a damaged file: uproot raises OSError and others
            raise DataError(
                f"{self.path}: cannot read its provenance (truncated or corrupt?): {type(error).__name__}: {error}"
            ) from error
        return {}

    def _read(self, fields: list[str], start: int, stop: int) -> ak.Array:
        return self._tree.arrays(fields, entry_start=start, entry_stop=stop, library="ak")


class TTreeSource(RootSource):
    """A TTree: its branches (less the counters uproot adds for jagged ones), its clusters."""

    kind = "TTree"

    def __init__(self, path: Path, file: Any, name: str) -> None:
        super().__init__(path, file, name)
        counters = {branch.count_leaf.member("fName") for branch in self._tree.values() if branch.count_leaf}
        branches = list(self._tree.keys())
        self._branches = [b for b in branches if b not in counters or b.startswith("jet_")]

    @override
    def fields(self) -> list[FieldInfo]:
        return [
            _field_info(
                name,
                str(self._tree[name].interpretation.numpy_dtype)
                if not _is_jagged_branch(self._tree[name])
                else f"var * {self._tree[name].interpretation.content.numpy_dtype}",
            )
            for name in self._branches
        ]

    @override
    def chunk_boundaries(self) -> list[int]:
        return sorted({0, self.num_entries, *(int(x) for x in self._tree.common_entry_offsets())})


class RNTupleSource(RootSource):
    """An RNTuple: its top-level fields; its clusters are the storage units pieces do not cross."""

    format_name = "ROOT RNTuple"
    kind = "RNTuple"

    @override
    def fields(self) -> list[FieldInfo]:
        form, _ = self._tree.to_akform()
        return [_field_info(name, str(ak.types.ArrayType(form.content(name).type, 0).content)) for name in form.fields]

    @override
    def chunk_boundaries(self) -> list[int]:
        firsts = (int(cluster.num_first_entry) for cluster in self._tree.cluster_summaries)
        return sorted({0, self.num_entries, *firsts})


def open_root(path: Path, tree: str | None = None) -> RootSource:
    """The TTree or RNTuple ``tree`` of a ROOT file (by default ``DEFAULT_TREE``, or its only table)."""
    file = uproot.open(path)
    tables = root_tables(file)
    name = _choose_table(path, tables, tree)
    source_class = TTreeSource if tables[name] == TTreeSource.kind else RNTupleSource
    return source_class(path, file, name)


def _is_jagged_branch(branch: Any) -> bool:
    return isinstance(branch.interpretation, uproot.interpretation.jagged.AsJagged)


# ----------------------------------------------------------------------------- HDF5
class Hdf5Source(Source):
    """heplearn's HDF5 layout: one dataset per field, entries along axis 0.

    A 1-D dataset is a per-jet field; a 2-D dataset ``(jets, slots)`` is a zero-padded
    per-particle field, cut to each jet's length by ``jet_nparticles`` (or ``part_mask``).
    """

    format_name = "HDF5"

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._file = h5py.File(path, "r")
        self._datasets = {name: obj for name, obj in self._file.items() if isinstance(obj, h5py.Dataset)}
        lengths = {obj.shape[0] if obj.shape else 0 for obj in self._datasets.values()}
        if len(lengths) > 1:
            sizes = ", ".join(f"{name}: {obj.shape[0]}" for name, obj in self._datasets.items())
            raise DataError(f"{path}: datasets have different lengths ({sizes})")
        self._entries = lengths.pop() if lengths else 0

    @property
    @override
    def num_entries(self) -> int:
        return self._entries

    @override
    def fields(self) -> list[FieldInfo]:
        infos = []
        for name, obj in self._datasets.items():
            if name == "part_mask":
                continue
            jagged = obj.ndim == 2 and (name.startswith(PARTICLE_PREFIX) or self._count_of(name) is not None)
            infos.append(FieldInfo(name, f"var * {obj.dtype}" if jagged else str(obj.dtype), jagged))
        return infos

    @override
    def provenance(self) -> dict[str, Any]:
        try:
            raw = self._file.attrs.get(PROVENANCE_KEY)
            return json.loads(raw) if raw is not None else {}
        except Exception as error:  # a damaged file
            raise DataError(
                f"{self.path}: cannot read its provenance (truncated or corrupt?): {type(error).__name__}: {error}"
            ) from error

    def _counts(self, start: int, stop: int) -> np.ndarray | None:
        if "jet_nparticles" in self._datasets:
            return self._datasets["jet_nparticles"][start:stop].astype(np.int64)
        if "part_mask" in self._datasets:
            return self._datasets["part_mask"][start:stop].astype(bool).sum(axis=1)
        return None

    def _count_of(self, name: str) -> str | None:
        """The per-entry count dataset of a padded non-particle list (``sv_mass`` → ``sv_n``), if any."""
        count = f"{name.split('_', 1)[0]}_n"
        return count if "_" in name and count != name and count in self._datasets else None

    def _read(self, fields: list[str], start: int, stop: int) -> ak.Array:
        counts = None
        columns: dict[str, Any] = {}
        for name in fields:
            values = self._datasets[name][start:stop]
            count_name = None if name.startswith(PARTICLE_PREFIX) else self._count_of(name)
            if values.ndim == 2 and count_name is not None:
                own = self._datasets[count_name][start:stop].astype(np.int64)
                keep = np.arange(values.shape[1])[None, :] < own[:, None]
                columns[name] = ak.unflatten(values[keep], np.minimum(own, values.shape[1]))
            elif values.ndim == 2 and name.startswith(PARTICLE_PREFIX):
                if counts is None:
                    counts = self._counts(start, stop)
                if counts is None:
                    columns[name] = ak.from_regular(values)
                else:
                    keep = np.arange(values.shape[1])[None, :] < counts[:, None]
                    columns[name] = ak.unflatten(values[keep], np.minimum(counts, values.shape[1]))
            else:
                columns[name] = values
        return ak.zip(columns, depth_limit=1) if columns else ak.Array([{}] * (stop - start))


# ----------------------------------------------------------------------------- dispatch
def detect_format(path: str | os.PathLike[str]) -> str:
    """'parquet', 'root', 'hdf5' or 'toptagging', from the file's first bytes."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if path.is_dir():
        raise DataError(f"{path}: is a directory, expected a file")
    with path.open("rb") as stream:
        head = stream.read(8)
    if not head:
        raise DataError(f"{path}: the file is empty (0 bytes)")
    if head.startswith(PARQUET_MAGIC):
        return "parquet"
    if head.startswith(ROOT_MAGIC):
        return "root"
    if head == HDF5_MAGIC:
        from heplearn.data import toptagging

        return "toptagging" if toptagging.is_toptagging_file(path) else "hdf5"
    raise DataError(f"{path}: unknown file format (first bytes {head!r}); heplearn reads Parquet, ROOT and HDF5")


def open_source(path: str | os.PathLike[str], tree: str | None = None) -> Source:
    """Open ``path`` for reading; every failure is a ``DataError`` naming the file."""
    path = Path(path)
    kind = detect_format(path)
    try:
        if kind == "parquet":
            return ParquetSource(path)
        if kind == "root":
            return open_root(path, tree)
        if kind == "toptagging":
            from heplearn.data.toptagging import TopTaggingSource

            return TopTaggingSource(path)
        return Hdf5Source(path)
    except DataError:
        raise
    except Exception as error:
        raise DataError(
            f"{path}: cannot open as {kind} (truncated or corrupt?): {type(error).__name__}: {error}"
        ) from error


def read(
    path: str | os.PathLike[str],
    fields: list[str] | None = None,
    start: int = 0,
    stop: int | None = None,
    tree: str | None = None,
) -> ak.Array:
    """Read ``fields`` of entries ``[start, stop)`` of one file as an awkward record array."""
    return open_source(path, tree).read(fields, start, stop)


def _field_info(name: str, type_string: str) -> FieldInfo:
    type_string = type_string.replace("?", "")
    return FieldInfo(name, type_string, type_string.startswith("var"))


# ----------------------------------------------------------------------------- writers
def format_from_suffix(path: str | os.PathLike[str]) -> str:
    """The output format a file name asks for: 'parquet', 'root' or 'hdf5', from its suffix."""
    suffix = Path(path).suffix.lower()
    formats = {".parquet": "parquet", ".pq": "parquet", ".root": "root", ".h5": "hdf5", ".hdf5": "hdf5"}
    if suffix not in formats:
        raise DataError(f"{path}: cannot tell the output format from {suffix!r}; use .parquet, .root or .h5")
    return formats[suffix]


def write(
    array: ak.Array,
    path: str | os.PathLike[str],
    provenance: dict[str, Any] | None = None,
    tree: str = DEFAULT_TREE,
    row_group_size: int = 10_000,
) -> Path:
    """Write a record array atomically; the format follows the suffix (.parquet, .root, .h5).

    ``row_group_size`` entries make a Parquet row group or a ROOT cluster (one basket per branch).
    """
    path = Path(path)
    kind = format_from_suffix(path)
    provenance_json = json.dumps(provenance or {}, sort_keys=True, default=str)
    with atomic_path(path) as temporary:
        if kind == "parquet":
            _write_parquet(array, temporary, provenance_json, row_group_size)
        elif kind == "root":
            _write_root(array, temporary, provenance_json, tree, row_group_size)
        else:
            _write_hdf5(array, temporary, provenance_json)
    return path


def _write_parquet(array: ak.Array, path: Path, provenance_json: str, row_group_size: int) -> None:
    table = ak.to_arrow_table(array, extensionarray=False)
    metadata = dict(table.schema.metadata or {})
    metadata[PROVENANCE_KEY.encode()] = provenance_json.encode()
    # no dictionary pages: the columns are floats, nearly all distinct, and building a dictionary before
    # falling back cost 5× the rest of the write (74 against 13 ms for 5000 jets) and gave a larger file
    pq.write_table(
        table.replace_schema_metadata(metadata),
        path,
        row_group_size=row_group_size,
        compression="zstd",
        use_dictionary=False,
    )


def jagged_groups(array: ak.Array) -> dict[str, list[str]]:
    """The jagged fields of a record array grouped by their prefix (``part_px`` → ``part``, ``sv_mass`` → ``sv``).

    Each group is one list per entry (particles, secondary vertices): a ROOT TTree stores it as one
    branch group with one counter, an HDF5 file as zero-padded datasets cut by ``<prefix>_n``.
    """
    groups: dict[str, list[str]] = {}
    for name in array.fields:
        if array[name].ndim == 2:
            prefix = name.split("_", 1)[0] if "_" in name else name
            groups.setdefault(prefix, []).append(name)
    return groups


def _write_root(array: ak.Array, path: Path, provenance_json: str, tree: str, cluster_size: int) -> None:
    groups = jagged_groups(array)
    jagged = {name for names in groups.values() for name in names}
    branches: dict[str, Any] = {name: ak.to_numpy(array[name]) for name in array.fields if name not in jagged}
    for prefix, names in groups.items():
        # One record of jagged fields shares one counter; uproot names the branches <prefix>_<field>
        # and the counter n<prefix> (part_* → npart, sv_* → nsv).
        try:
            branches[prefix] = ak.zip({name.removeprefix(f"{prefix}_"): array[name] for name in names})
        except ValueError as error:
            raise DataError(
                f"{path.name}: the jagged fields {', '.join(names)} do not have the same length in "
                "every entry, so they cannot share one ROOT counter"
            ) from error
    with uproot.recreate(path) as output:
        # mktree writes a classic TTree (plain assignment would write an RNTuple).
        types = {name: (value.type if isinstance(value, ak.Array) else value.dtype) for name, value in branches.items()}
        output_tree = output.mktree(tree, types)
        # One basket per branch and extend: clusters of ``cluster_size`` entries, like Parquet row
        # groups. A reader of a few entries decompresses the baskets that hold them, so a
        # whole-file basket would be decompressed again for every chunk read.
        for start in range(0, len(array), cluster_size):
            output_tree.extend({name: value[start : start + cluster_size] for name, value in branches.items()})
        output[PROVENANCE_KEY] = provenance_json


def _write_hdf5(array: ak.Array, path: Path, provenance_json: str) -> None:
    with h5py.File(path, "w") as output:
        output.attrs[PROVENANCE_KEY] = provenance_json
        counts = None
        prefix_of = {name: prefix for prefix, names in jagged_groups(array).items() for name in names}
        for name in array.fields:
            column = array[name]
            if column.ndim == 2:
                own = ak.to_numpy(ak.num(column))
                count_name = f"{prefix_of[name]}_n"
                if prefix_of[name] == PARTICLE_PREFIX.rstrip("_"):
                    counts = own if counts is None else counts
                    own = counts
                elif count_name not in array.fields and count_name not in output:
                    output.create_dataset(count_name, data=own)  # other lists (sv_*) carry their own count
                width = int(own.max()) if len(own) else 0
                padded = ak.to_numpy(ak.fill_none(ak.pad_none(column, width, clip=True), 0))
                output.create_dataset(name, data=padded, compression="gzip", compression_opts=4)
            else:
                output.create_dataset(name, data=ak.to_numpy(column), compression="gzip", compression_opts=4)
        if counts is not None and "jet_nparticles" not in array.fields:
            output.create_dataset("jet_nparticles", data=counts)
