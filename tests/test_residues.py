"""Arithmetic mod p on numpy arrays is exact, reads floats as the rationals they are, and
refuses what has no value mod p."""

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from flowlaws.errors import InvalidArgument, Unrepresentable
from flowlaws.residues import INNER, P, Residues, rank_mod_p, residues

small = st.integers(-(2**40), 2**40)
finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


def _plain(x) -> np.ndarray:
    return np.asarray(x).view(np.ndarray)


@given(arrays(np.int64, (3, 4), elements=small), arrays(np.int64, (4, 2), elements=small),
       arrays(np.int64, (3, 2), elements=small))
def test_products_and_sums_equal_python_integers_reduced(a, b, c):
    exact = [[(sum(int(a[i, k]) * int(b[k, j]) for k in range(4)) - int(c[i, j])) % P for j in range(2)]
             for i in range(3)]
    assert _plain(residues(a) @ residues(b) - residues(c)).tolist() == exact


@given(finite)
def test_a_float_is_read_as_its_exact_dyadic_value(x):
    fraction = Fraction(x)
    assert int(residues(x) * fraction.denominator) == fraction.numerator % P


@pytest.mark.parametrize(("value", "fraction"), [(0.1, Fraction(1, 10)), (1 / 9, Fraction(1, 9)),
                                                  (4 / 3, Fraction(4, 3)), (0.25, Fraction(1, 4))])
def test_a_models_constants_are_read_as_the_small_rationals_they_round(value, fraction):
    assert int(residues(value, constants=True) * fraction.denominator) == fraction.numerator % P


def test_division_by_an_integer_is_multiplication_by_its_inverse():
    assert int(residues(7) / 3 * 3) == 7


def test_shape_functions_and_means_keep_the_residues():
    x = residues(np.arange(6).reshape(2, 3))
    moved = np.broadcast_to(np.expand_dims(x, 0), (2, 2, 3)) / 2
    assert isinstance(moved, Residues) and int(moved[1, 1, 2] * 2) == 5
    assert int(np.mean(x) * 6) == 15 and isinstance(np.concatenate([x, x]), Residues)


def test_a_non_polynomial_operation_has_no_value_mod_p():
    with pytest.raises(Unrepresentable, match="not a polynomial operation"):
        np.exp(residues([1, 2]))
    with pytest.raises(Unrepresentable, match="division by a multiple of p"):
        residues(1) / P


def test_a_sum_that_could_overflow_int64_is_refused():
    with pytest.raises(Unrepresentable, match="overflows"):
        np.tensordot(residues(np.ones((1, INNER))), residues(np.ones((INNER, 1))), axes=1)


@given(st.integers(1, 3), st.integers(0, 300), st.integers(1, 3), st.integers(0, 2**32), st.sampled_from([0, 2**24]))
def test_a_matrix_product_is_exact_at_any_length_by_blas_slices_or_in_int64(m, inner, n, seed, blas_from):
    from unittest import mock

    import flowlaws.residues as module

    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, P, (m, inner)), rng.integers(0, P, (inner, n))
    exact = (a.astype(object) @ b.astype(object)) % P if inner else np.zeros((m, n), dtype=object)
    with mock.patch.object(module, "BLAS_PRODUCT", blas_from):
        assert np.array_equal(_plain(residues(a) @ residues(b)), exact.astype(np.int64))
        assert np.array_equal(_plain(residues(a[0]) @ residues(b)), exact[0].astype(np.int64))


@given(arrays(np.int64, (4, 5), elements=st.integers(-3, 3)))
def test_the_rank_mod_p_of_a_small_integer_matrix_is_its_rank(M):
    assert rank_mod_p(residues(M)) == np.linalg.matrix_rank(M.astype(float))


def test_the_rank_mod_p_can_only_fall_below_the_rank_over_the_rationals():
    assert rank_mod_p(residues([[P, 0], [0, 1]])) == 1  # rank 2 over Q


def _rank_by_python_integers(M) -> int:
    """An independent rank over F_P: Gaussian elimination on Python integers, a row at a time."""
    rows, rank = [[int(v) % P for v in row] for row in M], 0
    for column in range(len(rows[0]) if rows else 0):
        pivot = next((i for i in range(rank, len(rows)) if rows[i][column]), None)
        if pivot is None:
            continue
        rows[rank], rows[pivot] = rows[pivot], rows[rank]
        inverse = pow(rows[rank][column], -1, P)
        for i in range(rank + 1, len(rows)):
            factor = rows[i][column] * inverse % P
            rows[i] = [(a - factor * b) % P for a, b in zip(rows[i], rows[rank], strict=True)]
        rank += 1
    return rank


@given(st.integers(1, 24), st.integers(1, 24), st.integers(0, 24), st.sampled_from([1, 2, 3, 8, 127]),
       st.integers(0, 2**32))
def test_the_blocked_rank_mod_p_equals_plain_elimination_over_python_integers(m, n, inner, block, seed):
    rng = np.random.default_rng(seed)
    B, C = rng.integers(0, P, (m, inner)), rng.integers(0, P, (inner, n))
    M = np.array((B.astype(object) @ C.astype(object)) % P if inner else np.zeros((m, n)), dtype=np.int64)
    M[rng.random(M.shape) < 0.2] = 0  # zero entries: pivots missing in some columns
    assert rank_mod_p(residues(M), block=block) == _rank_by_python_integers(M)


def test_the_blocked_rank_mod_p_crosses_many_panels_exactly():
    rng = np.random.default_rng(1)
    B, C = rng.integers(0, P, (300, 260)), rng.integers(0, P, (260, 400))
    M = np.array((B.astype(object) @ C.astype(object)) % P, dtype=np.int64)  # rank 260 (w.h.p. 1 - 260/P)
    assert rank_mod_p(residues(M)) == _rank_by_python_integers(M) == 260


def test_a_panel_wider_than_an_exact_float64_sum_is_refused():
    with pytest.raises(InvalidArgument, match="a longer float64 sum is not exact"):
        rank_mod_p(residues(np.eye(3, dtype=np.int64)), block=128)
