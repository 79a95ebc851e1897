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
        Theorem("thm-2.1", "Neuron-wise conservation",
                "d/dt (||W_h[i,:]||^2 - ||W_h+1[:,i]||^2) = 0 under gradient flow, every hidden unit",
                "Du, Hu, Lee 2018, Theorem 2.1",
                {**arch(kinds=("mlp",), activations=HOM, bias=False, depth=(1, 3)), **_FLOW},
                _of_kind(LawKind.UNIT), (Level.POINTWISE, Level.FLOW), plain),
        Theorem("cor-2.1", "Layer-wise conservation",
                "d/dt (||W_h||_F^2 - ||W_h+1||_F^2) = 0 under gradient flow",
                "Du, Hu, Lee 2018, Corollary 2.1",
                {**arch(kinds=("mlp", "linear"), activations=HOM, depth=(1, 3)), **_FLOW},
                _of_kind(LawKind.LAYER), (Level.POINTWISE, Level.FLOW), plain),
        Theorem("thm-2.2", "Matrix law across a linear boundary",
                "d/dt (W_h W_h^T - W_h+1^T W_h+1) = 0 when the activation between is the identity",
                "Du, Hu, Lee 2018, Theorem 2.2; docs/theory.md 3.6",
                {**arch(kinds=("linear", "conv1d", "factorization"), activations=("linear",),
                        pooling=(None, "avg")), **_FLOW},
                _of_kind(LawKind.MATRIX), (Level.POINTWISE, Level.FLOW), (NO_SKIP,)),
        Theorem("thm-2.3", "Convolutions: channel- and layer-wise laws",
                "d/dt (||v_h||^2 - ||v_h+1||^2) = 0 for the free parameters of conv layers, "
                "and per channel through max/avg pooling and flatten",
                "Du, Hu, Lee 2018, Theorem 2.3; docs/theory.md 3.5",
                {**arch(kinds=("conv1d", "conv2d"), activations=HOM), **_FLOW},
                _all_laws, (Level.POINTWISE, Level.FLOW), plain),
        Theorem("bias", "Biases join the incoming side",
                "d/dt (||W_h[i,:]||^2 + b_h[i]^2 - ||W_h+1[:,i]||^2) = 0",
                "docs/theory.md 3.2 (derived)",
                {**arch(kinds=("mlp", "conv1d"), activations=HOM, bias=True), **_FLOW},
                _of_kind(LawKind.UNIT), (Level.POINTWISE, Level.FLOW), (*plain, HAS_BIAS)),
        Theorem("degree-k", "Degree-k activations",
                "for phi(cz) = c^k phi(z): d/dt (||in_i||^2 - k ||out_i||^2) = 0",
                "docs/theory.md 3.4 (derived)",
                {**arch(kinds=("mlp",), activations=("relu_power",)), **_FLOW},
                _of_kind(LawKind.UNIT), (Level.POINTWISE, Level.FLOW), (HOMOGENEOUS_ACTS, NO_SKIP)),
        Theorem("gd-step", "One GD/SGD step changes Q by eta^2 Q(g)",
                "Q(theta - eta g) - Q(theta) = eta^2 Q(g) exactly, for the full or a minibatch gradient",
                "docs/theory.md 3.3 (derived)",
                {**arch(kinds=("mlp", "conv1d", "factorization")), "steps": 3,
                 "optimizers": {"names": ("gd", "sgd")}},
                _all_laws, (Level.STEP,), (*plain, PLAIN_DESCENT), prediction="gd"),
        Theorem("weight-decay", "Weight decay shrinks the law geometrically",
                "GD: Q+ = (1 - eta lambda)^2 Q + eta^2 Q(g); flow: Q(t) = exp(-2 lambda t) Q(0)",
                "docs/theory.md 3.3; Kunin et al., ICLR 2021",
                {**arch(kinds=("mlp",)), "steps": 3, **_FLOW,
                 "optimizers": {"names": ("gd",), "weight_decay": 0.1}},
                _of_kind(LawKind.UNIT), (Level.STEP, Level.FLOW), plain, prediction="optimizer"),
        Theorem("momentum-step", "Heavy-ball momentum changes Q at first order",
                "Delta Q_k = 2 beta B(theta_k, v_k-1) + Q(v_k) exactly",
                "docs/theory.md 3.3 (derived)",
                {**arch(kinds=("mlp",)), "steps": 4, "optimizers": {"names": ("momentum",)}},
                _of_kind(LawKind.UNIT), (Level.STEP,), plain, prediction="optimizer"),
        Theorem("balance", "Small initialization keeps layers balanced",
                "from a small init, ||W_h||^2/||W_h+1||^2 - 1 = D_h(t)/||W_h+1||^2 with "
                "|D_h(t)| <= |D_h(0)| + sum eta^2 |Q(g)|, so the ratio tends to 1 as the norms grow",
                "Du, Hu, Lee 2018, Corollary 2.1 and Fig. 2",
                {**arch(kinds=("mlp",), activations=("relu", "leaky_relu")), "steps": 400,
                 "init_scale": 1e-2, "optimizers": {"names": ("gd",), "lr": (0.05, 0.2), "decay_power": 0.0}},
                _of_kind(LawKind.LAYER), (Level.BALANCE,), plain),
    ]
