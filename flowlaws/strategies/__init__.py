"""Public Hypothesis strategies: architectures, params, datasets, losses, optimizers
and whole scenarios for a theorem. Options are keyword-only and validated; weights
and data are drawn with ``hypothesis.extra.numpy`` (bounded, finite, no subnormals)
so every counterexample shrinks."""

from flowlaws.strategies.core import (
    architectures,
    datasets,
    losses,
    magnitudes,
    optimizers,
    params,
    scenarios,
    subarchitectures,
)
from flowlaws.strategies.profiles import PROFILES, profile_name, register_profiles

__all__ = [
    "PROFILES",
    "architectures",
    "datasets",
    "losses",
    "magnitudes",
    "optimizers",
    "params",
    "profile_name",
    "register_profiles",
    "scenarios",
    "subarchitectures",
]
