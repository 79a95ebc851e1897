import os

import numpy as np
import pytest
from hypothesis import settings

from flowlaws.strategies import register_profiles

# flowlaws' own suite opts in to its profiles (a user's suite keeps its own).
register_profiles()
settings.load_profile("flowlaws-ci" if os.environ.get("CI") else "flowlaws-dev")


@pytest.fixture
def rng():
    return np.random.default_rng(0)
