"""The VAE's encoder as the Level-1 trigger runs it: hls4ml's bit-accurate fixed-point emulation.

AXOL1TL deploys the encoder alone (the anomaly score Σμ² needs nothing else) as FPGA firmware
written by hls4ml (Duarte et al., arXiv:1804.06913). No FPGA toolchain runs here, but hls4ml's
``compile()`` builds the same HLS C++ with ``ap_fixed`` arithmetic as a shared library, whose
outputs are bit for bit what the firmware computes; ``emulate_latent_score`` runs it on events
and ``compare_to_float`` says how far the fixed-point score is from the float one and how the
trigger decision at a threshold changes. Needs ``hls4ml`` (the ``test`` extra).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from heplearn.errors import ConfigError, DataError
from heplearn.optional import optional_import

__all__ = ["ScoreAgreement", "compare_to_float", "emulate_latent_score"]


def emulate_latent_score(
    network: torch.nn.Module,
    standardised: np.ndarray,
    output_dir: str | os.PathLike[str],
    *,
    precision: str = "ap_fixed<16,6>",
    reuse_factor: int = 1,
) -> np.ndarray:
    """Σμ² of a VAE's encoder in hls4ml's fixed-point emulation, for standardised inputs ``(n, F)``.

    ``precision`` is the default ``ap_fixed<total, integer>`` of weights, biases and activations
    (hls4ml's per-layer configuration, ``granularity="name"``, starts from it).
    """
    hls4ml = optional_import("hls4ml", "the fixed-point emulation of the trigger encoder (hls4ml)")
    from heplearn.models.vae import EventVAE

    if not isinstance(network, EventVAE):
        raise ConfigError(
            f"model {type(network).__name__}: no encoder with a latent mean to emulate for a latent "
            "score (use model.name: vae)"
        )
    encoder, latent = network.encoder, network.hparams.latent
    standardised = np.ascontiguousarray(standardised, np.float32)
    if standardised.ndim != 2:
        raise DataError(f"emulation: inputs must be (events, features), got shape {standardised.shape}")
    encoder = encoder.eval()
    config = hls4ml.utils.config_from_pytorch_model(
        encoder,
        input_shape=(standardised.shape[1],),
        granularity="name",
        default_precision=precision,
        default_reuse_factor=reuse_factor,
        backend="Vitis",
    )
    model = hls4ml.converters.convert_from_pytorch_model(
        encoder, hls_config=config, output_dir=str(Path(output_dir)), backend="Vitis", io_type="io_parallel"
    )
    model.compile()
    outputs = np.asarray(model.predict(standardised), np.float64).reshape(len(standardised), 2 * latent)
    return np.square(outputs[:, :latent]).sum(axis=1)


@dataclass(frozen=True)
class ScoreAgreement:
    """The fixed-point score against the float one, and the trigger decision at a threshold."""

    max_absolute_difference: float
    median_relative_difference: float
    threshold: float  # the float score's cut that keeps ``efficiency``
    efficiency: float
    emulated_efficiency: float  # what the emulated score keeps with the same cut
    decision_agreement: float  # fraction of events with the same decision


def compare_to_float(float_score: np.ndarray, emulated_score: np.ndarray, efficiency: float) -> ScoreAgreement:
    """How the emulated score differs from the float one, at the cut keeping ``efficiency`` of the events."""
    float_score, emulated_score = np.asarray(float_score, np.float64), np.asarray(emulated_score, np.float64)
    if float_score.shape != emulated_score.shape:
        raise DataError(f"emulation: {float_score.shape} float scores for {emulated_score.shape} emulated ones")
    threshold = float(np.quantile(float_score, 1 - efficiency))
    relative = np.abs(emulated_score - float_score) / np.maximum(np.abs(float_score), 1e-12)
    return ScoreAgreement(
        float(np.max(np.abs(emulated_score - float_score))),
        float(np.median(relative)),
        threshold,
        float(np.mean(float_score > threshold)),
        float(np.mean(emulated_score > threshold)),
        float(np.mean((float_score > threshold) == (emulated_score > threshold))),
    )
