"""Certified counts: exact fields equal a rational reference, exact derivatives of
polynomials, proven bounds that meet, and a false law caught by exact orthogonality."""

import json
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowlaws.certificate import _Exact, certify, lagrange_slopes
from flowlaws.cli import main
from flowlaws.discover import Problem, discover, lie_rank
from flowlaws.invariants import laws
from flowlaws.models import LAYERS, flatten, parse, unflatten
from flowlaws.models.kinds import conv
from flowlaws.models.kinds.pool import Pool
from flowlaws.models.kinds.sinusoid import Sinusoid
from flowlaws.residues import P, rank_mod_p, residues

POLYNOMIAL_EXAMPLES = [pytest.param(k.example, id=k.kind) for k in LAYERS
                       if all(layer.polynomial for layer in parse(k.example).all_layers)]


def _fractions(a):
    out = np.empty(np.shape(a), dtype=object)
    for index, v in np.ndenumerate(np.asarray(a, dtype=float)):
        out[index] = Fraction(float(v))
    return out


def _constants(pattern, convert):
    if pattern is None:
        return None
    if isinstance(pattern, tuple):
        return tuple(_constants(p, convert) for p in pattern)
    return convert(pattern)


def _small_rational(v):
    fraction = Fraction(float(v)).limit_denominator(1000)
    return fraction if float(fraction) == v else Fraction(float(v))


@pytest.mark.parametrize("spec", POLYNOMIAL_EXAMPLES)
def test_the_exact_field_of_every_polynomial_kind_equals_its_value_in_rationals(spec, monkeypatch):
    model = parse(spec)
    rng = np.random.default_rng(3)
    shapes = [s for _, s in model.param_specs]
    theta = flatten(model.init(rng))
    X, C = rng.normal(size=(4, *model.input_shape)), rng.normal(size=(4, *model.output_shape))
    pattern = model.pattern(unflatten(theta, shapes), X)
    exact_params = unflatten(residues(theta), shapes)
    _, cache = model.forward(exact_params, residues(X), _constants(pattern, lambda p: residues(p, constants=True)))
    exact = residues(flatten(model.backward(exact_params, cache, residues(C))))
    im2col = conv._im2col  # its sparse col2im takes no Python objects: a dense 0/1 matrix of ints instead
    monkeypatch.setattr(conv, "_im2col", lambda *a: (im2col(*a)[0], im2col(*a)[1].toarray().astype(int).astype(object)))
    mean = Pool.weights  # an average's 1/size^dims as a Fraction (ints divide to a float)
    monkeypatch.setattr(Pool, "weights", lambda self, x: np.full(np.shape(mean(self, x)), Fraction(
        1, self.size**self.dims), dtype=object) if self.reduce == "mean" else mean(self, x))
    encoding = Sinusoid.encoding  # its table's float64 values, exactly, as the residues read them
    monkeypatch.setattr(Sinusoid, "encoding", lambda self, shape: _fractions(encoding(self, shape)))
    params = tuple(_fractions(p) for p in unflatten(theta, shapes))
    _, cache = model.forward(params, _fractions(X), _constants(pattern, np.vectorize(_small_rational, otypes=[object])))
    gradient = flatten(model.backward(params, cache, _fractions(C)))
    reference = [g.numerator % P * pow(g.denominator, -1, P) % P for g in gradient]
    assert np.asarray(exact).view(np.ndarray).tolist() == reference


@given(st.lists(st.integers(-(10**6), 10**6), min_size=1, max_size=7))
def test_the_lagrange_slopes_give_the_exact_derivative_at_zero_of_a_polynomial(coefficients):
    def q(t):
        return sum(c * t**k for k, c in enumerate(coefficients))

    slopes = lagrange_slopes(len(coefficients) - 1)
    assert sum(c * q(t) for t, c in enumerate(slopes)) % P == (coefficients[1] if len(coefficients) > 1 else 0) % P


