"""Hypothesis settings profiles ``flowlaws-dev``, ``flowlaws-ci`` and ``flowlaws-thorough``.

They are registered (by importing flowlaws.strategies, or by the pytest plugin) and never
loaded behind anyone's back: flowlaws' own runs (check, explore, assert_conserved) pass
their settings explicitly, and a user's own @given tests keep whatever profile the user
(or Hypothesis's CI detection) chose. Opt in with ``pytest --hypothesis-profile
flowlaws-ci`` or ``settings.load_profile("flowlaws-ci")``. ``flowlaws-ci`` is derandomized
(the same examples on every run) with no deadline; ``flowlaws-thorough`` runs ten times
the examples of ``flowlaws-ci``. ``PROFILES`` maps each short name (``flowlaws check
--profile``) to its example budget per theorem.
"""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, settings

PROFILES = {"dev": 20, "ci": 200, "thorough": 2000}
_SUPPRESS = [HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large]


def register_profiles() -> None:
    """Register the three profiles (idempotent); nothing is loaded."""
    common: dict[str, Any] = dict(deadline=None, suppress_health_check=_SUPPRESS, print_blob=True)
    settings.register_profile("flowlaws-dev", max_examples=PROFILES["dev"], **common)
    settings.register_profile("flowlaws-ci", max_examples=PROFILES["ci"], derandomize=True,
                              database=None, **common)
    settings.register_profile("flowlaws-thorough", max_examples=PROFILES["thorough"], **common)


def profile_name(name: str | None = None) -> str:
    """``name``, or ``ci`` when the CI variable is set, else ``dev`` (the short names)."""
    from flowlaws.errors import unknown

    chosen = name or ("ci" if os.environ.get("CI") else "dev")
    if chosen not in PROFILES:
        raise unknown("profile", chosen, PROFILES)
    return chosen


register_profiles()
