"""The paper's Section 2 results and their corollaries (Du, Hu, Lee 2018)."""

from __future__ import annotations

from flowlaws.checking import Level
from flowlaws.invariants import LawKind
from flowlaws.theorems.core import _FLOW, HOM, Theorem, arch
from flowlaws.theorems.hypotheses import DEGREE_ONE, HAS_BIAS, HOMOGENEOUS_ACTS, NO_SKIP, PLAIN_DESCENT
from flowlaws.theorems.selections import _all_laws, _of_kind


def theorems() -> list[Theorem]:
    plain = (HOMOGENEOUS_ACTS, DEGREE_ONE, NO_SKIP)
    return [
        Theorem(
            id="thm-2.1",
            title="Neuron-wise conservation",
            statement="d/dt (||W_h[i,:]||^2 - ||W_h+1[:,i]||^2) = 0 under gradient flow, every hidden unit",
            reference="Du, Hu, Lee 2018, Theorem 2.1",
            space={**arch(kinds=("mlp",), activations=HOM, bias=False, depth=(1, 3)), **_FLOW},
            laws=_of_kind(LawKind.UNIT),
            levels=(Level.POINTWISE, Level.FLOW),
            hypotheses=plain,
        ),
        Theorem(
            id="cor-2.1",
            title="Layer-wise conservation",
            statement="d/dt (||W_h||_F^2 - ||W_h+1||_F^2) = 0 under gradient flow",
            reference="Du, Hu, Lee 2018, Corollary 2.1",
            space={**arch(kinds=("mlp", "linear"), activations=HOM, depth=(1, 3)), **_FLOW},
            laws=_of_kind(LawKind.LAYER),
            levels=(Level.POINTWISE, Level.FLOW),
            hypotheses=plain,
        ),
        Theorem(
            id="thm-2.2",
            title="Matrix law across a linear boundary",
            statement="d/dt (W_h W_h^T - W_h+1^T W_h+1) = 0 when the activation between is the identity",
            reference="Du, Hu, Lee 2018, Theorem 2.2; docs/theory.md 3.6",
            space={
                **arch(kinds=("linear", "conv1d", "factorization"), activations=("linear",), pooling=(None, "avg")),
                **_FLOW,
            },
            laws=_of_kind(LawKind.MATRIX),
            levels=(Level.POINTWISE, Level.FLOW),
            hypotheses=(NO_SKIP,),
        ),
        Theorem(
            id="thm-2.3",
            title="Convolutions: channel- and layer-wise laws",
            statement="d/dt (||v_h||^2 - ||v_h+1||^2) = 0 for the free parameters of conv layers, "
            "and per channel through max/avg pooling and flatten",
            reference="Du, Hu, Lee 2018, Theorem 2.3; docs/theory.md 3.5",
            space={**arch(kinds=("conv1d", "conv2d"), activations=HOM), **_FLOW},
            laws=_all_laws,
            levels=(Level.POINTWISE, Level.FLOW),
            hypotheses=plain,
        ),
        Theorem(
            id="bias",
            title="Biases join the incoming side",
            statement="d/dt (||W_h[i,:]||^2 + b_h[i]^2 - ||W_h+1[:,i]||^2) = 0",
            reference="docs/theory.md 3.2 (derived)",
            space={**arch(kinds=("mlp", "conv1d"), activations=HOM, bias=True), **_FLOW},
            laws=_of_kind(LawKind.UNIT),
            levels=(Level.POINTWISE, Level.FLOW),
            hypotheses=(*plain, HAS_BIAS),
        ),
        Theorem(
            id="degree-k",
            title="Degree-k activations",
            statement="for phi(cz) = c^k phi(z): d/dt (||in_i||^2 - k ||out_i||^2) = 0",
            reference="docs/theory.md 3.4 (derived)",
            space={**arch(kinds=("mlp",), activations=("relu_power",)), **_FLOW},
            laws=_of_kind(LawKind.UNIT),
            levels=(Level.POINTWISE, Level.FLOW),
            hypotheses=(HOMOGENEOUS_ACTS, NO_SKIP),
        ),
        Theorem(
            id="gd-step",
            title="One GD/SGD step changes Q by eta^2 Q(g)",
            statement="Q(theta - eta g) - Q(theta) = eta^2 Q(g) exactly, for the full or a minibatch gradient",
            reference="docs/theory.md 3.3 (derived)",
            space={
                **arch(kinds=("mlp", "conv1d", "factorization")),
                "steps": 3,
                "optimizers": {"names": ("gd", "sgd")},
            },
            laws=_all_laws,
            levels=(Level.STEP,),
            hypotheses=(*plain, PLAIN_DESCENT),
            prediction="gd",
        ),
        Theorem(
            id="weight-decay",
            title="Weight decay shrinks the law geometrically",
            statement="GD: Q+ = (1 - eta lambda)^2 Q + eta^2 Q(g); flow: Q(t) = exp(-2 lambda t) Q(0)",
            reference="docs/theory.md 3.3; Kunin et al., ICLR 2021",
            space={**arch(kinds=("mlp",)), "steps": 3, **_FLOW, "optimizers": {"names": ("gd",), "weight_decay": 0.1}},
            laws=_of_kind(LawKind.UNIT),
            levels=(Level.STEP, Level.FLOW),
            hypotheses=plain,
            prediction="optimizer",
        ),
        Theorem(
            id="momentum-step",
            title="Heavy-ball momentum changes Q at first order",
            statement="Delta Q_k = 2 beta B(theta_k, v_k-1) + Q(v_k) exactly",
            reference="docs/theory.md 3.3 (derived)",
            space={**arch(kinds=("mlp",)), "steps": 4, "optimizers": {"names": ("momentum",)}},
            laws=_of_kind(LawKind.UNIT),
            levels=(Level.STEP,),
            hypotheses=plain,
            prediction="optimizer",
        ),
        Theorem(
            id="balance",
            title="Small initialization keeps layers balanced",
            statement="from a small init, ||W_h||^2/||W_h+1||^2 - 1 = D_h(t)/||W_h+1||^2 with "
            "|D_h(t)| <= |D_h(0)| + sum eta^2 |Q(g)|, so the ratio tends to 1 as the norms grow",
            reference="Du, Hu, Lee 2018, Corollary 2.1 and Fig. 2",
            space={
                **arch(kinds=("mlp",), activations=("relu", "leaky_relu")),
                "steps": 400,
                "init_scale": 1e-2,
                "optimizers": {"names": ("gd",), "lr": (0.05, 0.2), "decay_power": 0.0},
            },
            laws=_of_kind(LawKind.LAYER),
            levels=(Level.BALANCE,),
            hypotheses=plain,
        ),
    ]
