"""Every theorem at every level that applies, and every expected break as a negative
control that Hypothesis must find and shrink."""

import numpy as np
import pytest
from hypothesis import given, settings

from flowlaws.catalog import theorem
from flowlaws.models import Activation, Sequential
from flowlaws.runner import run
from flowlaws.strategies import scenarios
from flowlaws.theorems import THEOREMS

pytestmark = pytest.mark.slow  # property and integration tests: `pytest -m 'not slow'` skips them

TRUE = [t for t in THEOREMS.values() if t.expect == "holds"]
BREAKS = [t for t in THEOREMS.values() if t.expect == "breaks"]


def _property(thm, extreme):
    @given(scenarios(thm, extreme=extreme))
    @settings(max_examples=15)
    def check(scenario):
        verdict = thm.check(scenario)
        assert verdict.status in ("holds", "invalid"), (verdict.status, verdict.evidence)
        assert verdict.status == "invalid" or np.isfinite(verdict.evidence.effect)

    return check


def _still(spec):
    """A case of ``spec`` with its initial weights and zero data, for a hypothesis to judge."""
    from flowlaws.checking import Scenario
    from flowlaws.losses import Square
    from flowlaws.models import parse

    model = parse(spec)
    return model, Scenario(model, model.init(np.random.default_rng(0)), np.zeros((2, *model.input_shape)),
                           np.zeros((2, *model.output_shape)), Square())


@pytest.mark.parametrize("thm", TRUE, ids=lambda t: t.id)
def test_true_theorem_holds_on_every_drawn_scenario(thm):
    _property(thm, extreme=False)()


@pytest.mark.parametrize("thm", [t for t in TRUE if "init_scale" not in t.space], ids=lambda t: t.id)
def test_true_theorem_never_raises_a_false_alarm_at_extreme_magnitudes(thm):
    _property(thm, extreme=True)()


def test_the_extreme_magnitude_false_alarm_of_the_soundness_issue_is_gone():
    from flowlaws.checking import Scenario
    from flowlaws.losses import Square
    from flowlaws.models import parse

    model = parse("mlp:1-1-1-1-1:relu")
    weights = tuple(np.array([[w]]) for w in (1e150, 1e-150, 1e-150, 1e-150))
    scenario = Scenario(model, weights, np.ones((1, 1)), np.ones((1, 1)), Square(), T=0.2, flow_steps=6)
    for theorem_id in ("thm-2.1", "cor-2.1"):
        assert theorem(theorem_id).check(scenario).status == "holds"


def test_an_overflowing_gradient_makes_the_case_invalid_not_a_verdict():
    from flowlaws.checking import Scenario
    from flowlaws.losses import Square
    from flowlaws.models import parse

    model = parse("mlp:1-1-1-1-1:relu")
    weights = tuple(np.array([[1e150]]) for _ in range(4))
    scenario = Scenario(model, weights, np.ones((1, 1)), np.ones((1, 1)), Square(), T=0.2, flow_steps=6)
    verdict = theorem("thm-2.1").check(scenario)
    assert verdict.status == "invalid" and "overflowed" in verdict.reason
    assert not verdict.failed


@pytest.mark.parametrize("thm", TRUE, ids=lambda t: t.id)
def test_true_theorem_run_reports_holds_with_cases_and_worst_effect(thm):
    result = run(thm, max_examples=10)
    assert result.verdict == "holds", result.worst
    assert result.cases > 0 and result.worst.effect <= 1


@pytest.mark.parametrize("thm", BREAKS, ids=lambda t: t.id)
def test_expected_break_is_found_and_shrunk_to_a_small_counterexample(thm):
    result = run(thm, max_examples=25)
    assert result.verdict == "break-confirmed"
    scenario, verdict = result.counterexample
    assert verdict.evidence.effect >= 1e3
    assert len(scenario.X) == thm.space.get("n", (1,))[0]  # the fewest samples the space allows
    layers = getattr(scenario.model, "layers", ())
    fewest = 3 if any(layer.kind == "layernorm" for layer in layers) else 1  # a LayerNorm needs 3 units
    hidden = [layer.units for layer in layers[:-1] if hasattr(layer, "units")]
    assert all(width == fewest for width in hidden), scenario.model.spec  # the fewest units per hidden layer


