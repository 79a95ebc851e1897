"""Certified counts: discovery's ranks recomputed exactly, over a prime field.

Where a network is a polynomial in theta once its activation pattern is frozen (dense,
convolution, pools, residual and gated forks, linear and ReLU-family activations), the
fields g_k(theta) = grad <C_k, f(X; theta)> and every bracket of them have exact rational
values at a rational point. Discovery's numerical search picks which brackets to take;
here they are evaluated again at theta_r (its point rounded to the grid 2^-20, a dyadic
rational with the same pattern) in `flowlaws.residues`' arithmetic mod p, by the models' own
sweeps, and a directional derivative of a field of degree d is the exact derivative at 0
of its interpolating polynomial through t = 0..d (`lagrange_slopes`). Then:

- upper = D - rank_p(fields and brackets at theta_r): the rank over F_p never exceeds the
  rank over Q, which never exceeds the dimension of the Lie algebra's trace at a generic
  point, so it bounds the number of laws from above (Marcotte, Gribonval, Peyre 2023);
- lower = rank_p(gradients of the derived laws at theta_r), each checked exactly
  orthogonal to every field there: the derived laws are conserved (their derivation), and
  their gradients' rank over Q is at least rank_p. Quadratic laws have gradients linear
  in theta with dyadic weights, so float64 computes them exactly at a grid point (checked:
  every entry is a multiple of the grid's square, far below 2^53).

A network that is no polynomial once frozen (normalization, softmax) gets a `verified`
certificate at depth 0 instead: ranks bounded below with the round-off model's error on
the fields (Weyl's inequality), the brackets left numerical.

When upper == lower the count is proven. A point can only under-rank (a minor of the
rows vanishing mod p at it), which leaves the bounds apart, never a wrong count; by
Schwartz-Zippel that chance is at most (the sum of the rows' degrees) / p for a point
uniform over F_p, the ``failure`` figure of the certificate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache

import numpy as np

from flowlaws.errors import Unrepresentable
from flowlaws.invariants.regions import class_rows, fewest, jacobian, labels, scalar_fed, twin, twins_stacked
from flowlaws.invariants.stacked import stacked
from flowlaws.models.symmetry import flatten, unflatten
from flowlaws.residues import P, rank_mod_p, residues

GRID = 2.0**-20  # theta_r = theta0 rounded to this grid
EXACT_WORK = 5_000_000  # the most parameter-sweeps (sweeps times D) one field's exact value may cost:
# 10,000 sweeps at 500 parameters, 100,000 at 50 (a depth-4 bracket of a small linear net)
MARGIN = 1e-8  # every kink's pre-activation at theta_r above this times its layer's largest


@dataclass(frozen=True)
class Certificate:
    """How a discovered count is known (module docstring): ``method`` "exact" (ranks over
    F_p at a rational point) or "numerical" (singular-value gaps, with ``gap``)."""

    method: str
    upper: int | None = None
    lower: int | None = None
    ranks: tuple = ()
    prime: int | None = None
    point: str = ""
    failure: float | None = None
    gap: float | None = None
    note: str = ""
    laws: list = field(default_factory=list)  # derived laws not orthogonal to the fields at theta_r
    closed: bool = False  # the closure probes stay in the span mod p: the count is the upper bound
    regions: int = 0  # splits into sign classes the lower bound ranked (`flowlaws.invariants.regions`)
    derived: int | None = None  # rank_p of the derived laws alone (``lower`` adds the regions' class laws)
    error: float | None = None  # "verified": the bound on the computed fields' error, ||F^ - F||_2

    @property
    def decides(self) -> bool:
        return (self.method in ("exact", "verified") and self.upper is not None and not self.laws
                and (self.upper == self.lower or self.closed))

    def to_json(self) -> dict:
        return {"method": self.method, "upper": self.upper, "lower": self.lower, "ranks": list(self.ranks),
                "prime": self.prime, "point": self.point, "failure_probability": self.failure,
                "gap": self.gap if self.gap is None or math.isfinite(self.gap) else None, "note": self.note,
                "laws_not_orthogonal": self.laws, "closed": self.closed, "regions": self.regions,
                "error": self.error}

    def lines(self) -> list[str]:
        """The certificate in words (`flowlaws discover --explain`)."""
        if self.method == "verified":
            verdict = (f"proven: {self.upper} laws" if self.decides
                       else f"bounds {self.lower}..{self.upper} (not met at depth 0)")
            return [f"certificate: verified ranks at depth 0 at {self.point}: {verdict}",
                    f"  upper {self.upper} = D - the singular values of the fields above {self.error:.3g}, a bound "
                    "on their computed error (the round-off model's gamma(n) ||M||_F, M their magnitude sweeps): "
                    "by Weyl's inequality the exact fields' rank is at least that many",
                    f"  lower {self.lower} = the same for the proven laws' gradients, with their own error bound"
                    + (f", the fewest over {self.regions} splits into sign classes" if self.regions else ""),
                    f"  brackets beyond depth 0 are numerical (smallest singular-value gap {self.gap:.3g})"]
        if self.method != "exact":
            gap = "" if self.gap is None else f", smallest singular-value gap {self.gap:.3g}"
            return [f"certificate: numerical{gap}" + (f" ({self.note})" if self.note else "")]
        verdict = (f"proven: {self.upper} laws" if self.decides and self.upper == self.lower
                   else f"{self.upper} laws, the algebra closed exactly" if self.decides
                   else f"bounds {self.lower}..{self.upper} (not met at this point)")
        closure = ["  closed: the random brackets [g*, w*] that probed the closure stay in the span mod p (an "
                   "algebra that had not closed would be left by a random pair)"] if self.closed else []
        lower = (f"  lower {self.lower} = the fewest laws of any activation region: rank_p of the derived laws' "
                 f"gradients and of the sign classes' laws of units fed by one value, over all {self.regions} "
                 "splits into classes (those of theta_r's own split, and every derived law, exactly orthogonal "
                 "to every field)" if self.regions else f"  lower {self.lower} = rank_p of the derived laws' "
                 "gradients, each exactly orthogonal to every field")
        return [f"certificate: exact ranks over F_{self.prime} at {self.point}: {verdict}",
                f"  upper {self.upper} = D - rank_p of the fields and brackets, ranks by depth {list(self.ranks)}",
                lower,
                *closure,
                f"  chance that this point under-ranks (bounds apart, never a wrong count) <= {self.failure:.1e}"]



def svd(M, compute_uv: bool = True, full_matrices: bool = False):
    """numpy's SVD (LAPACK's gesdd), or LAPACK's gesvd where gesdd does not converge, as it
    fails on some benign matrices (an 80 x 72 basis of unit rows from a LayerNorm net's
    brackets, entries within 1e-6..1): the ranks discovery and the certificate read."""
    try:
        return np.linalg.svd(M, full_matrices=full_matrices) if compute_uv else np.linalg.svd(M, compute_uv=False)
    except np.linalg.LinAlgError:
        import scipy.linalg

        return scipy.linalg.svd(M, compute_uv=compute_uv, full_matrices=full_matrices, lapack_driver="gesvd")

def numerical(gap: float, note: str = "") -> Certificate:
    return Certificate("numerical", gap=gap, note=note)


def verified(problem, laws, gap: float) -> Certificate:
    """Bounds for a network that is no polynomial once frozen (normalization, softmax), at
    depth 0 and at theta0 itself, from the round-off model (docs/numerics.md): each computed
    field errs by at most gamma(n) M_k entrywise (M_k its magnitude sweep), so the fields'
    error has ||E||_2 <= ||E||_F <= gamma(n) ||M||_F = e, and by Weyl's inequality the exact
    fields have at least as many singular values as the computed ones above e: upper = D -
    that many. lower: the same for the proven laws' gradients (each entry a short sum of
    products, erring by gamma(D) times its magnitude), and the fewest over the regions'
    splits into sign classes. The brackets' ranks stay numerical (``gap``)."""
    from flowlaws.checking import accumulation_length, gamma

    theta, shapes = problem.theta, tuple(map(tuple, problem.shapes))
    error = gamma(accumulation_length(problem.model, problem.X)) * float(
        np.linalg.norm(problem.values(theta, magnitude=True)))
    components = stacked(tuple(laws), shapes)
    rows, scales = components.jacobian(theta), components.jacobian(np.abs(theta), magnitude=True)
    fed = scalar_fed(laws)
    classes, starts = twins_stacked(fed, shapes) if fed else (None, [])
    if classes:
        scales = np.vstack([scales, classes.jacobian(np.abs(theta), magnitude=True)])
    law_error = gamma(problem.D) * float(np.linalg.norm(scales))

    def above(matrix, bound):
        return int(np.sum(svd(matrix, compute_uv=False) > bound)) if matrix.size else 0

    matrix = jacobian(classes, fed, theta, shapes) if classes else rows[:0]
    lower, regions, _ = fewest(lambda m: above(m, law_error), rows, matrix, starts, fed)
    rank = above(problem.fields.real, error)
    return Certificate("verified", problem.D - rank, lower, (rank,), point=f"theta0 ({problem.D} coordinates)",
                       gap=gap, regions=regions, derived=above(rows, law_error), error=error)


