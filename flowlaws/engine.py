"""Value and gradient of L(theta) = reduce_i l(f(x_i; theta), y_i).

The network graph is static, so the engine runs the models' fused forward pass and
their hand-written VJPs in reverse directly, with no tracing cost (autograd's tape
costs more than the arithmetic on small nets; see bench/engine.py). The same VJPs
are autograd primitives, so ``autograd.grad`` through ``model.apply`` agrees; the
tests check both against autograd's generic differentiation and finite differences.
"""

from __future__ import annotations

from flowlaws.losses import Loss
from flowlaws.models.layer import REALMIN


def value_and_grad(model, loss: Loss, params, X, Y):
    """(L(theta), grad L(theta) as a tuple aligned with ``params``).

    >>> import numpy as np
    >>> from flowlaws.models import mlp
    >>> from flowlaws.losses import Square
    >>> net = mlp([2, 3, 1], "relu"); p = net.init(np.random.default_rng(0))
    >>> value, grads = value_and_grad(net, Square(), p, np.ones((4, 2)), np.zeros((4, 1)))
    >>> [g.shape for g in grads]
    [(3, 2), (1, 3)]
    """
    out, cache = model.forward(params, X)
    value, dout = loss.value_and_grad(out, Y)
    return value, model.backward(params, cache, dout)


def gradient_and_magnitude(model, loss: Loss, params, X, Y, pattern=None):
    """(L, grad, |grad|-scale): the scale is the same sweep on absolute values (with a
    frozen activation ``pattern``: of the network that pattern defines).

    Entry j of the scale bounds sum |terms| that floating point adds up to form
    grad_j, so round-off in grad_j is at most gamma_n times it (Higham, Thm 3.5). The
    sweep starts from the loss's own bound on the terms of dL/dpred (softmax
    cross-entropy: softmax and targets, which cancel).
    Every intermediate of the scale, forward and backward, is raised by REALMIN, the
    underflow threshold: an operation whose result underflows errs by at most
    u * REALMIN (Higham, eq. 2.8), and that error is carried through every later
    product, however large the factors.
    """
    out, cache = model.forward(params, X, pattern)
    value, dout = loss.value_and_grad(out, Y)
    return value, model.backward(params, cache, dout), _magnitude(model, loss, params, out, Y, cache)


def gradient_magnitude(model, loss: Loss, params, X, Y, pattern=None):
    """The |grad|-scale of `gradient_and_magnitude` alone (no gradient, no loss value)."""
    out, cache = model.forward(params, X, pattern)
    return _magnitude(model, loss, params, out, Y, cache)


def _magnitude(model, loss: Loss, params, out, Y, cache):
    start = loss.gradient_magnitude(out, Y) + REALMIN
    return model.backward(params, model.bounds(params, cache), start, magnitude=True)


def gradient_field(model, loss: Loss, X, Y, weight_decay: float = 0.0):
    """theta -> -grad (L(theta) + weight_decay/2 ||theta||^2) on the flat parameter
    vector; ``field(vector, pattern)`` evaluates it with a frozen activation pattern, and
    ``field.with_pattern(vector)`` gives (field, pattern) at a point from one pass: a live
    pass is the pass frozen at its own pattern, bit for bit."""
    from flowlaws.models import flatten, unflatten

    shapes = [shape for _, shape in model.param_specs]

    def evaluate(vector, pattern):
        params = unflatten(vector, shapes)
        out, cache = model.forward(params, X, pattern)
        gradient = flatten(model.backward(params, cache, loss.grad(out, Y)))
        return (-(gradient + weight_decay * vector) if weight_decay else -gradient), cache

    def field(vector, pattern=None):
        return evaluate(vector, pattern)[0]

    def with_pattern(vector):
        value, cache = evaluate(vector, None)
        return value, model.pattern_of(cache)

    field.with_pattern = with_pattern  # type: ignore[attr-defined]
    return field
