"""PyTorch models: their laws, their discovery, and a monitor for a real training loop.

    from flowlaws.torch import from_torch, laws_of, discover_of, LawMonitor, assert_conserved_torch

`from_torch(module, example_input)` traces the module with ``torch.fx`` (walking an
``nn.Sequential`` where tracing fails) and converts it into a flowlaws model with its
weights as float64 numpy arrays; the conversion is checked by running both on the
example input (a float64 copy of the module, in training mode: BatchNorm uses batch
statistics, as flowlaws does; dropout off on both sides, as its masks come from different
generators). Supported: Linear (on the last axis, any leading axes), Conv1d/Conv2d
(square kernels, one stride and padding, groups, dilation), ReLU, LeakyReLU, PReLU (one
slope, read as a fixed slope), Identity, Tanh, Sigmoid, GELU, ELU, SiLU, Softplus,
MaxPool/AvgPool 1d/2d (window = stride, no padding), AdaptiveAvgPool(1) and ``x.mean``
over the positions, Flatten, Dropout, the sum or product of two branches from one value
(a residual block with any shortcut, a ResNet downsample; a gate), BatchNorm1d/2d,
LayerNorm and RMSNorm (over the last axis), GroupNorm, MultiheadAttention (self-attention,
batch_first, with or without its biases; not add_bias_kv). Anything else is an `InvalidArgument` naming the module path,
its type, and what is supported.

Documented behaviours: a float32 (or other) module is read in float64, and every check
runs in float64 (a float32 training loop is judged with float32's round-off); parameters
on a GPU are copied to the CPU; the user's module is never modified (conversion works on
a copy). torch is an optional extra: ``pip install 'flowlaws[torch]'``.
"""

from __future__ import annotations

import contextlib
import copy
import operator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from flowlaws.checking import Level
from flowlaws.errors import InvalidArgument
from flowlaws.models import (
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
    Residual,
    RMSNorm,
    Sequential,
)

try:
    import torch
    from torch import nn
    from torch.fx.passes.shape_prop import ShapeProp
except ImportError as error:  # pragma: no cover - exercised without the extra
    raise ImportError("flowlaws.torch needs PyTorch: pip install 'flowlaws[torch]'") from error

SUPPORTED = ("Linear (on any leading axes), Conv1d, Conv2d (groups, dilation), ReLU, LeakyReLU, PReLU, Identity, "
             "Tanh, Sigmoid, GELU, ELU, SiLU, Softplus, MaxPool1d/2d, AvgPool1d/2d, AdaptiveAvgPool1d/2d(1), "
             "x.mean(dims), Flatten, Dropout, a + b and a * b of two branches (residual blocks with any "
             "shortcut, gates), BatchNorm1d/2d, LayerNorm, RMSNorm, GroupNorm, "
             "MultiheadAttention (self-attention, batch_first, with or without biases)")


def _array(tensor) -> np.ndarray:
    return tensor.detach().to("cpu", torch.float64).numpy().copy()


def _single(value, what: str, path: str) -> int:
    values = tuple(value) if isinstance(value, tuple | list) else (value,)
    if len(set(values)) != 1:
        raise InvalidArgument(f"{path}: {what} {values} differs per axis; flowlaws supports one value")
    return int(values[0])


def _unsupported(path: str, module, reason: str = "") -> InvalidArgument:
    why = f" ({reason})" if reason else ""
    return InvalidArgument(f"{path or 'the module'} ({type(module).__name__}) is not supported{why}; "
                           f"flowlaws converts {SUPPORTED}")


# --- one module -> (flowlaws layer or None for Identity, params) ----------------------


def _activation(module) -> Activation | None:
    simple = {nn.ReLU: "relu", nn.Tanh: "tanh", nn.Sigmoid: "sigmoid", nn.SiLU: "silu"}
    for cls, name in simple.items():
        if type(module) is cls:
            return Activation(name)
    if type(module) is nn.LeakyReLU:
        return Activation("leaky_relu", (float(module.negative_slope),))
    if type(module) is nn.PReLU and module.weight.numel() == 1:
        return Activation("prelu", (1.0, float(module.weight.detach().cpu().reshape(()))))
    if type(module) is nn.GELU and module.approximate == "none":
        return Activation("gelu")
    if type(module) is nn.ELU and module.alpha == 1.0:
        return Activation("elu")
    if type(module) is nn.Softplus and module.beta == 1.0:
        return Activation("softplus")
    return None


