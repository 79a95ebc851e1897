"""The PyTorch bridge's costs, measured against the training it watches (same run).

    python bench/torch_monitor.py          # a readable summary
    python bench/torch_monitor.py --json   # one JSON document

The time per training step (float32, SGD with momentum 0.9) with and without a
`LawMonitor` attached, in alternating rounds on one net (medians), on a small conv net
(3x16x16, BatchNorm, batch 64), MLPs of 26k, 300k and 1.1M parameters (batch 32), a ResNet-18 for 32x32 inputs (11.2M
parameters, batch 32) and a small GPT (4 causal blocks of width 256 on 64 tokens, 3.4M
parameters, batch 16, and again at batch 64: the monitor's cost follows the parameters, the
step's the parameters times the tokens; ``--quick`` skips these): target overhead <= 10%, with the absolute
cost in ns per parameter per step; `from_torch` + `laws_of` on the conv net (target < 1 s).
Also the engine's value-and-gradient of the conv net of bench/engine.py against torch eager
CPU float64 (reported; the issue's target is <= 1.2x). Threads: see
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


def mlp(width):
    return lambda: nn.Sequential(nn.Linear(64, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                                 nn.Linear(width, 10))


class BasicBlock(nn.Module):
    """torchvision's ResNet BasicBlock, with its downsampling shortcut."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)
        self.conv2, self.bn2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
        self.downsample = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                           if stride != 1 or cin != cout else nn.Identity())

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.downsample(x))


class ResNet18(nn.Module):
    """ResNet-18 for 32x32 inputs (a 3x3 stem, no max pool): 11.2M parameters at its
    ``width`` of 64 (the stem's channels; the four stages have 1, 2, 4 and 8 times it)."""

    def __init__(self, classes=10, width=64):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        blocks, cin = [], width
        for cout, stride in ((width, 1), (2 * width, 2), (4 * width, 2), (8 * width, 2)):
            blocks += [BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)]
            cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.pool, self.fc = nn.AdaptiveAvgPool2d(1), nn.Linear(8 * width, classes)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.blocks(self.stem(x))), 1))


class Block(nn.Module):
    """A GPT block written with torch's attention: pre-norm, causal, GELU MLP."""

    def __init__(self, d, heads, T):
        super().__init__()
        self.ln1, self.attn = nn.LayerNorm(d), nn.MultiheadAttention(d, heads, batch_first=True)
        self.ln2, self.mlp = nn.LayerNorm(d), nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))
        self.register_buffer("mask", torch.triu(torch.ones(T, T, dtype=torch.bool), 1))

    def forward(self, x):
        h = self.ln1(x)
        x = x + self.attn(h, h, h, attn_mask=self.mask, need_weights=False)[0]
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    """A small GPT-style model (token embeddings, 4 causal blocks, a final LayerNorm), read
    out at the mean position into 10 classes (so every model here takes one loss)."""

    def __init__(self, vocabulary=1000, d=256, heads=4, T=64, blocks=4):
        super().__init__()
        self.wte = nn.Embedding(vocabulary, d)
        self.blocks = nn.Sequential(*(Block(d, heads, T) for _ in range(blocks)))
        self.ln_f, self.head = nn.LayerNorm(d), nn.Linear(d, 10)

    def forward(self, idx):
        return self.head(self.ln_f(self.blocks(self.wte(idx))).mean(1))


