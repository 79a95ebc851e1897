"""Running a theorem: Hypothesis draws its scenarios, each case is checked, and a
failure (a violated law, or a confirmed break) is shrunk to a counterexample.

`run(theorem)` is what `flowlaws check`, `flowlaws campaign`, `assert_conserved` and the
test suite call; its draws are pinned (`pinned_draws`) so a seed draws the same cases in
any process.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from contextlib import contextmanager
from typing import Any

import numpy as np

from flowlaws.checking import NO_EVIDENCE, Status
from flowlaws.strategies import scenarios
from flowlaws.theorems import Result, Theorem


@contextmanager
def pinned_draws():
    """Hypothesis mixes literals of the local modules loaded in the process into its draws
    (hypothesis.internal.conjecture.providers, 6.13x+), so the same seed would draw
    differently in a CLI process, a Dask worker and a test suite that has imported more.
    Within `run` that pool is pinned to empty (a private hook, used only when it exists)
    and its cache cleared before and after: a run draws the same cases in any process."""
    try:
        from hypothesis.internal.conjecture import providers

        original, constants = providers._get_local_constants, providers.Constants  # type: ignore[attr-defined]
    except (ImportError, AttributeError):  # another Hypothesis: nothing to pin
        yield
        return
    empty = constants()
    providers.CONSTANTS_CACHE.cache.clear()
    providers._get_local_constants = lambda: empty  # type: ignore[attr-defined]
    try:
        with warnings.catch_warnings():  # a Dask worker's own threads use `random`, not our strategies
            warnings.filterwarnings("ignore", message="Do not use the `random` module inside strategies")
            yield
    finally:
        providers._get_local_constants = original  # type: ignore[attr-defined]
        providers.CONSTANTS_CACHE.cache.clear()


MIN_BREAK_CASES = 100  # the fewest cases an expected break is looked for in


def run(thm: Theorem, *, max_examples: int = 25, derandomize: bool = True, seed: int | None = None,
        on_case: Callable | None = None) -> Result:
    """Check ``thm`` over Hypothesis-drawn scenarios, shrinking any counterexample.

    For "holds", a case beyond tolerance fails the search and is shrunk; for "breaks",
    the search looks for (and shrinks) a case where the law fails.
    """
    runner = getattr(thm, "runner", None)
    if runner is not None:
        return runner(thm, max_examples=max_examples, seed=seed)
    from hypothesis import HealthCheck, Phase, assume, given, settings, target
    from hypothesis import seed as hypothesis_seed

    state: dict[str, Any] = {"cases": 0, "invalid": 0, "worst": NO_EVIDENCE, "failure": None}
    breaks = thm.expect == "breaks"

    def body(scenario):
        verdict = thm.check(scenario)
        if on_case:
            on_case()
        if verdict.status is Status.INVALID:
            state["invalid"] += 1
            assume(False)
        state["cases"] += 1
        if verdict.evidence.effect >= state["worst"].effect:
            state["worst"] = verdict.evidence
        target(float(min(np.log10(verdict.evidence.effect + 1e-300), 300.0)), label="log10 effect")
        if verdict.failed:
            state["failure"] = (scenario, verdict)
            raise AssertionError(f"{thm.id}: effect {verdict.evidence.effect:.3g}")

    test = given(scenarios(thm))(body)
    # an expected break is looked for in at least MIN_BREAK_CASES cases (it stops at its first
    # failure): missing it in a small profile would be a finding that is none (exit 1)
    budget = max(max_examples, MIN_BREAK_CASES) if breaks else max_examples
    test = settings(max_examples=budget, derandomize=derandomize and seed is None,
                    deadline=None, database=None, print_blob=False,
                    # one counterexample per theorem: shrink the first failure at once (by
                    # default Hypothesis draws as many cases again looking for other errors)
                    report_multiple_bugs=False,
                    suppress_health_check=list(HealthCheck),
                    # the explain phase (which parts of a failure matter) costs 2/3 of a
                    # break's time and is not used: the counterexample is the output
                    phases=[p for p in Phase if p is not Phase.explain])(test)
    if seed is not None:
        test = hypothesis_seed(seed)(test)
    started = time.perf_counter()
    found = False
    try:
        with pinned_draws():
            test()
    except AssertionError:
        found = True
    except Exception as error:  # Hypothesis gave up (e.g. every case invalid)
        return Result(thm, "error", state["cases"], state["invalid"], state["worst"],
                      time.perf_counter() - started, note=f"{type(error).__name__}: {error}")
    seconds = time.perf_counter() - started
    outcomes = ("break-confirmed", "break-missed") if breaks else ("violated", "holds")
    verdict = outcomes[0] if found else outcomes[1]
    failure = state["failure"] if found else None
    worst = failure[1].evidence if failure else state["worst"]
    return Result(thm, verdict, state["cases"], state["invalid"], worst, seconds, failure)




__all__ = ["MIN_BREAK_CASES", "pinned_draws", "run"]
