"""Threads for every benchmark, the same on both sides of each ratio: one BLAS thread
(`flowlaws.threads.one_blas_thread`, as the ``flowlaws`` command runs) and one torch
thread. Each bench prints `NOTE` with its figures."""

from __future__ import annotations

from flowlaws.threads import one_blas_thread

NOTE = "threads: 1 BLAS thread (threadpoolctl) and 1 torch thread, on both sides of every ratio"
_LIMITS = []


def pin_threads() -> str:
    """Pin this process for the rest of its life; returns `NOTE`."""
    _LIMITS.append(one_blas_thread())  # threadpoolctl applies the limit when it is made
    try:
        import torch
    except ImportError:
        return NOTE
    torch.set_num_threads(1)
    return NOTE
