"""The ``flowlaws`` command: check, explore, replay, laws, discover, figures.

Exit codes: 0 all good, 1 a finding (a law failed, a break was missed, a counterexample
still reproduces, a law is missing), 2 bad usage or bad input (one line on stderr, no
traceback), 3 an internal error (a bug: one line, and the traceback written to a file).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from flowlaws.errors import FlowlawsError, InvalidArgument
from flowlaws.models.spec import syntax
from flowlaws.report import Counterexample
from flowlaws.threads import one_blas_thread

# Not a terminal (a CI log, a pipe): never wrap or cut a line. On a terminal, rich adapts.
_LOG_WIDTH = 100_000
# a terminal's width, or COLUMNS; in a log, no width (lines as long as their content: panels fit
# their content, text is printed soft-wrapped, so nothing is padded or cut)
_SIZED = "COLUMNS" in os.environ
out = Console(highlight=False, width=None if sys.stdout.isatty() or _SIZED else _LOG_WIDTH)
err = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() or _SIZED else _LOG_WIDTH)


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        err.print(f"flowlaws: error: {message} (see '{self.prog} --help')", markup=False, soft_wrap=True)
        raise SystemExit(2)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _at_least(low: int, fix: str):
    """An argparse type: an integer >= ``low`` (the message names the value and the fix)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}; {fix}")
        return value

    return parse


_int = _at_least(0, "give 0 or more")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not (value > 0 and value < float("inf")):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


_positive = _at_least(1, "give 1 or more")
_workers = _at_least(1, "give the number of worker processes, or leave --workers out to run here")


