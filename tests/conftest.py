import os
import sys

# one BLAS thread and one torch thread per test process, as flowlaws' commands and benchmarks
# run (flowlaws/threads.py): its arrays are small, and with pytest-xdist two processes' threads
# spin waiting for each other on the same cores (the torch monitor's tests took 200 s on two
# workers, 27 s pinned). OMP_NUM_THREADS is read when torch is first imported.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pytest
from hypothesis import settings
from threadpoolctl import threadpool_limits

from flowlaws.strategies import register_profiles

threadpool_limits(limits=1, user_api="blas")
if "torch" in sys.modules:  # a plugin imported it before this file: too late for the variable
    sys.modules["torch"].set_num_threads(1)

# flowlaws' own suite opts in to its profiles (a user's suite keeps its own), with the
# example count of a unit test: flowlaws-ci's 200 cases per theorem are `flowlaws check`'s gate.
register_profiles()
base = settings.get_profile("flowlaws-ci" if os.environ.get("CI") else "flowlaws-dev")
settings.register_profile("flowlaws-suite", base, max_examples=25)
settings.load_profile("flowlaws-suite")


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def without_kernel(monkeypatch):
    """LawMonitor's sums in torch alone, as where flowlaws/torch/kernel.c cannot be built."""
    from flowlaws.torch import kernel

    monkeypatch.setenv("FLOWLAWS_KERNEL", "0")
    kernel.library.cache_clear()
    yield
    kernel.library.cache_clear()
