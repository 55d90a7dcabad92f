"""Jets per second of the exported ONNX model in onnxruntime versus PyTorch eager, same weights, same jets.

ParticleNet (paper preset) and ParT (paper and lite presets), 7 particle features, 128 particle
slots (about 50 real particles per jet, as in JetClass), at batch sizes 1, 32 (one call of
heplearn's engines), 64 and 1024. The first line describes the machine (``machine.py``: CPU,
AVX-512/AMX flags, cores, library versions, threads): whether ONNX wins depends on it, which is
why ``heplearn export`` times both engines on its own machine (``serving.engine_choice``). Ours: the graph written by
``heplearn.serving.export.export_network`` (softmax included) in onnxruntime; reference: the same
module in PyTorch eager under ``torch.inference_mode``. The session is the one heplearn's engines
and server open (``heplearn.serving.engines.open_session``). Both use every core (or ``--threads``);
timings interleave ours and the reference, best of ``--repeats`` rounds of at least ``--seconds``
each. Both get each batch cut to its longest jet, as heplearn's engines feed them (``OnnxEngine``
and ``TrainedModel.predict``): real particles come first, so only padding goes. The export runs in
a child process, so that the timed process never ran the tracer (whose global state could slow
eager PyTorch); both sides get the same weights from the same seed. ParT
at batch 1024 needs more than 10 GB (its 128 × 128 pair features), so both presets run at 256
unless ``--part-1024`` is given; ``--quick`` uses 256 instead of 1024 for every model.

    python benchmarks/bench_infer.py [--quick] [--device cuda] [--ab]

``--device cuda`` runs both on the GPU (onnxruntime's CUDA provider, from onnxruntime-gpu; PyTorch
on CUDA, synchronised before each clock reading). ``--ab`` adds onnxruntime's settings side by
side at batch sizes 1 and 32, interleaved with the default session: one intra-op thread, no
spinning, the extended (not all) graph optimisations, a saved pre-optimised model loaded without
optimising, I/O binding, and for ParT the graph with its attention fused (onnxruntime's
``com.microsoft.MultiHeadAttention`` with the attention bias: ``export_network(fused_attention=True)``).

Columns: onnx (one onnxruntime call on the whole batch), eager, their ratio; "onnx engine": the
batch as ``OnnxEngine`` and the server run it (sorted by multiplicity, calls of ``JETS_PER_CALL``
= 32 jets, each cut to its longest jet; the same as one call up to 32 jets) and its ratio to eager
(which groups ParT's jets by length itself). The engine ratio is what ``heplearn export``'s engine
choice compares.

The last line is JSON: ours and reference in jets/s at batch size 1 for the model where ONNX gains
least, and their ratio (target: ≥ 2); and the lowest engine ratio over every model and batch size
(target: ≥ 1.2).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime
import torch
from machine import print_machine

from heplearn.models import registry
from heplearn.serving.engine_choice import jets_per_second
from heplearn.serving.engines import JETS_PER_CALL, open_session, run_by_multiplicity, session_options
from heplearn.serving.export import DeployableModel, export_network
from heplearn.tasks import Classification

FEATURES = 7
PARTICLES = 128
MODELS = ("particlenet", "part", "part-lite")  # name[-preset]; the paper preset unless named
BATCH_SIZES = (1, 32, 64, 1024)


def jets(count: int, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    real = torch.clamp(torch.normal(50.0, 20.0, (count, 1), generator=generator), 10, PARTICLES).long()
    mask = torch.arange(PARTICLES)[None, :] < real
    pt = torch.rand(count, PARTICLES, generator=generator) * 30 + 0.5
    eta, phi = torch.randn(count, PARTICLES, 2, generator=generator).unbind(-1)
    eta, phi = eta * 0.2, phi * 0.2
    vectors = torch.stack([pt * torch.cos(phi), pt * torch.sin(phi), pt * torch.sinh(eta), pt * torch.cosh(eta)], -1)
    particles = torch.randn(count, PARTICLES, FEATURES, generator=generator)
    zero = torch.zeros(())
    return {
        "particles": torch.where(mask[..., None], particles, zero),
        "points": torch.where(mask[..., None], torch.stack([eta, phi], -1), zero),
        "vectors": torch.where(mask[..., None], vectors, zero),
        "mask": mask,
    }


def cut_to_longest(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The batch cut to its longest jet, as both of heplearn's engines feed their models."""
    longest = int(batch["mask"].sum(dim=1).max())
    return {key: value[:, :longest] for key, value in batch.items()}