def parser() -> argparse.ArgumentParser:
    main = _Parser(prog="flowlaws", description="Property-based checker for conservation laws of "
                   "gradient flow in homogeneous networks (Du, Hu, Lee 2018).",
                   epilog="exit codes: 0 nothing found / all as expected, 1 a finding, 2 bad usage or input, "
                   "3 internal error. examples: flowlaws check --profile ci; "
                   "flowlaws explore --arch 'mlp:3-8-8-2:tanh'")
    from flowlaws import __version__

    main.add_argument("--version", action="version", version=f"flowlaws {__version__}")
    sub = main.add_subparsers(dest="command", required=True, parser_class=_Parser)
    check = sub.add_parser("check", help="run every theorem (the regression gate)")
    check.add_argument("--profile", default=None, choices=("ci", "dev", "thorough"),
                       help="cases per theorem: ci 200 (derandomized), dev 20, thorough 2000 "
                       "(default: ci when CI is set, else dev)")
    check.add_argument("--theorem", action="append", metavar="ID",
                       help="check only this theorem (repeat; default: every theorem)")
    check.add_argument("--report-dir", default="reports", type=Path,
                       help="where counterexamples are saved (default: reports)")
    check.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    spread = check.add_mutually_exclusive_group()
    spread.add_argument("--workers", default=None, type=_workers,
                        help="run the theorems on a local Dask cluster of N processes (default: here)")
    spread.add_argument("--scheduler", metavar="ADDRESS", help="run them on an existing Dask cluster")
    explore = sub.add_parser("explore", help="search an architecture for a first-order break")
    explore.add_argument("--arch", required=True, metavar="SPEC", help="the architecture, e.g. 'mlp:3-8-8-2:tanh'")
    explore.add_argument("--loss", default="square", help="a loss name[:options] (default: square)")
    explore.add_argument("--optimizer", default="gd:lr=0.05", metavar="NAME[:k=v,...]",
                         help="gd, sgd, momentum, nesterov, adam, rmsprop, signgd (default: gd:lr=0.05)")
    explore.add_argument("--law", default=None, help="unit, layer, matrix or a law's name (default: every law)")
    explore.add_argument("--max-examples", default=200, type=_positive_int,
                         help="cases Hypothesis tries (default: 200)")
    explore.add_argument("--seed", default=0, type=_int, help="Hypothesis seed (default: 0)")
    explore.add_argument("--report-dir", default="reports", type=Path,
                         help="where a counterexample is saved (default: reports)")
    explore.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    replay = sub.add_parser("replay", help="re-run saved counterexamples")
    replay.add_argument("files", nargs="+", type=Path, metavar="FILE", help="report JSON files")
    replay.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    laws = sub.add_parser("laws", help="list the laws derived for an architecture",
                          formatter_class=argparse.RawDescriptionHelpFormatter,
                          epilog="SPEC is mlp:WIDTHS:ACT[:bias], factorization:D1xD2:RANK or seq:SHAPE:LAYER,... "
                          "with LAYER one of (docs/specs.md):\n  " + syntax().replace("\n", "\n  "))
    laws.add_argument("spec", metavar="SPEC", help="the architecture, e.g. 'mlp:3-4-5-2:relu:bias'")
    laws.add_argument("--loss", default=None,
                      help="add the laws a loss brings (cross_entropy: translation of the last layer)")
    laws.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    discover = sub.add_parser("discover", help="count and find every conservation law numerically, "
                              "and compare them with the derived ones")
    discover.add_argument("spec", metavar="SPEC", help="the architecture, e.g. mlp:2-3-2:linear")
    discover.add_argument("--degree", default=2, type=int, choices=(0, 1, 2),
                          help="highest degree of the explicit polynomial laws searched (default 2)")
    discover.add_argument("--loss", default=None, choices=("cross_entropy",),
                          help="laws of one loss family only (default: laws for every loss)")
    discover.add_argument("--seed", default=0, type=_int, help="seed of the random points (default 0)")
    discover.add_argument("--budget", default=None, type=_positive, metavar="N",
                          help="field evaluations before an undecided count stops refining (default 200,000): "
                          "work, not time, so the answer never depends on the machine's load")
    discover.add_argument("--timeout", default=None, type=_seconds, metavar="SECONDS",
                          help="stop early after this long (off by default); the answer then says so")
    discover.add_argument("--explain", action="store_true",
                          help="print how the count was decided: the bounds, the ranks, the gap, the work")
    discover.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    figures = sub.add_parser("figures", help="reproduce the paper's Fig. 1 and Fig. 2")
    figures.add_argument("--out", default="figures", type=Path, help="output folder (default: figures)")
    figures.add_argument("--quick", action="store_true",
                         help="a smaller net and fewer iterations, in seconds (default: the full sizes)")
    figures.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    campaign = sub.add_parser("campaign", help="many cases of the true theorems, sharded and resumable "
                              "(in-process, or on Dask)")
    campaign.add_argument("--cases", required=True, type=_positive, help="cases per theorem")
    campaign.add_argument("--theorem", action="append", metavar="ID",
                          help="only this theorem (repeat; default: every true theorem)")
    campaign.add_argument("--shard", default=200, type=_positive, help="cases per shard (default 200)")
    campaign.add_argument("--seed", default=0, type=_int, help="seed of the first shard (default 0)")
    campaign.add_argument("--journal", type=Path, help="JSONL file of finished shards: appended as they "
                          "finish; a rerun skips them (resume)")
    where = campaign.add_mutually_exclusive_group()
    where.add_argument("--workers", default=None, type=_workers,
                       help="a local Dask cluster of N processes (default: here)")
    where.add_argument("--scheduler", metavar="ADDRESS", help="an existing Dask cluster, e.g. tcp://10.0.0.5:8786")
    campaign.add_argument("--report-dir", default="reports", type=Path,
                          help="where counterexamples are saved (default: reports)")
    campaign.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    return main


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    commands = {"check": cmd_check, "explore": cmd_explore, "replay": cmd_replay,
                "laws": cmd_laws, "discover": cmd_discover, "figures": cmd_figures, "campaign": cmd_campaign}
    try:
        with one_blas_thread():  # small dense algebra: threads only spin (flowlaws.threads)
            return commands[args.command](args)
    except FlowlawsError as error:
        err.print(f"flowlaws: error: {error}", markup=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        err.print("flowlaws: interrupted")
        return 130
    except BrokenPipeError:  # e.g. `flowlaws laws SPEC --json | head`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as error:  # a bug: never exit 1 (a finding) for it
        return _internal_error(error)


def _internal_error(error: Exception) -> int:
    import tempfile
    import traceback

    fd, path = tempfile.mkstemp(prefix="flowlaws-traceback-", suffix=".txt")
    with os.fdopen(fd, "w") as handle:
        handle.write("".join(traceback.format_exception(error)))
    err.print(f"flowlaws: internal error: {type(error).__name__}: {error} (a bug; the traceback is in {path})",
              markup=False, soft_wrap=True)
    return 3


def _progress(enabled: bool) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed} cases"),
                    TimeElapsedColumn(), console=err, transient=True, disable=not enabled)