def test_hypotheses_explain_themselves_when_they_fail(rng):
    from flowlaws.checking import Scenario
    from flowlaws.losses import Square
    from flowlaws.models import mlp

    model = mlp([2, 3, 1], Activation("tanh"))
    scenario = Scenario(model, model.init(rng), np.zeros((1, 2)), np.zeros((1, 1)), Square())
    verdict = theorem("thm-2.1").check(scenario)
    assert verdict.status == "invalid"
    assert "activation 'tanh' is not positively homogeneous: tanh(2*" in verdict.reason


def test_theorem_lookup_suggests_the_closest_id():
    with pytest.raises(ValueError, match=r"did you mean 'thm-2\.1'"):
        theorem("thm-21")


def test_every_paper_result_and_break_has_a_stable_id():
    ids = set(THEOREMS)
    assert {"thm-2.1", "cor-2.1", "thm-2.2", "thm-2.3", "bias", "degree-k", "gd-step", "weight-decay",
            "momentum-step", "balance"} <= ids
    assert {f"break-{a}" for a in ("tanh", "sigmoid", "softplus", "gelu", "elu", "selu", "silu", "swish", "mish",
                                    "hardswish", "hardsigmoid", "relu2", "no-bias", "skip", "momentum", "nesterov",
                                    "adam", "rmsprop", "signgd", "weight-decay")} <= ids
    assert "skip" in ids
    assert all(t.reference and t.statement for t in THEOREMS.values())
    assert Sequential  # the models are data


def test_a_run_draws_without_the_literals_of_the_modules_the_process_has_loaded():
    from hypothesis.internal.conjecture import providers

    outside = providers._get_local_constants()
    seen = []
    run(theorem("thm-2.1"), max_examples=3, on_case=lambda: seen.append(providers._get_local_constants()))
    assert outside.floats or outside.integers  # flowlaws' own modules hold literals
    assert seen and all(not (c.floats or c.integers or c.strings or c.bytes) for c in seen)
    assert providers._get_local_constants() is not seen[0]  # restored after the run


def test_an_expected_break_is_looked_for_in_at_least_min_break_cases_whatever_the_profile():
    from flowlaws.runner import MIN_BREAK_CASES

    result = run(theorem("break-translation-adam"), max_examples=1)
    assert MIN_BREAK_CASES >= 100 and result.verdict == "break-confirmed"  # one case alone would miss it


@pytest.mark.parametrize(("spec", "fragment"), [
    ("seq:2x3:layernorm(affine),relu,maxpool1d(2),flatten,dense(1)", "no pool along a scaled last axis"),
    ("seq:2:dense(1),linear,residual[dense(1),linear,dense(1)],dense(1)", "no linear chain through one scalar"),
    ("seq:1x3:conv1d(2,3,stride=2,padding=1),linear,avgpool1d(2),flatten,dense(1)", "no taps an average pool aliases"),
    ("seq:2x3:prepend,relu,flatten,dense(1)", "no learned offset or token"),
    ("seq:3x3:conv1d(2,1,bias),relu,dense(1,bias),flatten,dense(1,bias)", "no bias shared by mixed units"),
    ("seq:2x3:conv_transpose1d(2,2,stride=2),relu,flatten,dense(2)", "no transposed convolution's taps apart"),
    ("seq:2x3:conv1d(2,1,bias),upsample1d(2),batchnorm,relu,flatten,dense(1)", "no upsampling"),  # 10 laws, 4 derived
    ("seq:2x3:groupnorm(groups=2),moveaxis(0,-1),flatten,dense(1)", "no normalization's groups moved"),  # 2 laws, 0
    ("seq:2x3:layernorm,moveaxis(0,-1),dense(2,bias),flatten,dense(1)", "no normalization's groups moved"),  # 3 not
    ("seq:2x4:conv_transpose1d(2,2,stride=2,bias),linear,avgpool1d(2),flatten,dense(1)",
     "no taps an average pool aliases"),
])
def test_laws_complete_sets_aside_the_families_it_cannot_derive_and_says_which(spec, fragment):
    """Found by the campaigns: laws no declared symmetry gives (docs/theory.md 6 and 7)."""
    _, case = _still(spec)
    verdict = theorem("laws-complete").check(case)
    assert verdict.status == "invalid" and fragment in verdict.reason


@pytest.mark.parametrize("spec", ["seq:3:layernorm,residual[dense(1),relu,dense(3)],flatten,dense(1)",
                                  "mlp:1-6-4:leaky_relu(0.2)"])
