"""From a torch module to a flowlaws model: conversion by torch.fx, checked by value.

    from flowlaws.torch import from_torch, laws_of, Converted

`from_torch(module, example_input)` traces the module with ``torch.fx`` (its forward's
other arguments at their defaults, as a call with the input alone; where that fails, again
with buffers as values of the graph and ``len`` of a traced value recorded; walking an
``nn.Sequential`` where both fail) and converts it into a flowlaws model with its
weights as float64 numpy arrays; the conversion is checked by running both on the
example input (a float64 copy of the module, in training mode: BatchNorm uses batch
statistics, as flowlaws does; dropout off on both sides, as its masks come from different
generators). Supported: Linear (on the last axis, any leading axes), Conv1d/Conv2d
(a kernel, stride, padding and dilation per axis, groups), ConvTranspose1d/2d (the same, and
output_padding; an ``output_size`` in the call is refused: give output_padding), Upsample
and ``F.interpolate`` in mode "nearest" by integer factors (a scale_factor, or a size that
is a multiple of the input's), ReLU, LeakyReLU, PReLU (one
slope, read as a fixed slope), Identity, Tanh, Sigmoid, GELU (exact, or GPT-2's tanh form),
ELU, CELU (alpha 1), SELU, SiLU, Softplus, Mish, ReLU6 (and Hardtanh(0, 6), ``x.clamp(0,
6)``), Hardswish, Hardsigmoid, ``x.clamp(min=0)`` (a ReLU), ``relu(x) ** k`` and
``F.relu(x).square()`` (relu_power(k), the squared ReLU), MaxPool/AvgPool 1d/2d (any stride and
padding, undilated), AdaptiveAvgPool(1)
and ``x.mean`` over the positions, an adaptive pool whose output size divides its input's
(the fixed pool it computes), Flatten and ``flatten``/``view``/``reshape`` merging trailing axes,
``transpose``/``permute``/``movedim`` moving one sample axis (a transposed sequence,
channels last and back), ``x[:, t]`` (a class token's read-out), a parameter added to the
value (a position embedding, ``x + self.pos``, nanoGPT's ``wpe(torch.arange(T))``, or an
Embedding read at a buffer of the positions, Hugging Face's ``self.position_ids[:, :T]``) or
multiplying it (a layer scale, ``self.gamma * x``) or multiplied by it (``x @ self.proj``, a
dense layer of weight proj^T: OpenCLIP's projections), ``torch.cat([cls.expand(N, -1, -1), x],
1)`` (class tokens; the parameter viewed or cast first, ``cls.view(1, 1, -1)``), the
sinusoidal position encoding added (a constant recognized by its values,
interleaved or in halves, any base: a registered buffer sliced by the length, ``x +
self.pe[:, :x.size(1)]``, traced with buffers as graph values where plain tracing fails;
the check runs the graph with the table exact), sizes read from ``x.shape`` or
``x.size()``, Dropout (1d, 2d), the functional forms and tensor methods of these
activations, pools and dropouts (each converted as the module it computes:
``F.max_pool2d(x, 2)`` is ``nn.MaxPool2d(2)``), ``x * c``, ``x / c`` and ``-x`` by a number
(a linear activation of slope c), ``x.sum(dims)`` (the mean times the entries summed),
a final ``log_softmax`` or ``softmax`` over the last axis (the model is the logits', whose
laws are then cross-entropy's for any loss: the output ignores a shift of every logit; ``nn.NLLLoss``
reads it), the difference (a sum with the second branch negated), sum or product
of two branches from one value (a residual block with any shortcut, a ResNet downsample; a gate), BatchNorm1d/2d,
LayerNorm and RMSNorm (over the last axis), GroupNorm, InstanceNorm1d/2d (a GroupNorm of one channel
a group), ``nn.GLU`` and ``F.glu`` of a Linear's or a convolution's output units (a gate of its
halves, ``gated[dense(h) | dense(h),sigmoid]``: Dauphin et al.'s, the Conformer's), MultiheadAttention (self-attention,
with or without its biases, a causal attn_mask: a buffer, or made from the length
by ``nn.Transformer.generate_square_subsequent_mask``; not add_bias_kv),
self-attention written with ``F.scaled_dot_product_attention`` (nanoGPT's CausalSelfAttention:
q, k, v from one Linear's split or three Linears, viewed as heads and transposed; is_causal,
enable_gqa; q and k with a rotary embedding, recognized by its values; back and a Linear),
or written by hand, ``softmax(q @ k.transpose(-2, -1) * s, masked causally or not) @ v``
(nanoGPT's manual path: read as that call, `_written_attentions`; s other than 1/sqrt(width),
muP's 1/width, as F.scaled_dot_product_attention's ``scale``, is ``attention(...,scale=s)``),
heads that are modules of their own (Karpathy's "Let's build GPT": each head's q, k, v
Linears, its attention on (N, T, width), the heads joined by ``torch.cat(..., dim=-1)`` and
read by a Linear: `_head_modules`; a bias on that Linear alone is ``out_bias``), timm's
Attention (q, k, v unbound from ``qkv(x).reshape(N, T, 3, heads, width).permute(2, 0, 3, 1,
4)``, `_unbound`; its fused path or its manual one, q scaled before the product), an
activation written out as a formula of one value and numbers (minGPT's ``NewGELU``, ``x *
torch.sigmoid(x)``, ``0.5 x (1 + erf(x / sqrt 2))``: read by its values on [-6, 6] as the
activation it equals, `_written_activations`; any other formula is left as it is),
``F.layer_norm`` with its own parameters, TransformerEncoderLayer (relu or gelu, norm_first
either way, the causal mask or none: its attention and feed-forward blocks become two
residual layers) and TransformerEncoder (its layers, then its norm), Embedding reading the
module's input (token ids: a dense layer on one-hot tokens, W = E^T; the flowlaws model's input
is `one_hot(ids, vocabulary)`, its first layer `onehot`: rows that sum to 1). torch's attention
in its default layout, batch_first=False, reads (T, N, d) values: each value's batch axis is
read from its shapes at two batch sizes, and the calls on a sequence-first value (``x.mean(0)``,
``x[0]``, ``x.transpose(0, 1)``, a (T, 1, d) position table) convert as their batch-first
twins do; `Converted.samples` gives an input in the model's layout (batch first, token ids
one-hot). Anything else is an `InvalidArgument` naming the module path, its type, and what is
supported.

Documented behaviours: a module that returns a tuple is read by its first entry (a
language model's ``logits, loss``); a float32 (or other) module is read in float64, and every check
runs in float64 (a float32 training loop is judged with float32's round-off); parameters
on a GPU are copied to the CPU; the user's module is never modified (its checks run on a
copy; tracing runs its forward on traced values, and puts back whatever the forward assigns
to a module). torch is an optional extra: ``pip install 'flowlaws[torch]'``.
"""

from __future__ import annotations

import builtins
import contextlib
import copy
import dataclasses
import functools
import inspect
import io
import itertools
import math
import operator
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse
import scipy.special

from flowlaws.checking import accumulation_length, tolerance
from flowlaws.errors import InvalidArgument
from flowlaws.models import (
    Activation,
    Attention,
    AvgPool1d,
    AvgPool2d,
    BatchNorm,
    Concat,
    Conv1d,
    Conv2d,
    ConvTranspose1d,
    ConvTranspose2d,
    CrossAttention,
    Decode,
    Dense,
    Dropout,
    Flatten,
    Gated,
    GroupNorm,
    Layer,
    LayerNorm,
    MaxPool1d,
    MaxPool2d,
    Mean,
    MoveAxis,
    Offset,
    OneHot,
    Prepend,
    Residual,
    RMSNorm,
    Scale,
    Sequential,
    Token,
    Upsample1d,
    Upsample2d,
)
from flowlaws.models.kinds.attention import ROPE_BASE
from flowlaws.models.kinds.sinusoid import Sinusoid
from flowlaws.models.kinds.sinusoid import table as table_of
from flowlaws.validation import on_axes

try:
    import torch
    from torch import nn
    from torch.fx.passes.shape_prop import ShapeProp
except ImportError as error:  # pragma: no cover - exercised without the extra
    raise ImportError("flowlaws.torch needs PyTorch: pip install 'flowlaws[torch]'") from error


SUPPORTED = ("Linear (on any leading axes), Conv1d, Conv2d (groups, dilation, a kernel per axis), ConvTranspose1d, "
             "ConvTranspose2d (and output_padding), Upsample and F.interpolate (nearest, integer factors), ReLU, "
             "LeakyReLU, "
             "PReLU, Identity, Tanh, Sigmoid, GELU, ELU, CELU (alpha 1), SELU, SiLU, Softplus, Mish, ReLU6, Hardswish, "
             "Hardsigmoid, x * sigmoid(beta x) (QuickGELU), x.clamp(min=0), x.clamp(0, 6), relu(x) ** k and "
             "relu(x).square(), "
             "MaxPool1d/2d, AvgPool1d/2d (any stride and padding), AdaptiveAvgPool1d/2d and AdaptiveMaxPool1d/2d "
             "(an output size dividing the input's), Dropout (1d, 2d), and their functional forms and tensor "
             "methods (F.relu, x.relu(), F.max_pool2d, F.dropout, ...), x * c, x / c and -x by a number, "
             "x.mean(dims) and x.sum(dims) (keepdim when flattened after), Flatten, a final log_softmax or "
             "softmax over the classes, "
             "a + b, a - b and a * b of two branches (residual blocks with any "
             "shortcut, gates), GLU of a Linear's or a one-group convolution's units, BatchNorm1d/2d, LayerNorm, "
             "RMSNorm, GroupNorm, InstanceNorm1d/2d, "
             "MultiheadAttention (self-attention, batch first or sequence first, with or without biases, "
             "a causal attn_mask: a buffer or made from the length), "
             "F.scaled_dot_product_attention of q, k, v from one Linear's split or three Linears viewed as heads "
             "(nanoGPT's CausalSelfAttention; q and k may carry RoPE, Hugging Face's or GPT-J's), or written by hand, "
             "softmax(q @ k.transpose(-2, -1) * s, masked causally or not) @ v (nanoGPT's manual path; any scale s), "
             "heads that are modules, torch.cat along the last axis then a Linear (Karpathy's \"Let's build GPT\"), "
             "timm's Attention (qkv(x).reshape(N, T, 3, heads, width).permute(2, 0, 3, 1, 4).unbind(0), either path), "
             "an activation written out as a formula of one value (minGPT's NewGELU, x * torch.sigmoid(x): read by its "
             "values), "
             "F.layer_norm, "
             "TransformerEncoderLayer and TransformerEncoder "
             "(batch first or sequence first, relu or gelu, pre- or post-norm, the causal mask or none), "
             "TransformerDecoderLayer, TransformerDecoder and Transformer (alone on their two inputs, or run by a "
             "module of two inputs on them), "
             "Embedding (of the input ids), the sinusoidal position encoding added (a buffer), "
             "transpose/permute/movedim/x.mT of one sample axis, flatten/view/reshape merging trailing axes, "
             "x[:, t], a parameter added (a position embedding, or an Embedding of torch.arange or of a buffer of "
             "the positions, position_ids[:, :T]) or multiplied "
             "(a layer scale), x @ W of a (d, units) parameter (a projection) and F.linear(x, W, b) of parameters, "
             "F.normalize(x, dim=-1), a Linear's output cut in halves by chunk(2, -1) or split (a fused SwiGLU), "
             "an RMSNorm written out (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)), casts to a float "
             "dtype (x.float(), x.to(torch.float32), x.type_as(y)), F.rms_norm with a parameter or none, "
             "the input reshaped first (x.unsqueeze(1), x.view(-1, 1, 28, 28)), x * f(x) (a squeeze-and-"
             "excitation's scale * input, a (N, C, 1, 1) scale spread over the positions), "
             "torch.cat([tokens, x], 1) (a class "
             "token), torch.cat of values computed from one "
             "along dim 1 (a DenseNet layer, a U-Net skip, an Inception module), x.size()/x.shape arithmetic")


def float64_array(tensor) -> np.ndarray:
    return tensor.detach().to("cpu", torch.float64).numpy().copy()


def _float64(x):
    """A CPU copy of an input: float64, or token ids left as integers."""
    x = x.detach().to("cpu")
    return x.to(torch.float64) if x.is_floating_point() else x


def _padding(path: str, module) -> tuple:
    """A convolution's padding per axis; ``"valid"`` is none, ``"same"`` half the dilated
    kernel's span on each side (torch pads one more on the right when that span is odd:
    not converted)."""
    if module.padding == "valid":
        return (0,) * len(module.kernel_size)
    if module.padding == "same":
        spans = [d * (k - 1) for k, d in zip(module.kernel_size, module.dilation, strict=True)]
        if any(span % 2 for span in spans):
            raise _unsupported(path, module, "padding='same' with an even kernel (torch pads one side more); "
                                             "give the padding as integers")
        return tuple(span // 2 for span in spans)
    return tuple(module.padding)


def _unsupported(path: str, module, reason: str = "") -> InvalidArgument:
    why = f" ({reason})" if reason else ""
    return InvalidArgument(f"{path or 'the module'} ({type(module).__name__}) is not supported{why}; "
                           f"flowlaws converts {SUPPORTED}")


# --- one module -> (flowlaws layer or None for Identity, params) ----------------------


def swish(x, beta: float = 1.702):
    """x sigmoid(beta x): Swish-beta, CLIP's QuickGELU at 1.702 (torch has no call for it; a
    formula written out is read as this call, `_written_activations`)."""
    return x * torch.sigmoid(beta * x)


def rms_normalized(x, eps: float = 0.0):
    """x / sqrt(mean(x^2) + eps) over the last axis: an RMSNorm written out (Meta's and
    Hugging Face's Llama, llama2.c), which `_written_norms` reads as this call."""
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)


class _Called(nn.Module):
    """A call flowlaws defines (`swish`, `rms_normalized`: what a formula written out is read
    as) as a module of its numbers (`FUNCTIONS`)."""

    def __init__(self, function, **options: float):
        super().__init__()
        defaults = {name: p.default for name, p in inspect.signature(function).parameters.items()
                    if p.default is not inspect.Parameter.empty}
        self.function, self.options = function, {name: float(v) for name, v in (defaults | options).items()}

    def forward(self, x):
        return self.function(x, **self.options)


class L2Normalize(nn.Module):
    """``F.normalize(x, p, dim, eps)`` as a module (`FUNCTIONS`): over the last axis with p = 2
    it is x / ||x||, an RMSNorm without a gain at eps = 0 times 1 / sqrt(d) (`_resolved`;
    its eps bounds ||x|| below 1e-12 only)."""

    def __init__(self, p: float = 2.0, dim: int = 1, eps: float = 1e-12, out=None):
        super().__init__()
        self.p, self.dim, self.eps = p, dim, eps  # out: None, as fx records the call

    def forward(self, x):
        return nn.functional.normalize(x, self.p, self.dim, self.eps)


def _activation(module) -> Activation | None:
    simple = {nn.ReLU: "relu", nn.Tanh: "tanh", nn.Sigmoid: "sigmoid", nn.SiLU: "silu", nn.Mish: "mish",
              nn.ReLU6: "relu6", nn.Hardswish: "hardswish", nn.Hardsigmoid: "hardsigmoid", nn.SELU: "selu"}
    for cls, name in simple.items():
        if type(module) is cls:
            return Activation(name)
    if type(module) is nn.Hardtanh and (module.min_val, module.max_val) == (0.0, 6.0):
        return Activation("relu6")
    if type(module) is nn.LeakyReLU:
        return Activation("leaky_relu", (float(module.negative_slope),))
    if type(module) is nn.PReLU and module.weight.numel() == 1:
        return Activation("prelu", (1.0, float(module.weight.detach().cpu().reshape(()))))
    if type(module) is nn.GELU:
        return Activation("gelu" if module.approximate == "none" else "gelu_tanh")
    if type(module) in (nn.ELU, nn.CELU) and module.alpha == 1.0:  # CELU(1) is ELU
        return Activation("elu")
    if type(module) is nn.Softplus and module.beta == 1.0:
        return Activation("softplus")
    if isinstance(module, _Called) and module.function is swish:
        return Activation("swish", (module.options["beta"],))
    return None


def _convert(module, path: str, read=float64_array):
    """(layer, params) for one leaf module, each parameter tensor read by ``read`` (its
    value, or its gradient); (None, ()) for Identity."""
    if isinstance(module, nn.Identity):
        return None, ()
    if isinstance(module, _Direct):
        return module.layer, (module.value(read),)
    if isinstance(module, _Resolved):
        return module.layer, ()
    if isinstance(module, _Projections | _HeadModules | _Norm | _Halves | _Rows | _Affine | _Decoding | _DecoderPart):
        return module.converted(read)
    act = _activation(module)
    if act is not None:
        return act, ()
    if type(module) is nn.Hardtanh:
        raise _unsupported(path, module, f"({module.min_val}, {module.max_val}); flowlaws converts Hardtanh(0, 6), a "
                                         "ReLU6")
    if type(module) in (nn.ELU, nn.CELU):
        raise _unsupported(path, module, f"alpha={module.alpha}; flowlaws' elu has alpha 1")
    if type(module) is nn.Linear:
        bias = module.bias is not None
        return Dense(module.out_features, bias), (read(module.weight), *([read(module.bias)] if bias else []))
    if type(module) is nn.Embedding:  # a dense layer on one-hot tokens: E[x] = onehot(x) E, so W = E^T
        if module.max_norm is not None or module.scale_grad_by_freq or module.sparse:
            raise _unsupported(path, module, "max_norm (it rewrites the weights in the forward pass), "
                                             "scale_grad_by_freq and sparse gradients")
        return Dense(module.embedding_dim), (read(module.weight).T,)
    if type(module) in (nn.Conv1d, nn.Conv2d):
        if module.padding_mode != "zeros":
            raise _unsupported(path, module, "padding modes other than zeros")
        cls = Conv1d if type(module) is nn.Conv1d else Conv2d
        bias = module.bias is not None
        layer = cls(module.out_channels, tuple(module.kernel_size), tuple(module.stride), _padding(path, module), bias,
                    module.groups, tuple(module.dilation))
        return layer, (read(module.weight), *([read(module.bias)] if bias else []))
    if type(module) in (nn.ConvTranspose1d, nn.ConvTranspose2d):
        if module.padding_mode != "zeros":
            raise _unsupported(path, module, "padding modes other than zeros")
        transposed = ConvTranspose1d if type(module) is nn.ConvTranspose1d else ConvTranspose2d
        bias = module.bias is not None
        return (transposed(module.out_channels, tuple(module.kernel_size), tuple(module.stride), tuple(module.padding),
                           bias, module.groups, tuple(module.dilation), tuple(module.output_padding)),
                (read(module.weight), *([read(module.bias)] if bias else [])))
    if _global_average(module):
        return Mean(), ()
    if type(module) in ADAPTIVE:  # `_resolved` converts the others it can
        raise _unsupported(path, module, "only an output size dividing the input's, without return_indices")
    if type(module) in (nn.Dropout, nn.Dropout1d, nn.Dropout2d):  # a mask per entry or per channel: diagonal
        return Dropout(float(module.p)), ()
    if type(module) is nn.GroupNorm:
        params = (read(module.weight), read(module.bias)) if module.affine else ()
        return GroupNorm(bool(module.affine), float(module.eps), module.num_groups), params
    if type(module) in (nn.InstanceNorm1d, nn.InstanceNorm2d):  # a GroupNorm of one channel a group
        params = (read(module.weight), read(module.bias)) if module.affine else ()
        return GroupNorm(bool(module.affine), float(module.eps), module.num_features), params
    if type(module) is nn.RMSNorm:
        if len(module.normalized_shape) != 1:
            raise _unsupported(path, module, "RMSNorm over the last axis only")
        affine = module.weight is not None
        return RMSNorm(affine, _rms_eps(module.eps)), ((read(module.weight),) if affine else ())
    pools = {nn.MaxPool1d: MaxPool1d, nn.AvgPool1d: AvgPool1d, nn.MaxPool2d: MaxPool2d, nn.AvgPool2d: AvgPool2d}
    if type(module) in pools:
        dims = pools[type(module)].dims
        size = on_axes(module.kernel_size, dims)
        if module.ceil_mode or set(on_axes(getattr(module, "dilation", 1), dims)) != {1} \
                or getattr(module, "divisor_override", None) is not None \
                or not getattr(module, "count_include_pad", True):
            raise _unsupported(path, module, "only undilated windows in floor mode, a mean counting the padding, "
                                             "no divisor_override")
        return pools[type(module)](size, on_axes(module.stride or size, dims), on_axes(module.padding, dims)), ()
    if type(module) is nn.Flatten:
        if module.start_dim < 1 or module.end_dim != -1:
            raise _unsupported(path, module, "only Flatten(start_dim >= 1, end_dim=-1)")
        return Flatten(module.start_dim - 1), ()
    if type(module) is nn.LayerNorm:
        if len(module.normalized_shape) != 1:
            raise _unsupported(path, module, "LayerNorm over the last axis only")
        return _Norm(module.weight, module.bias, float(module.eps)).converted(read)
    if type(module) in (nn.BatchNorm1d, nn.BatchNorm2d):
        params = (read(module.weight), read(module.bias)) if module.affine else ()
        return BatchNorm(affine=bool(module.affine), eps=float(module.eps)), params
    if type(module) is nn.MultiheadAttention:
        return _attention(module, path, read)
    if type(module) is nn.TransformerEncoderLayer:
        return _encoder_layer(module, path, read)
    if type(module) is nn.TransformerEncoder:
        return _stack(module, path, read)
    if type(module) in DECODERS:
        raise _unsupported(path, module, "on one input (its memory is a second value): flowlaws converts it in a "
                                         "module of two inputs, the target's and the memory's (example_input=(a, "
                                         "b)), or alone, given (tgt, memory), or (src, tgt) for nn.Transformer")
    raise _unsupported(path, module)


