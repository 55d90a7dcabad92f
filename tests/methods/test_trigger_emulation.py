"""hls4ml's fixed-point emulation of the VAE encoder agrees with the float latent score."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from heplearn.errors import ConfigError
from heplearn.methods.trigger_emulation import compare_to_float, emulate_latent_score
from heplearn.models.autoencoder import JetAutoencoder
from heplearn.models.vae import EventVAE

pytest.importorskip("hls4ml")


@pytest.mark.slow  # the CI budget: an hls4ml build of the encoder, about 19 s
def test_the_16_bit_encoder_keeps_the_score_and_the_trigger_decision(tmp_path: Path) -> None:
    """AXOL1TL's 57 → 32 → 16 → 13 encoder in ap_fixed<16,6>: quantisation steps of 2⁻¹⁰ leave the
    score within a percent and flip the decision of a handful of events at a 1% cut."""
    torch.manual_seed(0)
    vae = EventVAE(57 + 26, {"jet": 57}).eval()
    x = np.random.default_rng(0).normal(size=(2000, 57)).astype(np.float32)
    with torch.inference_mode():
        mu, _ = vae.encode({"jet": torch.from_numpy(x)})
    float_score = mu.double().square().sum(-1).numpy()
    emulated = emulate_latent_score(vae, x, tmp_path / "hls")
    agreement = compare_to_float(float_score, emulated, 0.01)
    assert agreement.median_relative_difference < 0.02
    assert agreement.decision_agreement > 0.99
    assert abs(agreement.emulated_efficiency - 0.01) < 0.005
    # with 8 bits the emulation is visibly coarser: the precision matters, the emulation is not a copy
    coarse = compare_to_float(
        float_score, emulate_latent_score(vae, x, tmp_path / "hls8", precision="ap_fixed<8,4>"), 0.01
    )
    assert coarse.median_relative_difference > 3 * agreement.median_relative_difference


def test_a_model_without_a_latent_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no encoder with a latent mean"):
        emulate_latent_score(JetAutoencoder(3, {"jet": 3}), np.zeros((2, 3)), tmp_path)
