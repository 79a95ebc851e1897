"""Checking throughput: cases/s of the full check against drawing the same scenarios
without checking (the Hypothesis floor), measured in the same run.

    python bench/throughput.py [--cases N (default 200, the ci profile)] [--theorem ID ...] [--json]

Per theorem: the seconds for ``run(theorem, max_examples=N)`` (derandomized, as the ci
profile) and for a Hypothesis test over the same strategy whose body only counts the
cases (after an untimed warm-up draw of the same cases, so that neither run pays the
other's process-wide caches); the ratio check / generation and cases/s; and the ratio
over all of them (the whole ci space, target <= 2).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from hypothesis import HealthCheck, Phase, given, settings
from pinned import pin_threads

from flowlaws.campaign import true_theorems
from flowlaws.catalog import theorem
from flowlaws.runner import pinned_draws, run
from flowlaws.strategies import PROFILES, scenarios


def generation_seconds(thm, cases: int) -> float:
    """Drawing ``cases`` scenarios of the theorem's space, and nothing else."""
    drawn = []

    @settings(max_examples=cases, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck), phases=[Phase.generate])
    @given(scenarios(thm))
    def draw(scenario):
        drawn.append(1)

    started = time.perf_counter()
    with pinned_draws():  # as `run` draws
        draw()
    return time.perf_counter() - started


def check_seconds(thm, cases: int) -> tuple[float, int]:
    started = time.perf_counter()
    result = run(thm, max_examples=cases, derandomize=True)
    return time.perf_counter() - started, result.cases


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=PROFILES["ci"], help="cases per theorem (default: ci profile)")
    parser.add_argument("--theorem", action="append", help="only these theorems (repeat)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    print(pin_threads(), file=sys.stderr)
    rows = []
    for name in args.theorem or true_theorems():
        thm = theorem(name)
        generation_seconds(thm, args.cases)  # warm-up: the process-wide caches both runs use
        generate = generation_seconds(thm, args.cases)
        check, cases = check_seconds(thm, args.cases)
        rows.append({"theorem": name, "cases": cases, "check_s": round(check, 3), "generate_s": round(generate, 3),
                     "ratio": check / generate, "check_cases_per_s": cases / check,
                     "generate_cases_per_s": args.cases / generate})
        if not args.json:
            r = rows[-1]
            print(f"{name:14s} check {r['check_cases_per_s']:7.1f} cases/s  generate {r['generate_cases_per_s']:7.1f} "
                  f"cases/s  ratio {r['ratio']:5.2f}", flush=True)
    total = {"check_s": sum(r["check_s"] for r in rows), "generate_s": sum(r["generate_s"] for r in rows)}
    total["ratio"] = total["check_s"] / total["generate_s"]  # the whole space: what a campaign pays
    if args.json:
        print(json.dumps({"rows": rows, "all": total, "target_ratio": 2.0}, indent=1))
    else:
        print(f"{'all':14s} check {total['check_s']:7.1f} s        generate {total['generate_s']:7.1f} s        "
              f"ratio {total['ratio']:5.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
