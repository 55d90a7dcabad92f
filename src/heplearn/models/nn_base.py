"""The contract shared by the neural-network taggers, and the layers they have in common.

Every network reads a batch ``dict[str, torch.Tensor]`` (see the design notes, "Tensors between
data and models"): ``particles`` (B, N, F) standardised features, ``vectors`` (B, N, 4) raw
px, py, pz, E, ``points`` (B, N, 2) Δη, Δφ, ``mask`` (B, N) with True for real particles,
``jet`` (B, J), ``image`` (B, C, H, W). Padded slots may hold anything, even NaN: every model
replaces them by zeros first and ignores them through ``mask``, so its output does not depend on
the padding length or on what the padding holds.

A model declares the batch keys it reads (``input_keys``), is built from the feature size of
each (``input_dims``) and named hyper-parameters, and returns ``(B, num_outputs)`` raw logits
(classification) or outputs (regression). Hyper-parameters are a frozen dataclass per model
whose defaults are the published configuration; ``presets`` hold named sets of overrides
("paper" is the published one, "small" a fast one for tests and quick studies).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Self

import torch
from torch import nn
from torch.nn import functional

from heplearn.errors import ConfigError

#: The size of ``vectors``: px, py, pz, E.
FOUR_VECTOR_SIZE = 4

#: Keys whose presence is signalled by the batch, not by a feature size.
SIZE_FREE_KEYS = frozenset({"mask"})


class ParticleModel(nn.Module):
    """Base class of the neural networks: input checks, hyper-parameters and presets.

    Subclasses set ``name``, ``input_keys``, ``presets`` and a nested frozen dataclass
    ``Hyperparameters``, call ``super().__init__(num_outputs, input_dims, **hyperparameters)``
    and then read the validated values from ``self.hparams``.
    """

    name: ClassVar[str]
    input_keys: ClassVar[tuple[str, ...]]
    presets: ClassVar[dict[str, dict[str, Any]]]
    Hyperparameters: ClassVar[type]

    def __init__(self, num_outputs: int, input_dims: Mapping[str, int], **hyperparameters: Any) -> None:
        super().__init__()
        if isinstance(num_outputs, bool) or not isinstance(num_outputs, int) or num_outputs < 1:
            raise ConfigError(f"model {self.name}: num_outputs must be a positive integer, got {num_outputs!r}")
        self.num_outputs = num_outputs
        self.input_dims = self.check_input_dims(input_dims)
        self.hparams = self.parse_hyperparameters(hyperparameters)

    # --- construction ---------------------------------------------------------------------------

    @classmethod
    def check_input_dims(cls, input_dims: Mapping[str, int]) -> dict[str, int]:
        """The feature sizes of the keys this model reads; a missing or bad one is a ConfigError."""
        dims: dict[str, int] = {}
        for key in cls.input_keys:
            if key in SIZE_FREE_KEYS:
                continue
            if key not in input_dims:
                raise ConfigError(
                    f"model {cls.name} reads batch key {key!r}, but the data provide no {key!r} "
                    f"(input_dims has {sorted(input_dims)}); add a {key!r} input group to the data config"
                )
            size = input_dims[key]
            if isinstance(size, bool) or not isinstance(size, int) or size < 1:
                raise ConfigError(f"model {cls.name}: input_dims[{key!r}] must be a positive integer, got {size!r}")
            dims[key] = size
        if "vectors" in dims and dims["vectors"] != FOUR_VECTOR_SIZE:
            raise ConfigError(
                f"model {cls.name}: 'vectors' must hold the 4 components px, py, pz, E, got {dims['vectors']}"
            )
        return dims

    @classmethod
    def hyperparameter_names(cls) -> tuple[str, ...]:
        """The names of the model's hyper-parameters (the fields of its ``Hyperparameters``)."""
        return tuple(field.name for field in dataclasses.fields(cls.Hyperparameters))

    @classmethod
    def parse_hyperparameters(cls, hyperparameters: Mapping[str, Any]) -> Any:
        """``Hyperparameters`` with the defaults filled in; an unknown name is a ConfigError."""
        unknown = sorted(set(hyperparameters) - set(cls.hyperparameter_names()))
        if unknown:
            raise ConfigError(
                f"model {cls.name}: unknown hyper-parameter {', '.join(map(repr, unknown))}; "
                f"known: {', '.join(cls.hyperparameter_names())}"
            )
        values = {key: _freeze(value) for key, value in hyperparameters.items()}
        return cls.Hyperparameters(**values)

    @classmethod
    def from_preset(cls, preset: str, num_outputs: int, input_dims: Mapping[str, int], **overrides: Any) -> Self:
        """The model with a named preset's hyper-parameters, some replaced by ``overrides``."""
        if preset not in cls.presets:
            raise ConfigError(f"model {cls.name}: unknown preset {preset!r}; choose one of {sorted(cls.presets)}")
        return cls(num_outputs, input_dims, **{**cls.presets[preset], **overrides})

    @property
    def hyperparameters(self) -> dict[str, Any]:
        """Every hyper-parameter, defaults included (what a run's resolved config records)."""
        return {key: _thaw(value) for key, value in dataclasses.asdict(self.hparams).items()}

    @property
    def output_layer(self) -> nn.Linear:
        """The last dense layer, the one that gives the ``num_outputs`` outputs.

        Its input is the network's learnt representation of the jet: what a domain head
        (``heplearn.methods.domain``) or any other method that looks inside the network reads.
        """
        layers = [
            module
            for module in self.modules()
            if isinstance(module, nn.Linear) and module.out_features == self.num_outputs
        ]
        if not layers:
            raise ConfigError(f"model {self.name}: no dense output layer of {self.num_outputs} outputs")
        return layers[-1]

    def count_parameters(self) -> int:
        """The number of trainable parameters."""
        return sum(parameter.numel() for parameter in self.parameters() if parameter.requires_grad)

    # --- forward helpers ------------------------------------------------------------------------

    def inputs(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The tensors this model reads, padded slots zeroed, ``mask`` as bool."""
        for key in self.input_keys:
            if key not in batch:
                raise ConfigError(f"model {self.name}: the batch has no {key!r} (it has {sorted(batch)})")
        tensors = {key: batch[key] for key in self.input_keys}
        if "mask" in tensors:
            mask = tensors["mask"].to(torch.bool)
            tensors["mask"] = mask
            for key in ("particles", "vectors", "points"):
                if key in tensors:
                    tensors[key] = zero_padding(tensors[key], mask)
        return tensors


def _freeze(value: Any) -> Any:
    """Lists (as read from YAML) become tuples, so hyper-parameters are hashable and immutable."""
    if isinstance(value, list | tuple):
        return tuple(_freeze(item) for item in value)
    return value


def _thaw(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_thaw(item) for item in value]
    return value


# --- shared layers ------------------------------------------------------------------------------


def zero_padding(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``values`` (B, N, ...) with the padded slots set to 0 (also if they held NaN or inf)."""
    shape = mask.shape + (1,) * (values.dim() - mask.dim())
    return torch.where(mask.reshape(shape), values, torch.zeros((), dtype=values.dtype, device=values.device))


def masked_mean(values: torch.Tensor, mask: torch.Tensor, dim: int) -> torch.Tensor:
    """Mean of ``values`` over ``dim`` counting only the entries where ``mask`` is True (0 if none)."""
    shape = mask.shape + (1,) * (values.dim() - mask.dim())
    count = mask.reshape(shape).to(values.dtype).sum(dim)
    return zero_padding(values, mask).sum(dim) / count.clamp_min(1.0)


#: Hidden-unit activations a model may name. ReLU is the papers' default; a smooth one (SiLU, GELU)
#: suits a network whose output is a smooth function of its inputs, such as a log density ratio
#: (DCTR): a ReLU network is piecewise linear and extrapolates its last pieces into sparse regions.
ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "silu": nn.SiLU, "gelu": nn.GELU, "tanh": nn.Tanh}


