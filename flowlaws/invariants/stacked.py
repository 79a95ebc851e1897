"""Every law of a model as one vector of components, evaluated in a few sparse products.

Each component c of a law is a sum over entry pairs: Q_c(theta) = sum_p w_p theta[E1_p]
theta[E2_p] (a linear law: h_c = sum_e w_e theta[e]). A unit law pairs each entry of unit
i's slices with itself (w = the slice's exponent); a layer law is one component holding
all its units' pairs; entry (i, j) of a matrix law pairs P_v[i, c] with P_v[j, c] (and the
swapped pair, each with w / 2: the symmetric part); a centred matrix law's entry (i, j) is
sum_kl C_ik C_jl of those (C = d I - 1 1^T). With the weights as sparse matrices
Q (components x pairs) and L (components x entries), every law is one product:

    value(theta)    = Q (theta[E1] theta[E2]) + L theta
    first(theta, u) = Q (theta[E1] u[E2] + u[E1] theta[E2]) + L u       (= 2 B(theta, u))
    second(u)       = Q (u[E1] u[E2])
    magnitude(a, b) = |Q| (a[E1] b[E2]) + |L| b        (a, b >= 0: the round-off scale)

and first_magnitude(a, b) = |Q| (a[E1] b[E2] + b[E1] a[E2]) + |L| b. A matrix law with
more than ``PAIR_LIMIT`` pairs (a wide layer of a real network) is evaluated densely by
`Law` itself. Inputs are flat parameter vectors (`flat`), or one per row; ``part(law, components)`` and
``locate(index)`` map the component vector back to laws and units. The pairs come from
`View.rows` applied to the parameters' flat indices, so they follow the views exactly.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import scipy.sparse

from flowlaws.models.symmetry import LawKind, centring, flatten, unflatten

PAIR_LIMIT = 1_000_000


class Stacked:
    """The components of ``laws`` (a model with parameter ``shapes``) as one vector:
    unit laws give a component per unit, layer and summed laws one, matrix laws units^2
    (row-major)."""

    def __init__(self, laws, shapes):
        self.laws, self.shapes = tuple(laws), tuple(tuple(s) for s in shapes)
        sizes = [int(np.prod(s)) for s in self.shapes]
        self.D = int(sum(sizes))
        starts = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
        index = tuple(np.arange(starts[k], starts[k + 1]).reshape(s) for k, s in enumerate(self.shapes))
        pairs: list = []  # (component rows, E1, E2, weights) of the quadratic pairs
        linear: list = []  # (component rows, entries, weights)
        sparse, self.dense = [], []  # the dense ones come last, evaluated by `Law` itself
        for law in self.laws:
            (self.dense if _dense(law) else sparse).append(law)
        self.slices, count = [], 0
        for law in sparse:
            for term in law.terms:
                rows = np.asarray(term.view.rows(index))  # (units, m): flat entries of unit i's slice
                _add(law, rows, float(term.weight), count, pairs, linear)
            count = self._slice(law, count)
        self.sparse_size = count
        for law in self.dense:
            count = self._slice(law, count)
        self.size = count
        rows, self.E1, self.E2, weights = _joined(pairs, 4)
        self.Q = scipy.sparse.csr_matrix((weights, (rows, np.arange(len(rows)))), shape=(self.sparse_size, len(rows)))
        rows, entries, weights = _joined(linear, 3)
        self.L = scipy.sparse.csr_matrix((weights, (rows, entries)), shape=(self.sparse_size, self.D))
        self.absQ, self.absL = abs(self.Q), abs(self.L)
        self.order = np.concatenate([np.full(s.stop - s.start, law.order) for law, s in self.slices] or [np.zeros(0)])
        self._starts = np.array([s.start for _, s in self.slices])
        self._by_law = dict(self.slices)

    def _slice(self, law, start: int) -> int:
        """Give ``law`` its components from ``start``; the next free one."""
        units = law.terms[0].view.units
        width = {LawKind.UNIT: units, LawKind.LAYER: 1, LawKind.MATRIX: units * units, LawKind.SUMMED: 1}[law.kind]
        self.slices.append((law, slice(start, start + width)))
        return start + width

    @staticmethod
    def flat(params) -> np.ndarray:
        """A params tuple as one flat vector (a flat vector passes through)."""
        return params if isinstance(params, np.ndarray) and params.ndim == 1 else flatten(params)

    def _with_dense(self, sparse, method, *vectors):
        """The sparse components, then the dense matrix laws' ``method`` on the same vectors."""
        if not self.dense:
            return sparse
        if sparse.ndim == 2:  # one row per point
            return np.stack([self._with_dense(row, method, *(v[k] for v in vectors)) for k, row in enumerate(sparse)])
        tuples = [unflatten(v, self.shapes) for v in vectors]
        return np.concatenate([sparse, *(np.ravel(getattr(law, method)(*tuples)) for law in self.dense)])

    def _sum(self, pairs, linear, absolute: bool = False):
        """(|Q|) pairs + (|L|) linear; a 2-D input is one point per row. A model's laws are
        often all quadratic or all linear: an empty part costs no product."""
        Q, L = (self.absQ, self.absL) if absolute else (self.Q, self.L)
        if not L.nnz:
            return (Q @ pairs.T).T
        if not Q.nnz:
            return (L @ linear.T).T
        return (Q @ pairs.T + L @ linear.T).T

    def value(self, theta):
        """Q(theta) (h(theta) for linear rows), every component."""
        E1, E2 = self.E1, self.E2
        return self._with_dense(self._sum(theta[..., E1] * theta[..., E2], theta), "value", theta)

    def first(self, theta, u):
        """Dh(theta)[u] = 2 B(theta, u) (h(u) for linear rows)."""
        E1, E2 = self.E1, self.E2
        cross = theta[..., E1] * u[..., E2] + u[..., E1] * theta[..., E2]
        return self._with_dense(self._sum(cross, u), "first", theta, u)

    def second(self, u):
        """Q(u) (0 for linear rows)."""
        E1, E2 = self.E1, self.E2
        return self._with_dense(self._sum(u[..., E1] * u[..., E2], np.zeros_like(u)), "second", u)

    def magnitude(self, a, b):
        """For non-negative a, b: the round-off scale of B(a, b) (of h(b) for linear rows)."""
        E1, E2 = self.E1, self.E2
        return self._with_dense(self._sum(a[..., E1] * b[..., E2], b, absolute=True), "magnitude", a, b)

    def first_magnitude(self, a, b):
        """For non-negative a, b: the round-off scale of first(a, b)."""
        E1, E2 = self.E1, self.E2
        cross = a[..., E1] * b[..., E2] + b[..., E1] * a[..., E2]
        return self._with_dense(self._sum(cross, b, absolute=True), "first_magnitude", a, b)

    def jacobian(self, theta, magnitude: bool = False):
        """The components' gradients at ``theta`` as rows (C x D): for a pair sum,
        d/d theta_j = sum_p w_p (theta[E2_p] [j = E1_p] + theta[E1_p] [j = E2_p]);
        ``magnitude``: the same sums with |w_p| at theta >= 0 (their round-off scale)."""
        pairs = np.arange(len(self.E1))
        shape = (len(pairs), self.D)
        spread = (scipy.sparse.csr_matrix((theta[self.E2], (pairs, self.E1)), shape)
                  + scipy.sparse.csr_matrix((theta[self.E1], (pairs, self.E2)), shape))
        Q, L = (self.absQ, self.absL) if magnitude else (self.Q, self.L)
        sparse = (Q @ spread + L).toarray()
        if not self.dense:
            return sparse
        first = self.first_magnitude if magnitude else self.first
        columns = [first(theta, e)[self.sparse_size:] for e in np.eye(self.D)]  # Dh[e_j] = dh/d theta_j
        return np.vstack([sparse, np.stack(columns, axis=1)])

    def rows(self, law) -> slice:
        """``law``'s components (rows of `jacobian`)."""
        return self._by_law[law]

    def part(self, law, components):
        """One law's share of a component vector: a unit vector, a layer scalar, a matrix."""
        block = components[self._by_law[law]]
        if law.kind in (LawKind.LAYER, LawKind.SUMMED):
            return float(block[0])
        if law.kind is LawKind.MATRIX:
            units = law.terms[0].view.units
            return block.reshape(units, units)
        return block

    def locate(self, index: int):
        """(law, unit) of component ``index``: (i,) for a unit law, () for a layer law,
        (i, j) for a matrix law."""
        law, s = self.slices[int(np.searchsorted(self._starts, index, side="right")) - 1]
        offset = index - s.start
        if law.kind in (LawKind.LAYER, LawKind.SUMMED):
            return law, ()
        if law.kind is LawKind.MATRIX:
            return law, tuple(int(i) for i in divmod(offset, law.terms[0].view.units))
        return law, (int(offset),)


