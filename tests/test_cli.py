import json
from pathlib import Path

import numpy as np
import pytest

from flowlaws.cli import main
from flowlaws.models import parse

pytestmark = pytest.mark.slow  # property and integration tests: `pytest -m 'not slow'` skips them

CORPUS = sorted((Path(__file__).parent / "corpus").glob("*.json"))


def run_cli(capsys, *args):
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_laws_json_gives_the_independent_counts(capsys):
    for spec, count in (("mlp:3-4-5-2:relu:bias", 9), ("mlp:3-4-2:tanh", 0), ("mlp:2-3-2:linear", 6)):
        code, out, _ = run_cli(capsys, "laws", spec, "--json")
        doc = json.loads(out)
        assert code == 0 and doc["independent"] == count and doc["spec"] == spec


def test_check_selected_theorems_json_is_one_clean_document(capsys, tmp_path):
    code, out, _ = run_cli(capsys, "check", "--profile", "ci", "--theorem", "thm-2.1", "--theorem",
                           "break-tanh", "--theorem", "thm-3.2", "--report-dir", str(tmp_path), "--json")
    doc = json.loads(out)
    assert code == 0 and doc["ok"] is True
    verdicts = {t["id"]: t["verdict"] for t in doc["theorems"]}
    assert verdicts == {"thm-2.1": "holds", "break-tanh": "break-confirmed", "thm-3.2": "holds"}
    assert all(t["cases"] > 0 and t["seconds"] >= 0 for t in doc["theorems"])
    assert list(tmp_path.glob("break-tanh-mlp_*.json"))  # the file name says what failed


def test_check_table_lists_statement_cases_and_verdict(capsys, tmp_path):
    code, out, _ = run_cli(capsys, "check", "--theorem", "gd-step", "--report-dir", str(tmp_path))
    assert code == 0 and "gd-step" in out and "holds" in out and "total" in out


def test_explore_tanh_finds_a_counterexample_shrunk_to_a_smaller_architecture(capsys, tmp_path):
    code, out, _ = run_cli(capsys, "explore", "--arch", "mlp:3-8-8-2:tanh", "--report-dir", str(tmp_path),
                           "--json")
    doc = json.loads(out)
    assert code == 1 and doc["found"] and doc["effect"] > 1e3
    shrunk, original = parse(doc["shrunk"]), parse(doc["spec"])
    assert len(shrunk.layers) < len(original.layers) or shrunk.param_specs != original.param_specs
    assert sum(np.prod(s) for _, s in shrunk.param_specs) < sum(np.prod(s) for _, s in original.param_specs)
    code, out, _ = run_cli(capsys, "replay", doc["report"])
    assert code == 1 and "reproduces" in out


@pytest.mark.parametrize("arch", ["mlp:3-4-2:relu", "mlp:3-4-2:leaky_relu(0.1)", "mlp:3-4-2:abs",
                                  "mlp:3-4-2:prelu(1,0.25)",
                                  "seq:3:dense(3),relu,residual[dense(2),relu,dense(3)],relu,dense(1)"])
@pytest.mark.parametrize("optimizer", ["gd:lr=0.05", "sgd:lr=0.1,batch=2"])
def test_explore_homogeneous_nets_under_gd_and_sgd_finds_nothing_and_exits_0(capsys, tmp_path, arch, optimizer):
    code, out, _ = run_cli(capsys, "explore", "--arch", arch, "--optimizer", optimizer,
                           "--max-examples", "12", "--report-dir", str(tmp_path), "--json")
    assert code == 0 and json.loads(out)["found"] is False


@pytest.mark.parametrize("optimizer", ["momentum:lr=0.05,beta=0.9", "adam:lr=0.05", "gd:lr=0.05,wd=0.5",
                                       "nesterov", "rmsprop", "signgd"])
def test_explore_finds_first_order_breaks_of_optimizers(capsys, tmp_path, optimizer):
    code, out, _ = run_cli(capsys, "explore", "--arch", "mlp:2-3-1:relu", "--optimizer", optimizer,
                           "--report-dir", str(tmp_path), "--json")
    assert code == 1 and json.loads(out)["found"]


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.stem)
def test_replay_reproduces_every_curated_counterexample(capsys, path):
    code, out, _ = run_cli(capsys, "replay", str(path), "--json")
    doc = json.loads(out)
    assert code == 1 and doc["reports"][0]["reproduces"]


def test_corpus_holds_one_counterexample_per_expected_break():
    from flowlaws.catalog import REGISTRY as THEOREMS

    breaks = {t.id for t in THEOREMS.values() if t.expect == "breaks"}
    assert {p.stem for p in CORPUS} == breaks