def _convert(module, path: str, read=_array):
    """(layer, params) for one leaf module, each parameter tensor read by ``read`` (its
    value, or its gradient); (None, ()) for Identity."""
    if isinstance(module, nn.Identity):
        return None, ()
    act = _activation(module)
    if act is not None:
        return act, ()
    if type(module) is nn.Linear:
        bias = module.bias is not None
        return Dense(module.out_features, bias), (read(module.weight), *([read(module.bias)] if bias else []))
    if type(module) in (nn.Conv1d, nn.Conv2d):
        if module.padding_mode != "zeros":
            raise _unsupported(path, module, "padding modes other than zeros")
        if isinstance(module.padding, str):
            raise _unsupported(path, module, f"padding={module.padding!r}; give an integer")
        cls = Conv1d if type(module) is nn.Conv1d else Conv2d
        bias = module.bias is not None
        layer = cls(module.out_channels, _single(module.kernel_size, "kernel", path),
                    _single(module.stride, "stride", path), _single(module.padding, "padding", path), bias,
                    module.groups, _single(module.dilation, "dilation", path))
        return layer, (read(module.weight), *([read(module.bias)] if bias else []))
    if type(module) in (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d):
        if set(np.atleast_1d(module.output_size).tolist()) != {1}:
            raise _unsupported(path, module, "only output_size=1 (a global average pool)")
        return Mean(), ()
    if type(module) is nn.Dropout:
        return Dropout(float(module.p)), ()
    if type(module) is nn.GroupNorm:
        params = (read(module.weight), read(module.bias)) if module.affine else ()
        return GroupNorm(bool(module.affine), float(module.eps), module.num_groups), params
    if type(module) is nn.RMSNorm:
        if len(module.normalized_shape) != 1:
            raise _unsupported(path, module, "RMSNorm over the last axis only")
        eps = float(torch.finfo(torch.float64).eps if module.eps is None else module.eps)
        affine = module.weight is not None
        return RMSNorm(affine, eps), ((read(module.weight),) if affine else ())
    pools = {nn.MaxPool1d: MaxPool1d, nn.AvgPool1d: AvgPool1d, nn.MaxPool2d: MaxPool2d, nn.AvgPool2d: AvgPool2d}
    if type(module) in pools:
        size = _single(module.kernel_size, "kernel", path)
        stride = _single(module.stride or size, "stride", path)
        if stride != size or _single(module.padding, "padding", path) or getattr(module, "ceil_mode", False) \
                or _single(getattr(module, "dilation", 1), "dilation", path) != 1:
            raise _unsupported(path, module, "only windows with stride = size, no padding, floor mode")
        return pools[type(module)](size), ()
    if type(module) is nn.Flatten:
        if module.start_dim != 1 or module.end_dim != -1:
            raise _unsupported(path, module, "only Flatten(start_dim=1, end_dim=-1)")
        return Flatten(), ()
    if type(module) in (nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm):
        affine = module.affine if type(module) is not nn.LayerNorm else module.elementwise_affine
        if type(module) is nn.LayerNorm and (len(module.normalized_shape) != 1 or
                                              (affine and module.bias is None)):
            raise _unsupported(path, module, "LayerNorm over the last axis only, with both weight and bias")
        norm = LayerNorm if type(module) is nn.LayerNorm else BatchNorm
        params = (read(module.weight), read(module.bias)) if affine else ()
        return norm(affine=bool(affine), eps=float(module.eps)), params
    if type(module) is nn.MultiheadAttention:
        return _attention(module, path, read)
    raise _unsupported(path, module)


def _attention(module, path: str, read=_array):
    biased = module.in_proj_bias is not None
    if module.bias_k is not None or (module.out_proj.bias is not None) != biased:
        raise _unsupported(path, module, "add_bias_kv and a bias on one projection only")
    if not module.batch_first or not module._qkv_same_embed_dim:
        raise _unsupported(path, module, "use batch_first=True and equal query, key and value sizes")
    d, heads = module.embed_dim, module.num_heads
    width = d // heads
    W, Wo = read(module.in_proj_weight), read(module.out_proj.weight)
    params = []
    for h in range(heads):
        rows = slice(h * width, (h + 1) * width)
        params += [W[:d][rows].T, W[d:2 * d][rows].T, W[2 * d:][rows].T, Wo[:, rows].T]
    if biased:  # flowlaws' order: every query bias, each head's key and value biases, the output's
        b = read(module.in_proj_bias)
        heads_rows = [slice(h * width, (h + 1) * width) for h in range(heads)]
        params += [b[:d][r] for r in heads_rows]
        params += [x for r in heads_rows for x in (b[d:2 * d][r], b[2 * d:][r])]
        params.append(read(module.out_proj.bias))
    return Attention(heads, width, width, bias=biased), tuple(np.ascontiguousarray(p) for p in params)


