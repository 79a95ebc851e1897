"""Other symmetries: translation (softmax, normalization shifts), the scale a normalization
removes, and attention's GL per head."""

from __future__ import annotations

from flowlaws.checking import Level
from flowlaws.models.symmetry import Family
from flowlaws.theorems.core import _FLOW, _NORMALIZED, HOM, Theorem, arch
from flowlaws.theorems.hypotheses import COMBINES_GRADIENTS, PLAIN_DESCENT
from flowlaws.theorems.selections import _of_family


def theorems() -> list[Theorem]:
    return [
        Theorem(
            id="translation",
            title="Translation laws are exact at any step size",
            statement="a shift symmetry (softmax cross-entropy: the column sums 1^T W and the sum 1^T b of the last "
            "layer; a bias before BatchNorm; weights before LayerNorm) gives a linear law h: one GD or SGD "
            "step of any size keeps h exactly, weight decay scales it by (1 - eta lambda), heavy ball gives "
            "h(v_k) = beta h(v_k-1) - eta lambda h(theta_k); flow: h(t) = exp(-lambda t) h(0)",
            reference="Kunin et al., ICLR 2021 (Neural Mechanics); docs/theory.md 6.1",
            space={
                **arch(kinds=("mlp", "batchnorm", "layernorm"), activations=HOM),
                **_NORMALIZED,
                "losses": {"names": ("cross_entropy",)},
                "steps": 3,
                **_FLOW,
                "optimizers": {
                    "names": ("gd", "sgd", "momentum"),
                    "lr": (1e-3, 10.0),
                    "weight_decay": (0.0, 0.1),
                    "batch": (2, 3),
                },
            },
            laws=_of_family(Family.TRANSLATION),
            levels=(Level.POINTWISE, Level.STEP, Level.FLOW),
            hypotheses=(COMBINES_GRADIENTS,),
            prediction="optimizer",
        ),
        Theorem(
            id="scale",
            title="Normalization: the scale law and the growth of the norm",
            statement="weights feeding a BatchNorm (per row or channel) or a LayerNorm (the whole layer), eps = 0: "
            "<grad L, w> = 0, so gradient flow conserves ||w||^2 (exp(-2 lambda t) ||w||^2 with decay) and one "
            "GD/SGD step grows it by exactly eta^2 ||g||^2: ||w+||^2 = (1 - eta lambda)^2 ||w||^2 + eta^2 ||g||^2",
            reference="van Laarhoven 2017; Kunin et al., ICLR 2021; docs/theory.md 6.2",
            space={
                **arch(kinds=("batchnorm", "layernorm"), activations=HOM),
                **_NORMALIZED,
                "steps": 3,
                **_FLOW,
                "optimizers": {"names": ("gd", "sgd"), "lr": (1e-3, 1.0), "weight_decay": (0.0, 0.1), "batch": (2, 3)},
            },
            laws=_of_family(Family.SCALE),
            levels=(Level.POINTWISE, Level.STEP, Level.FLOW),
            hypotheses=(COMBINES_GRADIENTS,),
            prediction="optimizer",
        ),
        Theorem(
            id="attention-gl",
            title="Attention heads conserve their GL matrices",
            statement="per head, Wq^T Wq - Wk^T Wk and Wv^T Wv - Wo Wo^T are conserved by gradient flow, and one "
            "GD/SGD step changes them by exactly eta^2 (Gq^T Gq - Gk^T Gk) and eta^2 (Gv^T Gv - Go Go^T)",
            reference="Marcotte et al. 2025; docs/theory.md 6.3",
            space={
                **arch(kinds=("attention",), activations=HOM),
                "steps": 3,
                **_FLOW,
                "generic": True,
                "optimizers": {"names": ("gd", "sgd"), "lr": (1e-3, 0.5)},
                # an attention gradient is of degree 5 in the weights: beyond 1e60 it overflows
                # (a third of the draws were undecidable with the default 1e150)
                "exponents": (-60, 60),
            },
            laws=_of_family(Family.GL),
            levels=(Level.POINTWISE, Level.STEP, Level.FLOW),
            hypotheses=(PLAIN_DESCENT,),
            prediction="gd",
        ),
    ]
