"""Laws the walker derives beyond the paper: skip connections, every composition of layer
kinds, and completeness against discovery."""

from __future__ import annotations

from flowlaws.checking import Level
from flowlaws.discover import completeness
from flowlaws.theorems.core import _FLOW, _NORMALIZED, HOM, Theorem, arch
from flowlaws.theorems.hypotheses import (
    DEGREE_ONE,
    HOMOGENEOUS_ACTS,
    NO_ALIASED_TAPS,
    NO_COPIES,
    NO_DROPPED_CHANNELS,
    NO_LEARNED_OFFSET,
    NO_MOVED_GROUPS,
    NO_POOLED_LAST_AXIS,
    NO_POSITION_RAMP,
    NO_SCALAR_FED_LINEAR,
    NO_SHARED_BIAS_MIXING,
    NO_TAP_CLASSES,
    NO_UNFOLLOWED_RANGE,
    ONEHOT_INPUT,
    ONEHOT_ROWS_APART,
)
from flowlaws.theorems.selections import _all_laws, _every_law


def theorems() -> list[Theorem]:
    return [
        Theorem(
            id="skip",
            title="Laws across skip connections",
            statement="for a unit feeding residual blocks y = u + B2 phi(B1 u): d/dt (||W0[i,:]||^2 + ||B2[i,:]||^2 "
            "- ||B1[:,i]||^2 - ||W_next[:,i]||^2) = 0 (blocks in a row chain), and the block's own units "
            "keep their law",
            reference="docs/theory.md 3.7 (derived)",
            space={**arch(kinds=("residual",), activations=HOM), **_FLOW},
            laws=_all_laws,
            levels=(Level.POINTWISE, Level.FLOW),
            hypotheses=(HOMOGENEOUS_ACTS, DEGREE_ONE),
        ),
        Theorem(
            id="composition",
            title="Every layer kind's declaration composes with every other",
            statement="on a chain of layers each drawn from the kinds that fit the shape so far (every adjacency the "
            "spec language allows), every derived law, of every family, is conserved by gradient flow: "
            "B(theta, grad L) = 0 and Q(theta(T)) = Q(theta(0))",
            reference="docs/theory.md 3 and 6 (the walker composes the layers' declarations)",
            space={**arch(kinds=("mixed",), activations=HOM), **_NORMALIZED, **_FLOW},
            laws=_every_law,
            levels=(Level.POINTWISE, Level.FLOW),
            hypotheses=(),
        ),
        Theorem(
            id="laws-complete",
            title="The derived laws are all the laws",
            statement="the laws derived from the symmetries are exactly the conservation laws numeric discovery "
            "finds (D - dim Lie(W)), or the difference is a documented known extra",
            reference="Marcotte, Gribonval, Peyre, NeurIPS 2023; docs/theory.md 4 and 7",
            space=arch(activations=("relu", "leaky_relu", "abs", "linear", "prelu")),
            laws=_all_laws,
            levels=(Level.COMPLETE,),
            hypotheses=(NO_SCALAR_FED_LINEAR, NO_POOLED_LAST_AXIS,
                        NO_LEARNED_OFFSET, NO_ALIASED_TAPS, NO_SHARED_BIAS_MIXING, NO_POSITION_RAMP,
                        NO_TAP_CLASSES, NO_COPIES, NO_MOVED_GROUPS, NO_DROPPED_CHANNELS, NO_UNFOLLOWED_RANGE,
                        ONEHOT_INPUT, ONEHOT_ROWS_APART),
            decide=completeness,
        ),
    ]
