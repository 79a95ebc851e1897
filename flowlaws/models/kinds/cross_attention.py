"""cross_attention(heads=H,dk=K,dv=V[,kv_heads=G][,qknorm][,bias][,scale=s][,out_bias]):
attention whose queries read the sequence x (N, T, d) and whose keys and values read a
memory m (N, S, d): a Transformer decoder's second attention, m the encoder's output.

    y = sum_h softmax(s q_h k_h^T) m Wv_g(h) Wo_h,   q_h = n(x Wq_h),  k_h = n(m Wk_g(h))

It lives in a ``decode(S)[DECODER | ENCODER]`` block (`flowlaws.models.kinds.decode`),
which computes m and hands it to every cross-attention of its decoder (`reading`); the
numbers and the options are `attention`'s (rope and causal aside: a memory has no
positions shared with x), and so are its symmetries (docs/theory.md 6.3): per group the
scores' GL(dk), the values' GL(dv) and, with ``bias``, the dead key bias. What differs is
which input each projection reads: a scaling of x's features is absorbed by the rows
Wq[i, :] alone (the layer's `columns`, its input side), one of m's by the rows of Wk and Wv
(`memory_columns`, for the decode block's walk of the memory).
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import numpy as np

from flowlaws.errors import InvalidArgument
from flowlaws.models.kinds.attention import Attention


@dataclass
class Memory:
    """The memory a decode block's cross-attentions read (``value``), and the gradient they
    send back to it (``grad``: their sum, for the encoder's reverse sweep)."""

    value: Any
    grad: Any = None

    def receive(self, dm) -> None:
        self.grad = dm if self.grad is None else self.grad + dm


_MEMORY: ContextVar[Memory | None] = ContextVar("memory", default=None)


@contextmanager
def reading(value):
    """Within it, every cross-attention reads ``value`` as its memory (a decode block's
    sweep of its decoder); yields the `Memory`, whose ``grad`` the reverse sweep fills."""
    memory = Memory(value)
    token = _MEMORY.set(memory)
    try:
        yield memory
    finally:
        _MEMORY.reset(token)


def _memory() -> Memory:
    memory = _MEMORY.get()
    if memory is None:
        raise InvalidArgument("cross_attention reads the memory of a decode block; put it in one's decoder: "
                              "decode(S)[..., cross_attention(...), ... | ENCODER]")
    return memory


@dataclass(frozen=True)
class CrossAttention(Attention):
    """``attention`` with its keys and values read from the memory of its decode block."""

    kind: ClassVar[str] = "cross_attention"
    example: ClassVar[str] = "seq:4x2:decode(2)[cross_attention(heads=1,dk=1,dv=1) | dense(2)],flatten,dense(1)"
    family: ClassVar[str] = "xattn"
    drawn_in: ClassVar[str] = "decode"  # alone it has no memory: a decode block draws it (`drawn`)

    def __post_init__(self):
        super().__post_init__()
        if self.rope or self.causal:
            raise InvalidArgument(f"cross_attention: {'rope' if self.rope else 'causal'} relates a query's "
                                  "position to a key's; a memory's positions are not the sequence's: drop it")

    # --- numbers: keys and values from the memory ---------------------------------------
    def apply(self, p, x):
        return self._attended(p, x, _memory().value)

    def run(self, p, x, frozen=None):
        W, Wo = self._projections(p)
        return self._forward(x, W, Wo, self._bo(p), None, np.asarray(_memory().value))

    def bound_run(self, p, x, aux):
        W, Wo = self._projections(p)
        return self._forward(x, W, Wo, self._bo(p), aux, _memory().value)

    def pull(self, p, x, y, aux, dy, magnitude: bool = False):
        """The reverse sweep; the memory's gradient goes to the decode block (`Memory.grad`)."""
        dx, grads, dm = self._pulled(p, x, aux, dy, magnitude)
        _memory().receive(dm)
        return dx, grads

    # --- symmetry: x is read by Wq alone, the memory by Wk and Wv ---------------------------
    def columns(self, site, path):
        return site.views(0, path.units, own=self.own("Wq"))

    def memory_columns(self, site, units: int):
        """The slices that absorb a scaling of the memory's features: the rows of Wk and Wv."""
        return site.views(0, units, own=self.own("Wk", "Wv"))

    def centered(self, site, groups):
        """Each column of Wq reads x's whole feature axis (one group per position)."""
        if groups.interleaved:
            return ()
        return tuple(site.views(1, shape[1], own=(i,))[0] for i, (_, shape) in
                     enumerate(self.param_shapes(site.in_shape)) if i in self.own("Wq"))

    # --- its spec -------------------------------------------------------------------------
    @property
    def spec(self) -> str:
        return "cross_" + super().spec

    @classmethod
    def draw(cls, draw, shape, context):
        """None: alone it reads no memory (a decode block draws it, `drawn`)."""
        return None

    @classmethod
    def drawn(cls, draw, context) -> CrossAttention:
        """One cross-attention, its sizes and options drawn as attention's are."""
        from hypothesis import strategies as st

        heads, dk = draw(st.integers(1, 2)), draw(st.sampled_from([1, 2]))
        layer = cls(heads, dk, draw(st.integers(1, 2)), draw(st.sampled_from([0, 1])) if heads == 2 else 0,
                    qknorm=draw(st.booleans()), bias=draw(st.booleans()))
        return replace(layer, scale=draw(st.sampled_from([0.0, 1.0 / dk])),
                       out_bias=not layer.bias and draw(st.booleans()))
