"""`discover_of(..., blocks=...)` against the whole model's count (same run).

    python bench/torch_blocks.py          # a readable summary
    python bench/torch_blocks.py --json   # one JSON document

Each model is counted whole (`discover_of(module, x)`, the reference) and block by block
(`discover_of(module, x, blocks=...)`); the counts must agree where both are decided, and
the ratio is whole seconds over block seconds. Threads: see bench/pinned.py (one BLAS and
one torch thread on both sides).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch
from pinned import pin_threads
from torch import nn

from flowlaws.torch import discover_of


class Residual(nn.Module):
    """x + W2 relu(W1 x + b1) + b2."""

    def __init__(self, d, hidden):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(d, hidden), nn.Linear(hidden, d)

    def forward(self, x):
        return x + self.fc2(torch.relu(self.fc1(x)))


def residual_mlp(d, hidden, blocks):
    return lambda: nn.Sequential(nn.Linear(8, d), *(Residual(d, hidden) for _ in range(blocks)), nn.ReLU(),
                                 nn.Linear(d, 4))


MODELS = {  # name: (factory, input shape, the block class)
    "residual MLP 8-8, 4 blocks of 16 (1.2k)": (residual_mlp(8, 16, 4), (8,), Residual),
    "residual MLP 8-12, 4 blocks of 24 (2.5k)": (residual_mlp(12, 24, 4), (8,), Residual),
}


def measure(name: str) -> dict:
    make, shape, block = MODELS[name]
    torch.manual_seed(0)
    module, x = make().double(), torch.randn(8, *shape, dtype=torch.float64)
    rows = {}
    for side, blocks in (("whole", None), ("blocks", block)):
        start = time.perf_counter()
        found = discover_of(module, x, blocks=blocks)
        rows[side] = {"seconds": time.perf_counter() - start, "count": found.count, "lower": found.lower,
                      "upper": found.upper, "decided_by": found.decided_by}
    return {"model": name, "params": sum(p.numel() for p in module.parameters()), **rows,
            "ratio": rows["whole"]["seconds"] / rows["blocks"]["seconds"]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    note = pin_threads()
    results = {"threads": note, "models": [measure(name) for name in MODELS]}
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(note)
    for row in results["models"]:
        whole, blocks = row["whole"], row["blocks"]
        print(f"{row['model']:42} whole: {whole['count']} ({whole['decided_by'] or 'undecided'}) in "
              f"{whole['seconds']:.1f} s; by blocks: {blocks['count']} ({blocks['decided_by'] or 'undecided'}) in "
              f"{blocks['seconds']:.1f} s: {row['ratio']:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
