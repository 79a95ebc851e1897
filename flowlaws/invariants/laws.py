"""Conservation laws derived from a model's rescaling symmetries (docs/theory.md, 3).

A law is a quadratic form built from the terms (view v, exponent alpha_v) of one
rescaling; view v is a (units x m_v) matrix P_v of parameter slices, and
G(a, b) = sum_v alpha_v P_v(a) P_v(b)^T:

- ``unit``   Q_i = sum_v alpha_v ||P_v[i]||^2 for every unit i: ||in_i||^2 - k ||out_i||^2
  (Thm 2.1; biases, 3.2; degree k, 3.4; conv channels, 3.5; across skips, 3.7) -> diag G
- ``layer``  the sum over units (Cor 2.1; Thm 2.3 for convolutions)  -> trace G
- ``matrix`` G itself across linear boundaries (Thm 2.2, 3.6)
- ``summed`` 1^T G 1, when only the units' common direction scales (the mean direction of
  a centred stream, docs/theory.md 7)      -> sum_v alpha_v ||1^T P_v||^2
- a ``centred`` matrix law, C G C with C = d I - 1 1^T, when only a mixing that fixes 1 is
  a symmetry (across a LayerNorm passed as a linear map, docs/theory.md 7)

Its bilinear form B(a, b) is the symmetric part of G(a, b), so that for any update
Q(theta + Delta) - Q(theta) = 2 B(theta, Delta) + Q(Delta) (3.3), and gradient flow
conserves Q because B(theta, grad L(theta)) = 0 (3.1).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import autograd.numpy as anp
import numpy as np

from flowlaws.models.symmetry import Family, LawKind, Term, View, centred, namespace

KINDS = tuple(LawKind)


@dataclass(frozen=True)
class Law:
    """One conservation law (a vector, scalar or matrix form) of one symmetry family.

    ``order`` 2: a quadratic form Q. ``order`` 1 (translation): a linear form
    h_i(theta) = sum_v alpha_v sum(P_v[i]). Either way, for any update Delta,
    h(theta + Delta) - h(theta) = first(theta, Delta) + second(Delta), with
    first = Dh(theta)[Delta] (2 B(theta, Delta), or h(Delta)) and second = Q(Delta)
    (or 0), and the law holds under gradient flow because first(theta, grad L) = 0.
    """

    name: str
    kind: LawKind
    terms: tuple[Term, ...]
    formula: str = ""
    family: Family = Family.RESCALE
    order: int = 2
    batch_sum: bool = False  # its gradient vanishes only as a sum over the batch (`Rescaling.batch_sum`)
    classes: int = 0  # a unit law's sign classes of one region (`Rescaling.classes`, `flowlaws.invariants.regions`)
    blocks: int = 1  # a matrix law's diagonal blocks: units mix within that many equal groups (`Rescaling.blocks`)
    centred: bool = False  # a matrix law seen on the centred plane: C G C, C = d I - 1 1^T (`Rescaling.centred`)
    projected: bool = False  # across a normalization passed as a linear map (`Rescaling.projected`)

    def __post_init__(self):
        """Every slice of a unit or matrix law has the same units: unit i's sums pair unit
        i's slices (a slice of fewer units would be broadcast, counted once per unit: no
        law). A layer law sums each slice whole, each entry once (a bias shared by all the
        units is one slice of one unit)."""
        units = {t.view.units for t in self.terms}
        if len(units) > 1 and self.kind is not LawKind.LAYER:
            raise ValueError(f"{self.name}: its slices have {sorted(units)} units; a declaration gave a law "
                             "slices of different unit counts")

    def _gram(self, a, b, absolute: bool = False):
        """sum_v alpha_v P_v(a) P_v(b)^T as the law's kind reduces it (numpy, autograd, or
        torch tensors: on their own device, in their dtype)."""
        xp: Any = namespace(b[self.terms[0].view.param])
        plain = xp is np and all(isinstance(p, np.ndarray) for p in (*a, *b))  # skips autograd's wrappers
        flat = xp in (np, anp) or self.kind is LawKind.MATRIX  # torch sums a moved slice in place
        G: Any = 0.0
        for term in self.terms:
            Pb = term.view.rows(b, flat)
            weight = abs(term.weight) if absolute else term.weight
            if self.kind is LawKind.SUMMED:  # <1^T P_v(a), 1^T P_v(b)>
                G = G + weight * xp.sum(_unit_sums(xp, term.view.rows(a, flat)) * _unit_sums(xp, Pb))
                continue
            if self.order == 1:
                sums = _row_sums(xp, Pb)
                G = G + weight * (xp.sum(sums) if self.kind is LawKind.LAYER else sums)
                continue
            Pa = term.view.rows(a, flat)
            pairs = (Pa @ Pb.T if self.kind is LawKind.MATRIX
                     else xp.einsum("ij,ij->i", Pa, Pb) if plain
                     else _row_squares(xp, Pa) if a is b else _row_sums(xp, Pa * Pb))
            G = G + weight * (xp.sum(pairs) if self.kind is LawKind.LAYER else pairs)
        if self.kind is LawKind.MATRIX:
            G = within_blocks(xp, 0.5 * (G + G.T), self.blocks)
            if self.centred:
                G = centred(G, absolute)
        return G

    def value(self, params):
        """Q(theta), or h(theta) for a linear law."""
        return self._gram(params, params)

    def bilinear(self, params, u):
        """B(theta, u), the symmetric bilinear form with B(theta, theta) = Q(theta) (a
        linear law: h(u) / 2, so that first = 2 B holds for both orders)."""
        return self._gram(params, u) / (2.0 if self.order == 1 else 1.0)

    def first(self, params, u):
        """Dh(theta)[u]: the first-order change along u (zero along the gradient)."""
        return 2.0 * self.bilinear(params, u)

    def second(self, u):
        """The rest of h(theta + u) - h(theta): Q(u), or 0 for a linear law."""
        return self.value(u) if self.order == 2 else 0.0 * self._gram(u, u)

    def magnitude(self, a, b):
        """For non-negative a, b: the same sums with every exponent's absolute value, the
        round-off scale of B(a, b) (of h(b) for a linear law)."""
        return self._gram(a, b, absolute=True)

    def first_magnitude(self, a, b):
        """For non-negative a, b: the round-off scale of first(a, b)."""
        return self.order * self.magnitude(a, b)

    @property
    def incoming(self) -> tuple[View, ...]:
        """Views with a positive exponent (the side that grows with c)."""
        return tuple(t.view for t in self.terms if t.weight > 0)

    @property
    def outgoing(self) -> tuple[View, ...]:
        return tuple(t.view for t in self.terms if t.weight < 0)

    @property
    def k(self) -> float:
        """The weight of the outgoing side (the degree k of ||in||^2 - k||out||^2)."""
        return -min(t.weight for t in self.terms)

    @property
    def params(self) -> tuple[int, ...]:
        return tuple(sorted({t.view.param for t in self.terms}))

    def to_json(self) -> dict:
        return {"name": self.name, "kind": self.kind, "family": self.family, "order": self.order,
                "k": self.k, "formula": self.formula,
                "params": [t.view.name for t in self.terms],
                "weights": [t.weight for t in self.terms], "sign_classes": self.classes, "centred": self.centred}


def within_blocks(xp, G, blocks: int):
    """G with every entry outside its ``blocks`` diagonal blocks set to 0."""
    if blocks == 1:
        return G
    size = G.shape[0] // blocks
    mask = np.kron(np.eye(blocks), np.ones((size, size)))
    return G * (mask if xp in (np, anp) else xp.as_tensor(mask, dtype=G.dtype, device=G.device))


def _unit_sums(xp, P):
    """1^T P: the sum of the rows (numpy, autograd or torch)."""
    return xp.sum(P, axis=0) if xp in (np, anp) else P.sum(0)


def _row_squares(xp, P):
    """Each row's sum of squares (a torch slice by its norm: no product is stored)."""
    if xp in (np, anp):
        return xp.sum(P * P, axis=1)
    return xp.linalg.vector_norm(P, dim=tuple(range(1, P.dim()))) ** 2 if P.dim() > 1 else P * P


