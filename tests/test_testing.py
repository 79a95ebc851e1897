import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowlaws import check_case
from flowlaws.errors import InvalidArgument
from flowlaws.models import parse
from flowlaws.strategies import datasets, params

NET = parse("mlp:3-4-2:relu:bias")


@settings(max_examples=10)
@given(st.data())
def test_check_case_holds_inside_a_users_own_given_test(data):
    p = data.draw(params(NET))
    X, Y = data.draw(datasets(NET))
    verdict = check_case(NET, p, X, Y, optimizer="gd:lr=0.05")
    assert verdict.status in ("holds", "invalid") and verdict.evidence.effect <= 1


def test_check_case_finds_momentum_and_tanh_violations(rng):
    X, Y = rng.normal(size=(4, 3)), rng.normal(size=(4, 2))
    p = NET.init(rng)
    assert check_case(NET, p, X, Y, optimizer="momentum:lr=0.1,beta=0.9").status == "holds"  # exact identity
    assert check_case(NET, p, X, Y, optimizer="adam:lr=0.1").status == "violated"
    tanh = parse("mlp:3-4-2:tanh:bias")
    relu_laws = check_case(NET, p, X, Y, levels=["pointwise"])
    assert relu_laws.status == "holds"
    with pytest.raises(InvalidArgument, match="has no law"):
        check_case(tanh, p, X, Y)


def test_check_case_on_an_overflowing_case_is_invalid_with_a_reason():
    net = parse("mlp:1-1-1-1-1:relu")
    big = tuple(np.array([[1e150]]) for _ in range(4))
    verdict = check_case(net, big, np.ones((1, 1)), np.ones((1, 1)), levels=["pointwise"])
    assert verdict.status == "invalid" and "overflowed" in verdict.reason


@pytest.mark.parametrize(("kwargs", "fragment"), [
    ({"levels": ["step"]}, "needs an optimizer"),
    ({"laws": "nope"}, "no law matching"),
    ({"optimizer": "gd:lr=-1"}, "lr must be"),
])
def test_check_case_rejects_bad_arguments_with_the_fix(rng, kwargs, fragment):
    with pytest.raises(InvalidArgument, match=fragment):
        check_case(NET, NET.init(rng), np.ones((2, 3)), np.ones((2, 2)), **kwargs)


def test_the_readme_example_for_your_own_tests_runs():
    from pathlib import Path

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    block = readme.split("### Using flowlaws in your own tests")[1].split("```python")[1].split("```")[0]
    namespace: dict = {}
    exec(block, namespace)
    namespace["test_my_training_step_keeps_the_laws"]()


def test_a_subclass_of_an_optimizer_inherits_its_exact_step_prediction(rng):
    from flowlaws.flows import Momentum

    class MyMomentum(Momentum):
        pass

    X, Y = rng.normal(size=(4, 3)), rng.normal(size=(4, 2))
    verdict = check_case(NET, NET.init(rng), X, Y, optimizer=MyMomentum(0.1, beta=0.9), levels=["step"])
    assert verdict.status == "holds" and verdict.evidence.effect <= 1


def test_assert_conserved_finds_the_break_of_a_tanh_net():
    from flowlaws import assert_conserved
    from flowlaws.testing import CAPTURED

    captured = len(CAPTURED)
    with pytest.raises(AssertionError, match="violated"):
        assert_conserved(parse("mlp:3-4-2:tanh"), max_examples=20)
    assert CAPTURED.pop().theorem == "assert_conserved" and len(CAPTURED) == captured
