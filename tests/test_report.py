import json

import numpy as np
import pytest
from rich.console import Console

from flowlaws.catalog import theorem
from flowlaws.checking import Scenario
from flowlaws.errors import InvalidArgument
from flowlaws.losses import Square
from flowlaws.models import parse
from flowlaws.report import Counterexample, load, sparkline


@pytest.fixture
def cx():
    model = parse("mlp:1-1-1:tanh")
    scenario = Scenario(model, (np.array([[1.0]]), np.array([[1.0]])), np.array([[1.0]]),
                        np.array([[0.0]]), Square())
    thm = theorem("break-tanh")
    return Counterexample.of(thm, scenario, thm.check(scenario))


def test_counterexample_json_round_trips_and_replays(cx, tmp_path):
    path = cx.save(tmp_path)
    loaded = load(path)
    assert loaded.scenario.model == cx.scenario.model
    assert all(np.array_equal(a, b) for a, b in zip(loaded.scenario.params, cx.scenario.params, strict=True))
    assert loaded.evidence == cx.evidence
    assert theorem(loaded.theorem).check(loaded.scenario).status == "break-confirmed"
    data = json.loads(path.read_text())
    assert data["format"] == "flowlaws-counterexample" and data["version"] == 1
    assert {"flowlaws", "hypothesis"} <= set(data["versions"])


def test_save_writes_json_text_svg_and_html(cx, tmp_path):
    cx.save(tmp_path, "case")
    assert {p.name for p in tmp_path.iterdir()} == {"case.json", "case.txt", "case.svg", "case.html"}
    text = (tmp_path / "case.txt").read_text()
    for fragment in ("break-tanh", "tanh(2*", "mlp:1-1-1:tanh", "dense0.W", "law value over time",
                     "flowlaws replay"):
        assert fragment in text


def test_rendering_shows_theorem_hypotheses_tree_params_and_attribution(cx):
    console = Console(record=True, width=100)
    console.print(cx)
    text = console.export_text()
    assert "with tanh the neuron-wise law is NOT conserved" in text
    assert "✗" in text and "dense(1) → (1,)" in text and "effect" in text


@pytest.mark.parametrize(
    ("content", "fragment"),
    [("{not json", "not valid JSON"), ('{"format": "other"}', "not a flowlaws counterexample"),
     ('{"format": "flowlaws-counterexample", "version": 99}', "report version 99"),
     ('{"format": "flowlaws-counterexample", "version": 1, "spec": "mlp:1-1-1:tanh"}', "damaged"),
     ("", "not valid JSON")],
)
def test_corrupted_truncated_or_foreign_files_raise_a_clear_error(tmp_path, content, fragment):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(InvalidArgument) as info:
        load(path)
    assert fragment in str(info.value)


def test_truncated_report_is_rejected(cx, tmp_path):
    path = cx.save(tmp_path)
    path.write_text(path.read_text()[:200])
    with pytest.raises(InvalidArgument, match="truncated"):
        load(path)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(InvalidArgument, match="cannot read"):
        load(tmp_path / "missing.json")


def test_sparkline_spans_the_range():
    assert sparkline([0, 1, 2, 3, 4, 5, 6, 7]) == "▁▂▃▄▅▆▇█"
    assert sparkline([1, 1, 1]) == "▁▁▁"
    assert isinstance(Counterexample, type)


def test_the_sparkline_follows_the_run_that_failed_and_round_off_stays_flat():
    from pathlib import Path

    from flowlaws.report import law_series, load, sparkline

    corpus = Path(__file__).parent / "corpus"
    for name in ("break-momentum", "break-adam"):  # step-level failures: the optimizer's own run
        series = law_series(load(corpus / f"{name}.json"))
        assert len(set(sparkline(series))) > 2, name
    assert set(sparkline([1.0, 1.0 + 1e-15, 1.0 - 1e-15])) == {"▁"}