def _row_sums(xp, P):
    """Each row's sum (a torch slice may keep several axes)."""
    if xp in (np, anp):
        return xp.sum(P, axis=1)
    return P.sum(dim=tuple(range(1, P.dim()))) if P.dim() > 1 else P  # (torch sums every axis for dim=())


def _formula(kind, terms, specs, order: int = 2) -> str:
    """Q_i (unit), Σᵢ Q_i (layer), entry [i, j] of the matrix, or its sum (summed), on named
    slices (a linear law: the sum of each slice's entries)."""

    def slice_of(view, unit="i"):
        shape = specs[view.param][1]
        return view.describe(len(shape), shape[view.axis], unit)

    units = max(t.view.units for t in terms)
    whole = [t for t in terms if t.view.units < units]  # a layer law's slices shared by every unit
    terms = [t for t in terms if t.view.units == units]
    parts = []
    for t in terms:
        vector = len(specs[t.view.param][1]) > 1
        if order == 1:
            square = f"Σ {slice_of(t.view)}" if vector or t.view.size != t.view.units else slice_of(t.view)
        elif kind is LawKind.MATRIX:
            a, b = slice_of(t.view), slice_of(t.view, "j")
            square = f"⟨{a}, {b}⟩" if vector else f"{a}·{b}"
        elif kind is LawKind.SUMMED:
            square = f"‖Σᵢ {slice_of(t.view)}‖²" if vector else f"(Σᵢ {slice_of(t.view)})²"
        else:
            square = f"‖{slice_of(t.view)}‖²" if vector else f"{slice_of(t.view)}²"
        parts.append(_signed(t.weight) + square)
    text = " ".join(parts)
    text = text[2:] if text.startswith("+ ") else text
    names = (specs[t.view.param][0] for t in whole)
    shared = "".join(f" {_signed(t.weight)}{f'Σ {name}' if order == 1 else f'‖{name}‖²'}"
                     for t, name in zip(whole, names, strict=True))
    return {LawKind.UNIT: text, LawKind.LAYER: f"Σᵢ ({text}){shared}" if shared else f"Σᵢ {text}",
            LawKind.MATRIX: f"[i,j] = {text}", LawKind.SUMMED: text}[kind]