def certify(problem, depths, laws, shapes, probes=(), rank=None) -> Certificate:
    """Recompute ``depths`` (lists of discovery `Field`s: the generators, then each
    bracket depth) and the gradients of ``laws`` exactly at theta_r (module docstring);
    `Unrepresentable` says why when they have no exact value there. ``probes``: the
    brackets with which the numerical search saw the algebra close at ``rank``; closed
    when the exact rank is that rank and they stay in the span mod p too."""
    theta = np.round(problem.theta / GRID) * GRID
    if not _same_pattern(problem, theta):
        raise Unrepresentable("the rounded point left the activation region")
    exact = _Exact(problem, theta)
    ranks, rows, degrees = [], [], []
    for fields in depths:
        usable = [f for f in fields if _affordable(f, problem.D)]
        rows += [exact.value(f, exact.theta) for f in usable]
        degrees += [f.degree for f in usable]
        ranks.append(rank_mod_p(np.stack(rows)) if rows else 0)
    closed = bool(probes) and ranks[-1] == rank and all(_affordable(f, problem.D) for f in probes)
    if closed:
        closed = rank_mod_p(np.stack(rows + [exact.value(f, exact.theta) for f in probes])) == ranks[-1]
        degrees += [f.degree for f in probes]
    shapes = tuple(map(tuple, shapes))
    components = stacked(tuple(laws), shapes)
    gradients = _exact(components.jacobian(theta))
    generators = residues(np.stack(rows[: len(depths[0])])).T
    products = residues(gradients) @ generators
    crossing = [law.name for law in laws if np.any(products[components.rows(law)])]
    lower, regions, classes_crossing = _fewest_in_a_region(laws, shapes, theta, gradients, generators)
    crossing += classes_crossing
    point = f"theta0 rounded to the grid 2^{int(math.log2(GRID))} ({problem.D} coordinates)"
    return Certificate("exact", problem.D - ranks[-1], lower, tuple(ranks), P, point,
                       min(1.0, sum(sorted(degrees, reverse=True)[: ranks[-1] + len(probes)]) / P), laws=crossing,
                       closed=closed, regions=regions, derived=_rank_p(gradients))


