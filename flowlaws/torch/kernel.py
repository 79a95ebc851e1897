"""LawMonitor's per-unit sums in one compiled pass per parameter (kernel.c).

Eager torch has no fused product-and-sum: `LawSums` forms a step's six products in one
pass and sums them in more, and in a training loop every pass reads from the last-level
cache (the forward and backward evicted the operands). The kernel reads each operand once
per parameter, forms the products in double (a float32 product is exact there) and adds
them into every kept set's sums (docs/benchmarks.md: the conv net's monitor from 12% of a
step to 5%). It is C, compiled by the system's compiler (``$CC``, else ``cc``) on first
use into ``$XDG_CACHE_HOME/flowlaws`` (else ``~/.cache/flowlaws``, else a temporary
folder) and loaded with ctypes; where there is no compiler, or ``FLOWLAWS_KERNEL=0``, or
the operands are not float32 or float64 on the CPU, the monitor sums with torch's passes
(the same sums; tests/test_torch_kernel.py holds them equal).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from flowlaws.invariants.sums import CHANNELS, LawSums, affine_strides

SOURCE = Path(__file__).with_name("kernel.c")
FLAGS = ("-O3", "-fopenmp-simd", "-fno-math-errno", "-fPIC", "-shared")
MAXD, MAXS = 6, 4  # kernel.c's limits: axes of a parameter, kept sets of a job
JOB = 4 + 2 * MAXD + MAXS + MAXS * MAXD  # a job's fields (kernel.c)


def _cache() -> Path:
    """Where the compiled kernel is kept: the user's cache folder, else a temporary one."""
    home = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    folder = Path(home) / "flowlaws"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if os.access(folder, os.W_OK):
            return folder
    except OSError:
        pass
    return Path(tempfile.mkdtemp(prefix="flowlaws-kernel-"))


@functools.cache
def library():
    """The compiled kernel (ctypes), built once per source, compiler and flags; None where
    it cannot be built or ``FLOWLAWS_KERNEL=0``."""
    if os.environ.get("FLOWLAWS_KERNEL", "1") == "0":
        return None
    compiler = os.environ.get("CC") or "cc"
    source = SOURCE.read_bytes()
    key = hashlib.sha256(b"\0".join([source, *(s.encode() for s in (compiler, *FLAGS, platform.machine()))]))
    folder = _cache()
    path = folder / f"kernel-{key.hexdigest()[:16]}.so"
    try:
        if not path.exists():
            fd, partial = tempfile.mkstemp(suffix=".so", dir=folder)
            os.close(fd)
            done = subprocess.run([compiler, *FLAGS, str(SOURCE), "-o", partial], capture_output=True, timeout=120)
            if done.returncode:
                os.unlink(partial)
                return None
            os.replace(partial, path)  # atomic: another process may build it at the same time
        lib = ctypes.CDLL(str(path))
    except Exception:  # whatever keeps it from being built or loaded: torch's passes instead
        return None
    size = ctypes.c_int64
    for function in (lib.sums_float32, lib.sums_float64):  # (X, N, out, ld, columns, jobs, count, fly)
        function.argtypes = [ctypes.c_void_p, size, ctypes.c_void_p, size, size, ctypes.c_void_p, size, size]
        function.restype = None
    return lib


def _row_major(shape: tuple, axes) -> list:
    """The weights of ``axes`` in a row-major index over them (0 on every other axis)."""
    weights, weight = [0] * len(shape), 1
    for a in reversed(range(len(shape))):
        if a in axes:
            weights[a], weight = weight, weight * shape[a]
    return weights


def _merged(view: tuple, order: int, sets: list) -> tuple:
    """A job with its axes in memory order (the shortest stride last: a transposed view is
    read along its rows; a sum is the same in any order), and each pair of neighbouring
    axes that one stride and every set's weights step over alike made one axis (a 3 x 3
    kernel's taps: one axis of 9), so the kernel's inner loop runs long and contiguous."""
    axes = sorted(range(len(view[0])), key=lambda a: -view[1][a])
    shape, stride, offset = [view[0][a] for a in axes], [view[1][a] for a in axes], view[2]
    weights = [[w[a] for a in axes] for _, w in sets]
    for a in reversed(range(len(shape) - 1)):
        n = shape[a + 1]
        if stride[a] == n * stride[a + 1] and all(w[a] == n * w[a + 1] for w in weights):
            shape[a:a + 2], stride[a:a + 2] = [shape[a] * n], [stride[a + 1]]
            for w in weights:
                w[a:a + 2] = [w[a + 1]]
    return (tuple(shape), tuple(stride), offset), order, [(first, w) for (first, _), w in zip(sets, weights,
                                                                                              strict=True)]