def _signed(weight: float) -> str:
    """"+ " or "− ", and |weight| unless it is 1."""
    return ("+ " if weight > 0 else "− ") + ("" if abs(weight) == 1 else f"{abs(weight):g}·")


PREFIX = {Family.RESCALE: "", Family.SCALE: "scale ", Family.TRANSLATION: "translation ", Family.GL: "gl "}


@lru_cache(maxsize=1024)
def laws(model, loss=None) -> tuple[Law, ...]:
    """Every law derived from the model's symmetries (``model.rescalings()``) and, when
    ``loss`` has one, the loss's (softmax cross-entropy: translation of the last layer,
    docs/theory.md 6.1). Per symmetry: unit and layer laws (a layer law alone when one
    c must serve every unit), and a matrix law where any mixing of the units is one.
    Cached: models and losses are immutable, and a check derives them for every case.

    >>> from flowlaws.models import parse
    >>> [law.name for law in laws(parse("mlp:2-3-2:linear"))]
    ['unit dense0/dense1', 'layer dense0/dense1', 'matrix dense0/dense1']
    """
    specs = model.param_specs
    symmetries = [*model.rescalings(), *_loss_symmetries(model, loss)]
    out = []
    for r in symmetries:
        kinds: tuple[LawKind, ...] = ((LawKind.LAYER,) if r.uniform else (LawKind.UNIT,)
                                      if r.family is Family.TRANSLATION else (LawKind.UNIT, LawKind.LAYER))
        if r.linear and r.degree == 1 and not r.uniform and r.order == 2 and r.blocks < r.units:
            kinds += (LawKind.MATRIX,)  # (blocks of one unit each: the unit laws)
        if r.summed:
            kinds = (LawKind.SUMMED,)
        if r.projected:
            kinds = (LawKind.MATRIX,)  # (no unit scaling passes a normalization)
        for kind in kinds:
            blocks = r.blocks if kind is LawKind.MATRIX else 1
            formula = _formula(kind, r.terms, specs, r.order) + (
                f" for i, j in one of {blocks} groups" if blocks > 1 else "")
            if r.centred:
                formula = f"C G C, C = {r.units}·I − 1 1ᵀ, G{formula}"
            out.append(Law(f"{PREFIX[r.family]}{kind} {r.name}", kind, r.terms, formula, r.family, r.order,
                           r.batch_sum, r.classes if kind is LawKind.UNIT else 0, blocks, r.centred, r.projected))
    return tuple(out)