def rate(
    function: Callable[[], object], jets_per_call: int, seconds: float, min_calls: int = 2, warm_up: bool = True
) -> float:
    """Jets per second of ``function``, timed over at least ``seconds`` and ``min_calls`` calls."""
    time.sleep(0.3)  # let the other side's idle threads stop spinning: they would steal these cores
    return jets_per_second(function, jets_per_call, seconds, min_calls, warm_up)


def build(model: str) -> DeployableModel:
    """The network ``name[-preset]`` with softmax, with the same weights in every process (seed 0)."""
    name, _, preset = model.partition("-")
    torch.manual_seed(0)
    network = registry.model_class(name).from_preset(
        preset or "paper", 2, {"particles": FEATURES, "points": 2, "vectors": 4}
    )
    task = Classification(["signal", "background"])
    return DeployableModel(network.eval(), list(network.input_keys), None, task.postprocess).eval()


def export_all(folder: Path, models: list[str], fused: bool = False) -> None:
    """Export ``models`` to ``folder`` (in a child process: the timed one never runs the tracer);
    ``fused``: ParT also with its attention fused (``name.fused.onnx``), for ``--ab``."""
    for name in models:
        module = build(name)
        example = jets(2)
        for fused_attention in (False, True) if fused and name.partition("-")[0] == "part" else (False,):
            started = time.perf_counter()
            path = folder / f"{name}{'.fused' if fused_attention else ''}.onnx"
            export_network(
                module,
                [example[key] for key in module.input_names],
                module.input_names,
                "probabilities",
                path,
                [{0: "batch", 1: "particles"} for _ in module.input_names],
                fused_attention=fused_attention,
            )
            print(f"{path.stem}: exported in {time.perf_counter() - started:.1f} s", flush=True)


def batch_sizes(name: str, part_1024: bool, quick: bool) -> tuple[int, ...]:
    # ParT's 128 x 128 pair features at 1024 jets need well over 10 GB: opt in with --part-1024
    return BATCH_SIZES if not quick and (name.partition("-")[0] != "part" or part_1024) else (1, 32, 64, 256)


CALL_SIZES = (32, 128, 512)


def print_call_sizes(
    name: str,
    session: onnxruntime.InferenceSession,
    module: torch.nn.Module,
    keys: list[str],
    seconds: float,
    device: torch.device,
) -> None:
    """Jets/s of heplearn's engines on 512 jets (padded to 128 slots, in random order) when they
    sort them by multiplicity and call the model on ``CALL_SIZES`` jets at a time, each call cut
    to its longest jet: what ``JETS_PER_CALL`` is chosen from; and of eager PyTorch on the 512
    jets in one call, as the torch engine runs them (ParT groups them by length itself)."""
    feed = {key: values.numpy() for key, values in jets(max(CALL_SIZES), seed=7).items() if key in keys}
    rates = [
        rate(
            lambda size=size: run_by_multiplicity(lambda batch: session.run(None, batch), feed, size),
            len(feed["mask"]),
            seconds,
        )
        for size in CALL_SIZES
    ]

    def eager(batch: dict[str, np.ndarray]) -> list[np.ndarray]:
        with torch.inference_mode():
            return [module(*[torch.from_numpy(batch[key]).to(device) for key in keys]).cpu().numpy()]

    torch_rate = rate(lambda: run_by_multiplicity(eager, feed, len(feed["mask"])), len(feed["mask"]), seconds)
    print(
        f"{name:<12}engine calls of {', '.join(map(str, CALL_SIZES))} jets: "
        + ", ".join(f"{value:.0f}" for value in rates)
        + f" jets/s; eager on all {max(CALL_SIZES)}: "
        f"{torch_rate:.0f} jets/s (ratio at {CALL_SIZES[0]}: {rates[0] / torch_rate:.2f})",
        flush=True,
    )