def cmd_check(args) -> int:
    from flowlaws.catalog import all_theorems, theorem
    from flowlaws.strategies import profile_name

    profile = profile_name(args.profile)
    chosen = [theorem(t) for t in args.theorem] if args.theorem else all_theorems()
    started = time.perf_counter()
    spread = args.workers or args.scheduler
    results = _distributed_check(args, chosen, profile) if spread else _local_check(args, chosen, profile)
    for result in results:  # counterexamples are written here, once, whoever checked them
        if result.counterexample is not None:
            scenario, verdict = result.counterexample
            result.extra["report"] = str(Counterexample.of(result.theorem, scenario, verdict).save(args.report_dir))
    seconds = time.perf_counter() - started
    ok = all(r.ok for r in results)
    if args.json:
        print(json.dumps({"ok": ok, "profile": profile, "seconds": round(seconds, 3),
                          "theorems": [r.to_json() for r in results]}, indent=1))
        return 0 if ok else 1
    table = Table(title=f"flowlaws check (profile {profile})", show_footer=True,
                  caption=None)
    table.add_column("theorem", footer="total", no_wrap=True)
    table.add_column("statement", no_wrap=True, overflow="ellipsis", max_width=max(out.width - 76, 10))
    table.add_column("cases", justify="right", footer=str(sum(r.cases for r in results)), no_wrap=True)
    table.add_column("worst effect size", justify="right", no_wrap=True)
    table.add_column("verdict", footer="ok" if ok else "FAILED", no_wrap=True)
    table.add_column("s", justify="right", footer=f"{seconds:.1f}", no_wrap=True)
    for r in results:
        style = "green" if r.ok else "red"
        table.add_row(r.theorem.id, Text(r.theorem.statement), str(r.cases), f"{r.worst.effect:.2g}",
                      f"[{style}]{r.verdict}[/]", f"{r.seconds:.1f}")
    out.print(table)
    for r in results:
        if not r.ok:
            out.print(f"[red]{r.theorem.id}[/]: {r.verdict} {r.note} {r.extra.get('report', '')}")
            if r.counterexample:
                out.print(Counterexample.of(r.theorem, *r.counterexample))
    return 0 if ok else 1


def _local_check(args, chosen, profile):
    """The theorems' Results, checked in this process, with a progress bar on a terminal."""
    from flowlaws.runner import run
    from flowlaws.strategies import PROFILES

    results = []
    with _progress(not args.json and err.is_terminal) as progress:
        for thm in chosen:
            task = progress.add_task(thm.id, total=None)
            results.append(run(thm, max_examples=PROFILES[profile], derandomize=profile == "ci",
                               on_case=lambda task=task: progress.advance(task)))
            progress.remove_task(task)
    return results


def _distributed_check(args, chosen, profile):
    """The theorems' Results from Dask workers, in the order of ``chosen``."""
    from functools import partial

    from flowlaws.campaign import execute, run_theorem
    from flowlaws.strategies import PROFILES

    task = partial(run_theorem, max_examples=PROFILES[profile], derandomize=profile == "ci")
    # long tasks first, so that no worker is left with one at the end: a true theorem checks
    # every case, an expected break stops at its first failure
    longest_first = sorted(chosen, key=lambda t: t.expect == "breaks")
    by_id = {r.theorem.id: r for r in execute([t.id for t in longest_first], args.workers, args.scheduler, task)}
    return [by_id[t.id] for t in chosen]