def _loss_symmetries(model, loss):
    from flowlaws.losses import loss as as_loss

    if loss is None or not hasattr(model, "site"):
        return ()
    return as_loss(loss).symmetries(model)


def candidate_laws(model, loss=None) -> tuple[Law, ...]:
    """The laws the paper would assign if every activation were positively homogeneous
    (non-homogeneous ones read as ReLU): what an expected break (tanh ...) and
    `flowlaws explore` check. Names are those `laws` prints."""
    from flowlaws.models import Activation

    homogeneous = all(a.degree is not None for a in getattr(model, "activations", ()))
    return laws(model if homogeneous else model.with_activation(Activation("relu")), loss)


def skip_ignored_laws(model) -> tuple[Law, ...]:
    """The laws of the same parameters with every residual block inlined: the plain
    law of a unit feeding a skip connection, which is NOT conserved (break-skip)."""
    return tuple(dataclasses.replace(law, name=f"{law.name} (skip ignored)")
                 for law in laws(model.without_skips()))


def without_bias(law: Law) -> Law:
    """The same law with the bias slices dropped (a false law, docs/theory.md 3.2)."""
    kept = tuple(t for t in law.terms if not (t.weight > 0 and t.view.name.endswith(".b")))
    return dataclasses.replace(law, name=f"{law.name} (no bias)", terms=kept)


def per_axis_entry(law: Law, specs) -> Law:
    """A law of one kernel entry per unit over a range of an axis (taps that meet only
    padding, `Conv.padding_taps`) as one unit per entry of that range, the sum of the
    entries it holds: sums of laws are laws, and a monitor then keeps a few sums per tap
    rather than one per entry (a ResNet-18 on 32x32 images has 6.9M such entries). Any
    other law is returned as it is (``specs``: the model's (name, shape) per parameter)."""
    views = [t.view for t in law.terms]
    if not all(v.span and v.units > v.span for v in views):
        return law
    terms = tuple(dataclasses.replace(t, view=dataclasses.replace(t.view, units=t.view.span)) for t in law.terms)
    formula = _formula(law.kind, terms, specs, law.order)
    return dataclasses.replace(law, terms=terms, formula=formula)


def rowwise(law: Law) -> Law:
    """A layer law read per row (false under LayerNorm, whose scale symmetry needs one c
    for the whole layer: docs/theory.md 6.2)."""
    return dataclasses.replace(law, name=f"{law.name.replace('layer', 'unit', 1)} (per row)", kind=LawKind.UNIT)


def one_to_one(law: Law) -> Law:
    """The same law with k forced to 1 (false for degree-k activations, docs/theory.md 3.4)."""
    terms = tuple(dataclasses.replace(t, weight=float(np.sign(t.weight))) for t in law.terms)
    return dataclasses.replace(law, name=f"{law.name} (1:1)", terms=terms)


def independent_count(model, law_list=None, seed: int = 0) -> int:
    """How many scalar laws are functionally independent: the rank of their joint
    Jacobian at a generic (seeded Gaussian) point, computed exactly while that Jacobian is
    small (NUMERIC_LIMIT entries), else from the structure (`structural_count`)."""
    from flowlaws.invariants.stacked import Stacked
    from flowlaws.models.symmetry import flatten

    law_list = laws(model) if law_list is None else law_list
    if not law_list:
        return 0
    shapes = [shape for _, shape in model.param_specs]
    D = sum(int(np.prod(s)) for s in shapes)
    components = sum(_components(law) for law in law_list)
    if D * components > NUMERIC_LIMIT:
        return structural_count(law_list, shapes)
    point = flatten(model.init(np.random.default_rng(seed)))
    J = Stacked(law_list, shapes).jacobian(point)  # a matrix law's rows come twice: the rank is the same
    s = np.linalg.svd(J, compute_uv=False)
    return int(np.sum(s > max(J.shape) * np.finfo(float).eps * 1e3 * s[0]))


