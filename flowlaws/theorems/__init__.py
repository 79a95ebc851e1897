"""The paper's results and their neighbours as checkable data.

A `Theorem` names the scenarios it quantifies over (``space``, read by
`flowlaws.strategies.scenarios`), the laws it speaks of (a function of the model),
the levels it is checked at, and the hypotheses it needs, as predicates that
explain themselves when they fail. ``expect="breaks"`` marks an expected break:
its conclusion is that the law FAILS, and checking confirms it.
Section 3 (matrix factorization) theorems live in `flowlaws.matrix_factorization`.
"""

from __future__ import annotations

from flowlaws.theorems import breaks, derived, language, paper, symmetries
from flowlaws.theorems.core import HOM, Hypothesis, Result, Space, Theorem
from flowlaws.theorems.hypotheses import HYPOTHESES

THEOREMS: dict[str, Theorem] = {t.id: t for family in (paper, derived, symmetries, language, breaks)
                                for t in family.theorems()}

__all__ = ["HOM", "HYPOTHESES", "THEOREMS", "Hypothesis", "Result", "Space", "Theorem"]