def test_laws_complete_holds_on_a_centred_streams_mean_direction_and_on_units_fed_by_one_value(spec):
    """Two families once set aside, now derived: the mean direction of a centred stream (a
    summed law) and the sign classes of units fed by one value (the fewest laws of any
    region, a known extra)."""
    _, case = _still(spec)
    assert theorem("laws-complete").check(case).status == "holds"


@pytest.mark.parametrize(("hypothesis", "spec"), [
    # a transposed convolution's tap classes (docs/theory.md 6)
    ("NO_TAP_CLASSES", "seq:2x2:conv_transpose1d(2,3,stride=2,padding=1),relu,flatten,dense(2)"),  # {0, 2}, {1}: 4, 2
    ("NO_TAP_CLASSES", "seq:2x2:conv_transpose1d(2,3,stride=2,padding=1,bias),relu,flatten,dense(2)"),  # bias joins
    ("NO_TAP_CLASSES", "seq:2x1:conv_transpose1d(2,2),relu,flatten,dense(2)"),  # one input: each tap meets no other
    ("NO_TAP_CLASSES", "seq:2x3:conv_transpose1d(2,1,stride=2,bias),relu,flatten,dense(1)"),  # odd outputs: 4, 2
    ("NO_TAP_CLASSES", "seq:2x2:conv_transpose1d(4,2,stride=2,bias,groups=2),relu,flatten,dense(1)"),
    ("NO_TAP_CLASSES", "seq:2x3:conv_transpose1d(3,2),relu,conv1d(2,2),flatten,dense(1)"),  # stride 1: all meet
    # channels a token drops (docs/theory.md 6)
    ("NO_DROPPED_CHANNELS", "seq:3x3:conv1d(2,1),token,flatten,dense(1)"),  # channel 1 never read: 4, 0 (seed 1800)
    ("NO_DROPPED_CHANNELS", "seq:2x3:batchnorm(affine),token,dense(1)"),  # channel 1's gain and shift never read
    ("NO_DROPPED_CHANNELS", "seq:3x3:conv1d(3,1),relu,dense(2),token,dense(1)"),  # channels stay on the first axis
    ("NO_DROPPED_CHANNELS", "seq:3x3:dense(3),relu,token,dense(2)"),  # a sequence's positions: nothing dropped
    ("NO_DROPPED_CHANNELS", "seq:3x3:conv1d(2,1),moveaxis(0,-1),token,dense(1)"),  # channels last: a position kept
    # a onehot fed by a layer, or of one entry (docs/theory.md 6.7)
    ("ONEHOT_INPUT", "seq:2:scale,onehot,flatten,dense(1)"),  # found by the campaign (seed 6200002): 1 law, 0
    ("ONEHOT_INPUT", "seq:2x3:maxpool1d(2),onehot,flatten,dense(1)"),  # one entry: the constant 1 (seed 6200007)
    ("ONEHOT_INPUT", "seq:3x4:onehot,dense(2),offset,relu,flatten,dense(2)"),  # tokens: all 4 derived
    ("ONEHOT_INPUT", "seq:4:onehot,dense(3,bias),relu,dense(2)"),  # its rows' sums and its bias trade: derived
    # one-hot rows flattened together (docs/theory.md 6.7)
    ("ONEHOT_ROWS_APART", "seq:2x3:onehot,flatten,flatten,dense(1)"),  # two blocks trade: 1, 0 (2026-12-06, seed 5)
    ("ONEHOT_ROWS_APART", "seq:2x3:onehot,flatten,dense(1,bias)"),  # each block with the bias: 2, 0
    ("ONEHOT_ROWS_APART", "seq:2x3:onehot,dense(2),flatten,dense(1)"),  # read one by one: 3, 3
    ("ONEHOT_ROWS_APART", "seq:3:onehot,flatten,dense(2,bias)"),  # one row: nothing merged, 2, 2
])
def test_laws_complete_sets_a_net_aside_exactly_when_discovery_finds_laws_of_that_family_not_derived(hypothesis,
                                                                                                      spec):
    """A hypothesis against the oracle: the nets it sets aside have laws of its family that
    the walker does not derive; the nets it keeps have none."""
    from flowlaws.discover import discover
    from flowlaws.theorems import hypotheses

    model, case = _still(spec)
    found = discover(model)
    assert found.count is not None
    assert (getattr(hypotheses, hypothesis).why(case) is not None) == (not found.complete)
