"""Campaigns: shards, the journal (resume, corrupt lines), and the real Dask engine."""

import json
import shutil
import subprocess
import sys
import threading
import time
import warnings

import pytest

from flowlaws.campaign import Shard, campaign, read_journal, shards, summary
from flowlaws.cli import main

pytestmark = pytest.mark.slow  # property and integration tests: `pytest -m 'not slow'` skips them

THEOREMS = ["gd-step", "thm-2.1"]


def _counts(records):
    """What must not depend on where shards ran: per shard, its counts and worst effect."""
    return sorted((r["theorem"], r["seed"], r["checked"], r["invalid"], r["false_alarms"], r["worst_effect"])
                  for r in records)


def test_shards_cut_each_theorem_into_seeded_pieces_taken_round_robin():
    assert shards(["a", "b"], 25, shard=10, seed=7) == [
        Shard("a", 7, 10), Shard("b", 7, 10), Shard("a", 8, 10), Shard("b", 8, 10), Shard("a", 9, 5), Shard("b", 9, 5)]


def test_a_campaign_journals_each_shard_and_a_rerun_resumes_without_redoing_any(tmp_path):
    journal = tmp_path / "journal.jsonl"
    first = campaign(THEOREMS, 12, shard=6, journal=journal)
    assert len(journal.read_text().splitlines()) == 4 and not any(r["false_alarms"] for r in first)
    again = campaign(THEOREMS, 12, shard=6, journal=journal, on_shard=lambda record: pytest.fail("re-ran a shard"))
    assert _counts(again) == _counts(first)


def test_an_interrupted_campaign_resumes_from_the_journal_with_the_same_totals(tmp_path):
    whole = campaign(THEOREMS, 12, shard=6)
    journal = tmp_path / "journal.jsonl"
    ran = []
    with pytest.raises(KeyboardInterrupt):
        def stop_after_two(record):
            ran.append(record)
            if len(ran) == 2:
                raise KeyboardInterrupt

        campaign(THEOREMS, 12, shard=6, journal=journal, on_shard=stop_after_two)
    assert len(journal.read_text().splitlines()) == 2
    resumed = campaign(THEOREMS, 12, shard=6, journal=journal)
    assert _counts(resumed) == _counts(whole) and len(journal.read_text().splitlines()) == 4


def test_a_corrupt_journal_line_is_reported_with_its_number_and_its_shard_runs_again(tmp_path):
    journal = tmp_path / "journal.jsonl"
    campaign(["gd-step"], 12, shard=6, journal=journal)
    lines = journal.read_text().splitlines()
    journal.write_text(lines[0] + "\n" + lines[1][:20] + "\n")  # a truncated last line
    warnings = []
    assert len(read_journal(journal, warnings.append)) == 1
    assert warnings == [f"{journal}:2: not a journal record (corrupt or truncated); skipped, its shard runs again"]
    redone = []
    campaign(["gd-step"], 12, shard=6, journal=journal, warn=lambda m: None, on_shard=redone.append)
    assert [r["seed"] for r in redone] == [1]


def test_the_cli_campaign_prints_a_summary_and_exits_0_without_false_alarms(tmp_path, capsys):
    code = main(["campaign", "--cases", "6", "--shard", "3", "--theorem", "gd-step", "--json",
                 "--journal", str(tmp_path / "j.jsonl")])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0 and doc["ok"] and doc["theorems"][0]["cases"] == 6 and doc["theorems"][0]["shards"] == 2


def test_a_bad_campaign_argument_exits_2_with_one_line(capsys):
    assert main(["campaign", "--cases", "5", "--theorem", "thm-21"]) == 2
    err = capsys.readouterr().err
    assert "did you mean 'thm-2.1'" in err and len(err.strip().splitlines()) == 1