def io_bound(session: onnxruntime.InferenceSession, feed: dict[str, np.ndarray]) -> Callable[[], object]:
    """One call of ``session`` through I/O binding: inputs bound once as OrtValues, the output
    left to onnxruntime's allocator (no copy of the inputs per call)."""
    binding = session.io_binding()
    for name, values in feed.items():
        binding.bind_ortvalue_input(name, onnxruntime.OrtValue.ortvalue_from_numpy(values))
    binding.bind_output(session.get_outputs()[0].name)
    return lambda: (session.run_with_iobinding(binding), binding.copy_outputs_to_cpu())


def ab_sessions(path: Path, folder: Path) -> dict[str, onnxruntime.InferenceSession]:
    """onnxruntime sessions with one setting changed each from heplearn's (``session_options``)."""
    providers = ["CPUExecutionProvider"]
    variants = {
        "default": open_session(path, device="cpu"),
        "1 thread": open_session(path, 1, device="cpu"),
        "no spinning": open_session(path, spinning=False, device="cpu"),
    }
    extended = session_options()
    extended.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    variants["extended optimisations"] = onnxruntime.InferenceSession(str(path), extended, providers=providers)
    saving = session_options()
    saving.optimized_model_filepath = str(folder / f"{path.stem}.optimised.onnx")
    saving.log_severity_level = 3  # its warning: the saved file is for this machine only (it is, here)
    onnxruntime.InferenceSession(str(path), saving, providers=providers)
    loading = session_options()
    loading.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    variants["pre-optimised file"] = onnxruntime.InferenceSession(
        saving.optimized_model_filepath, loading, providers=providers
    )
    fused = path.with_suffix(".fused.onnx")
    if fused.is_file():
        variants["fused attention"] = open_session(fused, device="cpu")
    return variants


