"""Taking trained models out: ONNX export, prediction over many files, a Triton-compatible service.

- ``export.export_run(run_dir)``: ``run_dir/model.onnx`` (preprocessing + network + softmax), checked
  against PyTorch, optionally laid out in a Triton model repository (``triton.py``).
- ``predict.predict_files(run_dir, files, output_dir)``: per-class scores for ROOT, Parquet or HDF5
  files of any size, in one process or on Dask.
- ``server.serve(sources)``: the KServe v2 HTTP protocol (what ``tritonclient.http`` talks) with
  dynamic batching (``batching.py``) in front of onnxruntime; with ``grpc_port``, Triton's gRPC
  service too (``grpc_service.py``, what ``tritonclient.grpc`` talks), on the same batchers.

The submodules are imported on use, so ``import heplearn.serving`` loads neither torch nor FastAPI nor grpcio.
"""

from heplearn._lazy import lazy_api

__getattr__, __dir__ = lazy_api(
    __name__,
    {
        "heplearn.serving.export": ["export_run", "ExportResult"],
        "heplearn.serving.predict": ["predict_files"],
        "heplearn.serving.server": ["serve", "BackgroundServer"],
    },
)
__all__ = ["BackgroundServer", "ExportResult", "export_run", "predict_files", "serve"]
