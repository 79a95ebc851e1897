"""Architectures as data: registered layer kinds, shape inference, symmetries, init and apply."""

from flowlaws.models.factorization import Factorization
from flowlaws.models.kinds import (
    LAYERS,
    Activation,
    Attention,
    AvgPool1d,
    AvgPool2d,
    BatchNorm,
    Conv1d,
    Conv2d,
    Dense,
    Dropout,
    Flatten,
    Gated,
    GroupNorm,
    LayerNorm,
    MaxPool1d,
    MaxPool2d,
    Mean,
    MoE,
    Residual,
    RMSNorm,
)
from flowlaws.models.kinds.activation import HOMOGENEOUS, NON_HOMOGENEOUS, activation
from flowlaws.models.layer import Layer
from flowlaws.models.sequential import Sequential
from flowlaws.models.spec import deep_linear, factorization, format_spec, mlp, parse
from flowlaws.models.symmetry import Rescaling, View, flatten, unflatten

Model = Sequential | Factorization

__all__ = [
    "HOMOGENEOUS",
    "LAYERS",
    "NON_HOMOGENEOUS",
    "Activation",
    "Attention",
    "AvgPool1d",
    "AvgPool2d",
    "BatchNorm",
    "Conv1d",
    "Conv2d",
    "Dense",
    "Dropout",
    "Factorization",
    "Flatten",
    "Gated",
    "GroupNorm",
    "Layer",
    "LayerNorm",
    "MaxPool1d",
    "MaxPool2d",
    "Mean",
    "MoE",
    "Model",
    "RMSNorm",
    "Rescaling",
    "Residual",
    "Sequential",
    "View",
    "activation",
    "deep_linear",
    "factorization",
    "flatten",
    "format_spec",
    "mlp",
    "parse",
    "unflatten",
]
