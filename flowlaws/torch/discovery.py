"""Discovery from a torch module itself: the law count of any module torch.func can
differentiate, converted or not (Marcotte, Gribonval, Peyre 2023; docs/torch.md).

The same count as `flowlaws.discover`, D - dim Lie(W)(theta0), with the fields taken from
the module instead of a flowlaws model:

- theta0 is the module's own point (float64, on the CPU), or a fresh initialization
  (``reset_parameters``) when one spans more: the widest of ``draws``;
- the data are the example batch (a tuple of batches for a module of several inputs) and
  batches like it (Gaussian floats; token ids drawn over the first Embedding's
  vocabulary, else over the example's range), SAMPLES inputs per parameter and output;
  dropout is off (its mask would make f random);
- a generator is grad_theta <C_k, f(X_b; theta)> for a random weighting C_k of the outputs
  of batch b = k mod the batches (rows summing to 0 over the classes for softmax
  cross-entropy): the loss of one batch, so a field costs one batch's pass; each batch's
  generators from one forward pass and one batched reverse pass (``torch.func.vjp``
  under ``vmap``);
- a bracket [u, v] = Dv[u] - Du[v] takes its directional derivatives by forward mode
  over reverse (``torch.func.jvp``), nested at each depth; a LayerNorm and a training
  BatchNorm run as compositions of primitive ops there (`CompositeNorms`): torch's own
  formulas for them are wrong from the third derivative on, which a bracket of depth 2
  takes;
- the rank decisions are `flowlaws.discover.lie_rank`'s, with its gap rule.

A count is decided when the bounds meet (the lower bound: the derived laws of a converted
module, checked orthogonal to every field; `discover_of`), or, without one,
when the bracket ranks stall with a clear gap: a depth adds no direction to the algebra at
theta0 (Marcotte et al.'s stopping rule; ``decided_by`` "stalled", a numerical answer).
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from collections.abc import Callable
from contextlib import contextmanager

import numpy as np
import scipy.linalg
import torch
from torch import nn
from torch.func import functional_call, jacrev, jvp, vjp, vmap
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.overrides import TorchFunctionMode

from flowlaws.certificate import numerical, svd
from flowlaws.discover import (
    BUDGET,
    FAST_PARTNERS,
    GAP,
    MEMORY,
    RANK_TOL,
    SAMPLES,
    Discovery,
    Field,
    Work,
    _decide,
    lie_rank,
    rank_and_gap,
)
from flowlaws.errors import InvalidArgument
from flowlaws.threads import one_blas_thread
from flowlaws.torch.conversion import Converted, _float64, flowlaws_loss

with warnings.catch_warnings():  # forward mode's first use scripts torch's own decompositions with torch.jit,
    warnings.simplefilter("ignore", DeprecationWarning)  # deprecated in torch 2.13: import them once, quietly
    import torch._decomp.decompositions_for_jvp

DRAWS = 3  # the module's own point and fresh initializations: theta0 is the one whose fields span most
GENERIC = 1 / 3  # the noise that moves a fresh initialization to a generic point, relative to its magnitude
OTHERS = 16  # draws of the parameters that do not move (`_by_blocks`): the module's own and 15 fresh
#               ones, batch k at draw k mod 16: a block before a head of 4 outputs sees 16 heads' weightings
CHUNK = 64  # brackets evaluated in one vmapped pass
SPAN_TOL = 1e-10  # `_spanning_rest`: the Gram matrix's eigenvalues above this times its trace
VALUE_ROWS = 256  # generators evaluated in one vmapped pass (their batches' forward passes batched)
PARTNER_GROWTH = 4  # an undecided count is re-ranked with 4 times the partners, up to every generator
ORTHOGONAL = 1e-8  # |<grad h, g>| <= ORTHOGONAL |grad h| |g| for every field: h is a law there


class CompositeNorms(TorchFunctionMode):
    """``F.layer_norm`` and ``F.batch_norm`` as compositions of primitive ops (mean, the
    biased variance, rsqrt): the same values, and derivatives right at every order. torch
    2.13's fused ops are right to the second derivative and wrong from the third on (the
    saved mean and inverse deviation have no history: pytorch/pytorch#196700, #196699,
    #198017): a depth-2 bracket through them left the derived laws' gradients by up to
    1e-2 in cosine and raised the MLP-Mixer's rank by 8 (`tests/test_torch_discovery.py`)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is nn.functional.layer_norm:
            return _layer_norm(*args, **kwargs)
        if func is nn.functional.batch_norm:
            return _batch_norm(*args, **kwargs)
        return func(*args, **kwargs)


def _standardized(x, dims: tuple, eps: float):
    """(x - mean) / sqrt(var + eps) over ``dims``, the variance biased (torch's)."""
    centred = x - x.mean(dims, keepdim=True)
    return centred * torch.rsqrt((centred * centred).mean(dims, keepdim=True) + eps)


def _affine(y, weight, bias, shape: tuple):
    y = y if weight is None else y * weight.view(shape)
    return y if bias is None else y + bias.view(shape)


def _layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    shape = tuple(normalized_shape)
    return _affine(_standardized(x, tuple(range(-len(shape), 0)), eps), weight, bias, shape)


