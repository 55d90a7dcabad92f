"""Jets in and out: the schema, readers and writers (Parquet, ROOT TTree and RNTuple, HDF5), data
configs, datasets and loaders.

    from heplearn.data import read, load_data_config, InMemoryJets
    jets = read("data/top_qcd/test.parquet")                     # an awkward array
    config = load_data_config("configs/top_qcd_data.yaml")
    test = InMemoryJets.from_files(["data/top_qcd/test.parquet"], config, preprocessing=None)

Names are imported on first use (``heplearn._lazy``).
"""

from __future__ import annotations

from heplearn._lazy import lazy_api

__getattr__, __dir__ = lazy_api(
    __name__,
    {
        "heplearn.data.io": ["read", "write", "open_source", "detect_format"],
        "heplearn.data.config": ["DataConfig", "load_data_config"],
        "heplearn.data.inspect": ["inspect_file", "FileSummary"],
        "heplearn.data.in_memory": ["InMemoryJets", "load_arrays"],
        "heplearn.data.stream_loader": ["StreamLoader", "stream_loader"],
    },
)
__all__ = [
    "DataConfig",
    "FileSummary",
    "InMemoryJets",
    "StreamLoader",
    "detect_format",
    "inspect_file",
    "load_arrays",
    "load_data_config",
    "open_source",
    "read",
    "stream_loader",
    "write",
]
