"""The types: a `Hypothesis` (a predicate that explains itself), a `Theorem` (a checkable
statement as data) and a `Result` (what running one found); and the spaces' shared parts."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypedDict

import numpy as np

from flowlaws.checking import NO_EVIDENCE, Evidence, Scenario, Status, Verdict, run_levels
from flowlaws.errors import InvalidArgument, Unrepresentable


@dataclass(frozen=True)
class Hypothesis:
    """A named predicate on a scenario; ``why(s)`` is None when it holds."""

    name: str
    why: Callable[[Scenario], str | None]


class Space(TypedDict, total=False):
    """What a theorem quantifies over (read by `flowlaws.strategies.scenarios`); every key is
    optional: ``architectures``, ``losses`` and ``optimizers`` are the options of the
    strategies of those names; ``model``, ``loss`` and ``optimizer`` fix them instead."""

    architectures: dict
    losses: dict
    optimizers: dict
    model: Any
    loss: Any
    optimizer: Any
    steps: int  # optimizer steps of the step level (default 3)
    T: float  # flow time (default 0.2)
    flow_steps: int  # implicit midpoint steps (default 8)
    n: tuple[int, int]  # batch sizes (default (1, 4))
    generic: bool  # perturb data and params so that no normalization group is constant
    exponents: tuple[int, int]  # the range of the adversarial magnitudes (default 1e-150..1e150)
    init_scale: float  # a seeded Gaussian init of this scale instead of drawn params
    scale: float  # of ordinary params


@dataclass(frozen=True, kw_only=True)
class Theorem:
    """A checkable statement (keyword arguments only: a theorem row reads as a record).
    ``expect`` is "holds" or "breaks"."""

    id: str
    title: str
    statement: str
    reference: str
    space: Space
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


def arch(**options) -> Space:
    """A space's architectures (`flowlaws.strategies.architectures` options)."""
    return {"architectures": options}


HOM = ("relu", "leaky_relu", "abs", "prelu", "linear")
_FLOW: Space = {"T": 0.2, "flow_steps": 6}
_NORMALIZED: Space = {"n": (2, 5), "generic": True}  # batches of distinct samples: a constant group is 0/0
