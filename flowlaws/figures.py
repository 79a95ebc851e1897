"""`flowlaws figures`: the paper's Fig. 1 and Fig. 2, as PNG, SVG and JSON.

Sizes and constants are ours (the paper's are not available):
- Fig. 1: M* 20 x 20 of rank 5 (singular values uniform in [0.5, 1]), U, V of rank 5,
  unbalanced init V = 0.05 G2, U = 0.025 G1 ||G2||/||G1|| (F-norm ratio 0.5), constant step
  eta = 0.05, 3,000 iterations, with lambda = 0 and with the regularizer
  (lambda/4)||U^T U - V^T V||^2, lambda = 1.
- Fig. 2: mlp:20-100-100-1:relu, 1,000 Gaussian inputs, targets 5 x a random
  teacher of the same shape, small i.i.d. N(0, 0.004^2) init of every weight, GD
  with eta = 0.01 on the mean square loss, 3,000 iterations; panels from the paper's
  balanced start (each layer rescaled to a common squared norm) and from the raw i.i.d.
  start. ``--quick``: mlp:10-40-40-1, 200 inputs, 600 iterations.
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


FULL: dict[str, Any] = {"steps": 3000, "widths": (20, 100, 100, 1), "points": 1000}
QUICK: dict[str, Any] = {"steps": 600, "widths": (10, 40, 40, 1), "points": 200}


def figure2_data(seed: int = 0, steps: int = 3000, widths=FULL["widths"], points: int = FULL["points"],
                 init: str = "balanced") -> dict:
    """GD on a ReLU net from a small start: squared-norm differences and ratios per layer
    pair. ``init="balanced"`` (the paper's panels) rescales each layer of the small i.i.d.
    draw to a common squared norm; ``"iid"`` keeps the draw (layers of different shapes then
    start unbalanced, ||W_h||^2 proportional to n_h n_h-1)."""
    from flowlaws.flows import GD, descend
    from flowlaws.losses import Square
    from flowlaws.models import mlp

    rng = np.random.default_rng(seed)
    net = mlp(list(widths), "relu")
    X = rng.normal(size=(points, widths[0]))
    Y = 5.0 * net.apply(net.init(rng), X, fused=False)
    small = tuple(rng.normal(0.0, 0.004, size=shape) for _, shape in net.param_specs)
    if init == "balanced":
        common = float(np.mean([np.sum(w * w) for w in small]))
        small = tuple(w * np.sqrt(common / np.sum(w * w)) for w in small)
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
    return {"loss": run.losses.tolist(), "pairs": pairs, "init": init}


def make_figures(out, *, quick: bool = False, steps: int | None = None, on_phase=None) -> list[Path]:
    """Write fig1.{png,svg}, fig2.{png,svg} and figures.json into ``out``; ``quick`` uses a
    smaller net and fewer iterations (settings in QUICK); ``on_phase(name)`` reports progress."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise InvalidArgument("flowlaws figures needs matplotlib: pip install 'flowlaws[plot]'") from None
    sizes = dict(QUICK if quick else FULL)
    sizes["steps"] = steps or sizes["steps"]
    report = on_phase or (lambda name: None)
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InvalidArgument(f"cannot write figures to {out}: {error.strerror or error}; "
                              "choose a writable folder with --out") from None
    report("Fig. 1: matrix factorization")
    one = figure1_data(steps=sizes["steps"])
    two = {}
    for init in ("balanced", "iid"):
        report(f"Fig. 2: ReLU net, {init} start")
        two[init] = figure2_data(steps=sizes["steps"], widths=sizes["widths"], points=sizes["points"], init=init)
    report("writing")
    captions = {
        "fig1": (f"Fig. 1: GD on 1/2||UV^T - M*||^2, M* 20x20 of rank 5, unbalanced start (ratio "
                 f"{one['init_ratio']:.2f}), eta = 0.05, {sizes['steps']} iterations, lambda in {{0, 1}}"),
        "fig2": (f"Fig. 2: mlp:{'-'.join(map(str, sizes['widths']))}:relu, {sizes['points']} points, "
                 f"N(0, 0.004^2) start (balanced: each layer rescaled to a common squared norm), "
                 f"GD eta = 0.01, {sizes['steps']} iterations"),
    }
    written = []
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for label in ("plain", "regularized"):
        left.semilogy(10.0 ** np.asarray(one[label]["log10_objective"]), label=label)
        right.plot(one[label]["fnorm_ratio"], label=label)
    left.set(xlabel="iteration", ylabel=r"$\frac{1}{2}\|UV^\top - M^*\|_F^2$", title="objective")
    right.set(xlabel="iteration", ylabel=r"$\|U\|_F / \|V\|_F$", title="F-norm ratio")
    left.legend(), right.legend()
    fig.suptitle(captions["fig1"], fontsize=8)
    written += _save(fig, out / "fig1", captions["fig1"])

    fig, axes = plt.subplots(2, 2, figsize=(10, 7), constrained_layout=True)
    for row, init in zip(axes, ("balanced", "iid"), strict=True):
        for key, pair in two[init]["pairs"].items():
            h = key[1]
            row[0].plot(pair["difference"], label=rf"$h = {h}$")
            row[1].plot(pair["ratio"], label=rf"$h = {h}$")
        row[0].set(xlabel="iteration", ylabel=r"$\|W_h\|_F^2 - \|W_{h+1}\|_F^2$", title=f"{init} start: differences")
        row[1].set(xlabel="iteration", ylabel=r"$\|W_h\|_F^2 / \|W_{h+1}\|_F^2$", title=f"{init} start: ratios")
        if init == "iid":
            row[1].set_yscale("log")  # an i.i.d. start spans decades
        row[0].legend(), row[1].legend()
    fig.suptitle(captions["fig2"], fontsize=8)
    written += _save(fig, out / "fig2", captions["fig2"])
    plt.close("all")

    path = out / "figures.json"
    path.write_text(json.dumps({"figure1": one, "figure2": two, "captions": captions, "settings": sizes}))
    return [*written, path]


def _save(fig, stem: Path, caption: str) -> list[Path]:
    png, svg = stem.with_suffix(".png"), stem.with_suffix(".svg")
    fig.savefig(png, dpi=300, metadata={"Title": caption})
    fig.savefig(svg, metadata={"Title": caption})
    return [png, svg]
