"""`flowlaws figures`: the paper's Fig. 1 and Fig. 2, as PNG, SVG and JSON.

Sizes and constants are ours (the paper's are not available):
- Fig. 1: M* 20 x 20 of rank 5 (singular values uniform in [0.5, 1]), U, V of rank 5,
  unbalanced init V = 0.05 G2, U = 0.025 G1 ||G2||/||G1|| (F-norm ratio 0.5), constant step
  eta = 0.05, 3,000 iterations, with lambda = 0 and with the regularizer
  (lambda/4)||U^T U - V^T V||^2, lambda = 1.
- Fig. 2: mlp:20-100-100-1:relu, 1,000 Gaussian inputs, targets 5 x a random
  teacher of the same shape, small i.i.d. N(0, 0.004^2) init of every weight, GD
  with eta = 0.01 on the mean square loss, 3,000 iterations.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from flowlaws.errors import InvalidArgument


def figure1_data(seed: int = 0, steps: int = 3000) -> dict:
    from flowlaws.matrix_factorization import gd, target_matrix

    rng = np.random.default_rng(seed)
    M = target_matrix(rng, 20, 20, 5)
    G1, G2 = rng.normal(size=(20, 5)), rng.normal(size=(20, 5))
    U0, V0 = 0.025 * G1 * np.linalg.norm(G2) / np.linalg.norm(G1), 0.05 * G2
    data: dict[str, Any] = {"init_ratio": float(np.linalg.norm(U0) / np.linalg.norm(V0))}
    for label, lam in (("plain", 0.0), ("regularized", 1.0)):
        run = gd(M, U0, V0, np.full(steps, 0.05), regularizer=lam)
        objective = 0.5 * (run.errors * np.linalg.norm(M)) ** 2
        data[label] = {"log10_objective": np.log10(np.maximum(objective, 1e-300)).tolist(),
                       "fnorm_ratio": np.sqrt(run.ratios).tolist(),
                       "final_ratio": float(np.sqrt(run.ratios[-1])),
                       "rate_per_iteration": _rate(objective)}
    return data


def _rate(objective: np.ndarray) -> float:
    t = np.flatnonzero((objective < 1e-2 * objective[0]) & (objective > 1e-20))
    if len(t) < 3:
        return float("nan")
    return float(-np.polyfit(t, np.log(objective[t]), 1)[0])


def figure2_data(seed: int = 0, steps: int = 3000) -> dict:
    from flowlaws.flows import GD, descend
    from flowlaws.losses import Square
    from flowlaws.models import mlp

    rng = np.random.default_rng(seed)
    net = mlp([20, 100, 100, 1], "relu")
    X = rng.normal(size=(1000, 20))
    Y = 5.0 * net.apply(net.init(rng), X, fused=False)
    small = tuple(rng.normal(0.0, 0.004, size=shape) for _, shape in net.param_specs)
    run = descend(net, Square(), small, X, Y, GD(0.01), steps)
    if not run.ok:
        raise InvalidArgument(f"figure 2 run failed: {run.message}")
    norms = np.array([[float(np.sum(w * w)) for w in p] for p in run.params])
    pairs = {}
    for h in range(norms.shape[1] - 1):
        key = f"W{h + 1}-W{h + 2}"
        pairs[key] = {"difference": (norms[:, h] - norms[:, h + 1]).tolist(),
                      "ratio": (norms[:, h] / norms[:, h + 1]).tolist(),
                      "growth": float(norms[-1, h + 1] / norms[0, h + 1]),
                      "final_ratio": float(norms[-1, h] / norms[-1, h + 1]),
                      "max_abs_difference": float(np.max(np.abs(norms[:, h] - norms[:, h + 1])))}
    return {"loss": run.losses.tolist(), "pairs": pairs}


def make_figures(out, steps: int = 3000) -> list[Path]:
    """Write fig1.{png,svg}, fig2.{png,svg} and figures.json into ``out``."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise InvalidArgument("flowlaws figures needs matplotlib: pip install 'flowlaws[plot]'") from None
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    one, two = figure1_data(steps=steps), figure2_data(steps=steps)
    written = []

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for label in ("plain", "regularized"):
        left.plot(one[label]["log10_objective"], label=label)
        right.plot(one[label]["fnorm_ratio"], label=label)
    left.set(xlabel="iteration", ylabel="log10 objective", title="Fig. 1: objective")
    right.set(xlabel="iteration", ylabel="||U||_F / ||V||_F", title="Fig. 1: F-norm ratio")
    left.legend(), right.legend()
    written += _save(fig, out / "fig1")

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for key, pair in two["pairs"].items():
        left.plot(pair["difference"], label=key)
        right.plot(pair["ratio"], label=key)
    left.set(xlabel="iteration", ylabel="||W_h||^2 - ||W_h+1||^2", title="Fig. 2: differences")
    right.set(xlabel="iteration", ylabel="||W_h||^2 / ||W_h+1||^2", title="Fig. 2: ratios")
    left.legend(), right.legend()
    written += _save(fig, out / "fig2")
    plt.close("all")

    path = out / "figures.json"
    path.write_text(json.dumps({"figure1": one, "figure2": two}))
    return [*written, path]


def _save(fig, stem: Path) -> list[Path]:
    paths = [stem.with_suffix(".png"), stem.with_suffix(".svg")]
    for path in paths:
        fig.savefig(path, dpi=100)
    return paths