# --- the graph -> a chain of layers with residual blocks ------------------------------


@dataclass
class _Chain:
    """Layers and params in order, and the lineage of every traced value: the layers (by
    index) on its path from the input, so that a sum or a product of two values becomes a
    fork over the layers since their common ancestor."""

    layers: list = field(default_factory=list)  # (layer, params, the (path, module) its params come from)
    lineage: dict = field(default_factory=dict)  # fx node -> indices of the layers that made it

    @property
    def sources(self) -> list:
        return [source for _, _, sources in self.layers for source in sources]

    def add(self, node, converted, source=None, after=None):
        layer, params = converted
        path = self.lineage.get(after, ()) if after is not None else self._last()
        if layer is not None:
            self.layers.append((layer, tuple(params), [source] if params else []))
            path = (*path, len(self.layers) - 1)
        self.lineage[node] = path

    def _last(self):
        return tuple(range(len(self.layers)))

    def fork(self, node, a, b, kind):
        """a + b (``Residual``) or a * b (``Gated``) of two values computed from one: the
        layers since their common ancestor, split by branch, become one composite layer."""
        pa, pb = self.lineage[a], self.lineage[b]
        common = 0
        while common < min(len(pa), len(pb)) and pa[common] == pb[common]:
            common += 1
        first, second = pa[common:], pb[common:]
        start = pa[:common][-1] + 1 if common else 0
        if sorted((*first, *second)) != list(range(start, len(self.layers))) or not (first or second):
            raise InvalidArgument(f"{node.name}: only a sum or product of two branches from one value is "
                                  "supported (a residual block, a gate)")
        if not first:
            first, second = second, first
        if kind is Residual and len(second) > len(first):
            first, second = second, first  # the longer branch is the block, the other the shortcut
        branches = [tuple(self.layers[k][0] for k in branch) for branch in (first, second)]
        params = tuple(p for branch in (first, second) for k in branch for p in self.layers[k][1])
        sources = [source for branch in (first, second) for k in branch for source in self.layers[k][2]]
        del self.layers[start:]
        self.layers.append((kind(*branches), params, sources))
        self.lineage[node] = (*pa[:common], len(self.layers) - 1)


FLATTENS = {torch.flatten, "flatten", "view", "reshape"}
JOINS = {operator.add: Residual, torch.add: Residual, "add": Residual, operator.mul: Gated, torch.mul: Gated,
         "mul": Gated}
FUNCTIONS = {torch.relu: "relu", torch.tanh: "tanh", torch.sigmoid: "sigmoid", nn.functional.relu: "relu",
             nn.functional.gelu: "gelu", nn.functional.silu: "silu", nn.functional.elu: "elu",
             nn.functional.softplus: "softplus"}


def _mean(node, shape):
    """``x.mean(dims)`` of a value of ``shape``: over every axis but the channels (``mean``)
    or over the positions of a (N, T, d) sequence (``mean(last)``); keepdim False."""
    if shape is None:
        raise InvalidArgument(f"{node.name}: the module does not run on example_input, so its mean's axes are unknown")
    dims = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
    dims = tuple(sorted(d % len(shape) for d in ((dims,) if isinstance(dims, int) else dims or ())))
    if node.kwargs.get("keepdim") or (len(node.args) > 2 and node.args[2]):
        raise InvalidArgument(f"{node.name}: mean with keepdim=True is not supported; flatten after it")
    if len(shape) >= 3 and dims == tuple(range(2, len(shape))):
        return Mean()
    if len(shape) == 3 and dims == (1,):
        return Mean(last=True)
    raise InvalidArgument(f"{node.name}: mean over dims {dims} of shape {tuple(shape)}; flowlaws converts the mean "
                          "over every axis after the channels, or over the positions of a (N, T, d) sequence")


