"""The PyTorch bridge's costs, measured against the training it watches (same run).

    python bench/torch_monitor.py          # a readable summary
    python bench/torch_monitor.py --json   # one JSON document

A small conv net (2 conv + BatchNorm + 2 dense, 3x16x16 inputs, batch 64, float32,
SGD with momentum 0.9): the time per training step with and without a `LawMonitor`
attached, interleaved (target: overhead <= 10%), and `from_torch` + `laws_of` on it
(target < 1 s). Also the engine's value-and-gradient of the conv net of bench/engine.py
against torch eager CPU float64 (reported; the issue's target is <= 1.2x). Threads: see
bench/pinned.py (one BLAS and one torch thread on both sides).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch
from pinned import pin_threads
from torch import nn

from flowlaws.torch import LawMonitor, from_torch, laws_of


def conv_net():
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(32 * 4 * 4, 64), nn.ReLU(), nn.Linear(64, 10))


def step_seconds(monitored: bool, steps: int, seed: int = 0) -> float:
    torch.manual_seed(seed)
    net = conv_net()
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    X, y = torch.randn(64, 3, 16, 16), torch.randint(0, 10, (64,))
    monitor = LawMonitor(net, opt, example_input=X, loss=nn.CrossEntropyLoss()) if monitored else None

    def step():
        opt.zero_grad()
        nn.functional.cross_entropy(net(X), y).backward()
        opt.step()

    step()  # warm up
    start = time.perf_counter()
    for _ in range(steps):
        step()
    seconds = (time.perf_counter() - start) / steps
    if monitor is not None:
        assert not monitor.errors and not monitor.flagged, (monitor.errors, [r.law.name for r in monitor.flagged])
        monitor.detach()
    return seconds


def conversion_seconds() -> float:
    start = time.perf_counter()
    net, X = conv_net(), torch.randn(64, 3, 16, 16)
    from_torch(net, X)
    laws_of(net, X, loss=nn.CrossEntropyLoss())
    return time.perf_counter() - start


def engine_against_torch(repeat: int = 20) -> dict:
    """bench/engine.py's conv net: flowlaws value-and-gradient / torch eager float64."""
    from flowlaws.engine import value_and_grad
    from flowlaws.losses import Square

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(16, 32, 3, padding=1),
                        nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(32 * 4 * 4, 10)).double()
    X = torch.randn(64, 3, 16, 16, dtype=torch.float64)
    Y = torch.randn(64, 10, dtype=torch.float64)
    model, params = from_torch(net, X)
    x, y = X.numpy(), Y.numpy()

    def ours():
        value_and_grad(model, Square(), params, x, y)

    def theirs():
        loss = 0.5 * ((net(X) - Y) ** 2).sum(dim=1).mean()
        torch.autograd.grad(loss, list(net.parameters()))

    times = {}
    for name, fn in (("flowlaws", ours), ("torch", theirs)):
        fn()
        samples = []
        for _ in range(repeat):
            start = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - start)
        times[name] = float(np.median(samples))
    return {"spec": model.spec, "flowlaws_s": times["flowlaws"], "torch_s": times["torch"],
            "ratio": times["flowlaws"] / times["torch"]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--steps", type=int, default=40)
    args = parser.parse_args(argv)
    note = pin_threads()
    plain, watched = [], []
    for _ in range(5):  # interleaved, to share the machine's noise
        plain.append(step_seconds(False, args.steps))
        watched.append(step_seconds(True, args.steps))
    base, monitored = float(np.median(plain)), float(np.median(watched))
    doc = {"step_s": base, "monitored_step_s": monitored, "overhead": monitored / base - 1,
           "conversion_s": conversion_seconds(), "threads": note, "engine_vs_torch": engine_against_torch(),
           "targets": {"overhead": 0.10, "conversion_s": 1.0, "engine_vs_torch": 1.2}}
    if args.json:
        print(json.dumps(doc, indent=1))
        return 0
    print(note)
    print(f"training step {base * 1e3:.2f} ms, with LawMonitor {monitored * 1e3:.2f} ms: "
          f"overhead {doc['overhead']:.1%} (target <= 10%)")
    print(f"from_torch + laws_of: {doc['conversion_s']:.3f} s (target < 1 s)")
    e = doc["engine_vs_torch"]
    print(f"engine vs torch eager float64 ({e['spec']}, batch 64): {e['ratio']:.2f}x (target <= 1.2x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
