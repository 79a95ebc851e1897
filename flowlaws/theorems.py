"""The paper's results and their neighbours as checkable data.

A `Theorem` names the scenarios it quantifies over (``space``, read by
`flowlaws.strategies.scenarios`), the laws it speaks of (a function of the model),
the levels it is checked at, and the hypotheses it needs, as predicates that
explain themselves when they fail. ``expect="breaks"`` marks an expected break:
its conclusion is that the law FAILS, and checking confirms it.
Section 3 (matrix factorization) theorems live in `flowlaws.matrix_factorization`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from flowlaws.checking import NO_EVIDENCE, Evidence, Level, Scenario, Status, Verdict, run_levels
from flowlaws.discover import completeness, scalar_deep_linear
from flowlaws.errors import InvalidArgument, Unrepresentable
from flowlaws.flows.optimizers import OPTIMIZERS
from flowlaws.invariants import LawKind, candidate_laws, laws, one_to_one, rowwise, skip_ignored_laws, without_bias
from flowlaws.models import NON_HOMOGENEOUS, Residual
from flowlaws.models.symmetry import Family

# --- hypotheses ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hypothesis:
    """A named predicate on a scenario; ``why(s)`` is None when it holds."""

    name: str
    why: Callable[[Scenario], str | None]


def _homogeneous(s):
    for act in s.model.activations:
        if act.degree is None:
            return f"activation {act.name!r} is not positively homogeneous: {act.homogeneity_counterexample()}"
    return None


def _degree_one(s):
    for act in s.model.activations:
        if act.degree not in (None, 1):
            return f"activation {act.spec} has degree {act.degree:g}: the law is ||in||^2 - {act.degree:g}||out||^2"
    return None


def _no_skip(s):
    if any(isinstance(layer, Residual) for layer in getattr(s.model, "layers", ())):
        return "a skip connection carries the units' output around the block"
    return None


def _plain_descent(s):
    opt = s.optimizer
    if opt is not None and opt.breaks:
        return f"{opt.spec}: {opt.breaks}"
    if opt is not None and opt.weight_decay:
        return f"weight decay {opt.weight_decay} shrinks Q by (1 - eta*lambda)^2 per step"
    return None


def _has_bias(s):
    if not any(name.endswith(".b") for name, _ in s.model.param_specs):
        return "the model has no biases"
    return None


def _combines_gradients(s):
    opt = s.optimizer
    if opt is not None and opt.preconditions:
        return f"{opt.spec}: {opt.preconditions}"
    return None


def _shift_invariant_loss(s):
    if not s.loss.symmetries(s.model):
        return f"loss {s.loss.spec} changes when every output shifts alike (softmax cross-entropy does not)"
    return None


HOMOGENEOUS_ACTS = Hypothesis("positively homogeneous activations", _homogeneous)
DEGREE_ONE = Hypothesis("activations of degree 1", _degree_one)
NO_SKIP = Hypothesis("no skip connection", _no_skip)
PLAIN_DESCENT = Hypothesis("plain gradient steps", _plain_descent)
HAS_BIAS = Hypothesis("biases present", _has_bias)
def _own_groups(s):
    if any(getattr(layer, "kind", "") == "layernorm" for layer in getattr(s.model, "layers", ())):
        return "a LayerNorm normalizes the units of a sample together: one c must scale the whole layer"
    return None


def _no_plane_rotation(s):
    """A LayerNorm without affine whose reader is a dense or attention layer: rotations of
    its centred plane (orthogonal, fixing 1) can be absorbed by the reader, an O(d - 1)
    symmetry whose laws flowlaws does not derive yet (found by the laws-complete
    campaign; docs/theory.md 6)."""
    from flowlaws.models import LayerNorm

    layers = getattr(s.model, "layers", ())
    for position, layer in enumerate(layers):
        if isinstance(layer, LayerNorm) and not layer.affine and any(True for _ in layer.rescalings(
                s.model.site(position))) and position and getattr(layers[position - 1], "has_weight", False):
            return (f"{layer.spec} at layer {position} can rotate its centred plane into its reader: "
                    "an O(d - 1) symmetry flowlaws does not derive yet")
    return None


def _no_grouped_linear_boundary(s):
    """A grouped convolution whose input or output units meet a weight layer through
    linear layers only: any invertible mixing of the units within one group is a
    symmetry (a block-diagonal matrix law per group) that flowlaws does not derive yet;
    seq:4x6:conv1d(4,1),linear,conv1d(4,1,groups=2),flatten,dense(1) has 12 laws, 8
    derived (docs/theory.md 7). Read from the walker: the same net with every group
    merged has a matrix law through the grouped layer."""
    from flowlaws.models import Sequential
    from flowlaws.models.kinds.conv import Conv

    model = s.model
    if not any(getattr(layer, "groups", 1) > 1 for layer in getattr(model, "all_layers", ())):
        return None
    merge = lambda layer: replace(layer, groups=1) if isinstance(layer, Conv) else layer  # noqa: E731
    merged = Sequential(model.input_shape, tuple(layer.mapped(merge) for layer in model.layers))
    grouped = {name.rsplit(".", 1)[0] for (name, shape), (_, whole) in
               zip(model.param_specs, merged.param_specs, strict=True) if shape != whole}
    for r in merged.rescalings():
        if r.linear and r.degree == 1 and not r.uniform and grouped & set(r.name.split("/")):
            return f"a grouped convolution on the linear path {r.name}: a block-diagonal matrix law"
    return None


def _no_scalar_fed_linear_chain(s):
    """A net linear in x (linear activations, no bias) through one scalar (a scalar input
    or a width-1 layer): f = v(theta) (w(theta) . x), whose Lie algebra closes with laws
    beyond degree 2 that no symmetry gives (seq:1:residual[dense(1),linear,dense(1)],dense(2):
    2 laws, 1 derived; seq:2:dense(1),linear,residual[dense(1),linear,dense(1)],dense(1)).
    Discovery decides their count by closure; the derivation cannot match it, so
    laws-complete sets the family aside (KNOWN_EXTRA keeps the nets with a scalar input and
    a scalar output, whose count has a formula: D - 1). docs/theory.md 7."""
    model = s.model
    acts = getattr(model, "activations", None)
    if acts is None or not all(a.is_linear for a in acts) or scalar_deep_linear(model):
        return None
    if any(name.endswith(".b") for name, _ in model.param_specs):
        return None
    widths = [int(np.prod(model.input_shape))] + [shape[0] for name, shape in model.param_specs[:-1]]
    if min(widths) != 1:
        return None
    return "a linear chain through one scalar has laws beyond degree 2 that no symmetry derives"


def _no_pooled_last_axis(s):
    """A pool reading a last axis that an earlier layer scales per feature (an affine
    LayerNorm, an attention or position-wise dense layer: `Layer.rows_on_last_axis`): the
    features of one window may scale together (the window's max or mean scales alike), a
    symmetry flowlaws does not derive (its declaration stops a last-axis scaling at a pool);
    seq:2x3:layernorm(affine),relu,maxpool1d(2),flatten,dense(1) has 3 laws, 0 derived
    (found by the 5,000-case laws-complete campaign; docs/theory.md 6). The same holds for
    ``mean`` averaging that axis (seq:2x3:layernorm(affine,eps=1e-05),mean,flatten,dense(2,bias):
    4 laws, 0 derived), and for ``mean(last)`` averaging channels that a BatchNorm or a
    convolution scales (seq:2x3:batchnorm(affine),maxpool1d(2),mean(last),flatten,dense(1): 2
    laws, 0 derived; a uniform scale law and a zero-sum shift of the betas)."""
    from flowlaws.models.kinds.mean import Mean
    from flowlaws.models.kinds.pool import Pool

    layers = getattr(s.model, "layers", ())
    last = first = False  # an earlier layer scales the units of the last (first) axis one by one
    for position, layer in enumerate(layers):
        site = s.model.site(position)
        if bool(layer.emits or layer.sublayers) and len(site.in_shape) > 1:
            last, first = last or layer.rows_on_last_axis(site), first or not layer.rows_on_last_axis(site)
        if (last and (isinstance(layer, Pool) or (isinstance(layer, Mean) and not layer.last))) or \
                (first and isinstance(layer, Mean) and layer.last):
            return f"{layer.spec} at layer {position} pools an axis that an earlier layer scales unit by unit"
    return None


def _softmax_router(s):
    """A mixture of experts whose gate ignores a shift of its logits (softmax)."""
    for layer in getattr(s.model, "all_layers", ()):
        if getattr(layer, "gate", "softmax") != "softmax":
            return f"{layer.spec} gates by a normalized sigmoid, which changes when every logit shifts alike"
    return None


def _router_laws_of_a_softmax_gate(model, loss=None):
    """the router's column sums, as a softmax gate would conserve them (Tran et al. 2026 claim them
    for a normalized sigmoid too)"""
    from flowlaws.models import MoE, Sequential

    softmax = Sequential(model.input_shape, tuple(layer.mapped(
        lambda x: replace(x, gate="softmax") if isinstance(x, MoE) else x) for layer in model.layers))
    return tuple(law for law in laws(softmax) if law.family is Family.TRANSLATION and "router" in law.name)


COMBINES_GRADIENTS = Hypothesis("steps combine gradients", _combines_gradients)
SOFTMAX_ROUTER = Hypothesis("a softmax router", _softmax_router)
NO_POOLED_LAST_AXIS = Hypothesis("no pool along a scaled last axis", _no_pooled_last_axis)
NO_SCALAR_FED_LINEAR = Hypothesis("no linear chain through one scalar", _no_scalar_fed_linear_chain)
NO_PLANE_ROTATION = Hypothesis("no rotation of a LayerNorm plane", _no_plane_rotation)
NO_GROUPED_LINEAR_BOUNDARY = Hypothesis("no grouped convolution on a linear path", _no_grouped_linear_boundary)
OWN_GROUPS = Hypothesis("each unit normalized on its own", _own_groups)
SHIFT_INVARIANT = Hypothesis("shift-invariant loss", _shift_invariant_loss)
HYPOTHESES = {h.name: h for h in (HOMOGENEOUS_ACTS, DEGREE_ONE, NO_SKIP, PLAIN_DESCENT, HAS_BIAS,
                                  COMBINES_GRADIENTS, SHIFT_INVARIANT, OWN_GROUPS, NO_PLANE_ROTATION,
                                  NO_SCALAR_FED_LINEAR, NO_POOLED_LAST_AXIS, NO_GROUPED_LINEAR_BOUNDARY,
                                  SOFTMAX_ROUTER)}

# --- law selections --------------------------------------------------------------------------


def _rescale(model, loss=None):
    return tuple(law for law in laws(model) if law.family is Family.RESCALE)


def _of_kind(kind, source=_rescale, transform=None):
    def select(model, loss=None):
        chosen = tuple(law for law in source(model) if law.kind == kind)
        return tuple(map(transform, chosen)) if transform else chosen

    select.__doc__ = f"{kind} laws" + (f", {transform.__name__}" if transform else "")
    return select


def _all_laws(model, loss=None):
    """every derived rescaling law"""
    return _rescale(model)


def _every_law(model, loss=None):
    """every derived law (every family, with the scenario's loss)"""
    return laws(model, loss)


def _of_family(family, loss=None, transform=None, uniform=False):
    """The laws of one family, with the scenario's loss or a fixed one (``loss``)."""
    def select(model, scenario_loss=None):
        chosen = tuple(law for law in laws(model, loss or scenario_loss) if law.family == family
                       and (not uniform or law.kind is LawKind.LAYER))
        return tuple(map(transform, chosen)) if transform else chosen

    select.__doc__ = f"{family} laws" + (f" of {loss}" if loss else "") + (
        f", {transform.__name__}" if transform else "")
    return select


def _signature(law):
    return tuple((t.view.param, t.view.axis, t.weight) for t in law.terms)


def _skip_ignored(model, loss=None):
    """unit laws of units feeding a skip connection, written as if there were none"""
    own = {_signature(law) for law in laws(model)}
    return tuple(law for law in skip_ignored_laws(model) if law.kind is LawKind.UNIT and _signature(law) not in own)


def _biased(model, loss=None):
    """unit laws of units with a bias, without the bias term"""
    return tuple(without_bias(law) for law in _of_kind(LawKind.UNIT)(model)
                 if any(v.name.endswith(".b") for v in law.incoming))


# --- theorems --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Theorem:
    """A checkable statement. ``expect`` is "holds" or "breaks"."""

    id: str
    title: str
    statement: str
    reference: str
    space: dict
    laws: Callable
    levels: tuple[str, ...]
    hypotheses: tuple[Hypothesis, ...] = ()
    expect: str = "holds"
    prediction: str = "second-order"
    broken: str = ""  # for an expected break: the hypothesis it violates
    decide: Callable | None = None  # model -> Evidence, instead of laws and levels

    def check(self, scenario: Scenario) -> Verdict:
        """Decide one scenario: holds / violated, or break-confirmed / break-missed;
        invalid when a hypothesis fails (for "holds") or nothing can be checked."""
        if self.expect == "holds":
            for hyp in self.hypotheses:
                reason = hyp.why(scenario)
                if reason:
                    return Verdict(Status.INVALID, reason=f"hypothesis '{hyp.name}' fails: {reason}")
        law_list = self.laws(scenario.model, scenario.loss)
        if not law_list and self.decide is None:
            return Verdict(Status.INVALID, reason=f"{scenario.model.spec} has no law of this theorem")
        try:
            with np.errstate(over="ignore", invalid="ignore", under="ignore"):
                evidence = (self.decide(scenario.model) if self.decide is not None
                            else run_levels(scenario, law_list, self.levels, self.prediction))
        except (InvalidArgument, Unrepresentable) as error:
            return Verdict(Status.INVALID, reason=str(error))
        if self.expect == "holds":
            return Verdict(Status.HOLDS if evidence.effect <= 1 else Status.VIOLATED, evidence)
        return Verdict(Status.BREAK_CONFIRMED if evidence.effect > 1 else Status.BREAK_MISSED, evidence)

    def to_json(self) -> dict:
        return {"id": self.id, "title": self.title, "statement": self.statement,
                "reference": self.reference, "expect": self.expect, "levels": list(self.levels),
                "hypotheses": [h.name for h in self.hypotheses], "broken": self.broken}


HOM = ("relu", "leaky_relu", "abs", "prelu", "linear")
LANGUAGE_BLOCKS = (  # id, architecture family, title, statement, reference
    ("swiglu", "swiglu", "SwiGLU keeps the value branch's law with its reader",
     "in y = W2 (silu(W1 x) * W3 x), ||W3[i,:]||^2 - ||W2[:,i]||^2 is conserved by gradient flow (the silu gate has no "
     "law), and one GD/SGD step changes it by exactly eta^2 Q(g)",
     "Marcotte, Gribonval, Peyre, ICML 2025; docs/theory.md 3.9"),
    ("rope", "rope", "RoPE keeps one complex scaling per pair of features",
     "with rotary position encoding, each head conserves ||Wq[:,pair]||^2 - ||Wk[:,pair]||^2 for every pair of "
     "adjacent features (GL(dk) shrinks to GL(1,C)^(dk/2)), and Wv^T Wv - Wo Wo^T",
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
)
_FLOW = {"T": 0.2, "flow_steps": 6}
_NORMALIZED = {"n": (2, 5), "generic": True}  # batches of distinct samples: a constant group is 0/0


def _theorems() -> list[Theorem]:
    arch = lambda **kw: {"architectures": kw}  # noqa: E731
    plain = (HOMOGENEOUS_ACTS, DEGREE_ONE, NO_SKIP)
    out = [
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
                _of_kind(LawKind.UNIT), (Level.STEP, Level.FLOW), plain, prediction="weight-decay"),
        Theorem("momentum-step", "Heavy-ball momentum changes Q at first order",
                "Delta Q_k = 2 beta B(theta_k, v_k-1) + Q(v_k) exactly",
                "docs/theory.md 3.3 (derived)",
                {**arch(kinds=("mlp",)), "steps": 4, "optimizers": {"names": ("momentum",)}},
                _of_kind(LawKind.UNIT), (Level.STEP,), plain, prediction="momentum"),
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
        Theorem(Level.BALANCE, "Small initialization keeps layers balanced",
                "from a small init, ||W_h||^2/||W_h+1||^2 - 1 = D_h(t)/||W_h+1||^2 with "
                "|D_h(t)| <= |D_h(0)| + sum eta^2 |Q(g)|, so the ratio tends to 1 as the norms grow",
                "Du, Hu, Lee 2018, Corollary 2.1 and Fig. 2",
                {**arch(kinds=("mlp",), activations=("relu", "leaky_relu")), "steps": 400,
                 "init_scale": 1e-2, "optimizers": {"names": ("gd",), "lr": (0.05, 0.2), "decay_power": 0.0}},
                _of_kind(LawKind.LAYER), (Level.BALANCE,), plain),
        Theorem("translation", "Translation laws are exact at any step size",
                "a shift symmetry (softmax cross-entropy: the column sums 1^T W and the sum 1^T b of the last "
                "layer; a bias before BatchNorm; weights before LayerNorm) gives a linear law h: one GD or SGD "
                "step of any size keeps h exactly, weight decay scales it by (1 - eta lambda), heavy ball gives "
                "h(v_k) = beta h(v_k-1) - eta lambda h(theta_k); flow: h(t) = exp(-lambda t) h(0)",
                "Kunin et al., ICLR 2021 (Neural Mechanics); docs/theory.md 6.1",
                {**arch(kinds=("mlp", "batchnorm", "layernorm"), activations=HOM), **_NORMALIZED,
                 "losses": {"names": ("cross_entropy",)}, "steps": 3, **_FLOW,
                 "optimizers": {"names": ("gd", "sgd", "momentum"), "lr": (1e-3, 10.0), "weight_decay": (0.0, 0.1),
                                "batch": (2, 3)}},
                _of_family(Family.TRANSLATION), (Level.POINTWISE, Level.STEP, Level.FLOW), (COMBINES_GRADIENTS,),
                prediction="optimizer"),
        Theorem("scale", "Normalization: the scale law and the growth of the norm",
                "weights feeding a BatchNorm (per row or channel) or a LayerNorm (the whole layer), eps = 0: "
                "<grad L, w> = 0, so gradient flow conserves ||w||^2 (exp(-2 lambda t) ||w||^2 with decay) and one "
                "GD/SGD step grows it by exactly eta^2 ||g||^2: ||w+||^2 = (1 - eta lambda)^2 ||w||^2 + eta^2 ||g||^2",
                "van Laarhoven 2017; Kunin et al., ICLR 2021; docs/theory.md 6.2",
                {**arch(kinds=("batchnorm", "layernorm"), activations=HOM), **_NORMALIZED, "steps": 3, **_FLOW,
                 "optimizers": {"names": ("gd", "sgd"), "lr": (1e-3, 1.0), "weight_decay": (0.0, 0.1),
                                "batch": (2, 3)}},
                _of_family(Family.SCALE), (Level.POINTWISE, Level.STEP, Level.FLOW), (COMBINES_GRADIENTS,),
                prediction="weight-decay"),
        Theorem("attention-gl", "Attention heads conserve their GL matrices",
                "per head, Wq^T Wq - Wk^T Wk and Wv^T Wv - Wo Wo^T are conserved by gradient flow, and one GD/SGD "
                "step changes them by exactly eta^2 (Gq^T Gq - Gk^T Gk) and eta^2 (Gv^T Gv - Go Go^T)",
                "Marcotte et al. 2025; docs/theory.md 6.3",
                {**arch(kinds=("attention",), activations=HOM), "steps": 3, **_FLOW, "generic": True,
                 "optimizers": {"names": ("gd", "sgd"), "lr": (1e-3, 0.5)},
                 # an attention gradient is of degree 5 in the weights: beyond 1e60 it overflows
                 # (a third of the draws were undecidable with the default 1e150)
                 "exponents": (-60, 60)},
                _of_family(Family.GL), (Level.POINTWISE, Level.STEP, Level.FLOW), (PLAIN_DESCENT,), prediction="gd"),
    ]
    language = {"steps": 3, **_FLOW, "generic": True, "optimizers": {"names": ("gd", "sgd"), "lr": (1e-3, 0.5)},
                "exponents": (-60, 60)}  # softmax, silu and products: degree 5 and more, as attention's
    for id_, kind, title, statement, reference in LANGUAGE_BLOCKS:
        out.append(Theorem(id_, title, statement, reference, {**arch(kinds=(kind,), activations=HOM), **language},
                           _every_law, (Level.POINTWISE, Level.STEP, Level.FLOW), (PLAIN_DESCENT,), prediction="gd"))
    out += [
        Theorem("break-moe-normalized-sigmoid", "A normalized-sigmoid router has no translation law",
                "with a normalized sigmoid gate g_e = s(r_e) / sum_j s(r_j), the router's column sums sum_e Wr[e, j] "
                "are NOT conserved, although a softmax gate conserves them: s(r_e + c) / sum_j s(r_j + c) changes "
                "with c, so shifting every logit alike is no symmetry",
                "refutes Tran et al., ICML 2026 (as summarised in research-2026-12.md); docs/theory.md 6.5",
                {**arch(kinds=("moe_sigmoid",), activations=HOM), "exponents": (-60, 60)},
                _router_laws_of_a_softmax_gate, (Level.POINTWISE,), expect="breaks", broken=SOFTMAX_ROUTER.name),
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


BREAKING_OPTIMIZERS = {"momentum": "heavy-ball momentum", "nesterov": "Nesterov momentum", "adam": "Adam",
                       "rmsprop": "RMSProp", "signgd": "sign-GD"}
THEOREMS: dict[str, Theorem] = {t.id: t for t in _theorems()}


# --- property-based runs ---------------------------------------------------------------------


@dataclass
class Result:
    """How a theorem fared over many cases: verdict, counts, worst evidence, the shrunk
    counterexample (a scenario and its verdict) if any."""

    theorem: Theorem
    verdict: str
    cases: int = 0
    invalid: int = 0
    worst: Evidence = NO_EVIDENCE
    seconds: float = 0.0
    counterexample: tuple | None = None
    note: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.verdict in ("holds", "break-confirmed")

    def to_json(self) -> dict:
        effect = self.worst.effect
        return {"id": self.theorem.id, "verdict": self.verdict, "cases": self.cases,
                "worst": effect if math.isfinite(effect) else None, "seconds": round(self.seconds, 3),
                "statement": self.theorem.statement, "note": self.note, **self.extra}


__all__ = ["THEOREMS", "Hypothesis", "Result", "Theorem"]
