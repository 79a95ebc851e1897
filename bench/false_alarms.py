"""Count false alarms: random cases per true theorem (Hypothesis, not derandomized).

    python bench/false_alarms.py [--cases N] [--theorem ID ...] [--json]

A true theorem must never report a violation; prints cases, violations and the worst
effect size per theorem.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from flowlaws.theorems import THEOREMS, run


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--theorem", action="append", help="only these theorems (repeat)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    rows = []
    for thm in THEOREMS.values():
        if thm.expect != "holds" or (args.theorem and thm.id not in args.theorem):
            continue
        start = time.perf_counter()
        result = run(thm, max_examples=args.cases, derandomize=False, seed=12345)
        rows.append({"id": thm.id, "cases": result.cases, "false_alarms": int(result.verdict != "holds"),
                     "worst_effect": result.worst.effect, "seconds": round(time.perf_counter() - start, 1)})
        if not args.json:
            r = rows[-1]
            print(f"{r['id']:14s} {r['cases']:6d} cases  {r['false_alarms']} false alarms  "
                  f"worst {r['worst_effect']:.3g}  {r['seconds']}s", flush=True)
    if args.json:
        print(json.dumps(rows))
    return 1 if any(r["false_alarms"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
