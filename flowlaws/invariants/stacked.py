"""Every unit and layer law of a model in one sparse pass (for monitoring every step).

A unit law is Q_i(theta) = sum_e S_ie theta_e^2 over the entries e of unit i's slices,
S_ie the slice's exponent (a linear law: h_i = sum_e S_ie theta_e). Stacking the units
of every law as the rows of one sparse matrix per order turns all laws into a few
sparse products over the flat parameter vector:

    value = S2 (theta^2)  and  S1 theta;      first(theta, u) = 2 S2 (theta u)  and  S1 u;
    second(u) = S2 (u^2);                     magnitude(a, b) = |S2| (|a| |b|)  and  |S1| |b|.

The rows of each law come from its views applied to the parameters' flat indices, so
the stacking follows `View.rows` exactly. Matrix laws stay with `Law` (their entries
mix units).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse


class Stacked:
    """The unit components of ``laws`` (unit or layer kind; a layer law is the sum of its
    units) for a model with parameter ``shapes``; ``block(law)`` is its (order, rows)."""

    def __init__(self, laws, shapes):
        sizes = [int(np.prod(s)) for s in shapes]
        starts = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
        flat_index = tuple(np.arange(starts[k], starts[k + 1]).reshape(shape) for k, shape in enumerate(shapes))
        entries: dict[int, tuple[list, list, list]] = {1: ([], [], []), 2: ([], [], [])}
        count = {1: 0, 2: 0}
        self.blocks: dict = {}
        for law in laws:
            if law.kind == "matrix":
                raise ValueError(f"{law.name}: matrix laws are not stacked")
            key = (law.terms, law.order)
            if key in self.blocks:
                continue
            rows, cols, data = entries[law.order]
            first = count[law.order]
            for term in law.terms:
                index = np.asarray(term.view.rows(flat_index))
                units, width = index.shape
                rows.append(np.repeat(np.arange(first, first + units), width))
                cols.append(index.ravel())
                data.append(np.full(units * width, term.weight))
            count[law.order] += law.terms[0].view.units
            self.blocks[key] = (law.order, slice(first, count[law.order]))
        self.D = int(starts[-1])
        self.S = {order: scipy.sparse.csr_matrix(
            (np.concatenate(data) if data else np.zeros(0),
             (np.concatenate(rows) if rows else np.zeros(0, int), np.concatenate(cols) if cols else np.zeros(0, int))),
            shape=(count[order], self.D)) for order, (rows, cols, data) in entries.items()}
        self.A = {order: abs(S) for order, S in self.S.items()}

    @staticmethod
    def flat(params) -> np.ndarray:
        return np.concatenate([np.ravel(p) for p in params])

    def value(self, theta):
        return {2: self.S[2] @ (theta * theta), 1: self.S[1] @ theta}

    def first(self, theta, u):
        return {2: 2 * (self.S[2] @ (theta * u)), 1: self.S[1] @ u}

    def second(self, u):
        return {2: self.S[2] @ (u * u), 1: np.zeros(self.S[1].shape[0])}

    def magnitude(self, a, b):
        """For non-negative a, b: the round-off scale of B(a, b) (of h(b) for linear rows)."""
        return {2: self.A[2] @ (a * b), 1: self.A[1] @ b}

    def block(self, law, values):
        """The law's unit vector (or the layer law's sum) out of stacked ``values``."""
        order, rows = self.blocks[(law.terms, law.order)]
        part = values[order][rows]
        return part if law.kind == "unit" else np.sum(part)
