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
- Fig. 3 (after Kunin et al., Neural Mechanics, ICLR 2021, Fig. 1): NETWORK_3 (dense,
  BatchNorm with affine, ReLU, a softmax cross-entropy head) on 256 Gaussian inputs labelled
  by a random teacher of 4 classes, SGD eta = 0.1, batch 32, weight decay 5e-3, 300 steps
  (``--quick``: 100). Per law family (translation: the last layer's column sums; scale:
  the rows before BatchNorm; rescale: gamma_i^2 + beta_i^2 - ||W'[:,i]||^2), the measured
  value per step against its exact predicted trajectory h_k+1 = (1 - eta lambda) h_k
  (linear) and Q_k+1 = (1 - eta lambda)^2 Q_k + eta^2 Q(g_k) (quadratic), and the residual.
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


FULL: dict[str, Any] = {"steps": 3000, "widths": (20, 100, 100, 1), "points": 1000, "steps3": 300}
QUICK: dict[str, Any] = {"steps": 600, "widths": (10, 40, 40, 1), "points": 200, "steps3": 100}
NETWORK_3 = "seq:8:dense(16,bias),batchnorm(affine),relu,dense(4,bias)"
FAMILIES_3 = {"translation": "translation unit dense1/softmax.W", "scale": "scale unit dense0/bn0",
              "rescale": "unit bn0/dense1"}


def figure3_data(seed: int = 0, steps: int = 300) -> dict:
    """SGD with weight decay on NETWORK_3: each family's law (unit 0) per step, measured and
    predicted by its exact recursion from the gradients used, and the relative residual."""
    from flowlaws.flows import SGD, descend
    from flowlaws.invariants import laws
    from flowlaws.losses import CrossEntropy
    from flowlaws.models import mlp, parse

    rng = np.random.default_rng(seed)
    net, loss = parse(NETWORK_3), CrossEntropy()
    X = rng.normal(size=(256, 8))
    teacher = mlp([8, 16, 4], "relu")
    Y = np.eye(4)[np.argmax(teacher.apply(teacher.init(rng), X, fused=False), axis=1)]
    opt = SGD(lr=0.1, weight_decay=5e-3, batch_size=32, seed=seed)
    run = descend(net, loss, net.init(rng), X, Y, opt, steps)
    if not run.ok:
        raise InvalidArgument(f"figure 3 run failed: {run.message}")
    by_name = {law.name: law for law in laws(net, loss)}
    data: dict[str, Any] = {"losses": run.losses.tolist()}
    for family, name in FAMILIES_3.items():
        law = by_name[name]
        measured = [float(np.ravel(law.value(p))[0]) for p in run.params]
        predicted = [measured[0]]
        for k, grad in enumerate(run.grads or ()):
            eta = opt.step_size(k)
            shrink = (1 - eta * opt.weight_decay) ** law.order
            predicted.append(shrink * predicted[-1] + eta**2 * float(np.ravel(law.second(grad))[0]))
        scale = max(abs(v) for v in measured)
        data[family] = {"law": name, "formula": law.formula, "measured": measured, "predicted": predicted,
                        "residual": [abs(a - b) / scale for a, b in zip(measured, predicted, strict=True)]}
    return data


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
    report("Fig. 3: BatchNorm net, softmax head, SGD with weight decay")
    three = figure3_data(steps=sizes["steps3"])
    report("writing")
    captions = {
        "fig3": (f"Fig. 3 (after Neural Mechanics, Fig. 1): {NETWORK_3}, softmax cross-entropy, SGD eta = 0.1, "
                 f"batch 32, weight decay 5e-3, {sizes['steps3']} steps: each law against its exact prediction"),
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
    fig, axes = plt.subplots(2, 3, figsize=(12, 6), constrained_layout=True)
    for column, family in zip(axes.T, FAMILIES_3, strict=True):
        law = three[family]
        column[0].plot(law["measured"], label="measured", lw=2)
        column[0].plot(law["predicted"], "--", label="predicted", color="k")
        column[0].set(xlabel="step", title=f"{family}: {law['law']}")
        column[1].semilogy(np.maximum(law["residual"], 1e-18))
        column[1].set(xlabel="step", ylabel="|measured - predicted| / max |value|", ylim=(1e-18, 1))
        column[0].legend()
    fig.suptitle(captions["fig3"], fontsize=8)
    written += _save(fig, out / "fig3", captions["fig3"])
    plt.close("all")

    path = out / "figures.json"
    path.write_text(json.dumps({"figure1": one, "figure2": two, "figure3": three, "captions": captions,
                                "settings": sizes}))
    return [*written, path]


def _save(fig, stem: Path, caption: str) -> list[Path]:
    png, svg = stem.with_suffix(".png"), stem.with_suffix(".svg")
    fig.savefig(png, dpi=300, metadata={"Title": caption})
    fig.savefig(svg, metadata={"Title": caption})
    return [png, svg]
