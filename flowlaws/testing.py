"""Helpers for users' own test suites."""

from __future__ import annotations

from flowlaws.errors import InvalidArgument

CAPTURED: list = []  # counterexamples found in this process (the pytest plugin renders them)


def assert_conserved(model, *, loss="square", optimizer=None, law=None, max_examples: int = 50,
                     steps: int = 3) -> None:
    """Assert that ``model``'s derived laws hold for Hypothesis-drawn params and data:
    pointwise (B(theta, grad L) = 0) and, given an ``optimizer``, to first order at
    every one of ``steps`` steps. On failure raises AssertionError with the shrunk,
    rendered counterexample (also kept for the pytest plugin's summary).

    >>> from flowlaws.models import parse
    >>> assert_conserved(parse("mlp:2-3-1:relu"), optimizer="gd:lr=0.05", max_examples=5)
    """
    import dataclasses

    from rich.console import Console

    from flowlaws.explore import explore_theorem
    from flowlaws.flows import GD
    from flowlaws.flows import optimizer as make_optimizer
    from flowlaws.invariants import laws
    from flowlaws.losses import loss as make_loss
    from flowlaws.models import parse
    from flowlaws.report import Counterexample
    from flowlaws.theorems import run

    model = parse(model) if isinstance(model, str) else model
    if not laws(model):
        raise InvalidArgument(f"{model.spec} has no conservation law to check")
    opt = make_optimizer(optimizer) if optimizer is not None else GD(1e-3)
    thm = explore_theorem(model, make_loss(loss), opt, law)
    levels = ("pointwise", "step") if optimizer is not None else ("pointwise",)
    thm = dataclasses.replace(thm, id="assert_conserved", levels=levels,
                              laws=lambda m: tuple(x for x in laws(m) if law in (None, x.kind, x.name)))
    result = run(thm, max_examples=max_examples)
    if result.counterexample is None:
        return
    cx = Counterexample.of(thm, *result.counterexample)
    CAPTURED.append(cx)
    console = Console(width=100, record=True, file=None, force_terminal=False)
    with console.capture() as capture:
        console.print(cx.renderable())
    raise AssertionError(f"{model.spec}: law {cx.evidence.law} violated "
                         f"(effect {cx.evidence.effect:.3g})\n{capture.get()}")