MEANS = ("mean", torch.mean)


def _shapes(traced, example_input) -> dict:
    """The shape of every traced value (what a mean's axes are read against), run on a float64
    copy: the module itself is never run; {} entries where it cannot run on the input."""
    twin = copy.deepcopy(traced).to("cpu", torch.float64)
    with contextlib.suppress(Exception):  # a module that cannot run on the input: its conversion says why
        ShapeProp(twin).propagate(example_input.detach().to("cpu", torch.float64))
    return {n.name: getattr(n.meta.get("tensor_meta"), "shape", None) for n in twin.graph.nodes}


def _traced(module, chain: _Chain, example_input):
    traced = torch.fx.symbolic_trace(module)
    graph = traced.graph
    shapes = _shapes(traced, example_input) if any(n.target in MEANS for n in graph.nodes) else {}
    modules = dict(module.named_modules())
    head = None
    for node in graph.nodes:
        if node.op == "placeholder":
            if head is not None:
                raise InvalidArgument("the module takes more than one input; flowlaws models take one")
            head = node
            chain.lineage[node] = ()
        elif node.op == "call_module":
            target = modules[node.target]
            if isinstance(target, nn.MultiheadAttention) and len({a for a in node.args[:3]}) != 1:
                raise _unsupported(node.target, target, "only self-attention mha(x, x, x)")
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
        elif node.op in ("call_function", "call_method") and node.target in JOINS:
            a, b = node.args[:2]
            if not all(x in chain.lineage for x in (a, b)):
                raise InvalidArgument(f"{node.name}: only sums and products of two computed values are supported")
            chain.fork(node, a, b, JOINS[node.target])
            head = node
        elif node.op in ("call_function", "call_method") and node.target in FLATTENS:
            chain.add(node, (Flatten(), ()), after=node.args[0])
            head = node
        elif node.op in ("call_function", "call_method") and node.target in MEANS:
            chain.add(node, (_mean(node, shapes[node.args[0].name]), ()), after=node.args[0])
            head = node
        elif node.op == "call_function" and node.target in FUNCTIONS:
            chain.add(node, (Activation(FUNCTIONS[node.target]), ()), after=node.args[0])
            head = node
        elif node.op == "output":
            if node.args[0] is not head:
                raise InvalidArgument("the module's output is not the last value computed; flowlaws "
                                      "converts chains (with additive skips)")
        else:
            raise InvalidArgument(f"{node.name}: {node.op} {getattr(node.target, '__name__', node.target)} "
                                  f"is not supported; flowlaws converts {SUPPORTED}")


def _walked(module, chain: _Chain, prefix: str = ""):
    for name, child in module.named_children():
        if isinstance(child, nn.Sequential):
            _walked(child, chain, f"{prefix}{name}.")
        else:
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


@dataclass(frozen=True)
class Converted:
    """A converted module: the flowlaws model and the modules its params come from, so
    that `read` gives the live params (or their gradients, or optimizer state) in
    flowlaws' layout at any time."""

    model: Sequential
    sources: tuple

    @classmethod
    def of(cls, module, example_input) -> Converted:
        model, sources = _conversion(module, example_input)
        return cls(model, sources)

    def read(self, tensor_of=lambda t: t) -> tuple[np.ndarray, ...]:
        """Params in the model's order; ``tensor_of(parameter)`` picks what is read
        (``lambda t: t.grad`` for gradients); None when some tensor is missing."""
        def read(t):
            chosen = tensor_of(t)
            if chosen is None:
                raise LookupError
            return _array(chosen)

        try:
            return tuple(p for path, module in self.sources for p in _convert(module, path, read)[1])
        except LookupError:
            return ()


def _conversion(module, example_input):
    if not isinstance(module, nn.Module):
        raise InvalidArgument(f"from_torch needs a torch.nn.Module, got {type(module).__name__}")
    if not isinstance(example_input, torch.Tensor) or example_input.dim() < 2:
        raise InvalidArgument("example_input must be a tensor with a batch axis, e.g. torch.zeros(8, 3)")
    chain = _Chain()
    try:
        _traced(module, chain, example_input)
    except torch.fx.proxy.TraceError as error:
        if not isinstance(module, nn.Sequential):
            raise InvalidArgument(f"torch.fx cannot trace {type(module).__name__} ({error}); control flow that "
                                  "depends on the data is not supported (an nn.Sequential is walked instead)") from None
        chain = _Chain()
        _walked(module, chain)
    layers = tuple(layer for layer, _, _ in chain.layers)
    params = tuple(p for _, ps, _ in chain.layers for p in ps)
    shape = tuple(example_input.shape[1:])
    model = Sequential(shape, layers)
    _check_layout(module, model, params, example_input)
    return model, tuple(chain.sources)