def jobs(sums: LawSums, views: dict, length: int) -> np.ndarray | None:
    """The kernel's jobs for every sum of `LawSums.columns`, (jobs, JOB) int64: each
    parameter's view (shape, strides, offset) of a row of ``length`` entries, and for each
    kept set its first column and the weights of its slot; None where a view passes the
    kernel's limits or the rows' bounds (every place a job reads or writes is checked here:
    the kernel checks nothing)."""
    found = []
    for params, _, order, _, _ in sums.reductions:
        for k in params:
            shape = sums.shapes[k]
            sets = [axes for (param, o, axes) in sums.placed if param == k and o == order]
            found.append((views[k], order, [(sums.placed[k, order, axes], _row_major(shape, axes)) for axes in sets]))
    for order, params in sums.flat.items():
        for k in params:
            positions = sums.positions[k]
            places = affine_strides(positions.reshape(sums.shapes[k]))  # of its entries among the columns
            if places is None:
                return None
            first = sums.segment_start[order] + (int(positions[0]) if positions.size else 0)
            found.append((views[k], order, [(first, list(places))]))
    found = [_merged(*job) for job in found if 0 not in job[0][0]]  # an empty parameter adds nothing
    columns = sums.M.shape[1]
    table = np.zeros((len(found), JOB), dtype=np.int64)
    for row, ((shape, stride, offset), order, sets) in zip(table, found, strict=True):
        lead = max(0, 2 - len(shape))  # the kernel reads at least two axes: leading ones of length 1
        shape, stride = (1,) * lead + tuple(shape), (0,) * lead + tuple(stride)
        weights = [[0] * lead + list(w) for _, w in sets]
        if len(shape) > MAXD or len(sets) > MAXS or min(stride) < 0 or offset < 0:
            return None
        last = offset + sum((n - 1) * s for n, s in zip(shape, stride, strict=True))
        slots = [first + sum((n - 1) * x for n, x in zip(shape, w, strict=True)) for (first, _), w in zip(sets, weights,
                                                                                                        strict=True)]
        if last >= length or max(slots) >= columns or min(min(w) for w in weights) < 0:
            return None
        row[:4] = offset, len(shape), order, len(sets)
        row[4:4 + len(shape)], row[4 + MAXD:4 + MAXD + len(shape)] = shape, stride
        for s, ((first, _), w) in enumerate(zip(sets, weights, strict=True)):
            row[4 + 2 * MAXD + s] = first
            at = 4 + 2 * MAXD + MAXS + s * MAXD
            row[at:at + len(w)] = w
    return table


def compiled(dtype, device) -> bool:
    """Whether the kernel sums operands of ``dtype`` on ``device`` here (float32 or float64
    on the CPU, and the kernel built)."""
    import torch

    return torch.device(device).type == "cpu" and dtype in (torch.float32, torch.float64) and library() is not None


def planned(sums: LawSums, X, views: dict, fly: bool):
    """`LawSums.planned` for the rows X (`OPERANDS`, N) in one compiled pass: a call
    ``write(out)`` writing the CHANNELS x columns sums into ``out``, a float64 CPU tensor
    with contiguous rows (``fly``: X's row D holds theta after the step, and D and D - R
    are formed in the pass); None where the kernel does not apply (no compiler, not float32
    or float64 on the CPU, a view past its limits)."""
    import torch

    if not compiled(X.dtype, X.device) or not X.is_contiguous():
        return None
    table = jobs(sums, views, X.shape[1])
    if table is None:
        return None
    function = library().sums_float32 if X.dtype == torch.float32 else library().sums_float64
    columns, length, count = sums.M.shape[1], X.shape[1], len(table)

    def write(out):
        if (out.dtype != torch.float64 or out.device.type != "cpu" or tuple(out.shape) != (CHANNELS, columns)
                or out.stride(1) != 1 or out.stride(0) < columns):
            raise ValueError(f"the kernel writes float64 ({CHANNELS}, {columns}) rows; got {out.dtype} "
                             f"{tuple(out.shape)}")
        function(X.data_ptr(), length, out.data_ptr(), out.stride(0), columns, table.ctypes.data, count, int(fly))
    return write
