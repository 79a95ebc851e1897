"""Conservation laws derived from a model's rescaling symmetries (THEORY 3).

A law is a quadratic form Q(theta) built from two lists of parameter views,
incoming P (units x m) and outgoing O (units x m'), with G(a, b) = P(a) P(b)^T - k O(a) O(b)^T:

- ``unit``   Q_i = ||P_i||^2 - k ||O_i||^2 for every unit i (Thm 2.1; with the bias,
  THEORY 3.2; degree-k activations, 3.4; conv channels, 3.5)  -> diag G
- ``layer``  sum over units (Cor 2.1; Thm 2.3 for convolutions)  -> trace G
- ``matrix`` P P^T - O O^T across a linear boundary (Thm 2.2, THEORY 3.6)  -> G

Its bilinear form B(a, b) is the symmetric part of G(a, b), so that for any update
Q(theta + Delta) - Q(theta) = 2 B(theta, Delta) + Q(Delta) (THEORY 3.3), and gradient
flow conserves Q because B(theta, grad L(theta)) = 0 (THEORY 3.1).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import autograd.numpy as anp
import numpy as np

from flowlaws.models.symmetry import View

KINDS = ("unit", "layer", "matrix")


@dataclass(frozen=True)
class Law:
    """One conservation law (a vector, scalar or matrix quadratic form)."""

    name: str
    kind: str
    incoming: tuple[View, ...]
    outgoing: tuple[View, ...]
    k: float = 1.0
    formula: str = ""

    def _gram(self, a, b, absolute: bool = False):
        def rows(views, params):
            blocks = [view.rows(params) for view in views]
            blocks = [anp.abs(x) for x in blocks] if absolute else blocks
            return blocks[0] if len(blocks) == 1 else anp.concatenate(blocks, axis=1)

        sign = 1.0 if absolute else -1.0
        Pa, Pb = rows(self.incoming, a), rows(self.incoming, b)
        Oa, Ob = rows(self.outgoing, a), rows(self.outgoing, b)
        if self.kind == "matrix":
            G = anp.dot(Pa, Pb.T) + sign * self.k * anp.dot(Oa, Ob.T)
            return 0.5 * (G + G.T)
        diag = anp.sum(Pa * Pb, axis=1) + sign * self.k * anp.sum(Oa * Ob, axis=1)
        return diag if self.kind == "unit" else anp.sum(diag)

    def value(self, params):
        """Q(theta)."""
        return self._gram(params, params)

    def bilinear(self, params, u):
        """B(theta, u), the symmetric bilinear form with B(theta, theta) = Q(theta)."""
        return self._gram(params, u)

    def magnitude(self, a, b):
        """The same sums with every term's absolute value: the round-off scale of B(a, b)."""
        return self._gram(a, b, absolute=True)

    @property
    def params(self) -> tuple[int, ...]:
        return tuple(sorted({v.param for v in (*self.incoming, *self.outgoing)}))

    def to_json(self) -> dict:
        return {"name": self.name, "kind": self.kind, "k": self.k, "formula": self.formula,
                "params": [v.name for v in (*self.incoming, *self.outgoing)]}


def _formula(kind, incoming, outgoing, k, specs) -> str:
    def side(views):
        terms = []
        for v in views:
            shape = specs[v.param][1]
            part = v.describe(len(shape), shape[v.axis])
            terms.append(f"{part}²" if len(shape) == 1 else f"‖{part}‖²")
        return " + ".join(terms)

    weight = "" if k == 1 else f"{k:g}·"
    if kind == "matrix":
        return f"P·Pᵀ − {weight}O·Oᵀ with rows Pᵢ = {side(incoming)[:-1]}, Oᵢ = {side(outgoing)[:-1]}"
    text = f"{side(incoming)} − {weight}{'(' + side(outgoing) + ')' if k != 1 else side(outgoing)}"
    return text if kind == "unit" else f"Σᵢ {text}"


def laws(model) -> tuple[Law, ...]:
    """Every law derived from ``model.rescalings()``: unit and layer laws for each
    rescaling, and a matrix law where the boundary is linear with degree 1.

    >>> from flowlaws.models import parse
    >>> [law.name for law in laws(parse("mlp:2-3-2:linear"))]
    ['unit dense0/dense1', 'layer dense0/dense1', 'matrix dense0/dense1']
    """
    specs = model.param_specs
    out = []
    for r in model.rescalings():
        kinds = ("unit", "layer") + (("matrix",) if r.linear and r.degree == 1 else ())
        for kind in kinds:
            out.append(Law(f"{kind} {r.name}", kind, r.incoming, r.outgoing, float(r.degree),
                           _formula(kind, r.incoming, r.outgoing, r.degree, specs)))
    return tuple(out)


def candidate_laws(model) -> tuple[Law, ...]:
    """The laws the paper would assign if every activation were ReLU and no skip path
    existed: what an expected break (tanh, a skip connection ...) is checked against."""
    from flowlaws.models.activations import Activation

    plain = model.without_skips()
    homogeneous = all(a.degree is not None for a in plain.activations)
    return laws(plain if homogeneous else plain.with_activation(Activation("relu")))


def without_bias(law: Law) -> Law:
    """The same law with the bias slices dropped (a false law, THEORY 3.2)."""
    kept = tuple(v for v in law.incoming if not v.name.endswith(".b"))
    return dataclasses.replace(law, name=f"{law.name} (no bias)", incoming=kept)


def one_to_one(law: Law) -> Law:
    """The same law with k forced to 1 (false for degree-k activations, THEORY 3.4)."""
    return dataclasses.replace(law, name=f"{law.name} (1:1)", k=1.0)


def scalar_components(law_list, params):
    """Every independent scalar entry of the laws (unit entries, matrix upper triangles)."""
    parts = []
    for law in law_list:
        value = law.value(params)
        if law.kind == "unit":
            parts.append(value)
        elif law.kind == "matrix":
            parts.append(value[np.triu_indices(value.shape[0])])
    return anp.concatenate(parts) if parts else anp.zeros(0)


def independent_count(model, law_list=None, seed: int = 0) -> int:
    """How many scalar laws are functionally independent: the rank of their joint
    Jacobian at a generic (seeded Gaussian) point."""
    from autograd import jacobian

    from flowlaws.models.symmetry import flatten, unflatten

    law_list = laws(model) if law_list is None else law_list
    if not law_list:
        return 0
    shapes = [shape for _, shape in model.param_specs]
    point = flatten(model.init(np.random.default_rng(seed)))
    J = jacobian(lambda v: scalar_components(law_list, unflatten(v, shapes)))(point)
    if J.size == 0:
        return 0
    s = np.linalg.svd(J, compute_uv=False)
    return int(np.sum(s > max(J.shape) * np.finfo(float).eps * 1e3 * s[0]))
