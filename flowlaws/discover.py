"""Find every conservation law numerically: the independent oracle for the derived laws.

After Marcotte, Gribonval, Peyré (NeurIPS 2023); docs/theory.md, sections 4 and 7.
A conservation law of gradient flow is a function h with h(theta(t)) constant for every
dataset and loss: grad h(theta) is orthogonal to W(theta) = span{grad_theta f_j(x; theta)}
and to the Lie brackets of those fields, so at a generic theta0 there are exactly
D - dim Lie(W)(theta0) independent laws (an UPPER bound when computed with finitely
many fields). A LOWER bound comes from laws proven conserved: derived laws that pass
the orthogonality test at several points, and every polynomial law of degree <= 2,
found by solving <grad P(theta), g(theta)> = 0 for P's coefficients. Both meet: exact.

How it is computed, with no symbolic algebra:
- the activation pattern (ReLU-family slopes, max-pool winners) is frozen per input at
  theta0, redrawn until every unit takes both slopes on the data; frozen, f is a
  polynomial in theta of degree L (the number of weight layers);
- the fields are gradients of random combinations sum_{n,j} C_nj f_j(x_n) (for a loss
  family such as softmax cross-entropy, C's rows sum to zero: the span of its
  gradients), one forward and one reverse sweep each, by the engine itself;
- a directional derivative Dv(theta)[w] of a polynomial field v of degree p is exact
  from p + 1 evaluations on a complex circle: (1/(n r)) sum_k v(theta + r w^k w) w^-k
  (w = e^(2 pi i / n)); so is a Lie bracket [u, v] = Dv[u] - Du[v], at any depth;
- every rank decision reports its singular-value gap; a gap under GAP makes the answer
  "undecided", never a silent guess.

How a count is decided (``Discovery.decided_by``): "exact" when ranks over a prime field at a
rational point meet (`flowlaws.certificate`): a piecewise-linear network is first ranked so
at depth 0, before any numerical rank (`_certified_first`: generators that each read one
batch of the data, so D fields cost about D small sweeps, and an elimination mod p that is
BLAS products: a 5,000-parameter ReLU MLP in about 10 s); "bounds" when D - rank meets the rank
of the laws proven conserved; "closure" when the Lie algebra closes at theta0: random
brackets [g, w] of a random field g of W and a random combination w of the algebra's
basis stay in its span (the bracket is bilinear, so if [W, Lie_k] left Lie_k(theta0) a
random pair would leave it with probability 1), and then dim Lie(W)(theta0) = rank at a
generic point, so D - rank is the count (Marcotte, Gribonval, Peyre 2023, Thm 3.3 and
Prop. 4.2). Closure decides only networks that are one polynomial everywhere (linear
activations, no max pool, no normalization or softmax): there a random theta0 is generic
with probability 1 and every bracket is exact. A piecewise-linear network (ReLU) is a
different polynomial in each activation region, and the rank differs between regions
(mlp:2-5-8-6-2:relu: 85 to 91 over draws that all switch every unit): the generic count
is the minimum over regions of D - rank, so a closure at one draw is only an upper bound
there; theta0 is the draw, of GENERIC_DRAWS, whose fields span the most, and the count
is decided when D - rank meets the proven laws.

Work is counted, never timed: ``budget`` bounds the field evaluations (one forward and one
reverse sweep each, per batch of a BatchNorm net; a draw tested for a generic point counts
as one too), so an answer is a function of the model, the loss family and the seed,
whatever the machine's load. ``timeout`` (seconds,
off by default) may stop a search early; the answer then says so and is undecided, never
a different count.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from flowlaws.certificate import GRID, Certificate, certify, numerical, svd, verified
from flowlaws.errors import InvalidArgument, Unrepresentable
from flowlaws.models import Activation, parameter_count
from flowlaws.models.layer import REALMIN
from flowlaws.models.symmetry import flatten, unflatten

GAP = 1e6  # a rank decision with a smaller singular-value gap is undecided
RANK_TOL = 1e-9  # singular values below RANK_TOL * the largest count as zero
SAMPLES = 4  # inputs per parameter (per output): enough activation regions to span W
BIAS_SCALE = 0.1
BUDGET = 200_000  # field evaluations after which discovery stops refining an undecided count
CHECK_BUDGET = 8_000  # the same inside the laws-complete theorem (an undecided case is invalid)
CLOSURE_PROBES = 2  # random brackets that test whether the Lie algebra has closed
RICHER = 400  # attempts, each with new draws (and up to 9x the data), while the bounds do not meet and
# the work budget lasts: a ReLU net's regions differ in rank, and the widest may be rare
# (mlp:2-5-8-6-2:relu: 2 draws in 1,500 span 91 fields, the generic rank)
FULL_BUDGET = 4000  # D * generators up to which a gap left by the fast brackets is re-checked
# with every generator (the cost grows as D^2 per depth)
GENERIC_DRAWS = 12  # theta0 is the draw (of these) where the fields span the most: a draw
# whose units are always on within some region of the data spans less and would add laws
MAX_DEPTH = 3
FAST_PARTNERS = 3  # generators each new field is bracketed with first (Marcotte et al.'s "fast")
EXPLICIT_MAX_PARAMS = 40  # degree-2 explicit laws solve a (D^2/2)-unknown system
EXPLICIT_CHECK_PARAMS = 30  # the same inside the laws-complete theorem


ANALYTIC_POINTS = 12  # circle points for a field that is analytic but not a polynomial
ANALYTIC_RADIUS = 1e-1  # the first circle's radius, relative to |theta| + 1 (it shrinks)
ANALYTIC_CIRCLES = 8  # circles tried, each a tenth of the last, before a derivative is unknown
BATCH = 4  # samples per batch when a layer couples samples (BatchNorm): "an input is a batch"
EXACT_SAMPLES = 3 * SAMPLES  # its inputs per parameter (per output): more regions, at the cost of sweeps
SWEEP = 2**15  # samples x parameters in a batch that one generator reads (`Problem` with one_batch)
DEAD = 1e-8  # a gradient entry below this times the largest, at every random point, is dead
MEMORY = 8 * 2**30  # bytes discovery may plan for (a fixed figure: the answer never depends on the machine)


@dataclass(frozen=True)
class Field:
    """A vector field theta -> R^D that accepts complex theta; a polynomial of ``degree``,
    or analytic (degree None: normalization, softmax). A generator keeps its output
    ``weights``, a bracket its ``parts`` (u, v) and a combination its ``terms``, so
    `flowlaws.certificate` can rebuild it exactly. A field with a
    ``differentiate`` (torch's forward mode: `flowlaws.torch.discovery`) takes its
    directional derivatives from it, ``differentiate(at)(theta, w)``, instead of a circle;
    an analytic field keeps the ``circle`` its last derivative converged on (its next one
    starts one larger: `_analytic_directional`)."""

    at: Callable
    degree: int | None
    name: str
    weights: Any = None  # an array of the samples x outputs, or a OneBatch
    parts: tuple | None = None
    differentiate: Callable | None = None
    terms: tuple | None = None  # a linear combination: ((coefficient, field), ...)
    circle: list = field(default_factory=lambda: [0], compare=False, repr=False)  # [k]: 10^-k times the first


@dataclass(frozen=True)
class OneBatch:
    """An output weighting that reads one batch of the samples: ``block`` on the samples
    ``batch`` (batch number ``index``), 0 on the other ``n`` - len(batch) (a `Problem`
    generator with one_batch, kept without its zeros)."""

    index: int
    batch: np.ndarray
    block: np.ndarray
    n: int

    def __getitem__(self, samples) -> np.ndarray:
        """The weights of ``samples`` (a batch of the problem)."""
        if samples is self.batch or np.array_equal(samples, self.batch):
            return self.block
        return np.zeros((len(samples), *self.block.shape[1:]))

    def dense(self) -> np.ndarray:
        """The weights of every sample."""
        weights = np.zeros((self.n, *self.block.shape[1:]))
        weights[self.batch] = self.block
        return weights


@dataclass
class Discovery:
    """What discovery found for one model (see the module docstring)."""

    spec: str
    loss: str
    params: int
    upper: int | None
    lower: int
    derived: int
    rank_by_depth: list
    gap: float
    explicit: list = field(default_factory=list)
    spurious: list = field(default_factory=list)
    missing: list = field(default_factory=list)
    seconds: float = 0.0
    note: str = ""
    decided_by: str = ""  # "exact", "exact closure", "bounds", "closure", ...; "" undecided
    evaluations: int = 0  # field evaluations spent (the work budget's unit)
    certificate: Certificate | None = None
    searched: bool = True  # the numerical search ran (False: decided exactly at depth 0, before it)
    regions: int = 0  # splits into sign classes the lower bound ranked (`flowlaws.invariants.regions`)
    blocks: list = field(default_factory=list)  # (name, Discovery) of each block counted alone (`discover_of`)

    @property
    def count(self) -> int | None:
        """The number of independent laws once decided (else None: undecided)."""
        return self.upper if self.decided_by else None

    @property
    def complete(self) -> bool:
        """The derived laws are all the laws: derived == count and none is spurious."""
        return self.count is not None and self.derived == self.count and not self.spurious

    def to_json(self) -> dict:
        return {"spec": self.spec, "loss": self.loss, "params": self.params, "count": self.count,
                "upper": self.upper, "lower": self.lower, "derived": self.derived,
                "complete": self.complete, "rank_by_depth": self.rank_by_depth,
                "gap": self.gap if math.isfinite(self.gap) else None, "explicit": self.explicit,
                "missing": self.missing, "spurious": self.spurious, "seconds": round(self.seconds, 3),
                "note": self.note, "decided_by": self.decided_by or None, "evaluations": self.evaluations,
                "certificate": self.certificate.to_json() if self.certificate else None, "searched": self.searched,
                "regions": self.regions,
                **({"blocks": [{"block": name, **part.to_json()} for name, part in self.blocks]} if self.blocks
                   else {})}


class Work:
    """Field evaluations spent against a budget: a count, so the answer never depends on the
    clock. An optional ``timeout`` (seconds) stops early, and says so."""

    def __init__(self, budget: int = BUDGET, timeout: float | None = None):
        if not (isinstance(budget, int | np.integer) and budget > 0):
            raise InvalidArgument(f"budget must be a positive number of field evaluations, got {budget!r}")
        if timeout is not None and not (isinstance(timeout, int | float) and timeout > 0):
            raise InvalidArgument(f"timeout must be a positive number of seconds, got {timeout!r}")
        self.budget, self.spent, self.timeout = int(budget), 0, timeout
        self.deadline = math.inf if timeout is None else time.perf_counter() + timeout

    def spend(self, evaluations: int) -> None:
        self.spent += evaluations

    @property
    def timed_out(self) -> bool:
        return time.perf_counter() > self.deadline

    @property
    def exhausted(self) -> bool:
        return self.spent >= self.budget or self.timed_out

    def reason(self) -> str:
        if self.timed_out:
            return f"stopped by the timeout of {self.timeout:g} s (the count may be decided without it)"
        return f"stopped refining after its budget of {self.budget:,} field evaluations"


# --- the frozen network and its gradient fields ---------------------------------------


def _kink_inputs(layers, cache):
    """The pre-activations of every two-slope activation (residual blocks included)."""
    for layer, (x, _, aux) in zip(layers, cache, strict=True):
        if _two_slopes(layer):
            yield x
        for inner, inner_cache in layer.nested(x, aux):  # a composite's branches
            yield from _kink_inputs(inner, inner_cache)


def _both_slopes(model, theta, X, batches) -> bool:
    """Every unit (channel) of every ReLU-family activation is strictly positive on some
    samples and strictly negative on others (a unit that is only ever >= 0, e.g. fed by
    one non-negative input, is linear on all data and would hide a matrix law)."""
    if not model.activations:
        return True
    params = unflatten(theta, [s for _, s in model.param_specs])
    caches = [model.forward(params, X[b])[1] for b in batches]
    for z in (np.concatenate(parts) for parts in zip(*(_kink_inputs(model.layers, c) for c in caches),
                                                       strict=True)):
        per_unit = np.moveaxis(z, 1, 0).reshape(z.shape[1], -1)
        if not (np.all(np.any(per_unit > 0, axis=1)) and np.all(np.any(per_unit < 0, axis=1))):
            return False
    return True


def _repaired(model, theta, X, rng, work: Work, rounds: int = 16) -> np.ndarray:
    """``theta`` with the rows feeding a unit that never changes slope on ``X`` redrawn from
    the init, layer by layer (a top-level weight layer right before a ReLU-family
    activation; other units are left as they are). Units fed by few non-negative inputs
    switch only for mixed-sign rows, so plain rejection of whole draws needs exponentially
    many (mlp:3-2-8-4-8:relu: 3 in 3,000); redrawing only the failing rows keeps the draw
    random within the regions where every unit switches."""
    shapes = [s for _, s in model.param_specs]
    params = list(unflatten(theta, shapes))
    layers = getattr(model, "layers", ())
    for _ in range(rounds):
        _, cache = model.forward(tuple(params), X)
        work.spend(1)  # a forward sweep, counted like a field
        failing = None
        for position, (layer, (z, _, _)) in enumerate(zip(layers, cache, strict=True)):
            if not (_two_slopes(layer) and position and getattr(layers[position - 1], "has_weight", False)):
                continue
            per_unit = np.moveaxis(z, 1, 0).reshape(z.shape[1], -1)
            bad = ~(np.any(per_unit > 0, axis=1) & np.any(per_unit < 0, axis=1))
            if bad.any():
                failing = (position - 1, np.flatnonzero(bad))
                break
        if failing is None:
            break
        site = model.site(failing[0])
        fresh = unflatten(_draw(model, rng), shapes)
        places = [np.arange(p.size).reshape(p.shape) for p in params]  # each unit's entries, by its rows' views
        for view in site.layer.rows(site, site.layer.units_out(site)):
            entries = view.rows(places)[failing[1]].ravel()
            params[view.param].flat[entries] = fresh[view.param].flat[entries]
    return flatten(tuple(params))


def needed_bytes(model) -> float:
    """The size of discovery's largest arrays, in bytes: the weightings C (K x n x outputs,
    with K = D + 8 fields and n ~ SAMPLES (D + 8) / outputs samples) and two K x D field
    matrices (float64)."""
    D = parameter_count(model)
    outputs = int(np.prod(model.output_shape))
    K = D + 8
    n = max(2, math.ceil(SAMPLES * K / outputs))
    return 8.0 * (K * n * outputs + 2 * K * D)


def _check(model) -> None:
    """Discovery needs each field analytic on a region: degree-1 activations (frozen,
    linear) or smooth ones (tanh, sigmoid, softplus, gelu, silu: analytic); relu_power
    and elu are neither once frozen. And its arrays must fit in MEMORY (`needed_bytes`)."""
    needed = needed_bytes(model)
    if needed > MEMORY:
        D = parameter_count(model)
        fits = int(math.sqrt(MEMORY / (8 * (2 + SAMPLES))))
        raise InvalidArgument(f"discover {model.spec} would need about {needed / 2**30:,.0f} GiB for its {D:,} "
                              f"parameters (fields and weightings grow as D^2); at most about {fits:,} parameters "
                              f"fit in its {MEMORY / 2**30:.0f} GiB: use a narrower net")
    for act in model.activations:
        if act.degree != 1 and not act.analytic:
            kind = "is not analytic" if act.degree is None else f"has degree {act.degree:g}"
            raise InvalidArgument(f"discover needs activations of degree 1 (linear, relu, leaky_relu, abs, "
                                  f"prelu) or smooth ones (tanh, sigmoid, softplus, gelu, silu): {act.spec} "
                                  f"{kind}, so the network is not analytic once its pattern is frozen")


class Problem:
    """A model at a generic point with frozen pattern, data, and K combination weights.
    ``enough``: stop drawing once the fields' numerical rank reaches it (0: take the first
    valid draw and rank nothing); ``one_batch``: each generator but the first FAST_PARTNERS
    reads one batch of the data (`generator_weights`: cheap fields for a rank at depth 0);
    ``region``: moves each draw into the region discovery wants (`_into_the_fewest_region`)."""

    def __init__(self, model, rng, *, cross_entropy: bool = False, enough: int | None = None,
                 tries: int = 3000, samples: int = 0, work: Work | None = None, one_batch: bool = False,
                 region: Callable | None = None):
        self.model, self.rng, self.cross_entropy = model, rng, cross_entropy
        self.work = Work() if work is None else work
        self.shapes = [shape for _, shape in model.param_specs]
        self.D = parameter_count(model)
        outputs = int(np.prod(model.output_shape))
        n = max(2, math.ceil((samples or SAMPLES) * (self.D + 8) / outputs))
        K = min(n * outputs, self.D + 8)
        self.C: Any = None if one_batch else self.combinations(K, n)  # K weightings (drawn before X, as ever)
        self.degree = max(1, _weight_layers(model) - 1) if _polynomial(model) else None  # of each field
        self.X = rng.normal(size=(n, *model.input_shape))
        self.batches = _batches(model, n, self.D, one_batch)
        if one_batch:
            self.C = self.generator_weights(K)
        enough = self.D if enough is None else enough
        best, rank, found = None, -1, 0
        self.ranked: tuple[int, float] | None = None  # (rank, gap) of the fields at theta0, when ranked
        for _ in range(tries):
            self.theta = _draw(model, rng)
            self.work.spend(len(self.batches))  # a forward sweep per batch: counted like a field
            if self.work.exhausted and best is not None:  # a point in hand: refine no further
                break
            try:
                if not _couples_samples(model) and _piecewise(model):  # only kinks have units to repair
                    self.theta = _repaired(model, self.theta, self.X, rng, self.work)
                if region is not None:
                    self.theta = region(self.theta)
                if not _both_slopes(model, self.theta, self.X, self.batches):
                    continue
            except Unrepresentable:  # a normalization group is constant at this draw
                continue
            self.pattern = [model.pattern(unflatten(self.theta, self.shapes), self.X[b]) for b in self.batches]
            found += 1
            fields = self.values(self.theta)
            ranked = rank_and_gap(fields) if enough else None
            here = ranked[0] if ranked else 0
            if here > rank:
                best, rank, self.ranked = (self.theta, self.pattern, fields), here, ranked
            if rank >= enough or found == GENERIC_DRAWS:
                break
        if best is None:
            raise InvalidArgument(f"{model.spec}: no generic point found in {tries:,} draws (a unit never "
                                  "changes slope on the data, or a normalization group is constant); "
                                  "widen the layer before it")
        self.theta, self.pattern, self.fields = best  # the fields at theta0
        self.rank = rank  # of the fields at theta (depth 0; 0 when ``enough`` is 0)

    def generator_weights(self, count: int) -> list:
        """``count`` random output weightings (`combinations`): the first FAST_PARTNERS read every
        sample (the fast brackets' partners), each other one batch, in turn (a `OneBatch`),
        so that it costs one batch's forward and reverse sweep, yet together they read every
        sample. Any weighting gives a field of W: this only changes which fields are drawn,
        never what a rank bounds. (Brackets of such fields span less than those of fields
        that read every sample: mlp:2-5-8-6-2:relu's depth 1 adds nothing to them, up to 5
        to the others.)"""
        dense = list(self.combinations(min(count, FAST_PARTNERS)))
        return dense + [OneBatch(b, self.batches[b], self.combinations(1, len(self.batches[b]))[0], len(self.X))
                        for b in (k % len(self.batches) for k in range(len(dense), count))]

    def combinations(self, count: int, n: int | None = None) -> np.ndarray:
        """``count`` random output weightings C of ``n`` samples (every sample by default; for a
        loss family such as softmax cross-entropy, in its gradients' span: sum_j C_nj = 0,
        exactly)."""
        C = self.rng.normal(size=(count, len(self.X) if n is None else n, *self.model.output_shape))
        if not self.cross_entropy:
            return C
        C = np.round(C / GRID) * GRID  # on the grid, so that the sum below is exact: the sum is exactly 0
        C[:, :, 0] = -C[:, :, 1:].sum(axis=2)  # (a float mean leaves round-off that exact ranks would count)
        return C

    def reading(self, weights) -> np.ndarray:
        """The indices of the batches that a weighting (samples x outputs) reads."""
        if isinstance(weights, OneBatch):
            return np.array([weights.index])
        samples = np.any(np.reshape(weights != 0, (len(weights), -1)), axis=1)
        return np.flatnonzero(np.logical_or.reduceat(samples, [b[0] for b in self.batches]))

    def values(self, theta, rows=None, C=None, magnitude: bool = False) -> np.ndarray:
        """The fields g_k(theta) = grad <C_k, f(X; theta)> as rows (complex theta allowed);
        ``C`` other weightings than the generators'. A batch a weighting does not read costs
        no sweep. ``magnitude``: instead, their round-off scales M_k (the sweeps on
        magnitudes, docs/numerics.md: |computed g_k - g_k| <= gamma(n) M_k entrywise)."""
        params = unflatten(theta, self.shapes)
        weights = self.C if C is None else C
        chosen = range(len(weights)) if rows is None else rows
        readers: list[list[int]] = [[] for _ in self.batches]
        for i, k in enumerate(chosen):
            for b in self.reading(weights[k]):
                readers[b].append(i)
        total = np.zeros((len(chosen), self.D), dtype=np.result_type(theta, float))
        for batch, pattern, rows_here in zip(self.batches, self.pattern, readers, strict=True):
            if not rows_here:
                continue
            self.work.spend(len(rows_here))  # one forward and reverse sweep per batch read
            _, cache = self.model.forward(params, self.X[batch], pattern)
            if magnitude:
                cache = self.model.bounds(params, cache)
            outs = [weights[chosen[i]][batch] for i in rows_here]
            if magnitude:
                total[rows_here] += [flatten(self.model.backward(params, cache, np.abs(out) + REALMIN,
                                                                 magnitude=True)) for out in outs]
            else:
                total[rows_here] += self._swept(params, cache, np.stack(outs))
        return total

    def _swept(self, params, cache, outs) -> np.ndarray:
        """grad <out, f(X_batch)> for each weighting ``outs[k]`` of one batch: a reverse
        sweep each, or, where they outnumber the batch's outputs (a batch of BATCH samples
        of a net that couples them), the sweeps of the outputs one by one, combined (a
        sweep is linear in its weighting: round-off apart, the same fields)."""
        size = outs[0].size
        if len(outs) <= size:
            return np.stack([flatten(self.model.backward(params, cache, out)) for out in outs])
        units = np.eye(size).reshape(size, *outs[0].shape)
        return outs.reshape(len(outs), size) @ np.stack([flatten(self.model.backward(params, cache, unit))
                                                           for unit in units])

    def regions(self, theta):
        """Per batch, (activation pattern, pre-activations of every kink) at ``theta``."""
        params = unflatten(theta, self.shapes)
        for batch in self.batches:
            _, cache = self.model.forward(params, self.X[batch])
            kinks = _kink_inputs(getattr(self.model, "layers", ()), cache) if _piecewise(self.model) else ()
            yield self.model.pattern_of(cache), list(kinks)

    def generators(self) -> list[Field]:
        return [Field(lambda theta, k=k: self.values(theta, (k,))[0], self.degree, f"g{k}", self.C[k])
                for k in range(len(self.C))]

    def field(self, C, name: str) -> Field:
        """The field grad <C, f(X; theta)> of one weighting C."""
        return Field(lambda theta: self.values(theta, (0,), C[None])[0], self.degree, name, C)


def _batches(model, n: int, D: int, one_batch: bool) -> list[np.ndarray]:
    """The samples' batches: BATCH samples where a layer couples them (BatchNorm: "an input is
    a batch"); else all in one, or with ``one_batch`` (each generator reads one) batches of
    about SWEEP / D samples, so that a sweep costs about as much as its overhead."""
    size = BATCH if _couples_samples(model) else max(BATCH, math.ceil(SWEEP / D)) if one_batch else n
    return np.array_split(np.arange(n), max(1, n // size))


def _draw(model, rng) -> np.ndarray:
    """A random point: the model's Gaussian init with biases scaled by BIAS_SCALE (large
    biases keep units always on or off on the data), on the certificate's GRID (so the exact
    ranks are taken at the very point, in its activation region)."""
    params = model.init(rng)
    theta = flatten(tuple(p * BIAS_SCALE if name.endswith(".b") else p
                          for (name, _), p in zip(model.param_specs, params, strict=True)))
    return np.round(theta / GRID) * GRID


def _piecewise(model) -> bool:
    """Has the network activation regions (a two-slope activation, a max pool)?"""
    layers = getattr(model, "all_layers", ())
    return any(layer.piecewise for layer in layers)


def _two_slopes(layer) -> bool:
    """A ReLU-family activation (two slopes, a kink at 0)."""
    return isinstance(layer, Activation) and layer.piecewise


def _polynomial(model) -> bool:
    """Frozen, is the network a polynomial in theta (no normalization, no softmax)?"""
    return all(layer.polynomial for layer in getattr(model, "all_layers", ()))


def _couples_samples(model) -> bool:
    return any(layer.couples_samples for layer in getattr(model, "all_layers", ()))


def _weight_layers(model) -> int:
    names = {name.rsplit(".", 1)[0] for name, _ in model.param_specs}
    return len(names)


def directional(v: Field, theta, w) -> np.ndarray:
    """Dv(theta)[w] from points on a complex circle: exact for a polynomial v of degree p
    with p + 1 points; for an analytic v, see `_analytic_directional`; by forward-mode
    differentiation when the field has it."""
    if v.differentiate is not None:
        return v.differentiate(v.at)(theta, w)
    if v.degree is None:
        return _analytic_directional(v, theta, w)
    n = v.degree + 1
    r = (np.linalg.norm(theta) + 1.0) / (np.linalg.norm(w) + 1e-300)
    roots = np.exp(2j * np.pi * np.arange(n) / n)
    return sum(v.at(theta + r * z * w) / z for z in roots) / (n * r)


def _analytic_directional(v: Field, theta, w) -> np.ndarray:
    """Dv(theta)[w] for an analytic v (normalization, softmax): the Taylor coefficients
    c_k r^k of t -> v(theta + t w) on a circle of ANALYTIC_POINTS points (a discrete
    Fourier transform); the circle shrinks tenfold until the middle coefficient, which
    bounds the truncation, is below 1e-13 of the largest. Then the error is round-off,
    about eps R / r relative (R: the distance to the nearest complex singularity). A circle
    that passes near a singularity (a LayerNorm's variance near 0 at complex points)
    overflows there: it shrinks too, quietly. One that has not converged on the last of
    ANALYTIC_CIRCLES (a branch cut of an RMS's square root crossed at every radius) gives
    NaN: unknown, never a value (`_bracket_value`). The field's next derivative starts one
    circle larger than the one this one converged on (``v.circle``): its derivatives along
    other directions converge on circles alike, each larger circle that fails costs
    ANALYTIC_POINTS sweeps (a LayerNorm net's derivatives took three circles each, now
    two), and one larger lets it climb back where a direction allows (a smaller circle
    than needed costs accuracy, eps R / r)."""
    n = ANALYTIC_POINTS
    first = ANALYTIC_RADIUS * (np.linalg.norm(theta) + 1.0) / (np.linalg.norm(w) + 1e-300)
    roots = np.exp(2j * np.pi * np.arange(n) / n)
    for k in range(max(v.circle[0] - 1, 0), ANALYTIC_CIRCLES):
        r = first / 10**k
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            samples = np.stack([v.at(theta + r * z * w) for z in roots])
            coefficients = np.fft.fft(samples, axis=0) / n  # c_k r^k (the sign of k: z^-k)
        size = np.linalg.norm(coefficients, axis=1)
        if np.all(np.isfinite(samples)) and size[n // 2] <= 1e-13 * size.max():
            v.circle[0] = k
            return coefficients[1] / r
    return np.full(samples.shape[1:], np.nan, dtype=complex)


def _bracket_terms(u: Field, v: Field, theta):
    """The two terms of [u, v](theta) = Dv(theta)[u(theta)] - Du(theta)[v(theta)]."""
    return directional(v, theta, u.at(theta)), directional(u, theta, v.at(theta))


def _bracket_value(u: Field, v: Field, theta) -> np.ndarray:
    """[u, v](theta0), real, with exact cancellation set to 0: below 1e-9 of its two terms;
    and 0 where a derivative is unknown (NaN: `_analytic_directional`), so it adds no
    direction: the rank stays a lower bound, the count an upper bound."""
    point = theta if u.differentiate else theta.astype(complex)
    first, second = (np.asarray(t).real for t in _bracket_terms(u, v, point))
    value = first - second
    scale = np.linalg.norm(first) + np.linalg.norm(second)
    return value if np.isfinite(scale) and np.linalg.norm(value) > 1e-9 * scale else np.zeros_like(value)


def bracket(u: Field, v: Field) -> Field:
    """[u, v] as a field (for the next depth)."""
    def at(theta):
        first, second = _bracket_terms(u, v, theta)
        return first - second

    degree = None if u.degree is None or v.degree is None else u.degree + v.degree - 1
    return Field(at, degree, f"[{u.name},{v.name}]", parts=(u, v), differentiate=u.differentiate)


# --- rank decisions ---------------------------------------------------------------------


def rank_and_gap(rows) -> tuple[int, float]:
    """Numerical rank of the rows (each scaled to unit length) and the gap s_r / s_(r+1)."""
    M = np.asarray(rows, dtype=float)
    norms = np.linalg.norm(M, axis=1)
    M = M[norms > 0] / norms[norms > 0, None]
    if M.size == 0:
        return 0, math.inf
    s = svd(M, compute_uv=False)
    r = int(np.sum(s > RANK_TOL * s[0]))
    gap = math.inf if r == len(s) else float(s[r - 1] / max(s[r], 1e-300))
    return r, gap


def _independent(rows, basis) -> list[int]:
    """Indices of rows that raise the rank of ``basis``, greedily (pivoted QR on the rest):
    a row raises it when, scaled to unit length, more than RANK_TOL * 1e3 of it lies off
    the span of ``basis`` (its rows may be dependent: the span is their SVD's)."""
    import scipy.linalg

    if len(rows) == 0:
        return []
    B = np.asarray(basis, float)
    R = np.asarray(rows, float)
    R = R / np.maximum(np.linalg.norm(R, axis=1, keepdims=True), 1e-300)
    if len(B):
        norms = np.linalg.norm(B, axis=1)
        _, _, Vt = svd(B[norms > 0] / norms[norms > 0, None])
        Q = Vt[: rank_and_gap(B)[0]].T
        R = R - (R @ Q) @ Q.T
    _, s, pivots = scipy.linalg.qr(R.T, pivoting=True, mode="economic")
    diag = np.abs(np.diag(s)) if s.ndim == 2 else np.abs(s)
    keep = int(np.sum(diag > RANK_TOL * 1e3))
    return [int(p) for p in pivots[:keep]]


@dataclass
class Lie:
    """The rank of the Lie algebra's trace at theta0 by bracket depth, the smallest
    singular-value gap of those decisions, and whether the algebra was seen to close."""

    ranks: list
    gap: float
    closed: bool = False
    depths: list = field(default_factory=list)  # the fields behind the rows: generators, then each depth
    problem: Problem | None = None
    probes: list = field(default_factory=list)  # the brackets that stayed in the span when it closed

    @property
    def rank(self) -> int:
        return self.ranks[-1]


def lie_rank(problem: Problem, partners: int | None = None, enough: int | None = None) -> Lie:
    """Rank of the fields at theta0 after 0, 1, ... bracket depths, until it stops growing
    (or reaches ``enough``: D minus the laws already proven, which it can never pass).
    Each depth brackets the fields that raised the rank at the previous one with every
    generator, or with the first ``partners`` (fast; a rank it misses makes the upper bound
    too high, never too low). Then, for a polynomial network, random brackets probe the
    closure (module docstring): one that leaves the span joins it, and probing goes on;
    when none does, the algebra is closed at theta0. The problem's `Work` bounds it all."""
    enough = problem.D if enough is None else enough
    work, theta = problem.work, problem.theta
    gens = problem.generators()
    partners_of = gens if partners is None else gens[:partners]
    rows = problem.fields
    rank, gap = problem.ranked or rank_and_gap(rows)
    ranks, gaps = [rank], [gap]
    first = _independent(rows, np.zeros((0, problem.D))) if rank < enough else []  # (read below only then)
    basis: list[Field] = []  # the bracket fields among the algebra's basis (the generators: ``first``)
    new = [gens[i] for i in first]
    depths = [gens]
    for _ in range(MAX_DEPTH):
        if rank >= enough or not new or work.exhausted:
            break
        pairs = [(g, b) for b in new for g in partners_of]
        values_list = _bracket_values(problem, pairs, theta)
        if not values_list:
            break
        candidates = [bracket(g, b) for g, b in pairs[: len(values_list)]]
        values = np.stack(values_list)
        picked = [i for i in _independent(values, rows) if np.any(values[i])]
        rows = np.vstack([rows, values[picked]]) if picked else rows
        rank, gap = rank_and_gap(rows)
        ranks.append(rank)
        gaps.append(gap)
        new = [candidates[i] for i in picked]
        basis += new
        depths.append(new)
        if rank == ranks[-2]:
            break
    closed, probes = False, list[Field]()
    while problem.degree is not None and not _piecewise(problem.model) and 0 < rank < enough and not work.exhausted:
        grown, probes = False, []
        for _ in range(CLOSURE_PROBES):
            g, w = problem.field(problem.combinations(1)[0], "g*"), _combination(problem, first, basis)
            probes.append(bracket(g, w))
            value = _bracket_value(g, w, theta)
            here, here_gap = rank_and_gap(np.vstack([rows, value]))
            gaps.append(here_gap)
            if here > rank:
                rows, rank, grown = np.vstack([rows, value]), here, True
                basis.append(probes[-1])
                depths.append([basis[-1]])
                ranks.append(rank)
                break
        if not grown:
            closed = not work.exhausted
            break
    return Lie(ranks, min(gaps), closed, depths, problem, probes if closed else [])


def _bracket_values(problem, pairs, theta) -> list[np.ndarray]:
    """[g, b](theta0) for each pair, in order, until the work is exhausted: in batches when
    the problem evaluates them so (a torch module: `flowlaws.torch.discovery`), else one by one."""
    batched = getattr(problem, "bracket_values", None)
    if batched is not None:
        return batched(pairs)
    values = []
    for g, b in pairs:
        if problem.work.exhausted:
            break
        values.append(_bracket_value(g, b, theta))
    return values


def _combination(problem: Problem, first, basis) -> Field:
    """A random combination of the algebra's basis: the generators ``first`` (one field of
    their combined weightings) and the bracket fields ``basis``."""
    rng = problem.rng
    base = problem.field(np.tensordot(rng.normal(size=len(first)), problem.C[first], axes=1), "w")
    factors = rng.normal(size=len(basis))
    parts = [base, *basis]
    degree = None if any(f.degree is None for f in parts) else max(f.degree for f in parts)  # type: ignore[type-var]
    return Field(lambda theta: base.at(theta) + sum(c * f.at(theta) for c, f in zip(factors, basis, strict=True)),
                 degree, "w*", terms=tuple(zip((1.0, *factors), parts, strict=True)))


# --- laws proven conserved ---------------------------------------------------------------


def _points(model, rng, cross_entropy, count, work=None):
    return [Problem(model, rng, cross_entropy=cross_entropy, enough=0, work=work) for _ in range(count)]


def _most_fields(model, derived) -> int:
    """D minus the derived laws' count: the most the fields can span if those are laws."""
    from flowlaws.invariants import independent_count

    return parameter_count(model) - independent_count(model, derived)


def quadratic_laws(model, problems) -> np.ndarray:
    """Every P(theta) = 1/2 theta^T A theta + b^T theta with <grad P, g> = 0 for every field at
    every point: the null space of that linear system, in reduced row echelon form. Rows are
    coefficient vectors over (A's upper triangle, b)."""
    D = problems[0].D
    iu = np.triu_indices(D)
    blocks = []
    for p in problems:
        G = p.fields.real
        # <A theta + b, g> = sum_{i<=j} A_ij (theta_j g_i + theta_i g_j [i != j]) + b . g
        quad = G[:, iu[0]] * p.theta[iu[1]] + np.where(iu[0] != iu[1], G[:, iu[1]] * p.theta[iu[0]], 0.0)
        blocks.append(np.hstack([quad, G]))
    M = np.vstack([_row_space(block) for block in blocks])
    _, s, Vt = svd(M, full_matrices=len(M) < M.shape[1])
    rank = int(np.sum(s > RANK_TOL * s[0]))
    return _rref(Vt[rank:])


def _row_space(block) -> np.ndarray:
    """An orthonormal basis of the rows' span (the constraints one point contributes)."""
    block = block / np.maximum(np.linalg.norm(block, axis=1, keepdims=True), 1e-300)
    _, s, Vt = svd(block)
    return Vt[: int(np.sum(s > RANK_TOL * s[0]))]


def _rref(N) -> np.ndarray:
    """Reduced row echelon form (pivots 1), entries below 1e-9 set to 0: readable laws."""
    A = np.array(N, float)
    row = 0
    for col in range(A.shape[1]):
        if row == len(A):
            break
        pivot = row + int(np.argmax(np.abs(A[row:, col])))
        if abs(A[pivot, col]) < 1e-8:
            continue
        A[[row, pivot]] = A[[pivot, row]]
        A[row] /= A[row, col]
        others = np.arange(len(A)) != row
        A[others] -= np.outer(A[others, col], A[row])
        row += 1
    A[np.abs(A) < 1e-9] = 0.0
    return A


def _entry_names(model) -> list[str]:
    names = []
    for name, shape in model.param_specs:
        for index in np.ndindex(*shape):
            names.append(f"{name}[{','.join(map(str, index))}]")
    return names


def law_formula(coefficients, names) -> str:
    """A readable polynomial: coefficients over (upper triangle of A, b)."""
    D = len(names)
    iu = np.triu_indices(D)
    terms = []
    for (i, j), c in zip(zip(*iu, strict=True), coefficients[: len(iu[0])], strict=True):
        if c:
            c = c / 2 if i == j else c  # 1/2 A_ii theta_i^2; A_ij theta_i theta_j
            terms.append((c, f"{names[i]}²" if i == j else f"{names[i]}·{names[j]}"))
    terms += [(c, names[i]) for i, c in enumerate(coefficients[len(iu[0]):]) if c]
    if not terms:
        return "0"
    scale = min(abs(c) for c, _ in terms)
    text = ""
    for c, name in terms:
        c = c / scale
        sign = "−" if c < 0 else "+"
        number = "" if abs(abs(c) - 1) < 1e-9 else f"{abs(c):.6g}·"
        text += f" {sign} {number}{name}"
    return text.strip().removeprefix("+ ")


def _law_gradients(coefficients, theta) -> np.ndarray:
    """grad P(theta0) = A theta0 + b for each coefficient row."""
    D = len(theta)
    iu = np.triu_indices(D)
    out = []
    for c in coefficients:
        A = np.zeros((D, D))
        A[iu] = c[: len(iu[0])]
        A = A + np.triu(A, 1).T
        out.append(A @ theta + c[len(iu[0]):])
    return np.array(out).reshape(len(out), D)


def component_gradients(law, theta, shapes) -> np.ndarray:
    """Rows grad Q_c(theta) of every scalar component c of a derived law."""
    from flowlaws.invariants.stacked import stacked

    return stacked((law,), tuple(map(tuple, shapes))).jacobian(theta)


def orthogonal(law, problems) -> bool:
    """The exact orthogonality test: <grad Q_c(theta), g(theta)> = 0 for every component c
    and field g at every point, to round-off relative to |grad Q_c| |g| (norm-wise: a field
    entry that is 0 by cancellation, like a bias before BatchNorm, is only round-off)."""
    return _orthogonal(lambda p: component_gradients(law, p.theta, p.shapes), problems)


def _orthogonal(gradients, problems) -> bool:
    """`orthogonal` for the rows ``gradients(problem)`` of any law."""
    from flowlaws.checking import gamma

    for p in problems:
        J, G = gradients(p), p.fields.real
        scale = np.outer(np.linalg.norm(J, axis=1), np.linalg.norm(G, axis=1))
        if np.any(np.abs(J @ G.T) > 1e3 * gamma(p.D + len(p.X)) * scale + 1e-300):
            return False
    return True


# --- the whole comparison ------------------------------------------------------------------


def discover(model, *, degree: int = 2, loss: str | None = None, seed: int = 0,
             budget: int = BUDGET, timeout: float | None = None) -> Discovery:
    """Count, find and compare the conservation laws of ``model`` (see the module docstring).
    ``budget``: field evaluations (work, not time); ``timeout``: seconds, off by default.

    >>> from flowlaws.models import parse
    >>> discover(parse("mlp:2-3-1:relu")).count
    3
    """
    from flowlaws.invariants import laws as derived_laws

    if degree not in (0, 1, 2):
        raise InvalidArgument(f"degree must be 0, 1 or 2, got {degree!r}")
    family = loss or "any"
    if family not in ("any", "cross_entropy"):
        raise InvalidArgument(f"loss family must be 'cross_entropy' or omitted (every loss), got {loss!r}")
    _check(model)
    work = Work(budget, timeout)
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    ce = family == "cross_entropy"
    derived = derived_laws(model, "cross_entropy" if ce else None)
    if _piecewise(model) and _polynomial(model) and (degree == 0 or parameter_count(model) > EXPLICIT_MAX_PARAMS):
        certificate = _certified_first(model, np.random.default_rng([seed, 1]), ce, derived, work)  # its own draws
        if certificate.decides and certificate.upper is not None:
            return Discovery(model.spec, family, parameter_count(model), certificate.upper, certificate.upper,
                             certificate.derived or 0, list(certificate.ranks), math.inf,
                             seconds=time.perf_counter() - started, decided_by="exact", evaluations=work.spent,
                             certificate=certificate, searched=False, regions=certificate.regions)
    region = _into_the_fewest_region(model, derived)
    problem = Problem(model, rng, cross_entropy=ce, enough=_most_fields(model, derived), work=work, region=region)
    points = [problem, *_points(model, rng, ce, 3, work)]
    spurious = [law.name for law in derived if not orthogonal(law, points)]
    good = [law for law in derived if law.name not in spurious]
    known = (np.vstack([component_gradients(law, problem.theta, problem.shapes) for law in good])
             if good else np.zeros((0, problem.D)))
    derived_count = rank_and_gap(known)[0]
    if problem.rank == 0:  # no field moves any parameter: every function is a law
        return Discovery(model.spec, family, problem.D, problem.D, problem.D, derived_count, [0], math.inf,
                         spurious=spurious, seconds=time.perf_counter() - started, decided_by="no fields",
                         evaluations=work.spent, note="every field is 0 (the output does not depend on the "
                         "parameters for this loss family): each parameter is conserved")
    names = _entry_names(model)
    explicit, missing, note = [], [], ""
    gradients, lower = known, derived_count  # the laws proven conserved, and their rank
    if degree and problem.D <= EXPLICIT_MAX_PARAMS:
        unknowns = problem.D * (problem.D + 1) // 2 + problem.D
        count = math.ceil(1.5 * unknowns / max(1, problem.rank)) + 2  # each point gives rank W(theta) rows
        laws_found = quadratic_laws(model, [problem, *_points(model, rng, ce, count, work)])
        # proven only if orthogonal at points the system never saw (an ill-conditioned
        # system, as for softmax attention, can leave near-null vectors that are no laws)
        laws_found = laws_found[[_orthogonal(lambda p, c=c: _law_gradients(c[None], p.theta), points[1:])
                                 for c in laws_found]] if len(laws_found) else laws_found
        if degree == 1:
            laws_found = laws_found[np.all(laws_found[:, : -problem.D] == 0, axis=1)]
        linear_first = np.argsort(np.any(laws_found[:, : -problem.D] != 0, axis=1), kind="stable")
        laws_found = laws_found[linear_first]
        for coefficients, grad in zip(laws_found, _law_gradients(laws_found, problem.theta), strict=True):
            formula = law_formula(coefficients, names)
            explicit.append(formula)
            # a proven law raises the bound only when clearly off the span (`_independent`): a
            # near-null vector of the system can be a law's large multiple plus a 1e-9 part
            if _independent(grad[None], gradients):
                gradients, lower = np.vstack([gradients, grad]), lower + 1
                if _independent(grad[None], known):
                    missing.append(formula)
    elif degree:
        note = f"explicit laws skipped: {problem.D} parameters > {EXPLICIT_MAX_PARAMS}"
    regional, regions, _ = _fewest_in_a_region(good, known, problem.shapes, problem.theta, points)
    lower = max(lower, regional)
    best, widest = lie_rank(problem, FAST_PARTNERS, enough=problem.D - lower), problem.rank
    for attempt in range(1, RICHER):  # undecided: more data and draws (other activation regions)
        if problem.D - best.rank == lower or best.closed or work.exhausted:
            break
        if problem.rank >= widest and problem.D * len(problem.C) <= FULL_BUDGET:  # the fast set may miss one
            best = max(best, lie_rank(problem, enough=problem.D - lower), key=_final)
            if problem.D - best.rank == lower or best.closed:
                break
        problem = Problem(model, rng, cross_entropy=ce, enough=problem.D - lower, region=region,
                          samples=SAMPLES * 3 ** min(attempt, 2), work=work)
        if problem.rank >= widest:  # brackets only where the fields span as much as the widest draw yet
            widest = problem.rank
            best = max(best, lie_rank(problem, FAST_PARTNERS, enough=problem.D - lower), key=_final)
    upper, decided_by = _decide(best, problem.D, lower)
    certificate = _certificate(best.problem, best.depths, good, best.gap, best.probes, best.rank)
    if certificate.decides:
        upper, decided_by = certificate.upper, ("verified" if certificate.method == "verified" else "exact"
                                                if certificate.upper == certificate.lower else "exact closure")
    elif certificate.method != "numerical" and upper is not None and upper < max(lower, certificate.lower or 0):
        upper, decided_by = None, ""  # below a proven lower bound: a numerical error
    if problem.D - best.rank < lower and best.gap >= GAP:
        note = _joined(note, f"the brackets' rank {best.rank} passed D - {lower} proven laws: a numerical error "
                       "in the brackets, so the count is left undecided")
    elif not decided_by and work.exhausted:
        note = _joined(note, work.reason())
    return Discovery(model.spec, family, problem.D, upper, lower, derived_count, best.ranks, best.gap, explicit,
                     spurious, missing, time.perf_counter() - started, note, decided_by, work.spent, certificate,
                     regions=regions)


def _fewest_in_a_region(laws, known, shapes, theta, points=()) -> tuple[int, int, tuple]:
    """(the fewest laws any activation region has by the derived ``laws`` (gradients
    ``known`` at ``theta``) and the sign classes of units fed by one value, the splits
    into classes ranked, a split with that few; `flowlaws.invariants.regions`),
    numerically at ``theta``; (0, 0, ()) when there are no such units, or when the class
    laws of some point's own region are not orthogonal to its fields (``points``:
    discovery problems)."""
    from flowlaws.invariants.regions import class_rows, fewest, jacobian, labels, scalar_fed, twins_stacked

    fed = scalar_fed(laws)
    if not fed:
        return 0, 0, ()
    classes, starts = twins_stacked(fed, shapes)

    def own(p):  # the class laws of p's own region
        params = unflatten(p.theta, p.shapes)
        return class_rows(jacobian(classes, fed, p.theta, shapes), starts, [labels(law, params) for law in fed])

    if not _orthogonal(own, points):
        return 0, 0, ()
    return fewest(lambda m: rank_and_gap(m)[0] if len(m) else 0, known, jacobian(classes, fed, theta, shapes),
                  starts, fed)


def _certified_first(model, rng, cross_entropy, laws, work) -> Certificate:
    """The count at depth 0, exactly, before any numerical rank (a network that is a
    polynomial once frozen, with kinks): at a valid draw with EXACT_SAMPLES per parameter,
    generators that each read one batch (cheap sweeps) ranked over F_p, and the derived
    laws checked exactly orthogonal to them (`flowlaws.certificate`). Up to GENERIC_DRAWS
    draws, as a region's rank varies (mlp:4-12-12-3:relu: one draw in two reaches it); no
    SVD of the fields is taken, so it scales as the elimination mod p does."""
    region = _into_the_fewest_region(model, laws)
    for _ in range(GENERIC_DRAWS):
        problem = Problem(model, rng, cross_entropy=cross_entropy, enough=0, work=work, one_batch=True,
                          region=region, samples=EXACT_SAMPLES)
        certificate = _certificate(problem, [problem.generators()], laws, math.inf)
        if certificate.decides or work.exhausted:
            break
    return certificate


def _certificate(problem, depths, laws, gap: float, probes=(), rank=None) -> Certificate:
    """The exact certificate of ``depths`` (the generators, then each bracket depth) for a
    network that is a polynomial once frozen, with the closure ``probes`` seen at ``rank``;
    else the numerical one (its ``gap``)."""
    if problem is None:
        return numerical(gap, "no point")
    if problem.degree is None:  # not a polynomial once frozen (normalization or softmax)
        return verified(problem, laws, gap)
    try:
        return certify(problem, depths, laws, problem.shapes, probes, rank)
    except Unrepresentable as error:
        return numerical(gap, f"no exact value: {error}")


def _decide(lie: Lie, D: int, lower: int) -> tuple[int | None, str]:
    """(upper bound, how the count is decided; "" undecided). A depth whose rank passes
    D minus the proven laws is a numerical error in its brackets (nested softmax): the
    bound is the last depth's before it, and the count stays undecided. (`lie_rank`
    probes closure only where it decides: a network that is one polynomial.)"""
    consistent = [rank for rank in lie.ranks if D - rank >= lower]
    if lie.gap < GAP or not consistent:
        return None, ""
    upper = D - max(consistent)
    if len(consistent) < len(lie.ranks):
        return upper, ""
    meets, closes = upper == lower, lie.closed
    return upper, ("bounds and closure" if meets and closes else "bounds" if meets else "closure" if closes else "")


def _joined(note: str, more: str) -> str:
    return f"{note}; {more}" if note else more


def _final(result: Lie) -> tuple[int, bool]:
    """The better of two results: the larger rank (any draw's rank is a lower bound on the
    generic one), then the one that closed."""
    return result.rank, result.closed


# --- completeness as a theorem ----------------------------------------------------------


@dataclass(frozen=True)
class KnownExtra:
    """Architectures with more laws than their symmetries give, and how many in all."""

    name: str
    applies: Callable
    count: Callable
    reason: str


def _sign_classes(model) -> tuple:
    from flowlaws.invariants import laws
    from flowlaws.invariants.regions import scalar_fed

    return scalar_fed(laws(model))


def scalar_deep_linear(model) -> bool:
    acts = model.activations
    return (all(a.is_linear for a in acts) and not any(n.endswith(".b") for n, _ in model.param_specs)
            and int(np.prod(model.input_shape)) == 1 and int(np.prod(model.output_shape)) == 1)


def dead_parameters(model, points: int = 3, seed: int = 0) -> np.ndarray:
    """The (flat) indices of the parameters that never receive a gradient: at every one of
    ``points`` random points and data it is below DEAD times the largest entry (a live
    entry is of the order of the others there, one that cancels is round-off, 1e-16 of
    them; the magnitude sweep bounds a BatchNorm net too loosely to tell), so each is
    conserved on its own. They multiply activations that are identically 0 (the outputs of a bias-free conv that
    see only zero padding, through ReLU), or feed only quantities a normalization removes
    (BatchNorm's beta, read by a linear layer and then a BatchNorm: its gradient cancels
    over the batch)."""
    from flowlaws.engine import value_and_grad
    from flowlaws.losses import Square

    rng = np.random.default_rng(seed)
    moved = np.zeros(parameter_count(model), dtype=bool)
    for _ in range(points):
        params = model.init(rng)
        X = rng.normal(size=(8, *model.input_shape))
        Y = rng.normal(size=(8, *model.output_shape))
        g = np.abs(flatten(value_and_grad(model, Square(), params, X, Y)[1]))
        moved |= g > DEAD * g.max()
    return np.flatnonzero(~moved)


def _by_region(model) -> int:
    """The fewest laws any activation region has by the derived laws and the sign-class
    laws of units fed by one value."""
    from flowlaws.invariants import laws

    return _fewest_at_a_generic_point(model, laws(model))[0]


def _fewest_at_a_generic_point(model, derived) -> tuple[int, int, tuple]:
    """`_fewest_in_a_region` at the model's init (a generic point)."""
    from flowlaws.invariants.stacked import Stacked

    shapes = [shape for _, shape in model.param_specs]
    point = flatten(model.init(np.random.default_rng(0)))
    return _fewest_in_a_region(derived, Stacked(derived, shapes).jacobian(point), shapes, point)


def _into_the_fewest_region(model, derived) -> Callable | None:
    """theta -> theta moved into a region with the fewest laws (`flowlaws.invariants.regions`:
    the sign classes of units fed by one value; None without such units): discovery draws
    its point there, since the count is the fewest over regions and a draw elsewhere bounds
    it only from above."""
    from flowlaws.invariants.regions import realized, scalar_fed

    fed = scalar_fed(derived)
    split = _fewest_at_a_generic_point(model, derived)[2] if fed else ()
    shapes = [shape for _, shape in model.param_specs]
    return (lambda theta: realized(fed, split, theta, shapes)) if split else None


def _with_dead_parameters(model) -> int:
    """The rank of the derived laws' gradients and of the dead parameters' own laws
    (theta_j is conserved: the unit row e_j), at a generic point."""
    from flowlaws.invariants import laws
    from flowlaws.invariants.stacked import Stacked

    shapes = [shape for _, shape in model.param_specs]
    point = flatten(model.init(np.random.default_rng(0)))
    rows = np.eye(len(point))[dead_parameters(model)]
    derived = laws(model)
    if derived:
        rows = np.vstack([Stacked(derived, shapes).jacobian(point), rows])
    return rank_and_gap(rows)[0]


KNOWN_EXTRA = (
    KnownExtra("deep linear net with scalar input and output", scalar_deep_linear,
               lambda model: parameter_count(model) - 1,
               "f = x * prod(weights): every field is a multiple of one gradient, so D - 1 laws, more than "
               "the quadratic matrix laws (Marcotte, Gribonval, Peyre 2023); the extra ones are not quadratic"),
    KnownExtra("sign classes of units fed by one value", lambda model: bool(_sign_classes(model)), _by_region,
               "units that each read one value with no bias (z_i = w_i s) through one kink share their pattern "
               "by the sign of w_i: within a class any mixing is a symmetry of the activation region, so each "
               "region has its classes' blocks of the unit law's matrix form as laws (a law of the region, "
               "not of the model); the count is the fewest over the splits into classes "
               "(flowlaws.invariants.regions, docs/theory.md 7)"),
    KnownExtra("parameters that never receive a gradient", lambda model: len(dead_parameters(model)) > 0,
               _with_dead_parameters,
               "a weight that multiplies an activation which is identically 0 (a bias-free conv output that "
               "sees only zero padding, through ReLU), or a shift that a later BatchNorm removes (beta read "
               "by a linear layer and a BatchNorm), never moves: each such parameter is a linear law"),
)


def known_extra(model, found: Discovery) -> KnownExtra | None:
    """The KNOWN_EXTRA entry that predicts what discovery found beyond the derived laws."""
    if found.upper is None or found.upper == found.derived:
        return None
    return next((k for k in KNOWN_EXTRA if k.applies(model) and found.upper == k.count(model)), None)


def completeness(model):
    """Evidence that the derived laws are all the laws of ``model``: effect 0 when discovery's
    count equals the derived count (or a KNOWN_EXTRA entry predicts the discovered count),
    infinite when laws are missing or a derived law is spurious; undecided cases raise."""
    evidence, where = _decided(model)
    if evidence is None:
        raise Unrepresentable(f"discovery of {model.spec} is undecided: {where}")
    return evidence


@lru_cache(maxsize=1024)
def _decided(model):
    """(Evidence or None if undecided, what discovery found). It depends on the model alone,
    so a process decides each model once (a model without a generic point too: its search
    is the costliest). Discovery without explicit laws first: when its bounds meet at the
    derived count the laws are complete; otherwise the full discovery names what is missing."""
    try:
        decided = _judged(model, discover(model, degree=0, budget=CHECK_BUDGET))
        explicit = parameter_count(model) <= EXPLICIT_CHECK_PARAMS
        if explicit and (decided[0] is None or decided[0].effect > 0):
            decided = _judged(model, discover(model, degree=2, budget=CHECK_BUDGET))
    except InvalidArgument as error:  # e.g. no generic point: undecided
        return None, str(error)
    return decided


def _judged(model, found):
    from flowlaws.checking import Evidence, Level

    where = (f"discovered {found.count if found.count is not None else 'undecided'} (upper {found.upper}, "
             f"lower {found.lower}), derived {found.derived}, gap {found.gap:.2g}")
    name = f"laws of {model.spec}"
    if found.spurious:
        return Evidence(Level.COMPLETE, name, (), float(len(found.spurious)), 0.0, math.inf,
                        where=f"{where}; spurious: {', '.join(found.spurious)}"), where
    extra = known_extra(model, found)
    if extra is not None:
        return Evidence(Level.COMPLETE, name, (), 0.0, 0.0, 0.0, where=f"{where}; {extra.name}"), where
    if found.count is None:
        return None, where
    missing = found.count - found.derived
    return Evidence(Level.COMPLETE, name, (), float(abs(missing)), 0.0, 0.0 if missing == 0 else math.inf,
                    where=where + (f"; missing: {'; '.join(found.missing)}" if found.missing else "")), where