def print_ab(name: str, path: Path, folder: Path, keys: list[str], seconds: float, repeats: int) -> None:
    """onnxruntime's settings A/B, interleaved, at batch sizes 1 and 32: jets/s and the ratio to the default."""
    variants = ab_sessions(path, folder)
    for batch_size in (1, 32):
        batch = cut_to_longest(jets(batch_size, seed=batch_size))
        feed = {key: batch[key].numpy() for key in keys}
        runs: dict[str, Callable[[], object]] = {
            label: (lambda session=session, feed=feed: session.run(None, feed)) for label, session in variants.items()
        }
        runs["I/O binding"] = io_bound(variants["default"], feed)
        best = dict.fromkeys(runs, 0.0)
        for _ in range(repeats):
            for label, run in runs.items():
                best[label] = max(best[label], rate(run, batch_size, seconds))
        print(
            f"{name:<12}A/B at {batch_size:>3} jets: "
            + ", ".join(f"{label} {value:.0f} ({value / best['default']:.2f})" for label, value in best.items()),
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="about a minute: shorter timings, one round")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--threads", type=int, default=0, help="threads for both sides (0: the defaults)")
    parser.add_argument("--part-1024", action="store_true", help="also run ParT at batch 1024 (> 10 GB)")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated name[-preset] list")
    parser.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        default="cpu",
        help="cuda: onnxruntime's CUDA provider against PyTorch on the GPU",
    )
    parser.add_argument("--ab", action="store_true", help="also compare onnxruntime's settings (CPU)")
    parser.add_argument(
        "--onnx-dir",
        type=Path,
        help="keep the exported models here and reuse those found (they depend only on the model names and the seed)",
    )
    parser.add_argument("--export-to", type=Path, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    models = arguments.models.split(",")
    if arguments.export_to is not None:
        export_all(arguments.export_to, models, arguments.ab)
        return
    repeats, seconds, min_calls = (1, 1.0, 1) if arguments.quick else (arguments.repeats, arguments.seconds, 2)
    if arguments.threads:
        torch.set_num_threads(arguments.threads)
    device = torch.device(arguments.device)
    print_machine(
        {
            "onnxruntime intra-op": arguments.threads or "default (every core)",
            "onnxruntime spinning": "on",
            "device": arguments.device,
        }
    )
    summary: dict[str, tuple[float, float]] = {}
    ratios: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as temporary:
        folder = str(arguments.onnx_dir or temporary)
        missing = [
            name
            for name in models
            if not (Path(folder) / f"{name}.onnx").is_file()
            or (
                arguments.ab
                and name.partition("-")[0] == "part"
                and not (Path(folder) / f"{name}.fused.onnx").is_file()
            )
        ]
        if missing:
            subprocess.run(
                [sys.executable, __file__, "--export-to", folder, "--models", ",".join(missing)]
                + ["--ab"] * arguments.ab,
                check=True,
                timeout=1800,
            )
        print(f"{PARTICLES} particle slots, {FEATURES} features; best of {repeats} interleaved rounds")
        print(
            f"{'model':<12}{'batch':>6}{'onnx jets/s':>14}{'eager jets/s':>14}{'ratio':>8}"
            f"{'onnx engine':>14}{'engine ratio':>14}"
        )
        for name in models:
            module = build(name).to(device)
            keys = module.input_names
            # the session heplearn's engines and server open (same options), on the same threads
            session = open_session(Path(folder) / f"{name}.onnx", arguments.threads or None, device=arguments.device)
            if arguments.device == "cuda" and "CUDAExecutionProvider" not in session.get_providers():
                raise SystemExit(f"onnxruntime runs {name} on {session.get_providers()}, not CUDA")
            for batch_size in batch_sizes(name, arguments.part_1024, arguments.quick):
                batch = cut_to_longest(jets(batch_size, seed=batch_size))
                feed = {key: batch[key].numpy() for key in keys}
                tensors = [batch[key].to(device) for key in keys]

                def eager(tensors: list[torch.Tensor] = tensors, module: torch.nn.Module = module) -> object:
                    with torch.inference_mode():
                        outputs = module(*tensors)
                        if outputs.is_cuda:
                            torch.cuda.synchronize()
                        return outputs.cpu()

                def onnx(feed: dict[str, np.ndarray] = feed, session: onnxruntime.InferenceSession = session) -> object:
                    return session.run(None, feed)

                def engine(
                    feed: dict[str, np.ndarray] = feed, session: onnxruntime.InferenceSession = session
                ) -> object:  # as OnnxEngine and the server run a batch: sorted, 32 jets per call
                    return run_by_multiplicity(lambda part: session.run(None, part), feed, JETS_PER_CALL)

                if batch_size == 1:  # same weights in both: the answers agree
                    np.testing.assert_allclose(onnx()[0], eager().numpy(), atol=1e-4)  # type: ignore[index,attr-defined]
                ours, reference, engine_rate = 0.0, 0.0, 0.0
                for _ in range(repeats):  # interleaved
                    warm_up = not arguments.quick or batch_size <= 64
                    ours = max(ours, rate(onnx, batch_size, seconds, min_calls, warm_up))
                    reference = max(reference, rate(eager, batch_size, seconds, min_calls, warm_up))
                    if batch_size > JETS_PER_CALL:
                        engine_rate = max(engine_rate, rate(engine, batch_size, seconds, min_calls, warm_up))
                engine_rate = engine_rate or ours  # up to 32 jets the engine makes one call
                print(
                    f"{name:<12}{batch_size:>6}{ours:>14.0f}{reference:>14.0f}{ours / reference:>8.2f}"
                    f"{engine_rate:>14.0f}{engine_rate / reference:>14.2f}",
                    flush=True,
                )
                ratios[f"{name} at {batch_size}"] = engine_rate / reference
                if batch_size == 1:
                    summary[name] = (ours, reference)
            if not arguments.quick:
                print_call_sizes(name, session, module, keys, seconds, device)
            if arguments.ab:
                print_ab(name, Path(folder) / f"{name}.onnx", Path(folder), keys, seconds, repeats)
    worst = min(summary, key=lambda key: summary[key][0] / summary[key][1])
    ours, reference = summary[worst]
    least = min(ratios, key=ratios.__getitem__)
    print(
        json.dumps(
            {
                "ours": round(ours, 1),
                "reference": round(reference, 1),
                "ratio": round(ours / reference, 3),
                "metric": f"jets/s at batch size 1, {worst} (the model where ONNX gains least)",
                "lowest_engine_ratio": round(ratios[least], 3),
                "lowest_engine_ratio_at": least,
            }
        )
    )


if __name__ == "__main__":
    main()