def _rank_p(rows) -> int:
    return rank_mod_p(residues(rows)) if len(rows) else 0


def _fewest_in_a_region(laws, shapes, theta, gradients, generators) -> tuple[int, int, list]:
    """(lower, the splits it ranked, the class laws not orthogonal to the ``generators``):
    the fewest laws of any activation region by the derived laws (their ``gradients``)
    and the sign classes of units fed by one value (`flowlaws.invariants.regions`), with
    those of theta_r's own region checked exactly orthogonal; without such units the
    derived laws' rank."""
    fed = scalar_fed(laws)
    if not fed:
        return _rank_p(gradients), 0, []
    classes, starts = twins_stacked(fed, shapes)
    matrix = _exact(jacobian(classes, fed, theta, shapes))
    params = unflatten(theta, shapes)
    crossing = [twin(law).name for law, start in zip(fed, starts, strict=True)
                if np.any(residues(class_rows(matrix, [start], [labels(law, params)])) @ generators)]
    return (*fewest(_rank_p, gradients, matrix, starts, fed)[:2], crossing)


class _Exact:
    """A discovery problem's fields evaluated exactly mod p (its data, weightings and
    frozen pattern converted once)."""

    def __init__(self, problem, theta):
        self.problem, self.theta = problem, residues(theta)
        self.batches = [(residues(problem.X[b]), _converted(pattern), b)
                        for b, pattern in zip(problem.batches, problem.pattern, strict=True)]

    def gradient(self, theta, weights) -> np.ndarray:
        """grad <weights, f(X; theta)> mod p (a sweep per batch the weights read)."""
        model, params = self.problem.model, unflatten(theta, self.problem.shapes)
        total: np.ndarray = residues(np.zeros(self.problem.D, dtype=np.int64))
        for b in self.problem.reading(weights):
            X, pattern, batch = self.batches[b]
            self.problem.work.spend(1)
            _, cache = model.forward(params, X, pattern)
            total = total + residues(flatten(model.backward(params, cache, residues(weights[batch]))))
        return total

    def value(self, f, theta) -> np.ndarray:
        """The field ``f`` (a generator's weighting, a bracket [u, v], or a combination) at
        ``theta``."""
        if f.terms is not None:
            return sum((residues(c, constants=False) * self.value(g, theta) for c, g in f.terms),
                       residues(np.zeros(len(theta), dtype=np.int64)))
        if f.parts is None:
            return self.gradient(theta, f.weights)
        u, v = f.parts
        return self.directional(v, theta, self.value(u, theta)) - self.directional(u, theta, self.value(v, theta))

    def directional(self, f, theta, w) -> np.ndarray:
        """Df(theta)[w] = q'(0) for q(t) = f(theta + t w), a polynomial of degree f.degree."""
        slopes = lagrange_slopes(f.degree)
        return sum((int(c) * self.value(f, theta + t * w) for t, c in enumerate(slopes)),
                   residues(np.zeros(len(theta), dtype=np.int64)))