def _check_layout(module, model, params, example_input) -> None:
    """The converted model computes what the module computes (float64, training mode)."""
    twin = copy.deepcopy(module).to("cpu", torch.float64).train()
    for child in twin.modules():  # dropout masks differ (torch's generator, flowlaws' hash): compare without
        if isinstance(child, nn.Dropout):
            child.eval()
    x = example_input.detach().to("cpu", torch.float64)
    with torch.no_grad():
        expected = twin(x)
    expected = (expected[0] if isinstance(expected, tuple) else expected).numpy()
    unmasked = Sequential(model.input_shape, tuple(layer.mapped(
        lambda x: Dropout(0.0) if isinstance(x, Dropout) else x) for layer in model.layers))
    got, _ = unmasked.forward(params, x.numpy())
    scale = np.max(np.abs(expected)) + 1e-300
    if got.shape != expected.shape or np.max(np.abs(got - expected)) > 1e-9 * scale:
        raise InvalidArgument(f"the converted model ({model.spec}) does not reproduce the module's output on "
                              "example_input; please report it with the module")


def _loss(loss):
    """A flowlaws loss from a name, a flowlaws loss, or a torch loss module."""
    from flowlaws.losses import loss as make_loss

    if isinstance(loss, nn.CrossEntropyLoss):
        return make_loss("cross_entropy")
    if isinstance(loss, nn.MSELoss):
        return make_loss("square")
    return None if loss is None else make_loss(loss)


def laws_of(module, example_input, loss=None):
    """The laws of a torch model (with those its loss adds: ``"cross_entropy"`` or
    ``nn.CrossEntropyLoss()``), as `flowlaws.invariants.laws` gives them for a spec."""
    from flowlaws.invariants import laws

    model, _ = from_torch(module, example_input)
    return laws(model, _loss(loss))


def discover_of(module, example_input, loss=None, **options):
    """`flowlaws.discover.discover` on the converted model (loss family: cross_entropy or any)."""
    from flowlaws.discover import discover

    model, _ = from_torch(module, example_input)
    family = "cross_entropy" if getattr(_loss(loss), "name", None) == "cross_entropy" else None
    return discover(model, loss=family, **options)


# --- monitoring a training loop ----------------------------------------------------------


def _settings(optimizer) -> list[dict]:
    """Each param group's hyperparameters (params aside); descent only."""
    groups = [{k: v for k, v in g.items() if k != "params"} for g in optimizer.param_groups]
    if any(g.get("maximize") for g in groups):
        raise InvalidArgument("LawMonitor: maximize=True ascends the loss; the laws' predictions assume descent")
    return groups


def _hyper(optimizer) -> dict:
    """The one set of hyperparameters of ``optimizer`` (``assert_conserved_torch`` reads one)."""
    groups = _settings(optimizer)
    if any(g != groups[0] for g in groups[1:]):
        raise InvalidArgument("assert_conserved_torch needs one set of hyperparameters: the optimizer's param "
                              f"groups differ ({groups[0]} vs {next(g for g in groups if g != groups[0])})")
    return groups[0]


def _groups(optimizer) -> dict[int, dict]:
    """Each parameter's hyperparameters (by the parameter's id), group by group."""
    return {id(p): hyper for hyper, g in zip(_settings(optimizer), optimizer.param_groups, strict=True)
            for p in g["params"]}


HYPER = ("lr", "weight_decay", "momentum", "dampening", "nesterov")  # read per parameter entry
PREDICTED = ("SGD", "Adam", "AdamW", "RMSprop")


