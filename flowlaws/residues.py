"""Exact arithmetic modulo a prime on numpy arrays: the certified ranks of discovery.

A float64 is a dyadic rational m 2^e, so every number a model holds is an exact element
of the field F_p (p odd). A model's constants (``residues(x, constants=True)``: a leaky
slope 0.1, an average pool's weight 1/9) are read as the small-denominator rationals their
floats round. A
`Residues` array holds int64 residues in [0, p); the ufuncs of a frozen network's
polynomial sweeps (add, subtract, multiply, matmul, divide by a unit, sum) and numpy's
dot, tensordot, einsum and mean are computed exactly and reduced, so the models' own
forward and reverse sweeps run unchanged over F_p. Anything else (exp, a comparison,
a square root) is not a polynomial operation: `Unrepresentable`.

Reduction commutes with +, - and *, so a polynomial with rational coefficients evaluated
mod p is the exact value reduced mod p (no denominator is divisible by p), and the rank
of an integer matrix over F_p never exceeds its rank over Q: D - rank_p is a proven
upper bound on the laws (`flowlaws.discover`).

>>> x = residues([0.1, 3.0], constants=True)
>>> int((x * 10)[0]), int((x + x)[1])
(1, 6)
>>> int(residues(0.375) * 8)  # 3/8, exactly
3
>>> rank_mod_p(residues([[1, 2], [2, 4]]))
1
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from flowlaws.errors import InvalidArgument, Unrepresentable

P = 16_777_213  # the largest prime below 2^24: a product of two residues is < 2^48, and a
# sum of INNER of them fits in int64
INNER = 2**15  # the longest sum a dot product may reduce at once (2^48 * 2^15 = 2^63)
BLAS_PRODUCT = 2**24  # multiply-adds from which a product is faster as float64 BLAS slices (`_matmul`)
BLOCK = 127  # the longest float64 sum of products of balanced residues, |r| <= (P-1)/2 < 2^23,
# that stays exact: 127 * 2^46 < 2^53 (so a BLAS product of such a panel is exact)
EXACT_FLOAT = 2.0**53  # an integral float64 below this is exact
SMALL_DENOMINATOR = 1000  # a float within round-off of p/q, q <= this, is read as p/q

_SHAPES = {np.broadcast_to, np.expand_dims, np.concatenate, np.stack, np.moveaxis, np.pad, np.transpose,
           np.reshape, np.swapaxes, np.squeeze, np.ravel, np.tile, np.repeat, np.atleast_1d, np.atleast_2d}
_RING = {np.add, np.subtract, np.multiply, np.matmul, np.negative, np.positive}
_PLAIN = {np.equal, np.not_equal, np.logical_or, np.logical_and, np.isfinite}


class Residues(np.ndarray):
    """int64 residues mod P whose arithmetic stays exact (module docstring)."""

    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        args = [_int64(x) for x in inputs]
        if ufunc in _PLAIN:  # comparisons and tests of zero: plain booleans
            return getattr(ufunc, method)(*args, **kwargs)
        if method == "__call__" and ufunc is np.matmul and not kwargs:
            result = _matmul(*args)
        elif method == "__call__" and ufunc in _RING:
            if ufunc is np.matmul:
                _check_inner(args[0].shape[-1])
            result = ufunc(*args, **kwargs) % P
        elif method == "__call__" and ufunc in (np.true_divide, np.floor_divide):
            result = args[0] * _inverse(args[1]) % P
        elif method == "reduce" and ufunc is np.add:
            result = ufunc.reduce(*args, **kwargs) % P
        elif method == "at" and ufunc is np.add:
            target = args[0]
            np.add.at(target, *args[1:])
            target %= P
            return None
        else:
            raise Unrepresentable(f"{ufunc.__name__} ({method}) is not a polynomial operation: it has no exact "
                                  "value mod p")
        return _stored(result, out)

    def __getitem__(self, key):
        item = super().__getitem__(key)
        return item if isinstance(item, np.ndarray) else _wrap(item)  # an entry stays exact

    def __array_function__(self, func, types, args, kwargs):
        exact = _FUNCTIONS.get(func)
        if exact is not None:
            return exact(*args, **kwargs)
        result = super().__array_function__(func, types, args, kwargs)
        if func in _SHAPES and isinstance(result, np.ndarray):  # the same residues, moved
            return result.view(Residues)
        return result


def residues(x, constants: bool = False) -> Residues:
    """``x`` (numbers, arrays, Residues) as residues mod P: floats as the exact dyadic
    rationals they are, or with ``constants`` as the small-denominator rationals they round
    (module docstring)."""
    if isinstance(x, Residues):
        return x
    if constants:
        values, where = np.unique(np.asarray(x, dtype=float), return_inverse=True)
        table = np.array([_rational(float(v)) for v in values], dtype=np.int64)
        return _wrap(np.asarray(table[where]).reshape(np.shape(x)))
    return _wrap(_int64(x))


def _int64(x) -> np.ndarray:
    """Plain int64 residues of ``x`` (a Residues array viewed, anything else converted)."""
    if isinstance(x, Residues):
        return x.view(np.ndarray)
    a = np.asarray(x)
    if a.dtype.kind in "iub":
        return np.asarray(a.astype(np.int64) % P)
    if a.dtype.kind == "O" and all(isinstance(v, int) for v in a.flat):  # Python integers of any size
        return np.array([v % P for v in a.flat], dtype=np.int64).reshape(a.shape)
    if a.dtype.kind != "f":
        raise Unrepresentable(f"a {a.dtype} array has no exact value mod p")
    if not np.all(np.isfinite(a)):
        raise Unrepresentable("a non-finite number has no value mod p")
    if np.all(a == np.round(a)) and np.all(np.abs(a) < EXACT_FLOAT):
        return np.asarray(a.astype(np.int64) % P)
    mantissa, exponent = np.frexp(a)  # a = M 2^(exponent - 53) with M = mantissa 2^53 an integer
    M = (mantissa * 2.0**53).astype(np.int64) % P
    return np.asarray(M * _POWERS_OF_TWO[exponent - 53 + _OFFSET] % P)


def _rational(value: float) -> int:
    """The residue of ``value``: the small-denominator rational it rounds, else its exact
    dyadic value."""
    fraction = Fraction(value).limit_denominator(SMALL_DENOMINATOR)
    if float(fraction) != value:
        fraction = Fraction(value)
    return fraction.numerator % P * pow(fraction.denominator, -1, P) % P


def _inverse(a: np.ndarray) -> np.ndarray:
    """Elementwise inverses mod P (Fermat: a^(P-2)), by square-and-multiply in int64."""
    a = np.asarray(a, dtype=np.int64) % P
    if np.any(a == 0):
        raise Unrepresentable("division by a multiple of p")
    result, base, exponent = np.ones_like(a), a, P - 2
    while exponent:
        if exponent & 1:
            result = result * base % P
        base, exponent = base * base % P, exponent >> 1
    return result


def _wrap(x) -> Residues:
    return np.asarray(x).view(Residues)


def _check_inner(length: int) -> None:
    if length >= INNER:
        raise Unrepresentable(f"a sum of {length} products overflows int64 mod p (at most {INNER - 1})")


def _stored(result: np.ndarray, out) -> Residues:
    if out is None:
        return _wrap(result)
    target = out[0]
    target.view(np.ndarray)[...] = result
    return target


def _matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b mod P for int64 residues: a small product in int64 (exact for sums shorter than
    INNER), a large one by float64 BLAS products of BLOCK-long slices of the summed axis,
    each exact (`BLOCK`) and brought near 0 before they are added (about 20 times faster at
    64 x 5,000 x 5,000, about 10 times slower below BLAS_PRODUCT multiply-adds)."""
    inner = a.shape[-1]
    if inner < INNER and (not inner or a.size * (b.shape[-1] if b.ndim > 1 else 1) < BLAS_PRODUCT):
        return np.matmul(a, b) % P
    slices = [slice(start, start + BLOCK) for start in range(0, inner, BLOCK)]
    total = sum(_near_zero(_balanced(a[..., part] % P) @ _balanced((b[part] if b.ndim == 1 else b[..., part, :]) % P))
                for part in slices)
    return (np.asarray(total) % P).astype(np.int64)


