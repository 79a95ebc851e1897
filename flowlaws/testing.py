"""Helpers for users' own test suites."""

from __future__ import annotations

from flowlaws.checking import Level, as_level
from flowlaws.errors import InvalidArgument

CAPTURED: list = []  # counterexamples found in this process (the pytest plugin renders them)


def assert_conserved(model, *, loss="square", optimizer=None, law=None, max_examples: int = 50,
                     steps: int = 3) -> None:
    """Assert that ``model``'s laws hold for Hypothesis-drawn params and data (its candidate
    laws, as `flowlaws explore` checks: the derived ones, with a non-homogeneous activation
    read as ReLU, so a tanh net fails as the paper's laws break on it):
    pointwise (B(theta, grad L) = 0) and, given an ``optimizer``, to first order at
    every one of ``steps`` steps. On failure raises AssertionError naming the law; the shrunk
    counterexample is rendered once: in the pytest plugin's summary under pytest, else in
    the message.

    >>> from flowlaws.models import parse
    >>> assert_conserved(parse("mlp:2-3-1:relu"), optimizer="gd:lr=0.05", max_examples=5)
    """
    import dataclasses
    import os

    from rich.console import Console

    from flowlaws.explore import explore_theorem, settings
    from flowlaws.flows import GD
    from flowlaws.flows import optimizer as make_optimizer
    from flowlaws.invariants import candidate_laws
    from flowlaws.losses import loss as make_loss
    from flowlaws.models import parse
    from flowlaws.report import Counterexample
    from flowlaws.runner import run

    model = parse(model) if isinstance(model, str) else model
    if not candidate_laws(model):
        raise InvalidArgument(f"{model.spec} has no unit whose rescaling could be conserved; add a hidden layer")
    opt = make_optimizer(optimizer) if optimizer is not None else GD(1e-3)
    levels = (Level.POINTWISE, Level.STEP) if optimizer is not None else (Level.POINTWISE,)
    thm = explore_theorem(model, make_loss(loss), opt, law, levels=levels, name="assert_conserved")
    result = run(thm, max_examples=max_examples)
    if result.counterexample is None:
        return
    scenario, verdict = result.counterexample
    cx = Counterexample.of(thm, scenario, verdict, explore=settings(law, levels))
    running = os.environ.get("PYTEST_CURRENT_TEST")  # "path::test (call)" under pytest
    cx = dataclasses.replace(cx, test=running.rsplit(" ", 1)[0] if running else None)
    CAPTURED.append(cx)
    headline = f"{model.spec}: law {cx.evidence.law} violated (effect size {cx.evidence.effect:.3g})"
    if running:  # under pytest the plugin's summary renders the panel, once
        raise AssertionError(f"{headline}; the counterexample is in the flowlaws summary below")
    console = Console(width=100, record=True, file=None, force_terminal=False)
    with console.capture() as capture:
        cx.print_to(console)
    raise AssertionError(f"{headline}\n{capture.get()}")


def check_case(model, params, X, Y, *, loss="square", optimizer=None, levels=None, laws=None,
               steps: int = 3, T: float = 0.2, flow_steps: int = 6):
    """The Verdict of the tool's checks on one case you give (your weights, your data):
    ``holds``, ``violated`` (with the evidence and its effect size) or ``invalid`` (with the
    reason), by the same tolerance model as `flowlaws check`. No Hypothesis inside, so it
    works in your own ``@given`` test and on trained weights.

    ``levels``: any of "pointwise" (B(theta, grad L) = 0), "step" (every ``optimizer`` step
    against its exact prediction: eta^2 Q(g) for GD/SGD, the decay for weight decay, the
    momentum identity; other optimizers are held to Delta Q = Q(Delta) and so break) and
    "flow" (implicit midpoint to ``T``); default pointwise and flow, plus step with an
    optimizer. Heavy-ball momentum is held to its exact identity 2 beta B(theta, v_prev) + Q(v).
    ``laws``: None (every derived law), a kind ("unit", "layer", "matrix") or a law's name.

    >>> import numpy as np; from flowlaws.models import parse
    >>> net = parse("mlp:2-3-1:relu"); p = net.init(np.random.default_rng(0))
    >>> print(check_case(net, p, np.ones((4, 2)), np.zeros((4, 1)), optimizer="gd:lr=0.1").status)
    holds
    """
    import numpy as np

    from flowlaws.checking import Scenario
    from flowlaws.flows import optimizer as make_optimizer
    from flowlaws.invariants import laws as derived
    from flowlaws.losses import loss as make_loss
    from flowlaws.models import parse
    from flowlaws.theorems import Theorem

    model = parse(model) if isinstance(model, str) else model
    opt = make_optimizer(optimizer) if optimizer is not None else None
    loss = make_loss(loss)
    chosen = tuple(x for x in derived(model, loss) if laws in (None, x.kind, x.name))
    if not chosen:
        raise InvalidArgument(f"{model.spec} has no law matching {laws!r}; see `flowlaws laws {model.spec}`")
    default = (Level.POINTWISE, Level.FLOW) + ((Level.STEP,) if opt else ())
    levels = tuple(map(as_level, levels)) if levels is not None else default
    if Level.STEP in levels and opt is None:
        raise InvalidArgument("the step level needs an optimizer, e.g. optimizer='gd:lr=0.1'")
    prediction = "optimizer" if opt is not None else "second-order"
    scenario = Scenario(model, tuple(np.asarray(p, float) for p in params), np.asarray(X, float),
                        np.asarray(Y, float), loss, opt,
                        steps=steps, T=T, flow_steps=flow_steps)
    case = Theorem(id="check_case", title=f"check_case {model.spec}", statement="the derived laws hold on this case",
                   reference="docs/concepts.md", space={}, laws=lambda model, loss=None: chosen, levels=levels,
                   prediction=prediction)
    return case.check(scenario)  # the one place verdicts are decided