@pytest.mark.parametrize(("spec", "count"), [
    ("mlp:2-3-1:relu", 3), ("mlp:3-4-4-2:leaky_relu(0.1):bias", 8), ("mlp:3-4-3:linear", 10),
    ("seq:1x6:conv1d(2,3),relu,maxpool1d(2),flatten,dense(1)", 2),
    ("seq:3:dense(3),relu,residual[dense(2),relu,dense(3)],relu,dense(1)", 5),
    ("seq:2x4:gated[dense(3) | dense(3),relu],dense(2)", None), ("factorization:4x5:2", 3),
])
def test_a_polynomial_network_is_counted_with_a_proof(spec, count):
    found = discover(parse(spec), degree=0)
    certificate = found.certificate
    assert certificate.method == "exact" and certificate.prime == P and certificate.failure < 1e-3
    assert certificate.lower == found.derived and certificate.upper >= found.derived
    if count is not None:
        assert found.decided_by == "exact" and found.count == certificate.upper == count


def test_a_law_that_is_not_conserved_is_caught_by_exact_orthogonality():
    relu, linear = parse("mlp:2-3-2:relu"), parse("mlp:2-3-2:linear")
    problem = Problem(relu, np.random.default_rng(0))
    lie = lie_rank(problem)
    false = [law for law in laws(linear) if law.name not in {law.name for law in laws(relu)}]
    assert false  # the linear net's matrix law is not a ReLU net's
    certificate = certify(problem, lie.depths, false, problem.shapes)
    assert certificate.laws and not certificate.decides
    honest = certify(problem, lie.depths, laws(relu), problem.shapes)
    assert honest.decides and not honest.laws


NON_POLYNOMIAL_EXAMPLES = [pytest.param(k.example, id=k.kind) for k in LAYERS
                           if not all(layer.polynomial for layer in parse(k.example).all_layers)]


@pytest.mark.parametrize("spec", [*NON_POLYNOMIAL_EXAMPLES, "mlp:2-3-2:tanh"])
def test_the_fields_error_bound_holds_against_extended_precision(spec):
    """Every non-polynomial kind: the fields computed in float64 are within gamma(n) M of
    the same sweeps in 80-bit extended precision, entry by entry, and so within the
    verified certificate's bound on ||E||_2."""
    from flowlaws.checking import accumulation_length, gamma

    model = parse(spec)
    problem = Problem(model, np.random.default_rng(0))
    fields, scales = problem.fields.real, problem.values(problem.theta, magnitude=True)
    params = tuple(p.astype(np.longdouble) for p in unflatten(problem.theta, problem.shapes))
    reference = np.zeros(fields.shape, dtype=np.longdouble)
    for batch, pattern in zip(problem.batches, problem.pattern, strict=True):
        _, cache = model.forward(params, problem.X[batch].astype(np.longdouble), pattern)
        for k, weights in enumerate(problem.C):
            reference[k] += flatten(model.backward(params, cache, weights[batch].astype(np.longdouble)))
    assert reference.dtype == np.longdouble and np.finfo(np.longdouble).eps < 1e-18  # the sweeps kept the precision
    error = np.abs(fields - reference).astype(float)  # rounded once more: far below the bound
    bound = gamma(accumulation_length(model, problem.X)) * scales
    assert np.all(error <= bound) and float(np.linalg.norm(error, 2)) <= float(np.linalg.norm(bound))


def test_a_normalized_network_is_proven_at_depth_0_by_verified_ranks():
    found = discover(parse("seq:3:dense(4),layernorm,relu,dense(2)"), degree=0)
    certificate = found.certificate
    assert found.decided_by == "verified" and found.count == 4 and certificate.decides
    assert certificate.method == "verified" and certificate.error > 0 and certificate.gap == found.gap