def _batch_norm(x, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
    shape = (1, -1) + (1,) * (x.dim() - 2)  # one statistic per channel (axis 1)
    if training or running_mean is None:  # the batch's statistics (`_twin` tracks no running ones)
        return _affine(_standardized(x, (0, *range(2, x.dim())), eps), weight, bias, shape)
    y = (x - running_mean.view(shape)) * torch.rsqrt(running_var.view(shape) + eps)  # eval: an affine map
    return _affine(y, weight, bias, shape)


def _forward_mode(at: Callable) -> Callable:
    """theta, w -> D at(theta)[w], by forward-mode differentiation."""
    return lambda theta, w: jvp(at, (theta,), (w,))[1]


class ModuleProblem:
    """What `flowlaws.discover.lie_rank` reads, for a torch module: theta0, the generating
    fields (as `Field`s whose values are torch tensors), their values at theta0, the work.
    ``free``: the names of the parameters that move (default: every trainable one); the
    others are constants, at the module's values for the example batch and at OTHERS - 1
    fresh draws for the batches after it, in turn (`_by_blocks`). ``shared``: the fields
    are for blocks of at most that many parameters each (`_shared_blocks`): as many
    generators as span one, at the module's own point, no point chosen or ranked."""

    degree = None  # fields are taken by automatic differentiation, never on a circle

    def __init__(self, module, example_input, *, cross_entropy: bool, seed: int, work: Work, quiet=(), free=None,
                 laws_at=None, fresh=None, shared: int | None = None):
        self.module = _twin(module, quiet)
        self._trainable = {name for name, p in self.module.named_parameters() if p.requires_grad}
        for name, p in self.module.named_parameters():
            p.requires_grad_(p.requires_grad and (free is None or name in free))  # the others are constants
        trainable = [(name, p.shape) for name, p in self.module.named_parameters() if p.requires_grad]
        self.names, self.shapes = [name for name, _ in trainable], [shape for _, shape in trainable]
        self.D = sum(math.prod(s) for s in self.shapes)
        if not self.D:
            raise InvalidArgument("discover_of: the module has no trainable parameter")
        self.work, self.cross_entropy = work, cross_entropy
        self._rows: tuple | None = None  # (theta, the law rows there): `law_rows`
        self.generator = torch.Generator().manual_seed(seed)
        example = tuple(map(_float64, _inputs(example_input)))
        self.others: list[dict] = [{}]
        if free is not None:  # (``fresh``: the copies of draws 1 .. OTHERS - 1, when drawn already)
            fresh = fresh or [_fresh_copy(self.module, seed, draw) for draw in range(1, OTHERS)]
            self.others = [self._constants(m) for m in (self.module, *fresh)]
        own = self.flat(self.module)
        sample = self.output(own, example)  # (batch, *per-sample output)
        outputs = sample[0].numel()
        width = self.D if shared is None else shared  # the directions the fields must span
        n = max(2, math.ceil(SAMPLES * (width + 8) / outputs))
        K = min(n * outputs, width + 8)
        if 8.0 * K * self.D * 3 > MEMORY:
            raise InvalidArgument(f"discover_of would need about {24 * K * self.D / 2**30:,.0f} GiB for its "
                                  f"{self.D:,} parameters (fields grow as D^2): use a narrower module")
        batch, draws = len(example[0]), len(self.others)
        self.X = [example] + [tuple(self._like(x, module) for x in example)
                              for _ in range(max(draws, math.ceil(n / batch)) - 1)]
        self.stacked = (tuple(torch.stack(inputs) for inputs in zip(*self.X, strict=True)),
                        {name: torch.stack([o[name] for o in self.others]) for name in self.others[0]})
        self.output_shape = sample.shape  # of one batch
        self.C = self.combinations(K)
        if shared is not None:
            return
        best = None
        for draw in range(DRAWS):
            theta = own if draw == 0 else self._fresh(draw)
            fields = np.asarray(self.values(theta))
            laws = self._proven(laws_at, theta, fields)
            rank, gap = _spanning_rest(fields, laws) or rank_and_gap(fields)
            if best is None or rank > best[2]:
                best = (theta, fields, rank, gap)
            if rank + len(laws) >= self.D or work.exhausted:
                break  # the bounds meet here: no point spans more
        self.theta, self.fields, self.rank, gap = best  # type: ignore[misc]
        self.ranked = (self.rank, gap)

    def _proven(self, laws_at, theta, fields) -> np.ndarray:
        """`_law_basis` of the derived law components at ``theta`` (none without
        ``laws_at``): no point's fields span more than D minus its rank."""
        return np.zeros((0, self.D)) if laws_at is None else _law_basis(self.law_rows(laws_at, theta), fields)

    # --- the point and the data -----------------------------------------------------------
    def flat(self, module) -> torch.Tensor:
        named = dict(module.named_parameters())
        return torch.cat([named[name].detach().reshape(-1) for name in self.names])

    def params(self, theta) -> dict:
        sizes = [math.prod(s) for s in self.shapes]
        return {name: part.reshape(shape) for name, part, shape in
                zip(self.names, torch.split(theta, sizes), self.shapes, strict=True)}

    def _constants(self, module) -> dict:
        """The values of ``module``'s trainable parameters that do not move, by name."""
        return {name: p.detach() for name, p in module.named_parameters()
                if name not in self.names and name in self._trainable}

    def _fresh(self, draw: int) -> torch.Tensor:
        """The moving parameters of a fresh draw of the module (`_fresh_copy`), as theta."""
        return self.flat(_fresh_copy(self.module, int(self.generator.initial_seed()), draw))

    def _like(self, example, module) -> torch.Tensor:
        """A batch like the example: Gaussian floats, or token ids over the vocabulary."""
        if example.is_floating_point():
            return torch.randn(example.shape, generator=self.generator, dtype=torch.float64)
        embedding = next((m for m in module.modules() if isinstance(m, nn.Embedding)), None)
        low, high = (0, embedding.num_embeddings) if embedding else (int(example.min()), int(example.max()) + 1)
        return torch.randint(low, high, example.shape, generator=self.generator, dtype=example.dtype)

    def combinations(self, count: int) -> torch.Tensor:
        """``count`` random weightings of the outputs of one batch (for softmax
        cross-entropy, centred over the classes: the span of its gradients)."""
        C = torch.randn((count, *self.output_shape), generator=self.generator, dtype=torch.float64)
        return C - C.mean(dim=-1, keepdim=True) if self.cross_entropy else C

    # --- the fields ------------------------------------------------------------------------
    def output(self, theta, inputs: tuple, others=None) -> torch.Tensor:
        """f(inputs; theta): the module called on one batch of its inputs (a tuple), the
        parameters that do not move at ``others`` (default: their values)."""
        # fused attention kernels have no forward mode, the math one does; fused norms' is wrong
        with sdpa_kernel(SDPBackend.MATH), CompositeNorms():
            out = functional_call(self.module, {**(others or {}), **self.params(theta)}, inputs)
        return out[0] if isinstance(out, tuple) else out

    def batch(self, k) -> tuple:
        """Batch k's inputs and the values of the parameters that do not move there (the
        draw k % draws); ``k`` may be a tensor that vmap batches."""
        inputs, others = self.stacked
        return tuple(x[k] for x in inputs), {name: value[k % len(value)] for name, value in others.items()}

    def values(self, theta) -> torch.Tensor:
        """The generators' values as rows: per batch, one forward pass and one batched
        reverse pass for the generators that read it, the batches themselves batched
        (`vmap`, VALUE_ROWS generators a call)."""
        self.work.spend(len(self.C))
        K = len(self.C)
        batches = min(len(self.X), K)  # (generator k reads batch k mod len(X): fewer generators read fewer)
        per = -(-K // batches)  # generators per batch: batch b reads rows b, b + batches, ...
        C = torch.cat([self.C, self.C.new_zeros((per * batches - K, *self.C.shape[1:]))])
        C = C.reshape(per, batches, *self.C.shape[1:]).transpose(0, 1)  # (batch, its generators, *output)

        def read(k, weights):
            inputs, others = self.batch(k)  # (indexed outside vjp: vmap cannot index inside it)
            return vmap(vjp(lambda t: self.output(t, inputs, others), theta)[1])(weights)[0]

        step = max(1, VALUE_ROWS // per)
        with warnings.catch_warnings():  # an op without a batching rule is looped over: slower, the same values
            warnings.filterwarnings("ignore", "There is a performance drop", UserWarning)
            rows = torch.cat([vmap(read)(torch.arange(start, min(start + step, batches)), C[start:start + step])
                              for start in range(0, batches, step)])
        return rows.transpose(0, 1).reshape(per * batches, self.D)[:K]

    def generators(self) -> list[Field]:
        """Generator k: grad <C_k, f(X_b; theta)>, the weighted outputs of batch b = k mod
        the batches (a loss of one batch, so each costs one batch's pass)."""
        return [self.field((k % len(self.X), self.C[k]), f"g{k}") for k in range(len(self.C))]

    def field(self, weights, name: str) -> Field:
        """The field grad <C, f(X_b; theta)> of ``weights`` = (b, C)."""
        def at(theta):
            self.work.spend(1)
            return self._generator(*weights)(theta)

        return Field(at, None, name, weights=weights, differentiate=_forward_mode)

    def _generator(self, k, C) -> Callable:
        inputs, others = self.batch(k)
        return lambda theta: torch.func.grad(lambda t: (C * self.output(t, inputs, others)).sum())(theta)

    def _terms(self, batches, weights) -> tuple:
        """The two terms of the right-nested bracket [g_n, [..., [g_1, g_0]]](theta0) of the
        generators of ``batches`` = (b_0, ..., b_n) and ``weights`` = (C_0, ..., C_n), n >= 1:
        with u = g_n and v the inner bracket, Dv[u] and Du[v] by forward mode, each inner
        value computed once (the primal of its own forward pass)."""
        def nested(depth):
            if depth == 0:
                return self._generator(batches[0], weights[0])
            u, v = self._generator(batches[depth], weights[depth]), nested(depth - 1)

            def at(theta):
                value, along_u = jvp(v, (theta,), (u(theta),))[:2]
                return along_u - jvp(u, (theta,), (value,))[1]

            return at

        u, v = self._generator(batches[-1], weights[-1]), nested(len(weights) - 2)
        value, first = jvp(v, (self.theta,), (u(self.theta),))[:2]
        return first, jvp(u, (self.theta,), (value,))[1]

    def bracket_values(self, pairs) -> list[np.ndarray]:
        """[g, b](theta0) for each (generator, right-nested bracket of generators) pair, in
        batches of one vmapped evaluation per depth, as `flowlaws.discover.lie_rank` takes
        them one by one: the same values (exact cancellation below 1e-9 of the two terms
        set to 0), each charged the field evaluations its nesting costs (2 per level), and
        none once the work is exhausted."""
        values: list = []
        for start in range(0, len(pairs), CHUNK):
            chains = [[*_chain(b), g.weights] for g, b in pairs[start:start + CHUNK]]
            cost = 2 * len(chains[0]) - 1
            room = self.work.budget - self.work.spent
            if room <= 0 or self.work.timed_out:
                break
            chains = chains[:-(-room // cost)]
            self.work.spend(cost * len(chains))
            with warnings.catch_warnings():  # an op without a batching rule is looped over: slower, the same values
                warnings.filterwarnings("ignore", "There is a performance drop", UserWarning)
                first, second = vmap(self._terms)(torch.tensor([[k for k, _ in c] for c in chains]),
                                                  torch.stack([torch.stack([C for _, C in c]) for c in chains]))
            for a, b in zip(np.asarray(first), np.asarray(second), strict=True):
                value = a - b
                scale = np.linalg.norm(a) + np.linalg.norm(b)
                values.append(value if np.linalg.norm(value) > 1e-9 * scale else np.zeros_like(value))
        return values

    def law_rows(self, laws_at: Callable, theta=None) -> np.ndarray:
        """The gradients of the law components ``laws_at(params)`` at ``theta`` (default
        theta0), as rows; the last point's are kept (the draws take them at theta0 too)."""
        theta = self.theta if theta is None else theta
        if self._rows is None or self._rows[0] is not theta:
            self._rows = (theta, np.asarray(jacrev(lambda t: laws_at(self.params(t)))(theta)).reshape(-1, self.D))
        return self._rows[1]


def _law_basis(rows, fields) -> np.ndarray:
    """An orthonormal basis (rows) of the law gradients ``rows`` that are orthogonal to
    every field."""
    bad = set(_not_orthogonal(rows, fields))
    rows = rows[[i for i in range(len(rows)) if i not in bad]]
    rows = rows[np.linalg.norm(rows, axis=1) > 0]
    if not len(rows):
        return rows
    return svd(rows / np.linalg.norm(rows, axis=1, keepdims=True))[2][:rank_and_gap(rows)[0]]


def _spanning_rest(fields, laws) -> tuple[int, float] | None:
    """`rank_and_gap`'s answer, r = D - len(laws), when the fields (K x D) provably span
    every direction the orthonormal law rows ``laws`` leave, else None (then take the SVD).

    With F the fields scaled to unit rows and S = [F; laws]: ||F x|| = ||S x|| >= s_min(S) for
    every unit x orthogonal to the laws, so s_r(F) >= s_min(S) (`_least_singular_bound`
    bounds it), while s_(r+1)(F) <= ||F laws^T|| (Weyl), the fields' part along the laws. So
    when s_min(S) clears RANK_TOL s_1 (s_1^2 <= K), that part is below RANK_TOL s_1 (s_1^2 >=
    K / D) and their ratio clears GAP, the SVD's rank is r and its gap at least that ratio:
    4 to 5 times faster than the SVD at D = 4,000."""
    D = fields.shape[1]
    F = fields[np.linalg.norm(fields, axis=1) > 0]
    if not len(F) or len(F) + len(laws) < D:
        return None
    F = F / np.linalg.norm(F, axis=1, keepdims=True)
    floor = _least_singular_bound(np.vstack([F, laws]))
    along = float(np.linalg.norm(F @ laws.T, 2)) if len(laws) else 0.0
    if (floor is None or floor <= RANK_TOL * math.sqrt(len(F)) or along > RANK_TOL * math.sqrt(len(F) / D)
            or floor < GAP * along):
        return None
    return D - len(laws), floor / along if along else math.inf


def _least_singular_bound(S) -> float | None:
    """A lower bound on the least singular value of S (n x D, n >= D), or None. First from
    a Cholesky factor of G - SPAN_TOL tr(G) I, G = S^T S (one product and one factor, for a
    well-conditioned S): its existence puts G's eigenvalues above the shift less the
    round-off of the product and the factor, at most (n + D) eps tr(G), under half the shift
    while n + D < 2 10^5. Else from S's R factor (Householder QR, backward stable as the
    SVD is), s_min(S) = s_min(R) = 1 / ||R^-1||_2 >= 1 / ||R^-1||_F: it reaches condition
    numbers the Gram matrix squares away (BatchNorm's eps leaves a ResNet's fields 1e-5 of
    their size along its convolutions' scale)."""
    if sum(S.shape) * np.finfo(float).eps < SPAN_TOL / 2:  # the round-off stays under half the shift
        G = S.T @ S
        shift = SPAN_TOL * float(np.trace(G))
        G[np.diag_indices_from(G)] -= shift
        # G is symmetric: G.T is G in Fortran order, factored in place (info 0: it has a factor)
        if scipy.linalg.lapack.dpotrf(G.T, lower=0, clean=0, overwrite_a=1)[1] == 0:
            return math.sqrt(shift / 2)
    R = scipy.linalg.qr(S, mode="r", check_finite=False)[0][: S.shape[1]]
    inverse, info = scipy.linalg.lapack.dtrtri(R, lower=0)
    if info != 0 or not np.all(np.isfinite(inverse)):
        return None
    return 1.0 / float(np.linalg.norm(inverse))


def _fresh_copy(module, seed: int, draw: int) -> nn.Module:
    """A copy of ``module`` with a fresh initialization of every submodule that has one
    (seeded by ``seed`` + ``draw``), then every parameter moved by Gaussian noise of a third
    of its mean magnitude (1 where it is 0): an initialization's constants (a LayerNorm's
    gains of 1 and shifts of 0, a class token of zeros) are a special point, where the
    fields may span less."""
    fresh = copy.deepcopy(module)
    with torch.random.fork_rng():
        torch.manual_seed(seed + draw)
        for child in fresh.modules():
            if callable(getattr(child, "reset_parameters", None)):
                child.reset_parameters()
        with torch.no_grad():
            for p in fresh.parameters():
                size = float(p.abs().mean()) if p.numel() else 0.0
                p.add_(torch.randn_like(p), alpha=GENERIC * (size or 1.0))
    return fresh


def _chain(field: Field) -> list:
    """The weightings of a right-nested bracket's generators, innermost first."""
    return [field.weights] if field.parts is None else [*_chain(field.parts[1]), field.parts[0].weights]


def _inputs(example_input) -> tuple:
    """The module's positional inputs: one tensor, or a tuple (or list) of them."""
    return tuple(example_input) if isinstance(example_input, tuple | list) else (example_input,)


def _twin(module, quiet=()):
    """A float64 CPU copy of ``module`` with dropout off (and the submodules at the paths
    ``quiet`` in eval mode: attention whose dropout_p reads its training flag), and a
    training BatchNorm's running statistics untracked (its output is the same: the batch's
    statistics; the buffers it would update in place are no function of theta)."""
    twin = copy.deepcopy(getattr(module, "_orig_mod", module)).to("cpu", torch.float64)
    for path in quiet:
        twin.get_submodule(path).eval()
    for child in twin.modules():
        if isinstance(child, nn.modules.dropout._DropoutNd) or (isinstance(child, nn.MultiheadAttention)
                                                                 and child.dropout):
            child.eval()
        if isinstance(child, nn.modules.batchnorm._BatchNorm) and child.training:
            child.track_running_stats = False
            child.running_mean = child.running_var = child.num_batches_tracked = None
    return twin


def discover_module(module, example_input, *, cross_entropy: bool = False, laws_at: Callable | None = None,
                    law_names: list | tuple = (), seed: int = 0, budget: int = BUDGET, quiet=(),
                    free=None) -> Discovery:
    """The law count of ``module`` from its own fields (module docstring). ``laws_at``:
    the derived laws' components as a torch function of the parameters by name (the
    lower bound, when they are orthogonal to every field), with their ``law_names``;
    ``quiet``: paths of submodules run in eval mode (`_twin`); ``free``: the parameters
    that move (`ModuleProblem`)."""
    started = time.perf_counter()
    _check_module(module, example_input)
    with one_thread():
        return _discovered(module, example_input, cross_entropy, laws_at, law_names, seed, Work(budget), started,
                           quiet, free)


def _check_module(module, example_input) -> None:
    if not isinstance(module, nn.Module):
        raise InvalidArgument(f"discover_of needs a torch.nn.Module, got {type(module).__name__}")
    inputs = _inputs(example_input)
    if not inputs or any(not isinstance(x, torch.Tensor) or x.dim() < 1 for x in inputs) or \
            len({len(x) for x in inputs}) != 1:
        raise InvalidArgument("example_input must be a tensor with a batch axis, e.g. torch.zeros(8, 3), or a tuple "
                              "of them with one batch length, one per argument of forward")


@contextmanager
def one_thread():
    """torch and BLAS on one thread, restored after: the algebra is small, and threads
    that spin against other processes cost many times the work (`flowlaws.threads`)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with one_blas_thread():
            yield
    finally:
        torch.set_num_threads(before)


def _discovered(module, example_input, cross_entropy, laws_at, law_names, seed, work, started, quiet,
                free=None, fresh=None) -> Discovery:
    problem = ModuleProblem(module, example_input, cross_entropy=cross_entropy, seed=seed, work=work, quiet=quiet,
                            free=free, laws_at=laws_at, fresh=fresh)
    D, derived, lower = problem.D, 0, 0
    spurious: list[str] = []
    if laws_at is not None:
        spurious, derived, lower = _law_bounds(problem.law_rows(laws_at), problem.fields, law_names)
    family = _family(cross_entropy)
    if problem.rank == 0:
        return Discovery(type(module).__name__, family, D, D, D, derived, [0], math.inf, spurious=spurious,
                         seconds=time.perf_counter() - started, decided_by="no fields", evaluations=work.spent,
                         note="every field is 0: each parameter is conserved")
    partners, best = min(FAST_PARTNERS, len(problem.C)), None
    while True:  # more partners until the count is decided, every generator is one, or the work is spent
        lie = lie_rank(problem, None if partners >= len(problem.C) else partners,  # type: ignore[arg-type]
                       enough=D - lower)
        upper, decided_by = _decide(lie, D, lower)
        if best is None or decided_by or lie.ranks[-1] >= best[0].ranks[-1]:  # a pass the budget cut short
            best = (lie, upper, decided_by, partners)  # may rank less than the one before: keep the best
        if decided_by or partners >= len(problem.C) or work.exhausted:
            break
        partners = min(len(problem.C), PARTNER_GROWTH * partners)
    lie, upper, decided_by, partners = best
    every = partners >= len(problem.C)
    note = ""
    stalled = len(lie.ranks) > 1 and lie.ranks[-1] == lie.ranks[-2]
    if not decided_by and every and upper is not None and stalled and not work.exhausted:
        decided_by = "stalled"
        note = "decided by Marcotte et al.'s stopping rule: a bracket depth adds no direction at theta0"
    if not decided_by and work.exhausted:
        note = f"{work.reason()}; an upper bound from each depth bracketed with {partners} generators"
    return Discovery(type(module).__name__, family, D, upper, lower, derived, lie.ranks, lie.gap, spurious=spurious,
                     seconds=time.perf_counter() - started, note=note, decided_by=decided_by,
                     evaluations=work.spent, certificate=numerical(lie.gap, "torch.func at the module's point"))


def _law_bounds(rows, fields, law_names) -> tuple[list[str], int, int]:
    """(The laws with a component not orthogonal to every field, by name; the rank of
    the law rows; the rank of those of the other laws: the lower bound.)"""
    spurious = sorted({law_names[i] for i in _not_orthogonal(rows, fields)})
    good = [i for i, name in enumerate(law_names) if name not in spurious]
    return spurious, rank_and_gap(rows)[0], rank_and_gap(rows[good])[0]


def _not_orthogonal(rows, fields) -> list[int]:
    """Indices of the law components whose gradient is not orthogonal to every field."""
    sizes = np.linalg.norm(rows, axis=1)[:, None] * np.linalg.norm(fields, axis=1)[None, :]
    return [int(i) for i in np.flatnonzero(np.any(np.abs(rows @ fields.T) > ORTHOGONAL * sizes, axis=1))]


def discover_of(module, example_input, loss=None, *, seed: int = 0, budget: int | None = None, blocks=None):
    """The law count of ``module`` from the module itself (`discover_module`: torch.func
    fields and brackets, no conversion), so a module flowlaws cannot convert
    gets a count too; for one it converts, its derived laws are checked orthogonal to
    every field and are the lower bound (``derived``, ``spurious``, ``complete``). ``loss``:
    the loss family (cross-entropy or any), as `laws_of` takes it. ``example_input``: one
    tensor, or a tuple with one tensor per argument of ``forward`` (a decoder layer's target
    and memory, a diffusion model's image and timestep), converted where it runs a
    Transformer decoder on them (`Converted.of`), counted in any case. ``blocks``: submodule
    paths (or a module class: each outermost submodule of it) counted one at a time
    (`_by_blocks`), for a model too large to count whole; ``budget`` is then each block's."""
    blocks_of = None if blocks is None else _blocks(module, blocks)
    cross_entropy = getattr(flowlaws_loss(loss), "name", None) == "cross_entropy"
    laws_at, names, reads, why, quiet = None, [], None, "", []
    inputs = _inputs(example_input)
    try:
        converted = Converted.of(module, inputs if len(inputs) > 1 else inputs[0])
    except InvalidArgument as error:
        why = f"not converted, so no derived laws: {error}"
    else:
        laws_at, names, reads = _law_components(getattr(module, "_orig_mod", module), converted, converted.laws(loss))
        quiet = converted.attentions
    budget = BUDGET if budget is None else budget
    try:
        if blocks_of is not None:
            found = _by_blocks(module, example_input, blocks_of, cross_entropy=cross_entropy, laws_at=laws_at,
                               law_names=names, seed=seed, budget=budget, quiet=quiet, reads=reads)
        else:
            found = discover_module(module, example_input, cross_entropy=cross_entropy, laws_at=laws_at,
                                    law_names=names, seed=seed, budget=budget, quiet=quiet)
    except NotImplementedError as error:  # torch's own gap: no forward-mode derivative of some op's backward
        raise InvalidArgument(f"discover_of brackets fields by forward-mode derivatives of the module's gradient, "
                              f"and torch has none here ({error}); swap the op for one it has (nn.Sigmoid for "
                              "nn.Hardsigmoid), or count the converted spec with flowlaws discover") from None
    found.note = "; ".join(part for part in (found.note, why) if part)
    return found


def _law_components(module, converted: Converted, laws) -> tuple:
    """(``laws_at(params, only=None)``: the components ``only`` (indices, in order; default
    every one) of ``laws`` as one torch vector, at the module's parameters by name, only
    their laws evaluated; each component's law name; each component's candidates: the
    names of the parameters its law's source modules read, a superset of those it reads)."""
    name_of = {id(p): name for name, p in module.named_parameters()}
    current = converted.tensors(lambda t: t.detach().to("cpu", torch.float64))
    sizes = [torch.as_tensor(law.value(current)).numel() for law in laws]
    law_of = np.repeat(np.arange(len(laws)), sizes).astype(int)
    first = np.cumsum([0, *sizes])[:-1].astype(int)  # each law's first component

    def laws_at(params, only=None):
        T = converted.tensors(lambda t: params.get(name_of[id(t)], t.detach().to(torch.float64)))
        chosen = range(len(laws)) if only is None else sorted(set(law_of[np.asarray(only, dtype=int)].tolist()))
        values = [torch.as_tensor(laws[k].value(T)).reshape(-1) for k in chosen]
        values = torch.cat(values) if values else torch.zeros(0, dtype=torch.float64)
        if only is None:
            return values
        at = dict(zip(chosen, np.cumsum([0] + [sizes[k] for k in chosen]).tolist(), strict=False))
        return values[torch.as_tensor([at[law_of[c]] + c - first[law_of[c]] for c in np.asarray(only, dtype=int)],
                                      dtype=torch.long)]

    read_by = [frozenset(name_of[key] for key in read if key in name_of) for read in converted.read_by_params]
    names = [law.name for law, n in zip(laws, sizes, strict=True) for _ in range(n)]
    reads = [frozenset().union(*(read_by[k] for k in law.params)) for law, n in zip(laws, sizes, strict=True)
             for _ in range(n)]
    return laws_at, names, reads


def _blocks(module, blocks) -> list[tuple[str, list[str]]]:
    """(path, names of its trainable parameters) of each block, then of the parameters in
    no block ("rest"); ``blocks`` is a list of submodule paths or a module class."""
    module = getattr(module, "_orig_mod", module)
    if isinstance(blocks, type) and issubclass(blocks, nn.Module):
        paths = [path for path, child in module.named_modules() if isinstance(child, blocks) and path]
        paths = [path for path in paths if not any(path.startswith(outer + ".") for outer in paths)]
    elif isinstance(blocks, list | tuple) and all(isinstance(path, str) for path in blocks):
        paths = list(blocks)
    else:
        raise InvalidArgument(f"blocks must be a list of submodule paths, e.g. ['layer1.0', 'layer1.1'], or a module "
                              f"class, got {blocks!r}")
    if not paths:
        raise InvalidArgument(f"blocks: no submodule of {type(module).__name__} is a {blocks.__name__}; name them by "
                              f"path, e.g. {[path for path, _ in module.named_children()][:3]}")
    trainable = [name for name, p in module.named_parameters() if p.requires_grad]
    groups, taken = [], set[str]()
    for path in paths:
        own = [name for name in trainable if path and name.startswith(path + ".")]
        if not own:
            children = [name for name, _ in module.named_modules() if name][:4]
            raise InvalidArgument(f"blocks: {path!r} is no submodule with a trainable parameter; paths are as in "
                                  f"named_modules(), e.g. {children}")
        if taken & set(own):
            raise InvalidArgument(f"blocks: {path!r} overlaps another block; name blocks that share no parameter")
        taken |= set(own)
        groups.append((path, own))
    rest = [name for name in trainable if name not in taken]
    return groups + ([("rest", rest)] if rest else [])


def _local_rows(laws_at: Callable, reads, groups, module, point=None) -> list[tuple[np.ndarray, np.ndarray]]:
    """For each block: (the law components that may read it (``reads``: each component's
    candidate parameter names, or None: any), their gradients over the block's parameters,
    in its order) at ``point`` (parameters by name; default the module's own). One block's
    Jacobian at a time: never a matrix of the model's width."""
    point = point or {name: p.detach().to("cpu", torch.float64) for name, p in module.named_parameters()
                      if p.requires_grad}
    local = []
    for _, names in groups:
        idx = np.array([i for i, read in enumerate(reads) if read is None or not read.isdisjoint(names)], dtype=int)
        if not len(idx):
            local.append((idx, np.zeros((0, sum(point[name].numel() for name in names)))))
            continue
        J = jacrev(lambda own, idx=idx: laws_at({**point, **own}, idx))({name: point[name] for name in names})
        local.append((idx, np.concatenate([np.asarray(J[name]).reshape(len(idx), -1) for name in names], axis=1)))
    return local


def _alone(laws_at: Callable, reads, groups, module) -> np.ndarray:
    """For each derived law component, the block it reads alone, or -1 (several, or none):
    from its gradient at a random point (at theta0 a zero bias would hide its term)."""
    generator = torch.Generator().manual_seed(0)
    point = {name: torch.randn(p.shape, generator=generator, dtype=torch.float64)
             for name, p in module.named_parameters() if p.requires_grad}
    involved = np.zeros((len(reads), len(groups)), dtype=bool)
    for block, (idx, rows) in enumerate(_local_rows(laws_at, reads, groups, module, point)):
        involved[idx, block] = np.any(rows != 0, axis=1)
    return np.where(involved.sum(axis=1) == 1, involved.argmax(axis=1), -1)


def _runs(sizes: list[int]) -> list[list[int]]:
    """Runs of consecutive blocks of one size (repeated blocks: each needs as many
    generators as the others) whose shared fields, a generator per parameter of one,
    take at most MEMORY / 8 in float64."""
    runs: list[list[int]] = []
    for block, size in enumerate(sizes):
        run = [*runs[-1], block] if runs and sizes[runs[-1][0]] == size else []
        if run and 8 * (size + 8) * size * len(run) <= MEMORY / 8:
            runs[-1] = run
        else:
            runs.append([block])
    return runs


def _shared_blocks(twin, example_input, groups, local, alone, law_names, *, cross_entropy, seed, fresh,
                   budget: int) -> tuple[dict, int]:
    """(The blocks decided from fields they share, by index; the field evaluations spent.)
    A run of named blocks (`_runs`) moves at once, at the module's own point, the others
    constants as in `_by_blocks` (the rest among them: its head, at fresh draws, gives
    the fields their variety): each generator's gradient over the run is, block by block,
    a field of each block alone, so as many generators as span one block give every block
    of the run its fields, for the passes of one block. A block is decided there when its
    fields span all but its derived laws within it (`_settled`); the others, and the rest,
    are counted alone (`_discovered`). A run whose generators exceed ``budget`` (each
    block's) is not shared."""
    params = dict(twin.named_parameters())
    sizes = [sum(params[name].numel() for name in names) for _, names in groups]
    named = len(groups) - (groups[-1][0] == "rest")  # the rest (stem, head) varies with the others
    decided, spent = {}, 0
    for run in (run for run in _runs(sizes[:named]) if len(run) > 1):  # (a block alone: `_discovered`)
        started = time.perf_counter()
        problem = ModuleProblem(twin, example_input, cross_entropy=cross_entropy, seed=seed, work=Work(budget),
                                free=[name for b in run for name in groups[b][1]], fresh=fresh, shared=sizes[run[0]])
        if len(problem.C) > budget:
            continue
        fields = np.asarray(problem.values(problem.flat(problem.module)))
        spent += problem.work.spent
        share = (time.perf_counter() - started) / len(run)  # each block's part of the fields' time
        starts = dict(zip(problem.names, np.cumsum([0, *(math.prod(s) for s in problem.shapes)]), strict=False))
        for b in run:
            started = time.perf_counter() - share
            columns = np.concatenate([np.arange(starts[name], starts[name] + params[name].numel())
                                      for name in groups[b][1]])
            idx, rows = local[b] if local is not None else (np.zeros(0, dtype=int), np.zeros((0, sizes[b])))
            mine = alone[idx] == b
            found = _settled(fields[:, columns], rows[mine], [law_names[i] for i in idx[mine]],
                             _family(cross_entropy), started)
            if found is not None:
                decided[b] = found
    return decided, spent


def _family(cross_entropy: bool) -> str:
    """The loss family a count is of: softmax cross-entropy's (a shift of every logit
    ignored) or any loss's."""
    return "cross_entropy" if cross_entropy else "any"


def _settled(fields, rows, law_names, family: str, started: float) -> Discovery | None:
    """A block's count when its ``fields`` (K x D) provably span all but its derived laws
    (gradients ``rows``, of the components named ``law_names``), as `_discovered` decides
    it by the bounds at depth 1; else None."""
    spurious, derived, lower = _law_bounds(rows, fields, law_names)
    laws = _law_basis(rows, fields)
    ranked = _spanning_rest(fields, laws)
    if ranked is None or len(laws) != lower:
        return None
    return Discovery("", family, fields.shape[1], lower, lower, derived, [ranked[0]], ranked[1], spurious=spurious,
                     seconds=time.perf_counter() - started, decided_by="bounds",
                     note="decided from the fields it shares with the blocks beside it",
                     certificate=numerical(ranked[1], "torch.func at the module's point"))


def _blockwise_rank(local, alone, keep) -> tuple[int, int]:
    """The numerical rank (`rank_and_gap`'s) of the law rows that ``keep`` marks, from
    their blocks' parts (`_local_rows`), as (the rows within blocks' rank, what the rows
    across add); ``alone[i]``: the block row i reads alone, or -1. Rows within blocks are
    block-diagonal: their rank is the sum of each block's (one SVD per block). A row across
    blocks, scaled to unit length, adds what of it lies off their span (more than
    RANK_TOL * 1e3 of it, as `_independent` takes it), ranked from each block's part
    A = R^T Q^T (QR of A^T) as R^T: the same singular values, in the rows' own coordinates.
    Never a matrix of the model's width."""
    across = np.flatnonzero(keep & (alone == -1))
    slot = np.full(len(alone), -1)
    slot[across] = np.arange(len(across))
    squares = np.zeros(len(across))
    for idx, rows in local:
        np.add.at(squares, slot[idx[slot[idx] >= 0]], (rows[slot[idx] >= 0] ** 2).sum(axis=1))
    norms = np.maximum(np.sqrt(squares), 1e-300)
    rank, parts = 0, []
    for block, (idx, rows) in enumerate(local):
        within = rows[keep[idx] & (alone[idx] == block)]
        within = within[np.linalg.norm(within, axis=1) > 0]
        mine = slot[idx] >= 0
        A = rows[mine] / norms[slot[idx[mine]], None]
        if len(within):
            here = rank_and_gap(within)[0]
            basis = svd(within / np.linalg.norm(within, axis=1, keepdims=True))[2][:here]
            A = A - (A @ basis.T) @ basis
            rank += here
        if len(A) and A.shape[1]:
            part = np.zeros((len(across), min(A.shape)))
            part[slot[idx[mine]]] = scipy.linalg.qr(A.T, mode="r")[0][:min(A.shape)].T
            parts.append(part)
    off = np.concatenate(parts, axis=1) if parts else np.zeros((len(across), 0))
    off = off[np.linalg.norm(off, axis=1) > RANK_TOL * 1e3]
    return rank, (rank_and_gap(off)[0] if len(off) else 0)


def _by_blocks(module, example_input, groups, *, cross_entropy, laws_at, law_names, seed, budget, quiet,
               reads=None) -> Discovery:
    """The law count block by block (Marcotte, Gribonval, Peyre 2025). Each block is
    counted alone: its parameters move and the others are constants, at the module's
    values and at fresh draws (a field of the model at any value of the others), with the
    derived laws that read only that block as its lower bound. Alone, a block has at
    least the laws within it that the model has (a law of the model that reads one block
    is conserved by the model's fields at every value of the others, so by each field
    here and by their brackets), so a block whose bounds meet has exactly its derived
    laws within it. The laws across blocks are the derived ones (their rank beyond the
    blocks'): none other by the paper's Theorem 4.7 (no law across a skip), which no rank
    here checks. ``reads``: each law component's candidate parameter names
    (`_law_components`; None: any), so no step holds a matrix of the model's width."""
    started = time.perf_counter()
    _check_module(module, example_input)
    base = getattr(module, "_orig_mod", module)
    D = sum(p.numel() for p in base.parameters() if p.requires_grad)
    reads = reads if reads is not None else [None] * len(law_names)
    with one_thread():
        alone = _alone(laws_at, reads, groups, base) if laws_at else np.zeros(0, dtype=int)
        twin = _twin(module, quiet)
        fresh, parts = [_fresh_copy(twin, seed, draw) for draw in range(1, OTHERS)], []  # every block's others
        local = _local_rows(laws_at, reads, groups, base) if laws_at else None
        shared, spent = _shared_blocks(twin, example_input, groups, local, alone, law_names,
                                       cross_entropy=cross_entropy, seed=seed, fresh=fresh, budget=budget)
        for block, (path, names) in enumerate(groups):
            part = shared.get(block)
            if part is None:
                own = np.flatnonzero(alone == block)
                part_laws = (lambda params, own=own: laws_at(params, own)) if len(own) else None
                part = _discovered(twin, example_input, cross_entropy, part_laws, [law_names[i] for i in own], seed,
                                   Work(budget), time.perf_counter(), (), free=names, fresh=fresh)
            part.spec = path
            parts.append((path, part))
        spurious = sorted({law for _, part in parts for law in part.spurious})
        good = np.array([law not in spurious for law in law_names], dtype=bool)
        derived = lower = across = 0
        if local is not None:
            derived = sum(_blockwise_rank(local, alone, np.ones(len(alone), dtype=bool)))
            within, across = _blockwise_rank(local, alone, good)
            lower = within + across
    uppers = [part.upper for _, part in parts]
    open_ = [path for path, part in parts if part.upper is None or part.upper != part.lower]
    upper = None if None in uppers or not laws_at else sum(uppers) + across  # type: ignore[arg-type]
    decided_by = "blocks" if laws_at and not open_ else ""
    note = (f"{len(parts)} blocks counted alone, {across} derived laws across them (none other: Marcotte et al. "
            f"2025, Theorem 4.7)" + (f"; undecided within: {', '.join(open_)}" if open_ else "")
            + ("" if laws_at else "; laws across blocks not counted: the module does not convert"))
    return Discovery(type(module).__name__, _family(cross_entropy), D, upper, lower, derived,
                     [], min(part.gap for _, part in parts), spurious=spurious,
                     seconds=time.perf_counter() - started, note=note, decided_by=decided_by,
                     evaluations=spent + sum(part.evaluations for _, part in parts), blocks=parts)