@pytest.mark.parametrize(
    ("args", "fragment"),
    [(["laws", "mlp:3-4-2:rleu"], "did you mean 'relu'"),
     (["explore", "--arch", "mlp:3-4-2:tanh", "--optimizer", "gd:lr=-1"], "lr must be"),
     (["explore", "--arch", "mlp:3-4-2:tanh", "--optimizer", "gd:lr=nan"], "lr must be"),
     (["explore", "--arch", "mlp:3-4-2:relu", "--law", "nope"], "unknown law 'nope'"),
     (["explore", "--arch", "mlp:3-4-2:relu", "--loss", "sqare"], "did you mean 'square'"),
     (["explore", "--arch", "mlp:3-2:relu"], "has no unit"),
     (["explore", "--arch", "mlp:3-4-2:relu", "--max-examples", "0"], "positive integer"),
     (["check", "--theorem", "thm-9.9"], "unknown theorem"),
     (["check", "--profile", "fast"], "invalid choice"),
     (["replay", "/nonexistent/report.json"], "cannot read"),
     (["frobnicate"], "invalid choice"),
     (["discover", "mlp:2-3-1:elu"], "not analytic"),
     (["discover", "mlp:2-3"], "bad spec"),
     (["laws", "seq:3:dense(2),residual[dense(3)]"], "must keep the input shape"),
     (["check", "--theorem", "break-tanh", "--report-dir", "/proc/flowlaws-cannot-write"], "cannot write reports"),
     (["replay"], "the following arguments are required"),
     (["figures", "--out", "/proc/flowlaws-cannot-write"], "cannot write figures"),
     (["discover", "mlp:2-3-1:relu", "--degree", "3"], "invalid choice"),
     (["explore", "--arch", "mlp:3-4-2:relu", "--optimizer", "lion"], "unknown optimizer"),
     (["check", "--workers", "-1"], "must be >= 1, got -1"),
     (["check", "--workers", "0"], "must be >= 1, got 0; give the number of worker processes, or leave --workers"),
     (["campaign", "--cases", "10", "--workers", "-2"], "must be >= 1, got -2"),
     (["campaign", "--cases", "0"], "must be >= 1, got 0"),
     (["laws", "seq:2x5:attention(heads=1,dk=2,dv=2),conv1d(2,2),mean,mean"], "needs positions")],
)
def test_bad_usage_and_bad_input_exit_2_with_one_line(capsys, args, fragment):
    with pytest.raises(SystemExit) as info:
        raise SystemExit(main(args))
    err = capsys.readouterr().err
    assert info.value.code == 2
    assert fragment in err and err.count("\n") == 1 and "Traceback" not in err


