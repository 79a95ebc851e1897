"""`discover_of(..., blocks=...)` against the whole model's count (same run).

    python bench/torch_blocks.py          # a readable summary
    python bench/torch_blocks.py --json   # one JSON document
    python bench/torch_blocks.py --large  # and models of 11k to 51k parameters by blocks alone
    python bench/torch_blocks.py --million  # and a residual MLP of 1M parameters (about half an hour)

Each model is counted whole (`discover_of(module, x)`, the reference) and block by block
(`discover_of(module, x, blocks=...)`); the counts must agree where both are decided, and
the ratio is whole seconds over block seconds. Threads: see bench/pinned.py (one BLAS and
one torch thread on both sides). ``--large`` counts models too large to count whole by blocks
alone, against the issue's target (50,000 parameters decided in 60 s on 2 cores; this runs
on one): residual MLPs of 47 blocks of 1,072 and 12 blocks of 4,192 parameters, and a
ResNet-18 of width 2 (bench/torch_monitor.py's, its stem 2 channels wide) on 16x16 images.
``--million``: a residual MLP of 240 blocks of 4,192 parameters (1,006,500), the issue's
"1M-parameter models by blocks", with the process's peak memory.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time

import torch
from pinned import pin_threads
from torch import nn
from torch_monitor import BasicBlock, ResNet18

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


LARGE = {  # name: (factory, input shape, the block class, batch)
    "residual MLP 16-32, 46 blocks of 1,072 (49.5k)": (residual_mlp(16, 32, 46), (8,), Residual, 8),
    "residual MLP 32-64, 12 blocks of 4,192 (50.7k)": (residual_mlp(32, 64, 12), (8,), Residual, 8),
    "ResNet-18 of width 2, 16x16 (11.4k)": (lambda: ResNet18(width=2), (3, 16, 16), BasicBlock, 4),
}
MILLION = {"residual MLP 32-64, 240 blocks of 4,192 (1.0M)": (residual_mlp(32, 64, 240), (8,), Residual, 8)}


def by_blocks(name: str) -> dict:
    """One large model counted by blocks: its count, how it was decided, the seconds."""
    make, shape, block, batch = {**LARGE, **MILLION}[name]
    torch.manual_seed(0)
    module, x = make().double(), torch.randn(batch, *shape, dtype=torch.float64)
    start = time.perf_counter()
    found = discover_of(module, x, blocks=block)
    return {"model": name, "params": sum(p.numel() for p in module.parameters()), "count": found.count,
            "lower": found.lower, "upper": found.upper, "decided_by": found.decided_by,
            "seconds": time.perf_counter() - start,
            "peak_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}  # (the process's so far)


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
    parser.add_argument("--large", action="store_true", help="also count the large models by blocks")
    parser.add_argument("--million", action="store_true", help="also count a 1M-parameter model by blocks")
    args = parser.parse_args(argv)
    note = pin_threads()
    large = [*(LARGE if args.large else ()), *(MILLION if args.million else ())]
    results = {"threads": note, "models": [measure(name) for name in MODELS],
               "large": [by_blocks(name) for name in large], "target_large_s": 60}
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(note)
    for row in results["models"]:
        whole, blocks = row["whole"], row["blocks"]
        print(f"{row['model']:42} whole: {whole['count']} ({whole['decided_by'] or 'undecided'}) in "
              f"{whole['seconds']:.1f} s; by blocks: {blocks['count']} ({blocks['decided_by'] or 'undecided'}) in "
              f"{blocks['seconds']:.1f} s: {row['ratio']:.1f}x")
    for row in results["large"]:
        print(f"{row['model']:48} by blocks: {row['count']} ({row['decided_by'] or 'undecided'}) in "
              f"{row['seconds']:.1f} s on one core (target <= 60 s on two at 50k), peak {row['peak_gib']:.1f} GiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