def _dot(a, b, out=None):
    a, b = _int64(a), _int64(b)
    _check_inner(a.shape[-1] if a.ndim else 1)
    return _stored(np.dot(a, b) % P, out)


def _tensordot(a, b, axes=2):
    a, b = _int64(a), _int64(b)
    summed = range(a.ndim - axes, a.ndim) if isinstance(axes, int) else np.atleast_1d(axes[0])  # a's axes
    _check_inner(int(np.prod([a.shape[i] for i in summed])))
    return _wrap(np.tensordot(a, b, axes) % P)


def _einsum(*operands, **kwargs):
    subscripts, *arrays = operands
    inputs, output = subscripts.replace(" ", "").split("->")
    terms = [_int64(a) for a in arrays]
    sizes = {letter: n for spec, t in zip(inputs.split(","), terms, strict=True) for letter, n in zip(spec, t.shape,
                                                                                                       strict=True)}
    _check_inner(int(np.prod([n for letter, n in sizes.items() if letter not in output])))
    return _wrap(np.einsum(subscripts, *terms, **kwargs) % P)


def _mean(a, axis=None, keepdims=False, **kwargs):
    a = _int64(a)
    count = a.size if axis is None else int(np.prod([a.shape[i] for i in np.atleast_1d(axis)]))
    total = a.sum(axis=axis, keepdims=keepdims) % P
    return _wrap(total * int(_inverse(np.array(count))) % P)


_OFFSET = 1200  # 2^k mod P for every exponent k of a float64, -1200 <= k < 1200
_POWERS_OF_TWO = np.array([pow(2, k, P) for k in range(-_OFFSET, _OFFSET)], dtype=np.int64)
_FUNCTIONS = {np.dot: _dot, np.tensordot: _tensordot, np.einsum: _einsum, np.mean: _mean}