def cmd_explore(args) -> int:
    from flowlaws.explore import explore_theorem, settings
    from flowlaws.flows import optimizer
    from flowlaws.losses import loss
    from flowlaws.models import parse
    from flowlaws.runner import run

    model, lossf, opt = parse(args.arch), loss(args.loss), optimizer(args.optimizer)
    thm = explore_theorem(model, lossf, opt, args.law)
    with _progress(not args.json and err.is_terminal) as progress:
        task = progress.add_task(f"exploring {model.spec}", total=args.max_examples)
        started = time.perf_counter()
        result = run(thm, max_examples=args.max_examples, seed=args.seed,
                     on_case=lambda: progress.advance(task))
    seconds = time.perf_counter() - started
    document = {"spec": model.spec, "loss": lossf.spec, "optimizer": opt.spec, "found": False,
                "cases": result.cases, "seconds": round(seconds, 3), "worst": result.worst.effect}
    if result.verdict == "error":
        raise InvalidArgument(f"explore could not draw a valid case: {result.note}")
    if result.counterexample is None:
        if args.json:
            print(json.dumps(document))
        else:
            out.print(f"[green]no first-order break found[/] in {result.cases} cases "
                      f"({seconds:.1f} s; worst effect size {result.worst.effect:.2g})")
        return 0
    scenario, verdict = result.counterexample
    cx = Counterexample.of(thm, scenario, verdict, seed=args.seed, explore=settings(args.law))
    path = cx.save(args.report_dir)
    document.update(found=True, report=str(path), effect=verdict.evidence.effect,
                    law=verdict.evidence.law, level=verdict.evidence.level, shrunk=scenario.model.spec)
    if args.json:
        print(json.dumps(document))
    else:
        cx.print_to(out, replay_path=path)
        out.print(f"found in {seconds:.1f} s at the {verdict.evidence.level} level; architecture "
                  f"{model.spec} shrunk to {scenario.model.spec}; saved {path}", markup=False, soft_wrap=True)
    return 1


def cmd_replay(args) -> int:
    from flowlaws.report import load

    rows, still = [], False
    for path in args.files:
        cx = load(path)
        verdict = _recheck(cx)
        fails = not verdict.passes  # any status but the documented pass statuses fails
        still |= fails
        rows.append({"file": str(path), "theorem": cx.theorem, "verdict": str(verdict.status),
                     "effect": verdict.evidence.effect, "reproduces": fails, "reason": verdict.reason})
    if args.json:
        print(json.dumps({"still_failing": still, "reports": rows}))
    else:
        for row in rows:
            mark = "[red]reproduces[/]" if row["reproduces"] else "[green]fixed[/]"
            reason = f"; {row['reason']}" if row["reason"] else ""
            out.print(f"{row['file']}: {row['theorem']} {mark} ({row['verdict']}, effect size "
                      f"{row['effect']:.3g}{reason})", soft_wrap=True)
    return 1 if still else 0


def _recheck(cx):
    from flowlaws.catalog import theorem
    from flowlaws.explore import rebuild

    s = cx.scenario
    thm = rebuild(cx.theorem, s, cx.explore) if cx.explore is not None else theorem(cx.theorem)
    return thm.check(s)