@dataclass(frozen=True)
class _Resolved:
    """A module without parameters as the layer it computes at its input's shape (`_resolved`)."""

    layer: Any


@dataclass(frozen=True)
class _Direct:
    """A parameter the forward uses directly (not through a module): a position embedding
    added (`Offset`; ``rows``: the first T rows of an Embedding read at ``arange(T)``), a
    layer scale multiplied (`Scale`), class tokens put first (`Prepend`). ``value(read)``
    is the flowlaws parameter: ``read(tensor)``, its first ``rows`` rows, as ``shape``."""

    tensor: Any
    layer: Any
    shape: tuple
    rows: int | None = None

    def value(self, read):
        t = read(self.tensor)
        return (t if self.rows is None else t[:self.rows]).reshape(self.shape)


def _stack(module, path: str, read=float64_array):
    """nn.TransformerEncoder or nn.TransformerDecoder: its layers one after another (`_encoder_layer`,
    `_decoder_layer`), then its norm if any."""
    of_layer = _decoder_layer if type(module) is nn.TransformerDecoder else _encoder_layer
    pairs: list = []
    for k, layer in enumerate(module.layers):
        pairs += of_layer(layer, f"{path}.layers.{k}", read)[0]
    if module.norm is not None:
        pairs += _pairs(_convert(module.norm, f"{path}.norm", read))
    return pairs, tuple(p for _, params in pairs for p in params)


def _encoder_layer(module, path: str, read=float64_array):
    """nn.TransformerEncoderLayer as its layers: pre-norm (norm_first) x + drop(sa(norm1(x))),
    then x + drop(ff(norm2(x))); post-norm norm1(x + drop(sa(x))), then norm2(x + drop(ff(x))),
    with ff = linear2(drop(act(linear1(x)))). (layers, params): a list of (layer, params),
    and every parameter in the model's order."""
    attention = _attention(module.self_attn, f"{path}.self_attn", read)
    return _sublayers(module, path, read, [attention], ["dropout1", "dropout2"])


def _decoder_layer(module, path: str, read=float64_array):
    """nn.TransformerDecoderLayer as its layers: `_encoder_layer`'s, with x + drop2(mha(norm2(x),
    memory)) (post-norm: norm2(x + drop2(mha(x, memory)))) after the self-attention, its
    multihead_attn a `CrossAttention`; norm3 and dropout3 the feed-forward's."""
    attention = _attention(module.self_attn, f"{path}.self_attn", read)
    cross, cross_params = _attention(module.multihead_attn, f"{path}.multihead_attn", read)
    cross = CrossAttention(**{f.name: getattr(cross, f.name) for f in dataclasses.fields(cross) if f.init})
    return _sublayers(module, path, read, [attention, (cross, cross_params)], ["dropout1", "dropout2", "dropout3"])


def _sublayers(module, path: str, read, attentions: list, dropouts: list):
    """A Transformer layer's (layer, params) pairs, and every parameter in order: each
    attention (layer, params) in a residual block with its norm (norm1, norm2, ...) and
    dropout, then the feed-forward linear2(dropout(act(linear1(x)))) with the last norm and
    dropout; each norm first in its block (norm_first) or after it."""
    act = _sublayer_activation(module, path)
    norms = [_pairs(_convert(getattr(module, f"norm{k + 1}"), f"{path}.norm{k + 1}", read))
             for k in range(len(dropouts))]
    drops = [Dropout(float(getattr(module, name).p)) for name in dropouts]
    (inner, inner_params), (outer, outer_params) = (_convert(getattr(module, name), f"{path}.{name}", read)
                                                    for name in ("linear1", "linear2"))
    feed = ((inner, act, Dropout(float(module.dropout.p)), outer), (*inner_params, *outer_params))
    pairs = []
    for norm, drop, (layers, params) in zip(norms, drops, [
            *(((layer,), params) for layer, params in attentions), feed], strict=True):
        if module.norm_first:
            pairs.append((Residual((*(layer for layer, _ in norm), *layers, drop)),
                          (*(p for _, own in norm for p in own), *params)))
        else:
            pairs += [(Residual((*layers, drop)), params), *norm]
    return pairs, tuple(p for _, params in pairs for p in params)


def _pairs(converted) -> list:
    """A converted module's (layer, params) pairs: none for Identity, its list for a module of
    several layers (a LayerNorm without a bias, a Transformer layer)."""
    layer, params = converted
    return layer if isinstance(layer, list) else [] if layer is None else [(layer, params)]


def _sublayer_activation(module, path: str) -> Activation:
    """A Transformer layer's feed-forward activation: F.relu or F.gelu, or a module flowlaws
    reads (nn.GELU("tanh") included, which torch's own fast path would take for exact GELU)."""
    act = module.activation
    found = ({nn.functional.relu: Activation("relu"), nn.functional.gelu: Activation("gelu")}.get(act)
             if not isinstance(act, nn.Module) else _activation(act))
    if found is None:
        raise _unsupported(path, module, "activations other than F.relu, F.gelu and activation modules")
    return found


DECODERS = (nn.TransformerDecoderLayer, nn.TransformerDecoder, nn.Transformer)


@dataclass(frozen=True)
class _Decoding:
    """A decoder module converted whole (nn.TransformerDecoderLayer, nn.TransformerDecoder,
    or nn.Transformer, its encoder with it) as one `Decode` block whose memory is ``memory``
    rows long."""

    module: Any
    memory: int

    def converted(self, read):
        module = self.module
        decoder = _DecoderPart(module).converted(read)
        encoder = _stack(module.encoder, "encoder", read) if type(module) is nn.Transformer else ([], ())
        layers = [tuple(layer for layer, _ in pairs) for pairs, _ in (decoder, encoder)]
        return Decode(*layers, memory=self.memory), (*decoder[1], *encoder[1])


@dataclass(frozen=True)
class _DecoderPart:
    """A decoder module's decoder side as (layer, params) pairs: nn.Transformer's decoder
    stack, an nn.TransformerDecoder, or one layer (its cross-attentions read the memory of
    the `Decode` block it is converted into)."""

    module: Any
    causal: bool = False  # its self-attentions masked causally (a causal tgt_mask)

    def converted(self, read):
        module = self.module
        if type(module) is nn.Transformer:
            pairs = _stack(module.decoder, "decoder", read)
        else:
            pairs = (_stack if type(module) is nn.TransformerDecoder else _decoder_layer)(module, "", read)
        return _causally(pairs) if self.causal else pairs


def _decoding(module, example_input) -> tuple:
    """A decoder module (`DECODERS`) on its two inputs (tgt, memory), or nn.Transformer's
    (src, tgt): the model of input (T + S, d), the target's rows, then the memory's (or the
    source's), and (model, sources, normalized, batch axes, the inputs' order in the rows)."""
    if len(example_input) != 2 or not all(isinstance(t, torch.Tensor) and t.dim() == 3 for t in example_input):
        raise InvalidArgument(f"{type(module).__name__} takes example_input=(tgt, memory), or (src, tgt) for "
                              "nn.Transformer: two (N, T, d) tensors (sequence first unless batch_first)")
    axis, order = (0 if _batch_first(module) else 1), ((1, 0) if type(module) is nn.Transformer else (0, 1))
    rows = [example_input[k].shape[1 - axis] for k in order]
    source = _Decoding(module, rows[1])
    layer, params = source.converted(float64_array)
    model = Sequential((sum(rows), example_input[order[0]].shape[-1]), (layer,))
    _check_layout(module, model, params, tuple(example_input), axes=(axis, axis), packed_as=order)
    return model, (("", source),), None, (axis, axis), order


def packed(inputs, order: tuple, axis: int):
    """A module's several ``inputs`` (batch axis ``axis``) as its model's one: batch first,
    the rows of each in ``order`` one after another (a decoder's target, then its memory)."""
    return torch.cat([inputs[k].movedim(axis, 0) for k in order], dim=1)


def _attention(module, path: str, read=float64_array):
    biased = module.in_proj_bias is not None
    if module.bias_k is not None:
        raise _unsupported(path, module, "add_bias_kv")
    if not module._qkv_same_embed_dim:
        raise _unsupported(path, module, "equal query, key and value sizes")
    d = module.embed_dim
    W, b = read(module.in_proj_weight), read(module.in_proj_bias) if biased else None
    projections = [(W[k * d:(k + 1) * d], None if b is None else b[k * d:(k + 1) * d]) for k in range(3)]
    out = (read(module.out_proj.weight), None if module.out_proj.bias is None else read(module.out_proj.bias))
    return _heads(projections, out, module.num_heads)


def _heads(projections, out, heads: int, causal: bool = False, kv_heads: int = 0, rope: str = "",
           rope_base: float = ROPE_BASE, scale: float | None = None):
    """(Attention, params) from torch's projections: ``projections`` the (weight, bias)
    of the query, key and value (weights (d_out, d), bias None when unbiased), ``out``
    the output projection's (weight (d, d_out), bias); ``kv_heads`` key/value heads, each
    read by heads / kv_heads query heads in turn (torch's enable_gqa), 0 for one per head;
    ``rope`` the pairs the queries and keys rotate ("adjacent", "halves"; "" none) and
    ``rope_base`` its base; ``scale`` the scores' factor (None: 1/sqrt(width)): `_per_head` of
    each head's rows."""
    (Wq, bq), (Wk, bk), (Wv, bv) = projections
    width = Wq.shape[0] // heads
    rows = [slice(h * width, (h + 1) * width) for h in range(heads)]

    def split(W, b, count):
        return [(W[r], None if b is None else b[r]) for r in rows[:count]]

    groups = kv_heads or heads
    return _per_head(split(Wq, bq, heads), split(Wk, bk, groups), split(Wv, bv, groups), out, causal, kv_heads, rope,
                     rope_base, scale)


def _per_head(queries, keys, values, out, causal: bool = False, kv_heads: int = 0, rope: str = "",
              rope_base: float = ROPE_BASE, scale: float | None = None):
    """(Attention, params) from each head's (weight (width, d), bias or None): ``queries``
    one per query head, ``keys`` and ``values`` one per key/value group; ``out`` the
    output projection's (weight (d, heads width), bias or None). Biases on every
    projection, on the output's alone (``out_bias``), or on none; any other mix is a
    one-line error. flowlaws' order (`Attention.layout`): per group its query heads' Wq,
    its Wk and Wv, its query heads' Wo (as (d, width) and (width, d)); then every query
    bias, each group's key and value biases, and the output's bias."""
    heads, groups = len(queries), len(keys)
    Wo, bo = out
    width, per = queries[0][0].shape[0], heads // groups
    biased = {b is not None for _, b in (*queries, *keys, *values)}
    if len(biased) > 1 or (biased == {True} and bo is None):
        raise InvalidArgument("attention with a bias on some of its projections only; flowlaws converts biases on "
                              "the query, key, value and output projections, on the output's alone, or on none")
    rows = [slice(h * width, (h + 1) * width) for h in range(heads)]
    params = []
    for g in range(groups):
        own = range(g * per, (g + 1) * per)
        params += [queries[h][0].T for h in own] + [keys[g][0].T, values[g][0].T] + [Wo[:, rows[h]].T for h in own]
    bias = biased == {True}
    if bias:
        params += [b for _, b in queries] + [b for g in range(groups) for _, b in (keys[g], values[g])]
    if bo is not None:
        params.append(bo)
    layer = Attention(heads, width, width, kv_heads=kv_heads, rope=bool(rope), bias=bias, causal=causal,
                      rope_halves=rope == "halves", rope_base=rope_base, scale=_scale(scale, width),
                      out_bias=bo is not None and not bias)
    return layer, tuple(
        p if isinstance(p, torch.Tensor) else np.ascontiguousarray(p) for p in params)


def _weight_and_bias(linear, read, rows=slice(None)) -> tuple:
    """A Linear's (weight, bias or None), read by ``read`` (views where it gives views), at ``rows``."""
    return read(linear.weight)[rows], None if linear.bias is None else read(linear.bias)[rows]


@dataclass(frozen=True)
class _Projections:
    """Self-attention written with its own projections, as nanoGPT's CausalSelfAttention:
    q, k, v = c_attn(x).split(d, 2) (or three Linear modules), each viewed as (N, T, heads,
    width) and transposed, F.scaled_dot_product_attention, transposed back and viewed as
    (N, T, d), then c_proj. ``qkv``: the fused Linear, or the three."""

    qkv: tuple
    out: Any
    heads: int
    causal: bool
    kv_heads: int = 0  # F.scaled_dot_product_attention(..., enable_gqa=True) of fewer key/value heads
    rope: str = ""  # the pairs RoPE rotates in q and k (`_derived`): "adjacent", "halves", or none
    rope_base: float = ROPE_BASE
    scale: float | None = None  # the scores' factor (F.scaled_dot_product_attention's scale); None: 1/sqrt(width)

    def converted(self, read):
        if len(self.qkv) == 1:
            d = self.qkv[0].out_features // 3
            projections = [_weight_and_bias(self.qkv[0], read, slice(k * d, (k + 1) * d)) for k in range(3)]
        else:
            projections = [_weight_and_bias(linear, read) for linear in self.qkv]
        return _heads(projections, _weight_and_bias(self.out, read), self.heads, self.causal, self.kv_heads,
                      self.rope, self.rope_base, self.scale)


@dataclass(frozen=True)
class _HeadModules:
    """Self-attention whose heads are modules of their own (Karpathy's "Let's build GPT"):
    each head's query, key and value Linears of one input, attention on (N, T, width),
    the heads' outputs concatenated along the last axis, then a Linear. ``heads``: each
    head's (query, key, value) Linears."""

    heads: tuple
    out: Any
    causal: bool
    scale: float | None = None

    def converted(self, read):
        queries, keys, values = ([_weight_and_bias(head[k], read) for head in self.heads] for k in range(3))
        return _per_head(queries, keys, values, _weight_and_bias(self.out, read), self.causal, scale=self.scale)


@dataclass(frozen=True)
class _Halves:
    """A Linear or convolution (of one group) whose output units a GLU splits in two,
    a * sigmoid(b) (``nn.GLU``, ``F.glu``): a gate of its two halves (`Gated`), each half's
    parameters rows of the module's (views of them where ``read`` gives views)."""

    module: Any

    def converted(self, read):
        (half, first), (_, second) = (_Rows(self.module, k).converted(read) for k in (0, 1))
        return Gated((half,), (half, Activation("sigmoid"))), (*first, *second)


@dataclass(frozen=True)
class _Rows:
    """Half ``k`` (0 or 1) of the output units of a Linear or convolution (of one group): its
    parameters' rows (views of them where ``read`` gives views). A GLU's halves (`_Halves`),
    or ``x1, x2 = w12(x).chunk(2, -1)`` (a fused SwiGLU's, `_Chain.split`)."""

    module: Any
    k: int

    def converted(self, read):
        layer, params = _convert(self.module, "", read)
        h = layer.channels // 2
        rows = slice(self.k * h, (self.k + 1) * h)
        return dataclasses.replace(layer, **{"units" if isinstance(layer, Dense) else "channels": h}), tuple(
            p[rows] for p in params)


@dataclass(frozen=True)
class _Affine:
    """A dense layer of parameters used directly: ``F.linear(x, W, b)`` (a custom Linear's
    forward), or ``x @ W`` of a (d, units) W, whose weight is W^T (``transposed``: OpenCLIP's
    projections)."""

    weight: Any
    bias: Any = None
    transposed: bool = False

    def converted(self, read):
        W = read(self.weight).T if self.transposed else read(self.weight)
        return Dense(W.shape[0], self.bias is not None), (W, *([] if self.bias is None else [read(self.bias)]))


@dataclass(frozen=True)
class _Norm:
    """A LayerNorm of the last axis from its parameters: ``F.layer_norm(x, (d,), weight, bias,
    eps)`` (nanoGPT's LayerNorm), or nn.LayerNorm; a weight without a bias is a gain after
    a LayerNorm without one (`Scale`). ``rms``: ``F.rms_norm(x, (d,), weight, eps)``'s
    RMSNorm, with a gain or none."""

    weight: Any
    bias: Any
    eps: float
    rms: bool = False

    def converted(self, read):
        if self.rms:
            return RMSNorm(self.weight is not None, self.eps), (() if self.weight is None else (read(self.weight),))
        if self.weight is None:
            return LayerNorm(affine=False, eps=self.eps), ()
        if self.bias is None:
            gain = read(self.weight)
            return [(LayerNorm(affine=False, eps=self.eps), ()), (Scale(), (gain,))], (gain,)
        return LayerNorm(affine=True, eps=self.eps), (read(self.weight), read(self.bias))


# --- the graph -> a chain of layers with residual blocks ------------------------------


