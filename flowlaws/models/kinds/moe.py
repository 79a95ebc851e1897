"""moe(experts=E,hidden=h,top=k,gate=softmax|sigmoid,expert=swiglu|relu): a mixture of
experts on the last axis (each position of a sequence alike), as in Mixtral or DeepSeek.

    r = Wr x (E logits),   y = sum_{e in top-k(r)} g_e(r) expert_e(x)

with each expert a SwiGLU MLP, W2 (silu(W1 x) * W3 x), or a ReLU MLP, W2 relu(W1 x),
mapping d features to d. The gate is ``softmax`` over the k selected logits,
g_e = exp(r_e) / sum_j exp(r_j), or the normalized ``sigmoid``, g_e = s(r_e) / sum_j s(r_j).
The top-k selection is a frozen pattern (like a ReLU's): within a region of fixed
selection the layer is smooth.

Symmetry (docs/theory.md 6.5): a softmax ignores a shift of all its logits, and
Wr -> Wr + 1 a^T shifts every logit of a sample by a^T x (the selection too keeps its
order), so the router's column sums sum_e Wr[e, j] are conserved (translation laws). A
normalized sigmoid changes with such a shift (s(r_e + c) / sum_j s(r_j + c) depends on c):
no router law. With top=1 the one selected gate is 1 whatever the logits: the router
never receives a gradient, and each of its weights is conserved. Each expert keeps its
own laws (a hidden unit's rows against its W2 column); a scaling of the input features
is absorbed by the columns of Wr and of every expert's first layers, and the output
features are scaled by the rows of every W2.

Round-off model: as attention's softmax, the gate's absolute errors follow from the
logits' relative ones: its bound is g (1 + 2 max |r|); the experts bound as their layers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import autograd.numpy as anp
import numpy as np
from autograd.tracer import getval
from hypothesis import strategies as st

from flowlaws.errors import InvalidArgument
from flowlaws.models.chain import Chain, chain
from flowlaws.models.kinds.activation import Activation
from flowlaws.models.kinds.dense import Dense
from flowlaws.models.kinds.gated import Gated
from flowlaws.models.layer import Layer
from flowlaws.models.symmetry import Family, Path, Rescaling, Site, Term, close, rescalings, walk
from flowlaws.validation import one_of, positive_ints

GATES = ("softmax", "sigmoid")
EXPERTS = ("swiglu", "relu")


def _sigmoid(z):
    return 0.5 * (np.tanh(0.5 * z) + 1.0)


@dataclass(frozen=True)
class MoE(Layer):
    """``experts`` experts of ``hidden`` units, ``top`` of them per position."""

    experts: int = 2
    hidden: int = 2
    top: int = 2
    gate: str = "softmax"
    expert: str = "swiglu"
    kind: ClassVar[str] = "moe"
    example: ClassVar[str] = "seq:3:moe(experts=3,hidden=2,top=2,gate=softmax,expert=relu),dense(2)"
    ranks: ClassVar[tuple[int, ...]] = (1, 2)
    polynomial: ClassVar[bool] = False
    reads_last_axis: ClassVar[bool] = True
    composite: ClassVar[bool] = False

    def __post_init__(self):
        positive_ints("moe", experts=self.experts, hidden=self.hidden, top=self.top)
        if self.top > self.experts:
            raise InvalidArgument(f"moe: top={self.top} exceeds experts={self.experts}; choose top <= experts")
        one_of("moe", "gate", self.gate, GATES)
        one_of("moe", "expert", self.expert, EXPERTS)

    # --- structure: a router chain and one chain per expert ---------------------------
    def _expert(self, d: int) -> tuple:
        if self.expert == "relu":
            return (Dense(self.hidden), Activation("relu"), Dense(d))
        return (Gated((Dense(self.hidden), Activation("silu")), (Dense(self.hidden),)), Dense(d))

    def chains(self, in_shape, prefix: str = "") -> tuple[Chain, ...]:
        shape = tuple(int(n) for n in in_shape)
        return (chain((Dense(self.experts),), shape, f"{prefix}router."),
                *(chain(self._expert(shape[-1]), shape, f"{prefix}e{e}.") for e in range(self.experts)))

    def inner_specs(self, in_shape, prefix: str) -> list:
        return [spec for c in self.chains(in_shape, prefix) for spec in c.specs]

    def out_shape(self, in_shape):
        if len(in_shape) not in (1, 2):
            raise InvalidArgument(f"{self.spec} needs a flat input or a sequence (T, d), got {tuple(in_shape)}")
        return tuple(in_shape)

    @property
    def sublayers(self) -> tuple:
        layers = (Dense(self.experts), *self._expert(1) * self.experts)
        return tuple(x for layer in layers for x in (layer, *layer.sublayers))

    @property
    def piecewise(self) -> bool:
        return True  # the top-k selection

    def _parts(self, p, shape):
        chains = self.chains(shape)
        out, start = [], 0
        for c in chains:
            out.append(tuple(p[start:start + len(c.specs)]))
            start += len(c.specs)
        return chains, out

    # --- the gate -------------------------------------------------------------------------
    def _select(self, r) -> np.ndarray:
        """The top-k mask of the logits (ties: the lower index)."""
        order = np.argsort(-np.real(r), axis=-1, kind="stable")[..., : self.top]
        mask = np.zeros(np.shape(r))
        np.put_along_axis(mask, order, 1.0, axis=-1)
        return mask

    def _gate(self, r, mask, xp=np):
        if self.gate == "softmax":
            z = r - xp.max(xp.real(r) if xp is np else r, axis=-1, keepdims=True)
            w = xp.exp(z) * mask
        else:
            w = 0.5 * (xp.tanh(0.5 * r) + 1.0) * mask
        return w / xp.sum(w, axis=-1, keepdims=True)

    def _gate_pull(self, r, g, mask, dg, magnitude: bool):
        """dL/dr from dL/dg (magnitude: every difference a sum)."""
        sign = 1.0 if magnitude else -1.0
        centred = dg + sign * (g * dg).sum(axis=-1, keepdims=True)
        if self.gate == "softmax":
            return g * centred
        s = _sigmoid(r)
        slope = np.abs(1.0 - s) if magnitude else 1.0 - s  # s' / s
        return g * slope * centred * mask

    # --- numbers ----------------------------------------------------------------------------
    def apply(self, p, x):
        chains, parts = self._parts(p, x.shape[1:])
        r = chains[0].apply(parts[0], x, fused=False)
        g = self._gate(r, self._select(getval(r)), anp)
        return sum(g[..., e:e + 1] * c.apply(q, x, fused=False)
                   for e, (c, q) in enumerate(zip(chains[1:], parts[1:], strict=True)))

    def run(self, p, x, frozen=None):
        chains, parts = self._parts(p, x.shape[1:])
        patterns = frozen or (None,) * (len(chains) + 1)
        r, router = chains[0].forward(parts[0], x, patterns[0])
        mask = self._select(r) if frozen is None else frozen[-1]
        experts = [c.forward(q, x, f) for c, q, f in zip(chains[1:], parts[1:], patterns[1:-1], strict=True)]
        g = self._gate(r, mask)
        y = sum(g[..., e:e + 1] * out for e, (out, _) in enumerate(experts))
        return y, (router, [cache for _, cache in experts], r, g, [out for out, _ in experts], mask)

    def pull(self, p, x, y, aux, dy, magnitude: bool = False):
        chains, parts = self._parts(p, x.shape[1:])
        router, caches, r, g, outs, mask = aux
        dg = np.stack([(dy * out).sum(axis=-1) for out in outs], axis=-1)
        dx, grads = chains[0].backward(parts[0], router, self._gate_pull(r, g, mask, dg, magnitude), magnitude)
        grads = list(grads)
        for e, (c, q, cache) in enumerate(zip(chains[1:], parts[1:], caches, strict=True)):
            de, ge = c.backward(q, cache, dy * g[..., e:e + 1], magnitude)
            dx, grads = dx + de, grads + list(ge)
        return dx, tuple(grads)

    def vjp(self, p, x, y, dy):
        return self.pull(p, x, y, self.run(p, x)[1], dy)

    def freeze(self, x, y, aux):
        chains = self.chains(x.shape[1:])
        router, caches, *_, mask = aux
        return (chains[0].pattern(router), *(c.pattern(k) for c, k in zip(chains[1:], caches, strict=True)), mask)

    def nested(self, x, aux):
        chains = self.chains(x.shape[1:])
        return ((chains[0].layers, aux[0]), *((c.layers, k) for c, k in zip(chains[1:], aux[1], strict=True)))

    def bound_run(self, p, x, aux):
        chains, parts = self._parts(p, x.shape[1:])
        router, caches, r, g, _, mask = aux
        Fr, router_b = chains[0].bounds(parts[0], router, x)
        experts = [c.bounds(q, k, x) for c, q, k in zip(chains[1:], parts[1:], caches, strict=True)]
        gb = np.abs(g) * (1.0 + 2.0 * Fr.max(axis=-1, keepdims=True))
        y = sum(gb[..., e:e + 1] * out for e, (out, _) in enumerate(experts))
        return y, (router_b, [k for _, k in experts], r, gb, [out for out, _ in experts], mask)

    # --- symmetry declarations ------------------------------------------------------------
    def _inners(self, site) -> list[Site]:
        out, start = [], site.start
        for c in self.chains(site.in_shape, f"{site.name}."):
            out.append(Site(c, start, 0))
            start += len(c.specs)
        return out

    @property
    def emits(self) -> bool:
        return True

    def units_out(self, site) -> int:
        return site.in_shape[-1]

    def rows_on_last_axis(self, site) -> bool:
        return len(site.in_shape) > 1

    def shift(self, site) -> str:
        return "stops"

    def feature_shift(self, site) -> str:
        return "stops"

    def carry(self, path, site):
        """Every chain's first layer absorbs a scaling of the features: the walk closes."""
        if not path.on_axis(True, len(site.in_shape)):
            return None
        fresh = Path(path.units, path.degree, last_axis=path.last_axis, interleaved=path.interleaved)
        walks = [walk(fresh, inner) for inner in self._inners(site)]
        if any(w is None or not w.closed or w.family is not Family.RESCALE for w in walks):
            return None
        return path.joined(walks)

    def rescalings(self, site):
        """Each expert's own laws; the output features' rescaling (the rows of every W2);
        with a softmax gate, the router's column sums."""
        router, *experts = self._inners(site)
        for inner in experts:
            yield from rescalings(inner.chain, inner.offset)
        last_axis = self.rows_on_last_axis(site)
        start = Path(self.units_out(site), last_axis=last_axis, shifts=False)
        for inner in experts:
            last = Site(inner.chain, inner.offset, len(inner.chain.layers) - 1)
            start = start.emitted(last, 1.0)
        yield from close(start, walk(start, site.following()), site)
        if self.top == 1:  # one selected expert: its gate is 1, the router never moves
            (entries,) = router.views(0, self.experts * site.in_shape[-1])
            yield Rescaling(f"{router.name}.W/top1", entries.units, (Term(entries, 1.0),), False, Family.TRANSLATION,
                            order=1)
        elif self.gate == "softmax":
            (columns,) = router.views(1, site.in_shape[-1])
            yield Rescaling(f"{router.name}.W/softmax", columns.units, (Term(columns, 1.0),), False, Family.TRANSLATION,
                            order=1)

    @property
    def spec(self) -> str:
        return (f"moe(experts={self.experts},hidden={self.hidden},top={self.top},gate={self.gate},"
                f"expert={self.expert})")

    @classmethod
    def draw(cls, draw, shape, context):
        if len(shape) not in cls.ranks:
            return None
        experts = draw(st.integers(2, 3))
        return cls(experts, draw(st.integers(1, 2)), draw(st.integers(1, experts)), draw(st.sampled_from(GATES)),
                   draw(st.sampled_from(EXPERTS)))
