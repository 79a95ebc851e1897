"""`Trajectory`: what a flow or an optimizer run produced, and how it ended."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np


class Status(enum.Enum):
    """How a run ended; the value is the message shown to users."""

    OK = "ok"
    DIVERGED = "loss became non-finite at step {step}; try a smaller step"
    MAX_STEPS = "stopped after {step} gradient evaluations (the budget); raise max_evaluations"
    UNRESOLVED = ("the implicit solve of step {step} did not converge even after halving the step: "
                  "the flow is too stiff at this scale; use more steps")

    def message(self, step: int | None) -> str:
        return self.value.format(step=step)


@dataclass(frozen=True)
class Trajectory:
    """Snapshots theta_0, theta_1, ... with their times and losses (``losses``, computed
    on first use by ``loss_values``: the flow checks never read them).

    ``grads`` holds the (minibatch) loss gradient used at each step for optimizer
    runs (None for flows), and ``states`` the optimizer's state before it; ``evaluations`` counts gradient evaluations;
    ``solve_errors[k]`` is how far step k's gradient point was from the true midpoint
    and ``patterns[k]`` the activation pattern frozen for that step (implicit midpoint;
    see `flowlaws.flows.integrators`).
    """

    times: np.ndarray
    params: list
    loss_values: Callable[[], np.ndarray]
    evaluations: int
    status: Status = Status.OK
    step: int | None = None
    grads: list | None = None
    solve_errors: np.ndarray | None = None
    method: str = ""
    patterns: list | None = None
    states: list | None = None  # the optimizer's state before each step (`rest` reads it)

    @cached_property
    def losses(self) -> np.ndarray:
        """L at every snapshot."""
        return self.loss_values()

    @property
    def ok(self) -> bool:
        return self.status is Status.OK

    @property
    def message(self) -> str:
        return self.status.message(self.step)

    @property
    def final(self):
        return self.params[-1]

    def __len__(self) -> int:
        return len(self.params)
