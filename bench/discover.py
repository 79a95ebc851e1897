"""Discovery benchmark: known answers, Marcotte et al.'s random sweeps (each count certified
exactly over a prime field where the network is a polynomial once frozen), and `laws` on a big net.

    python bench/discover.py [--json] [--sweep N]

Anchor (Marcotte, Gribonval, Peyre, NeurIPS 2023, published SageMath code): 34 min for 50
random linear architectures and 1 h 53 min for 50 random ReLU architectures (widths 2-9,
bias with probability 0.5) on 64 cores. Targets: each known answer <= 1 s; each sweep of
50 <= 60 s on this 2-core machine, every count equal to the known answer; a 5,000-parameter
ReLU MLP decided and certified in <= 60 s (issue 28); `flowlaws laws mlp:10-64-64-64-10:linear`
<= 5 s and <= 300 MB.
"""

from __future__ import annotations

import argparse
import itertools
import json
import resource
import subprocess
import sys
import time

import numpy as np
from pinned import pin_threads

from flowlaws.discover import discover
from flowlaws.errors import InvalidArgument
from flowlaws.models import parse

KNOWN = [("mlp:2-2-2:linear", 3), ("mlp:2-3-2:linear", 6), ("mlp:2-4-1:linear", 9), ("mlp:3-4-5-2:relu:bias", 9),
         ("mlp:3-4-5-2:relu", 9), ("factorization:4x5:2", 3),
         ("seq:1x12:conv1d(4,3,bias),relu,maxpool1d(2),flatten,dense(2)", 4),
         ("seq:3:dense(3),relu,residual[dense(3),relu,dense(3)],dense(1)", 6),
         ("seq:3:dense(3),relu,residual[dense(2),relu,dense(3)],relu,dense(1)", 5),
         ("seq:3:residual[dense(2),relu,dense(3)],residual[dense(2),relu,dense(3)],dense(1)", 4),
         # units fed by one value, decided by the fewest laws of any region (issue 28's independent counts)
         ("mlp:1-6-4:leaky_relu(0.2)", 12), ("mlp:6-3-1-6-1:leaky_relu(0.1)", 14),
         ("seq:3x3:attention(heads=1,dk=2,dv=1),relu,flatten,dense(1)", 8),
         ("seq:1:residual[dense(2),abs,dense(1)],abs,dense(3)", 3)]


def _formula(widths, activation):
    """The known count: one per hidden unit (ReLU); r(r+1)/2 - s(s+1)/2 for two-layer linear
    nets; D - 1 for linear nets with scalar input and output; None otherwise."""
    if activation == "relu":
        return sum(widths[1:-1])
    if widths[0] == widths[-1] == 1:
        return sum(a * b for a, b in itertools.pairwise(widths)) - 1
    if len(widths) == 3:
        n, r, m = widths
        s = max(0, r - n - m)
        return r * (r + 1) // 2 - s * (s + 1) // 2
    return None


def sweep(activation, count, seed, high):
    rng = np.random.default_rng(seed)
    rows, started = [], time.perf_counter()
    for _ in range(count):
        widths = [int(w) for w in rng.integers(2, high + 1, size=int(rng.integers(3, 6)))]
        bias = activation == "relu" and bool(rng.random() < 0.5)
        spec = f"mlp:{'-'.join(map(str, widths))}:{activation}" + (":bias" if bias else "")
        t = time.perf_counter()
        known = _formula(widths, activation)
        try:
            found = discover(parse(spec), degree=0)
        except InvalidArgument as error:  # no point where every unit changes slope
            rows.append({"spec": spec, "count": None, "upper": None, "lower": None, "known": known,
                         "agrees": False, "note": str(error), "seconds": round(time.perf_counter() - t, 3)})
            continue
        value = found.count if found.count is not None else found.upper
        rows.append({"spec": spec, "count": found.count, "upper": found.upper, "lower": found.lower,
                     "known": known, "agrees": known is None or value == known, "decided_by": found.decided_by,
                     "seconds": round(time.perf_counter() - t, 3)})
    return {"architectures": count, "agree": sum(r["agrees"] for r in rows),
            "with_formula": sum(r["known"] is not None for r in rows),
            "undecided": sum(r["count"] is None for r in rows),
            "certified": sum(r.get("decided_by") in ("exact", "exact closure") for r in rows),
            "seconds": round(time.perf_counter() - started, 2), "rows": rows}


