"""Jets in and out: the schema, readers and writers (Parquet, ROOT TTree and RNTuple, HDF5), data
configs, datasets and loaders."""
