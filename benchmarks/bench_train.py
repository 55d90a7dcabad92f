"""Training throughput (jets/s) of heplearn's ParT and ParticleNet versus weaver-core's, side by side.

One training step is forward + cross-entropy + backward + AdamW step, on a batch of 128 jets with
128 particle slots (about 50 real particles per jet, as in JetClass) and 17 particle features.
Ours: ``heplearn.models.part.ParticleTransformer`` and ``heplearn.models.particlenet.ParticleNet``
with their "paper" presets. Reference: weaver-core 0.5.3's ``weaver.nn.model.ParticleTransformer``
and ``weaver.nn.model.ParticleNet``, built as the particle_transformer repository's example networks
build them (same sizes; their parameter counts are printed beside ours). weaver-core lives in its own
venv (``bash benchmarks/weaver_env.sh``) and runs in a child process, this same file run by that
venv's python with ``--worker weaver``; it only imports and calls weaver-core. Both sides see the same
jets (generated from the same seeds), use ``torch.set_num_threads(--threads)`` and train in
``train()`` mode; timed rounds of ours and the reference's alternate. weaver's sequence trimmer is
left on, as in weaver's training (it cuts the padding to about the longest jets of each batch after
its first 5 steps, which are counted as warm-up here).

    bash benchmarks/weaver_env.sh                  # once: creates benchmarks/.weaver-venv
    python benchmarks/bench_train.py [--quick]

The last line is JSON: ours and reference in jets/s for the model where we gain least, and their
ratio (target: >= 1.3).

With ``--auc-steps N`` both sides also train a fresh network for N steps on the same real batches
(top vs QCD of ``--data``, standardised by heplearn, batch 128, AdamW at 1e-3, the same order),
and the validation AUC each reaches on the same ``--val-jets`` jets is printed (target: within
±0.002). The batches go to the weaver worker as one ``torch.save`` file.

    python benchmarks/bench_train.py --models part --auc-steps 300 --data configs/top_qcd_data.yaml
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch
from machine import print_machine

BATCH = 128
PARTICLES = 128
FEATURES = 17
MODELS = ("part", "particlenet")
NUM_BATCHES = 4  # distinct batches, cycled through by the steps
DEFAULT_VENV = Path(__file__).resolve().parent / ".weaver-venv"

# The particle_transformer repository's example networks (networks/example_*.py), for weaver-core.
WEAVER_PART = dict(
    input_dim=FEATURES,
    num_classes=2,
    pair_input_dim=4,
    use_pre_activation_pair=False,
    embed_dims=[128, 512, 128],
    pair_embed_dims=[64, 64, 64],
    num_heads=8,
    num_layers=8,
    num_cls_layers=2,
    block_params=None,
    cls_block_params={"dropout": 0, "attn_dropout": 0, "activation_dropout": 0},
    fc_params=[],
    activation="gelu",
    trim=True,
    for_inference=False,
)
WEAVER_PARTICLENET = dict(
    input_dims=FEATURES,
    num_classes=2,
    conv_params=[(16, (64, 64, 64)), (16, (128, 128, 128)), (16, (256, 256, 256))],
    fc_params=[(256, 0.1)],
    use_fusion=False,
    use_fts_bn=True,
    use_counts=True,
    for_inference=False,
)


def jets(seed: int) -> dict[str, torch.Tensor]:
    """A batch in heplearn's layout: particles (B,N,F), points (B,N,2), vectors (B,N,4), mask, label."""
    generator = torch.Generator().manual_seed(seed)
    real = torch.clamp(torch.normal(50.0, 20.0, (BATCH, 1), generator=generator), 10, PARTICLES).long()
    mask = torch.arange(PARTICLES)[None, :] < real
    pt = torch.rand(BATCH, PARTICLES, generator=generator) * 30 + 0.5
    eta, phi = (torch.randn(BATCH, PARTICLES, 2, generator=generator) * 0.2).unbind(-1)
    vectors = torch.stack([pt * torch.cos(phi), pt * torch.sin(phi), pt * torch.sinh(eta), pt * torch.cosh(eta)], -1)
    particles = torch.randn(BATCH, PARTICLES, FEATURES, generator=generator)
    label = torch.randint(0, 2, (BATCH,), generator=generator)
    zero = torch.zeros(())
    return {
        "particles": torch.where(mask[..., None], particles, zero),
        "points": torch.where(mask[..., None], torch.stack([eta, phi], -1), zero),
        "vectors": torch.where(mask[..., None], vectors, zero),
        "mask": mask,
        "label": label,
    }