def test_a_count_that_needs_brackets_keeps_a_numerical_decision_above_its_verified_upper_bound():
    """Attention's GL laws need depth 1: the verified depth-0 bound (D - 16 = 17) stays
    above the count (12), which the numerical brackets decide."""
    found = discover(parse("seq:3x3:attention(heads=1,dk=2,dv=2),flatten,dense(1)"), degree=0)
    assert found.decided_by == "bounds" and found.count == 12
    assert found.certificate.method == "verified" and not found.certificate.decides
    assert found.certificate.upper == 17 and found.certificate.lower == 12


def test_an_understated_error_bound_would_verify_nothing_it_should_not(monkeypatch):
    """The negative control: with gamma inflated past the fields' singular values, the
    verified upper bound is D (no direction verified) and nothing is decided by it."""
    import flowlaws.checking as checking

    monkeypatch.setattr(checking, "gamma", lambda n: 1e6)
    found = discover(parse("seq:3:dense(4),layernorm,relu,dense(2)"), degree=0)
    assert found.certificate.upper == found.params and found.decided_by == "bounds"


def test_the_certificate_is_in_the_json_and_in_explain(capsys):
    assert main(["discover", "mlp:2-3-1:relu", "--degree", "0", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["decided_by"] == "exact" and document["certificate"]["prime"] == P
    assert document["certificate"]["upper"] == document["certificate"]["lower"] == 3
    assert main(["discover", "mlp:2-3-1:relu", "--degree", "0", "--explain"]) == 0
    text = capsys.readouterr().out
    assert f"exact ranks over F_{P}" in text and "under-ranks" in text


def test_the_exact_fields_are_the_numerical_fields_at_the_same_point():
    problem = Problem(parse("mlp:3-4-2:relu:bias"), np.random.default_rng(1))
    exact = _Exact(problem, problem.theta)
    generators = lie_rank(problem).depths[0]
    rows = np.stack([np.asarray(exact.value(g, exact.theta)).view(np.ndarray) for g in generators])
    numeric = problem.values(problem.theta)
    assert np.array_equal(rows == 0, numeric == 0)  # the same zero pattern (the same region)
    assert np.linalg.matrix_rank(numeric) == rank_mod_p(rows)


@pytest.mark.parametrize(("spec", "closes"), [("mlp:1-2-2-1:linear", True), ("mlp:2-2-2:linear", False)])
def test_closure_is_certified_only_when_the_probing_brackets_stay_in_the_span_mod_p(spec, closes):
    """f = x prod(theta) (scalar input and output): every field is a multiple of one gradient,
    so a bracket stays in their span; a 2-2-2 linear net's brackets leave its fields' span."""
    from flowlaws.discover import bracket

    model = parse(spec)
    problem = Problem(model, np.random.default_rng(0), enough=0)
    generators = problem.generators()
    rank = certify(problem, [generators], [], problem.shapes).ranks[-1]
    certificate = certify(problem, [generators], [], problem.shapes, [bracket(generators[0], generators[1])], rank)
    assert certificate.closed is closes and certificate.decides is closes
    assert not certify(problem, [generators], [], problem.shapes, [bracket(generators[0], generators[1])],
                       rank + 1).closed  # at another rank than the numerical one, nothing is certified


def test_an_svd_that_lapack_s_gesdd_does_not_converge_on_is_taken_by_gesvd(monkeypatch):
    """gesdd fails on some benign matrices (an 80 x 72 basis of unit rows from a LayerNorm
    net's brackets made `flowlaws discover` an internal error); gesvd gives the same values."""
    from flowlaws.certificate import svd

    M = np.random.default_rng(0).normal(size=(8, 6))
    expected = np.linalg.svd(M, compute_uv=False)

    def diverging(*args, **kwargs):
        raise np.linalg.LinAlgError("SVD did not converge")

    monkeypatch.setattr(np.linalg, "svd", diverging)
    assert np.allclose(svd(M, compute_uv=False), expected, rtol=1e-13)
    U, s, Vt = svd(M)
    assert np.allclose((U * s) @ Vt, M, atol=1e-13)