MODELS = {  # name: (factory, input shape (an int: token ids of that length), batch, SGD settings)
    "conv net (3x16x16, BN)": (conv_net, (3, 16, 16), 64, {"lr": 0.05, "momentum": 0.9}),
    "MLP 64-128-128-10 (26k)": (mlp(128), (64,), 32, {"lr": 0.05, "momentum": 0.9}),
    "MLP 64-512-512-10 (300k)": (mlp(512), (64,), 32, {"lr": 0.05, "momentum": 0.9}),
    "MLP 64-1000-1000-10 (1.1M)": (mlp(1000), (64,), 32, {"lr": 0.05, "momentum": 0.9}),
    "ResNet-18 (11.2M, 32x32)": (ResNet18, (3, 32, 32), 32, {"lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4}),
    "GPT 4x256, T=64 (3.4M)": (GPT, 64, 16, {"lr": 0.05, "momentum": 0.9, "weight_decay": 1e-4}),
    # the same GPT on 4 times the tokens a step: the step grows with them, the monitor does not
    "GPT 4x256, T=64, batch 64 (3.4M)": (GPT, 64, 64, {"lr": 0.05, "momentum": 0.9, "weight_decay": 1e-4}),
}
# GPT-2 small's size (12 blocks of width 768, 12 heads, its 50,257 tokens; 124M parameters) on one
# sequence of its 1,024-token context a step, the fewest tokens it trains on: ``--gpt-small``
# (steps of about 7 s here, 12 GB)
GPT_SMALL = {"GPT-2 small size, T=1024, batch 1 (124M)": (
    lambda: GPT(vocabulary=50257, d=768, heads=12, T=1024, blocks=12), 1024, 1,
    {"lr": 0.05, "momentum": 0.9, "weight_decay": 1e-4})}


def _batch(shape, batch):
    """Inputs and class labels for one model: token ids for a sequence model, else Gaussians."""
    X = torch.randint(0, 1000, (batch, shape)) if isinstance(shape, int) else torch.randn(batch, *shape)
    return X, torch.randint(0, 10, (batch,))


def _seconds_per_step(step, steps: int, finish=lambda: None) -> float:
    """The time per step of ``steps`` steps, ``finish()`` included (a monitor judges its last
    steps there: every step's judgement is timed)."""
    start = time.perf_counter()
    for _ in range(steps):
        step()
    finish()
    return (time.perf_counter() - start) / steps


def verdicts(name: str, steps: int) -> dict:
    """The monitor's float32 verdicts on one model: the step where AdamW is first flagged (of
    20) and the worst effect of SGD with momentum and weight decay over ``steps`` steps."""
    make, shape, batch, _ = MODELS[name]
    found = {"model": name}
    for label, optimizer, count in (("adamw", lambda p: torch.optim.AdamW(p, lr=1e-3), 20),
                                    ("sgd", lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=5e-4),
                                     steps)):
        torch.manual_seed(0)
        net = make()
        opt = optimizer(net.parameters())
        X, y = _batch(shape, batch)
        monitor = LawMonitor(net, opt, example_input=X[:4], loss=nn.CrossEntropyLoss())
        for _ in range(count):
            opt.zero_grad()
            nn.functional.cross_entropy(net(X), y).backward()
            opt.step()
        found[f"{label}_steps"] = count
        found[f"{label}_flagged"] = len(monitor.flagged)
        found[f"{label}_first_flag"] = min((r.flagged[0] for r in monitor.flagged), default=None)
        found[f"{label}_worst_effect"] = monitor.worst_effect
    return found


def overhead(name: str, steps: int, rounds: int) -> dict:
    """The monitor's cost on one model: one net and one optimizer trained in alternating
    rounds of ``steps`` steps without and with a LawMonitor (attached for its round,
    conversion outside the timing), so both sides share the machine's noise: the overhead
    is the median over rounds of a watched round's time over the plain round's just before
    it (and its quartiles: how much the machine moved); the step times are medians."""
    make, shape, batch, settings = {**MODELS, **GPT_SMALL}[name]
    torch.manual_seed(0)
    net = make()
    opt = torch.optim.SGD(net.parameters(), **settings)
    X, y = _batch(shape, batch)

    def step():
        opt.zero_grad()
        nn.functional.cross_entropy(net(X), y).backward()
        opt.step()

    step()  # warm up
    plain, watched = [], []
    for _ in range(rounds):
        plain.append(_seconds_per_step(step, steps))
        monitor = LawMonitor(net, opt, example_input=X[:4], loss=nn.CrossEntropyLoss())
        step()  # the monitor's first step allocates its buffers
        monitor.flush()
        watched.append(_seconds_per_step(step, steps, monitor.flush))
        assert not monitor.errors and not monitor.flagged, (monitor.errors, [r.law.name for r in monitor.flagged])
        monitor.detach()
    base, monitored = float(np.median(plain)), float(np.median(watched))
    ratios = np.array(watched) / np.array(plain) - 1  # each round against the one just before it
    ratio = float(np.median(ratios))
    params = sum(p.numel() for p in net.parameters())
    return {"model": name, "params": params, "step_s": base, "monitored_step_s": monitored,
            "overhead": ratio, "overhead_quartiles": [float(q) for q in np.percentile(ratios, [25, 75])],
            "rounds": rounds, "us_per_param_step": ratio * base / params * 1e6}


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
    parser.add_argument("--steps", type=int, default=20, help="steps per timing (big models: a quarter)")
    parser.add_argument("--quick", action="store_true", help="skip ResNet-18 and the GPT")
    parser.add_argument("--gpt-small", action="store_true",
                        help="also GPT-2 small's size (124M parameters, 1,024 tokens a step; about 8 min)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds a model (default 25; ResNet-18 and the GPT 7)")
    parser.add_argument("--verdict-steps", type=int, default=1000, help="SGD steps of the float32 verdicts")
    args = parser.parse_args(argv)
    note = pin_threads()
    rows = []
    for name in MODELS:
        big = name.startswith(("ResNet", "GPT"))
        if big and args.quick:
            continue
        rows.append(overhead(name, max(2, args.steps // 4) if big else args.steps, args.rounds or (7 if big else 25)))
    if args.gpt_small:  # 2 steps a round, 5 rounds (each round's monitor converts the model again: about 50 s)
        rows += [overhead(name, 2, args.rounds or 5) for name in GPT_SMALL]
    judged = [verdicts(name, args.verdict_steps) for name in MODELS if name.startswith("MLP 64-") and "26k" not in name]
    doc = {"monitor": rows, "verdicts": judged, "conversion_s": conversion_seconds(), "threads": note,
           "engine_vs_torch": engine_against_torch(), "targets": {"overhead": 0.10, "conversion_s": 1.0,
                                                                  "engine_vs_torch": 1.2}}
    if args.json:
        print(json.dumps(doc, indent=1))
        return 0
    print(note)
    for r in rows:
        low, high = r["overhead_quartiles"]
        print(f"{r['model']:28s} step {r['step_s'] * 1e3:8.2f} ms, with LawMonitor "
              f"{r['monitored_step_s'] * 1e3:8.2f} ms: overhead {r['overhead']:6.1%} (target <= 10%; "
              f"quartiles over {r['rounds']} rounds {low:.1%} to {high:.1%}), "
              f"{r['us_per_param_step'] * 1e3:.2f} ns per parameter")
    for v in judged:
        print(f"{v['model']:28s} float32: AdamW flagged {v['adamw_flagged']} laws, first at step "
              f"{v['adamw_first_flag']} (target < 20, worst effect {v['adamw_worst_effect']:.3g}); SGD+momentum+decay "
              f"{v['sgd_flagged']} flags in {v['sgd_steps']} steps (worst effect {v['sgd_worst_effect']:.2g})")
    print(f"from_torch + laws_of: {doc['conversion_s']:.3f} s (target < 1 s)")
    e = doc["engine_vs_torch"]
    print(f"engine vs torch eager float64 ({e['spec']}, batch 64): {e['ratio']:.2f}x (target <= 1.2x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
