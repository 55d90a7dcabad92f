"""``heplearn export``, ``predict`` and ``serve``: the command line of deployment (it only parses and calls).

    heplearn export runs/part-1 --triton-repository triton/
    heplearn predict runs/part-1 data/*.root -o scores/ --workers 4
    heplearn serve runs/ --port 8000 --grpc-port 8001

Register with ``app.command("export")(export_command)``, and the same for ``predict`` and ``serve``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from heplearn.serving.batching import DEFAULT_MAX_BATCH_SIZE, DEFAULT_QUEUE_DELAY_MS
from heplearn.serving.protocol import (
    DEFAULT_BODY_TIMEOUT_S,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_JETS_PER_REQUEST,
    DEFAULT_MAX_REQUEST_BYTES,
)


def export_command(
    run: Annotated[Path, typer.Argument(help="The run directory to export.", show_default=False)],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="ONNX file (default: RUN/model.onnx).")] = None,
    triton_repository: Annotated[
        Path | None, typer.Option(help="Also lay the model out in this Triton model repository.")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Model name in the Triton repository (default: the run's).")] = None,
    check_files: Annotated[
        list[Path] | None,
        typer.Option(
            "--check-files", help="Jets to check onnxruntime against PyTorch on (default: the run's test split)."
        ),
    ] = None,
    max_batch_size: Annotated[int, typer.Option(help="Triton max_batch_size.")] = 1024,
    time_engines: Annotated[
        bool,
        typer.Option(
            "--time-engines/--no-time-engines",
            help="Time onnxruntime and PyTorch on this machine and record the faster engine per batch size "
            "(predict and serve run it).",
        ),
    ] = True,
    quantize: Annotated[
        str | None,
        typer.Option(
            help="Post-training quantisation: int8 (onnxruntime dynamic int8; checked, AUC change reported). "
            "Off unless given.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Export a run to ONNX with its preprocessing, and check onnxruntime against PyTorch."""
    from heplearn.serving.engine_choice import TIMING_SECONDS
    from heplearn.serving.export import export_run

    result = export_run(
        run,
        output,
        triton_repository,
        check_files,
        triton_name=name,
        max_batch_size=max_batch_size,
        timing_seconds=TIMING_SECONDS if time_engines else 0.0,
        quantize=quantize,
    )
    inputs = ", ".join(f"{spec.name} {list(spec.shape)} {spec.datatype}" for spec in result.inputs)
    typer.echo(f"onnx: {result.onnx_path} (inputs: {inputs}; output: {result.outputs[0].name})")
    typer.echo(
        f"check: onnxruntime agrees with PyTorch to {result.max_difference:.2g} "
        f"(max |Δp|) on {result.checked_jets} jets"
    )
    if result.quantization is not None:
        quantized = result.quantization
        auc = (
            ""
            if quantized.auc_change is None
            else f"; AUC {quantized.auc_float:.5f} -> {quantized.auc_quantized:.5f} ({quantized.auc_change:+.5f})"
        )
        typer.echo(f"quantization: {quantized.kind}, agrees with PyTorch to {quantized.max_difference:.2g}{auc}")
    if result.engine_choice is not None:
        typer.echo(f"faster engine on this machine: {result.engine_choice.describe()}")
    if result.triton_model is not None:
        typer.echo(f"triton: {result.triton_model}")


def predict_command(
    run: Annotated[Path, typer.Argument(help="The run directory.", show_default=False)],
    files: Annotated[list[Path], typer.Argument(help="ROOT, Parquet or HDF5 files.", show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output directory.", show_default=False)],
    engine: Annotated[
        str,
        typer.Option(
            help="auto (the faster engine recorded by export on its machine), onnx (the exported model) or torch."
        ),
    ] = "auto",
    workers: Annotated[int, typer.Option(help="Dask LocalCluster worker processes (0: this process).")] = 0,
    dask: Annotated[str | None, typer.Option("--dask", help="Dask scheduler address, e.g. tcp://host:8786.")] = None,
    output_format: Annotated[
        str | None, typer.Option("--format", help="parquet or root (default: root for ROOT inputs, else parquet).")
    ] = None,
    chunk_size: Annotated[int | None, typer.Option(help="Entries per chunk (default: the run's).")] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show progress bars.")] = True,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace outputs made by another run, model or input (else refused).")
    ] = False,
) -> None:
    """Score every entry of FILES with the run's model: one output file per input in OUTPUT.

    An output already there is kept if this run made it from this input, else refused unless --overwrite."""
    from heplearn.serving.predict import predict_files

    outputs = predict_files(
        run,
        files,
        output,
        engine,
        workers,
        dask,
        output_format=output_format,
        chunk_size=chunk_size,
        progress=progress,
        overwrite=overwrite,
    )
    for path in outputs:
        typer.echo(str(path))


def serve_command(
    sources: Annotated[
        list[Path],
        typer.Argument(help="Exported runs, a directory of runs, or a Triton model repository.", show_default=False),
    ],
    host: Annotated[str, typer.Option(help="Address to bind (127.0.0.1: this machine only).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="HTTP port.")] = 8000,
    grpc_port: Annotated[
        int | None,
        typer.Option(
            help="Also serve Triton's gRPC protocol on this port (Triton uses 8001; needs grpcio and "
            "tritonclient[grpc]). Off unless given.",
            show_default=False,
        ),
    ] = None,
    max_batch_size: Annotated[int, typer.Option(help="Most jets per dynamic batch.")] = DEFAULT_MAX_BATCH_SIZE,
    max_queue_delay_ms: Annotated[
        float, typer.Option(help="Longest wait for a batch to fill (ms).")
    ] = DEFAULT_QUEUE_DELAY_MS,
    max_request_bytes: Annotated[
        int, typer.Option(help="Largest request body accepted (bytes).")
    ] = DEFAULT_MAX_REQUEST_BYTES,
    max_jets_per_request: Annotated[
        int, typer.Option(help="Most jets in one request (more: 400).")
    ] = DEFAULT_MAX_JETS_PER_REQUEST,
    max_particles: Annotated[
        int | None,
        typer.Option(
            help="Most particles per jet (more: 400); default: each run's particle length.", show_default=False
        ),
    ] = None,
    body_timeout: Annotated[
        float, typer.Option(help="Seconds a request body may take to arrive (more: 408).")
    ] = DEFAULT_BODY_TIMEOUT_S,
    max_connections: Annotated[int, typer.Option(help="Concurrent connections (more: 503).")] = DEFAULT_MAX_CONNECTIONS,
    engine: Annotated[
        str,
        typer.Option(
            help="auto (per batch size, the faster engine recorded by export; torch needs the run's weights), "
            "onnx or torch."
        ),
    ] = "auto",
) -> None:
    """Serve models with the KServe v2 protocol over HTTP (and gRPC) until Ctrl-C: Triton clients work."""
    from heplearn.optional import require_extra

    # FastAPI, uvicorn, onnx, onnxruntime: checked before their import
    require_extra("serve", "the inference server (heplearn serve)")
    from heplearn.serving.server import serve

    serve(
        sources,
        host,
        port,
        max_batch_size,
        max_queue_delay_ms,
        max_request_bytes,
        grpc_port=grpc_port,
        max_jets_per_request=max_jets_per_request,
        max_particles=max_particles,
        body_timeout=body_timeout,
        max_connections=max_connections,
        engine=engine,
    )