dask = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory):
    """A real `dask scheduler` and two `dask worker` processes on 127.0.0.1 (random ports)."""
    folder = tmp_path_factory.mktemp("dask")
    scheduler_file = folder / "scheduler.json"
    executable = shutil.which("dask") or pytest.fail("the dask command is not installed")
    scheduler = subprocess.Popen([executable, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                                  "--scheduler-file", str(scheduler_file)], stderr=subprocess.DEVNULL)
    workers = []
    try:
        for _ in range(100):
            if scheduler_file.exists() and scheduler_file.stat().st_size:
                break
            time.sleep(0.1)
        address = json.loads(scheduler_file.read_text())["address"]
        workers = [subprocess.Popen([executable, "worker", address, "--nthreads", "1", "--nworkers", "1",
                                     "--no-dashboard", "--host", "127.0.0.1"], stderr=subprocess.DEVNULL)
                   for _ in range(2)]
        with dask.Client(address) as client:
            client.wait_for_workers(2, timeout=60)
        yield address, workers
    finally:
        for process in [*workers, scheduler]:
            process.terminate()
        for process in [*workers, scheduler]:
            process.wait(timeout=30)


def _in_a_fresh_process(tmp_path, *arguments):
    """The shards' records of `flowlaws campaign` run in-process in a new interpreter (as the
    workers are), read back from its journal."""
    journal = tmp_path / f"alone-{len(list(tmp_path.iterdir()))}.jsonl"
    subprocess.run([sys.executable, "-m", "flowlaws", "campaign", *arguments, "--journal", str(journal), "--json"],
                   check=True, capture_output=True)
    return [json.loads(line) for line in journal.read_text().splitlines()]


def test_in_process_local_cluster_and_external_scheduler_give_identical_results(dask_cluster, tmp_path):
    address, _ = dask_cluster
    alone = _in_a_fresh_process(tmp_path, "--cases", "12", "--shard", "6", "--theorem", THEOREMS[0],
                                "--theorem", THEOREMS[1])
    with warnings.catch_warnings(record=True) as caught:  # the external scheduler holds Dask's port 8787
        warnings.simplefilter("always")
        local = campaign(THEOREMS, 12, shard=6, workers=2)
    assert not [w for w in caught if "8787" in str(w.message)]  # a local cluster leaves that port alone
    remote = campaign(THEOREMS, 12, shard=6, scheduler=address)
    assert _counts(alone) == _counts(local) == _counts(remote)
    assert summary(remote)[0]["cases"] == 12


def test_a_worker_killed_mid_campaign_loses_no_shard_and_counts_none_twice(dask_cluster, tmp_path):
    address, workers = dask_cluster
    alone = _in_a_fresh_process(tmp_path, "--cases", "24", "--shard", "3", "--theorem", "gd-step")
    killer = threading.Timer(0.5, workers[0].kill)
    killer.start()
    records = campaign(["gd-step"], 24, shard=3, scheduler=address)
    killer.join()
    assert workers[0].wait(timeout=30) is not None  # it died during the campaign
    assert _counts(records) == _counts(alone)


def test_an_unreachable_scheduler_is_a_clear_error(capsys, monkeypatch):
    import flowlaws.campaign

    monkeypatch.setattr(flowlaws.campaign, "CONNECT_SECONDS", 1)  # the wait before giving up, not the error
    code = main(["campaign", "--cases", "2", "--theorem", "gd-step", "--scheduler", "tcp://127.0.0.1:9"])
    err = capsys.readouterr().err
    assert code == 2 and "cannot reach the Dask scheduler" in err, err


if sys.platform == "win32":  # pragma: no cover
    pytest.skip("the Dask fixture uses POSIX signals", allow_module_level=True)


def test_check_on_two_workers_gives_the_in_process_verdicts(tmp_path, capsys):
    ids = ["--theorem", "gd-step", "--theorem", "break-adam"]
    assert main(["check", "--profile", "ci", *ids, "--json", "--report-dir", str(tmp_path / "a")]) == 0
    alone = json.loads(capsys.readouterr().out)["theorems"]
    spread_args = ["check", "--profile", "ci", *ids, "--json", "--workers", "2", "--report-dir", str(tmp_path / "b")]
    assert main(spread_args) == 0
    spread = json.loads(capsys.readouterr().out)["theorems"]
    assert [(t["id"], t["verdict"], t["cases"], t["worst"]) for t in alone] == [
        (t["id"], t["verdict"], t["cases"], t["worst"]) for t in spread]