NUMERIC_LIMIT = 4_000_000


def _components(law: Law) -> int:
    units = law.terms[0].view.units
    size = units // law.blocks - law.centred  # (the centred plane has one dimension less)
    return {LawKind.UNIT: units, LawKind.LAYER: 1, LawKind.MATRIX: law.blocks * size * (size + 1) // 2,
            LawKind.SUMMED: 1}[law.kind]


def structural_count(law_list, shapes) -> int:
    """The count from the laws' structure (``shapes``: the model's parameter shapes).

    Quadratic laws of different rescalings are independent (each has slices of its own);
    within one, a matrix law P P^T - O O^T over u units with m_in incoming and m_out
    outgoing columns has u(u+1)/2 - s(s+1)/2 independent entries, s = max(0, u - m_in -
    m_out) (the two-layer linear count, docs/theory.md 4; u - 1 on a centred plane; one less
    across a normalization passed as a linear map when the writer has a scale law, which
    with the reader's gives the trace), else its u unit laws are
    independent, and a lone layer law counts 1. Linear laws can share entries (the row
    sums and the column sums of one matrix, from shifts on both sides of it, have one
    sum in common), so they count by `_linear_rank`. Tests check the total against the
    numeric rank on small nets."""
    linear = [law for law in law_list if law.order == 1]
    groups: dict = {}
    blocks: dict = {}
    centred: set = set()
    projected: set = set()
    scaled = {t.view for law in law_list if law.family is Family.SCALE for t in law.terms}
    for law in law_list:
        if law.order == 2:
            groups.setdefault(law.terms, set()).add(law.kind)
            blocks[law.terms] = max(blocks.get(law.terms, 1), law.blocks)
            if law.centred:
                centred.add(law.terms)
            if law.projected:
                projected.add(law.terms)
    total = _linear_rank(linear, shapes)
    for terms, kinds in groups.items():
        units = terms[0].view.units
        if LawKind.MATRIX in kinds:  # per diagonal block of u units (one block: the whole matrix)
            def width(sign, terms=terms):
                return sum(_columns(t.view, shapes[t.view.param]) for t in terms if np.sign(t.weight) == sign)

            u = units // blocks[terms] - (terms in centred)  # (the centred plane: one dimension less)
            s = max(0, u - width(1) - width(-1))
            # across a normalization passed as a linear map, the trace is the writer's scale law's
            total += blocks[terms] * (u * (u + 1) // 2 - s * (s + 1) // 2) - (
                terms in projected and any(t.view in scaled for t in terms if t.weight > 0))
        else:
            total += units if LawKind.UNIT in kinds else 1
    return total


def _linear_rank(law_list, shapes) -> int:
    """How many of the linear laws' scalars are independent: each is a weighted indicator
    of parameter entries, sum_v alpha_v sum(P_v[i]) (a layer law: of all its units), the
    rows of `Stacked`'s linear part L; the count is the rank of L, taken from the Gram
    matrix L L^T (one row per scalar: small, while L has a column per parameter entry).
    A row of one entry (an entry conserved alone: a kernel tap that meets only padding)
    spans that entry's axis: such rows count once per entry, the others' rank is taken
    without those entries."""
    from flowlaws.invariants.stacked import Stacked

    if not law_list:
        return 0
    L = Stacked(law_list, shapes).L
    L.eliminate_zeros()
    alone = L.getnnz(axis=1) == 1
    entries = np.unique(L[alone].indices)
    rest = L[~alone]
    rest = rest[:, np.setdiff1d(np.arange(L.shape[1]), entries)]
    return len(entries) + (int(np.linalg.matrix_rank((rest @ rest.T).toarray())) if rest.shape[0] else 0)


def _columns(view: View, shape) -> int:
    """Entries per unit of a view (its row length); set by the model's shapes."""
    if view.span:  # its range of the axis: span of the axis's entries, times the other axes'
        return view.size // shape[view.axis] * view.span // view.units
    return view.size // view.units
