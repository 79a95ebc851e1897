"""Laws of one activation region: units fed by one value share their pattern by sign
(docs/theory.md 7, the scalar-fed family).

Units that each read one shared value s with no bias, z_i = w_i s (`Layer.shared_input`:
a dense layer on one input feature, a one-tap convolution of one channel, one head of
value width 1), and pass one degree-1 kink phi before their readers absorb them, have
phi(w_i s) = |w_i| phi(sign(w_i) s). The units whose w_i share a sign (every unit, for an
even phi such as abs) form a class: their values are one signal times |w_P|. Mixing a
class, w_P -> A w_P with its readers' columns by A^-1, leaves f unchanged for every A
near the identity (the signs stay), so in that region the class's block of the unit law's
matrix form, G[i, j] = sum_v alpha_v <P_v[i], P_v[j]> for i, j in the class, is conserved
(`Rescaling.classes`). For an even kink the class's values are |w_P| times one signal, so
its law is G with |w| for w: s_i s_j w_i w_j for the incoming entries (`jacobian`).

The classes depend on theta's signs: these are laws of a region, not of the model.
Discovery's count is the fewest laws of any region (the minimum over points of D - rank),
so its lower bound is the fewest that the derived laws and the class blocks give over
every split of the units into classes (`fewest`): a split's rank at any one point is at
most its rank at a generic point of a region with that split.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable

import numpy as np

from flowlaws.invariants.laws import Law
from flowlaws.models.symmetry import LawKind, unflatten

MAX_SPLITS = 4096  # splits of the units into classes a lower bound ranks (2^(units - 1) per law of two classes)


def scalar_fed(laws) -> tuple[Law, ...]:
    """The unit laws whose units form sign classes in each region."""
    return tuple(law for law in laws if law.classes and law.kind is LawKind.UNIT)


def twin(law: Law) -> Law:
    """``law``'s matrix form over all its units: its entries (i, j) with i, j in one class
    are the class laws."""
    return dataclasses.replace(law, name=f"class {law.name}", kind=LawKind.MATRIX, classes=0,
                               formula=f"[i,j] in one sign class of {law.formula}")


def twins_stacked(fed, shapes) -> tuple:
    """(the twins of ``fed`` as one `Stacked`, where each twin's entries start in it)."""
    from flowlaws.invariants.stacked import stacked

    twins = tuple(map(twin, fed))
    classes = stacked(twins, tuple(map(tuple, shapes)))
    return classes, [classes.rows(t).start for t in twins]


def jacobian(classes, fed, theta, shapes) -> np.ndarray:
    """The gradients of every entry of the twins of ``fed`` (their `Stacked` ``classes``)
    at ``theta``, each law's incoming weights w taken as |w| for an even kink: with S the
    signs of those entries (1 elsewhere), grad h(theta) = S grad G(S theta)."""
    signs = np.ones(len(theta))
    for law in fed:
        if law.classes == 1:
            entries = incoming(law, shapes, len(theta))
            signs[entries] = np.where(theta[entries] < 0, -1.0, 1.0)
    return classes.jacobian(theta * signs) * signs


def incoming(law: Law, shapes, size: int) -> np.ndarray:
    """Where each unit's one incoming weight w_i lies in the flat parameter vector."""
    return np.asarray(law.terms[0].view.rows(unflatten(np.arange(size), shapes)))[:, 0]


def labels(law: Law, params) -> np.ndarray:
    """Each unit's class at ``params``: the sign of its one incoming weight (every unit in
    class 1 for an even kink; 0 where that weight is 0: no class)."""
    w = np.asarray(law.terms[0].view.rows(params))[:, 0]
    return np.sign(w) if law.classes == 2 else (w != 0).astype(float)


def pairs(labels: np.ndarray) -> np.ndarray:
    """The matrix entries i * units + j (i < j) of two units in one class."""
    i, j = np.triu_indices(len(labels), 1)
    keep = (labels[i] == labels[j]) & (labels[i] != 0)
    return i[keep] * len(labels) + j[keep]


def splits(laws) -> list[tuple[np.ndarray, ...]] | None:
    """Every split of each law's units into its classes (labels per law): one for an even
    kink, else every subset holding unit 0 as one sign class (a subset and its complement
    give the same classes); None when there are more than MAX_SPLITS."""
    options = []
    for law in laws:
        units = law.terms[0].view.units
        if law.classes == 1:
            options.append([np.ones(units)])
            continue
        if units - 1 > math.log2(MAX_SPLITS):
            return None
        options.append([np.array([1.0, *(1.0 if bit else -1.0 for bit in rest)])
                        for rest in itertools.product((True, False), repeat=units - 1)])
    if math.prod(len(o) for o in options) > MAX_SPLITS:
        return None
    return list(itertools.product(*options))


def class_rows(rows: np.ndarray, starts, split) -> np.ndarray:
    """The gradient rows of a split's class laws, from ``rows`` (every twin's matrix
    entries, twin k's from ``starts[k]``) and the split's labels per law."""
    chosen = [start + pairs(classes) for start, classes in zip(starts, split, strict=True)]
    return rows[np.concatenate(chosen)] if chosen else rows[:0]


def fewest(rank: Callable, known: np.ndarray, rows: np.ndarray, starts, laws) -> tuple[int, int, tuple]:
    """(the fewest independent laws any region has by these declarations, the splits
    ranked, a split that has that few): min over `splits` of rank([known; class rows]), or
    (rank(known), 0, ()) when there is no class law or too many splits."""
    options = splits(laws) if laws else None
    if not options:
        return rank(known), 0, ()
    counts = [rank(np.vstack([known, class_rows(rows, starts, split)])) for split in options]
    best = int(np.argmin(counts))
    return counts[best], len(options), options[best]


def realized(laws, split, theta: np.ndarray, shapes) -> np.ndarray:
    """``theta`` moved into a region of ``split`` (labels per law of `splits`): each
    two-class law's incoming weights given the split's signs, |w_i| sign_i (an even kink's
    classes need no sign)."""
    theta = theta.copy()
    for law, classes in zip(laws, split, strict=True):
        if law.classes == 2:
            entries = incoming(law, shapes, len(theta))
            theta[entries] = np.abs(theta[entries]) * classes
    return theta
