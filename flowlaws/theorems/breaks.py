"""Expected breaks: each drops one hypothesis, and checking confirms the law fails."""

from __future__ import annotations

from flowlaws.checking import Level
from flowlaws.flows.optimizers import OPTIMIZERS
from flowlaws.invariants import LawKind, candidate_laws, one_to_one, rowwise
from flowlaws.models import NON_HOMOGENEOUS
from flowlaws.models.symmetry import Family
from flowlaws.theorems.core import _NORMALIZED, HOM, Theorem, arch
from flowlaws.theorems.hypotheses import (
    COMBINES_GRADIENTS,
    DEGREE_ONE,
    HAS_BIAS,
    HOMOGENEOUS_ACTS,
    NO_SKIP,
    OWN_GROUPS,
    PLAIN_DESCENT,
    SHIFT_INVARIANT,
)
from flowlaws.theorems.selections import _biased, _of_family, _of_kind, _skip_ignored

BREAKING_OPTIMIZERS = {
    "momentum": "heavy-ball momentum",
    "nesterov": "Nesterov momentum",
    "adam": "Adam",
    "rmsprop": "RMSProp",
    "signgd": "sign-GD",
}


def theorems() -> list[Theorem]:
    out = [
        Theorem(
            id="break-translation-square",
            title="A square loss has no translation law",
            statement="with the square loss, the column sums 1^T W of the last layer (the softmax translation laws) "
            "are NOT conserved: the loss changes when every output shifts alike",
            reference="docs/theory.md 6.1",
            space={**arch(kinds=("mlp",), activations=HOM), "losses": {"names": ("square",)}},
            laws=_of_family(Family.TRANSLATION, loss="cross_entropy"),
            levels=(Level.POINTWISE,),
            expect="breaks",
            broken=SHIFT_INVARIANT.name,
        ),
        Theorem(
            id="break-translation-adam",
            title="Adam breaks the translation laws",
            statement="under Adam, h(theta+) != h(theta) for the softmax translation laws: each coordinate is "
            "rescaled, so the step is not a combination of gradients",
            reference="docs/theory.md 6.1; Kunin et al., ICLR 2021",
            space={  # 2 classes: Adam moves +g and -g alike and keeps the sums (docs/theory.md 6.1)
                **arch(kinds=("mlp",), activations=HOM, outputs=(3, 4)),
                "losses": {"names": ("cross_entropy",)},
                "steps": 3,
                "optimizers": {"names": ("adam",), "lr": (0.01, 0.1)},
            },
            laws=_of_family(Family.TRANSLATION),
            levels=(Level.STEP,),
            expect="breaks",
            prediction="gd",
            broken=COMBINES_GRADIENTS.name,
        ),
        Theorem(
            id="break-layernorm-rowwise",
            title="LayerNorm has no per-row scale law",
            statement="with LayerNorm, ||W[i,:]||^2 + b_i^2 of one row is NOT conserved: only the whole layer's norm "
            "is (its scale symmetry needs one c for every row)",
            reference="docs/theory.md 6.2",
            space={**arch(kinds=("layernorm",), activations=HOM), **_NORMALIZED},
            laws=_of_family(Family.SCALE, transform=rowwise, uniform=True),
            levels=(Level.POINTWISE,),
            expect="breaks",
            broken=OWN_GROUPS.name,
        ),
    ]
    for name in NON_HOMOGENEOUS:
        out.append(
            Theorem(
                id=f"break-{name}",
                title=f"{name} breaks the law",
                statement=f"with {name} the neuron-wise law is NOT conserved: B(theta, grad L) != 0",
                reference="docs/theory.md 1 and 3.7; Zhao et al. ICLR 2023",
                space=arch(kinds=("mlp",), activations=(name,), bias=False),
                laws=_of_kind(LawKind.UNIT, candidate_laws),
                levels=(Level.POINTWISE,),
                expect="breaks",
                broken=HOMOGENEOUS_ACTS.name,
            )
        )
    out += [
        Theorem(
            id="break-relu2",
            title="The 1:1 law fails for ReLU^2",
            statement="with relu_power(2), ||in||^2 - ||out||^2 is NOT conserved (the law is ||in||^2 - 2||out||^2)",
            reference="docs/theory.md 3.4",
            space=arch(kinds=("mlp",), activations=("relu_power",)),
            laws=_of_kind(LawKind.UNIT, transform=one_to_one),
            levels=(Level.POINTWISE,),
            expect="breaks",
            broken=DEGREE_ONE.name,
        ),
        Theorem(
            id="break-no-bias",
            title="Forgetting the bias breaks the law",
            statement="||W_h[i,:]||^2 - ||W_h+1[:,i]||^2 without b_h[i]^2 is NOT conserved",
            reference="docs/theory.md 3.2",
            space=arch(kinds=("mlp",), bias=True),
            laws=_biased,
            levels=(Level.POINTWISE,),
            expect="breaks",
            broken=HAS_BIAS.name,
        ),
        Theorem(
            id="break-skip",
            title="A skip connection breaks the unit's law",
            statement="a unit whose output also feeds a skip connection does NOT conserve its law",
            reference="docs/theory.md 3.7; Marcotte et al. ICML 2025",
            space=arch(kinds=("residual",)),
            laws=_skip_ignored,
            levels=(Level.POINTWISE,),
            expect="breaks",
            broken=NO_SKIP.name,
        ),
        Theorem(
            id="break-weight-decay",
            title="Weight decay breaks the plain law",
            statement="with weight decay, Q(theta+) - Q(theta) != Q(Delta): the law decays",
            reference="docs/theory.md 3.3; Kunin et al. ICLR 2021",
            space={
                **arch(kinds=("mlp",)),
                "steps": 2,
                "optimizers": {"names": ("gd",), "weight_decay": 0.1, "lr": (0.01, 0.1)},
            },
            laws=_of_kind(LawKind.UNIT),
            levels=(Level.STEP,),
            expect="breaks",
            broken=PLAIN_DESCENT.name,
        ),
    ]
    for name, title in BREAKING_OPTIMIZERS.items():
        reason = OPTIMIZERS[name].breaks
        out.append(
            Theorem(
                id=f"break-{name}",
                title=f"{title} breaks the law at first order",
                statement=f"under {title}, Delta Q has a first-order part 2 B(theta, Delta) != 0: {reason}",
                reference="docs/theory.md 3.3 and 6.4; Marcotte et al. 2024, 2025",
                space={**arch(kinds=("mlp",)), "steps": 3, "optimizers": {"names": (name,), "lr": (0.01, 0.1)}},
                laws=_of_kind(LawKind.UNIT),
                levels=(Level.STEP,),
                expect="breaks",
                broken=PLAIN_DESCENT.name,
            )
        )
    return out
