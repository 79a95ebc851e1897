"""Multi-head self-attention on sequences (N, T, d), and its GL symmetry per head.

    y = sum_h softmax((X Wq_h)(X Wk_h)^T / sqrt(dk)) X Wv_h Wo_h

with Wq_h, Wk_h in R^{d x dk}, Wv_h in R^{d x dv}, Wo_h in R^{dv x d}, softmax over
the keys (the last axis). Scores are invariant under Wq_h -> Wq_h A, Wk_h -> Wk_h A^-T
and values under Wv_h -> Wv_h A, Wo_h -> A^-1 Wo_h, so each head conserves the matrices
Wq^T Wq - Wk^T Wk (dk x dk) and Wv^T Wv - Wo Wo^T (dv x dv) (docs/theory.md 6.3). The
layer is linear in X through its three projections (a scaling of the input features
is absorbed by the rows of Wq, Wk, Wv) and in each Wo (its columns scale the output
features).

Round-off model: the exponential turns an absolute error of a score into a relative
error of its probability, so the magnitude sweep multiplies A by (1 + 2 max |S|) over
each row, |S| bounded by the same products on absolute values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import autograd.numpy as anp
import numpy as np
from hypothesis import strategies as st

from flowlaws.errors import InvalidArgument
from flowlaws.models.layer import Layer, positive
from flowlaws.models.symmetry import Rescaling, Term, from_weight_layer

PARAMS = ("Wq", "Wk", "Wv", "Wo")


@dataclass(frozen=True)
class Attention(Layer):
    """``heads`` heads with key width ``dk`` and value width ``dv`` on (T, d) inputs."""

    heads: int = 1
    dk: int = 1
    dv: int = 1
    kind: ClassVar[str] = "attention"
    example: ClassVar[str] = "seq:3x3:attention(heads=1,dk=2,dv=2),flatten,dense(1)"
    family: ClassVar[str] = "attn"
    ranks: ClassVar[tuple[int, ...]] = (2,)
    polynomial: ClassVar[bool] = False
    reads_last_axis: ClassVar[bool] = True  # Wq, Wk, Wv read the features of each position

    def __post_init__(self):
        positive("attention", heads=self.heads, dk=self.dk, dv=self.dv)

    def param_shapes(self, in_shape):
        if len(in_shape) != 2:
            raise InvalidArgument(f"{self.spec} needs a sequence input (T, d), got shape {tuple(in_shape)}")
        d = in_shape[1]
        shapes = {"Wq": (d, self.dk), "Wk": (d, self.dk), "Wv": (d, self.dv), "Wo": (self.dv, d)}
        return tuple((f"{name}{h}", shapes[name]) for h in range(self.heads) for name in PARAMS)

    def out_shape(self, in_shape):
        self.param_shapes(in_shape)
        return tuple(in_shape)

    def _projections(self, p):
        """[Wq_h | Wk_h | Wv_h for every head] as one (d, H (2 dk + dv)) matrix, and the
        Wo_h stacked as one (H dv, d) matrix: each product is then one BLAS call."""
        return (np.concatenate([w for h in range(self.heads) for w in p[4 * h: 4 * h + 3]], axis=1),
                np.concatenate(p[3::4], axis=0))

    def _split(self, P):
        """(N, T, H (2k + v)) -> Q, K, V of shape (N, H, T, .)."""
        n, t, _ = P.shape
        P = P.reshape(n, t, self.heads, -1).transpose(0, 2, 1, 3)
        # contiguous copies: matmul on strided stacks skips BLAS
        return tuple(np.ascontiguousarray(part) for part in (
            P[..., :self.dk], P[..., self.dk:2 * self.dk], P[..., 2 * self.dk:]))

    # --- numbers ------------------------------------------------------------------------
    def apply(self, p, x):
        y = 0.0
        for h in range(self.heads):
            q, k, v, o = p[4 * h: 4 * h + 4]
            scores = anp.einsum("ntk,nsk->nts", anp.einsum("ntd,dk->ntk", x, q),
                                anp.einsum("ntd,dk->ntk", x, k)) / np.sqrt(self.dk)
            e = anp.exp(scores - anp.max(scores, axis=-1, keepdims=True))
            a = e / anp.sum(e, axis=-1, keepdims=True)
            y = y + anp.einsum("nts,nsv,vd->ntd", a, anp.einsum("ntd,dv->ntv", x, v), o)
        return y

    def run(self, p, x, frozen=None):
        """(y, (Q, K, V, A, H)) with heads on axis 1; complex x or p allowed (discovery)."""
        W, Wo = self._projections(p)
        return self._forward(x, W, Wo, None)

    def _forward(self, x, W, Wo, A):
        """The forward pass; with ``A`` given (the magnitude sweep) it replaces softmax."""
        Q, K, V = self._split(x @ W)
        S = (Q @ K.swapaxes(-1, -2)) / np.sqrt(self.dk)
        if A is None:
            E = np.exp(S - S.real.max(axis=-1, keepdims=True))
            A = E / E.sum(axis=-1, keepdims=True)
        else:  # exp turns absolute errors of S into relative errors of A
            A = A * (1.0 + 2.0 * S.max(axis=-1, keepdims=True))
        H = A @ V
        n, _, t, _ = H.shape
        return H.transpose(0, 2, 1, 3).reshape(n, t, -1) @ Wo, (Q, K, V, A, H)

    def pull(self, p, x, y, aux, dy, magnitude: bool = False):
        """The reverse sweep; with ``magnitude`` the same on the bounds of `bound_run`
        (every difference becomes a sum)."""
        W, Wo = self._projections(tuple(np.abs(q) for q in p) if magnitude else p)
        Q, K, V, A, H = aux
        n, heads, t, _ = H.shape
        rows = H.transpose(0, 2, 1, 3).reshape(n * t, -1)
        dWo = rows.T @ dy.reshape(n * t, -1)
        dH = np.ascontiguousarray((dy @ Wo.T).reshape(n, t, heads, -1).transpose(0, 2, 1, 3))
        dA = dH @ V.swapaxes(-1, -2)
        dV = A.swapaxes(-1, -2) @ dH
        dS = A * (dA + (-1.0, 1.0)[magnitude] * (dA * A).sum(axis=-1, keepdims=True)) / np.sqrt(self.dk)
        dP = np.concatenate([dS @ K, dS.swapaxes(-1, -2) @ Q, dV], axis=-1)
        dP = dP.transpose(0, 2, 1, 3).reshape(n, t, -1)
        dW = x.reshape(n * t, -1).T @ dP.reshape(n * t, -1)
        width, k, v = 2 * self.dk + self.dv, self.dk, self.dv
        grads = []
        for h in range(self.heads):
            block = dW[:, h * width:(h + 1) * width]
            grads += [block[:, :k], block[:, k:2 * k], block[:, 2 * k:], dWo[h * v:(h + 1) * v]]
        return dP @ W.T, tuple(grads)

    def vjp(self, p, x, y, dy):
        return self.pull(p, x, y, self.run(p, x)[1], dy)

    def bound_run(self, p, x, aux):
        """Bounds for inputs bounded by x and params p >= 0 (see the module docstring)."""
        W, Wo = self._projections(p)
        return self._forward(x, W, Wo, np.abs(aux[3]))

    # --- symmetry declarations ------------------------------------------------------------
    @property
    def emits(self) -> bool:
        return True  # the columns of every Wo_h scale output feature j

    @property
    def absorbs(self) -> bool:
        return True  # linear in X through Wq, Wk, Wv: their rows absorb a scaling of the features

    def units_out(self, site) -> int:
        return site.in_shape[1]

    def rows_on_last_axis(self, site) -> bool:
        return True

    def shift(self, site) -> str:
        return "stops"  # softmax of the scores: not linear in its input

    def _own(self, name):
        return tuple(4 * h + PARAMS.index(name) for h in range(self.heads))

    def rows(self, site, units, interleaved: bool = False):  # its input is (T, d): never interleaved
        return site.views(1, units, own=self._own("Wo"))

    def columns(self, site, path):
        return site.views(0, path.units, own=tuple(sorted(self._own("Wq") + self._own("Wk") + self._own("Wv"))))

    def centered(self, site, groups: int):
        """Each column of Wq, Wk, Wv reads the whole feature axis (one group per position)."""
        own = tuple(sorted(self._own("Wq") + self._own("Wk") + self._own("Wv")))
        return tuple(site.views(1, shape[1], own=(i,))[0]
                     for i, (_, shape) in enumerate(self.param_shapes(site.in_shape)) if i in own)

    def rescalings(self, site):
        """GL(dk) and GL(dv) per head, and the output features' rescaling."""
        for h in range(self.heads):
            q, k, v, o = (site.views(axis, size, own=(4 * h + i,))[0]
                          for i, (axis, size) in enumerate(((1, self.dk), (1, self.dk), (1, self.dv), (0, self.dv))))
            yield Rescaling(f"{site.name}.h{h}.qk", self.dk, (Term(q, 1.0), Term(k, -1.0)), True, "gl")
            yield Rescaling(f"{site.name}.h{h}.vo", self.dv, (Term(v, 1.0), Term(o, -1.0)), True, "gl")
        yield from from_weight_layer(site)

    @property
    def spec(self) -> str:
        return f"attention(heads={self.heads},dk={self.dk},dv={self.dv})"

    @classmethod
    def draw(cls, draw, shape, context):
        sizes = st.integers(1, 2)
        return cls(draw(sizes), draw(sizes), draw(sizes)) if len(shape) == 2 else None