def count_parameters(module: torch.nn.Module) -> int:
    return sum(parameter.numel() for parameter in module.parameters() if parameter.requires_grad)


class Trainer:
    """One network, its AdamW optimiser and its cycle of input batches."""

    def __init__(
        self,
        module: torch.nn.Module,
        forward: Callable[[dict[str, torch.Tensor]], torch.Tensor],
        batches: list[dict[str, torch.Tensor]],
    ) -> None:
        self.module = module.train()
        self.forward = forward
        self.batches = batches
        self.optimizer = torch.optim.AdamW(module.parameters(), lr=1e-3)
        self.loss = torch.nn.CrossEntropyLoss()
        self.steps = 0

    def step(self) -> None:
        batch = self.batches[self.steps % len(self.batches)]
        self.steps += 1
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss(self.forward(batch), batch["label"])
        loss.backward()
        self.optimizer.step()

    def rate(self, steps: int, warmup: int) -> float:
        """Jets per second over ``steps`` timed steps, after ``warmup`` untimed ones."""
        time.sleep(0.3)  # let the other process's idle OpenMP threads stop spinning on these cores
        for _ in range(warmup):
            self.step()
        started = time.perf_counter()
        for _ in range(steps):
            self.step()
        return steps * BATCH / (time.perf_counter() - started)


# ---------------------------------------------------------------- reference side (weaver venv)


def weaver_trainer(
    name: str, batches: list[dict[str, torch.Tensor]] | None = None, skip_warmup: bool = True
) -> Trainer:
    from weaver.nn.model.ParticleNet import ParticleNet as WeaverParticleNet
    from weaver.nn.model.ParticleTransformer import ParticleTransformer as WeaverParticleTransformer

    batches = [channels_first(batch) for batch in batches or [jets(seed) for seed in range(NUM_BATCHES)]]
    features = batches[0]["features"].shape[1]
    torch.manual_seed(0)
    if name == "part":
        part = WeaverParticleTransformer(**{**WEAVER_PART, "input_dim": features})
        if skip_warmup:  # the trimmer leaves its first 5 calls untrimmed; start past them: they are warm-up
            part.trimmer._counter.fill_(part.trimmer.warmup_steps)
        return Trainer(part, lambda b: part(b["features"], v=b["vectors"], mask=b["mask"]), batches)
    particlenet = WeaverParticleNet(**{**WEAVER_PARTICLENET, "input_dims": features})
    if skip_warmup:
        particlenet.trimmer._counter.fill_(particlenet.trimmer.warmup_steps)
    return Trainer(particlenet, lambda b: particlenet(b["points"], b["features"], b["mask"]), batches)


def train_and_score(
    trainer: Trainer,
    steps: int,
    validation: list[dict[str, torch.Tensor]],
    prepare: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]],
) -> list[float]:
    """``steps`` training steps, then the signal probability (class 0) of every validation jet."""
    for _ in range(steps):
        trainer.step()
    trainer.module.eval()
    scores: list[float] = []
    with torch.no_grad():
        for batch in validation:
            scores += torch.softmax(trainer.forward(prepare(batch)), dim=1)[:, 0].tolist()
    trainer.module.train()
    return scores


