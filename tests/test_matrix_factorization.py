import json

import numpy as np
import pytest

from flowlaws.matrix_factorization import (
    THEOREMS,
    draw_31,
    draw_32,
    gd,
    iterations_to,
    linear_rate,
    schedule,
    target_matrix,
)
from flowlaws.runner import run

pytestmark = pytest.mark.slow  # property and integration tests: `pytest -m 'not slow'` skips them


def test_gd_step_changes_the_imbalance_by_eta_squared_exactly(rng):
    M = target_matrix(rng, 5, 4, 2)
    U, V = rng.normal(size=(5, 2)), rng.normal(size=(4, 2))
    result = gd(M, U, V, schedule(0.1, 0.6, 50))
    assert result.step_effect <= 1
    assert result.drift <= result.drift_bound


def test_decaying_steps_have_a_finite_square_sum_and_infinite_sum():
    eta = schedule(1.0, 0.5 + 0.25, 100_000)
    assert np.sum(eta**2) <= 1.0 * (1 + 1 / (2 * 0.25))
    assert np.sum(eta) > 30


@pytest.mark.parametrize("tid", ["thm-3.1", "thm-3.2", "min-norm"])
def test_section_3_theorems_hold_as_frequencies_over_seeds(tid):
    result = run(THEOREMS[tid], max_examples=20)
    assert result.verdict == "holds", result.note
    assert result.extra["success_fraction"] >= 0.8 and result.cases >= 10


def test_thm_31_converges_to_a_global_minimum_with_bounded_imbalance():
    verdict = THEOREMS["thm-3.1"].check(draw_31(3))
    assert verdict.status == "holds" and "converged" in verdict.evidence.where


def test_thm_32_rank_one_error_falls_linearly():
    s = draw_32(0)
    result = gd(s.Y.T, *s.params, np.full(s.steps, s.optimizer.lr))
    rate, r2 = linear_rate(result.errors)
    hits = [iterations_to(result.errors, e) for e in (1e-4, 1e-8)]
    assert rate > 0 and r2 > 0.9 and hits[1] < 3 * hits[0]


def test_regularizer_drives_the_fnorm_ratio_to_one_while_plain_gd_freezes_it():
    from flowlaws.figures import figure1_data

    data = figure1_data(steps=1500)
    assert abs(data["init_ratio"] - 0.5) < 1e-12
    assert abs(data["regularized"]["final_ratio"] - 1) < 1e-3
    assert 0.9 < data["plain"]["final_ratio"] < 0.999


def test_figures_quick_writes_png_svg_and_json_with_captions_and_a_balanced_start(tmp_path):
    from flowlaws.figures import make_figures

    phases = []
    written = make_figures(tmp_path, quick=True, on_phase=phases.append)
    assert {p.name for p in written} == {"fig1.png", "fig1.svg", "fig2.png", "fig2.svg", "fig3.png", "fig3.svg",
                                         "figures.json"}
    data = json.loads((tmp_path / "figures.json").read_text())
    assert set(data) == {"figure1", "figure2", "figure3", "captions", "settings"} and len(phases) == 5
    for family in ("translation", "scale", "rescale"):  # Fig. 3: every law on its exact predicted trajectory
        law = data["figure3"][family]
        assert max(law["residual"]) < 1e-12 and abs(law["measured"][-1] - law["measured"][0]) > 1e-3
    balanced = data["figure2"]["balanced"]["pairs"]
    assert all(abs(pair["final_ratio"] - 1) < 3e-3 for pair in balanced.values())  # the paper's 0.3%
    assert data["captions"]["fig2"] in (tmp_path / "fig2.svg").read_text()