LARGE = ["mlp:8-32-32-4:relu", "mlp:16-64-56-8:relu", "mlp:32-64-40-8:relu:bias"]  # 1,408, 5,056, 5,040


def large_relu():
    """Certified counts of ReLU MLPs of 1,400-5,000 parameters: one law per hidden unit."""
    rows = []
    for spec in LARGE:
        t = time.perf_counter()
        found = discover(parse(spec), degree=0)
        known = sum(int(w) for w in spec.split(":")[1].split("-")[1:-1])
        rows.append({"spec": spec, "params": found.params, "count": found.count, "known": known,
                     "decided_by": found.decided_by, "failure_probability": found.certificate.failure,
                     "seconds": round(time.perf_counter() - t, 2)})
    return rows


def big_laws():
    code = ("import time,json,io,contextlib\nt=time.perf_counter()\nfrom flowlaws.cli import main\n"
            "f=io.StringIO()\nwith contextlib.redirect_stdout(f): main(['laws','mlp:10-64-64-64-10:linear','--json'])\n"
            "hwm=[l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]\n"
            "print(json.dumps({'seconds':time.perf_counter()-t,'peak_mb':int(hwm)/1024,"
            "'independent':json.loads(f.getvalue())['independent']}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--sweep", type=int, default=50, help="architectures per sweep (default 50)")
    args = parser.parse_args(argv)
    note = pin_threads()
    known = []
    for spec, count in KNOWN:
        t = time.perf_counter()
        found = discover(parse(spec))
        known.append({"spec": spec, "count": found.count, "expected": count, "complete": found.complete,
                      "explicit": len(found.explicit), "seconds": round(time.perf_counter() - t, 3)})
    report = {"known": known,
              "relu_sweep": sweep("relu", args.sweep, 0, 9),
              "linear_sweep": sweep("linear", args.sweep, 1, 5),
              "large_relu": large_relu(),
              "laws_big_linear": big_laws(),
              "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "threads": note}
    if args.json:
        print(json.dumps(report))
    else:
        print(note)
        for row in known:
            print(f"{row['spec']:80s} {row['count']!s:>4} (expected {row['expected']})  {row['seconds']:.2f} s")
        for name in ("relu_sweep", "linear_sweep"):
            s = report[name]
            print(f"{name}: {s['agree']}/{s['architectures']} agree with the known answer "
                  f"({s['with_formula']} have one; {s['undecided']} undecided; {s['certified']} certified "
                  f"exactly) in {s['seconds']} s")
            for row in s["rows"]:
                if not row["agrees"]:
                    print(f"   disagrees: {row}")
        for row in report["large_relu"]:
            print(f"discover {row['spec']} ({row['params']:,} parameters): {row['count']} (known {row['known']}), "
                  f"decided by {row['decided_by'] or 'nothing'}, in {row['seconds']:.1f} s")
        big = report["laws_big_linear"]
        print(f"laws mlp:10-64-64-64-10:linear: {big['independent']} laws in {big['seconds']:.2f} s "
              f"(with the imports), peak {big['peak_mb']:.0f} MB")
    ok = all(r["count"] == r["expected"] for r in known) and all(
        report[n]["agree"] == report[n]["architectures"] for n in ("relu_sweep", "linear_sweep")) and all(
        r["count"] == r["known"] and r["decided_by"] == "exact" for r in report["large_relu"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
