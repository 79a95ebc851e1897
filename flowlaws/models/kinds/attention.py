"""attention(heads=H,dk=K,dv=V[,kv_heads=G][,rope][,rope_halves][,qknorm][,bias][,causal][,scale=s][,out_bias]):
multi-head self-attention on sequences (N, T, d), and its symmetries per head.

    y = sum_h softmax(s q_h k_h^T) X Wv_g(h) Wo_h,   q_h = R(n(X Wq_h)), k_h = R(n(X Wk_g(h)))

with Wq_h, Wk_g in R^{d x dk}, Wv_g in R^{d x dv}, Wo_h in R^{dv x d}, softmax over the
keys (the last axis). ``kv_heads`` G (grouped-query attention; G divides H): query head
h reads key/value head g(h) = h // (H / G); G = H (the default) is plain multi-head
attention. ``scale`` s: the scores' factor, 1/sqrt(dk) unless given (muP's 1/dk; 1, as T5):
a constant factor of the scores changes no symmetry below. ``qknorm``: n is an RMSNorm of
each query and key over its dk features (no gain, eps = 0); otherwise n is the identity.
``rope``: R rotates each pair of adjacent features (2i, 2i + 1) of the query and key at
position t by the angle t * b^(-2i/dk) (dk even; Meta's Llama, GPT-J; the base b is
``rope_base``, 10000 unless given: Llama 3's is 500000); with ``rope_halves`` the pairs are
(i, i + dk/2) (``rotate_half``: GPT-NeoX, Hugging Face's Llama); otherwise R is the
identity.
``causal``: position t attends to positions s <= t only (the softmax runs over those keys;
a GPT's mask). The mask acts on the scores alone, so every symmetry below is kept: it
leaves the scores and the values unchanged.

Symmetries (docs/theory.md 6.3): values X Wv_g Wo_h are invariant under Wv_g -> Wv_g A,
Wo_h -> A^-1 Wo_h for every h of group g: Wv_g^T Wv_g - sum_h Wo_h Wo_h^T (dv x dv) is
conserved. Scores are invariant under Wq_h -> Wq_h A (every h of group g), Wk_g -> Wk_g
A^-T, for every invertible A (GL(dk): sum_h Wq_h^T Wq_h - Wk_g^T Wk_g); with RoPE only
for A commuting with every rotation, one complex scaling per pair (GL(1, C)^(dk/2): its
real scaling gives one law per pair, ||Wq[:, pair]||^2 - ||Wk[:, pair]||^2; a rotation
gives no quadratic law); with QK-norm only for orthogonal A, and the scale of each Wq_h
and Wk_g alone (||Wq_h||^2 and ||Wk_g||^2 are conserved). The layer is linear in X
through its three projections (a scaling of the input features is absorbed by the rows
of Wq, Wk, Wv) and in each Wo (its columns scale the output features). With ``bias``
each projection is [W; b] (q = x Wq + bq: the bias is one more input, the constant 1), so
it joins its weight in every law and the output bias joins Wo's columns. Without rope or
qknorm the key bias is dead (q . bk is the same for every key, which softmax ignores): its
gradient is 0, so each entry is conserved, a parameter that never moves: a derived
translation law, marked ``batch_sum`` (its gradient is 0 by cancellation, round-off of a
sum no step's magnitudes bound; the torch monitor leaves it unwatched, and a zero bias,
torch's default, moves by that round-off alone). With ``out_bias`` the output projection
alone has a bias (q, k and v none: Karpathy's "Let's build GPT", lucidrains' ViT): bo joins
Wo's columns, as with ``bias``.

Round-off model: the exponential turns an absolute error of a score into a relative
error of its probability, so the magnitude sweep multiplies A by (1 + 2 max |S|) over
each row, |S| bounded by the same products on absolute values; an RMSNorm of q bounds as
a normalization does (flowlaws.models.kinds.normalization), a rotation by |cos| + |sin|.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property
from typing import ClassVar

import autograd.numpy as anp
import numpy as np
from hypothesis import strategies as st

from flowlaws.errors import InvalidArgument, Unrepresentable
from flowlaws.models.layer import Layer, fmt
from flowlaws.models.symmetry import Family, Rescaling, Term, from_weight_layer
from flowlaws.validation import positive_ints

ROPE_BASE = 10000.0


@dataclass(frozen=True)
class Attention(Layer):
    """``heads`` heads with key width ``dk`` and value width ``dv`` on (T, d) inputs."""

    heads: int = 1
    dk: int = 1
    dv: int = 1
    kv_heads: int = 0  # 0: one key/value head per query head
    rope: bool = False
    qknorm: bool = False
    bias: bool = False
    causal: bool = False
    rope_halves: bool = False  # RoPE's pairs are (i, i + dk/2), not (2i, 2i + 1)
    rope_base: float = ROPE_BASE  # RoPE's frequencies are rope_base^(-2i/dk)
    scale: float = 0.0  # the scores' factor; 0: 1/sqrt(dk)
    out_bias: bool = False  # the output projection alone has a bias (``bias``: every projection has one)
    kind: ClassVar[str] = "attention"
    example: ClassVar[str] = "seq:3x3:attention(heads=1,dk=2,dv=2),flatten,dense(1)"
    family: ClassVar[str] = "attn"
    ranks: ClassVar[tuple[int, ...]] = (2,)
    polynomial: ClassVar[bool] = False
    reads_last_axis: ClassVar[bool] = True  # Wq, Wk, Wv read the features of each position

    def __post_init__(self):
        positive_ints("attention", heads=self.heads, dk=self.dk, dv=self.dv)
        if self.kv_heads and (not isinstance(self.kv_heads, int) or self.kv_heads < 1 or self.heads % self.kv_heads):
            raise InvalidArgument(f"attention: kv_heads must divide heads={self.heads}, got {self.kv_heads!r}")
        if self.rope and self.dk % 2:
            raise InvalidArgument(f"attention: rope rotates pairs of features, so dk must be even, got {self.dk}")
        if (self.rope_halves or self.rope_base != ROPE_BASE) and not self.rope:
            raise InvalidArgument("attention: rope_halves and rope_base set RoPE's pairs and angles; add rope")
        if not (isinstance(self.rope_base, int | float) and self.rope_base > 1):
            raise InvalidArgument(f"attention: rope_base must be a number above 1, got {self.rope_base!r}")
        if self.bias and self.out_bias:
            raise InvalidArgument("attention: bias gives every projection a bias, the output's too; drop out_bias")
        if not (isinstance(self.scale, int | float) and np.isfinite(self.scale) and self.scale >= 0):
            raise InvalidArgument(f"attention: scale multiplies the scores; give a positive number (0: 1/sqrt(dk)), "
                                  f"got {self.scale!r}")

    @property
    def factor(self) -> float:
        """The scores' factor s: ``scale``, or 1/sqrt(dk)."""
        return self.scale or 1.0 / np.sqrt(self.dk)

    @property
    def groups(self) -> int:
        """Key/value heads."""
        return self.kv_heads or self.heads

    def group(self, h: int) -> int:
        return h // (self.heads // self.groups)

    @cached_property
    def layout(self) -> tuple[tuple[str, int], ...]:
        """(matrix, head or group) of each parameter: per group, its query heads' Wq, then
        Wk, Wv, then its query heads' Wo (Wq0, Wk0, Wv0, Wo0, ... without grouping)."""
        per = self.heads // self.groups
        out: list[tuple[str, int]] = []
        for g in range(self.groups):
            heads = range(g * per, (g + 1) * per)
            out += [*(("Wq", h) for h in heads), ("Wk", g), ("Wv", g), *(("Wo", h) for h in heads)]
        if self.bias:  # the biases after every weight: the queries', each group's key and value's, the output's
            out += [*(("bq", h) for h in range(self.heads)),
                    *((b, g) for g in range(self.groups) for b in ("bk", "bv")), ("bo", 0)]
        elif self.out_bias:
            out.append(("bo", 0))
        return tuple(out)

    @cached_property
    def _positions(self) -> dict[tuple[str, int], int]:
        return {entry: k for k, entry in enumerate(self.layout)}

    def index(self, name: str, i: int) -> int:
        return self._positions[(name, i)]

    def own(self, *names: str) -> tuple[int, ...]:
        return tuple(k for k, (name, _) in enumerate(self.layout) if name in names)

    def param_shapes(self, in_shape):
        if len(in_shape) != 2:
            raise InvalidArgument(f"{self.spec} needs a sequence input (T, d), got shape {tuple(in_shape)}")
        d = in_shape[1]
        shapes = {"Wq": (d, self.dk), "Wk": (d, self.dk), "Wv": (d, self.dv), "Wo": (self.dv, d),
                  "bq": (self.dk,), "bk": (self.dk,), "bv": (self.dv,), "bo": (d,)}
        return tuple((f"{name}{i}", shapes[name]) for name, i in self.layout)

    def out_shape(self, in_shape):
        self.param_shapes(in_shape)
        return tuple(in_shape)

    def _projections(self, p):
        """[Wq_h | Wk_g(h) | Wv_g(h) for every head] as one (d, H (2 dk + dv)) matrix, and
        the Wo_h stacked as one (H dv, d) matrix: each product is then one BLAS call."""
        at = self.index

        def block(name, i):  # a projection, its bias as an extra row (the input's constant 1)
            return np.vstack([p[at(name, i)], p[at("b" + name[1], i)][None]]) if self.bias else p[at(name, i)]

        return (np.concatenate([block(name, i) for h in range(self.heads)
                                for name, i in (("Wq", h), ("Wk", self.group(h)), ("Wv", self.group(h)))], axis=1),
                np.concatenate([p[at("Wo", h)] for h in range(self.heads)], axis=0))

    def _inputs(self, x):
        """x, with a column of ones when the projections have biases."""
        return np.concatenate([x, np.ones((*x.shape[:-1], 1), x.dtype)], axis=-1) if self.bias else x

    def _split(self, P):
        """(N, T, H (2k + v)) -> Q, K, V of shape (N, H, T, .)."""
        n, t, _ = P.shape
        P = P.reshape(n, t, self.heads, -1).transpose(0, 2, 1, 3)
        # contiguous copies: matmul on strided stacks skips BLAS
        return tuple(np.ascontiguousarray(part) for part in (
            P[..., :self.dk], P[..., self.dk:2 * self.dk], P[..., 2 * self.dk:]))

    # --- the query and key transforms: RMSNorm (qknorm), then rotation (rope) --------------
    def _angles(self, t: int):
        """cos and sin of t' * b^(-2i/dk) (b: rope_base) for positions t' < t and pairs i: (t, dk/2) each."""
        theta = float(self.rope_base) ** (-np.arange(0, self.dk, 2) / self.dk)
        angle = np.arange(t)[:, None] * theta[None, :]
        return np.cos(angle), np.sin(angle)

    def _rotate(self, q, sign: float = 1.0, magnitude: bool = False):
        """Each adjacent pair of q (..., t, dk) rotated by its angle (sign -1: the transpose);
        ``magnitude``: by |cos| and |sin| with every difference a sum (a bound)."""
        if not self.rope:
            return q
        cos, sin = self._angles(q.shape[-2])
        cos, sin = (np.abs(cos), np.abs(sin)) if magnitude else (cos, sign * sin)
        a, b = self._pairs(q)
        return self._paired(np, a * cos - b * sin if not magnitude else a * cos + b * sin, a * sin + b * cos, q.shape)

    def _pairs(self, q):
        """The two features of every rotated pair of q (..., dk): (q[2i], q[2i + 1]), or
        with rope_halves (q[i], q[i + dk/2])."""
        half = self.dk // 2
        return (q[..., :half], q[..., half:]) if self.rope_halves else (q[..., 0::2], q[..., 1::2])

    def _paired(self, xp, first, second, shape):
        """`_pairs` undone: each pair's two features back in their places (``xp``: numpy or
        autograd's numpy)."""
        if self.rope_halves:
            return xp.concatenate([first, second], axis=-1)
        return xp.reshape(xp.stack([first, second], axis=-1), shape)

    @staticmethod
    def _rms(q):
        """(q / rms(q), 1 / rms(q)) over the last axis (complex q: its analytic continuation)."""
        square = (q * q).mean(axis=-1, keepdims=True)
        if np.any(square == 0):
            raise Unrepresentable("attention: qknorm of a query or key that is 0 (eps = 0), so q̂ = 0/0; "
                                  "the case cannot be decided")
        s = 1.0 / np.sqrt(square)
        return q * s, s

    def _transform(self, q0):
        """(q, 1/rms or None): the query (or key) after qknorm and rope."""
        if not self.qknorm:
            return self._rotate(q0), None
        q, s = self._rms(q0)
        return self._rotate(q), s

    def _untransform(self, dq, q0, s, magnitude: bool = False, bound=None):
        """dL/dq0 from dL/dq (the transpose of `_transform`'s Jacobian, or its bound)."""
        dq = self._rotate(dq, -1.0, magnitude)
        if not self.qknorm:
            return dq
        if magnitude:  # as a normalization's bound: factor * s * (g + b mean(g b))
            b, factor = bound
            return factor * s * (dq + b * (dq * b).mean(axis=-1, keepdims=True))
        qhat = q0 * s
        return s * (dq - qhat * (dq * qhat).mean(axis=-1, keepdims=True))

    # --- numbers ------------------------------------------------------------------------
    def apply(self, p, x):
        return self._attended(p, x, x)

    def _attended(self, p, x, m):
        """y for queries read from x and keys and values from m (x itself: self-attention),
        written for autograd."""
        y = 0.0
        for h in range(self.heads):
            g = self.group(h)
            q, k = (anp.einsum("ntd,dk->ntk", u, p[self.index(name, i)])
                    + (p[self.index("b" + name[1], i)] if self.bias else 0.0)
                    for u, name, i in ((x, "Wq", h), (m, "Wk", g)))
            if self.qknorm:
                q, k = (u / anp.sqrt(anp.mean(u * u, axis=-1, keepdims=True)) for u in (q, k))
            if self.rope:
                cos, sin = self._angles(x.shape[1])
                q, k = (self._paired(anp, a * cos - b * sin, a * sin + b * cos, u.shape)
                        for u in (q, k) for a, b in [self._pairs(u)])
            scores = anp.einsum("ntk,nsk->nts", q, k) * self.factor
            if self.causal:
                scores = anp.where(self._future(x.shape[1]), -np.inf, scores)
            e = anp.exp(scores - anp.max(scores, axis=-1, keepdims=True))
            a = e / anp.sum(e, axis=-1, keepdims=True)
            v, o = p[self.index("Wv", g)], p[self.index("Wo", h)]
            values = anp.einsum("ntd,dv->ntv", m, v) + (p[self.index("bv", g)] if self.bias else 0.0)
            y = y + anp.einsum("nts,nsv,vd->ntd", a, values, o)
        return y + self._bo(p)

    def run(self, p, x, frozen=None):
        """(y, aux) with heads on axis 1; complex x or p allowed (discovery)."""
        W, Wo = self._projections(p)
        return self._forward(x, W, Wo, self._bo(p), None)

    def _bo(self, p):
        return p[self.index("bo", 0)] if self.bias or self.out_bias else 0.0

    def _forward(self, x, W, Wo, bo, aux, m=None):
        """The forward pass, its keys and values read from ``m`` when given (cross-attention);
        with the aux of a pass given (the magnitude sweep: x, m and W are bounds) it bounds
        every step instead."""
        Q0, K0, V = self._split(self._inputs(x) @ W)
        if m is not None:
            _, K0, V = self._split(self._inputs(m) @ W)
        if aux is None:
            (Q, sq), (K, sk) = self._transform(Q0), self._transform(K0)
            bounds = None
        else:
            sq, sk = aux[6], aux[7]
            (Q, bq), (K, bk) = (self._bound(U0, s) for U0, s in ((Q0, sq), (K0, sk)))
            bounds = (bq, bk)
        S = (Q @ K.swapaxes(-1, -2)) * self.factor
        if aux is None:
            future = self._future(S.shape[-1]) if self.causal else np.zeros(S.shape[-2:], bool)
            E = np.where(future, 0.0, np.exp(S - np.where(future, -np.inf, S.real).max(axis=-1, keepdims=True)))
            A = E / E.sum(axis=-1, keepdims=True)
        else:  # exp turns absolute errors of S into relative errors of A
            A = np.abs(aux[4]) * (1.0 + 2.0 * S.max(axis=-1, keepdims=True))
        H = A @ V
        n, _, t, _ = H.shape
        return H.transpose(0, 2, 1, 3).reshape(n, t, -1) @ Wo + bo, (Q0, K0, Q, K, A, V, sq, sk, H, bounds, m)

    @staticmethod
    def _future(t: int) -> np.ndarray:
        """The (t, t) mask of the keys a causal query may not read: s > t."""
        return np.triu(np.ones((t, t), bool), 1)

    def _bound(self, U0, s):
        """(bound on the transformed query or key, (bound on its RMSNorm, condition factor))."""
        if not self.qknorm:
            return self._rotate(U0, magnitude=True), None
        factor = 1.0 + 2.0 * s**2 * (U0**2).mean(axis=-1, keepdims=True)
        b = factor * s * U0
        return self._rotate(b, magnitude=True), (b, factor)

    def pull(self, p, x, y, aux, dy, magnitude: bool = False):
        """The reverse sweep; with ``magnitude`` the same on the bounds of `bound_run`
        (every difference becomes a sum)."""
        return self._pulled(p, x, aux, dy, magnitude)[:2]

    def _pulled(self, p, x, aux, dy, magnitude: bool):
        """(dx, dparams, dm): `pull`, and the gradient of the keys' and values' input m when
        it is not x (cross-attention; else None)."""
        W, Wo = self._projections(tuple(np.abs(q) for q in p) if magnitude else p)
        Q0, K0, Q, K, A, V, sq, sk, H, bounds, m = aux
        n, heads, t, _ = H.shape
        rows = H.transpose(0, 2, 1, 3).reshape(n * t, -1)
        dWo = rows.T @ dy.reshape(n * t, -1)
        dH = np.ascontiguousarray((dy @ Wo.T).reshape(n, t, heads, -1).transpose(0, 2, 1, 3))
        dA = dH @ V.swapaxes(-1, -2)
        dV = A.swapaxes(-1, -2) @ dH
        dS = A * (dA + (-1.0, 1.0)[magnitude] * (dA * A).sum(axis=-1, keepdims=True)) * self.factor
        bq, bk = bounds if magnitude else (None, None)
        dQ = self._untransform(dS @ K, Q0, sq, magnitude, bq)
        dK = self._untransform(dS.swapaxes(-1, -2) @ Q, K0, sk, magnitude, bk)
        d = x.shape[-1]
        if m is None:
            dP = _positions_first(np.concatenate([dQ, dK, dV], axis=-1))
            dW, dm = _input_gradient(self._inputs(x), dP), None
        else:  # the queries' gradient to x, the keys' and values' to m (the other columns 0)
            dPx = _positions_first(np.concatenate([dQ, np.zeros((*dQ.shape[:-1], self.dk + self.dv), dQ.dtype)], -1))
            dPm = _positions_first(np.concatenate([np.zeros((*dK.shape[:-1], self.dk), dK.dtype), dK, dV], -1))
            dW = _input_gradient(self._inputs(x), dPx) + _input_gradient(self._inputs(m), dPm)
            dP, dm = dPx, dPm @ W[:d].T
        width, k, v = 2 * self.dk + self.dv, self.dk, self.dv
        grads: list = [0.0] * len(self.layout)
        for h in range(self.heads):
            block, g = dW[:, h * width:(h + 1) * width], self.group(h)
            for name, i, part in (("q", h, block[:, :k]), ("k", g, block[:, k:2 * k]), ("v", g, block[:, 2 * k:])):
                grads[self.index("W" + name, i)] = grads[self.index("W" + name, i)] + part[:d]
                if self.bias:
                    grads[self.index("b" + name, i)] = grads[self.index("b" + name, i)] + part[d]
            grads[self.index("Wo", h)] = dWo[h * v:(h + 1) * v]
        if self.bias or self.out_bias:
            grads[self.index("bo", 0)] = dy.reshape(n * t, -1).sum(axis=0)
        return dP @ W[:d].T, tuple(grads), dm

    def vjp(self, p, x, y, dy):
        return self.pull(p, x, y, self.run(p, x)[1], dy)

    def bound_run(self, p, x, aux):
        """Bounds for inputs bounded by x and params p >= 0 (see the module docstring)."""
        W, Wo = self._projections(p)
        return self._forward(x, W, Wo, self._bo(p), aux)

    # --- symmetry declarations ------------------------------------------------------------
    @property
    def emits(self) -> bool:
        return True  # the columns of every Wo_h scale output feature j

    @property
    def absorbs(self) -> bool:
        return True  # linear in X through Wq, Wk, Wv: their rows absorb a scaling of the features

    def units_out(self, site) -> int:
        return site.in_shape[1]

    def shared_input(self, site) -> bool:
        """One head of value width 1: output feature j is Wo[0, j] times the head's value."""
        return self.heads * self.dv == 1 and not (self.bias or self.out_bias)

    def rows_on_last_axis(self, site) -> bool:
        return True

    def shift(self, site) -> str:
        return "stops"  # softmax of the scores: not linear in its input

    def feature_shift(self, site) -> str:
        return "stops"

    def rows(self, site, units, interleaved: bool = False):  # its input is (T, d): never interleaved
        return site.views(1, units, own=self.own("Wo")) + site.views(0, units, own=self.own("bo"))

    def columns(self, site, path):
        return site.views(0, path.units, own=self.own("Wq", "Wk", "Wv"))

    def shifted_rows(self, site):
        """Its output is the heads' values times Wo, plus bo: Wo -> Wo + a 1^T and
        bo -> bo + t 1 shift every output feature alike (`Layer.shifted_rows`)."""
        return self.rows(site, self.units_out(site))

    def centered(self, site, groups):
        """Each column of Wq, Wk, Wv reads the whole feature axis (one group per position)."""
        if groups.interleaved:
            return ()
        own = self.own("Wq", "Wk", "Wv")
        return tuple(site.views(1, shape[1], own=(i,))[0]
                     for i, (_, shape) in enumerate(self.param_shapes(site.in_shape)) if i in own)

    def rescalings(self, site):
        """Per key/value group: the scores' symmetry (GL(dk); with rope one complex scaling
        per pair; with qknorm the scale of each Wq_h and Wk_g), the values' GL(dv); and the
        output features' rescaling."""
        per = self.heads // self.groups
        for g in range(self.groups):
            heads = range(g * per, (g + 1) * per)

            def view(name, i, axis, units, interleaved=False):
                return site.views(axis, units, own=(self.index(name, i),), interleaved=interleaved)[0]

            def both(name, i, units, interleaved=False):  # [W; b]: the weight's columns and the bias's entries
                weight = view("W" + name, i, 1, units, interleaved)  # (the bias: a row of inputs 1)
                return (weight, view("b" + name, i, 0, units, interleaved)) if self.bias else (weight,)

            qs = [both("q", h, self.dk) for h in heads]
            k = both("k", g, self.dk)
            if self.qknorm:
                for views in (*qs, k):
                    yield Rescaling(f"{site.name}.{views[0].name.rsplit('.', 1)[1]}.norm", self.dk,
                                    tuple(Term(v, 1.0) for v in views), False, Family.SCALE, uniform=True)
            elif self.rope:
                pairs = ([both("q", h, self.dk // 2, self.rope_halves) for h in heads],
                         both("k", g, self.dk // 2, self.rope_halves))
                yield Rescaling(f"{site.name}.g{g}.qk", self.dk // 2,
                                (*(Term(v, 1.0) for q in pairs[0] for v in q), *(Term(v, -1.0) for v in pairs[1])),
                                False, Family.GL)
            else:
                yield Rescaling(f"{site.name}.g{g}.qk" if per > 1 else f"{site.name}.h{g}.qk", self.dk,
                                (*(Term(v, 1.0) for q in qs for v in q), *(Term(v, -1.0) for v in k)), True, Family.GL)
                if self.bias:  # bk -> bk + a adds q . a to a query's every score, which softmax drops: dead
                    yield Rescaling(f"{site.name}.{'g' if per > 1 else 'h'}{g}.bk", self.dk, (Term(k[1], 1.0),),
                                    False, Family.TRANSLATION, order=1, batch_sum=True)
            v, os_ = both("v", g, self.dv), [view("Wo", h, 0, self.dv) for h in heads]
            yield Rescaling(f"{site.name}.g{g}.vo" if per > 1 else f"{site.name}.h{g}.vo", self.dv,
                            (*(Term(x, 1.0) for x in v), *(Term(o, -1.0) for o in os_)), True, Family.GL)
        yield from from_weight_layer(site)

    @property
    def spec(self) -> str:
        extra = "".join([f",kv_heads={self.kv_heads}" if self.kv_heads else "", ",rope" if self.rope else "",
                         ",rope_halves" if self.rope_halves else "",
                         f",rope_base={fmt(self.rope_base)}" if self.rope_base != ROPE_BASE else "",
                         ",qknorm" if self.qknorm else "", ",bias" if self.bias else "",
                         ",causal" if self.causal else "", f",scale={fmt(self.scale)}" if self.scale else "",
                         ",out_bias" if self.out_bias else ""])
        return f"attention(heads={self.heads},dk={self.dk},dv={self.dv}{extra})"

    @classmethod
    def draw(cls, draw, shape, context):
        if len(shape) != 2:
            return None
        heads, dk = draw(st.integers(1, 2)), draw(st.sampled_from([1, 2]))
        rope = dk % 2 == 0 and draw(st.booleans())
        layer = cls(heads, dk, draw(st.integers(1, 2)), draw(st.sampled_from([0, 1])) if heads == 2 else 0, rope,
                    draw(st.booleans()), draw(st.booleans()))
        layer = replace(layer, rope_halves=True) if rope and draw(st.booleans()) else layer
        # the scores' factor: the default, T5's 1 or muP's 1/dk; the output's bias alone
        return replace(layer, scale=draw(st.sampled_from([0.0, 1.0, 1.0 / dk])),
                       out_bias=not layer.bias and draw(st.booleans()))


def _positions_first(dP):
    """(N, H, T, w) per head -> (N, T, H w): each position's columns as the projections lay them out."""
    n, _, t, _ = dP.shape
    return dP.transpose(0, 2, 1, 3).reshape(n, t, -1)


def _input_gradient(inputs, dP):
    """dL/dW of P = inputs @ W from dL/dP: the positions of every sample summed."""
    return inputs.reshape(-1, inputs.shape[-1]).T @ dP.reshape(-1, dP.shape[-1])
