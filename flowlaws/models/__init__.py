"""Architectures as data: layers, shape inference, symmetries, init and apply."""

from flowlaws.models.activations import HOMOGENEOUS, NON_HOMOGENEOUS, Activation, activation
from flowlaws.models.attention import Attention
from flowlaws.models.factorization import Factorization
from flowlaws.models.layers import (
    AvgPool1d,
    AvgPool2d,
    Conv1d,
    Conv2d,
    Dense,
    Flatten,
    MaxPool1d,
    MaxPool2d,
)
from flowlaws.models.normalization import BatchNorm, LayerNorm
from flowlaws.models.sequential import Residual, Sequential
from flowlaws.models.spec import deep_linear, factorization, format_spec, mlp, parse
from flowlaws.models.symmetry import Rescaling, View, flatten, unflatten

Model = Sequential | Factorization

__all__ = [
    "HOMOGENEOUS",
    "NON_HOMOGENEOUS",
    "Activation",
    "Attention",
    "AvgPool1d",
    "AvgPool2d",
    "BatchNorm",
    "Conv1d",
    "Conv2d",
    "Dense",
    "Factorization",
    "Flatten",
    "LayerNorm",
    "MaxPool1d",
    "MaxPool2d",
    "Model",
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
