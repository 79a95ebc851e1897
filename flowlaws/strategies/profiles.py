"""Hypothesis settings profiles ``dev``, ``ci`` and ``thorough``, registered here only.

``ci`` replaces the profile Hypothesis loads by itself when ``CI`` is set: it is
derandomized (the same examples on every run) with no deadline. ``thorough`` runs
ten times the examples of ``ci``. ``PROFILES`` maps each name to its example budget
per theorem, which `flowlaws check` uses too.
"""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, settings

PROFILES = {"dev": 20, "ci": 25, "thorough": 250}
_SUPPRESS = [HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large]


def register_profiles() -> None:
    """Register the three profiles (idempotent) and reload the active one if it is ours."""
    common: dict[str, Any] = dict(deadline=None, suppress_health_check=_SUPPRESS, print_blob=True)
    settings.register_profile("dev", max_examples=PROFILES["dev"], **common)
    settings.register_profile("ci", max_examples=PROFILES["ci"], derandomize=True,
                              database=None, **common)
    settings.register_profile("thorough", max_examples=PROFILES["thorough"], **common)


def load_profile(name: str | None = None) -> str:
    """Load ``name``, or ``ci`` when the CI variable is set, else ``dev``."""
    from flowlaws.errors import unknown

    register_profiles()
    chosen = name or ("ci" if os.environ.get("CI") else "dev")
    if chosen not in PROFILES:
        raise unknown("profile", chosen, PROFILES)
    settings.load_profile(chosen)
    return chosen