def rank_mod_p(rows, block: int = BLOCK) -> int:
    """The rank over F_P of a matrix of residues, by blocked Gaussian elimination in place:
    each panel of ``block`` columns is eliminated (`_eliminated`: P panel = L U), its pivot
    rows are swapped to the top, and the rows below replaced by the Schur complement
    S = A22 - L21 L11^-1 A12, one float64 product that is exact (`BLOCK`). The matrix is
    kept as integral floats congruent to its residues, reduced exactly only where a panel
    reads it (|entries| grow by at most 2P a panel, far below 2^53).

    >>> rank_mod_p(residues([[1, 2, 3], [2, 4, 6], [0, 1, 1]]), block=1)
    2
    """
    if not 1 <= block <= BLOCK:
        raise InvalidArgument(f"block must be 1..{BLOCK} columns (a longer float64 sum is not exact), got {block}")
    A = _int64(rows).astype(float)
    if A.ndim != 2:
        return 0
    rank = 0
    for start in range(0, A.shape[1], block):
        if rank == len(A):
            break
        rest = A[rank:, start:]
        order, L = _eliminated(rest[:, :block].astype(np.int64) % P)
        found = L.shape[1]
        L = L[_swapped_to_top(rest, order, found)]
        top = _near_zero(_balanced(_unit_lower_inverse(L[:found])) @ _balanced(rest[:found, block:] % P)) % P
        rest[found:, block:] -= _near_zero(_balanced(L[found:]) @ _balanced(top))
        rank += found
    return rank


def _swapped_to_top(A: np.ndarray, order: np.ndarray, found: int) -> np.ndarray:
    """Swap the pivot rows ``order[:found]`` of ``A`` to its top, in order, in place (a row
    swap each); returns, for each row of the new arrangement, its index in ``order`` (so
    ``L[returned]`` follows the rows)."""
    arranged, position = np.arange(len(A)), np.arange(len(A))
    for i, row in enumerate(order[:found]):
        j = position[row]
        if i != j:
            A[[i, j]] = A[[j, i]]
            position[arranged[i]], position[row] = j, i
            arranged[[i, j]] = arranged[[j, i]]
    index_in_order = np.empty_like(order)
    index_in_order[order] = np.arange(len(order))
    return index_in_order[arranged]


def _eliminated(M: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian elimination of the int64 residues ``M`` (at most 2 BLOCK columns), recursively
    on halves of its columns: (the row order that puts the pivot rows first, the multipliers
    L with M[order] = L U, one column per pivot, unit lower triangular on the pivot rows)."""
    if M.shape[1] <= 8:
        return _eliminated_by_rows(M)
    half = M.shape[1] // 2
    first, L1 = _eliminated(M[:, :half])
    r1 = L1.shape[1]
    right = M[first, half:]
    top = _unit_lower_inverse(L1[:r1]) @ right[:r1] % P  # sums of < BLOCK products below 2^48: int64
    second, L2 = _eliminated((right[r1:] - L1[r1:] @ top % P) % P)
    L = np.zeros((len(M), r1 + L2.shape[1]), dtype=np.int64)
    L[:r1, :r1], L[r1:, :r1], L[r1:, r1:] = L1[:r1], L1[r1:][second], L2
    return np.concatenate([first[:r1], first[r1:][second]]), L


def _eliminated_by_rows(M: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`_eliminated` a row operation at a time (a few columns)."""
    M = M.copy()
    order, L = np.arange(len(M)), np.zeros((len(M), M.shape[1]), dtype=np.int64)
    found = 0
    for column in range(M.shape[1]):
        candidates = np.flatnonzero(M[found:, column]) + found
        if not len(candidates):
            continue
        pivot = candidates[0]
        for a in (M, L, order):
            a[[found, pivot]] = a[[pivot, found]]
        factors = M[found + 1:, column] * _inverse(M[found, column]) % P
        M[found + 1:] = (M[found + 1:] - factors[:, None] * M[found]) % P
        L[found, found], L[found + 1:, found] = 1, factors
        found += 1
        if found == len(M):
            break
    return order, L[:, :found]


def _unit_lower_inverse(L: np.ndarray) -> np.ndarray:
    """The inverse mod P of a unit lower triangular int64 matrix (fewer than BLOCK rows), by
    forward substitution: row i of X = L^-1 is e_i - L[i, :i] X[:i]."""
    X = np.eye(len(L), dtype=np.int64)
    for i in range(1, len(L)):
        X[i] = (X[i] - L[i, :i] @ X[:i]) % P
    return X


def _near_zero(x: np.ndarray) -> np.ndarray:
    """Integral floats below 2^53 replaced, in place, by congruent ones of magnitude at most
    about P/2 (x - P rint(x / P): one rounding of the quotient moves it by at most P more)."""
    q = x * (1.0 / P)
    np.rint(q, out=q)
    q *= P
    x -= q
    return x


def _balanced(x: np.ndarray) -> np.ndarray:
    """Residues in [0, P) as floats in [-(P-1)/2, (P-1)/2]: a product of BLOCK of them is exact."""
    x = np.asarray(x, dtype=float)
    return x - P * (x > P // 2)