def test_corrupted_report_exits_2(capsys, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{trunc")
    code, _, err = run_cli(capsys, "replay", str(bad))
    assert code == 2 and "not valid JSON" in err


def test_python_dash_m_runs_the_cli():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "flowlaws", "laws", "mlp:2-3-2:linear", "--json"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0 and json.loads(done.stdout)["independent"] == 6


def test_discover_json_has_the_documented_keys_and_exits_0_when_complete(capsys):
    code, out, _ = run_cli(capsys, "discover", "mlp:2-3-2:linear", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["count"] == doc["derived"] == 6 and doc["complete"] is True
    assert {"count", "upper", "lower", "derived", "explicit", "complete", "rank_by_depth", "gap",
            "seconds"} <= set(doc)


def test_discover_confirms_the_translation_laws_a_loss_family_adds(capsys):
    code, out, _ = run_cli(capsys, "discover", "mlp:2-3-2:relu", "--loss", "cross_entropy")
    assert code == 0 and "6 independent conservation laws" in out and "; 6 derived" in out  # 3 + 3 columns


def test_discover_exits_1_when_an_architecture_has_laws_its_symmetries_do_not_give(capsys):
    # one input feeds every BatchNorm channel, so each channel is +-x̂ of it, and abs makes them equal
    code, out, _ = run_cli(capsys, "discover", "seq:1:dense(2),batchnorm,abs,dense(1)")
    assert code == 1 and "missing: dense1.W[0,0] − dense1.W[0,1]" in out


def test_laws_with_a_loss_adds_its_translation_laws(capsys):
    code, out, _ = run_cli(capsys, "laws", "mlp:3-4-2:relu:bias", "--loss", "cross_entropy", "--json")
    names = [law["name"] for law in json.loads(out)["laws"]]
    assert code == 0 and "translation unit dense1/softmax.W" in names and "translation layer dense1/softmax.b" in names


def test_laws_of_a_big_linear_net_are_counted_without_a_dense_jacobian(capsys):
    code, out, _ = run_cli(capsys, "laws", "mlp:10-64-64-64-10:linear", "--json")
    assert code == 0 and json.loads(out)["independent"] == 3 * 64 * 65 // 2


def test_explore_accepts_every_law_name_that_laws_prints(capsys, tmp_path):
    spec = "seq:4:dense(4,bias),relu,residual[dense(8),relu,dense(4)],relu,dense(2)"
    code, out, _ = run_cli(capsys, "laws", spec, "--json")
    names = [law["name"] for law in json.loads(out)["laws"]]
    assert "unit dense0/res0.dense0/res0.dense1/dense1" in names
    for name in names[:2]:
        code, out, _ = run_cli(capsys, "explore", "--arch", spec, "--law", name, "--max-examples", "5",
                               "--report-dir", str(tmp_path), "--json")
        assert code == 0 and json.loads(out)["found"] is False


def test_output_that_is_not_a_terminal_is_never_wrapped_unless_columns_says_so_and_never_cut():
    import os
    import subprocess
    import sys

    spec = "seq:4:dense(4,bias),relu,residual[dense(8),relu,dense(4)],relu,dense(2)"
    quiet = {k: v for k, v in os.environ.items() if k != "COLUMNS"}  # (pytest's own environment sets it)
    done = subprocess.run([sys.executable, "-m", "flowlaws", "laws", spec], capture_output=True, text=True,
                          check=False, env=quiet)
    assert done.returncode == 0 and f"laws of {spec}" in done.stdout
    assert "‖dense0.W[i,:]‖² + dense0.b[i]² − ‖res0.dense0.W[:,i]‖² + ‖res0.dense1.W[i,:]‖² − ‖dense1.W[:,i]‖²" \
        in done.stdout
    narrow = subprocess.run([sys.executable, "-m", "flowlaws", "laws", spec], capture_output=True, text=True,
                            check=False, env={**quiet, "COLUMNS": "80"})
    table = [line for line in narrow.stdout.splitlines() if line.startswith(("┃", "│", "┏", "└"))]
    assert narrow.returncode == 0 and table and all(len(line) <= 80 for line in table)  # COLUMNS is honoured
    assert "dense1.W[:,i]" in narrow.stdout  # wrapped inside its cell, never cut


@pytest.mark.parametrize("make_bad", [lambda tmp: tmp / "a-file", lambda tmp: tmp / "read-only"])
def test_an_unwritable_report_dir_exits_2_with_one_line(capsys, tmp_path, make_bad):
    import os

    bad = make_bad(tmp_path)
    if bad.name == "a-file":
        bad.write_text("not a folder")
    else:
        bad.mkdir()
        os.chmod(bad, 0o500)
        if os.access(bad, os.W_OK):  # root ignores permissions: a file in the way instead
            bad = bad / "x"
            bad.write_text("")
    code, _, err = run_cli(capsys, "explore", "--arch", "mlp:3-4-2:tanh", "--report-dir", str(bad))
    assert code == 2 and "cannot write reports to" in err and err.count("\n") == 1


def test_an_internal_error_exits_3_with_one_line_and_the_traceback_in_a_file(capsys, monkeypatch, tmp_path):
    import tempfile

    import flowlaws.cli

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the file lands in this test's folder, not /tmp

    def crash(args):
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(flowlaws.cli, "cmd_laws", crash)
    code, _, err = run_cli(capsys, "laws", "mlp:2-3-1:relu")
    assert code == 3 and "internal error: ZeroDivisionError: boom" in err and err.count("\n") == 1
    path = err.split("traceback is in ")[1].rstrip(")\n")
    assert Path(path).parent == tmp_path and "ZeroDivisionError" in Path(path).read_text()


def test_version_and_help_show_exit_codes(capsys):
    with pytest.raises(SystemExit):
        main(["--version"])
    assert "flowlaws 0.1.0" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "exit codes" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["check", "explore", "replay", "laws", "discover", "figures"])
def test_every_option_has_a_help_line(capsys, command):
    from flowlaws.cli import parser

    sub = next(a for a in parser()._actions if a.dest == "command").choices[command]
    assert all(action.help for action in sub._actions)


def test_laws_gives_a_count_per_row(capsys):
    code, out, _ = run_cli(capsys, "laws", "mlp:2-4-1:linear", "--json")
    rows = {law["kind"]: law["independent"] for law in json.loads(out)["laws"]}
    assert code == 0 and rows == {"unit": 4, "layer": 1, "matrix": 9}


def test_reports_are_named_after_what_failed_and_never_overwrite_each_other(capsys, tmp_path):
    paths = []
    for _ in range(2):
        code, out, _ = run_cli(capsys, "explore", "--arch", "mlp:3-4-2:tanh", "--report-dir", str(tmp_path),
                               "--max-examples", "30", "--json")
        assert code == 1
        paths.append(json.loads(out)["report"])
    assert paths[0] != paths[1] and all(Path(p).exists() for p in paths)
    assert Path(paths[0]).name.startswith("explore-mlp_3-")


def test_the_core_imports_no_optional_extra():
    import subprocess
    import sys

    code = ("import sys, flowlaws, flowlaws.cli, flowlaws.campaign, flowlaws.discover; "
            "print(sorted(m for m in ('torch', 'dask', 'distributed', 'matplotlib') if m in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "[]\n"


def test_replay_fails_on_any_status_but_a_pass(capsys, tmp_path):
    """A Section-3 case whose convergence was missed (thm-3.2, seed 127) is not "fixed"."""
    from flowlaws.catalog import theorem
    from flowlaws.matrix_factorization import draw_32
    from flowlaws.report import Counterexample

    thm = theorem("thm-3.2")
    scenario = draw_32(127)
    verdict = thm.check(scenario)
    assert verdict.status == "missed" and not verdict.passes
    path = Counterexample.of(thm, scenario, verdict).save(tmp_path)
    code, out, _ = run_cli(capsys, "replay", str(path), "--json")
    row = json.loads(out)["reports"][0]
    assert code == 1 and row["reproduces"] and row["verdict"] == "missed"


def test_a_verdict_with_an_undocumented_status_is_an_error():
    from flowlaws.checking import Verdict

    with pytest.raises(ValueError, match="fixed"):
        Verdict("fixed")


def test_discover_explains_how_a_count_was_decided(capsys):
    code, out, _ = run_cli(capsys, "discover", "mlp:1-2-2-1:linear", "--degree", "0", "--explain")
    assert code == 0 and "decided by: Lie closure" in out and "upper bound 7 = D - rank = 8 - 1" in out
    assert "random brackets [g, w]" in out and "known extra" in out


def test_discover_says_when_a_count_was_ranked_exactly_without_any_numerical_rank(capsys):
    code, out, _ = run_cli(capsys, "discover", "mlp:4-12-12-3:relu", "--explain")
    assert code == 0 and "(exact ranks mod p)" in out and "ranked exactly at depth 0" in out
    assert "singular-value gap" not in out and "proven: 24 laws" in out
    code, out, _ = run_cli(capsys, "discover", "mlp:2-3:linear", "--explain")  # searched: a full rank, gap inf
    assert code == 0 and "ranked exactly at depth 0" not in out and "proven: 0 laws" in out


def test_discover_json_says_how_the_count_was_decided_and_what_it_cost(capsys):
    code, out, _ = run_cli(capsys, "discover", "mlp:2-3-1:relu", "--json", "--budget", "5000")
    doc = json.loads(out)
    assert code == 0 and doc["decided_by"] == "exact" and 0 < doc["evaluations"] <= 5000 + 100


def test_a_counterexample_in_a_log_is_as_wide_as_its_content_and_its_replay_path_is_one_line(capsys, tmp_path):
    code, out, _ = run_cli(capsys, "explore", "--arch", "mlp:3-8-8-2:tanh", "--report-dir", str(tmp_path))
    assert code == 1 and len(out.encode()) < 20_000  # a panel padded to the log width once made 2.3 MB
    replay = [line for line in out.splitlines() if line.startswith("replay: flowlaws replay ")]
    assert len(replay) == 1 and Path(replay[0].split()[-1]).exists()


def test_discover_on_a_net_too_big_for_its_memory_is_one_line_with_exit_2(capsys):
    code, _, err = run_cli(capsys, "discover", "mlp:8-2000-2000-8:relu")
    assert code == 2 and "would need about" in err and "parameters fit" in err and len(err.splitlines()) == 1


def test_ctrl_c_while_the_command_loads_is_one_line_and_exit_130(monkeypatch, capsys):
    import builtins
    import sys

    from flowlaws.__main__ import main as entry

    real = builtins.__import__

    def interrupted(name, *args, **kwargs):
        if name == "flowlaws.cli":
            raise KeyboardInterrupt
        return real(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "flowlaws.cli", raising=False)
    monkeypatch.setattr(builtins, "__import__", interrupted)
    assert entry() == 130
    assert capsys.readouterr().err == "flowlaws: interrupted\n"
