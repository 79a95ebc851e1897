"""Every theorem flowlaws checks, in one registry: Section 2 and its neighbours
(`flowlaws.theorems`), then Section 3 (`flowlaws.matrix_factorization`)."""

from __future__ import annotations

from flowlaws.errors import unknown
from flowlaws.matrix_factorization import THEOREMS as SECTION_3
from flowlaws.theorems import THEOREMS, Theorem

REGISTRY: dict[str, Theorem] = {**THEOREMS, **SECTION_3}


def theorem(theorem_id: str) -> Theorem:
    """Look a theorem up by id (``"thm-2.1"``), with a did-you-mean on a typo."""
    if theorem_id not in REGISTRY:
        raise unknown("theorem", theorem_id, REGISTRY)
    return REGISTRY[theorem_id]


def all_theorems() -> list[Theorem]:
    """Every theorem: the paper's first, then derived ones, then expected breaks, then
    Section 3."""
    return list(REGISTRY.values())