def _joined(parts, n):
    """The parts' columns, each concatenated (n empty arrays when there are no parts)."""
    return [np.concatenate(column) for column in zip(*parts, strict=True)] if parts else [np.zeros(0, int)] * n


def _dense(law) -> bool:
    """A matrix or summed law with more than PAIR_LIMIT entry pairs (a wide layer of a real
    network)."""
    if law.kind not in (LawKind.MATRIX, LawKind.SUMMED):
        return False
    units = law.terms[0].view.units
    spread = units * units if law.centred else 1  # (a centred entry holds every entry's pairs)
    return spread * sum(units * units * (t.view.size // units) for t in law.terms) > PAIR_LIMIT


def _add(law, rows, weight, first, pairs, linear):
    """Append the pairs (or linear entries) of one term with flat-index matrix ``rows``,
    its components starting at row ``first``."""
    units, width = rows.shape
    if law.kind in (LawKind.UNIT, LawKind.LAYER):  # a unit law's component i, or the layer law's one component
        component = first + np.repeat(np.arange(units) if law.kind is LawKind.UNIT else np.zeros(units, int), width)
        if law.order == 1:
            linear.append((component, rows.ravel(), np.full(rows.size, weight)))
        else:
            pairs.append((component, rows.ravel(), rows.ravel(), np.full(rows.size, weight)))
        return
    i, j, c = (a.ravel() for a in np.meshgrid(np.arange(units), np.arange(units), np.arange(width), indexing="ij"))
    if law.kind is LawKind.SUMMED:  # its one component: P[i, c] P[j, c] for every i, j and column c
        pairs.append((np.full(i.size, first), rows[i, c], rows[j, c], np.full(i.size, weight)))
        return
    size = units // law.blocks  # entry (i, j) of one diagonal block: P[i, c] P[j, c] and the swapped pair,
    i, j, c = (a[i // size == j // size] for a in (i, j, c))  # weight / 2 each
    half = np.full(i.size, weight / 2)
    if law.centred:  # entry (a, b) of C G C: C[a, i] C[b, j] times entry (i, j)'s pairs
        C = centring(units)
        a, b = (x.ravel() for x in np.meshgrid(np.arange(units), np.arange(units), indexing="ij"))
        spread = C[a[:, None], i[None, :]] * C[b[:, None], j[None, :]]  # (entries, pairs)
        target, pair = np.nonzero(spread)
        i, j, c, half = i[pair], j[pair], c[pair], half[pair] * spread[target, pair]
        component = first + a[target] * units + b[target]
    else:
        component = first + i * units + j
    pairs.append((component, rows[i, c], rows[j, c], half))
    pairs.append((component, rows[j, c], rows[i, c], half))


@lru_cache(maxsize=256)
def stacked(laws: tuple, shapes: tuple) -> Stacked:
    """The `Stacked` form of ``laws``, built once per (laws, shapes) and reused across cases."""
    return Stacked(laws, shapes)