def cmd_campaign(args) -> int:
    """Exit 0 when no true theorem raised a false alarm, 1 otherwise."""
    from flowlaws.campaign import campaign, shards, summary, true_theorems

    theorems = args.theorem or true_theorems()
    total = len(shards(theorems, args.cases, args.shard, args.seed))
    started = time.perf_counter()
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} shards"),
                  TextColumn("{task.fields[rate]}"), TimeRemainingColumn(), console=err, transient=True,
                  disable=args.json or not err.is_terminal) as progress:
        task = progress.add_task("campaign", total=total, rate="")

        def finished(record):
            seconds = time.perf_counter() - started
            done = progress.tasks[0].completed + 1
            progress.update(task, advance=1, rate=f"{record['checked'] / max(record['seconds'], 1e-9):.0f} cases/s "
                            f"({done} in {seconds:.0f} s)")

        records = campaign(theorems, args.cases, shard=args.shard, seed=args.seed, journal=args.journal,
                           workers=args.workers, scheduler=args.scheduler, report_dir=args.report_dir,
                           warn=lambda message: err.print(Text(message, style="yellow"), soft_wrap=True),
                           on_shard=finished)
    rows, seconds = summary(records), time.perf_counter() - started
    ok = not any(row["false_alarms"] for row in rows)
    if args.json:
        print(json.dumps({"ok": ok, "seconds": round(seconds, 3), "theorems": rows,
                          "reports": [r["report"] for r in records if "report" in r]}, indent=1))
        return 0 if ok else 1
    table = Table(title=f"flowlaws campaign: {args.cases} cases per theorem, {seconds:.1f} s wall")
    for column in ("theorem", "shards", "cases", "invalid", "false alarms", "worst effect", "cases/s"):
        table.add_column(column, justify="left" if column == "theorem" else "right", no_wrap=True)
    for row in rows:
        table.add_row(row["theorem"], str(row["shards"]), str(row["cases"]), str(row["invalid"]),
                      f"[{'red' if row['false_alarms'] else 'green'}]{row['false_alarms']}[/]",
                      f"{row['worst_effect']:.3g}", f"{row['cases_per_second']:.1f}")
    out.print(table)
    for record in records:
        if "report" in record:
            out.print(Text(f"false alarm in {record['theorem']} (seed {record['seed']}): {record['report']}",
                           style="red"), soft_wrap=True)
    return 0 if ok else 1


def cmd_laws(args) -> int:
    from flowlaws.invariants import independent_count, laws, structural_count
    from flowlaws.models import parse

    model = parse(args.spec)
    found = laws(model, args.loss)
    count = independent_count(model, found)
    shapes = [shape for _, shape in model.param_specs]
    if args.json:
        rows = [{**law.to_json(), "independent": structural_count([law], shapes)} for law in found]
        print(json.dumps({"spec": model.spec, "independent": count, "laws": rows}))
        return 0
    table = Table(title=Text(f"laws of {model.spec}"))
    for column in ("name", "kind", "scalars", "formula"):
        table.add_column(column, justify="right" if column == "scalars" else "left")
    for law in found:
        table.add_row(Text(law.name), law.kind, str(structural_count([law], shapes)), Text(law.formula))
    out.print(table if found else Text(f"{model.spec} has no conservation law", style="yellow"))
    out.print(f"{count} functionally independent scalar law(s)")
    return 0


DECIDED_BY = {"exact": "proven: exact ranks over a prime field meet the derived laws (see --explain)",
              "bounds": "the bounds meet (D - rank = the rank of the laws proven conserved)",
              "closure": "Lie closure at a generic point (random brackets stay in the algebra)",
              "exact closure": "Lie closure at a generic point, checked exactly: the random brackets stay in the "
                               "algebra's span over a prime field (see --explain)",
              "bounds and closure": "the bounds meet, and the Lie algebra closes",
              "no fields": "every field is 0, so every parameter is conserved",
              "verified": "proven at depth 0: the fields' rank, bounded below with the round-off model's error "
                          "(Weyl), meets the proven laws (see --explain)"}


def _ranked_exactly(found) -> bool:
    """Was the count decided by exact ranks alone (no numerical rank taken: the depth-0 route)?"""
    return not found.searched


