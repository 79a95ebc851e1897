"""The registry of layer kinds: one module per kind, one line here per kind.

Every part of flowlaws that needs a layer kind reads it from `LAYERS`: the spec parser
(by the names each kind answers to), the strategies (each kind draws itself), the
law derivation (each kind declares its symmetry), discovery and the torch bridge. A
new kind is one new module and one line in `LAYERS` (docs/extending.md).
"""

from __future__ import annotations

from flowlaws.errors import unknown
from flowlaws.models.kinds.activation import Activation
from flowlaws.models.kinds.attention import Attention
from flowlaws.models.kinds.batchnorm import BatchNorm
from flowlaws.models.kinds.concat import Concat
from flowlaws.models.kinds.conv import Conv1d, Conv2d
from flowlaws.models.kinds.conv_transpose import ConvTranspose1d, ConvTranspose2d
from flowlaws.models.kinds.cross_attention import CrossAttention
from flowlaws.models.kinds.decode import Decode
from flowlaws.models.kinds.dense import Dense
from flowlaws.models.kinds.dropout import Dropout
from flowlaws.models.kinds.flatten import Flatten
from flowlaws.models.kinds.gated import Gated
from flowlaws.models.kinds.groupnorm import GroupNorm
from flowlaws.models.kinds.layernorm import LayerNorm
from flowlaws.models.kinds.mean import Mean
from flowlaws.models.kinds.moe import MoE
from flowlaws.models.kinds.moveaxis import MoveAxis
from flowlaws.models.kinds.offset import Offset
from flowlaws.models.kinds.onehot import OneHot
from flowlaws.models.kinds.pool import AvgPool1d, AvgPool2d, MaxPool1d, MaxPool2d
from flowlaws.models.kinds.prepend import Prepend
from flowlaws.models.kinds.residual import Residual
from flowlaws.models.kinds.rmsnorm import RMSNorm
from flowlaws.models.kinds.scale import Scale
from flowlaws.models.kinds.sinusoid import Sinusoid
from flowlaws.models.kinds.token import Token
from flowlaws.models.kinds.upsample import Upsample1d, Upsample2d
from flowlaws.models.layer import Layer

LAYERS: tuple[type[Layer], ...] = (
    Dense,
    Conv1d,
    Conv2d,
    ConvTranspose1d,
    ConvTranspose2d,
    MaxPool1d,
    AvgPool1d,
    MaxPool2d,
    AvgPool2d,
    Upsample1d,
    Upsample2d,
    Flatten,
    Mean,
    MoveAxis,
    Token,
    OneHot,
    Offset,
    Sinusoid,
    Scale,
    Prepend,
    BatchNorm,
    LayerNorm,
    RMSNorm,
    GroupNorm,
    Attention,
    CrossAttention,
    Dropout,
    Activation,
    Residual,
    Gated,
    Concat,
    Decode,
    MoE,
)

_BY_NAME = {name: kind for kind in LAYERS for name in kind.names()}


def kind(name: str) -> type[Layer]:
    """The layer kind a spec name denotes (``"dense"``, ``"relu"``, ``"residual"``)."""
    if name not in _BY_NAME:
        raise unknown("layer", name, _BY_NAME)
    return _BY_NAME[name]


def names() -> tuple[str, ...]:
    """Every name a spec may use for a layer."""
    return tuple(_BY_NAME)


__all__ = ["LAYERS", "Activation", "Attention", "AvgPool1d", "AvgPool2d", "BatchNorm", "Concat", "Conv1d", "Conv2d",
           "ConvTranspose1d", "ConvTranspose2d", "CrossAttention", "Decode", "Dense",
           "Dropout", "Flatten", "Gated", "GroupNorm", "LayerNorm", "MaxPool1d", "MaxPool2d", "Mean", "MoE", "MoveAxis",
           "Offset", "OneHot", "Prepend", "RMSNorm", "Residual", "Scale", "Sinusoid", "Token", "Upsample1d",
           "Upsample2d", "kind", "names"]