@lru_cache(maxsize=16)
def lagrange_slopes(degree: int) -> tuple[int, ...]:
    """c_t (mod p) with q'(0) = sum_t c_t q(t), t = 0..degree, for every q of that degree:
    the derivatives at 0 of the Lagrange basis polynomials.

    >>> q = lambda t: 7 * t**2 + 5 * t + 1  # q'(0) = 5
    >>> sum(c * q(t) for t, c in enumerate(lagrange_slopes(2))) % P
    5
    """
    nodes = range(degree + 1)
    slopes = []
    for t in nodes:
        others = [s for s in nodes if s != t]
        total = Fraction(0)
        for s in others:  # d/dx prod_{r != t} (x - r)/(t - r) at 0, one factor differentiated at a time
            term = Fraction(1, t - s)
            for r in others:
                if r != s:
                    term *= Fraction(-r, t - r)
            total += term
        slopes.append(total.numerator % P * pow(total.denominator, -1, P) % P)
    return tuple(slopes)


def sweeps(f) -> int:
    """The model sweeps an exact value of ``f`` costs: one for a generator; a bracket
    [u, v] evaluates u and v at theta, then v at deg v + 1 points and u at deg u + 1 points;
    a combination each of its terms."""
    if f.terms is not None:
        return sum(sweeps(g) for _, g in f.terms)
    if f.parts is None:
        return 1
    u, v = f.parts
    return (u.degree + 2) * sweeps(u) + (v.degree + 2) * sweeps(v)


def _affordable(f, D: int) -> bool:
    """Rebuildable, in at most EXACT_WORK / D sweeps (a deeper field is left to the numerical
    rank: a bracket of a combination of depth-3 brackets costs 90,000)."""
    return _rebuildable(f) and sweeps(f) * D <= EXACT_WORK


def _rebuildable(f) -> bool:
    """A generator, or a bracket or a combination of rebuildable fields."""
    inner = f.parts if f.parts is not None else [g for _, g in f.terms] if f.terms is not None else None
    return f.weights is not None or (inner is not None and all(map(_rebuildable, inner)))


def _converted(pattern):
    """A frozen pattern (nested tuples of slope and window-weight arrays) as residues."""
    if pattern is None:
        return None
    if isinstance(pattern, tuple | list):
        return type(pattern)(_converted(p) for p in pattern)
    return residues(pattern, constants=True)


def _same_pattern(problem, theta) -> bool:
    """theta has the problem's activation pattern, every kink input clear of 0 (or exactly 0)."""
    for pattern, (here, kinks) in zip(problem.pattern, problem.regions(theta), strict=True):
        if not _equal(here, pattern):
            return False
        for z in kinks:
            size = np.abs(z)
            if np.any((size > 0) & (size <= MARGIN * size.max())):  # an exact 0 reads an input that is 0
                return False  # near theta (every unit before it off), where the slope does not matter
    return True


def _equal(a, b) -> bool:
    if a is None or b is None:
        return a is b
    if isinstance(a, tuple | list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(np.array_equal(a, b))


def _exact(rows: np.ndarray) -> np.ndarray:
    """The derived laws' gradient rows at the grid point, checked exact: linear in theta with
    dyadic weights, every entry is a multiple of GRID^2 far below 2^53 (else float64 may
    have rounded it: `Unrepresentable`)."""
    scaled = rows / GRID**2
    if not (np.all(scaled == np.round(scaled)) and np.all(np.abs(scaled) < 2.0**52)):
        raise Unrepresentable("a derived law's gradient is not exact in float64 at the grid point")
    return rows
