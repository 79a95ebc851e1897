import dataclasses
import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowlaws.invariants import laws
from flowlaws.invariants.sums import CHANNELS, OPERANDS, LawSums, stack
from flowlaws.models import parse
from flowlaws.models.symmetry import LawKind
from flowlaws.strategies import architectures, params


def _unit(law):
    return law if law.kind is LawKind.UNIT else dataclasses.replace(law, kind=LawKind.UNIT)


def _expected(law, T, DR, R, D, G):
    """The CHANNELS sums of one law, slice by slice (`Law` itself)."""
    unit = _unit(law)
    if law.order == 2:
        signed = [unit.bilinear(T, DR), unit.bilinear(T, R), unit.value(D)]
        absolute = [unit.magnitude(x, x) for x in (D, T, R, G)]
    else:
        signed = [unit.value(DR), unit.value(R), unit.value(tuple(np.abs(p) for p in D))]
        D, T, R, G = (tuple(np.abs(p) for p in x) for x in (D, T, R, G))
        absolute = [unit.magnitude(x, x) for x in (D, T, R, G)]
    return np.array(signed, float), np.array(absolute, float)


def _agree(model, draws, small):
    law_list = laws(model, "cross_entropy")
    T, R, D, G = draws
    DR = tuple(d - r for d, r in zip(D, R, strict=True))
    sums = LawSums(law_list, [shape for _, shape in model.param_specs], small)
    Z, Zabs = sums(stack(T, DR, R, D, G))
    assert Z.shape == Zabs.shape == (sums.M.shape[0], CHANNELS)
    for law in law_list:
        rows = sums.rows(law)
        signed, absolute = _expected(law, T, DR, R, D, G)
        scale = np.max(absolute, axis=0) + 1.0
        assert np.all(np.abs(Z[rows, :3].T - signed) <= 1e-12 * scale), (model.spec, law.name)
        assert np.all(np.abs(Zabs[rows, 2:].T - absolute) <= 1e-12 * scale), (model.spec, law.name)
        assert np.all(sums.order[rows] == law.order)


@given(st.data())
def test_every_law_s_sums_equal_the_law_evaluated_slice_by_slice_for_every_architecture_kind(data):
    model = data.draw(architectures())
    small = data.draw(st.sampled_from([0, 10, 10**9]), label="small")  # in place, both, on the host
    _agree(model, [data.draw(params(model)) for _ in range(4)], small)


@pytest.mark.parametrize("spec", [
    "seq:4x6:conv1d(4,3,groups=2),relu,conv1d(4,3,groups=2),flatten,dense(2)",
    "seq:3x2:flatten,dense(3),relu,dense(2)",
    "seq:3x2:attention(heads=2,dk=2,dv=1),flatten,dense(2)",
    "mlp:2-3-2:linear",
    "seq:2:batchnorm,moe(experts=2,hidden=1,top=1,gate=softmax,expert=relu),flatten,dense(1)",  # a unit per entry
    # a kernel's columns (`View.transposed`)
    "seq:2x4x4:conv2d(3,2,stride=2,bias),flatten(start=1),moveaxis(0,-1),layernorm(eps=1e-05),flatten,dense(1)",
    # a row's entries in interleaved parts: a LayerNorm's groups moved and flattened
    "seq:2x3:layernorm,moveaxis(0,-1),flatten,dense(2)",
    # taps that meet only padding, each entry its own unit (`View.span` with more units than its rows)
    "seq:1x2:conv1d(2,1),relu,conv1d(2,3,stride=2,padding=1),relu,flatten,dense(1)",
])
@pytest.mark.parametrize("small", [0, 10**9])
def test_grouped_interleaved_and_matrix_views_sum_as_their_slices_do(spec, small, rng):
    model = parse(spec)
    _agree(model, [model.init(rng) for _ in range(4)], small)


