"""Engine benchmark: flowlaws' value-and-gradient against a hand-written numpy
backprop measured in the same run (a ratio), and gradient flow per integrator.

    python bench/engine.py          # a readable table
    python bench/engine.py --json   # one JSON document

Sizes (ReLU, square loss, mean over the batch): tiny 5-16-16-16-3 batch 32,
medium 10-64-64-64-10 batch 128, large 100-512-512-512-10 batch 256. Targets:
ratios <= 1.5 / 1.2 / 1.1; some integrator with drift <= 1e-12 in <= 3,000 evaluations.
Normalization and attention (target <= 1.3 each): BATCHNORM_NET at batch 128 and
ATTENTION_NET (T = 16, d = 32, 4 heads) at batch 32, against hand-written numpy
forward and backward passes of the same nets; PyTorch eager CPU float64 is reported
alongside when torch is installed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import autograd
import numpy as np
from pinned import pin_threads

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


BATCHNORM_NET = "seq:10:dense(64),batchnorm,relu,dense(64),batchnorm,relu,dense(10)"
ATTENTION_NET = "seq:16x32:attention(heads=4,dk=8,dv=8),flatten,dense(10)"


def batchnorm_reference(params, X, Y):
    """Hand-written backprop: dense, BatchNorm (batch statistics, eps 0), ReLU, twice; a
    dense head; mean square loss."""
    W1, W2, W3 = params
    cache, a = [], X
    for W in (W1, W2):
        z = a @ W.T
        d = z - z.mean(axis=0)
        s = 1.0 / np.sqrt((d * d).mean(axis=0))
        xhat = d * s
        cache.append((a, s, xhat))
        a = np.maximum(xhat, 0.0)
    r = a @ W3.T - Y
    n = len(X)
    dout = r / n
    grads = [None, None, dout.T @ a]
    g = dout @ W3
    for i in (1, 0):
        inp, s, xhat = cache[i]
        g = g * (xhat > 0)
        dz = s * (g - g.mean(axis=0) - xhat * (g * xhat).mean(axis=0))
        grads[i] = dz.T @ inp
        g = dz @ params[i]
    return 0.5 * np.sum(r * r) / n, grads


def attention_reference(params, X, Y):
    """Hand-written backprop: multi-head self-attention (heads stacked, batched matmul),
    flatten, a dense head; mean square loss."""
    heads = (len(params) - 1) // 4
    Wq, Wk, Wv, Wo = (np.stack(params[i:4 * heads:4]) for i in range(4))
    W = params[-1]
    x = X[:, None]  # (N, 1, T, d)
    Q, K, V = x @ Wq, x @ Wk, x @ Wv  # (N, H, T, k)
    scale = 1.0 / np.sqrt(Wq.shape[-1])
    S = (Q @ K.swapaxes(-1, -2)) * scale
    E = np.exp(S - S.max(axis=-1, keepdims=True))
    A = E / E.sum(axis=-1, keepdims=True)
    H = A @ V
    out = (H @ Wo).sum(axis=1)  # (N, T, d)
    flat = out.reshape(len(X), -1)
    r = flat @ W.T - Y
    n = len(X)
    dout = r / n
    dW = dout.T @ flat
    g = (dout @ W).reshape(out.shape)[:, None]  # (N, 1, T, d)
    dWo = (H.swapaxes(-1, -2) @ g).sum(axis=0)
    dH = g @ Wo.swapaxes(-1, -2)
    dA = dH @ V.swapaxes(-1, -2)
    dV = A.swapaxes(-1, -2) @ dH
    dS = A * (dA - (dA * A).sum(axis=-1, keepdims=True)) * scale
    dQ, dK = dS @ K, dS.swapaxes(-1, -2) @ Q
    xt = x.swapaxes(-1, -2)
    dWq, dWk, dWv = ((xt @ D).sum(axis=0) for D in (dQ, dK, dV))
    grads = [m[h] for h in range(heads) for m in (dWq, dWk, dWv, dWo)]
    return 0.5 * np.sum(r * r) / n, [*grads, dW]


def layer_rows(repeat: int = 200):
    """flowlaws against the hand-written references (and torch, when installed)."""
    from flowlaws.models import parse

    rows = {}
    for name, spec, batch, ref in (("batchnorm", BATCHNORM_NET, 128, batchnorm_reference),
                                   ("attention", ATTENTION_NET, 32, attention_reference)):
        rng = np.random.default_rng(0)
        net, loss = parse(spec), Square()
        p = net.init(rng)
        X, Y = rng.normal(size=(batch, *net.input_shape)), rng.normal(size=(batch, *net.output_shape))
        v1, g1 = value_and_grad(net, loss, p, X, Y)
        v2, g2 = ref(p, X, Y)
        assert abs(v1 - v2) <= 1e-12 * abs(v2)
        assert all(np.allclose(a, b, rtol=1e-9, atol=1e-13) for a, b in zip(g1, g2, strict=True))
        ours, refs = [], []
        for _ in range(5):
            ours.append(median_time(lambda net=net, loss=loss, p=p, X=X, Y=Y: value_and_grad(net, loss, p, X, Y),
                                    repeat // 5))
            refs.append(median_time(lambda p=p, X=X, Y=Y, ref=ref: ref(p, X, Y), repeat // 5))
        rows[name] = {"spec": spec, "batch": batch, "flowlaws_s": min(ours), "reference_s": min(refs),
                      "ratio": min(ours) / min(refs), "torch_ratio": _torch_ratio(net, p, X, Y, min(refs))}
    return rows


def _torch_ratio(net, params, X, Y, reference_s):
    """PyTorch eager CPU float64 of the same net (autograd.grad on the same function),
    relative to the numpy reference; None without torch."""
    try:
        import torch
    except ImportError:
        return None
    tp = [torch.tensor(q, requires_grad=True) for q in params]
    tX, tY = torch.tensor(X), torch.tensor(Y)

    def step():
        out = _torch_forward(net, tp, tX)
        value = 0.5 * ((out - tY) ** 2).sum() / len(tX)
        return torch.autograd.grad(value, tp)

    return median_time(step, 50) / reference_s


def _torch_forward(net, tp, x):
    import torch

    if net.spec == BATCHNORM_NET:
        for W in tp[:2]:
            z = x @ W.T
            x = torch.relu((z - z.mean(0)) / torch.sqrt(z.var(0, unbiased=False)))
        return x @ tp[2].T
    heads = (len(tp) - 1) // 4
    out = 0.0
    for h in range(heads):
        q, k, v, o = tp[4 * h: 4 * h + 4]
        a = torch.softmax((x @ q) @ (x @ k).transpose(-1, -2) / q.shape[-1] ** 0.5, dim=-1)
        out = out + a @ (x @ v) @ o
    return out.reshape(len(x), -1) @ tp[-1].T


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
    args = parser.parse_args(argv)
    note = pin_threads()
    grads = gradient_rows()
    layers = layer_rows()
    flows = flow_rows()
    doc = {"gradient_ratio": {k: round(v["ratio"], 3) for k, v in grads.items()},
           "autograd_ratio": {k: round(v["autograd_ratio"], 3) for k, v in grads.items()},
           "gradient_seconds": {k: v["flowlaws_s"] for k, v in grads.items()},
           "reference_seconds": {k: v["reference_s"] for k, v in grads.items()},
           "layers": layers, "threads": note,
           "flow": flows,
           "targets": {"gradient_ratio": {"tiny": 1.5, "medium": 1.2, "large": 1.1},
                       "layer_ratio": {"batchnorm": 1.3, "attention": 1.3},
                       "flow": "drift <= 1e-12 with <= 3000 evaluations"}}
    if args.json:
        print(json.dumps(doc, indent=1))
        return 0
    print(note)
    print(f"{'size':8s} {'flowlaws':>12s} {'reference':>12s} {'ratio':>7s} {'autograd':>9s}")
    for k, v in grads.items():
        print(f"{k:8s} {v['flowlaws_s'] * 1e6:10.1f}us {v['reference_s'] * 1e6:10.1f}us "
              f"{v['ratio']:7.2f} {v['autograd_ratio']:8.2f}x")
    for k, v in layers.items():
        torch_text = "" if v["torch_ratio"] is None else f"  torch {v['torch_ratio']:.2f}x"
        print(f"{k:10s} {v['flowlaws_s'] * 1e6:10.1f}us {v['reference_s'] * 1e6:10.1f}us {v['ratio']:7.2f}"
              f"{torch_text}   ({v['spec']}, batch {v['batch']})")
    print()
    for row in flows:
        d = row["max_relative_drift"]
        print(f"{row['integrator']:28s} {row['evaluations']:6d} evals  drift {d if d is None else f'{d:.2e}'}"
              f"  {row['status']}  {row['seconds']:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
