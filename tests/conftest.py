import os

import numpy as np
import pytest
from hypothesis import settings

from flowlaws.strategies import register_profiles

# flowlaws' own suite opts in to its profiles (a user's suite keeps its own), with the
# example count of a unit test: flowlaws-ci's 200 cases per theorem are `flowlaws check`'s gate.
register_profiles()
base = settings.get_profile("flowlaws-ci" if os.environ.get("CI") else "flowlaws-dev")
settings.register_profile("flowlaws-suite", base, max_examples=25)
settings.load_profile("flowlaws-suite")


@pytest.fixture
def rng():
    return np.random.default_rng(0)
