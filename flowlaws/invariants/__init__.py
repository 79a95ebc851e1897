"""Laws derived from a model's symmetries; quadratic forms Q, B and their magnitudes."""

from flowlaws.invariants.laws import (
    KINDS,
    Law,
    LawKind,
    candidate_laws,
    independent_count,
    laws,
    one_to_one,
    rowwise,
    skip_ignored_laws,
    structural_count,
    without_bias,
)

__all__ = [
    "KINDS",
    "Law",
    "LawKind",
    "candidate_laws",
    "independent_count",
    "laws",
    "one_to_one",
    "rowwise",
    "skip_ignored_laws",
    "structural_count",
    "without_bias",
]