def test_a_missing_gradient_counts_as_zero(rng):
    model = parse("mlp:2-3-2:relu")
    T, R, D = (model.init(rng) for _ in range(3))
    for small in (0, 10**9):
        sums = LawSums(laws(model), [shape for _, shape in model.param_specs], small)
        _, Zabs = sums(stack(T, D, R, D, (None,) * len(T)))
        assert np.all(Zabs[:, 5] == 0) and np.all(Zabs[:, 3] > 0)


def test_a_law_whose_slices_no_law_shares_has_its_own_rows_and_a_unit_law_shares_its_layer_law_s(rng):
    model = parse("mlp:2-3-2:relu")
    law_list = laws(model)
    sums = LawSums(law_list, [shape for _, shape in model.param_specs])
    unit, layer = law_list[0], law_list[1]
    assert sums.rows(unit) == sums.rows(layer) == slice(0, 3)


@pytest.mark.parametrize("spec", [
    "seq:4x6:conv1d(4,3,groups=2),relu,conv1d(4,3,groups=2),flatten,dense(2)",
    "seq:3x2:attention(heads=2,dk=2,dv=1),flatten,dense(2)",
    "seq:2x4x4:conv2d(3,3,padding=1),relu,flatten,dense(3,bias),relu,dense(2)",
    "seq:40:dense(36,bias),relu,dense(33),relu,dense(2)",  # rows of 40 and 36: Grams
    "seq:8x5x5:conv2d(6,3,padding=1),relu,conv2d(4,3,padding=1),flatten,dense(2)",  # conv rows of 72 and 54
    # a kernel's columns (`View.transposed`)
    "seq:2x4x4:conv2d(3,2,stride=2,bias),flatten(start=1),moveaxis(0,-1),layernorm(eps=1e-05),flatten,dense(1)",
    # a row's entries in interleaved parts: a LayerNorm's groups moved and flattened
    "seq:2x3:layernorm,moveaxis(0,-1),flatten,dense(2)",
])
def test_torch_views_with_any_strides_sum_as_numpy_arrays_do(spec, rng):
    # the PyTorch monitor's operands are strided views of one (5, N) array; here each
    # parameter's five are laid out in order (rows long enough are summed from Grams) and
    # with its axes reversed in memory
    torch = pytest.importorskip("torch")
    model = parse(spec)
    law_list = laws(model, "cross_entropy")
    shapes = [shape for _, shape in model.param_specs]
    values = [rng.normal(size=(5, *shape)) for shape in shapes]

    def reversed_in_memory(a):
        axes = (0, *range(a.ndim - 1, 0, -1))
        return torch.from_numpy(np.ascontiguousarray(a.transpose(axes))).permute(*np.argsort(axes))

    for tensors, small in itertools.product(([reversed_in_memory(a) for a in values],
                                             [torch.from_numpy(a) for a in values]), (0, 10)):
        sums = LawSums(law_list, shapes, small)
        Z, Zabs = sums(tensors.__getitem__)
        Zn, Zabsn = sums(values.__getitem__)
        scale = np.max(Zabsn, axis=0) + 1.0
        assert np.all(np.abs(Z - Zn) <= 1e-13 * scale) and np.all(np.abs(Zabs - Zabsn) <= 1e-13 * scale)


