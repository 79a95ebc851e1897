import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowlaws.invariants import laws
from flowlaws.invariants import stacked as stacked_module
from flowlaws.invariants.stacked import Stacked
from flowlaws.models import flatten
from flowlaws.strategies import architectures, params

METHODS = ("value", "first", "second", "magnitude", "first_magnitude")


def _agree(model, a, b):
    law_list = laws(model, "cross_entropy")
    stack = Stacked(law_list, [shape for _, shape in model.param_specs])
    fa, fb = flatten(a), flatten(b)
    args = {"value": (fa,), "first": (fa, fb), "second": (fb,), "magnitude": (np.abs(fa), np.abs(fb)),
            "first_magnitude": (np.abs(fa), np.abs(fb))}
    size_a, size_b = tuple(np.abs(x) for x in a), tuple(np.abs(x) for x in b)  # magnitudes take |values|
    law_args = {"value": (a,), "first": (a, b), "second": (b,), "magnitude": (size_a, size_b),
                "first_magnitude": (size_a, size_b)}
    for method in METHODS:
        components = getattr(stack, method)(*args[method])
        assert components.shape == (stack.size,)
        for law in law_list:
            want = np.asarray(getattr(law, method)(*law_args[method]), float)
            got = np.asarray(stack.part(law, components), float)
            scale = np.asarray(law.magnitude(size_a, size_a) + law.magnitude(size_b, size_b), float)
            assert np.all(np.abs(got - want) <= 1e-13 * (scale + 1)), (law.name, method)
    # the Jacobian's rows are the components' gradients: J u = Dh(theta)[u]
    first = stack.first(fa, fb)
    assert np.allclose(stack.jacobian(fa) @ fb, first, rtol=1e-12, atol=1e-12 * (1 + np.max(np.abs(first))))
    return stack, law_list


@given(st.data())
def test_every_law_component_equals_the_law_evaluated_on_its_own_for_every_architecture_kind(data):
    model = data.draw(architectures())
    _agree(model, data.draw(params(model)), data.draw(params(model)))


@pytest.mark.parametrize(("spec", "kind"), [
    ("mlp:2-3-2:linear", "matrix"), ("seq:3x2:attention(heads=2,dk=2,dv=1),flatten,dense(2)", "matrix"),
    ("seq:2x4:layernorm,residual[dense(2),relu,dense(4,bias)],flatten,dense(1)", "summed"),
    ("seq:2:dense(3,bias),layernorm,linear,dense(4),layernorm,linear,dense(1)", "matrix")])  # a centred one
def test_matrix_and_summed_laws_past_the_pair_limit_are_evaluated_densely_with_the_same_values(spec, kind, rng,
                                                                                            monkeypatch):
    from flowlaws.models import parse

    model = parse(spec)
    _agree(model, model.init(rng), model.init(rng))  # sparse pairs
    monkeypatch.setattr(stacked_module, "PAIR_LIMIT", 0)
    stack, _ = _agree(model, model.init(rng), model.init(rng))
    assert stack.dense and all(law.kind in ("matrix", "summed") for law in stack.dense)
    assert any(law.kind == kind for law in stack.dense)


def test_locate_names_the_law_and_unit_of_every_component(rng):
    from flowlaws.models import parse

    model = parse("mlp:2-3-2:linear")
    law_list = laws(model)
    stack = Stacked(law_list, [shape for _, shape in model.param_specs])
    found = [stack.locate(i) for i in range(stack.size)]
    unit, layer, matrix = law_list[0], law_list[1], law_list[2]
    assert found[:3] == [(unit, (0,)), (unit, (1,)), (unit, (2,))]
    assert found[3] == (layer, ())
    assert found[4:13] == [(matrix, (i, j)) for i in range(3) for j in range(3)]


@pytest.mark.parametrize("limit", [1_000_000, 0])
def test_a_matrix_of_points_gives_one_row_of_components_per_point(limit, rng, monkeypatch):
    from flowlaws.models import parse

    monkeypatch.setattr(stacked_module, "PAIR_LIMIT", limit)
    model = parse("mlp:2-3-2:linear")
    stack = Stacked(laws(model), [shape for _, shape in model.param_specs])
    points = np.stack([flatten(model.init(rng)) for _ in range(4)])
    for method in METHODS:
        args = (np.abs(points),) * (1 if method in ("value", "second") else 2)
        rows = getattr(stack, method)(*args)
        assert rows.shape == (4, stack.size)
        assert np.allclose(rows, [getattr(stack, method)(*(a[k] for a in args)) for k in range(4)], rtol=1e-14)
