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

BREAKING_OPTIMIZERS = {"momentum": "heavy-ball momentum", "nesterov": "Nesterov momentum", "adam": "Adam",
                       "rmsprop": "RMSProp", "signgd": "sign-GD"}


def theorems() -> list[Theorem]:
    out = [
        Theorem("break-translation-square", "A square loss has no translation law",
                "with the square loss, the column sums 1^T W of the last layer (the softmax translation laws) "
                "are NOT conserved: the loss changes when every output shifts alike",
                "docs/theory.md 6.1", {**arch(kinds=("mlp",), activations=HOM), "losses": {"names": ("square",)}},
                _of_family(Family.TRANSLATION, loss="cross_entropy"), (Level.POINTWISE,), expect="breaks",
                broken=SHIFT_INVARIANT.name),
        Theorem("break-translation-adam", "Adam breaks the translation laws",
                "under Adam, h(theta+) != h(theta) for the softmax translation laws: each coordinate is rescaled, "
                "so the step is not a combination of gradients",
                "docs/theory.md 6.1; Kunin et al., ICLR 2021",
                {**arch(kinds=("mlp",), activations=HOM), "losses": {"names": ("cross_entropy",)}, "steps": 3,
                 "optimizers": {"names": ("adam",), "lr": (0.01, 0.1)}},
                _of_family(Family.TRANSLATION), (Level.STEP,), expect="breaks", prediction="gd",
                broken=COMBINES_GRADIENTS.name),
        Theorem("break-layernorm-rowwise", "LayerNorm has no per-row scale law",
                "with LayerNorm, ||W[i,:]||^2 + b_i^2 of one row is NOT conserved: only the whole layer's norm "
                "is (its scale symmetry needs one c for every row)",
                "docs/theory.md 6.2", {**arch(kinds=("layernorm",), activations=HOM), **_NORMALIZED},
                _of_family(Family.SCALE, transform=rowwise, uniform=True), (Level.POINTWISE,), expect="breaks",
                broken=OWN_GROUPS.name),
    ]
    for name in NON_HOMOGENEOUS:
        out.append(Theorem(
            f"break-{name}", f"{name} breaks the law",
            f"with {name} the neuron-wise law is NOT conserved: B(theta, grad L) != 0",
            "docs/theory.md 1 and 3.7; Zhao et al. ICLR 2023",
            arch(kinds=("mlp",), activations=(name,), bias=False),
            _of_kind(LawKind.UNIT, candidate_laws), (Level.POINTWISE,), expect="breaks",
            broken=HOMOGENEOUS_ACTS.name))
    out += [
        Theorem("break-relu2", "The 1:1 law fails for ReLU^2",
                "with relu_power(2), ||in||^2 - ||out||^2 is NOT conserved (the law is ||in||^2 - 2||out||^2)",
                "docs/theory.md 3.4", arch(kinds=("mlp",), activations=("relu_power",)),
                _of_kind(LawKind.UNIT, transform=one_to_one), (Level.POINTWISE,), expect="breaks",
                broken=DEGREE_ONE.name),
        Theorem("break-no-bias", "Forgetting the bias breaks the law",
                "||W_h[i,:]||^2 - ||W_h+1[:,i]||^2 without b_h[i]^2 is NOT conserved",
                "docs/theory.md 3.2", arch(kinds=("mlp",), bias=True), _biased, (Level.POINTWISE,),
                expect="breaks", broken=HAS_BIAS.name),
        Theorem("break-skip", "A skip connection breaks the unit's law",
                "a unit whose output also feeds a skip connection does NOT conserve its law",
                "docs/theory.md 3.7; Marcotte et al. ICML 2025", arch(kinds=("residual",)),
                _skip_ignored, (Level.POINTWISE,), expect="breaks", broken=NO_SKIP.name),
        Theorem("break-weight-decay", "Weight decay breaks the plain law",
                "with weight decay, Q(theta+) - Q(theta) != Q(Delta): the law decays",
                "docs/theory.md 3.3; Kunin et al. ICLR 2021",
                {**arch(kinds=("mlp",)), "steps": 2,
                 "optimizers": {"names": ("gd",), "weight_decay": 0.1, "lr": (0.01, 0.1)}},
                _of_kind(LawKind.UNIT), (Level.STEP,), expect="breaks", broken=PLAIN_DESCENT.name),
    ]
    for name, title in BREAKING_OPTIMIZERS.items():
        reason = OPTIMIZERS[name].breaks
        out.append(Theorem(
            f"break-{name}", f"{title} breaks the law at first order",
            f"under {title}, Delta Q has a first-order part 2 B(theta, Delta) != 0: {reason}",
            "docs/theory.md 3.3 and 6.4; Marcotte et al. 2024, 2025",
            {**arch(kinds=("mlp",)), "steps": 3, "optimizers": {"names": (name,), "lr": (0.01, 0.1)}},
            _of_kind(LawKind.UNIT), (Level.STEP,), expect="breaks", broken=PLAIN_DESCENT.name))
    return out