@pytest.mark.parametrize("spec", [
    "mlp:2-3-2:linear",
    "seq:3x2:attention(heads=2,dk=2,dv=1),flatten,dense(2)",  # heads strided as one batch; the output gathered
    "seq:3x4:attention(heads=2,dk=2,dv=2,kv_heads=1),flatten,dense(2)",
    "seq:2:dense(3),layernorm,linear,dense(3),layernorm,linear,dense(1)",  # centred
    "seq:4x6:conv1d(4,3,groups=2),linear,conv1d(4,3,groups=2),flatten,dense(2)",  # blocks, gathered
])
def test_matrix_forms_equal_each_law_s_first_order_change_and_its_prediction_at_every_entry(spec, rng):
    import torch

    from flowlaws.invariants.sums import OPERANDS, MatrixForms

    model = parse(spec)
    law_list = [law for law in laws(model) if law.kind is LawKind.MATRIX]
    assert law_list
    shapes = [shape for _, shape in model.param_specs]
    starts = np.cumsum([0, *(int(np.prod(s)) for s in shapes)])
    DR, D, T, R, _ = operands = [model.init(rng) for _ in OPERANDS]
    X = torch.as_tensor(np.stack([np.concatenate([p.ravel() for p in x]) for x in operands]))
    forms = MatrixForms(law_list, shapes, lambda k: np.arange(starts[k], starts[k + 1]))
    residuals = forms(X)
    for law in law_list:
        expected = law.first(T, DR)
        assert np.allclose(residuals[id(law)], expected, rtol=1e-12, atol=1e-12 * np.abs(expected).max())
    predictions = {law: law.first(T, R) + law.second(D) for law in law_list}
    for i, j in itertools.product(range(max(len(p) for p in predictions.values())), repeat=2):
        at = {law: (i % len(p), j % len(p)) for law, p in predictions.items()}
        found = forms.predicted({id(law): entry for law, entry in at.items()})
        for law, p in predictions.items():
            assert abs(found[id(law)] - p[at[law]]) <= 1e-12 * (1 + abs(p[at[law]])), (law.name, at[law])


@given(st.data())
def test_sums_from_products_formed_once_equal_the_sums_of_the_operands(data):
    """The monitor of a small model forms every quadratic product once (`products`) and
    sums views of them; the sums are the same as from the operands."""
    from flowlaws.invariants.sums import products

    model = data.draw(architectures())
    small = data.draw(st.sampled_from([0, 10, 10**9]), label="small")
    T, R, D, G = (data.draw(params(model)) for _ in range(4))
    DR = tuple(d - r for d, r in zip(D, R, strict=True))
    sums = LawSums(laws(model, "cross_entropy"), [shape for _, shape in model.param_specs], small)
    stacked = stack(T, DR, R, D, G)
    formed = {k: products(stacked(k).reshape(len(OPERANDS), -1), np.empty((CHANNELS, T[k].size))).reshape(
        CHANNELS, *T[k].shape) for k in range(len(T))}
    segment = [formed[k].reshape(CHANNELS, -1) for k in sorted(sums.positions)]
    segment = np.concatenate(segment, 1) if segment else np.zeros((CHANNELS, 0))
    Z, Zabs = sums(stacked)
    Zp, Zabsp = sums(stacked, formed=(formed.__getitem__, segment))
    scale = np.abs(Zabs).max() + 1.0
    assert np.allclose(Z, Zp, rtol=0, atol=1e-12 * scale) and np.allclose(Zabs, Zabsp, rtol=0, atol=1e-12 * scale)


@given(st.data())
def test_a_plan_made_once_sums_whatever_its_arrays_hold_when_it_is_called(data):
    """`LawSums.planned` chooses views and axes once, for arrays that keep their places (the
    monitor's kept buffer); called after every array was overwritten in place, it gives
    the sums of the new values, for numpy arrays and torch tensors, from the small
    parameters' entries gathered or from reductions in place."""
    torch = pytest.importorskip("torch")
    model = data.draw(architectures())
    small = data.draw(st.sampled_from([0, 10**9]), label="small")
    sums = LawSums(laws(model, "cross_entropy"), [shape for _, shape in model.param_specs], small)

    def operands():
        T, R, D, G = (data.draw(params(model)) for _ in range(4))
        stacked = stack(T, tuple(d - r for d, r in zip(D, R, strict=True)), R, D, G)
        return [stacked(k) for k in range(len(T))]

    first, second = operands(), operands()
    for kept in ([a.copy() for a in first], [torch.from_numpy(a.copy()) for a in first]):
        write = sums.planned(kept.__getitem__)
        for a, b in zip(kept, second, strict=True):
            a[...] = b if isinstance(a, np.ndarray) else torch.from_numpy(b)
        planned, fresh = write(), sums.columns(second.__getitem__)
        assert np.allclose(planned, fresh, rtol=0, atol=1e-12 * (np.abs(fresh).max() + 1.0)), model.spec
