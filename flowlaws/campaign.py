"""Campaigns: many cases of the true theorems, sharded, resumable, on one core or on Dask.

    flowlaws campaign --cases 20000 [--theorem ID ...] [--shard 200] [--seed 0]
                      [--journal FILE] [--workers N | --scheduler ADDRESS] [--report-dir DIR]

Work is cut into shards (theorem, seed, cases): each shard is one Hypothesis run with its
own seed (``seed + index``), so a shard's result does not depend on where it runs or on
how many workers there are (`flowlaws.runner.pinned_draws`). In-process by default;
``--workers N`` starts a local Dask cluster of N processes, ``--scheduler`` uses an
existing one (``tcp://host:8786``, or ``tls://`` with Dask's own security configuration:
certificates from its config file or the ``DASK_DISTRIBUTED__COMM__TLS__*`` variables).
A task whose worker dies is retried elsewhere (Dask's retries); a shard is counted once,
when its result reaches the client.

The journal (JSONL) gets one line per finished shard as it completes; a rerun with the
same journal skips the shards it holds, so an interrupted campaign resumes. A journal is
data: it is read with ``json.loads``, never executed; a corrupt line is reported with its
number and skipped. Counterexamples come back to the client as JSON and are written once.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from flowlaws.errors import InvalidArgument
from flowlaws.threads import OnOneBlasThread

CONNECT_SECONDS = 10  # how long to wait for a scheduler before saying it cannot be reached


@dataclass(frozen=True)
class Shard:
    """``cases`` cases of ``theorem`` from Hypothesis seed ``seed``."""

    theorem: str
    seed: int
    cases: int

    @property
    def key(self) -> tuple:
        return (self.theorem, self.seed, self.cases)


def true_theorems() -> list[str]:
    """Theorem ids a campaign checks by default: every true theorem drawn by Hypothesis."""
    from flowlaws.catalog import all_theorems

    return [t.id for t in all_theorems() if t.expect == "holds" and getattr(t, "runner", None) is None]


def shards(theorems, cases: int, shard: int = 200, seed: int = 0) -> list[Shard]:
    """``cases`` per theorem, in shards of at most ``shard`` cases, seeds seed, seed + 1, ...;
    round-robin over the theorems, so that a campaign stopped at any point has covered
    every theorem alike."""
    if cases < 1 or shard < 1:
        raise InvalidArgument(f"cases and shard size must be >= 1, got {cases} and {shard}")
    return [Shard(theorem, seed + index, min(shard, cases - index * shard))
            for index in range(math.ceil(cases / shard)) for theorem in theorems]


def run_shard(shard: Shard) -> dict:
    """Check one shard (on any worker): its counts, worst effect, and a counterexample as
    JSON when a true theorem was violated (a false alarm)."""
    from flowlaws.catalog import theorem
    from flowlaws.report import Counterexample
    from flowlaws.runner import run

    thm = theorem(shard.theorem)
    started = time.perf_counter()
    result = run(thm, max_examples=shard.cases, derandomize=False, seed=shard.seed)
    effect = result.worst.effect
    record = {**asdict(shard), "checked": result.cases, "invalid": result.invalid,
              "false_alarms": int(result.verdict == "violated"),
              "error": result.note if result.verdict == "error" else "",
              "worst_effect": effect if math.isfinite(effect) else None,
              "seconds": round(time.perf_counter() - started, 3)}
    if result.counterexample is not None:
        scenario, verdict = result.counterexample
        record["counterexample"] = Counterexample.of(thm, scenario, verdict, seed=shard.seed).to_json()
    return record


def run_theorem(theorem_id: str, max_examples: int, derandomize: bool):
    """`flowlaws.runner.run` of one theorem, drawing the same cases in any process (for
    `flowlaws check --workers/--scheduler`); the Result comes back to the client."""
    from flowlaws.catalog import theorem
    from flowlaws.runner import run

    return run(theorem(theorem_id), max_examples=max_examples, derandomize=derandomize)


def read_journal(path: Path, warn: Callable[[str], None]) -> dict:
    """Finished shards by key; a corrupt line is reported (with its number) and skipped."""
    done: dict = {}
    if not path.exists():
        return done
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            done[(str(record["theorem"]), int(record["seed"]), int(record["cases"]))] = record
        except (ValueError, KeyError, TypeError):
            warn(f"{path}:{number}: not a journal record (corrupt or truncated); skipped, its shard runs again")
    return done


def execute(todo: list, workers: int = 0, scheduler: str | None = None, task: Callable = run_shard) -> Iterator:
    """``task(item)`` for every item, in the order they finish: in-process, on a local
    Dask cluster of ``workers`` processes, or on the cluster at ``scheduler``."""
    if not todo:
        return
    if not workers and not scheduler:
        for item in todo:
            yield task(item)
        return
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise InvalidArgument("--workers and --scheduler need Dask: pip install 'flowlaws[distributed]'") from None
    # no dashboard, and the scheduler's HTTP endpoints on a free local port: not Dask's
    # default 8787, which another cluster may hold (Dask then warns)
    cluster = None if scheduler else LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                                  dashboard_address=None,
                                                  scheduler_kwargs={"dashboard_address": "127.0.0.1:0"})
    try:
        with Client(scheduler or cluster, timeout=CONNECT_SECONDS) as client:
            pinned = OnOneBlasThread(task)  # small dense algebra: one BLAS thread (flowlaws.threads)
            futures = [client.submit(pinned, item, key=f"flowlaws-{index}-{item!s:.60}", pure=False, retries=3)
                       for index, item in enumerate(todo)]
            for future in as_completed(futures):
                yield future.result()
    except OSError as error:
        raise InvalidArgument(f"cannot reach the Dask scheduler {scheduler!r}: {error}") from None
    finally:
        if cluster is not None:
            cluster.close()


def campaign(theorems, cases: int, *, shard: int = 200, seed: int = 0, journal: Path | None = None,
             workers: int = 0, scheduler: str | None = None, report_dir: Path | None = None,
             warn: Callable[[str], None] = print, on_shard: Callable[[dict], None] | None = None) -> list[dict]:
    """Run (or resume) a campaign; the records of every shard, journal ones included."""
    from flowlaws.catalog import theorem as lookup
    from flowlaws.report import Counterexample

    for name in theorems:
        lookup(name)  # an unknown id fails before any work
    plan = shards(theorems, cases, shard, seed)
    done = read_journal(journal, warn) if journal else {}
    records = [done[s.key] for s in plan if s.key in done]
    todo = [s for s in plan if s.key not in done]
    for record in execute(todo, workers, scheduler):
        cx = record.pop("counterexample", None)
        if cx is not None and report_dir is not None:
            record["report"] = str(Counterexample.from_json(cx).save(report_dir))
        if journal:
            with journal.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")
        records.append(record)
        if on_shard:
            on_shard(record)
    return records


def summary(records) -> list[dict]:
    """Per theorem: shards, cases, invalid, false alarms, worst effect, seconds, cases/s."""
    rows: dict = {}
    for r in records:
        row = rows.setdefault(r["theorem"], {"theorem": r["theorem"], "shards": 0, "cases": 0, "invalid": 0,
                                             "false_alarms": 0, "worst_effect": 0.0, "seconds": 0.0})
        row["shards"] += 1
        row["cases"] += r["checked"]
        row["invalid"] += r["invalid"]
        row["false_alarms"] += r["false_alarms"] + int(bool(r.get("error")))
        row["worst_effect"] = max(row["worst_effect"], r["worst_effect"] if r["worst_effect"] is not None else math.inf)
        row["seconds"] += r["seconds"]
    for row in rows.values():
        row["cases_per_second"] = row["cases"] / row["seconds"] if row["seconds"] else 0.0
    return list(rows.values())
