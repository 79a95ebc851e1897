"""The blocks of today's language models (SwiGLU, RoPE, GQA, QK-norm, MoE, a decoder's cross-attention), and a
published claim refuted."""

from __future__ import annotations

from flowlaws.checking import Level
from flowlaws.theorems.core import _FLOW, HOM, Space, Theorem, arch
from flowlaws.theorems.hypotheses import PLAIN_DESCENT, SOFTMAX_ROUTER
from flowlaws.theorems.selections import _every_law, _router_laws_of_a_softmax_gate

LANGUAGE_BLOCKS = (  # id, architecture family, title, statement, reference
    ("swiglu", "swiglu", "SwiGLU keeps the value branch's law with its reader",
     "in y = W2 (silu(W1 x) * W3 x), ||W3[i,:]||^2 - ||W2[:,i]||^2 is conserved by gradient flow (the silu gate has no "
     "law), and one GD/SGD step changes it by exactly eta^2 Q(g)",
     "Marcotte, Gribonval, Peyre, ICML 2025; docs/theory.md 3.9"),
    ("rope", "rope", "RoPE keeps one complex scaling per pair of features",
     "with rotary position encoding, each head conserves ||Wq[:,pair]||^2 - ||Wk[:,pair]||^2 for every pair of "
     "rotated features (adjacent, or i and i + dk/2 with rotate_half; GL(dk) shrinks to GL(1,C)^(dk/2)), and "
     "Wv^T Wv - Wo Wo^T",
     "docs/theory.md 6.3"),
    ("gqa", "gqa", "Grouped-query attention shares one K/V head's symmetry",
     "with G key/value heads, each group conserves sum_h Wq_h^T Wq_h - Wk_g^T Wk_g and Wv_g^T Wv_g - sum_h Wo_h Wo_h^T "
     "over its query heads h",
     "docs/theory.md 6.3"),
    ("qk-norm", "qknorm", "QK-norm keeps the scale of each query and key matrix",
     "with an RMSNorm of every query and key (eps = 0), ||Wq_h||^2 and ||Wk_g||^2 are conserved by gradient flow and "
     "grow by exactly eta^2 ||g||^2 per GD step; the GL(dk) law is lost",
     "docs/theory.md 6.3"),
    ("moe", "moe", "A softmax router conserves its column sums; each expert keeps its laws",
     "in a mixture of experts with a softmax gate over the top-k logits, the router's column sums sum_e Wr[e, j] are "
     "conserved exactly at any step size, and every expert's hidden units keep their laws",
     "Tran et al., ICML 2026; docs/theory.md 6.5"),
    ("cross-attention", "decoder", "A decoder's cross-attentions balance the encoder's last rows",
     "in a Transformer decoder reading an encoder's memory, each cross-attention head keeps attention's GL(dk) and "
     "GL(dv) laws, and the encoder's last rows balance against the rows of every Wk and Wv that read the memory: "
     "||E_i||^2 - sum (||Wk[i,:]||^2 + ||Wv[i,:]||^2) is conserved by gradient flow",
     "docs/theory.md 6.3 (cross-attention)"),
)


def theorems() -> list[Theorem]:
    out: list[Theorem] = []
    language: Space = {"steps": 3, **_FLOW, "generic": True,
                       "optimizers": {"names": ("gd", "sgd"), "lr": (1e-3, 0.5)},
                       "exponents": (-60, 60)}  # softmax, silu and products: degree 5 and more, as attention's
    for id_, kind, title, statement, reference in LANGUAGE_BLOCKS:
        out.append(Theorem(
            id=id_, title=title, statement=statement, reference=reference,
            space={**arch(kinds=(kind,), activations=HOM), **language}, laws=_every_law,
            levels=(Level.POINTWISE, Level.STEP, Level.FLOW), hypotheses=(PLAIN_DESCENT,), prediction="gd"))
    out += [
        Theorem(
            id="break-moe-normalized-sigmoid",
            title="A normalized-sigmoid router has no translation law",
            statement="with a normalized sigmoid gate g_e = s(r_e) / sum_j s(r_j), the router's column sums "
            "sum_e Wr[e, j] are NOT conserved, although a softmax gate conserves them: s(r_e + c) / sum_j s(r_j + c) "
            "changes with c, so shifting every logit alike is no symmetry",
            reference="refutes Tran et al., ICML 2026 (as summarised in research-2026-12.md); docs/theory.md 6.5",
            space={**arch(kinds=("moe_sigmoid",), activations=HOM), "exponents": (-60, 60)},
            laws=_router_laws_of_a_softmax_gate,
            levels=(Level.POINTWISE,),
            expect="breaks",
            broken=SOFTMAX_ROUTER.name,
        ),
    ]
    return out