def channels_first(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """weaver's layout: (B, C, N) tensors and a float (B, 1, N) mask."""
    return {
        "features": batch["particles"].transpose(1, 2).contiguous(),
        "points": batch["points"].transpose(1, 2).contiguous(),
        "vectors": batch["vectors"].transpose(1, 2).contiguous(),
        "mask": batch["mask"][:, None, :].float(),
        "label": batch["label"],
    }


def worker(threads: int) -> None:
    """Serve timing requests, one JSON line in, one JSON line out, until stdin closes."""
    torch.set_num_threads(threads)
    trainers: dict[str, Trainer] = {}
    for line in sys.stdin:
        request = json.loads(line)
        name = request["model"]
        if "auc_batches" in request:  # a fresh network on real batches: validation scores after N steps
            train_batches, validation = torch.load(request["auc_batches"])
            trainer = weaver_trainer(name, train_batches, skip_warmup=False)
            scores = train_and_score(trainer, request["steps"], validation, channels_first)
            print(json.dumps({"scores": scores}), flush=True)
            continue
        if name not in trainers:
            trainers[name] = weaver_trainer(name)
        trainer = trainers[name]
        rate = trainer.rate(request["steps"], request["warmup"])
        print(json.dumps({"rate": rate, "parameters": count_parameters(trainer.module)}), flush=True)


# ---------------------------------------------------------------- our side


def heplearn_trainer(name: str, batches: list[dict[str, torch.Tensor]] | None = None) -> Trainer:
    from heplearn.data.batches import trim_padding
    from heplearn.models.part import ParticleTransformer
    from heplearn.models.particlenet import ParticleNet

    batches = batches or [jets(seed) for seed in range(NUM_BATCHES)]
    model_class = ParticleTransformer if name == "part" else ParticleNet
    torch.manual_seed(0)
    network = model_class.from_preset(
        "paper", num_outputs=2, input_dims={"particles": batches[0]["particles"].shape[2], "points": 2, "vectors": 4}
    )
    # as heplearn's trainer does: each batch cut to its longest jet (lossless: padding comes last)
    return Trainer(network, lambda batch: network(trim_padding(batch)), batches)


def real_batches(
    data: Path, steps: int, val_jets: int
) -> tuple[list[dict[str, torch.Tensor]], list[dict[str, torch.Tensor]]]:
    """``steps`` shuffled training batches and the validation batches of a data config, standardised."""
    from itertools import islice

    from heplearn.data.config import load_data_config
    from heplearn.data.in_memory import InMemoryJets, fit_preprocessing, load_arrays

    config = load_data_config(data)
    preprocessing = fit_preprocessing(config)
    keys = ("particles", "points", "vectors", "mask", "label")
    train = InMemoryJets.from_files(config.files("train"), config, preprocessing)
    batches = [
        {key: batch[key] for key in keys}
        for batch in islice(train.batches(BATCH, shuffle=True, seed=0, drop_last=True), steps)
    ]
    arrays, class_names = load_arrays(config.files("val"), config, val_jets)
    validation = [
        {key: batch[key] for key in keys} for batch in InMemoryJets(arrays, class_names, preprocessing).batches(512)
    ]
    return batches, validation


def compare_auc(names: list[str], reference: Reference, data: Path, steps: int, val_jets: int) -> None:
    """Validation AUC after the same ``steps`` on the same batches, ours and weaver-core's."""
    import tempfile

    from sklearn.metrics import roc_auc_score

    batches, validation = real_batches(data, steps, val_jets)
    if len(batches) < steps:
        sys.exit(f"{data}: only {len(batches)} training batches of {BATCH}, fewer than --auc-steps {steps}")
    labels = [int(value) for batch in validation for value in batch["label"]]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "batches.pt"
        torch.save((batches, validation), path)
        for name in names:
            started = time.perf_counter()
            ours = train_and_score(heplearn_trainer(name, batches), steps, validation, lambda batch: batch)
            middle = time.perf_counter()
            theirs = reference.request({"model": name, "auc_batches": str(path), "steps": steps})["scores"]
            ended = time.perf_counter()
            our_auc = roc_auc_score([label == 0 for label in labels], ours)
            their_auc = roc_auc_score([label == 0 for label in labels], theirs)
            print(
                f"{name}: validation AUC after {steps} steps on {len(labels)} jets: ours {our_auc:.4f} "
                f"({middle - started:.0f} s), weaver {their_auc:.4f} ({ended - middle:.0f} s), "
                f"difference {our_auc - their_auc:+.4f}",
                flush=True,
            )


class Reference:
    """The weaver-core worker process."""

    def __init__(self, python: Path, threads: int) -> None:
        env = {**os.environ, "PYTHONPATH": ""}
        self.process = subprocess.Popen(
            [str(python), str(Path(__file__).resolve()), "--worker", "weaver", "--threads", str(threads)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )

    def rate(self, name: str, steps: int, warmup: int) -> dict[str, Any]:
        return self.request({"model": name, "steps": steps, "warmup": warmup})

    def request(self, request: dict[str, Any]) -> dict[str, Any]:
        stdin: IO[str] | None = self.process.stdin
        stdout: IO[str] | None = self.process.stdout
        assert stdin is not None and stdout is not None
        stdin.write(json.dumps(request) + "\n")
        stdin.flush()
        answer = stdout.readline()
        if not answer:
            raise RuntimeError(f"the weaver worker died (exit code {self.process.wait()})")
        result: dict[str, Any] = json.loads(answer)
        return result

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a few minutes: 2 rounds of 5 timed steps")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of ours and the reference")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per round")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps before the first round")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument(
        "--weaver-python",
        type=Path,
        default=DEFAULT_VENV / "bin" / "python",
        help="python of the venv made by benchmarks/weaver_env.sh",
    )
    parser.add_argument(
        "--auc-steps", type=int, default=0, help="also compare the validation AUC after this many steps on real jets"
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=Path("configs/top_qcd_data.yaml"),
        help="data config of the real jets for --auc-steps",
    )
    parser.add_argument("--val-jets", type=int, default=4000)
    parser.add_argument("--no-throughput", action="store_true", help="only the --auc-steps comparison")
    parser.add_argument("--worker", choices=["weaver"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    print_machine()
    if args.worker:
        worker(args.threads)
        return
    if args.quick:
        args.rounds, args.steps = 2, 5
    if not args.weaver_python.exists():
        sys.exit(f"{args.weaver_python} not found: run `bash benchmarks/weaver_env.sh` first")
    torch.set_num_threads(args.threads)
    reference = Reference(args.weaver_python, args.threads)
    rows = []
    try:
        if args.auc_steps:
            compare_auc(args.models, reference, args.data, args.auc_steps, args.val_jets)
        for name in [] if args.no_throughput else args.models:
            ours = heplearn_trainer(name)
            our_rates, their_rates = [], []
            their_parameters = 0
            for round_ in range(args.rounds):
                warmup = args.warmup if round_ == 0 else 0
                our_rates.append(ours.rate(args.steps, warmup))
                theirs = reference.rate(name, args.steps, warmup)
                their_rates.append(theirs["rate"])
                their_parameters = theirs["parameters"]
                print(
                    f"  {name} round {round_ + 1}: ours {our_rates[-1]:.1f} jets/s, "
                    f"weaver {their_rates[-1]:.1f} jets/s",
                    file=sys.stderr,
                    flush=True,
                )
            rows.append(
                {
                    "model": name,
                    "ours": statistics.median(our_rates),
                    "reference": statistics.median(their_rates),
                    "our_parameters": count_parameters(ours.module),
                    "their_parameters": their_parameters,
                }
            )
            del ours
    finally:
        reference.close()
    if not rows:
        return

    print(
        f"training throughput, batch {BATCH}, {PARTICLES} slots, {FEATURES} features, "
        f"{args.threads} threads, median of {args.rounds} rounds x {args.steps} steps"
    )
    print(f"{'model':<12}{'ours jets/s':>13}{'weaver jets/s':>15}{'ratio':>8}{'ours params':>13}{'weaver params':>15}")
    for row in rows:
        print(
            f"{row['model']:<12}{row['ours']:>13.1f}{row['reference']:>15.1f}{row['ours'] / row['reference']:>8.2f}"
            f"{row['our_parameters']:>13,}{row['their_parameters']:>15,}"
        )
    worst = min(rows, key=lambda row: row["ours"] / row["reference"])
    print(
        json.dumps(
            {
                "ours": round(worst["ours"], 2),
                "reference": round(worst["reference"], 2),
                "ratio": round(worst["ours"] / worst["reference"], 3),
                "model": worst["model"],
            }
        )
    )


if __name__ == "__main__":
    main()