@dataclass
class Record:
    """One law over the monitored steps: per step its change, the prediction, the residual
    and the effect size (worst component), and the first step where it departed."""

    law: Any
    measured: list = field(default_factory=list)
    predicted: list = field(default_factory=list)
    effect: list = field(default_factory=list)
    flagged: tuple | None = None  # (step, unit, effect)

    @property
    def status(self) -> str:
        """"departs" once flagged; "holds" only when some step was observed; else "unobserved"."""
        return "departs" if self.flagged is not None else "holds" if self.measured else "unobserved"

    def to_json(self) -> dict:
        return {"law": self.law.name, "formula": self.law.formula, "status": self.status, "measured": self.measured,
                "predicted": self.predicted, "effect": self.effect,
                "flagged": None if self.flagged is None else
                {"step": self.flagged[0], "unit": list(self.flagged[1]), "effect": self.flagged[2]}}


class LawMonitor:
    """Watch every law of ``module`` through a real training loop (see the module docstring).

    After each ``optimizer.step()`` the monitor reads the params before and after, the
    gradients and the optimizer's state, and compares each law's change with its exact
    prediction for the optimizer in use (docs/theory.md 3.3 and 6):
    - SGD (momentum, dampening, Nesterov, weight decay): Delta h = Dh(theta)[Delta_rest]
      + second(Delta), where Delta_rest is the step without its gradient term, computed
      from the momentum buffer and theta (the law makes Dh(theta)[g] = 0);
    - Adam, AdamW, RMSprop: only the second-order part and AdamW's decoupled decay are
      predicted: a preconditioned step has a first-order part 2B(theta, Delta) != 0, which
      is flagged (switch SGD to Adam and the laws break).
    Tolerances follow `flowlaws.checking` with the params' own unit round-off (float32:
    1.2e-7) and the gradients' magnitudes; the monitor never raises inside the training
    loop: a failure to observe a step is kept in ``errors``.
    """

    def __init__(self, module, optimizer, *, example_input, loss=None):
        from flowlaws.invariants import laws
        from flowlaws.invariants.stacked import Stacked

        if type(optimizer).__name__ not in PREDICTED:
            raise InvalidArgument(f"LawMonitor predicts {', '.join(PREDICTED)}; got {type(optimizer).__name__}")
        _groups(optimizer)
        self.module, self.optimizer = module, optimizer
        self.converted = Converted.of(module, example_input)
        self.laws = laws(self.converted.model, _loss(loss))
        if not self.laws:
            raise InvalidArgument(f"{self.converted.model.spec} has no conservation law to monitor")
        self.records = [Record(law) for law in self.laws]
        self.stacked = Stacked(self.laws, [shape for _, shape in self.converted.model.param_specs])
        self.errors: list[str] = []
        self.steps = 0
        self._before: tuple | None = None
        self._handles = [optimizer.register_step_pre_hook(self._pre), optimizer.register_step_post_hook(self._post)]

    def detach(self) -> None:
        """Stop monitoring (remove the optimizer hooks)."""
        for handle in self._handles:
            handle.remove()

    # --- the hooks ------------------------------------------------------------------------
    def _pre(self, optimizer, args, kwargs):
        try:
            # a frozen parameter (no gradient) does not move: its gradient counts as 0, so a law
            # with one side frozen is measured, and flagged when the step breaks it (a step
            # without any gradient has nothing to observe)
            live = any(t.grad is not None for t in self.module.parameters())
            grads = self.converted.read(lambda t: torch.zeros_like(t) if t.grad is None else t.grad) if live else ()
            def buffer(t):  # 0 where a parameter has none yet (its first step, or in no group)
                found = optimizer.state.get(t, {}).get("momentum_buffer")
                return torch.zeros_like(t) if found is None else found

            buffers = (self.converted.read(buffer), self.converted.read(
                lambda t: torch.full_like(t, float("momentum_buffer" in optimizer.state.get(t, {})))))
            self._before = (self.converted.read(), grads, buffers, self._hyper(optimizer))
        except Exception as error:  # never break the user's training
            self.errors.append(f"step {self.steps}: {type(error).__name__}: {error}")
            self._before = None

    def _post(self, optimizer, args, kwargs):
        try:
            if self._before is not None and self._before[1]:
                self._observe(*self._before, self.converted.read())
        except Exception as error:  # never break the user's training
            self.errors.append(f"step {self.steps}: {type(error).__name__}: {error}")
        finally:
            self._before = None
            self.steps += 1

    def _hyper(self, optimizer) -> dict:
        """Each hyperparameter as arrays in the model's parameter layout: a parameter's own
        group's value, 0 for a parameter in no group (it does not move)."""
        groups = _groups(optimizer)
        return {key: self.converted.read(lambda t, key=key: torch.full_like(
            t, float(groups.get(id(t), {}).get(key) or 0.0), dtype=torch.float64)) for key in HYPER}

    def _rest(self, theta, grad, buffer, hyper):
        """(the step without its gradient term, the gradient's coefficient per entry): for SGD
        the decay and momentum parts; for AdamW its decoupled decay; for Adam and RMSprop
        nothing (their gradient term is not predicted)."""
        lr, wd = hyper["lr"], hyper["weight_decay"]
        name = type(self.optimizer).__name__
        zero = tuple(np.zeros_like(t) for t in theta)
        if name == "AdamW":
            return tuple(-a * w * t for a, w, t in zip(lr, wd, theta, strict=True)), zero
        if name != "SGD":
            return zero, zero
        values, had = buffer
        out, coefficient = [], []
        for k, t in enumerate(theta):
            mu, damp, nesterov = hyper["momentum"][k], hyper["dampening"][k], hyper["nesterov"][k]
            keep = np.where(had[k] > 0, 1.0 - damp, 1.0)  # the new buffer is mu * buf + keep * (g + wd theta)
            rest = keep * wd[k] * t + mu * values[k] * had[k]  # the buffer without keep * g
            rest = np.where(mu > 0, rest, wd[k] * t)  # no momentum: the decay alone
            keep = np.where(mu > 0, keep, 1.0)
            step = np.where(nesterov > 0, wd[k] * t + mu * rest, rest)  # Nesterov: g' + mu * buffer_new
            out.append(-lr[k] * step)
            coefficient.append(lr[k] * np.where(nesterov > 0, 1 + mu * keep, keep))
        return tuple(out), tuple(coefficient)

    def _observe(self, theta, grad, buffer, hyper, after):
        from flowlaws.checking import SAFETY, effect_size

        rest, coefficients = self._rest(theta, grad, buffer, hyper)
        dtype = next(p.dtype for p in self.module.parameters())
        unit = float(torch.finfo(dtype).eps) if dtype.is_floating_point else float(np.finfo(float).eps)
        tolerance = SAFETY * sum(x.size for x in theta) * unit
        stacked = self.stacked
        t, a, g, r, c = (stacked.flat(xs) for xs in (theta, after, grad, rest, coefficients))
        # a common coefficient of g has no first-order effect (the law: Dh(theta)[g] = 0); what
        # differs between parameters (per-group learning rates, a parameter no group holds) has
        coefficient = float(c.max(initial=0.0))
        r = r - (c - coefficient) * g
        d = a - t
        moved = np.abs(t) + np.abs(d)
        # |theta| + |Delta| bounds theta, theta+ and Delta: 2 M(|θ|+|Δ|) >= M(θ) + M(θ+) + first_M(θ, Δ) + M(Δ)
        measured = stacked.value(a) - stacked.value(t)
        predicted = stacked.first(t, r) + stacked.second(d)
        scale = 2 * stacked.magnitude(moved, moved) + coefficient * stacked.first_magnitude(np.abs(t), np.abs(g))
        for record in self.records:
            parts = [stacked.part(record.law, values) for values in (measured, predicted, scale)]
            self._record(record, *parts, effect_size(parts[0] - parts[1], tolerance * parts[2]))

    def _record(self, record, measured, predicted, scale, effect):
        worst = int(np.argmax(effect)) if np.ndim(effect) else 0
        record.measured.append(float(np.ravel(measured)[worst]))
        record.predicted.append(float(np.ravel(predicted)[worst]))
        record.effect.append(float(np.ravel(effect)[worst]))
        if record.flagged is None and record.effect[-1] > 1:
            index = np.unravel_index(worst, np.shape(effect)) if np.ndim(effect) else ()
            record.flagged = (self.steps, tuple(int(i) for i in index), record.effect[-1])

    # --- results --------------------------------------------------------------------------
    @property
    def flagged(self) -> list[Record]:
        return [r for r in self.records if r.flagged is not None]

    def to_json(self) -> dict:
        return {"model": self.converted.model.spec, "optimizer": type(self.optimizer).__name__,
                "steps": self.steps, "errors": self.errors, "laws": [r.to_json() for r in self.records]}

    def report(self):
        """A rich table: law, drift (sum of its changes), predicted, worst effect size, verdict."""
        from rich.table import Table
        from rich.text import Text

        table = Table(title=Text(f"laws of {self.converted.model.spec} under {type(self.optimizer).__name__}, "
                                 f"{self.steps} steps"))
        for column in ("law", "drift", "predicted", "effect size", "verdict"):
            table.add_column(column, justify="left" if column in ("law", "verdict") else "right")
        for r in self.records:
            verdict = r.status if r.flagged is None else f"departs at step {r.flagged[0]}, unit {r.flagged[1]}"
            table.add_row(Text(r.law.name), f"{sum(r.measured):.3g}", f"{sum(r.predicted):.3g}",
                          f"{max(r.effect, default=0.0):.3g}",
                          Text(verdict, style={"holds": "green", "unobserved": "yellow"}.get(r.status, "red")))
        return table

    def plot(self, path, laws: int = 6):
        """Each law's cumulative change against its prediction per step (matplotlib)."""
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            raise InvalidArgument("LawMonitor.plot needs matplotlib: pip install 'flowlaws[plot]'") from None
        shown = (self.flagged + [r for r in self.records if r.flagged is None])[:laws]
        fig, axes = plt.subplots(1, len(shown), figsize=(3.2 * len(shown), 3), constrained_layout=True, squeeze=False)
        for ax, r in zip(axes[0], shown, strict=True):
            ax.plot(np.cumsum(r.measured), label="measured", lw=2)
            ax.plot(np.cumsum(r.predicted), "--", color="k", label="predicted")
            ax.set(title=r.law.name, xlabel="step")
            ax.legend(fontsize=7)
        fig.savefig(path, dpi=150)
        plt.close(fig)
        return path


