"""`discover_of`'s brackets: one vmapped pass per depth against one by one (same run).

    python bench/torch_discovery.py          # a readable summary
    python bench/torch_discovery.py --json   # one JSON document

For each module, the depth-1 brackets [g_a, g_b] of its first generators and the depth-2
brackets [g_c, [g_a, g_b]] are evaluated at theta0 both ways: batched
(`ModuleProblem.bracket_values`, 64 chains per `vmap`) and one by one
(`flowlaws.discover._bracket_value`, forward mode over reverse per bracket, as before).
The values must agree to round-off; the ratio is one-by-one seconds over batched seconds.
Threads: see bench/pinned.py (one BLAS and one torch thread on both sides).
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

from flowlaws.discover import Work, _bracket_value, bracket
from flowlaws.torch.discovery import ModuleProblem


def mlp():
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 3))


def block():
    return nn.Sequential(nn.Linear(6, 8), nn.LayerNorm(8), nn.GELU(), nn.Linear(8, 6), nn.LayerNorm(6),
                         nn.Linear(6, 2))


MODULES = {"MLP 8-16-16-3 (467)": (mlp, (8,)), "LayerNorm-GELU block (214)": (block, (6,))}


def measure(name: str, brackets: int) -> dict:
    make, shape = MODULES[name]
    torch.manual_seed(0)
    problem = ModuleProblem(make(), torch.randn(4, *shape), cross_entropy=False, seed=0, work=Work(10**9))
    g = problem.generators()
    rows = {}
    for depth in (1, 2):
        inner = [g[k % len(g)] if depth == 1 else bracket(g[k % len(g)], g[(k + 1) % len(g)])
                 for k in range(brackets)]
        pairs = [(g[(3 * k + 2) % len(g)], b) for k, b in enumerate(inner)]
        start = time.perf_counter()
        batched = np.stack(problem.bracket_values(pairs))
        middle = time.perf_counter()
        alone = np.stack([_bracket_value(u, v, problem.theta) for u, v in pairs])
        end = time.perf_counter()
        rows[f"depth {depth}"] = {"brackets": brackets, "batched s": middle - start, "one by one s": end - middle,
                                  "ratio": (end - middle) / (middle - start),
                                  "max relative difference": float(np.abs(batched - alone).max()
                                                                   / np.abs(alone).max())}
    return {"module": name, "params": problem.D, **rows}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--brackets", type=int, default=256)
    args = parser.parse_args(argv)
    note = pin_threads()
    results = {"threads": note, "modules": [measure(name, args.brackets) for name in MODULES]}
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(note)
    for row in results["modules"]:
        for depth in ("depth 1", "depth 2"):
            r = row[depth]
            print(f"{row['module']:28} {depth}: {r['brackets']} brackets batched {r['batched s']:.2f} s, one by one "
                  f"{r['one by one s']:.2f} s: {r['ratio']:.1f}x (values agree to {r['max relative difference']:.1e})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