def activation_class(name: str, model: str) -> type[nn.Module]:
    """The activation called ``name`` (``ACTIVATIONS``); another name is a ConfigError naming ``model``."""
    if name not in ACTIVATIONS:
        raise ConfigError(f"model {model}: activation {name!r} is not one of {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]


def mlp(
    sizes: Sequence[int], activation: type[nn.Module] = nn.ReLU, dropout: float = 0.0, last_activation: bool = True
) -> nn.Sequential:
    """Dense layers ``sizes[0] -> sizes[1] -> ...``, each followed by the activation (and dropout)."""
    layers: list[nn.Module] = []
    for index, (size_in, size_out) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(size_in, size_out))
        if last_activation or index < len(sizes) - 2:
            layers.append(activation())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class MaskedBatchNorm(nn.Module):
    """Batch normalisation over the channels (last dimension) of the real entries only.

    ``torch.nn.BatchNorm1d`` would count padded particles (or padded particle pairs) in the batch
    statistics, so the statistics, and the trained network, would depend on how much padding the
    batches carry. Here the mean and variance are taken over ``mask``-selected entries; in eval
    mode the running statistics are used, exactly like ``BatchNorm1d``. Same parameters
    (a scale and a shift per channel), so parameter counts match the papers.
    """

    def __init__(self, channels: int, momentum: float = 0.1, eps: float = 1e-5) -> None:
        super().__init__()
        self.momentum = momentum
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def forward(self, values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """``values`` (..., C) normalised; ``mask`` has the shape of ``values`` without C.

        ``mask=None`` says every entry is real: plain batch norm over the rows of ``values`` (R, C).
        """
        if mask is None:  # batch statistics need two rows; with fewer, the running ones serve
            return functional.batch_norm(
                values,
                self.running_mean,
                self.running_var,
                self.weight,
                self.bias,
                training=self.training and values.shape[0] > 1,
                momentum=self.momentum,
                eps=self.eps,
            )
        mean, variance = self.running_mean, self.running_var
        if self.training:
            real = values.reshape(-1, values.shape[-1])[mask.reshape(-1)]
            if real.shape[0] > 0:
                variance, mean = torch.var_mean(real, dim=0, correction=0)
                with torch.no_grad():
                    unbiased = variance * (real.shape[0] / max(real.shape[0] - 1, 1))
                    self.running_mean.lerp_(mean.to(self.running_mean.dtype), self.momentum)
                    self.running_var.lerp_(unbiased.to(self.running_var.dtype), self.momentum)
        # One fused pass over the (large) input: values * scale + shift.
        scale = self.weight * torch.rsqrt(variance + self.eps)
        return torch.addcmul(self.bias - mean * scale, values, scale)
