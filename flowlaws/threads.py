"""BLAS threads: flowlaws' dense algebra is small, so its commands run it on one thread.

Matrices here have tens to a few thousand rows; OpenBLAS's threads buy nothing at that
size, and on a loaded machine they spin waiting for each other (the same `discover` cost
4-15x more CPU with two other processes busy on a 2-core machine). So the ``flowlaws``
command, each campaign or check task on a Dask worker, and every benchmark (both sides
of each ratio) run inside `one_blas_thread()`, which threadpoolctl implements. Library
calls from your own code keep your process's settings; wrap them yourself to match.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from threadpoolctl import threadpool_limits


def one_blas_thread() -> threadpool_limits:
    """A context manager limiting every BLAS library loaded (OpenBLAS, MKL, BLIS) to one thread."""
    return threadpool_limits(limits=1, user_api="blas")


@dataclass(frozen=True)
class OnOneBlasThread:
    """``task`` run inside `one_blas_thread()` (picklable, for Dask workers)."""

    task: Callable

    def __call__(self, *args: Any) -> Any:
        with one_blas_thread():
            return self.task(*args)