def explain(found, args) -> list[str]:
    """How a discovery's count was decided, in lines (`flowlaws discover --explain`)."""
    from flowlaws.discover import BUDGET, CLOSURE_PROBES, GAP

    work = f"work: {found.evaluations:,} of {args.budget or BUDGET:,} field evaluations; seed {args.seed}"
    if _ranked_exactly(found):
        return [work, "ranked exactly at depth 0, before any numerical rank (a piecewise-linear network)",
                *found.certificate.lines()]

    regions = (f", with the sign-class laws of each activation region: the fewest over {found.regions} splits "
               "into classes" if found.regions else "")
    lower = (f"lower bound {found.lower}: the rank of the laws proven conserved (derived laws{regions}, and explicit "
             "polynomial laws, each orthogonal to every field at points the search never used)")
    upper = (f"upper bound {found.upper} = D - rank = {found.params} - {found.rank_by_depth[-1]}: the rank of the "
             f"fields and their brackets at the generic point, by depth {found.rank_by_depth}"
             if found.upper is not None else "no upper bound: a rank decision's gap was below the threshold, or "
             "the brackets' rank passed D minus the proven laws (a numerical error)")
    lines = [lower, upper, f"smallest singular-value gap {found.gap:.3g} (a rank decision needs >= {GAP:.0e})", work]
    if "closure" in found.decided_by:
        lines.append(f"closure: {CLOSURE_PROBES} random brackets [g, w] (g a fresh random field, w a random "
                     "combination of the algebra's basis) stayed in its span; if the algebra had not closed, a "
                     "random pair would leave it with probability 1 (the bracket is bilinear)")
    return lines + (found.certificate.lines() if found.certificate else [])


def cmd_discover(args) -> int:
    """Exit 0 when the derived laws are complete, 1 when laws are missing or spurious
    (a finding), and 0 with a warning when discovery is undecided."""
    from flowlaws.discover import BUDGET, discover, known_extra
    from flowlaws.models import parse

    model = parse(args.spec)
    found = discover(model, degree=args.degree, loss=args.loss, seed=args.seed,
                     budget=args.budget or BUDGET, timeout=args.timeout)
    extra = known_extra(model, found) if found.count is not None and not found.spurious else None
    finding = bool(found.spurious) or (found.count is not None and found.count != found.derived and extra is None)
    if args.json:
        print(json.dumps({**found.to_json(), "known_extra": extra.name if extra else None}))
        return 1 if finding else 0
    count = found.count if found.count is not None else f"undecided (between {found.lower} and {found.upper})"
    out.print(Text(f"{found.spec}: {found.params} parameters, {count} independent conservation laws "
                   f"(loss family: {found.loss}); {found.derived} derived", style="bold"), soft_wrap=True)
    ranked = "exact ranks mod p" if _ranked_exactly(found) else f"smallest singular-value gap {found.gap:.2g}"
    out.print(f"rank of the Lie algebra's trace by bracket depth: {found.rank_by_depth} ({ranked}); "
              f"{found.evaluations:,} field evaluations, {found.seconds:.2f} s", soft_wrap=True)
    if found.decided_by:
        out.print(f"decided by: {DECIDED_BY[found.decided_by]}", soft_wrap=True)
    if args.explain:
        for line in explain(found, args):
            out.print(Text(f"  {line}"), soft_wrap=True)
    for formula in found.explicit:
        out.print(Text(f"  {formula}"), soft_wrap=True)
    if found.note:
        out.print(Text(found.note, style="yellow"), soft_wrap=True)
    verdict = ("complete: the derived laws are all the laws" if found.complete
               else f"known extra: {extra.name}: {extra.reason}" if extra is not None
               else f"missing: {'; '.join(found.missing) or '(not quadratic)'}" if finding and not found.spurious
               else f"spurious derived laws: {', '.join(found.spurious)}" if found.spurious
               else "undecided: the bounds do not meet")
    out.print(Text(verdict, style="green" if found.complete else "red" if finding else "yellow"), soft_wrap=True)
    return 1 if finding else 0


def cmd_figures(args) -> int:
    from flowlaws.figures import make_figures

    with _progress(not args.json and err.is_terminal) as progress:
        task = progress.add_task("figures", total=None)
        written = make_figures(args.out, quick=args.quick,
                               on_phase=lambda name: progress.update(task, description=name))
    if args.json:
        print(json.dumps({"files": [str(p) for p in written]}))
    else:
        for path in written:
            out.print(f"wrote {path}", markup=False, soft_wrap=True)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
