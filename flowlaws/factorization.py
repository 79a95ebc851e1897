"""Section 3 of the paper: asymmetric matrix factorization (filled in by issue 6)."""

THEOREMS: dict = {}