@dataclass
class _Chain:
    """Layers and params in order, and the lineage of every traced value: the layers (by
    index) on its path from the input, so that a sum or a product of two values becomes a
    fork over the layers since their common ancestor."""

    layers: list = field(default_factory=list)  # (layer, params, the (path, module) its params come from)
    lineage: dict = field(default_factory=dict)  # fx node -> indices of the layers that made it
    vocabulary: int | None = None  # the input is token ids, read by an Embedding of this many rows
    normalized: str | None = None  # the output is the "log_softmax" or "softmax" of the last layer's
    traced: Any = None  # the module's torch.fx GraphModule (None: walked, not traced)
    axes: tuple = (0, 0)  # the batch axis of the module's input and output (1: sequence first, `_sequence_first`)
    tables: dict = field(default_factory=dict)  # node name -> a position table, as flowlaws computes it
    at: Any = None  # the graph node being read (where a conversion error points: `_located`)
    splits: dict = field(default_factory=dict)  # a Linear's output split in halves: `split`
    sample: tuple = ()  # the shape the module reshapes each input sample to first (`_input_reshape`), if it does
    casts: bool = False  # the module casts a value to another float dtype (checked without: `_Replacing`)
    input: Any = None  # the graph's placeholder it reads (of a module of two inputs: one side's, `_traced`)

    def tokens(self, module, path: str, reads_input: bool) -> None:
        """An Embedding may only read the module's input (token ids, one-hot to flowlaws)."""
        if not reads_input or self.vocabulary is not None:
            raise _unsupported(path, module, "an Embedding must read the module's input, the token ids, once")
        self.vocabulary = module.num_embeddings

    @property
    def sources(self) -> list:
        return [source for _, _, sources in self.layers for source in sources]

    def add(self, node, converted, source=None, after=None):
        """Append a module's layer (or its list of (layer, params), a composite module's),
        reading its parameters from ``source``."""
        params = converted[1]
        path = self.lineage.get(after, ()) if after is not None else self._last()
        for k, (one, own) in enumerate(_pairs(converted)):
            self.layers.append((one, tuple(own), [source] if params and k == 0 else []))
            path = (*path, len(self.layers) - 1)
        self.lineage[node] = path

    def _last(self):
        return tuple(range(len(self.layers)))

    def _last_alone(self, x) -> bool:
        """Whether x is the output of the last layer, and nothing but one node reads it."""
        path = self.lineage[x]
        return bool(path) and path[-1] == len(self.layers) - 1 and len(x.users) == 1

    def power(self, node, x, k: float) -> None:
        """relu(z) ** k (the squared ReLU of Primer and modded-nanoGPT): the ReLU that
        computed x, read by nothing else, becomes relu_power(k)."""
        if not self._last_alone(x) or self.layers[-1][0] != Activation("relu") or k < 1:
            raise InvalidArgument(f"{node.name}: a power converts as relu(z) ** k for k >= 1 (relu_power(k)), of a "
                                  "ReLU nothing else reads")
        _, params, sources = self.layers[-1]
        self.layers[-1] = (Activation("relu_power", (k,)), params, sources)
        self.lineage[node] = self.lineage[x]

    def glu(self, node, x, dim: int, ndim: int) -> None:
        """GLU(x) along ``dim`` (of an ``ndim``-axis value) of the Linear or convolution that
        computed x, read by nothing else: that layer becomes the gate of its halves (`_Halves`)."""
        sources = self.layers[-1][2] if self.layers else []
        module = sources[0][1] if len(sources) == 1 else None
        axis = {nn.Linear: ndim - 1, nn.Conv1d: 1, nn.Conv2d: 1}.get(type(module))
        if not self._last_alone(x) or axis is None or dim % ndim != axis or getattr(module, "groups", 1) != 1:
            raise InvalidArgument(f"{node.name}: a GLU converts as the gate of the two halves of the output units of "
                                  "a Linear or a convolution of one group that nothing else reads (along those units)")
        halves = _Halves(module)
        layer, params = halves.converted(float64_array)
        self.layers[-1] = (layer, params, [(sources[0][0], halves)])
        self.lineage[node] = self.lineage[x]

    def split(self, node, x, pieces, dim: int, ndim: int) -> None:
        """``x.chunk(2, -1)`` or ``x.split(h, -1)`` of the Linear that computed x, read by
        nothing else, into its two halves of output units: that layer becomes its two halves
        (`_Rows`), each a layer of its own on the Linear's input, read by the getitems
        (`half`), so that a gate of them, ``silu(x1) * x2``, is a `Gated` fork (a fused
        SwiGLU's ``w12``)."""
        sources = self.layers[-1][2] if self.layers else []
        module = sources[0][1] if len(sources) == 1 else None
        if not self._last_alone(x) or type(module) is not nn.Linear or dim % ndim != ndim - 1 or \
                pieces != [module.out_features // 2] * 2:
            raise InvalidArgument(f"{node.name}: a chunk or split converts as the two halves of the output units of "
                                  "a Linear that nothing else reads (chunk(2, -1), a fused SwiGLU's)")
        self.layers.pop()
        self.splits[node] = (self.lineage[x][:-1], sources[0][0], module)

    def half(self, node, split, k: int) -> None:
        """Item ``k`` of a `split`: that half of the Linear's units, a layer on its input."""
        before, path, module = self.splits[split]
        halves = _Rows(module, k)
        self.layers.append((*halves.converted(float64_array), [(path, halves)]))
        self.lineage[node] = (*before, len(self.layers) - 1)

    def broadcast(self, node, small, to: tuple, size: tuple):
        """The value ``small`` (a gate of shape ``size``, 1 on every spatial axis) spread over
        the positions of shape ``to`` (a squeeze-and-excitation's (C, 1, 1) scale of a (C, H,
        W) map) by a nearest upsampling of those factors, ahead of their product: the key
        that stands for the spread value."""
        dims = len(to) - 2
        if len(size) != len(to) or size[:2] != to[:2] or dims not in (1, 2) or any(n != 1 for n in size[2:]):
            raise InvalidArgument(f"{node.name}: a product of values of shapes {size} and {to}; flowlaws converts "
                                  "products of one shape, and a (N, C, 1, 1) gate of a (N, C, H, W) map")
        spread = ("broadcast", node.name)
        self.add(spread, ((Upsample1d if dims == 1 else Upsample2d)(tuple(to[2:])), ()), after=small)
        return spread

    def fork(self, node, a, b, kind):
        """a + b (``Residual``) or a * b (``Gated``) of two values computed from one: the
        layers since their common ancestor, split by branch, become one composite layer."""
        common, (first, second) = self._branches(node, (a, b), "a sum or product of two branches from one value "
                                                               "(a residual block, a gate)")
        if not first:
            first, second = second, first
        if kind is Residual and len(second) > len(first):
            first, second = second, first  # the longer branch is the block, the other the shortcut
        self._joined(node, common, (first, second), kind)

    def concatenated(self, node, parts) -> None:
        """torch.cat of values computed from one, along their first sample axis: the layers
        since their common ancestor, split by branch, become nested concatenations
        (concat[concat[A | B] | C] for three), each branch in its place (an empty one: the
        ancestor itself, a DenseNet layer's or a U-Net skip's cat(x, f(x)))."""
        common, branches = self._branches(node, parts, "torch.cat of values that branch from one value (a "
                                                       "DenseNet layer, a U-Net skip, an Inception module)")
        self._joined(node, common, branches, Concat)

    def _branches(self, node, values, what: str):
        """The common ancestor's lineage of ``values``, and each one's layers since: they must
        be all the layers appended since, each in one branch."""
        paths = [self.lineage[v] for v in values]
        common = 0
        while common < min(map(len, paths)) and len({p[common] for p in paths}) == 1:
            common += 1
        branches = [p[common:] for p in paths]
        start = paths[0][common - 1] + 1 if common else 0
        if sorted(k for b in branches for k in b) != list(range(start, len(self.layers))) or not any(branches):
            raise InvalidArgument(f"{node.name}: only {what} is supported")
        return paths[0][:common], branches

    def _joined(self, node, common, branches, kind) -> None:
        """The layers of ``branches`` (all since ``common``) replaced by one composite layer
        of them (several branches: nested, the first ones innermost)."""
        layer, *rest = [tuple(self.layers[k][0] for k in branch) for branch in branches]
        for other in rest:
            layer = (kind(layer, other),)
        params = tuple(p for branch in branches for k in branch for p in self.layers[k][1])
        sources = [source for branch in branches for k in branch for source in self.layers[k][2]]
        del self.layers[common[-1] + 1 if common else 0:]
        self.layers.append((layer[0], params, sources))
        self.lineage[node] = (*common, len(self.layers) - 1)


FLATTENS = {torch.flatten, "flatten", "view", "reshape"}
MOVES = {torch.transpose, "transpose", torch.swapaxes, "swapaxes", torch.permute, "permute", torch.movedim, "movedim"}
SIZES = {"size", "dim"}  # methods that read a value's shape, not its entries
ATTRIBUTES = {"shape", "ndim", "device", "dtype"}  # attributes that do
JOINS = {operator.add: Residual, torch.add: Residual, "add": Residual, operator.mul: Gated, torch.mul: Gated,
         "mul": Gated, operator.sub: Residual, torch.sub: Residual, "sub": Residual}
SUBTRACTIONS = (operator.sub, torch.sub, "sub")  # a - b: a sum with b negated
_POOL = ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")
_AVERAGE = ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override")


def _clamp(min=None, max=None) -> nn.Module:  # torch's argument names
    """``x.clamp(min, max)`` as the module it computes: a ReLU for min 0, a ReLU6 for (0, 6)."""
    if (min, max) in ((0, None), (0, 6)):
        return nn.ReLU() if max is None else nn.ReLU6()
    raise TypeError("flowlaws converts clamp(min=0) (a ReLU) and clamp(0, 6) (a ReLU6)")


# a functional call or tensor method -> the module that computes the same (or a function
# making it), and the names of its arguments after the input (torch's builtins have no
# signature to read them from)
FUNCTIONS: dict[Any, tuple[Callable[..., nn.Module], tuple[str, ...]]] = {
    **dict.fromkeys((torch.clamp, torch.clip, "clamp", "clip"), (_clamp, ("min", "max"))),
    **dict.fromkeys((torch.clamp_min, "clamp_min"), (_clamp, ("min",))),
    nn.functional.hardtanh: (nn.Hardtanh, ("min_val", "max_val")),
    **dict.fromkeys((torch.relu, nn.functional.relu, "relu"), (nn.ReLU, ())),
    **dict.fromkeys((torch.tanh, nn.functional.tanh, "tanh"), (nn.Tanh, ())),
    **dict.fromkeys((torch.sigmoid, nn.functional.sigmoid, "sigmoid"), (nn.Sigmoid, ())),
    nn.functional.silu: (nn.SiLU, ()), nn.functional.gelu: (nn.GELU, ("approximate",)),
    nn.functional.mish: (nn.Mish, ()), nn.functional.relu6: (nn.ReLU6, ()),
    nn.functional.hardswish: (nn.Hardswish, ()), nn.functional.hardsigmoid: (nn.Hardsigmoid, ()),
    nn.functional.elu: (nn.ELU, ("alpha",)), nn.functional.celu: (nn.CELU, ("alpha",)),
    nn.functional.selu: (nn.SELU, ()), torch.selu: (nn.SELU, ()),
    swish: (functools.partial(_Called, swish), ("beta",)),
    rms_normalized: (functools.partial(_Called, rms_normalized), ("eps",)),
    nn.functional.normalize: (L2Normalize, ("p", "dim", "eps")),
    nn.functional.softplus: (nn.Softplus, ("beta", "threshold")),
    nn.functional.leaky_relu: (nn.LeakyReLU, ("negative_slope",)),
    nn.functional.max_pool1d: (nn.MaxPool1d, _POOL), nn.functional.max_pool2d: (nn.MaxPool2d, _POOL),
    nn.functional.avg_pool1d: (nn.AvgPool1d, _AVERAGE), nn.functional.avg_pool2d: (nn.AvgPool2d, _AVERAGE),
    nn.functional.interpolate: (nn.Upsample, ("size", "scale_factor", "mode", "align_corners",
                                              "recompute_scale_factor")),
    nn.functional.adaptive_avg_pool1d: (nn.AdaptiveAvgPool1d, ("output_size",)),
    nn.functional.adaptive_avg_pool2d: (nn.AdaptiveAvgPool2d, ("output_size",)),
    nn.functional.adaptive_max_pool1d: (nn.AdaptiveMaxPool1d, ("output_size", "return_indices")),
    nn.functional.adaptive_max_pool2d: (nn.AdaptiveMaxPool2d, ("output_size", "return_indices")),
    nn.functional.dropout: (nn.Dropout, ("p", "training")), nn.functional.dropout1d: (nn.Dropout1d, ("p", "training")),
    nn.functional.dropout2d: (nn.Dropout2d, ("p", "training")),
}
SCALINGS = {operator.mul: False, torch.mul: False, "mul": False, operator.truediv: True, torch.div: True,
            "div": True}  # x * c and x / c (True: divides) by a number


def _as_module(node) -> nn.Module:
    """The module a functional call or tensor method computes, its arguments by name:
    ``F.max_pool2d(x, 2)`` is ``nn.MaxPool2d(2)``, ``F.dropout(x, p, training=False)``
    the identity, ``nn.Dropout(0)``; ``inplace`` changes no value."""
    cls, names = FUNCTIONS[node.target]
    arguments = {**dict(zip(names, node.args[1:], strict=False)), **node.kwargs}
    arguments.pop("inplace", None)
    if arguments.pop("antialias", False):  # F.interpolate's (no module takes it)
        raise InvalidArgument(f"{node.name}: interpolate with antialias=True; flowlaws converts nearest upsampling")
    if arguments.pop("training", True) is False:
        arguments["p"] = 0.0
    try:
        return cls(**arguments)
    except TypeError as error:
        raise InvalidArgument(f"{node.name}: {getattr(node.target, '__name__', node.target)} with arguments "
                              f"{arguments}: {error}") from None


def _scaling(node, computed) -> float | None:
    """c for ``x * c``, ``c * x`` or ``x / c`` of a computed value x and a number c (not 0),
    -1 for ``-x``, else None: a linear activation of slope c (``prelu(c,c)``)."""
    if node.target in NEGATIONS:
        return -1.0
    if node.target not in SCALINGS or len(node.args) != 2:
        return None
    a, b = node.args
    number = b if a in computed else a if b in computed and not SCALINGS[node.target] else None
    if isinstance(number, bool) or not isinstance(number, int | float) or not number:
        return None
    return 1.0 / number if SCALINGS[node.target] else float(number)


def _mean(node, shape, shape_of, convolved: bool = False) -> list:
    """``x.mean(dims)`` of a value of ``shape``: over every axis but the channels (``mean``)
    or over the positions of a (N, T, d) sequence (``mean(last)``); with keepdim only where
    every use flattens the kept axes away (``x.mean((2, 3), keepdim=True).flatten(1)``), or
    a convolution alone reads the (C, 1, 1) map (``convolved``: timm's squeeze-and-excitation;
    a fixed pool of the whole map). ``x.sum`` over the same axes is that mean times the n
    entries summed (a linear activation of slope n after it). ``shape_of``: a node's shape.
    The (layer, params) pairs."""
    dims = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
    dims = tuple(sorted(d % len(shape) for d in ((dims,) if isinstance(dims, int) else dims or ())))
    what = "sum" if node.target in SUMS else "mean"
    kept = tuple(n for axis, n in enumerate(shape) if axis not in dims)  # the shape without keepdim
    keepdim = node.kwargs.get("keepdim") or (len(node.args) > 2 and node.args[2])
    layer: Layer
    if keepdim and convolved and len(shape) in (3, 4) and dims == tuple(range(2, len(shape))):
        layer = (AvgPool1d if len(shape) == 3 else AvgPool2d)(tuple(shape[2:]))
    elif keepdim and not all(
            user.target in SIZES or (user.target in FLATTENS and shape_of(user) is not None
                                     and tuple(shape_of(user)) == kept) for user in node.users):
        raise InvalidArgument(f"{node.name}: {what} with keepdim=True converts only when flattened right after "
                              f"(x.{what}(dims, keepdim=True).flatten(1)), or read by a convolution alone")
    elif len(shape) >= 3 and dims == tuple(range(2, len(shape))):
        layer = Mean()
    elif len(shape) == 3 and dims == (1,):
        layer = Mean(last=True)
    else:
        raise InvalidArgument(f"{node.name}: {what} over dims {dims} of shape {tuple(shape)}; flowlaws converts the "
                              f"{what} over every axis after the channels, or over the positions of a (N, T, d) "
                              "sequence")
    n = float(np.prod([shape[d] for d in dims]))
    return [(layer, ())] + ([(Activation("prelu", (n, n)), ())] if what == "sum" else [])


SOFTMAXES = {nn.functional.log_softmax: "log_softmax", torch.log_softmax: "log_softmax", "log_softmax": "log_softmax",
             nn.functional.softmax: "softmax", torch.softmax: "softmax", "softmax": "softmax"}


def _normalization(node, modules) -> tuple | None:
    """(name, dim) of a log_softmax or softmax (a call, a method or a module), else None."""
    if node.op == "call_module" and type(modules[node.target]) in (nn.LogSoftmax, nn.Softmax):
        module = modules[node.target]
        return ("log_softmax" if isinstance(module, nn.LogSoftmax) else "softmax"), module.dim
    if node.op in ("call_function", "call_method") and node.target in SOFTMAXES:
        return SOFTMAXES[node.target], node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
    return None


POWERS = (operator.pow, torch.pow, "pow", torch.square, "square")


SPLITS = ("chunk", "split", torch.chunk, torch.split)


def _split_dim(node) -> int:
    """The dim of ``x.chunk(n, dim)`` or ``x.split(size, dim)`` (default 0)."""
    return node.args[2] if len(node.args) > 2 else node.kwargs.get("dim", 0)


def _pieces(node, shape: tuple) -> list:
    """The sizes of the pieces ``x.chunk(n, dim)`` or ``x.split(size or sizes, dim)`` cuts x
    (of ``shape``) into along dim."""
    n = shape[_split_dim(node) % len(shape)]
    size = node.args[1] if len(node.args) > 1 else node.kwargs.get("split_size_or_sections", node.kwargs.get("chunks"))
    if isinstance(size, list | tuple):
        return list(size)
    if node.target in ("chunk", torch.chunk):
        size = -(-n // size)
    return [min(size, n - a) for a in range(0, n, size)]


def _glu(node, modules) -> int | None:
    """The dim of ``nn.GLU(dim)(x)`` or ``F.glu(x, dim)``, else None."""
    if node.op == "call_module" and type(modules[node.target]) is nn.GLU:
        return modules[node.target].dim
    if node.op == "call_function" and node.target is nn.functional.glu:
        return node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", -1)
    return None


def _exponent(node) -> float | None:
    """k of ``x ** k``, ``x.pow(k)`` or ``torch.square(x)`` (2) for a number k, else None."""
    if node.target not in POWERS:
        return None
    if node.target in (torch.square, "square"):
        return 2.0
    k = node.args[1] if len(node.args) > 1 else node.kwargs.get("exponent")
    return None if isinstance(k, bool) or not isinstance(k, int | float) else float(k)


ADAPTIVE = {nn.AdaptiveMaxPool1d: nn.MaxPool1d, nn.AdaptiveMaxPool2d: nn.MaxPool2d, nn.AdaptiveAvgPool1d: nn.AvgPool1d,
            nn.AdaptiveAvgPool2d: nn.AvgPool2d}


def _convolved(node, modules) -> bool:
    """Whether a convolution alone reads ``node``'s value."""
    users = list(node.users)
    return len(users) == 1 and users[0].op == "call_module" and isinstance(modules[users[0].target],
                                                                           nn.Conv1d | nn.Conv2d)


def _global_average(module) -> bool:
    """An adaptive average pool of output size 1 on every axis: a `Mean`."""
    return type(module) in (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d) and set(
        np.atleast_1d(module.output_size).tolist()) == {1}


def _resolved(module, input_shape, path: str, convolved: bool = False):
    """A module whose layer depends on its input's shape (``input_shape()``) as that layer:
    an adaptive pool whose output size divides its input's as the pool with fixed windows
    it computes (windows of input / output size, stepping by their size; a global average
    pool stays one, `Mean`, unless a convolution reads it, ``convolved``: a squeeze-and-
    excitation's 1x1 convolutions read its (C, 1, 1) map), an upsampling by its factor per
    axis (`_upsampling`); any other module as it is."""
    if isinstance(module, nn.Upsample):
        return _Resolved(_upsampling(module, tuple(input_shape()), path))
    if isinstance(module, _Called) and module.function is rms_normalized:  # an RMSNorm without a gain
        return _Resolved(RMSNorm(False, module.options["eps"]))
    if isinstance(module, L2Normalize):
        shape = tuple(input_shape())
        if module.p != 2 or module.dim % len(shape) != len(shape) - 1:
            raise _unsupported(path, module, f"p={module.p}, dim={module.dim} on shape {shape}; flowlaws converts "
                                             "F.normalize with p=2 over the last axis")
        c = 1.0 / math.sqrt(shape[-1])
        return _Resolved([(RMSNorm(False, 0.0), ()), (Activation("prelu", (c, c)), ())])
    if type(module) not in ADAPTIVE or getattr(module, "return_indices", False) or (
            _global_average(module) and not convolved):
        return module
    dims = 1 if type(module) in (nn.AdaptiveMaxPool1d, nn.AdaptiveAvgPool1d) else 2
    sizes = tuple(input_shape()[-dims:])
    out = tuple(n if o is None else o for o, n in zip(on_axes(module.output_size, dims), sizes, strict=True))
    if any(n % o for n, o in zip(sizes, out, strict=True)):
        return module
    return ADAPTIVE[type(module)](tuple(n // o for n, o in zip(sizes, out, strict=True)))


def _upsampling(module, shape: tuple, path: str) -> Upsample1d | Upsample2d:
    """nn.Upsample (or F.interpolate) in mode "nearest" of a (N, C, L) or (N, C, H, W)
    input by an integer factor per axis, given as its scale_factor or its size."""
    dims = len(shape) - 2
    spatial = shape[2:]
    if module.size is not None:
        factors = tuple(o / n for o, n in zip(on_axes(module.size, dims), spatial, strict=True))
    else:
        factors = tuple(float(f) for f in on_axes(module.scale_factor, dims))
    if module.mode != "nearest" or dims not in (1, 2) or any(f != int(f) or f < 1 for f in factors):
        raise _unsupported(path, module, f"mode {module.mode!r}, factors {factors} on shape {shape}; flowlaws "
                                         "converts nearest upsampling of 1-d or 2-d samples by integer factors")
    return (Upsample1d if dims == 1 else Upsample2d)(tuple(int(f) for f in factors))


MEANS = ("mean", torch.mean)
SUMS = ("sum", torch.sum)
NEGATIONS = (operator.neg, torch.neg, "neg")


UNSQUEEZES = ("unsqueeze", torch.unsqueeze)


def _reshapes(node, modules) -> bool:
    """Whether ``node`` is a view, reshape, flatten or unsqueeze call, or an nn.Unflatten."""
    if node.op == "call_module":
        return isinstance(modules[node.target], nn.Unflatten)
    return node.op in ("call_function", "call_method") and node.target in (*FLATTENS, *UNSQUEEZES)


def _input_reshape(node, chain, shape) -> bool:
    """Whether ``node`` reshapes the module's input itself, its one reader, batch first,
    into a sample shape no flatten gives (a channel axis added, ``x.unsqueeze(1)``; an
    image from its pixels, ``x.view(-1, 1, 28, 28)`` or ``nn.Unflatten(1, (1, 28, 28))``
    first in an nn.Sequential): the model then reads its input in
    that shape (`model_input`), whose entries, in order, are the input's."""
    x = node.args[0]
    readers = [user for user in x.users if not _reads_shape(user)]  # x.size(0) reads no entry
    if x.op != "placeholder" or readers != [node] or chain.layers or chain.axes[0] != 0:
        return False
    before, after = shape(x), shape(node)
    if after[0] != before[0] or after == before:
        return False
    if node.target in FLATTENS:
        try:
            _flattened(node, before, after)
        except InvalidArgument:
            return True
        return False
    return True


def _flattened(node, before, after) -> Flatten | None:
    """``flatten``, ``view`` or ``reshape`` from shape ``before`` to ``after`` as a `Flatten`
    from the sample axis whose trailing axes it merges (None: the shape is unchanged)."""
    sample, out = tuple(before[1:]), tuple(after[1:])
    if after[0] == before[0]:
        for start in range(len(sample)):
            if out == (*sample[:start], int(np.prod(sample[start:]))):
                return Flatten(start) if start < len(sample) - 1 else None
    raise InvalidArgument(f"{node.name}: {node.target if isinstance(node.target, str) else node.target.__name__} "
                          f"from {tuple(before)} to {tuple(after)}; flowlaws converts reshapes that merge a sample's "
                          "trailing axes (flatten)")


def _order(node, ndim: int) -> list:
    """The axes ``transpose``/``swapaxes``/``permute``/``movedim``/``x.mT`` of a value of
    ``ndim`` axes puts in order: output axis k is input axis order[k]."""
    name = node.target if isinstance(node.target, str) else node.target.__name__
    args = list(node.args[1:]) + list(node.kwargs.values())
    order = list(range(ndim))
    if name == "getattr":  # x.mT: the last two axes swapped
        name, args = "transpose", [-2, -1]
    if name in ("transpose", "swapaxes"):
        a, b = (int(x) % ndim for x in args[:2])
        order[a], order[b] = order[b], order[a]
    elif name == "permute":
        order = [int(x) % ndim for x in (args[0] if len(args) == 1 and isinstance(args[0], tuple | list) else args)]
    else:
        order.insert(int(args[1]) % ndim, order.pop(int(args[0]) % ndim))
    return order


def _moved(node, ndim: int) -> MoveAxis | None:
    """``transpose``/``swapaxes``/``permute``/``movedim`` of a value of ``ndim`` axes as one
    `MoveAxis` of its sample axes (None: the order is unchanged)."""
    name = node.target if isinstance(node.target, str) else node.target.__name__
    order = _order(node, ndim)
    if order[0] != 0:
        raise InvalidArgument(f"{node.name}: {name} moves the batch axis; flowlaws converts moves of a sample's axes")
    sample = [a - 1 for a in order[1:]]
    if sample == sorted(sample):
        return None
    last = ndim - 2  # written -1: moveaxis(0,-1) is channels last, moveaxis(-1,0) channels first
    for source, destination in itertools.product(range(ndim - 1), repeat=2):
        move = MoveAxis(*(-1 if axis == last else axis for axis in (source, destination)))
        if move.out_shape(tuple(range(ndim - 1))) == tuple(sample):
            return move
    raise InvalidArgument(f"{node.name}: {name} to the order {tuple(order)}; flowlaws converts a move of one "
                          "sample axis (a transpose of a sequence, channels last or first)")


def _token(node, shape) -> Token:
    """``x[:, t]`` (or ``x[:, t, :]``) of a (N, T, d) sequence: its position t."""
    index = node.args[1]
    whole = slice(None)
    if len(shape) == 3 and isinstance(index, tuple) and len(index) in (2, 3) and index[0] == whole and \
            isinstance(index[1], int) and all(i == whole for i in index[2:]):
        return Token(index[1])
    raise InvalidArgument(f"{node.name}: indexing {index} of shape {tuple(shape)}; flowlaws converts x[:, t] of a "
                          "(N, T, d) sequence (a class token's read-out)")


def _direct_linear(node, direct) -> tuple[str, _Affine] | None:
    """(its path, its `_Affine`) for ``F.linear(x, W, b)`` of a 2-d parameter W and a
    parameter b or None used directly; else None."""
    options = dict(zip(("input", "weight", "bias"), node.args, strict=False)) | node.kwargs
    weight, bias = options.get("weight"), options.get("bias")
    if weight not in direct or len(direct[weight][3]) != 2 or (bias is not None and bias not in direct):
        return None
    path = direct[weight][0]
    return path.rpartition(".")[0] or path, _Affine(direct[weight][1], None if bias is None else direct[bias][1])


def _span(view) -> tuple[int, int]:
    """The first and last places of its storage a tensor's entries lie in (within)."""
    last = view.storage_offset() + sum((n - 1) * abs(stride) for n, stride in zip(view.shape, view.stride(),
                                                                                  strict=True) if n)
    return view.storage_offset(), last


def _positions_of(ids) -> int:
    """T when ``ids`` (a constant, leading axes of 1 allowed) is 0, 1, ..., T - 1 (Hugging
    Face's ``position_ids`` buffer, sliced by the length), else 0."""
    ids = torch.as_tensor(ids)
    if ids.is_floating_point() or ids.dim() == 0 or any(n != 1 for n in ids.shape[:-1]):
        return 0
    ids = ids.reshape(-1)
    return len(ids) if torch.equal(ids.cpu(), torch.arange(len(ids))) else 0


def _direct(node, layer_kind, source, value_shape, batch: int = 0) -> _Direct:
    """The `_Direct` source (and its layer) of a parameter used directly on a value of
    ``value_shape``: added (`Offset`: the sample's shape), multiplied (`Scale`: the last
    axis's length) or put first (`Prepend`: (k, d) tokens). ``batch``: the value's batch
    axis in the module (1: a (T, 1, d) parameter on a sequence-first value)."""
    path, tensor, rows, shape = source
    sample = tuple(value_shape[1:])
    if batch and len(shape) == len(value_shape) and shape[batch] == 1:
        shape = shape[:batch] + shape[batch + 1:]
    layer: Layer
    while len(shape) > 1 and shape[0] == 1 and len(shape) > (2 if layer_kind is Prepend else len(sample)):
        shape = shape[1:]
    if layer_kind is Offset and shape == sample:
        layer, shape = Offset(), sample
    elif layer_kind is Scale and shape[-1:] == sample[-1:] and int(np.prod(shape)) == sample[-1]:
        layer, shape = Scale(), sample[-1:]
    elif layer_kind is Prepend and len(shape) == 2 and len(sample) == 2 and shape[1] == sample[1]:
        layer = Prepend(shape[0])
    else:
        what = {Offset: "added to", Scale: "multiplying", Prepend: "put before"}[layer_kind]
        raise InvalidArgument(f"{node.name}: the parameter {path} of shape {tuple(tensor.shape)} {what} a value of "
                              f"shape {tuple(value_shape)}; flowlaws converts a tensor of the sample's shape added "
                              "(a position embedding), a gain of the last axis multiplied (a layer scale), and "
                              "(k, d) tokens put before a (T, d) sequence (a class token)")
    return _Direct(tensor, layer, shape, rows)


def _sinusoid(node, tensor, value_shape, batch: int = 0) -> tuple[Sinusoid, torch.Tensor]:
    """x + C of a constant C: the sinusoidal position encoding (`Sinusoid`) C equals, read off
    its values (its base from the sine of its second frequency at position 1), to
    ROPE_ROUNDINGS T float32 unit round-offs, relative (a table built in float32); and C as
    flowlaws computes it, in C's shape, for the conversion's check. ``batch``: the value's
    batch axis in the module (1: a (T, 1, d) table on a sequence-first value)."""
    sample, C = tuple(value_shape[1:]), tensor.detach().to("cpu", torch.float64)
    if batch and C.dim() == len(value_shape) and C.shape[batch] == 1:
        C = C.movedim(batch, 0)
    if node.target in SUBTRACTIONS or JOINS[node.target] is not Residual or C.dim() < 2 or \
            any(n != 1 for n in C.shape[:-2]) or tuple(C.shape[-2:]) != sample:
        raise InvalidArgument(f"{node.name}: a constant of shape {tuple(C.shape)} joined to a value of shape "
                              f"{tuple(value_shape)}; flowlaws converts the sinusoidal position encoding added to a "
                              "(N, T, d) sequence (x + self.pe[:, :T], a registered buffer)")
    table, (T, d) = C.reshape(sample).numpy(), sample
    tolerance = ROPE_ROUNDINGS * T * float(torch.finfo(torch.float32).eps)
    for halves in (False, True):
        sine = 1 if halves else 2  # the second frequency's, w_1 = base^(-2/d) < 1
        w = float(np.arcsin(np.clip(table[1, sine], -1.0, 1.0))) if T > 1 and sine < d - halves else 0.0
        layer = Sinusoid(float(f"{w ** (-d / 2):.6g}") if 0 < w < 1 else ROPE_BASE, halves)
        exact = table_of(T, d, layer.base, halves) if not (halves and d % 2) else None
        if exact is not None and np.abs(table - exact).max() <= tolerance:
            return layer, torch.tensor(exact).reshape(tensor.shape)
    raise InvalidArgument(f"{node.name}: the constant added to a value of shape {tuple(value_shape)} is not a "
                          "sinusoidal position encoding (sin and cos of t base^(-2i/d), interleaved or in halves); "
                          "flowlaws converts no other constant added")


ATTENTION = nn.functional.scaled_dot_product_attention


def _is_call(node, *targets) -> bool:
    return isinstance(node, torch.fx.Node) and node.op in ("call_function", "call_method") and node.target in targets


def _swaps_1_2(node) -> bool:
    """``x.transpose(1, 2)`` (or torch.transpose, swapaxes)."""
    return _is_call(node, "transpose", torch.transpose, "swapaxes", torch.swapaxes) and \
        sorted(int(a) for a in node.args[1:3]) == [1, 2]


def _projection(node, modules, shape, why):
    """One of q, k, v of a split self-attention: ``p.view(N, T, heads, width).transpose(1,
    2)`` with p a Linear's output or item i of ``c_attn(x).split(d, dim=-1)``, or item i of
    timm's ``qkv(x).reshape(N, T, 3, heads, width).permute(2, 0, 3, 1, 4).unbind(0)``
    (`_unbound`), after Identity modules or not (timm's q_norm, k_norm). (its interior
    nodes, the Linear(s) as (module, item or None), heads, x)."""
    passed = set()
    while node.op == "call_module" and isinstance(modules[node.target], nn.Identity):
        passed.add(node)
        node = node.args[0]
    if _is_call(node, operator.getitem) and _is_call(node.args[0], "unbind", torch.unbind):
        nodes, linear, heads, x = _unbound(node, modules, shape, why)
        return passed | nodes, linear, heads, x
    if passed:
        nodes, linear, heads, x = _projection(node, modules, shape, why)
        return passed | nodes, linear, heads, x
    view = node.args[0] if _swaps_1_2(node) else None
    if not _is_call(view, "view", "reshape") or len(shape(view)) != 4:
        raise why(f"{node.name} is not x.view(N, T, heads, width).transpose(1, 2)")
    nodes, linear, heads, x = _viewed(view, modules, shape, why)
    return {node, *nodes}, linear, heads, x


def _unbound(item, modules, shape, why):
    """Item i of ``qkv(x).reshape(N, T, 3, heads, width).permute(2, 0, 3, 1, 4).unbind(0)``
    (timm's Attention): (its nodes, (the Linear, i), heads, x)."""
    unbind = item.args[0]
    permute = unbind.args[0]
    dim = unbind.args[1] if len(unbind.args) > 1 else unbind.kwargs.get("dim", 0)
    reshape = permute.args[0] if _is_call(permute, *MOVES) else None
    linear = reshape.args[0] if _is_call(reshape, "view", "reshape") else None
    if dim != 0 or linear is None or len(shape(reshape)) != 5 or shape(reshape)[2] != 3 or \
            _order(permute, 5) != [2, 0, 3, 1, 4] or linear.op != "call_module" or \
            not isinstance(modules[linear.target], nn.Linear):
        raise why(f"{item.name} is not item i of qkv(x).reshape(N, T, 3, heads, width).permute(2, 0, 3, 1, 4)"
                  ".unbind(0), qkv a Linear")
    return {item, unbind, permute, reshape, linear}, (linear.target, item.args[1]), shape(reshape)[3], linear.args[0]


def _viewed(view, modules, shape, why):
    """``p.view(N, T, heads, width)`` with p a Linear's output or one of ``c_attn(x).split``'s
    three: (its nodes, the Linear as (module, item or None), heads, x)."""
    source = view.args[0]
    if _is_call(source, operator.getitem) and _is_call(source.args[0], "split"):
        split = source.args[0]
        linear = split.args[0]
        dim = _split_dim(split)
        if linear.op != "call_module" or not isinstance(modules[linear.target], nn.Linear) or dim % 3 != 2 or \
                shape(source)[-1] * 3 != modules[linear.target].out_features:  # (the split's size, maybe traced)
            raise why(f"{split.name} is not a Linear's output split in three along its last axis")
        return {view, source, split, linear}, (linear.target, source.args[1]), shape(view)[2], linear.args[0]
    if source.op == "call_module" and isinstance(modules[source.target], nn.Linear):
        return {view, source}, (source.target, None), shape(view)[2], source.args[0]
    raise why(f"{source.name} is not a Linear (or one of c_attn(x).split's three)")


ROPE_CHECKS = 2  # random queries a rotary embedding is checked on (`_rope_of`)
ROPE_ROUNDINGS = 64  # float32 round-offs per position a rotary embedding's angles may be off by (`_rope_of`)


def _derived(node, modules, shape, values, why):
    """A query, key or value computed from a projection ``p.view(N, T, heads, width)``
    (`_viewed`) by any code whose other inputs are constants or shapes (sin and cos
    buffers, ``torch.arange(T)``), checked by value (`_rope_of`): on random views it must
    equal, after ``transpose(1, 2)``, RoPE (each pair (2i, 2i + 1) or (i, i + width/2) at
    position t rotated by t b^(-2i/width), b its base, in single precision), each head
    repeated r times in turn (Hugging Face's ``repeat_kv``), or both. (its interior nodes,
    the Linear, heads, x, "adjacent", "halves" or "", b, r, the constants it reads:
    `_constants_of`)."""
    views, seen, stack = [], {node}, [node]
    while stack:  # the projections' views among its ancestors (not behind a module, or a shape read)
        x = stack.pop()
        if _reads_shape(x) or x.op == "call_module":
            continue
        for y in _operands(x):
            if y in seen:
                continue
            seen.add(y)
            if _is_call(y, "view", "reshape") and len(shape(y)) == 4 and y.args[0].op != "placeholder":
                with contextlib.suppress(InvalidArgument):
                    views.append((y, _viewed(y, modules, shape, why)))
                    continue
            stack.append(y)
    if len(views) != 1:
        raise why(f"{node.name} is not x.view(N, T, heads, width).transpose(1, 2), with or without a rotary "
                  "embedding or repeated heads")
    view, (nodes, linear, heads, x) = views[0]
    between = _between(view, node)
    constants = _constants_of(between, view)
    if constants is None:
        raise why(f"{node.name} is computed from {view.name} with other values than constants and shapes")
    read = list(dict.fromkeys(y for n in between for y in _operands(n) if y not in between and y is not view))
    out = shape(node)
    repeat = out[1] // heads if len(out) == 4 and out[1] % heads == 0 else 0
    found = values(view, between, read, shape(view), repeat) if repeat else None
    if found is None:
        raise why(f"{node.name} is not {view.name}.transpose(1, 2) with RoPE (at positions 0..T-1, the powers of "
                  "one base) or its heads repeated in turn")
    return {*nodes, *between}, linear, heads, x, *found, repeat, constants


def _reads_shape(node) -> bool:
    """``x.size()``, ``x.dim()``, ``x.shape``, ``x.dtype`` ...: what it reads of x is not its entries."""
    return _is_call(node, *SIZES) or node.target is len or \
        (node.target is builtins.getattr and node.args[1] in ATTRIBUTES)


def _between(start, end) -> list:
    """The nodes on every path from ``start`` to ``end`` (``end`` included), in graph order."""
    ahead, stack = set(), [start]
    while stack:
        for user in stack.pop().users:
            if user not in ahead:
                ahead.add(user)
                stack.append(user)
    behind, stack = {end}, [end]
    while stack:
        for y in _operands(stack.pop()):
            if y not in behind and y in ahead:
                behind.add(y)
                stack.append(y)
    return [n for n in start.graph.nodes if n in behind]


def _constants_of(between: list, start):
    """The nodes ``between`` reads besides ``start`` and one another, and every node behind
    them but an input or a value read for its shape alone (a buffer, its slices, positions
    from ``torch.arange(T)``); None when one reads a parameter, a module's output or an
    input's entries."""
    inside, found = {start, *between}, []
    stack = [(x, y) for x in between for y in _operands(x)]  # (a reader, what it reads)
    while stack:
        reader, y = stack.pop()
        if y in inside or y in found:
            continue
        if _reads_shape(reader):
            continue  # its shape only
        learned = y.op == "get_attr" and isinstance(_attribute(y.graph.owning_module, y.target), nn.Parameter)
        if y.op in ("call_module", "placeholder") or learned:
            return None
        found.append(y)
        stack += [(y, z) for z in _operands(y)]
    return found


def _owned(inside: set, constants: list) -> set:
    """The ``constants`` that serve the nodes ``inside`` alone (directly or through one
    another): a rotary embedding's sin and cos, which the queries and the keys share."""
    owned = set(inside)
    order = {n: k for k, n in enumerate(constants[0].graph.nodes)} if constants else {}
    for y in sorted(constants, key=lambda n: -order[n]):  # users before what they read
        if all(u in owned for u in y.users):
            owned.add(y)
    return owned - inside


def _rope_of(recorded: _Constants):
    """``values(view, between, constants, shape, repeat)`` for `_derived`: runs ``between``
    (on the float64 copy `_Constants.twin`) on random views of ``shape`` with ``constants``
    at their values on the example (``recorded``), and returns (pairing, base) of the RoPE
    it equals with each head repeated ``repeat`` times (pairing "" for none), or None. The
    base is read off the map (`_base`). Equal in single precision: sin and cos computed in
    float32 (Hugging Face's, whatever the module's dtype) are off by round-offs of the
    angle, which grows with the position; so to ROPE_ROUNDINGS T float32 unit round-offs,
    relative. A pairing (or a rotation of part of the features) misses by O(1); the angles
    themselves do not change the laws: a pair times any c + i s commutes with its complex
    scaling."""
    def values(view, between, constants, shape, repeat):
        twin = recorded.twin
        nodes = {n.name: n for n in twin.graph.nodes}
        kept = {c.name: recorded.get(c) for c in constants}
        if any(value is None for value in kept.values()):
            return None

        def run(x):
            """``between`` on the view x, or None where it fails."""
            runner = torch.fx.Interpreter(twin)
            runner.env = {nodes[name]: value for name, value in kept.items()} | {nodes[view.name]: x}
            with contextlib.suppress(Exception):
                for n in between:
                    runner.env[nodes[n.name]] = runner.run_node(nodes[n.name])
            result = runner.env.get(nodes[between[-1].name])
            return result if isinstance(result, torch.Tensor) else None

        generator = torch.Generator().manual_seed(0)
        tolerance = ROPE_ROUNDINGS * shape[1] * float(torch.finfo(torch.float32).eps)
        for pairing in ("", "adjacent", "halves"):
            base = _base(run, pairing, shape) if pairing else ROPE_BASE
            if _rotates(run, pairing, base, repeat, generator, shape, tolerance):
                return pairing, base
        return None

    return values


def _base(run, pairing: str, shape) -> float:
    """RoPE's base as ``run`` (a map of views, `_rope_of`) rotates: pair 1 at position 1 turns
    by b^(-2/width), read off the image of its first feature (6 significant digits; 10000
    when there is no such pair or angle: a map that is no RoPE fails the check after)."""
    width = shape[3]
    if width < 4 or shape[1] < 2:
        return ROPE_BASE  # one pair: its angle t b^0 does not depend on b
    first, second = (2, 3) if pairing == "adjacent" else (1, 1 + width // 2)
    x = torch.zeros(shape, dtype=torch.float64)
    x[0, 1, 0, first] = 1.0
    y = run(x)
    if y is None or y.dim() != 4:
        return ROPE_BASE
    angle = math.atan2(float(y[0, 0, 1, second]), float(y[0, 0, 1, first]))
    return float(f"{angle ** (-width / 2):.6g}") if 0 < angle < 1 else ROPE_BASE


def _rotates(run, pairing, base, repeat, generator, shape, tolerance) -> bool:
    """Whether ``run`` maps random views to their RoPE with ``pairing`` ("": none) and
    ``base``, each head repeated ``repeat`` times (`_derived`), to ``tolerance`` of their
    largest entry."""
    rope = Attention(shape[2], shape[3], 1, rope=bool(pairing), rope_halves=pairing == "halves", rope_base=base)
    for _ in range(ROPE_CHECKS):
        x = torch.randn(shape, generator=generator, dtype=torch.float64)
        result = run(x)
        expected = np.repeat(rope._rotate(x.transpose(1, 2).numpy()), repeat, axis=1)
        if result is None or tuple(result.shape) != expected.shape or \
                float(np.abs(result.numpy() - expected).max()) > tolerance * float(np.abs(expected).max()):
            return False
    return True


def _functional_norm(node, direct, shape) -> tuple[_Norm, str]:
    """``F.layer_norm(x, (d,), weight, bias, eps)`` of the last axis, its weight and bias
    parameters read directly (nanoGPT's LayerNorm), or ``F.rms_norm(x, (d,), weight, eps)``
    (its eps None: float64's machine epsilon, as nn.RMSNorm's): (its source, its path)."""
    rms = node.target is nn.functional.rms_norm
    names = ("normalized_shape", "weight", "eps") if rms else ("normalized_shape", "weight", "bias", "eps")
    options = dict(zip(names, node.args[1:], strict=False)) | node.kwargs
    weight, bias, d = options.get("weight"), options.get("bias"), shape(node.args[0])[-1]
    tensors = [direct[x][1] if x in direct else x for x in (weight, bias)]
    if any(t is not None and (not isinstance(t, torch.Tensor) or tuple(t.shape) != (d,)) for t in tensors) or \
            (weight is None and bias is not None) or (isinstance(options["normalized_shape"], tuple | list | int) and
                                                      tuple(np.atleast_1d(options["normalized_shape"])) != (d,)):
        raise InvalidArgument(f"{node.name}: F.{'rms' if rms else 'layer'}_norm of the last axis ({d}) with a weight"
                              f"{'' if rms else ' and a bias'} parameter of its size, a weight alone, or neither, is "
                              "supported")
    path = direct[weight][0].rpartition(".")[0] if weight in direct else node.name
    eps = _rms_eps(options.get("eps")) if rms else float(options.get("eps", 1e-5))
    return _Norm(tensors[0], tensors[1], eps, rms), path


def _rms_eps(eps) -> float:
    """An RMSNorm's eps; None (torch's default, its input dtype's machine epsilon) is
    float64's, the dtype flowlaws computes in."""
    return float(torch.finfo(torch.float64).eps if eps is None else eps)


ENTRYWISE = {operator.mul, operator.add, operator.sub, operator.truediv, operator.pow, operator.neg, torch.mul,
             torch.add, torch.sub, torch.div, torch.pow, torch.neg, torch.tanh, torch.sigmoid, torch.exp, torch.erf,
             torch.log1p, torch.square, nn.functional.softplus, "mul", "add", "sub", "div", "pow", "neg", "tanh",
             "sigmoid", "exp", "erf", "log1p", "square"}  # calls that map each entry alone, with numbers
WRITTEN = {  # activations a formula written by hand is read as (`_written_activations`): the torch call it equals
    "gelu": (nn.functional.gelu, {}), "gelu_tanh": (nn.functional.gelu, {"approximate": "tanh"}),
    "silu": (nn.functional.silu, {}), "mish": (nn.functional.mish, {}), "softplus": (nn.functional.softplus, {}),
    "elu": (nn.functional.elu, {}), "selu": (nn.functional.selu, {}), "sigmoid": (torch.sigmoid, {}),
    "tanh": (torch.tanh, {}), "swish": (swish, {}),  # with its beta, fitted (`_activation_of`)
}
PROBE = np.linspace(-6.0, 6.0, 241)  # where a written formula is compared with each activation


def _copied(graph, traced):
    """(the graph to rewrite, its nodes by name): a copy of the module's own graph, which
    still runs (its constants, the conversion's check), or ``graph`` when it is a copy
    already."""
    if graph is traced.graph:
        graph = copy.deepcopy(graph)
        graph.owning_module = traced  # (its get_attr nodes read the module's attributes)
    return graph, {n.name: n for n in graph.nodes}


def _written_activations(graph, traced, known):
    """The graph with each activation written out by hand as a formula of one value and
    numbers (minGPT's and Hugging Face's ``NewGELU``: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715
    x^3))); ``x * torch.sigmoid(x)``; ``0.5 x (1 + erf(x / sqrt 2))``) replaced by the torch
    call it equals on PROBE to 1e-12 (`WRITTEN`; the conversion's check then compares the
    module's own formula with it on the example). A formula no activation matches is left
    as it is. The rewrite is on a copy of the graph (the module's own still runs)."""
    regions = []
    taken: set = set()
    for y in reversed(list(graph.nodes)):
        if y in taken or not _is_call(y, *ENTRYWISE):
            continue
        found = _entrywise_region(y)
        if found is not None:
            x, nodes = found
            taken |= nodes
            act = _activation_of(traced, x, nodes, y)
            if act is not None:
                function, options = WRITTEN[act.name]
                regions.append((y, x, (function, {**options, **act.options}), nodes))
    return _replaced(graph, traced, known, regions)


def _replaced(graph, traced, known, found: list):
    """The graph with each (y, x, (function, options), y's nodes) of ``found`` replaced: y's
    uses read ``function(x, **options)`` instead, and the nodes that computed y, read by
    nothing else now, are erased. In a copy of the graph (`_copied`; the module's own still
    runs: its constants, the conversion's check); ``known`` gets the new nodes' shapes."""
    if not found:
        return graph
    graph, named = _copied(graph, traced)
    for y, x, (function, options), nodes in found:
        with graph.inserting_before(named[y.name]):
            call = graph.create_node("call_function", function, (named[x.name],), options,
                                     name=f"{y.name}_{function.__name__}")
        known[call.name] = known.get(y.name)
        named[y.name].replace_all_uses_with(call)
        _erase_unused(graph, [named[n.name] for n in nodes])
    return graph


RSQRTS, SQRTS = (torch.rsqrt, "rsqrt"), (torch.sqrt, "sqrt")
NORMS = ("norm", torch.norm, torch.linalg.norm, torch.linalg.vector_norm)
SQUARES = (operator.pow, torch.pow, "pow", torch.square, "square", operator.mul, torch.mul, "mul")


def _written_norms(graph, traced, known):
    """The graph with each RMSNorm written out, ``x * torch.rsqrt(x.pow(2).mean(-1,
    keepdim=True) + eps)`` (Meta's Llama, llama2.c, Hugging Face's LlamaRMSNorm; ``x /
    sqrt(...)``, ``x.square()``, ``x * x`` alike), replaced by `rms_normalized` (x, eps):
    an RMSNorm without a gain, its gain the parameter multiplied after (`Scale`). The
    rewrite is on a copy of the graph (the module's own still runs: the check)."""
    return _replaced(graph, traced, known, [(y, x, call, (y, *inner)) for y in graph.nodes
                                            for x, call, inner in [_rms_of(y, known)] if x is not None])


def _rms_of(y, known) -> tuple:
    """(x, the call it is as (function, options), the nodes between) when ``y`` is x *
    rsqrt(mean(x^2, -1, keepdim) + eps) or x / sqrt(...) of one value x (`rms_normalized`),
    or x / x.norm(dim=-1, keepdim=True) (CLIP's: ``F.normalize`` at eps 0), each node between
    read by the next alone; else (None,) * 3."""
    none = (None, None, None)
    if _is_call(y, *SCALINGS) and SCALINGS[y.target] and len(y.args) == 2 and _is_call(y.args[1], *NORMS) and \
            y.args[1].args[0] is y.args[0] and len(y.args[1].users) == 1:
        x, n = y.args
        options = dict(zip(("p", "dim", "keepdim"), n.args[1:], strict=False)) | n.kwargs
        shape = known.get(getattr(x, "name", None))
        p = options.get("p", options.get("ord", 2))
        if shape is not None and p in (2, "fro", None) and options.get("keepdim") and \
                tuple(np.atleast_1d(options.get("dim", -1)) % len(shape)) == (len(shape) - 1,):
            return x, (nn.functional.normalize, {"dim": -1, "eps": 0.0}), (n,)
        return none
    if _is_call(y, *SCALINGS) and len(y.args) == 2:
        a, b = y.args
        divides = SCALINGS[y.target]
        pairs = [(x, r) for x, r in (((a, b),) if divides else ((a, b), (b, a)))
                 if _is_call(r, *(SQRTS if divides else RSQRTS)) and len(r.users) == 1]
        if not pairs:
            return none
        x, r = pairs[0]
        s = r.args[0]
        eps = 0.0
        if _is_call(s, *ADDS) and len(s.users) == 1:
            m, eps = (s.args[0], s.args[1]) if isinstance(s.args[1], int | float) else (s.args[1], s.args[0])
            if not isinstance(eps, int | float):
                return none
        else:
            m = s
        dims = m.args[1] if len(m.args) > 1 else m.kwargs.get("dim")
        shape = known.get(getattr(x, "name", None))
        if not _is_call(m, *MEANS) or len(m.users) != 1 or shape is None or \
                not (m.kwargs.get("keepdim") or (len(m.args) > 2 and m.args[2])) or \
                tuple(np.atleast_1d(dims) % len(shape)) != (len(shape) - 1,):
            return none
        q = m.args[0]
        squares = _is_call(q, *SQUARES) and len(q.users) == 1 and (
            (q.target in ("square", torch.square) and q.args[0] is x) or
            (q.target in POWERS and q.args[0] is x and len(q.args) > 1 and q.args[1] == 2) or
            (q.target in (operator.mul, torch.mul, "mul") and q.args[:2] == (x, x)))
        if squares:
            return x, (rms_normalized, {"eps": float(eps)}), (r, s, m, q) if s is not m else (r, m, q)
    return none


def _entrywise_region(y):
    """(x, the nodes) when ``y`` is computed from one value x by at least two entrywise calls
    (`ENTRYWISE`) on it and numbers, each used inside alone but y; else None."""
    nodes, stack, sources = {y}, [y], set()
    while stack:
        node = stack.pop()
        for a in _operands(node):
            if a in nodes or a in sources:
                continue
            if _is_call(a, *ENTRYWISE):
                nodes.add(a)
                stack.append(a)
            else:
                sources.add(a)
    inside = all(u in nodes for n in nodes - {y} for u in n.users)
    return (sources.pop(), nodes) if len(sources) == 1 and len(nodes) >= 2 and inside else None


def _activation_of(traced, x, nodes, y) -> Activation | None:
    """The activation (of a `WRITTEN` name) the calls ``nodes`` compute from x to y, compared
    on PROBE to 1e-12 of each value's size; None when none matches (or the calls do not run).
    Swish's beta is the one its value at 1 gives, sigmoid(beta) (to 12 digits)."""
    runner = torch.fx.Interpreter(traced)
    runner.env = {x: torch.as_tensor(PROBE)}
    try:
        for node in (n for n in y.graph.nodes if n in nodes):
            runner.env[node] = runner.run_node(node)
        values = np.asarray(runner.env[y].detach(), dtype=float)
    except Exception:  # not a formula of one value after all (a shape, a dtype): left as it is
        return None
    if values.shape != PROBE.shape:
        return None
    at_one = float(values[np.argmin(np.abs(PROBE - 1.0))])  # a swish's sigmoid(beta)
    beta = float(f"{np.log(at_one / (1.0 - at_one)):.12g}") if 0.0 < at_one < 1.0 else 0.0
    candidates = [Activation(name) for name in WRITTEN if name != "swish"]
    for act in candidates + ([Activation("swish", (beta,))] if beta else []):  # swish(0) is z / 2: not one
        expected = act.apply((), PROBE)
        if np.all(np.abs(values - expected) <= 1e-12 * (1.0 + np.abs(expected))):
            return act
    return None


MATMULS = (operator.matmul, torch.matmul, "matmul")
SOFTMAX_CALLS = (nn.functional.softmax, torch.softmax, "softmax")
ADDS = tuple(target for target, kind in JOINS.items() if kind is Residual and target not in SUBTRACTIONS)
KEEPING = ("to", "type_as", "float", "double", "contiguous", nn.functional.dropout)  # calls that keep the probabilities
BLOCKED = -1e30  # a mask's fill at or below this blocks a score: -inf, or a dtype's finfo.min (Hugging Face's)


def _written_attentions(graph, traced, modules, constant, known):
    """The graph with each attention written by hand, ``softmax(q @ k.transpose(-2, -1) *
    s [masked]) @ v`` (nanoGPT's manual path, Karpathy's heads, timm's), replaced by
    ``F.scaled_dot_product_attention(q, k, v, is_causal=..., scale=s)``, which
    `_split_attentions` reads: the same function. The scores may be scaled by a product or a
    quotient, or q before them (by any number s, computed from sizes or not), masked by
    ``masked_fill`` of a constant condition or by adding a constant, the softmax a call, a
    method or an ``nn.Softmax``, and the probabilities pass a dropout or a dtype cast. A mask
    that is not the causal one is a one-line error. The rewrite is on a copy of the graph
    (the module's own still runs: its constants, the conversion's check); ``known`` gets the
    shapes of the new nodes."""
    found = [(node, dim, read) for node in graph.nodes if (dim := _softmax_dim(node, modules)) is not None
             and (read := _probabilities_read(node, modules)) is not None]
    if not found:
        return graph
    graph, nodes = _copied(graph, traced)
    for softmax, dim, (passed, end) in found:
        softmax, end = nodes[softmax.name], nodes[end.name]

        def why(reason, end=end):
            return InvalidArgument(f"{end.name}: attention written by hand: {reason}; flowlaws converts "
                                   "softmax(q @ k.transpose(-2, -1) * scale, masked causally or not) @ v of "
                                   "(N, heads, T, width) queries, keys and values (nanoGPT's manual path), or of "
                                   "(N, T, width) ones, each head a module (Karpathy's \"Let's build GPT\")")

        q, k, causal, scale, scored = _scores(softmax, dim, constant, lambda n: known.get(n.name), why)
        v = end.args[1]
        with graph.inserting_before(end):
            attention = graph.create_node("call_function", ATTENTION, (q, k, v), {"is_causal": causal, "scale": scale},
                                          name=f"{end.name}_attention")
        attention.meta["written"] = True  # (by hand: what `_split_attentions`' errors call it)
        known[attention.name] = known.get(end.name)
        end.replace_all_uses_with(attention)
        _erase_unused(graph, [end, *(nodes[n.name] for n in passed), softmax, *scored])
    return graph


def _probabilities_read(softmax, modules):
    """(the nodes between, the matmul) where a softmax's output, through calls that keep its
    values (a dropout, a dtype cast: `KEEPING`), is the first operand of a matmul; None
    when it is not (a softmax over the classes)."""
    passed, node = [], softmax
    while len(node.users) == 1:
        user = next(iter(node.users))
        if _is_call(user, *MATMULS) and user.args[0] is node:
            return passed, user
        dropout = user.op == "call_module" and isinstance(modules.get(user.target), nn.Dropout | nn.Identity)
        if not (dropout or _is_call(user, *KEEPING)):
            return None
        passed.append(user)
        node = user
    return None


def _softmax_dim(node, modules):
    """The dim of a softmax (a call, a method, or an ``nn.Softmax``); None for any other node."""
    if node.op == "call_module" and isinstance(modules.get(node.target), nn.Softmax):
        return modules[node.target].dim
    if _is_call(node, *SOFTMAX_CALLS):
        return node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
    return None


def _scores(softmax, dim, constant, shape, why) -> tuple:
    """(q, k, causal, s, the nodes from the scores' product to the softmax) of a softmax's
    input over ``dim``, ``(q @ k.transpose(-2, -1)) * s`` (or ``/ c``, or q scaled first),
    masked or not (`_written_attentions`)."""
    node, scored, causal = softmax.args[0], [], False
    if not isinstance(dim, int) or len(shape(softmax) or ()) not in (3, 4) or dim % len(shape(softmax)) != \
            len(shape(softmax)) - 1:
        raise why(f"a softmax over dim {dim}, not the keys (dim=-1)")
    if _is_call(node, "masked_fill", torch.masked_fill):
        fill = node.args[2] if len(node.args) > 2 else node.kwargs.get("value")
        condition = constant.get(node.args[1]) if isinstance(node.args[1], torch.fx.Node) else None
        if not isinstance(fill, int | float) or fill > BLOCKED or not isinstance(condition, torch.Tensor) or \
                condition.dtype != torch.bool or not _is_causal(condition):
            raise why("a masked_fill other than the causal mask's (-inf above the diagonal)")
        scored.append(node)
        node, causal = node.args[0], True
    elif _is_call(node, *ADDS) and any(isinstance(constant.get(x), torch.Tensor) for x in _operands(node)):
        mask = next(constant.get(x) for x in _operands(node) if isinstance(constant.get(x), torch.Tensor))
        if mask.dtype == torch.bool or not _is_causal(mask):
            raise why("an added mask other than the causal one (-inf above the diagonal, 0 elsewhere)")
        scored.append(node)
        node, causal = next(x for x in _operands(node) if constant.get(x) is None), True
    scale, product = _scaled(node, lambda x: _is_call(x, *MATMULS), constant, why)
    if product is None:
        raise why("the scores are not q @ k.transpose(-2, -1), scaled by a number or not")
    scored += [node] if node is not product else []
    q, scale_q = product.args[0], 1.0
    factor, unscaled = _scaled(q, lambda x: isinstance(x, torch.fx.Node) and constant.get(x) is None, constant, why)
    if unscaled is not None and unscaled is not q:  # timm's manual path: q = q * self.scale, then q @ k^T
        scored.append(q)
        q, scale_q = unscaled, factor
    scale *= scale_q
    transposed = product.args[1]
    k = transposed.args[0] if isinstance(transposed, torch.fx.Node) else None
    rank = len(shape(q) or ())
    order = _order(transposed, rank) if rank in (3, 4) and (_is_call(transposed, *MOVES) or (
        _is_call(transposed, builtins.getattr) and transposed.args[1] == "mT")) else None
    if order != [*range(rank - 2), rank - 1, rank - 2]:
        raise why("the scores are not q @ k.transpose(-2, -1) of (N, heads, T, width) or (N, T, width) queries and "
                  "keys")
    if not scale > 0:
        raise why(f"the scores are scaled by {scale:.6g}; flowlaws' attention scales them by a positive number")
    return q, k, causal, scale, [*scored, product, transposed]


def _scaled(node, inner, constant, why) -> tuple:
    """(s, x) where ``node`` is x * s, s * x or x / (1/s) by a number s (a literal, or a
    value of sizes and constants), x what ``inner`` accepts; (1, node) when ``node`` itself is
    such an x; (1, None) when neither."""
    if not _is_call(node, *SCALINGS):
        return (1.0, node) if inner(node) else (1.0, None)
    divides = SCALINGS[node.target]
    for x, factor in ((node.args[0], node.args[1]), (node.args[1], node.args[0]))[:1 if divides else 2]:
        if not inner(x):
            continue
        value = constant.get(factor) if isinstance(factor, torch.fx.Node) else factor
        if not isinstance(value, int | float | torch.Tensor) or getattr(value, "numel", lambda: 1)() != 1:
            raise why(f"{node.name} scales the scores by a value that is not one number")
        value = float(value)
        return (1 / value if divides else value), x
    return 1.0, None


def _scale(scale, width: int) -> float:
    """An attention's ``scale`` option: 0 (its default, 1/sqrt(width)) for None or that value
    to 1e-12, else the factor."""
    return 0.0 if scale is None or abs(scale * math.sqrt(width) - 1) <= 1e-12 else float(scale)


def _erase_unused(graph, removed: list) -> None:
    """Erase ``removed`` and what they alone read (a mask's buffer, a scale's sizes) once
    nothing uses them; nothing else (a value the module computes and leaves unused stays)."""
    stack, erased = list(removed), set()
    while stack:
        node = stack.pop()
        if node in erased or node.users or node.op in ("placeholder", "output"):
            continue  # (one still used is pushed again when its last user goes)
        operands = _operands(node)
        graph.erase_node(node)
        erased.add(node)
        stack += operands


def _attention_options(node) -> dict:
    """An F.scaled_dot_product_attention call's arguments after q, k, v, by name."""
    return dict(zip(("attn_mask", "dropout_p", "is_causal", "scale", "enable_gqa"), node.args[3:], strict=False)) | \
        node.kwargs


def _split_attentions(graph, modules, shape, values, skipped=frozenset()) -> tuple[set, dict]:
    """Every F.scaled_dot_product_attention of self-attention written with its projections
    (`_Projections`), but those ``skipped`` (heads that are modules, `_head_modules`): (the
    nodes it replaces, {its output projection's node: (x, source)}); ``values``:
    `_rope_of`'s check of what lies between a projection and the attention."""
    interior: set = set()
    ends: dict = {}
    for node in graph.nodes:
        if not _is_call(node, ATTENTION) or node in skipped:  # (``skipped``: heads that are modules, `_head_modules`)
            continue

        def why(reason, node=node):
            what = "attention written by hand" if node.meta.get("written") else "F.scaled_dot_product_attention"
            return InvalidArgument(f"{node.name}: {what}: {reason}; flowlaws converts "
                                   "self-attention written as nanoGPT's or Llama's (q, k, v from one Linear's "
                                   "split or three Linears, viewed as heads and transposed; q and k may carry "
                                   "RoPE, k and v repeated heads; is_causal; back and c_proj)")

        options = _attention_options(node)
        if len(shape(node)) == 3:
            raise why("a head on (N, T, width) values converts with the others, its output concatenated with "
                      "theirs along the last axis by torch.cat and read by a Linear (Karpathy's MultiHeadAttention)")
        if options.get("attn_mask") is not None:
            raise why("a mask")  # (dropout_p: a mask on the probabilities keeps every GL law)
        if options.get("scale") is not None and not (isinstance(options["scale"], int | float) and
                                                     options["scale"] > 0):
            raise why(f"a scale of {options['scale']!r}; give a positive number")
        parts, rope, repeats, constants = [], [], [], []
        for x in node.args[:3]:  # q, k, v: plain, or with RoPE and key/value heads repeated (`_derived`)
            try:
                part, pairing, repeat, read = _projection(x, modules, shape, why), ("", ROPE_BASE), 1, []
            except InvalidArgument:
                *part, kind, base, repeat, read = _derived(x, modules, shape, values, why)
                pairing = (kind, base)
            parts.append(tuple(part))
            rope.append(pairing)
            repeats.append(repeat)
            constants += read
        if rope[0] != rope[1] or rope[2][0] or repeats[0] != 1 or repeats[1] != repeats[2]:
            raise why("the queries and the keys are not rotated alike, the values are rotated, or the key and "
                      "value heads are not repeated alike")
        inputs = {x for *_, x in parts}
        linears = [linear for _, linear, _, _ in parts]
        fused = {item for _, item in linears} == {0, 1, 2} and len({path for path, _ in linears}) == 1
        separate = all(item is None for _, item in linears) and len({path for path, _ in linears}) == 3
        heads, kv_heads, v_heads = (found for _, _, found, _ in parts)
        grouped = kv_heads != heads and heads % kv_heads == 0 and (
            options.get("enable_gqa") or kv_heads * repeats[1] == heads)
        if len(inputs) != 1 or v_heads != kv_heads or (kv_heads != heads and not grouped) or not (fused or separate):
            raise why("q, k and v are not one input's projections with the same heads (or, with enable_gqa or "
                      "repeated, key and value heads dividing the query heads)")
        nodes: list = [user for user in node.users if _swaps_1_2(user)] if len(node.users) == 1 else []
        while nodes and len(nodes[-1].users) == 1 and _is_call(nodes[-1], "transpose", torch.transpose, "swapaxes",
                                                               torch.swapaxes, "contiguous", "view", "reshape"):
            nodes.append(next(iter(nodes[-1].users)))
        end = nodes[-1] if nodes else None
        if end is None or end.op != "call_module" or not isinstance(modules[end.target], nn.Linear) or \
                len(nodes) < 3 or not _is_call(nodes[-2], "view", "reshape") or len(shape(nodes[-2])) != 3:
            raise why("its output is not y.transpose(1, 2).contiguous().view(N, T, d) read by a Linear")
        inside = set().union(*(found for found, *_ in parts)) | {node, *nodes[:-1]}
        inside |= _owned(inside, list(dict.fromkeys(constants)))
        leaks = [x for x in inside for user in x.users if user not in inside and user is not end
                 and not _reads_shape(user)]  # (repeat_kv reads v.shape even when it repeats nothing)
        if leaks:
            raise why(f"{leaks[0].name} is used outside the attention")
        qkv = tuple(dict.fromkeys(modules[path] for path, _ in linears))
        source = _Projections(qkv, modules[end.target], heads, bool(options.get("is_causal")),
                              kv_heads if grouped else 0, *rope[0], options.get("scale"))
        interior |= inside
        ends[end] = (parts[0][3], source, end.target.rpartition(".")[0])  # the attention module's path
    return interior, ends


def _head_modules(graph, modules, shape) -> tuple[set, dict]:
    """Every self-attention whose heads are modules of their own (`_HeadModules`): a
    torch.cat along the last axis of F.scaled_dot_product_attention calls (or of attention
    written by hand, `_written_attentions`) on (N, T, width) queries, keys and values, each
    a Linear of one input, the cat read by a Linear: (the nodes it replaces, {its output
    projection's node: (x, source, the module's path)})."""
    interior: set = set()
    ends: dict = {}
    for node in graph.nodes:
        parts = node.args[0] if _is_call(node, *CATS) else ()
        if not parts or not all(_is_call(x, ATTENTION) and len(shape(x)) == 3 for x in parts):
            continue

        def why(reason, node=node):
            return InvalidArgument(f"{node.name}: attention heads concatenated: {reason}; flowlaws converts heads "
                                   "that are modules of their own as Karpathy's \"Let's build GPT\" writes them: "
                                   "query, key and value Linears of one input, (N, T, width), concatenated along "
                                   "the last axis and read by a Linear")

        dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
        options = [_attention_options(x) for x in parts]
        heads = [tuple(x.args[:3]) for x in parts]
        if dim % 3 != 2 or any(o.get("attn_mask") is not None for o in options):
            raise why(f"along dim {dim}" if dim % 3 != 2 else "a mask")
        if any(y.op != "call_module" or not isinstance(modules[y.target], nn.Linear) for h in heads for y in h) or \
                len({y.args[0] for h in heads for y in h}) != 1:
            raise why("a head's query, key or value is not a Linear of the input the others read")
        if len({(bool(o.get("is_causal")), o.get("scale")) for o in options}) != 1:
            raise why("the heads are not all causal, or not all scaled alike")
        end = next(iter(node.users)) if len(node.users) == 1 else None
        if end is None or end.op != "call_module" or not isinstance(modules[end.target], nn.Linear):
            raise why("the concatenation is not read by a Linear alone")
        inside = {node, *parts, *(y for h in heads for y in h)}
        leaks = [x for x in inside for user in x.users if user not in inside and user is not end
                 and not _reads_shape(user)]
        if leaks:
            raise why(f"{leaks[0].name} is used outside the attention")
        source = _HeadModules(tuple(tuple(modules[y.target] for y in h) for h in heads), modules[end.target],
                              bool(options[0].get("is_causal")), options[0].get("scale"))
        interior |= inside
        ends[end] = (heads[0][0].args[0], source, end.target.rpartition(".")[0])
    return interior, ends


def _inputs64(example_input) -> tuple:
    """The module's input (or its several) as float64 copies (token ids as they are)."""
    return tuple(map(_float64, example_input)) if isinstance(example_input, tuple) else (_float64(example_input),)


def _shapes(traced, example_input) -> dict:
    """The shape of every traced value, run on a float64 copy: the module itself is never
    run; None where it cannot run on the input (its conversion then says why)."""
    twin = copy.deepcopy(traced).to("cpu", torch.float64)
    # a module that cannot run on the input: its conversion says why (ShapeProp prints its traceback)
    with contextlib.suppress(Exception), contextlib.redirect_stderr(io.StringIO()):
        ShapeProp(twin).propagate(*_inputs64(example_input))
    return {n.name: getattr(n.meta.get("tensor_meta"), "shape", None) for n in twin.graph.nodes}


class _Constants:
    """What the traced module's nodes that do not read its input's entries compute (a buffer,
    its slice by a size, a causal mask made from the length, a rotary embedding's sin and
    cos), recorded in one run of its float64 copy (``twin``), made when first asked."""

    def __init__(self, traced, example_input):
        self.traced, self.example_input = traced, example_input
        self._twin: Any = None
        self._values: dict | None = None

    @property
    def twin(self):
        """The traced module in float64 on the CPU, made once."""
        if self._twin is None:
            self._twin = copy.deepcopy(self.traced).to("cpu", torch.float64)
        return self._twin

    def get(self, node):
        """The node's value on the example, or None (it reads the input's entries, or the
        module does not run on the example)."""
        if self._values is None:
            self._values = {}
            reads = {n.name for n in self.traced.graph.nodes if n.op == "placeholder"}  # the input's entries
            for n in self.traced.graph.nodes:
                if any(y.name in reads for y in _operands(n)) and not _reads_shape(n):
                    reads.add(n.name)  # (by name: the recorder runs the twin's nodes)
            values = self._values

            class Recorder(torch.fx.Interpreter):
                def run_node(self, n):
                    result = super().run_node(n)
                    if n.name not in reads:
                        values[n.name] = result
                    return result

            with contextlib.suppress(Exception), contextlib.redirect_stderr(io.StringIO()):
                Recorder(self.twin).run(*_inputs64(self.example_input))
        return self._values.get(node.name)

    def __call__(self, node):
        """The node's value; a one-line error where it has none."""
        value = self.get(node)
        if value is None:
            raise InvalidArgument(f"{node.name}: its value is unknown (the module does not run on example_input)")
        return value


def _operands(node) -> list:
    """The fx nodes among a node's arguments (inside tuples and lists too)."""
    found: list = []
    torch.fx.node.map_arg((node.args, node.kwargs), found.append)
    return found


class _BufferTracer(torch.fx.Tracer):
    """torch.fx's tracer with buffers as values of the graph (get_attr), so that code may
    slice one by a size (``self.pe[:, :x.size(1)]``), and ``len`` of a traced value recorded
    (its first size: ``generate_square_subsequent_mask(len(src))``; `_len_visible`)."""

    proxy_buffer_attributes = True

    def __init__(self):
        super().__init__(autowrap_functions=(len,))


@contextlib.contextmanager
def _len_visible(module):
    """``len`` in the namespaces of the forwards the module defines (not torch's own) while
    tracing, where torch.fx's autowrap looks (a builtin is not there); taken out after."""
    forwards = [f for f in {type(m).forward for m in module.modules()}
                if not getattr(f, "__module__", "torch.").startswith("torch.")]  # torch's own: not traced into
    spaces = {id(space): space for f in forwards for space in [getattr(f, "__globals__", None)]
              if isinstance(space, dict)}
    added = [space for space in spaces.values() if "len" not in space]
    for space in added:
        space["len"] = len
    try:
        yield
    finally:
        for space in added:
            space.pop("len", None)


def _defaults(module) -> dict:
    """The forward's arguments after the input that have defaults, at those defaults (the
    module is called with its input alone): torch.fx's concrete_args."""
    parameters = list(inspect.signature(module.forward).parameters.values())[1:]
    return {p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty}


@contextlib.contextmanager
def _untouched(module):
    """Every submodule's attributes (its parameters, buffers and children too) as they were
    before, after tracing: a forward that assigns one (pytorch/examples' word language model
    keeps ``self.src_mask``) would leave it a traced value."""
    saved = [(m, dict(vars(m)), *(dict(getattr(m, name)) for name in ("_parameters", "_buffers", "_modules")))
             for m in module.modules()]
    try:
        yield
    finally:
        for m, attributes, *registered in saved:
            vars(m).clear()
            vars(m).update(attributes)
            for name, entries in zip(("_parameters", "_buffers", "_modules"), registered, strict=True):
                getattr(m, name).clear()
                getattr(m, name).update(entries)


def _trace(module) -> torch.fx.GraphModule:
    """The module traced by torch.fx at its forward's defaults (`_defaults`), its buffers read
    as constants; where that fails, read as values of the graph (`_BufferTracer`). The
    module is left as it was (`_untouched`)."""
    with _untouched(module):
        return _traced_graph(module)


def _traced_graph(module) -> torch.fx.GraphModule:
    concrete = _defaults(module) or None
    try:
        tracer = torch.fx.Tracer()  # torch.fx.symbolic_trace, each node's code kept: errors name it (`_located`)
        tracer.record_stack_traces = True
        graph = tracer.trace(module, concrete_args=concrete)
        return torch.fx.GraphModule(tracer.root, graph, type(module).__name__)
    except Exception as error:  # the module's own code on symbolic values (a buffer sliced by x.size(1))
        try:
            tracer = _BufferTracer()
            tracer.record_stack_traces = True
            with _len_visible(module):
                graph = tracer.trace(module, concrete_args=concrete)
            return torch.fx.GraphModule(tracer.root, graph)
        except Exception:
            if isinstance(error, torch.fx.proxy.TraceError):
                raise error from None
            raise torch.fx.proxy.TraceError(f"{type(error).__name__}: {error}") from None


def _traced(module, chain: _Chain, example_input, side: str = ""):
    """Read ``module``'s graph into ``chain``; ``side`` "memory" or "target": of a module of
    two inputs that runs a Transformer decoder (`_encoder_decoder`), only the nodes that compute
    the decoder's memory (or the source nn.Transformer encodes), or all the others, the
    decoder's layers among them."""
    traced = _trace(module)
    chain.traced = traced
    known = _shapes(traced, example_input)
    constant = _Constants(traced, example_input)
    modules = dict(module.named_modules())
    chain.axes, axes, graph = _sequence_first(traced, example_input, modules, known)
    constants: dict = {}  # get_attr nodes: buffers and constants (a causal mask), by node
    direct: dict = {}  # nodes that are a parameter used directly: (path, tensor, rows of it used, its shape used)
    sizes: set = set()  # nodes that compute shapes, sizes or positions, not values
    head = None

    def shape(node):
        found = known.get(node.name)
        if found is None:
            raise InvalidArgument(f"{node.name}: the module does not run on example_input, so its shapes are unknown")
        return tuple(found)

    def value(node):
        """The one computed value among a call's operands (the others sizes or constants)."""
        values = [x for x in _operands(node) if x in chain.lineage]
        if len(values) != 1:
            raise InvalidArgument(f"{node.name}: {node.op} {getattr(node.target, '__name__', node.target)} of "
                                  f"{len(values)} computed values; flowlaws converts chains (with additive skips)")
        return values[0]

    graph = _written_norms(graph, traced, known)
    graph = _written_activations(graph, traced, known)
    graph = _written_attentions(graph, traced, modules, constant, known)
    interior, ends = _head_modules(graph, modules, shape)
    split = _split_attentions(graph, modules, shape, _rope_of(constant), interior)
    interior, ends = interior | split[0], ends | split[1]
    call, tgt, memory, given = _decoder_call(graph, modules) if side else (None, None, None, {})
    memory_side = _ancestors(memory) if side else set()
    for node in graph.nodes:
        chain.at = node
        operands = _operands(node)
        function = node.op in ("call_function", "call_method")
        if node in interior or (side and (node in memory_side) != (side == "memory")):
            continue  # a split attention's projections and heads: its output projection adds it; the other side's
        if node is call:
            part = _DecoderPart(modules[node.target], _decoder_masked(
                node, modules[node.target], given, lambda n: constants.get(n, constant.get(n) if n in sizes else None)))
            chain.add(node, _convert(part, node.target), (node.target, part), after=tgt)
            head = node
        elif node in ends:
            x, source, path = ends[node]
            chain.add(node, _convert(source, path), (path, source), after=x)
            head = node
        elif node.target in (nn.functional.layer_norm, nn.functional.rms_norm):
            source, path = _functional_norm(node, direct, shape)
            chain.add(node, _convert(source, path), (path, source), after=node.args[0])
            head = node
        elif node.op == "get_attr":
            constants[node] = _attribute(traced, node.target)
            if isinstance(constants[node], nn.Parameter):
                direct[node] = (node.target, constants[node], None, tuple(constants[node].shape))
        elif node.op == "placeholder" and node.args:
            sizes.add(node)  # an argument after the input, at its default (`_defaults`): no value
        elif node.op == "placeholder":
            if head is not None:
                raise InvalidArgument("the module takes more than one input; flowlaws models take one")
            head = chain.input = node
            chain.lineage[node] = ()
        elif _reads_shape(node) or node.target is torch._assert or node.target is torch.arange or \
                (function and operands and all(x in sizes for x in operands)):
            sizes.add(node)  # x.size(), x.shape[0], t // p, torch.arange(t), torch._assert(...): no value
        elif function and operands and all(x in constants or x in sizes for x in operands) and \
                not any(x in direct for x in operands):
            constants[node] = constant(node)  # a buffer sliced by a size, self.pe[:, :T]: a constant
        elif node.op == "call_module" and isinstance(modules[node.target], nn.Embedding) and \
                node.args[0] in sizes and node.args[0].target is torch.arange:
            target = modules[node.target]  # a position embedding, wpe(arange(T)): its first T rows
            direct[node] = (f"{node.target}.weight", target.weight, shape(node)[0], shape(node))
        elif node.op == "call_module" and isinstance(modules[node.target], nn.Embedding) and \
                node.args[0] in constants and _positions_of(constants[node.args[0]]):
            target = modules[node.target]  # wpe(self.position_ids[:, :T]), a buffer of arange: its first T rows
            direct[node] = (f"{node.target}.weight", target.weight, _positions_of(constants[node.args[0]]),
                            shape(node))
        elif (node.target == "expand" or _float_cast(node)) and node.args[0] in direct:
            direct[node] = direct[node.args[0]]  # a class token broadcast over the batch, pos.to(x.dtype)
        elif function and node.target in FLATTENS and node.args[0] in direct:
            direct[node] = (*direct[node.args[0]][:3], shape(node))  # cls.view(1, 1, -1)
        elif function and node.target in MATMULS and node.args[1] in direct and len(direct[node.args[1]][3]) == 2:
            x, (path, tensor, _, _) = value(node), direct[node.args[1]]  # x @ W: CLIP's projection
            source = _Affine(tensor, transposed=True)
            chain.add(node, _convert(source, path), (path, source), after=x)
            head = node
        elif node.target is nn.functional.linear and (linear := _direct_linear(node, direct)) is not None:
            path, source = linear  # F.linear(x, self.weight, self.bias): a custom Linear's forward
            chain.add(node, _convert(source, path), (path, source), after=value(node))
            head = node
        elif function and node.target in JOINS and any(x in direct for x in node.args[:2]):
            x = value(node)
            source = direct[next(a for a in node.args[:2] if a in direct)]
            kind = Offset if JOINS[node.target] is Residual else Scale
            source = _direct(node, kind, source, shape(x), axes.get(x.name) or 0)
            chain.add(node, _convert(source, node.name), (node.name, source), after=x)
            head = node
        elif function and node.target in JOINS and any(x in constants and x not in direct for x in node.args[:2]):
            x = value(node)
            table = next(a for a in node.args[:2] if a in constants)
            encoding, chain.tables[table.name] = _sinusoid(node, constants[table], shape(x), axes.get(x.name) or 0)
            chain.add(node, (encoding, ()), after=x)
            head = node
        elif function and node.target in CATS:
            parts = node.args[0]
            dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
            computed = all(x in chain.lineage for x in parts)
            if len(parts) < 2 or dim % len(shape(node)) != 1 or not (computed or (
                    len(parts) == 2 and parts[0] in direct and parts[1] in chain.lineage)):
                raise InvalidArgument(f"{node.name}: torch.cat of {len(parts)} tensors along dim {dim}; flowlaws "
                                      "converts computed values joined along dim 1 (torch.cat([x, f(x)], 1)) and "
                                      "learned tokens put before a (N, T, d) sequence, torch.cat([cls, x], 1)")
            if computed:
                chain.concatenated(node, parts)
                head = node
                continue
            source = _direct(node, Prepend, direct[parts[0]], shape(parts[1]))
            chain.add(node, _convert(source, node.name), (node.name, source), after=parts[1])
            head = node
        elif (normalized := _normalization(node, modules)) is not None:
            name, dim = normalized
            x = value(node)
            if not isinstance(dim, int) or dim % len(shape(node)) != len(shape(node)) - 1 or \
                    any(user.op != "output" for user in node.users):
                raise InvalidArgument(f"{node.name}: a {name} converts as the module's last step, over the last axis "
                                      f"(the classes), got dim={dim}: its output then ignores a shift of every logit")
            chain.normalized = name  # the model's output is the logits; its laws are cross-entropy's
            chain.lineage[node] = chain.lineage[x]
            head = node
        elif function and node.target in SPLITS:
            x = value(node)
            chain.split(node, x, _pieces(node, shape(x)), _split_dim(node), len(shape(x)))
        elif node.target is operator.getitem and node.args[0] in chain.splits:
            chain.half(node, node.args[0], node.args[1])
        elif (dim := _glu(node, modules)) is not None:
            x = value(node)
            chain.glu(node, x, dim, len(shape(x)))
            head = node
        elif _reshapes(node, modules) and _input_reshape(node, chain, shape):
            chain.sample = tuple(shape(node)[1:])  # x.unsqueeze(1), x.view(-1, 1, 28, 28): the model's input
            chain.lineage[node] = ()
            head = node
        elif node.op == "call_module":
            target = modules[node.target]
            if isinstance(target, nn.MultiheadAttention) and len({a for a in node.args[:3]}) != 1:
                raise _unsupported(node.target, target, "only self-attention mha(x, x, x)")
            if type(target) in MASKED:
                converted = _convert(target, node.target)
                if _causal(node, target, lambda n: constants.get(n, constant.get(n) if n in sizes else None)):
                    converted = _causally(converted)
                chain.add(node, converted, (node.target, target), after=node.args[0])
                head = node
                continue
            if isinstance(target, nn.Embedding):
                chain.tokens(target, node.target, node.args[0].op == "placeholder")
            if isinstance(target, nn.ConvTranspose1d | nn.ConvTranspose2d) and (
                    len(node.args) > 1 or node.kwargs.get("output_size") is not None):
                raise _unsupported(node.target, target, "an output_size in the call; give output_padding instead")
            target = _resolved(target, lambda x=node.args[0]: shape(x), node.target, _convolved(node, modules))
            chain.add(node, _convert(target, node.target), (node.target, target), after=node.args[0])
            head = node
        elif node.op == "call_function" and node.target is operator.getitem and \
                isinstance(modules.get(getattr(node.args[0], "target", None)), nn.MultiheadAttention):
            if node.args[1] != 0:
                if node.users:
                    raise InvalidArgument(f"{node.name}: only the attention output (index 0) is supported")
                continue  # the attention weights, unused
            chain.lineage[node] = chain.lineage[node.args[0]]
            head = node
        elif function and (c := _scaling(node, chain.lineage)) is not None:
            chain.add(node, (Activation("prelu", (c, c)), ()), after=value(node))
            head = node
        elif function and (k := _exponent(node)) is not None:
            chain.power(node, value(node), k)
            head = node
        elif function and node.target in JOINS:
            a, b = node.args[:2]
            if not all(x in chain.lineage for x in (a, b)):
                raise InvalidArgument(f"{node.name}: only sums and products of two computed values are supported")
            if node.target in SUBTRACTIONS:
                negated = object()  # -b on b's branch
                chain.add(negated, (Activation("prelu", (-1.0, -1.0)), ()), after=b)
                b = negated
            elif JOINS[node.target] is Gated and shape(a) != shape(b):  # scale * x: a (N, C, 1, 1) gate
                a, b = (chain.broadcast(node, a, shape(b), shape(a)), b) if int(np.prod(shape(a))) < int(
                    np.prod(shape(b))) else (a, chain.broadcast(node, b, shape(a), shape(b)))
            chain.fork(node, a, b, JOINS[node.target])
            head = node
        elif function and (node.target == "contiguous" or _float_cast(node)) and node.args[0] in chain.lineage:
            chain.lineage[node] = chain.lineage[node.args[0]]  # x.float(), x.to(torch.float32), x.type_as(y)
            chain.casts = chain.casts or node.target != "contiguous"
            head = node
        elif function and (node.target in (*FLATTENS, *MOVES, operator.getitem, *MEANS, *SUMS) or
                           (node.target is builtins.getattr and node.args[1] == "mT")):
            x = value(node)
            layer: Layer | list | None
            if node.target in FLATTENS:
                layer = _flattened(node, shape(x), shape(node))
            elif node.target in MOVES or node.target is builtins.getattr:
                layer = _moved(node, len(shape(x)))
            elif node.target is operator.getitem:
                layer = _token(node, shape(x))
            else:
                layer = _mean(node, shape(x), lambda n: known.get(n.name), _convolved(node, modules))
            chain.add(node, (layer, ()), after=x)
            head = node
        elif function and node.target in FUNCTIONS:
            x = value(node)
            module = _resolved(_as_module(node), lambda x=x: shape(x), node.name, _convolved(node, modules))
            chain.add(node, _convert(module, node.name), after=x)
            head = node
        elif node.op == "output":
            if _output_value(node) is not head:
                raise InvalidArgument("the module's output is not the last value computed; flowlaws "
                                      "converts chains (with additive skips)")
        else:
            raise InvalidArgument(f"{node.name}: {node.op} {getattr(node.target, '__name__', node.target)} "
                                  f"is not supported; flowlaws converts {SUPPORTED}")
    if side == "memory" and head is not memory:
        raise InvalidArgument(f"{call.name}: its memory ({memory.name}) is not the last value its input computes; "
                              "flowlaws converts the memory's side as a chain (with additive skips)")


def _decoder_call(graph, modules) -> tuple:
    """(the call, its target's value, its memory's (or the source nn.Transformer encodes), its
    arguments by name) of the one Transformer decoder (`DECODERS`) a module of two inputs runs."""
    calls = [n for n in graph.nodes if n.op == "call_module" and type(modules[n.target]) in DECODERS]
    if len(calls) != 1:
        raise InvalidArgument(f"a module of two inputs converts when it runs one Transformer decoder "
                              f"({', '.join(t.__name__ for t in DECODERS)}) on them; it runs {len(calls)} "
                              "(discover_of(module, (a, b)) counts any module's laws)")
    call = calls[0]
    given = inspect.signature(modules[call.target].forward).bind(*call.args, **call.kwargs).arguments
    return call, given["tgt"], given["src" if type(modules[call.target]) is nn.Transformer else "memory"], given


def _ancestors(node) -> set:
    """``node`` and every node its value is computed from."""
    found, todo = {node}, [node]
    while todo:
        for x in _operands(todo.pop()):
            if x not in found:
                found.add(x)
                todo.append(x)
    return found


def _output_value(node):
    """What the module's output node returns, or the first entry of the tuple it returns
    (a language model's ``logits, loss``, the loss None without targets: what flowlaws, the
    check and `discover_of` read)."""
    out = node.args[0]
    return out[0] if isinstance(out, tuple | list) and out else out


def _attribute(module, target: str):
    for name in target.split("."):
        module = getattr(module, name)
    return module


MASKED = {  # the modules that take an attention mask: their forward's arguments after the input
    nn.MultiheadAttention: ("key", "value", "key_padding_mask", "need_weights", "attn_mask", "average_attn_weights",
                            "is_causal"),
    nn.TransformerEncoderLayer: ("src_mask", "src_key_padding_mask", "is_causal"),
    nn.TransformerEncoder: ("mask", "src_key_padding_mask", "is_causal"),
}


def _causal(node, module, known) -> bool:
    """Whether an attention call is masked causally: its mask (``attn_mask``, ``src_mask``,
    ``mask``) a constant equal to the causal mask (True, or -inf, above the diagonal): a
    registered buffer, or one made from a size
    (``nn.Transformer.generate_square_subsequent_mask(x.size(1))``); ``is_causal`` may say
    so too. ``known(node)``: a constant node's value, else None. Any other mask, or a key
    padding mask, is a one-line error."""
    names = MASKED[type(module)]
    options = dict(zip(names, node.args[1:], strict=False)) | node.kwargs
    if options.get(next(n for n in names if "padding" in n)) is not None:
        raise _unsupported(node.target, module, "a key padding mask")
    name = next(n for n in names if n.endswith("mask") and "padding" not in n)
    return _causal_mask(node.target, module, name, options.get(name), options.get("is_causal"), known)


def _causal_mask(path: str, module, name: str, mask, is_causal, known) -> bool:
    """Whether ``mask``, the argument ``name`` of a call of ``module`` (None: not given), is
    the causal mask (`_causal`); a one-line error where it is another."""
    if mask is None:
        if is_causal:
            raise _unsupported(path, module, f"is_causal without its {name}")
        return False
    tensor = known(mask) if isinstance(mask, torch.fx.Node) else None
    if not isinstance(tensor, torch.Tensor) or tensor.dim() != 2 or tensor.shape[0] != tensor.shape[1]:
        raise _unsupported(path, module, f"an {name} that is not a (T, T) constant; register the causal "
                                         "mask with register_buffer, or make it from the length "
                                         "(nn.Transformer.generate_square_subsequent_mask(T))")
    if not _is_causal(tensor):
        raise _unsupported(path, module, f"an {name} other than the causal one")
    return True


def _decoder_masked(call, module, given: dict, known) -> bool:
    """Whether a decoder's call (its arguments ``given`` by name) masks its target causally:
    ``tgt_mask`` the causal mask (`_causal_mask`); any other mask is a one-line error."""
    other = next((name for name, value in given.items()
                  if name not in ("src", "tgt", "memory", "tgt_mask", "tgt_is_causal") and value not in (None, False)),
                 None)
    if other is not None:
        raise _unsupported(call.target, module, f"{other}: flowlaws reads a decoder's causal tgt_mask, no other mask")
    return _causal_mask(call.target, module, "tgt_mask", given.get("tgt_mask"), given.get("tgt_is_causal"), known)


def _is_causal(mask) -> bool:
    """Whether a constant (..., T, T) mask blocks the future alone, alike at every leading
    index: True (bool), or -inf (added; BLOCKED or below), above the diagonal, and False or 0
    elsewhere."""
    if mask.dim() < 2 or mask.shape[-1] != mask.shape[-2]:
        return False
    mask = mask.detach().cpu()
    future = torch.triu(torch.ones(mask.shape[-2:], dtype=torch.bool), 1).expand(mask.shape)
    if mask.dtype == torch.bool:
        return torch.equal(mask, future)
    return torch.equal(mask <= BLOCKED, future) and not torch.any(mask[~future] != 0)


def _batch_first(module) -> bool:
    """Whether one of torch's attention modules (`MASKED`, `DECODERS`) reads (N, T, d) values, not (T, N, d)."""
    if isinstance(module, nn.Transformer):
        return bool(module.batch_first)
    attention = module if isinstance(module, nn.MultiheadAttention) else \
        module.self_attn if isinstance(module, nn.TransformerEncoderLayer | nn.TransformerDecoderLayer) else \
        module.layers[0].self_attn
    return bool(attention.batch_first)


def _batch_axes(traced, example_input, before: dict, axis: int) -> dict:
    """Each traced value's batch axis when the input's is ``axis``: the one axis whose length
    follows the batch's between the example (``before``: its values' shapes, `_shapes`) and
    twice its batch (None: a value without one, a constant or a size; "merged": one the batch
    changes otherwise, a batch axis merged with another)."""
    inputs = _inputs64(example_input)
    n = inputs[0].shape[axis]
    if any(t.dim() <= axis or t.shape[axis] != n for t in inputs):
        return {}  # (several inputs of other lengths on this axis: it is not the batch's)
    doubled = tuple(torch.cat([t, t], axis) for t in inputs)
    after = _shapes(traced, doubled if isinstance(example_input, tuple) else doubled[0])
    axes: dict = {}
    for name, a in before.items():
        b = after.get(name)
        if a is None or b is None:
            axes[name] = None
            continue
        changed = [k for k, (x, y) in enumerate(zip(a, b, strict=False)) if x != y]
        if not changed:
            axes[name] = None
        elif len(changed) == 1 and (a[changed[0]], b[changed[0]]) == (n, 2 * n):
            axes[name] = changed[0]
        else:
            axes[name] = "merged"
    return axes


def _sequence_first(traced, example_input, modules, known) -> tuple[tuple[int, int], dict, Any]:
    """((the input's batch axis, the output's), each value's batch axis, the graph to convert):
    (0, 0), {} and the module's graph unless the module runs torch's attention sequence first
    (`MASKED` with batch_first=False, on (T, N, d) values). Then the input's batch axis is
    the one (0 or 1) that gives each attention its own layout, and every value is read batch
    first, as flowlaws reads it: its shape in ``known`` with its batch axis first, and the
    axes the calls on it name rewritten to match (x.mean(0), x[0], x.transpose(0, 1), softmax
    and cat dims), in a copy of the graph (the module's own still runs: its constants, the
    conversion's check). What this misses, that check by value finds."""
    graph = traced.graph
    attentions = [n for n in graph.nodes if n.op == "call_module" and type(modules[n.target]) in (*MASKED, *DECODERS)]
    if all(_batch_first(modules[n.target]) for n in attentions):
        return (0, 0), {}, graph
    for axis in range(min(2, _inputs64(example_input)[0].dim())):
        axes = _batch_axes(traced, example_input, known, axis)
        if all(axes.get(n.args[0].name) == (0 if _batch_first(modules[n.target]) else 1) for n in attentions):
            break
    else:
        raise InvalidArgument("the module runs torch's attention with batch_first=False on values whose batch axis is "
                              "not the second; flowlaws reads (T, N, ...) and (N, T, ...) inputs")
    graph, _ = _copied(graph, traced)
    for node in graph.nodes:
        _read_batch_first(node, axes, known)
    output = _output_value(next(n for n in graph.nodes if n.op == "output"))
    return (axis, axes.get(output.name) or 0), axes, graph


CATS = (torch.cat, torch.concat, torch.concatenate)


def _read_batch_first(node, axes: dict, known: dict) -> None:
    """One traced value, and the call that makes it, read batch first (`_sequence_first`)."""
    batch = axes.get(node.name)
    if batch not in (0, 1, None):
        where = "merges the batch axis with another" if batch == "merged" else f"puts the batch axis at {batch}"
        raise InvalidArgument(f"{node.name}: {getattr(node.target, '__name__', node.target)} {where}; flowlaws "
                              "converts values whose batch axis is the first or, sequence first, the second")
    shape = known.get(node.name)
    if batch == 1 and shape is not None:
        known[node.name] = torch.Size([shape[1], shape[0], *shape[2:]])
    values = [x for x in _operands(node) if axes.get(x.name) is not None]
    if node.op not in ("call_function", "call_method") or not values:
        return
    x, rank, target = values[0], len(known[values[0].name]), node.target
    if target in MOVES or (target is builtins.getattr and node.args[1] == "mT"):
        raw, first, out = _order(node, rank), axes[x.name], batch or 0  # output axis k is input axis raw[k]
        read = [raw[{0: out, out: 0}.get(k, k)] for k in range(rank)]  # output axis k, batch first
        order = [{0: first, first: 0}.get(axis, axis) for axis in read]
        node.op, node.target, node.args, node.kwargs = "call_method", "permute", (x, *order), {}
        return
    if axes[x.name] != 1:
        return

    def swapped(dim):  # a sequence-first axis read batch first
        return {0: 1, 1: 0}.get(dim % rank, dim % rank)

    def with_dim(position: int, key: str = "dim"):
        dims = node.args[position] if len(node.args) > position else node.kwargs.get(key)
        if dims is None:
            return
        dims = swapped(dims) if isinstance(dims, int) else type(dims)(swapped(d) for d in dims)
        if len(node.args) > position:
            node.args = (*node.args[:position], dims, *node.args[position + 1:])
        else:
            node.kwargs = {**node.kwargs, key: dims}

    if target in (*MEANS, *SUMS, *SOFTMAXES, nn.functional.glu, *CATS):
        with_dim(1)
    elif target is operator.getitem and not isinstance(node.args[1], torch.fx.Node):
        index = node.args[1] if isinstance(node.args[1], tuple) else (node.args[1],)
        if Ellipsis in index[:2]:
            raise InvalidArgument(f"{node.name}: indexing {index} of a sequence-first value; write x[0] or x[:, 0]")
        index = (*index, *[slice(None)] * (2 - len(index)))
        node.args = (x, (index[1], index[0], *index[2:]))


def _causally(converted):
    """A converted attention, or a list of (layer, params) that hold some (an encoder's, a
    decoder's), with every self-attention causal."""
    def causal(layer):
        return dataclasses.replace(layer, causal=True) if type(layer) is Attention else layer

    layer, params = converted
    if isinstance(layer, list):
        return [(one.mapped(causal), own) for one, own in layer], params
    return layer.mapped(causal), params


def _walked(module, chain: _Chain, prefix: str = ""):
    for name, child in module.named_children():
        if type(child) in MASKED and not _batch_first(child):
            raise _unsupported(prefix + name, child, "batch_first=False in an nn.Sequential torch.fx cannot trace")
        if isinstance(child, nn.Sequential):
            _walked(child, chain, f"{prefix}{name}.")
        else:
            if isinstance(child, nn.Embedding):
                chain.tokens(child, prefix + name, not chain.layers)
            chain.add(object(), _convert(child, prefix + name), (prefix + name, child))


def from_torch(module, example_input) -> tuple[Sequential, tuple[np.ndarray, ...]]:
    """(model, params) of a torch module; checked on ``example_input`` (see the module
    docstring). `Converted` does the same and can read the live module again.

    >>> net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    >>> model, params = from_torch(net, torch.zeros(5, 3))
    >>> model.spec
    'mlp:3-4-2:relu:bias'
    """
    converted = Converted.of(module, example_input)
    return converted.model, converted.read()


TIED_ENTRIES = 1 << 24  # the largest part of a matrix of tied laws `Converted._tied_linear` ranks (128 MB)


def _columns_at(L, place):
    """The columns of sparse L that ``place`` maps (to its place; -1: dropped), in place order."""
    L = L.tocoo()
    keep = place[L.col] >= 0
    return scipy.sparse.csr_matrix((L.data[keep], (L.row[keep], place[L.col[keep]])),
                                   shape=(L.shape[0], int(place.max(initial=-1)) + 1))


def _sparse_rank(rows) -> int | None:
    """The rank of sparse ``rows`` (`rank_and_gap`'s), the sum of its connected parts' (rows
    that share no entry, directly or through others, have independent spans: the parts of
    the graph of rows and entries, an edge per nonzero), or None when a part has more than
    TIED_ENTRIES entries."""
    from scipy.sparse.csgraph import connected_components

    from flowlaws.discover import rank_and_gap

    rows = rows.tocoo()
    held = np.zeros(rows.shape[1], dtype=bool)
    held[rows.col] = True
    entry = (np.cumsum(held) - 1)[rows.col]  # the entries some row holds, numbered in order
    R, K = rows.shape[0], int(held.sum())
    graph = scipy.sparse.coo_matrix((np.ones(rows.nnz), (rows.row, R + entry)), shape=(R + K, R + K))
    count, part = connected_components(graph, directed=False)
    local = np.empty(R + K, dtype=int)  # each row's and entry's place among its part's rows or entries
    for nodes in (np.arange(R), R + np.arange(K)):
        order = np.argsort(part[nodes], kind="stable")
        ranked = part[nodes][order]
        local[nodes[order]] = np.arange(len(nodes)) - np.searchsorted(ranked, ranked)
    height, width = np.bincount(part[:R], minlength=count), np.bincount(part[R:], minlength=count)
    label = part[rows.row]
    order = np.argsort(label, kind="stable")
    bounds = np.searchsorted(label[order], np.arange(count + 1))
    total = 0
    for p in np.flatnonzero(np.diff(bounds)):  # the parts with nonzeros (an empty row is a part alone)
        if height[p] * width[p] > TIED_ENTRIES:
            return None
        chosen = order[bounds[p]:bounds[p + 1]]
        block = np.zeros((height[p], width[p]))
        block[local[rows.row[chosen]], local[R + entry[chosen]]] = rows.data[chosen]
        total += rank_and_gap(block)[0]
    return total


@dataclass(frozen=True)
class Converted:
    """A converted module: the flowlaws model and the modules its params come from, so
    that `read` gives the live params (or their gradients, or optimizer state) in
    flowlaws' layout at any time."""

    model: Sequential
    sources: tuple
    normalized: str | None = None  # the module ends in a (log_)softmax over the classes: `laws`
    batch_axes: tuple = (0, 0)  # of the module's input and output (1: sequence first, (T, N, ...)); the model's: 0
    packed_as: tuple = ()  # the order of the module's several inputs in the model's rows (`packed`); () for one

    def samples(self, inputs) -> np.ndarray:
        """The module's ``inputs`` (a tuple of them, for a decoder) as the model's (`model_input`)."""
        onehot = self.model.layers and isinstance(self.model.layers[0], OneHot)
        shape = self.model.input_shape
        return model_input(inputs, self.batch_axes[0], shape[-1] if onehot else None, shape, self.packed_as)

    def outputs(self, values) -> np.ndarray:
        """The module's outputs (or targets in their layout) as the model's: float64 numpy, batch first."""
        return float64_array(torch.as_tensor(values).movedim(self.batch_axes[1], 0))

    @classmethod
    def of(cls, module, example_input) -> Converted:
        return cls(*_conversion(module, example_input))

    def read(self, tensor_of=lambda t: t) -> tuple[np.ndarray, ...]:
        """Params in the model's order; ``tensor_of(parameter)`` picks what is read
        (``lambda t: t.grad`` for gradients); None when some tensor is missing."""
        def read(t):
            chosen = tensor_of(t)
            if chosen is None:
                raise LookupError
            return float64_array(chosen)

        try:
            return tuple(p for path, module in self.sources for p in _convert(module, path, read)[1])
        except LookupError:
            return ()

    def tensors(self, tensor_of) -> tuple:
        """The params in the model's layout as torch tensors, ``tensor_of(parameter)`` each
        (views of it where the layout allows: no copy, on its device, in its dtype)."""
        return tuple(p for path, module in self.sources for p in _convert(module, path, tensor_of)[1])

    def _reads(self) -> list[tuple[dict, tuple]]:
        """Per source module: the torch parameters it reads (by id), and the model's
        parameters it gives (views of them)."""
        spans = []
        for path, module in self.sources:
            read: dict = {}
            spans.append((read, _convert(module, path, lambda t, read=read: read.setdefault(id(t), t))[1]))
        return spans

    @property
    def attentions(self) -> list[str]:
        return _attentions(self.sources)

    @property
    def parameters(self) -> list:
        """The torch parameters the model reads, each once."""
        return list({key: t for read, _ in self._reads() for key, t in read.items()}.values())

    @property
    def read_by_params(self) -> list[dict]:
        """For each of the model's parameters, the torch parameters (by id) its source
        module reads: a superset of those the parameter is a view of."""
        return [read for read, given in self._reads() for _ in given]

    @property
    def tied(self) -> frozenset[int]:
        """The model's parameters that read entries of a torch parameter another module
        reads too (weight tying: a language model's head sharing its token embedding); two
        modules' disjoint rows of one parameter (a fused SwiGLU's halves, `_Rows`) are not
        tied. Each view's entries are taken as the span of its storage it lies in."""
        storages: dict = {}  # a storage -> (parameter, source, span) of each view of it
        for k, (source, p) in enumerate((source, p) for source, (_, ps) in enumerate(self._reads()) for p in ps):
            storages.setdefault(p.untyped_storage().data_ptr(), []).append((k, source, *_span(p)))
        return frozenset(k for views in storages.values() if len({source for _, source, _, _ in views}) > 1
                         for k, source, lo, hi in views
                         if any(other != source and a <= hi and lo <= b for _, other, a, b in views))

    def laws(self, loss=None) -> list:
        """The derived laws the module keeps: those of the converted model, less any law
        reading a tied parameter that the tied model does not keep (`_tied_linear`). A tied
        parameter's gradient is the sum of its uses', so a symmetry must act alike on both:
        the untied model's laws through it are not the tied one's, unless they are (the
        others are, since their gradients are unchanged)."""
        from flowlaws.invariants import laws

        tied = self.tied
        family = flowlaws_loss("cross_entropy" if self.normalized else loss)
        derived = laws(self.model, family)
        kept = self._tied_linear(derived, tied) if tied else set()
        return [law for law in derived if not tied.intersection(law.params) or id(law) in kept]

    def _tied_linear(self, derived, tied) -> set[int]:
        """The ids of the linear laws through a tied parameter that the tied model keeps.

        The model's parameters are T theta (T copies a tied torch entry to each of its
        uses), so a law h(T theta) = <g, T theta> changes along the tied gradient T^T grad
        L(T theta) by <T T^T g, grad L>: it is kept when T T^T g, the law with its tied
        entries' weight copied to every use, is a combination of derived linear laws (each
        orthogonal to grad L everywhere). C = T T^T g - g lies on the tied uses alone, so the
        combination is sought among the linear laws that lie within C's entries (a
        sufficient test: nanoGPT's token embedding, whose column sums trade with the
        position embedding, and its tied head's, which softmax cross-entropy ignores), by
        rank (`_sparse_rank`: part by part, each at most TIED_ENTRIES entries, else the law
        is not kept)."""
        from flowlaws.invariants.stacked import Stacked

        linear = [law for law in derived if law.order == 1 and tied.intersection(law.params)]
        if not linear:
            return set()
        shapes = [shape for _, shape in self.model.param_specs]
        ends = np.cumsum([0, *(int(np.prod(s)) for s in shapes)])
        columns = np.concatenate([np.arange(ends[k], ends[k + 1]) for k in sorted(tied)])
        place = np.full(ends[-1], -1)
        place[columns] = np.arange(len(columns))  # an entry's place among the tied uses
        basis = [law for law in linear if tied.issuperset(law.params)]
        tied_only = _columns_at(Stacked(basis, shapes).L, place).tocsc() if basis else None
        # T T^T - I on the tied uses: entry j' to every other use j of its torch entry
        uses = scipy.sparse.csr_matrix((np.ones(len(columns)), (np.arange(len(columns)),
                                                                self._positions()[columns])))
        pairs = (uses @ uses.T).tocoo()
        other = pairs.row != pairs.col
        copies = scipy.sparse.csr_matrix((np.ones(int(other.sum())), (columns[pairs.row[other]], pairs.col[other])),
                                         shape=(ends[-1], len(columns)))
        kept = set()
        for law in linear:
            C = (Stacked([law], shapes).L @ copies).tocsc()  # T T^T g - g: the other uses' weights
            C.eliminate_zeros()
            where = np.flatnonzero(C.getnnz(axis=0))  # C's entries
            if not len(where):
                kept.add(id(law))
                continue
            if tied_only is None:
                continue
            outside = np.ones(tied_only.shape[1], dtype=bool)
            outside[where] = False
            within = tied_only[np.flatnonzero(tied_only[:, outside].getnnz(axis=1) == 0)]
            if not within.shape[0]:
                continue
            joined = _sparse_rank(scipy.sparse.vstack([within, C]).tocsr())
            if joined is not None and joined == _sparse_rank(within.tocsr()):
                kept.add(id(law))
        return kept

    def laid_out(self, params) -> tuple:
        """(index, the model's parameters as tensors of it): ``params`` (the torch parameters)
        laid end to end as index = arange of their entries, each model parameter the view of
        index its layout takes of them (`tensors`), so its values are its entries' places."""
        starts = np.cumsum([0, *(t.numel() for t in params)])
        index = torch.arange(int(starts[-1]), dtype=torch.float64)
        probes = {id(t): index[a:b].view(t.shape) for t, a, b in zip(params, starts, starts[1:], strict=False)}
        return index, self.tensors(lambda t: probes[id(t)])

    def _positions(self) -> np.ndarray:
        """For each entry of the model's parameters (flat, in order), its torch entry's
        place among the torch parameters laid end to end (`laid_out`)."""
        return np.concatenate([t.detach().reshape(-1).numpy() for t in self.laid_out(self.parameters)[1]]).astype(int)


def _conversion(module, example_input):
    module = getattr(module, "_orig_mod", module)  # a torch.compile'd module: the original's parameters
    if not isinstance(module, nn.Module):
        raise InvalidArgument(f"from_torch needs a torch.nn.Module, got {type(module).__name__}")
    if type(module) in DECODERS:
        if not isinstance(example_input, tuple | list):
            raise InvalidArgument(f"{type(module).__name__} reads two inputs: give example_input=(tgt, memory), or "
                                  "(src, tgt) for nn.Transformer")
        return _decoding(module, example_input)
    if isinstance(example_input, tuple | list):
        return _encoder_decoder(module, tuple(example_input))
    if not isinstance(example_input, torch.Tensor) or example_input.dim() < 2:
        raise InvalidArgument("example_input must be a tensor with a batch axis, e.g. torch.zeros(8, 3)")
    chain = _Chain()
    try:
        _traced(module, chain, example_input)
    except InvalidArgument as error:
        raise _located(error, chain.at) from None
    except torch.fx.proxy.TraceError as error:
        if not isinstance(module, nn.Sequential):
            raise InvalidArgument(f"torch.fx cannot trace {type(module).__name__} ({error}); control flow that "
                                  "depends on the data, or a tensor made from a size, is not supported (an "
                                  "nn.Sequential is walked instead; discover_of counts any module's laws)") from None
        chain = _Chain()
        _walked(module, chain)
    layers = ((OneHot(),) if chain.vocabulary else ()) + tuple(layer for layer, _, _ in chain.layers)
    params = tuple(p for _, ps, _ in chain.layers for p in ps)
    samples = example_input.movedim(chain.axes[0], 0)
    shape = (chain.sample or tuple(samples.shape[1:])) + ((chain.vocabulary,) if chain.vocabulary else ())
    model = Sequential(shape, layers)
    _check_layout(module, model, params, example_input, chain.vocabulary, _attentions(chain.sources),
                  chain.normalized, (chain.traced, chain.tables) if chain.tables or chain.casts else None, chain.axes)
    return model, tuple(chain.sources), chain.normalized, chain.axes, ()


def _encoder_decoder(module, example_input: tuple) -> tuple:
    """A module of two inputs (batch first or sequence first) that runs one Transformer
    decoder: its target's value from one input, its memory's (or the source of an
    nn.Transformer) from the other alone. Each side is read as a chain (`_traced`'s
    ``side``), the decoder's layers in the target's: the model is one `Decode` block of the
    target's chain and the memory's (an nn.Transformer's encoder after it), on the two
    inputs' rows one after the other, which must have one width (the same token ids, or
    features)."""
    if len(example_input) != 2 or not all(isinstance(t, torch.Tensor) and t.dim() >= 2 for t in example_input):
        raise InvalidArgument(f"example_input is {len(example_input)} inputs; flowlaws converts a module of two "
                              "tensors that runs a Transformer decoder (nn.TransformerDecoderLayer, "
                              "nn.TransformerDecoder, nn.Transformer) on them; discover_of(module, (a, b, ...)) "
                              "counts any")
    chains = {side: _Chain() for side in ("target", "memory")}
    for side, chain in chains.items():
        try:
            _traced(module, chain, example_input, side)
        except InvalidArgument as error:
            raise _located(error, chain.at) from None
        except torch.fx.proxy.TraceError as error:
            raise InvalidArgument(f"torch.fx cannot trace {type(module).__name__} ({error})") from None
    target, memory = chains["target"], chains["memory"]
    path, part = next((path, part) for path, part in target.sources if isinstance(part, _DecoderPart))
    if type(part.module) is nn.Transformer:  # its encoder makes the memory of the source
        memory.add(object(), _convert(part.module.encoder, f"{path}.encoder"), (f"{path}.encoder", part.module.encoder))
    inputs = [n.name for n in target.traced.graph.nodes if n.op == "placeholder" and not n.args]
    order = tuple(inputs.index(chain.input.name) for chain in (target, memory))
    if target.vocabulary != memory.vocabulary or target.tables or memory.tables or target.casts or memory.casts:
        raise InvalidArgument("the two inputs of a module convert when both are token ids of one vocabulary, or "
                              "both features, with no constant tables or casts")
    axis = target.axes[0]
    shapes = [chain.sample or tuple(example_input[k].movedim(axis, 0).shape[1:])
              for chain, k in zip((target, memory), order, strict=True)]
    if len(shapes[0]) != len(shapes[1]) or shapes[0][1:] != shapes[1][1:]:
        raise InvalidArgument(f"the module's inputs have samples of shapes {shapes[0]} and {shapes[1]}: the model "
                              "reads both as rows of one sequence, so only their lengths may differ")
    decoder, encoder = (tuple(layer for layer, _, _ in chain.layers) for chain in (target, memory))
    block = Decode(decoder, encoder, memory=shapes[1][0])
    layers = ((OneHot(),) if target.vocabulary else ()) + (block,)
    params = tuple(p for chain in (target, memory) for _, ps, _ in chain.layers for p in ps)
    shape = (shapes[0][0] + shapes[1][0], *shapes[0][1:]) + ((target.vocabulary,) if target.vocabulary else ())
    model = Sequential(shape, layers)
    _check_layout(module, model, params, example_input, target.vocabulary,
                  _attentions(target.sources) + _attentions(memory.sources), target.normalized, axes=target.axes,
                  packed_as=order)
    return model, (*target.sources, *memory.sources), target.normalized, target.axes, order


TORCH_FILES = os.path.dirname(torch.__file__)


FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _float_cast(node) -> bool:
    """Whether ``node`` casts a value to a float dtype (``x.float()``, ``x.to(torch.float32)``,
    ``x.to(dtype)`` of a dtype read from a value, ``x.type_as(y)``): the identity, to flowlaws
    (which computes in float64; the conversion's check runs the module so, `_Replacing`)."""
    if node.op != "call_method" or node.target not in ("float", "double", "half", "bfloat16", "to", "type_as"):
        return False
    if node.target != "to":
        return True
    targets = [*node.args[1:], *node.kwargs.values()]
    return bool(targets) and all(t in FLOAT_DTYPES or isinstance(t, torch.device | str | bool) or (
        isinstance(t, torch.fx.Node) and t.target in (builtins.getattr,) and t.args[1] == "dtype") for t in targets)


def _located(error: InvalidArgument, node) -> InvalidArgument:
    """``error`` led by where the module's code computes ``node``, compiler style
    (``model.py:42: ...``): the innermost frame of its traced stack outside torch; as it
    was where the node has none (a node a rewrite made, the output)."""
    frames = re.findall(r'File "([^"]+)", line (\d+)', getattr(node, "stack_trace", None) or "")
    mine = [f"{path}:{line}" for path, line in frames if not path.startswith(TORCH_FILES)]
    return InvalidArgument(f"{mine[-1]}: {error}") if mine else error


def model_input(inputs, axis: int = 0, vocabulary: int | None = None, shape: tuple | None = None,
                packed_as: tuple = ()) -> np.ndarray:
    """A module's ``inputs`` (batch axis ``axis``) as its flowlaws model reads them: float64
    numpy, batch first, each sample in the model's input ``shape`` (the module may reshape
    its input first: `_input_reshape`), token ids as one-hot rows of ``vocabulary`` entries
    (the shape's last axis); several inputs (a decoder's) packed in the order ``packed_as``
    (`packed`)."""
    x = (packed(inputs, packed_as, axis) if packed_as else inputs.movedim(axis, 0)).detach().cpu()
    x = x if shape is None else x.reshape(len(x), *(shape[:-1] if vocabulary else shape))
    return one_hot(x, vocabulary) if vocabulary else float64_array(x)


def one_hot(tokens, vocabulary: int) -> np.ndarray:
    """Token ids (N, T) as the flowlaws model's input: one-hot rows (N, T, vocabulary)."""
    ids = np.asarray(tokens.detach().cpu() if isinstance(tokens, torch.Tensor) else tokens)
    if ids.dtype.kind not in "iu" or ids.min(initial=0) < 0 or ids.max(initial=0) >= vocabulary:
        raise InvalidArgument(f"the input of an Embedding must be token ids in [0, {vocabulary}), got {ids.dtype} "
                              f"values in [{ids.min()}, {ids.max()}]")
    rows = np.zeros((*ids.shape, vocabulary))
    np.put_along_axis(rows, ids[..., None], 1.0, axis=-1)  # (not an identity of vocabulary^2 entries)
    return rows


def _attentions(sources) -> list[str]:
    """The paths of the split self-attentions among ``sources`` (`_Projections`): their
    dropout_p reads their training flag, so checks run them in eval mode."""
    return [path for path, source in sources if isinstance(source, _Projections | _HeadModules)]


class _Unmasked(torch.overrides.TorchFunctionMode):
    """``F.dropout`` (1d, 2d) as the identity: a functional dropout called with ``self.training``
    (traced as a module in training mode) draws no mask while conversion is checked."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in (nn.functional.dropout, nn.functional.dropout1d, nn.functional.dropout2d):
            return args[0] if args else kwargs["input"]
        return func(*args, **(kwargs or {}))


class _Replacing(torch.fx.Interpreter):
    """Runs a graph with the values of some nodes (by name) replaced, and every cast of a
    value to another float dtype (`_float_cast`) kept in its dtype: the module as it computes
    in float64, its float32 upcasts (an RMSNorm's ``x.float()``, for bfloat16 training) the
    identity flowlaws reads them as."""

    def __init__(self, graph_module, values: dict):
        super().__init__(graph_module)
        self.values = values

    def run_node(self, n):
        if n.name in self.values:
            return self.values[n.name]
        if _float_cast(n) and isinstance(value := self.env.get(n.args[0]), torch.Tensor) and \
                value.dtype == torch.float64 and all(self._floating(a) for a in (*n.args[1:], *n.kwargs.values())):
            return value  # kept in float64: a cast to float32 (or another float) that flowlaws reads as x
        return super().run_node(n)

    def _floating(self, argument) -> bool:
        """Whether a cast's argument leaves its value a float: a float dtype or tensor (as
        the graph computes it), a device, a flag."""
        value = self.env.get(argument, argument) if isinstance(argument, torch.fx.Node) else argument
        if isinstance(value, torch.Tensor):
            return value.is_floating_point()
        if isinstance(value, torch.dtype):
            return value.is_floating_point
        return isinstance(value, torch.device | str | bool)


def _check_layout(module, model, params, example_input, vocabulary=None, attentions=(), normalized=None,
                  tables=None, axes=(0, 0), packed_as=()) -> None:
    """The converted model computes what the module computes (float64, training mode; token
    ids stay ids for the module and are one-hot for flowlaws). ``attentions``: the paths of
    split self-attentions (`_Projections`), whose dropout_p reads their training flag;
    ``normalized``: the module's (log_)softmax of the model's output (`_Chain.normalized`);
    ``tables``: (the module's fx graph, {node name: value}) to run the graph with those
    constants as flowlaws computes them (a position table the module built in float32);
    ``axes``: the batch axes of the module's input and output (`_sequence_first`);
    ``packed_as``: the order of the module's several inputs in the model's one (`packed`)."""
    twin = copy.deepcopy(module if tables is None else tables[0]).to("cpu", torch.float64).train()
    # dropout masks differ (torch's generator, flowlaws' hash): compare without (attention's own dropout of
    # its weights, which no law minds: a mask on the probabilities commutes with every GL symmetry)
    every_dropout = nn.modules.dropout._DropoutNd  # the base of torch's dropout modules
    quiet = [child for child in twin.modules() if isinstance(child, every_dropout | nn.MultiheadAttention)]
    for child in [*quiet, *map(twin.get_submodule, attentions)]:
        child.eval()
    x = _inputs64(tuple(example_input) if packed_as else example_input)
    try:
        with torch.no_grad(), _Unmasked():
            expected = twin(*x) if tables is None else _Replacing(twin, tables[1]).run(*x)
    except Exception as error:  # the module itself cannot run on this input
        raise InvalidArgument(f"{type(module).__name__} cannot run on example_input of shape "
                              f"{' and '.join(str(tuple(t.shape)) for t in x)} ({type(error).__name__}: {error}); "
                              "give an input it takes") from None
    expected = (expected[0] if isinstance(expected, tuple) else expected).movedim(axes[1], 0).numpy()
    unmasked = Sequential(model.input_shape, tuple(layer.mapped(
        lambda x: Dropout(0.0) if isinstance(x, Dropout) else x) for layer in model.layers))
    inputs = model_input(x if packed_as else x[0], axes[0], vocabulary, model.input_shape, packed_as)
    got, cache = unmasked.forward(params, inputs)
    # both sides' round-off (the magnitude sweep's bound: a BatchNorm of a column constant
    # over the batch divides its round-off by sqrt(eps)), and a floor for torch's own kernels;
    # a bound that overflows (deep normalized nets compound its factors) allows nothing
    with np.errstate(over="ignore", invalid="ignore"):
        bound = unmasked.output_bound(params, cache)
        rounding = np.where(np.isfinite(bound), 2 * tolerance(bound, accumulation_length(unmasked, inputs)), 0.0)
    if normalized:  # a shift of every logit moves (log-)probabilities by at most twice the largest
        got = getattr(scipy.special, normalized)(got, axis=-1)
        rounding = 2 * np.max(rounding, axis=-1, keepdims=True)
    scale = np.max(np.abs(expected)) + 1e-300
    if got.shape != expected.shape or np.any(np.abs(got - expected) > 1e-9 * scale + rounding):
        raise InvalidArgument(f"the converted model ({model.spec}) does not reproduce the module's output on "
                              "example_input; please report it with the module")


def flowlaws_loss(loss):
    """A flowlaws loss from a name, a flowlaws loss, or a torch loss module."""
    from flowlaws.losses import loss as make_loss

    if isinstance(loss, nn.CrossEntropyLoss):
        return make_loss("cross_entropy")
    if isinstance(loss, nn.MSELoss):
        return make_loss("square")
    if loss is None or isinstance(loss, nn.NLLLoss):  # NLL reads log-probabilities linearly: any loss's laws
        return None
    return make_loss(loss)


def laws_of(module, example_input, loss=None):
    """The laws of a torch model (with those its loss adds: ``"cross_entropy"`` or
    ``nn.CrossEntropyLoss()``), as `flowlaws.invariants.laws` gives them for a spec."""
    return Converted.of(module, example_input).laws(loss)



