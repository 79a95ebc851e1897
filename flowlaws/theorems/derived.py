"""Laws the walker derives beyond the paper: skip connections, every composition of layer
kinds, and completeness against discovery."""

from __future__ import annotations

from flowlaws.checking import Level
from flowlaws.discover import completeness
from flowlaws.theorems.core import _FLOW, _NORMALIZED, HOM, Theorem, arch
from flowlaws.theorems.hypotheses import (
    DEGREE_ONE,
    HOMOGENEOUS_ACTS,
    NO_GROUPED_LINEAR_BOUNDARY,
    NO_PLANE_ROTATION,
    NO_POOLED_LAST_AXIS,
    NO_SCALAR_FED_LINEAR,
)
from flowlaws.theorems.selections import _all_laws, _every_law


def theorems() -> list[Theorem]:
    return [
        Theorem("skip", "Laws across skip connections",
                "for a unit feeding residual blocks y = u + B2 phi(B1 u): d/dt (||W0[i,:]||^2 + ||B2[i,:]||^2 "
                "- ||B1[:,i]||^2 - ||W_next[:,i]||^2) = 0 (blocks in a row chain), and the block's own units "
                "keep their law",
                "docs/theory.md 3.7 (derived)",
                {**arch(kinds=("residual",), activations=HOM), **_FLOW},
                _all_laws, (Level.POINTWISE, Level.FLOW), (HOMOGENEOUS_ACTS, DEGREE_ONE)),
        Theorem("composition", "Every layer kind's declaration composes with every other",
                "on a chain of layers each drawn from the kinds that fit the shape so far (every adjacency the "
                "spec language allows), every derived law, of every family, is conserved by gradient flow: "
                "B(theta, grad L) = 0 and Q(theta(T)) = Q(theta(0))",
                "docs/theory.md 3 and 6 (the walker composes the layers' declarations)",
                {**arch(kinds=("mixed",), activations=HOM), **_NORMALIZED, **_FLOW},
                _every_law, (Level.POINTWISE, Level.FLOW), ()),
        Theorem("laws-complete", "The derived laws are all the laws",
                "the laws derived from the symmetries are exactly the conservation laws numeric discovery "
                "finds (D - dim Lie(W)), or the difference is a documented known extra",
                "Marcotte, Gribonval, Peyre, NeurIPS 2023; docs/theory.md 4 and 7",
                arch(activations=("relu", "leaky_relu", "abs", "linear", "prelu")),
                _all_laws, (Level.COMPLETE,), (NO_PLANE_ROTATION, NO_SCALAR_FED_LINEAR, NO_POOLED_LAST_AXIS,
                                           NO_GROUPED_LINEAR_BOUNDARY),
                decide=completeness),
    ]
