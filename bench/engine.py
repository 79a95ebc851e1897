"""Engine benchmark: flowlaws' value-and-gradient against a hand-written numpy
backprop measured in the same run (a ratio), and gradient flow per integrator.

    python bench/engine.py          # a readable table
    python bench/engine.py --json   # one JSON document

Sizes (ReLU, square loss, mean over the batch): tiny 5-16-16-16-3 batch 32,
medium 10-64-64-64-10 batch 128, large 100-512-512-512-10 batch 256. Targets:
ratios <= 1.5 / 1.2 / 1.1; some integrator with drift <= 1e-12 in <= 3,000 evaluations.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import autograd
import numpy as np

from flowlaws.engine import value_and_grad
from flowlaws.flows import dop853, implicit_midpoint, rk4
from flowlaws.invariants import laws
from flowlaws.losses import Square
from flowlaws.models import mlp

SIZES = {"tiny": ([5, 16, 16, 16, 3], 32), "medium": ([10, 64, 64, 64, 10], 128),
         "large": ([100, 512, 512, 512, 10], 256)}


def reference(params, X, Y):
    """Hand-written backprop for a ReLU MLP with mean square loss 1/(2N) ||f - Y||^2."""
    acts, pre = [X], []
    a = X
    for W in params[:-1]:
        z = a @ W.T
        pre.append(z)
        a = np.maximum(z, 0.0)
        acts.append(a)
    out = a @ params[-1].T
    r = out - Y
    n = len(X)
    value = 0.5 * np.sum(r * r) / n
    d = r / n
    grads = [None] * len(params)
    for i in range(len(params) - 1, -1, -1):
        grads[i] = d.T @ acts[i]
        if i:
            d = (d @ params[i]) * (pre[i - 1] > 0)
    return value, grads


def median_time(fn, repeat: int) -> float:
    fn()  # warm up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def gradient_rows(repeat_scale: int = 1):
    rows = {}
    for name, (widths, batch) in SIZES.items():
        rng = np.random.default_rng(0)
        net, loss = mlp(widths, "relu"), Square()
        p = net.init(rng)
        X, Y = rng.normal(size=(batch, widths[0])), rng.normal(size=(batch, widths[-1]))
        v1, g1 = value_and_grad(net, loss, p, X, Y)
        v2, g2 = reference(p, X, Y)
        assert abs(v1 - v2) <= 1e-12 * abs(v2)
        assert all(np.allclose(a, b, rtol=1e-10, atol=1e-14) for a, b in zip(g1, g2, strict=True))
        repeat = {"tiny": 2000, "medium": 500, "large": 30}[name] * repeat_scale
        # interleave to share machine noise between the two
        ours_fn = lambda net=net, loss=loss, p=p, X=X, Y=Y: value_and_grad(net, loss, p, X, Y)  # noqa: E731
        ref_fn = lambda p=p, X=X, Y=Y: reference(p, X, Y)  # noqa: E731
        plain = autograd.value_and_grad(lambda q, net=net, X=X, Y=Y: Square().value(net.apply(q, X, fused=False), Y))
        ours, ref = [], []
        for _ in range(5):
            ours.append(median_time(ours_fn, repeat // 5))
            ref.append(median_time(ref_fn, repeat // 5))
        generic = median_time(lambda plain=plain, p=p: plain(p), max(repeat // 10, 3))
        rows[name] = {"flowlaws_s": min(ours), "reference_s": min(ref),
                      "ratio": min(ours) / min(ref), "autograd_ratio": generic / min(ref)}
    return rows


def flow_rows():
    widths, batch = SIZES["medium"]
    rng = np.random.default_rng(0)
    net, loss = mlp(widths, "relu"), Square()
    p = net.init(rng)
    X, Y = rng.normal(size=(batch, widths[0])), rng.normal(size=(batch, widths[-1]))
    unit = [law for law in laws(net) if law.kind == "unit"]
    scale = sum(float(np.sum(np.abs(law.magnitude(p, p)))) for law in unit)

    def drift(run):
        return max(float(np.max(np.abs(law.value(run.final) - law.value(p)))) for law in unit) / scale

    runs = [("dop853 rtol=1e-10", lambda: dop853(net, loss, p, X, Y, 1.0, max_evaluations=3000)),
            ("rk4 250 steps", lambda: rk4(net, loss, p, X, Y, 1.0, 250)),
            ("implicit_midpoint 50 steps", lambda: implicit_midpoint(net, loss, p, X, Y, 1.0, 50))]
    rows = []
    for name, make in runs:
        start = time.perf_counter()
        run = make()
        rows.append({"integrator": name, "evaluations": run.evaluations, "status": run.status.name,
                     "max_relative_drift": drift(run) if run.ok else None,
                     "seconds": time.perf_counter() - start})
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    args = parser.parse_args(argv)
    grads = gradient_rows()
    flows = flow_rows()
    doc = {"gradient_ratio": {k: round(v["ratio"], 3) for k, v in grads.items()},
           "autograd_ratio": {k: round(v["autograd_ratio"], 3) for k, v in grads.items()},
           "gradient_seconds": {k: v["flowlaws_s"] for k, v in grads.items()},
           "reference_seconds": {k: v["reference_s"] for k, v in grads.items()},
           "flow": flows,
           "targets": {"gradient_ratio": {"tiny": 1.5, "medium": 1.2, "large": 1.1},
                       "flow": "drift <= 1e-12 with <= 3000 evaluations"}}
    if args.json:
        print(json.dumps(doc, indent=1))
        return 0
    print(f"{'size':8s} {'flowlaws':>12s} {'reference':>12s} {'ratio':>7s} {'autograd':>9s}")
    for k, v in grads.items():
        print(f"{k:8s} {v['flowlaws_s'] * 1e6:10.1f}us {v['reference_s'] * 1e6:10.1f}us "
              f"{v['ratio']:7.2f} {v['autograd_ratio']:8.2f}x")
    print()
    for row in flows:
        d = row["max_relative_drift"]
        print(f"{row['integrator']:28s} {row['evaluations']:6d} evals  drift {d if d is None else f'{d:.2e}'}"
              f"  {row['status']}  {row['seconds']:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