def assert_conserved_torch(module, example_input, optimizer="gd:lr=0.01", *, loss="square", steps: int = 3,
                           targets=None):
    """Assert that ``module``'s laws hold on its current weights and ``example_input``:
    pointwise (B(theta, grad L) = 0), and over ``steps`` steps of ``optimizer`` (a flowlaws
    spec, or a torch SGD/Adam instance, read from its hyperparameters) against each
    step's exact prediction. ``targets`` default to a seeded draw fitting the loss.
    Raises AssertionError naming the law, the level and the effect size."""
    from flowlaws.checking import Status
    from flowlaws.losses import loss as make_loss
    from flowlaws.testing import check_case

    model, params = from_torch(module, example_input)
    loss = _loss(loss) or make_loss("square")
    X = _array(example_input)
    if targets is None:
        rng = np.random.default_rng(0)
        shape = (len(X), *model.output_shape)
        probabilities = loss.targets == "probabilities"
        Y = rng.dirichlet(np.ones(shape[-1]), size=len(X)) if probabilities else rng.normal(size=shape)
    else:
        Y = _array(targets)
    verdict = check_case(model, params, X, Y, loss=loss, optimizer=_optimizer(optimizer),
                         levels=(Level.POINTWISE, Level.STEP), steps=steps)
    if verdict.failed:
        e = verdict.evidence
        raise AssertionError(f"{model.spec}: law {e.law} violated at the {e.level} level {e.where} "
                             f"(unit {e.unit}, effect size {e.effect:.3g})")
    if verdict.status is Status.INVALID:
        raise AssertionError(f"{model.spec}: the case cannot be decided: {verdict.reason}")


def _optimizer(optimizer):
    """A flowlaws optimizer spec from a torch optimizer (one param group)."""
    if isinstance(optimizer, str) or not isinstance(optimizer, torch.optim.Optimizer):
        return optimizer
    h = _hyper(optimizer)
    name, lr, wd = type(optimizer).__name__, h["lr"], h.get("weight_decay", 0.0)
    if name == "SGD" and not h.get("dampening", 0.0):
        mu = h.get("momentum", 0.0)
        kind = "gd" if not mu else "nesterov" if h.get("nesterov") else "momentum"
        return f"{kind}:lr={lr},wd={wd}" + (f",beta={mu}" if mu else "")
    if name == "Adam":
        return f"adam:lr={lr},wd={wd}"
    raise InvalidArgument(f"assert_conserved_torch reads SGD (no dampening) and Adam; got {name}")


__all__: list[Any] = ["Converted", "LawMonitor", "assert_conserved_torch", "discover_of", "from_torch", "laws_of"]
