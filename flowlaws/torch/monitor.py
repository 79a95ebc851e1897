"""LawMonitor: every law of a torch module watched through a real training loop.

Around each ``optimizer.step()`` the monitor copies theta and the gradient into one (5, N)
array of operands (`_Layout`), predicts the step's rest from the optimizer's state
(`flowlaws.torch.optimizers`), and after the step sums every law's change and its
prediction per unit, in torch, from one reduction per parameter axis
(`flowlaws.invariants.sums`); the sums are judged a batch of steps at a time against the
round-off of one step (docs/numerics.md), and each law keeps a `Record`.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse
import torch

from flowlaws.errors import InvalidArgument
from flowlaws.invariants.laws import per_axis_entry
from flowlaws.invariants.sums import (
    CHANNELS,
    DELTA,
    DR,
    GRAD,
    OPERANDS,
    REST,
    SMALL,
    THETA,
    LawSums,
    MatrixForms,
    product_views,
    products,
    to_host,
)
from flowlaws.models.symmetry import LawKind, centred
from flowlaws.torch.conversion import Converted
from flowlaws.torch.kernel import compiled, library, planned
from flowlaws.torch.optimizers import PREDICTED, group_settings, groups_of, settings_key, step_coefficients
from flowlaws.validation import positive_int


@dataclass(frozen=True)
class _Layout:
    """The watched torch parameters end to end in one vector (by param group, then in the
    model's order), and each model parameter as a strided view of such a vector: a step's
    operands (theta, its change, the rest, the gradient) are rows of one (5, N) array, each
    filled by one `torch._foreach_copy_` into its `parts`, so a step costs a few torch
    calls per operand, not one per parameter (a call costs microseconds; a model has many
    small parameters).

    ``starts``: where each parameter begins in the vector, and its end. ``runs``: (slice,
    param group index or None, params) for each run of parameters that share a group
    (None: in no group)."""

    params: tuple
    starts: tuple
    views: tuple  # each model parameter's (size, stride, offset) in the vector
    runs: tuple
    grouping: tuple  # the optimizer's param groups it was laid out by (`groups_of`)

    @classmethod
    def of(cls, converted: Converted, optimizer) -> _Layout:
        group_of = {id(t): g for g, group in enumerate(optimizer.param_groups) for t in group["params"]}
        # by group, and in each the small parameters last: one run, summed as one segment (`LawSums`)
        params = tuple(sorted(converted.parameters, key=lambda t: (group_of.get(id(t), len(group_of)),
                                                                   t.numel() < SMALL)))
        devices = {t.device for t in params}
        if len(devices) > 1:
            raise InvalidArgument(f"LawMonitor watches parameters on one device; got {sorted(map(str, devices))}: "
                                  "move the model to one device first")
        starts = tuple(int(a) for a in np.cumsum([0, *(t.numel() for t in params)]))
        runs = []
        for group, members in itertools.groupby(range(len(params)), key=lambda k: group_of.get(id(params[k]))):
            run = list(members)
            runs.append((slice(starts[run[0]], starts[run[-1] + 1]), group, tuple(params[k] for k in run)))
        index, probed = converted.laid_out(params)
        views = []
        for p in probed:
            if p.untyped_storage().data_ptr() != index.untyped_storage().data_ptr():  # pragma: no cover
                raise AssertionError("a converted parameter is not a view of its torch parameter")
            views.append((tuple(p.shape), tuple(p.stride()), p.storage_offset()))
        return cls(params, starts, tuple(views), tuple(runs), groups_of(optimizer))

    @property
    def size(self) -> int:
        return self.starts[-1]

    def parts(self, row) -> list:
        """``row`` (a vector) as one view per parameter, in its shape: what `fill` writes."""
        return [row[a:b].view(t.shape) for t, a, b in zip(self.params, self.starts, self.starts[1:], strict=False)]

    @staticmethod
    def fill(parts: list, tensors) -> None:
        """Copy ``tensors`` into ``parts`` (a row's `parts`, or some of them): one call."""
        torch._foreach_copy_(parts, list(tensors))

    def difference(self, row, tensors, minus) -> None:
        """Write ``tensors`` less ``minus`` (a row like ``row``) into ``row``: one pass, a
        subtraction per parameter."""
        for t, a, b in zip(tensors, self.starts, self.starts[1:], strict=False):
            torch.sub(t, minus[a:b].view(t.shape), out=row[a:b].view(t.shape))


@dataclass(frozen=True)
class _Buffer:
    """A step's one array, kept between steps: its operands (`OPERANDS`, the rows of X)
    and, for a small model, their CHANNELS products (P, `products`), with every view a
    step writes or reads made once (a view costs a torch call, microseconds; a step takes
    dozens); the small parameters' entries gathered (``segment``: `LawSums`); the call that
    writes a step's columns of sums (`LawSums.planned`, or on the CPU the compiled pass of
    `flowlaws.torch.kernel`: no products formed, nothing gathered, the sums in float64;
    ``fly``: row D holds theta after the step, D and D - R formed in the pass), and the
    columns of the steps awaiting judgement, written on the device step by step and copied
    to the host once a batch."""

    array: Any
    X: Any
    P: Any  # None unless the products are formed
    rows: tuple  # X's rows
    parts: tuple  # each row of X as one view per parameter (`_Layout.parts`)
    stacked: Any  # `LawSums`' ``stacked`` of X: parameter k's operands, (5, *shape)
    stacked_products: Any  # and of P
    product_views: tuple | None  # what `products` reads of X and writes of P
    segment: Any  # the rows of ``array`` at the small parameters' entries (a view when they are one run; None: fused)
    write: Any  # write(out): the step's columns of sums into out, (CHANNELS, columns)
    columns: Any  # (steps, CHANNELS, columns): the pending steps' columns of sums, each step's contiguous
    dtypes: frozenset  # the parameters' dtypes its steps were taken in (the array has the widest)
    fly: bool  # the compiled pass forms D and D - R (row D holds theta after the step)

    @property
    def unit(self) -> float:
        """The least precise parameter's unit round-off, at the steps summed here."""
        return max(float(torch.finfo(dtype).eps) for dtype in self.dtypes)

    @classmethod
    def of(cls, layout: _Layout, sums: LawSums, segment, dtypes: frozenset, device, formed: bool,
           steps: int, fly: bool) -> _Buffer:
        dtype = functools.reduce(torch.promote_types, dtypes)
        if compiled(dtype, device):  # the compiled pass: no products, nothing gathered, the sums in float64
            X = torch.zeros((len(OPERANDS), layout.size), dtype=dtype, device=device)
            fused = planned(sums, X, dict(enumerate(layout.views)), fly)
            if fused is not None:
                rows = tuple(X.unbind(0))
                return cls(array=X, X=X, P=None, rows=rows, parts=tuple(layout.parts(row) for row in rows),
                           stacked=None, stacked_products=None, product_views=None, segment=None, write=fused,
                           columns=torch.zeros((steps, CHANNELS, sums.M.shape[1]), dtype=torch.float64),
                           dtypes=dtypes, fly=fly)
            del X  # a view past the kernel's limits: torch's passes
        array = torch.zeros((len(OPERANDS) + CHANNELS * formed, layout.size), dtype=dtype, device=device)
        X, P = array[:len(OPERANDS)], array[len(OPERANDS):] if formed else None
        # the segment's entries: a view where they are one run (one param group's), else gathered
        segment = array[:, segment] if isinstance(segment, slice) else array.new_zeros((len(array), len(segment)))
        rows = tuple(X.unbind(0))
        stacked, stacked_products = _views_of(X, layout.views), None if P is None else _views_of(P, layout.views)
        write = sums.planned(stacked, segment[:len(OPERANDS)],
                             (stacked_products, segment[len(OPERANDS):]) if formed else None)
        return cls(array, X, P, rows, tuple(layout.parts(row) for row in rows), stacked, stacked_products,
                   None if P is None else product_views(X, P), segment, write,
                   torch.zeros((steps, CHANNELS, sums.M.shape[1]), dtype=dtype, device=device), dtypes, False)


PER_PARAMETER = 1 << 14  # parameters this large on average are written one call each (a pass saved)
PRODUCTS = 1 << 20  # a model of up to this many watched entries forms its products, in cache (`LawSums`)
BATCH_STEPS = 64  # steps judged at once: a judgement's numpy calls cost the same for one step or many
PENDING_BYTES = 1 << 26  # the pending steps' sums, as the judgement's float64 copy, take at most this
STEP_ROUNDINGS = 4  # roundings in one entry's update and its law products (decay, buffer, step, add)


def _elements(inputs) -> int:
    """The entries of a module's input, or of its several (a decoder's target and memory)."""
    return sum(t.numel() for t in inputs) if isinstance(inputs, tuple | list) else inputs.numel()


def _judged(Z, Zabs, quadratic, rounding: float, gradient) -> tuple:
    """(residual, predicted, tolerance, size, weight) of every component of sums Z, Z_abs
    (`LawSums.combine`, (steps, components, CHANNELS); ``gradient``: each step's charge
    per unit of |g|, (steps, 1)), float64 numpy (docs/numerics.md). A quadratic law's
    residual is Dh(theta)[D - R] (the step's change less its prediction: the second order
    Q(D) cancels), its prediction Dh(theta)[R] + Q(D), its tolerance per unit 2 size
    weight, bounded by Cauchy-Schwarz from four norms N(x)^2 = sum_v |alpha_v| ||x_v||^2
    of its slices: size = N(T) + N(D) (which bounds N(|T| + |D|)), weight = rounding (2
    N(T) + N(D) + N(R)) + gradient N(G). A linear law's residual is h(D - R), its
    prediction h(R), its tolerance sum_v |alpha_v| sum W_v with W = rounding (2|T| + |D| +
    |R|) + gradient |G| entry by entry."""
    delta, theta, rest, grad = np.sqrt(np.moveaxis(Zabs[..., 2:], -1, 0))
    size, weight = theta + delta, rounding * (2 * theta + delta + rest) + gradient * grad
    linear = rounding * (2 * Zabs[..., 3] + Zabs[..., 2] + Zabs[..., 4]) + gradient * Zabs[..., 5]
    return (np.where(quadratic, 2 * Z[..., 0], Z[..., 0]), np.where(quadratic, 2 * Z[..., 1] + Z[..., 2], Z[..., 1]),
            np.where(quadratic, 2 * size * weight, linear), size, weight)


def _matrix(residuals, plane: bool, sizes, weights) -> tuple:
    """(residual, tolerance, effect, (i, j)) of each of some matrix laws at its worst entry,
    from their residual forms (`MatrixForms`, laws x units x units) and the norms of their
    unit forms (laws x units): the tolerance size_i weight_j + size_j weight_i (order 2
    times the symmetric part of the bound; on the centred ``plane``, |C| that |C|)."""
    from flowlaws.checking import effect_size

    outer = sizes[:, :, None] * weights[:, None, :]
    bound = outer + np.swapaxes(outer, 1, 2)
    if plane:
        bound = centred(bound, absolute=True)
    effect = effect_size(residuals, bound).reshape(len(residuals), -1)
    worst, every = np.argmax(effect, axis=1), np.arange(len(residuals))
    i, j = np.unravel_index(worst, residuals.shape[1:])
    return (residuals[every, i, j], bound[every, i, j], effect[every, worst],
            list(zip(i.tolist(), j.tolist(), strict=True)))


@dataclass
class Record:
    """One law over the monitored steps: per step its change, the prediction, the effect
    size (worst component) and the tolerance there (the smallest change the monitor can
    tell from round-off), and the first step where it departed."""

    law: Any
    measured: list = field(default_factory=list)
    predicted: list = field(default_factory=list)
    effect: list = field(default_factory=list)
    resolution: list = field(default_factory=list)
    flagged: tuple | None = None  # (step, unit, effect)

    @property
    def status(self) -> str:
        """"departs" once flagged; "holds" only when some step was observed; else "unobserved"."""
        return "departs" if self.flagged is not None else "holds" if self.measured else "unobserved"

    def to_json(self) -> dict:
        return {"law": self.law.name, "formula": self.law.formula, "status": self.status, "measured": self.measured,
                "predicted": self.predicted, "effect": self.effect, "resolution": self.resolution,
                "flagged": None if self.flagged is None else
                {"step": self.flagged[0], "unit": list(self.flagged[1]), "effect": self.flagged[2]}}


class LawMonitor:
    """Watch every law of ``module`` through a real training loop.

    Around each ``optimizer.step()`` (every ``every``-th) the monitor keeps theta and the
    gradient, asks the optimizer in use for the step's rest (`flowlaws.flows.optimizers`:
    Delta = -c g + rest, from each param group's settings and the optimizer's own state),
    and compares each law's change with its exact prediction, Dh(theta)[rest] + second(Delta)
    (the law makes Dh(theta)[g] = 0): SGD with momentum, dampening, Nesterov and weight
    decay are predicted exactly; Adam, AdamW and RMSprop have a preconditioned gradient
    term whose first-order part 2B(theta, Delta) != 0 is not predicted, and is flagged
    (AdamW's decoupled decay is). Parameters of different groups whose gradient
    coefficients differ break the laws at first order; that drift is predicted too.

    The sums run in torch on the parameters' own device and dtype: each parameter's six
    products summed once per axis, every unit and layer law from them by one sparse product
    (`flowlaws.invariants.sums`; small parameters summed together in float64). The
    tolerance is the round-off of one step in that precision (docs/numerics.md):
    STEP_ROUNDINGS unit round-offs of the step's magnitude (its entries are rounded once
    each, whatever the model's size) and the slice's sums, plus the gradient's own
    round-off, gamma_n c <|theta|, |g|> with n the longest sum behind a gradient entry (the
    batch's input elements plus the widest fan-in); a quadratic law's is bounded per unit
    from four norms of its slices (`_judged`). A law whose gradient vanishes only as a
    sum over the batch or the positions (a bias whose shift a BatchNorm or an InstanceNorm
    removes: `Law.batch_sum`) is left ``unwatched``: each computed gradient entry is
    round-off of that sum, which no magnitude of the step bounds; so is a summed law (a
    centred stream's mean direction, `LawKind.SUMMED`), whose sums are over no unit's
    slices. Each step is summed right
    after it, while its operands are in cache, and its sums are judged ``batch`` steps at
    a time (`flush`; a matrix law right after its step, since its prediction reads the
    step's operands); every reader judges the steps still pending first. The
    monitor never raises inside the training loop: a failure to observe or judge a step
    is kept in ``errors``.
    """

    def __init__(self, module, optimizer, *, example_input, loss=None, every: int = 1):

        optimizer = getattr(optimizer, "optimizer", optimizer)  # a wrapper's (accelerate, Lightning) own
        if type(optimizer).__name__ not in PREDICTED:
            raise InvalidArgument(f"LawMonitor predicts {', '.join(PREDICTED)}; got {type(optimizer).__name__}")
        group_settings(optimizer)
        self.every = positive_int("LawMonitor", "every", every)
        self.module, self.optimizer = module, optimizer
        self.converted = Converted.of(module, example_input)
        derived = self.converted.laws(loss)
        # a law whose gradient vanishes only as a sum over the batch is not judged: each
        # gradient entry is round-off of that sum, which a step's magnitudes cannot bound;
        # nor is a summed law (a centred stream's mean direction): its sums are no unit's
        self.unwatched = [law for law in derived if law.batch_sum or law.kind is LawKind.SUMMED]
        specs = self.converted.model.param_specs  # taps that meet only padding: watched by their sums per tap
        self.laws = [per_axis_entry(law, specs) for law in derived if law not in self.unwatched]
        if not self.laws:
            raise InvalidArgument(f"{self.converted.model.spec} has no conservation law to monitor"
                                  + (f" ({len(self.unwatched)} unwatched: gradients that vanish only as sums over "
                                     "the batch, or a stream's mean direction)" if self.unwatched else ""))
        self._records = [Record(law) for law in self.laws]
        self._errors: list[str] = []
        self._pending: list[tuple] = []  # (step, coefficient c, input elements) of each step awaiting judgement
        self._arrange()
        self.summed = _elements(example_input)  # the batch's input elements (updated each forward)
        self.steps = 0
        self._before: tuple | None = None
        self._handles = [optimizer.register_step_pre_hook(self._pre), optimizer.register_step_post_hook(self._post),
                         module.register_forward_pre_hook(self._saw_input)]

    def detach(self) -> None:
        """Judge the steps still pending and stop monitoring (remove the hooks)."""
        self.flush()
        for handle in self._handles:
            handle.remove()

    # --- the hooks ------------------------------------------------------------------------
    def _saw_input(self, module, args):
        inputs = args[:len(self.converted.packed_as) or 1]  # (a decoder's two)
        if inputs and all(isinstance(a, torch.Tensor) for a in inputs):
            self.summed = _elements(inputs)

    def _pre(self, optimizer, args, kwargs):
        self.before_step()

    def before_step(self) -> None:
        """Keep theta, the gradient and the step's predicted rest now. The optimizer's step
        pre-hook calls it; a loop whose optimizer computes the gradient inside ``step`` (a
        closure, as Lightning's) calls it again after the backward pass
        (`flowlaws.lightning.LawCallback` does)."""
        optimizer = self.optimizer
        self._before = None
        if self.steps % self.every:
            return
        try:
            # a frozen parameter (no gradient) does not move: its gradient counts as 0, so a law
            # with one side frozen is measured, and flagged when the step breaks it (a step
            # without any gradient has nothing to observe)
            if all(t.grad is None for t in self.params):
                return
            if self.layout.grouping != groups_of(optimizer):  # add_param_group since the last step
                self.flush()
                self._arrange()
            with torch.no_grad():
                buffer = self._buffer()
                targets, states, writes, coefficients = self._rests(optimizer, buffer)
                grads = [t.new_zeros(()).expand(t.shape) if t.grad is None else t.grad for t in self.params]
                self.layout.fill(targets, [*self.params, *grads, *states])  # theta, g and the states: one call
                for write in writes:
                    write()
            self._before = (buffer, coefficients)
        except Exception as error:  # never break the user's training
            self._errors.append(f"step {self.steps}: {type(error).__name__}: {error}")

    def _arrange(self) -> None:
        """Lay the watched parameters out by the optimizer's param groups (`_Layout`), and the
        sums of every law over them."""
        self.layout = _Layout.of(self.converted, self.optimizer)
        self.params, size = self.layout.params, self.layout.size
        if self.params[0].device.type == "cpu":
            library()  # built now, if it must be, rather than inside a training step
        self._kept: _Buffer | None = None  # the step's buffer follows the layout (`_buffer`)
        self._writes: tuple | None = None  # (key, calls, coefficients) of `_rests`
        self.formed = size <= PRODUCTS  # a small model's products formed while its operands are in cache
        index = torch.arange(size)
        positions = [_positions(view, index) for view in self.layout.views]
        shapes = [shape for _, shape in self.converted.model.param_specs]
        self.sums, self.segment = self._sums(positions, shapes)
        rows = [self.sums.rows(law) for law in self.laws]  # each law's components
        spans = [r for law, r in zip(self.laws, rows, strict=True) if law.kind is LawKind.LAYER]
        self._layers = _summing(spans, len(self.sums.order))  # row k: layer law k's sum of its components
        layer = iter(range(len(spans)))  # a layer law is judged by its row
        self._rows: list[tuple[Any, Any, Any]] = [(record, law, next(layer) if law.kind is LawKind.LAYER else r)
                                                  for record, law, r in zip(self._records, self.laws, rows, strict=True)
                                                  if law.kind is not LawKind.MATRIX]
        matrices = [(record, law, r) for record, law, r in zip(self._records, self.laws, rows, strict=True)
                    if law.kind is LawKind.MATRIX]
        self.forms = MatrixForms([law for _, law, _ in matrices], shapes, lambda k: positions[k],
                                 device=self.params[0].device)
        self._matrices = _MatrixSums.of(self.sums, matrices, self.params[0].device)
        # steps judged at once: BATCH_STEPS, fewer where their sums would pass PENDING_BYTES (a large model's)
        self.batch = max(1, min(BATCH_STEPS, PENDING_BYTES // (CHANNELS * 8 * self.sums.M.shape[1])))
        # the longest sum a law takes: a slice of a parameter, or a matrix law's slices side by side
        self.slice = max((t.numel() // n for t in self.params for n in t.shape if n), default=1)
        self.slice = max(self.slice, self.forms.longest)

    def _sums(self, positions: list, shapes: list) -> tuple:
        """(`LawSums` over the parameters, of ``shapes`` at ``positions``, and the vector's
        places of the segment: a slice where they are one run, else an index): a model
        parameter of a torch parameter under SMALL entries is summed entry by entry from the
        segment (one gather for all of them, or none), any other reduced in place."""
        layout = self.layout
        segment = np.concatenate([np.arange(a, b) for t, a, b in zip(self.params, layout.starts, layout.starts[1:],
                                                                      strict=False) if t.numel() < SMALL]
                                 or [np.zeros(0, int)])
        place = np.full(layout.size, -1)
        place[segment] = np.arange(segment.size)
        # a view starts at its offset: on a small parameter, all of it is
        flat = {k: place[positions[k]] for k, (_, _, offset) in enumerate(layout.views)
                if offset >= layout.size or place[offset] >= 0}
        sums = LawSums(self.laws, shapes, flat=flat, views=dict(enumerate(layout.views)))
        if segment.size and segment[-1] - segment[0] == segment.size - 1:  # one run: read in place
            return sums, slice(int(segment[0]), int(segment[-1]) + 1)
        return sums, torch.as_tensor(segment, device=self.params[0].device)

    def _buffer(self) -> _Buffer:
        """The step's `_Buffer`, in the parameters' dtype (the widest, if they differ) on
        their device: kept between steps (a fresh array for a large model every step costs
        its page faults again), and made again when their dtypes or device change (a model
        cast mid-run); the steps summed in the old one are judged first, at their own
        round-off."""
        dtypes = frozenset(t.dtype for t in self.params)
        buffer = self._kept
        if buffer is None or buffer.dtypes != dtypes or buffer.X.device != self.params[0].device:
            self.flush()
            buffer = self._kept = _Buffer.of(self.layout, self.sums, self.segment, dtypes, self.params[0].device,
                                             self.formed, self.batch, fly=not self.forms.batches)
            self._writes = None  # `_rests`' calls write into the buffer's rows
        return buffer

    def _columns(self, buffer: _Buffer, step: int) -> None:
        """Write the step's columns of sums (`LawSums.columns`) into the buffer's ``step``-th
        slot, from its operands and, for a small model, their products: the segment's
        gathered in one call (none where they are one run)."""
        if buffer.segment is not None and not isinstance(self.segment, slice):
            torch.index_select(buffer.array, 1, self.segment, out=buffer.segment)
        buffer.write(buffer.columns[step])

    def _post(self, optimizer, args, kwargs):
        try:
            if self._before is not None:
                buffer = self._before[0]
                with torch.no_grad():
                    c = self._completed(*self._before)
                    self._columns(buffer, len(self._pending))
                self._pending.append((self.steps, c, self.summed))
                try:
                    if self.forms.batches:
                        with torch.no_grad():
                            self._judge_forms(buffer, len(self._pending) - 1)
                finally:
                    if len(self._pending) == self.batch:
                        self.flush()
        except Exception as error:  # never break the user's training
            self._errors.append(f"step {self.steps}: {type(error).__name__}: {error}")
        finally:
            self._before = None
            self.steps += 1

    def _rests(self, optimizer, buffer: _Buffer) -> tuple:
        """How the step's operands are written before it: (targets, states, calls,
        coefficients). The buffer's views ``targets`` take theta, then g, then ``states``
        (momentum buffers) in one copy; ``calls`` then write each parameter's rest into row
        REST (from theta in row THETA); ``coefficients``: (slice of the vector, gradient
        coefficient) for each run of parameters stepped alike. They are made once for the
        optimizer's settings and momentum buffers (`_rest_writes`), and made again when
        either changes (a scheduler's learning rate, the first step's new buffers): a step
        then costs those calls alone."""
        name, settings = type(optimizer).__name__, group_settings(optimizer)
        momenta = [optimizer.state.get(t, {}).get("momentum_buffer") for t in self.params]
        key = (name, tuple(map(settings_key, settings)), tuple(map(id, momenta)))
        if self._writes is None or self._writes[0] != key:
            self._writes = (key, *self._rest_writes(name, settings, momenta, buffer))
        return self._writes[1:]

    def _rest_writes(self, name: str, settings: list, momenta: list, buffer: _Buffer) -> tuple:
        """(targets, states, calls, coefficients) of `_rests`: 0 for a preconditioned term,
        a parameter in no group, or lr = 0 (none of these is a multiple of g that moves).
        Every optimizer's rest is linear, a state + b theta (`flowlaws.flows.optimizers`):
        a and b are its rest at unit scalars, and the rest is written in place, in two
        passes over the vector (no temporaries; the states copied with theta and g where
        the parameters are many and small, `PER_PARAMETER`, then scaled)."""
        rests, thetas = buffer.rows[REST], buffer.rows[THETA]
        targets, states_copied = [*buffer.parts[THETA], *buffer.parts[GRAD]], []
        writes: list = []
        coefficients, k = [], 0  # k: the first parameter of the part
        for span, group, params in self.layout.runs:
            start = span.start
            states = momenta[k:k + len(params)]
            for missing, members in itertools.groupby(zip(params, states, strict=True), key=lambda tb: tb[1] is None):
                part = list(members)
                where = slice(start, start + sum(t.numel() for t, _ in part))
                start, first, k = where.stop, k, k + len(part)
                rule = None if group is None else step_coefficients(name, settings[group], not missing)
                rest = rests[where]
                if rule is None:
                    writes.append(rest.zero_)
                    coefficients.append((where, 0.0))
                    continue
                a, b, c = rule
                if missing or not a:
                    writes.append(functools.partial(torch.mul, thetas[where], b, out=rest))
                else:
                    if rest.numel() < PER_PARAMETER * len(part):  # many small momenta: copied, then scaled
                        targets += buffer.parts[REST][first:k]
                        states_copied += [state for _, state in part]
                        writes.append(functools.partial(rest.mul_, a))
                    else:
                        at = where.start
                        for t, state in part:  # a times the momenta: one pass
                            writes.append(functools.partial(torch.mul, state, a,
                                                            out=rests[at:at + t.numel()].view(t.shape)))
                            at += t.numel()
                    if b:
                        writes.append(functools.partial(rest.add_, thetas[where], alpha=b))
                coefficients.append((where, c))
        return targets, states_copied, writes, coefficients

    def _completed(self, buffer: _Buffer, coefficients) -> float:
        """Complete one step's operands (the buffer's rows) after the step: D = theta+ -
        theta, and D - R (with ``buffer.fly``, theta+ alone: the compiled pass forms them);
        the gradient coefficient c the rest leaves out (its first-order effect is 0)."""
        c = max((coefficient for _, coefficient in coefficients), default=0.0)
        rows = buffer.rows
        if buffer.fly or self.layout.size < PER_PARAMETER * len(self.params):  # (many small parameters: few calls)
            self.layout.fill(buffer.parts[DELTA], self.params)  # theta+
            if not buffer.fly:
                rows[DELTA].sub_(rows[THETA])
        else:
            self.layout.difference(rows[DELTA], self.params, rows[THETA])
        # a common coefficient of g has no first-order effect (Dh(theta)[g] = 0); what differs
        # between parameters (per-group learning rates, a parameter no group holds) has
        for where, coefficient in coefficients:
            if coefficient != c:
                rows[REST][where] -= (coefficient - c) * rows[GRAD][where]
        if not buffer.fly:
            torch.sub(rows[DELTA], rows[REST], out=rows[DR])
        if buffer.P is not None:  # its products now, while its operands are in cache
            products(buffer.X, buffer.P, buffer.product_views)
        return c

    def flush(self) -> None:
        """Judge the steps awaiting judgement, ``batch`` at a time from their sums, in the
        same calls; every reader (``records``, ``flagged``, ``errors``, ...) flushes first."""
        pending, self._pending = self._pending, []
        if not pending:
            return
        try:
            with torch.no_grad():
                self._judge(pending)
        except Exception as error:  # never break the user's training
            steps = f"step {pending[0][0]}" + (f" to {pending[-1][0]}" if len(pending) > 1 else "")
            self._errors.append(f"{steps}: {type(error).__name__}: {error}")

    def _judge(self, pending: list) -> None:
        """Record every unit and layer law at each pending step, from the steps' sums
        (`_judged`): a unit law at its worst unit, a layer law by its sum."""
        from flowlaws.checking import effect_size

        buffer = self._kept  # the buffer the pending steps were summed in
        assert buffer is not None
        # (columns, steps, CHANNELS) in float64 on the host, transposed in one numpy copy (torch's
        # permuted copy is 2-3 times slower); half precisions come as float32, exactly
        sums = buffer.columns[:len(pending)].reshape(len(pending) * CHANNELS, -1)
        host = sums.to("cpu", torch.promote_types(sums.dtype, torch.float32)).numpy()
        S = np.ascontiguousarray(host.T, dtype=np.float64).reshape(-1, len(pending), CHANNELS)
        Z, Zabs = (np.moveaxis(z, 1, 0) for z in self.sums.combine(S))
        _, c, summed = (np.array(column, dtype=float) for column in zip(*pending, strict=True))
        gradient = self._gradient_charge(buffer.unit, c, summed)[:, None]  # each step's
        residuals, predictions, tolerances, *_ = _judged(Z, Zabs, self.sums.order == 2, self._rounding(buffer.unit),
                                                         gradient)
        effects = effect_size(residuals, tolerances)
        layer = [(self._layers @ x.T).T for x in (residuals, predictions, tolerances)]  # each layer law's sums
        layer.append(effect_size(layer[0], layer[2]))
        steps, every = [step for step, *_ in pending], np.arange(len(pending))
        for record, law, rows in self._rows:
            if law.kind is LawKind.LAYER:
                residual, prediction, tolerance, effect = (x[:, rows] for x in layer)
                self._record(record, steps, residual, prediction, tolerance, effect, [()] * len(pending))
                continue
            unit = np.argmax(effects[:, rows], axis=1)  # a unit law at its worst unit, each step
            k = rows.start + unit
            self._record(record, steps, residuals[every, k], predictions[every, k], tolerances[every, k],
                         effects[every, k], [(int(u),) for u in unit])

    def _judge_forms(self, buffer: _Buffer, slot: int) -> None:
        """Record every matrix law at the step just taken (``slot``: its place among the
        pending), at the worst entry of its form, right after the step: its prediction
        reads the step's operands, which the next step overwrites. Its tolerance is from
        the norms of its unit form (`_judged`), its components' sums alone copied to the
        host."""
        step, c, summed = self._pending[slot]
        Z, Zabs = self._matrices(buffer.columns[slot])
        gradient = self._gradient_charge(buffer.unit, np.array([c]), np.array([summed]))[:, None]
        *_, sizes, weights = _judged(Z[None], Zabs[None], self._matrices.quadratic, self._rounding(buffer.unit),
                                     gradient)
        forms, worst, found = self.forms(buffer.X), {}, []
        for plane, members in self._matrices.alike:  # laws of one size and plane at once
            judged = _matrix(np.stack([forms[id(law)] for _, law, _ in members]), plane,
                             *(np.stack([x[0, rows] for *_, rows in members]) for x in (sizes, weights)))
            for (record, law, _), residual, tolerance, effect, entry in zip(members, *judged, strict=True):
                worst[id(law)] = entry
                found.append((record, law, residual, tolerance, effect))
        predicted = self.forms.predicted(worst)  # at each law's worst entry
        for record, law, residual, tolerance, effect in found:
            self._record(record, [step], [residual], [predicted[id(law)]], [tolerance], [effect], [worst[id(law)]])

    def _rounding(self, unit: float) -> float:
        """The round-off the tolerance charges per unit of 2|theta| + |Delta| + |rest|
        (docs/numerics.md): SAFETY u (STEP_ROUNDINGS + m) (2|theta| + |Delta| bounds
        |theta+| + |theta|), m the longest slice a law sums (its sums are in the parameters'
        precision), u the least precise parameter's ``unit`` round-off at the step
        (`_Buffer.unit`)."""
        from flowlaws.checking import SAFETY

        return SAFETY * unit * (STEP_ROUNDINGS + self.slice)

    def _gradient_charge(self, unit: float, c, summed):
        """The round-off charged per unit of |g|: SAFETY u (n + m) c, n the longest sum
        behind a gradient entry (``summed``: the batch's input elements); arrays of steps."""
        from flowlaws.checking import SAFETY

        return SAFETY * unit * (summed + self.slice) * c

    @staticmethod
    def _record(record, steps: list, residual, predicted, tolerance, effect, units: list) -> None:
        """Keep a law's worst component at each of ``steps`` (``units``: its index in the
        law's form, each step)."""
        predicted = np.asarray(predicted, dtype=float)
        effect = np.asarray(effect, dtype=float)
        record.measured.extend((predicted + np.asarray(residual, dtype=float)).tolist())
        record.predicted.extend(predicted.tolist())
        record.effect.extend(effect.tolist())
        record.resolution.extend(np.asarray(tolerance, dtype=float).tolist())
        over = np.flatnonzero(effect > 1)
        if record.flagged is None and len(over):
            record.flagged = (steps[over[0]], units[over[0]], float(effect[over[0]]))

    # --- results --------------------------------------------------------------------------
    @property
    def records(self) -> list[Record]:
        """One `Record` per watched law, every step judged."""
        self.flush()
        return self._records

    @property
    def errors(self) -> list[str]:
        """What kept a step from being observed or judged (the monitor never raises in training)."""
        self.flush()
        return self._errors

    @property
    def flagged(self) -> list[Record]:
        return [r for r in self.records if r.flagged is not None]

    @property
    def worst_effect(self) -> float:
        """The largest effect size any law reached (0 before any step is observed)."""
        return max((max(r.effect) for r in self.records if r.effect), default=0.0)

    def assert_followed(self) -> None:
        """Raise AssertionError naming the first law that departed, if any (the trainer
        callbacks' ``fail=True``)."""
        if self.flagged:
            step, unit, effect = self.flagged[0].flagged  # type: ignore[misc]
            raise AssertionError(f"law {self.flagged[0].law.name} departed at step {step}, unit {unit} (effect "
                                 f"size {effect:.3g}); {len(self.flagged)} law(s) departed in all")

    def to_json(self) -> dict:
        return {"model": self.converted.model.spec, "optimizer": type(self.optimizer).__name__,
                "steps": self.steps, "errors": self.errors, "laws": [r.to_json() for r in self.records],
                "unwatched": [law.name for law in self.unwatched]}

    def report(self):
        """A rich table: law, drift (sum of its changes), predicted, worst effect size, verdict."""
        from rich.table import Table
        from rich.text import Text

        unwatched = f"; {len(self.unwatched)} unwatched" if self.unwatched else ""
        table = Table(title=Text(f"laws of {self.converted.model.spec} under {type(self.optimizer).__name__}, "
                                 f"{self.steps} steps{unwatched}"))
        for column in ("law", "drift", "predicted", "effect size", "verdict"):
            table.add_column(column, justify="left" if column in ("law", "verdict") else "right")
        for r in self.records:
            verdict = r.status if r.flagged is None else f"departs at step {r.flagged[0]}, unit {r.flagged[1]}"
            table.add_row(Text(r.law.name), f"{sum(r.measured):.3g}", f"{sum(r.predicted):.3g}",
                          f"{max(r.effect, default=0.0):.3g}",
                          Text(verdict, style={"holds": "green", "unobserved": "yellow"}.get(r.status, "red")))
        return table

    def plot(self, path, laws: int = 6):
        """Each law's cumulative change against its prediction per step (matplotlib)."""
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            raise InvalidArgument("LawMonitor.plot needs matplotlib: pip install 'flowlaws[plot]'") from None
        shown = (self.flagged + [r for r in self.records if r.flagged is None])[:laws]
        fig, axes = plt.subplots(1, len(shown), figsize=(3.2 * len(shown), 3), constrained_layout=True, squeeze=False)
        for ax, r in zip(axes[0], shown, strict=True):
            ax.plot(np.cumsum(r.measured), label="measured", lw=2)
            ax.plot(np.cumsum(r.predicted), "--", color="k", label="predicted")
            ax.set(title=r.law.name, xlabel="step")
            ax.legend(fontsize=7)
        fig.savefig(path, dpi=150)
        plt.close(fig)
        return path


@dataclass(frozen=True)
class _MatrixSums:
    """The sums of the matrix laws' unit forms alone, (Z, Z_abs) of one step from its
    columns (`LawSums.combine` restricted to their components and the columns they read):
    ``alike``: (centred, [(record, law, its components among them)]) for the laws of each
    size and plane, judged together (`_matrix`)."""

    both: Any  # M over |M|, their rows and the columns they read
    columns: Any  # those columns, a torch index on the parameters' device
    quadratic: Any
    alike: tuple

    @classmethod
    def of(cls, sums: LawSums, matrices: list, device) -> _MatrixSums:
        components = np.concatenate([np.arange(r.start, r.stop) for _, _, r in matrices] or [np.zeros(0, int)])
        both = sums.both[np.concatenate([components, components + len(sums.order)])]
        read = np.unique(both.indices)
        starts = np.cumsum([0, *(r.stop - r.start for _, _, r in matrices)])
        alike: dict = {}
        for (record, law, _), a, b in zip(matrices, starts, starts[1:], strict=False):
            alike.setdefault((b - a, law.centred), []).append((record, law, slice(a, b)))
        return cls(both[:, read], torch.as_tensor(read, device=device), sums.order[components] == 2,
                   tuple((plane, members) for (_, plane), members in alike.items()))

    def __call__(self, columns) -> tuple:
        """(Z, Z_abs), components x CHANNELS, from one step's (CHANNELS, columns) sums."""
        Z = self.both @ to_host(columns.index_select(1, self.columns)).T
        return Z[:len(self.quadratic)], Z[len(self.quadratic):]


def _positions(view, index) -> np.ndarray:
    """Where a parameter's entries (row-major) lie in the vector, from its (size, stride,
    offset) ``view`` (``index``: ``torch.arange`` of the vector, made once for many calls)."""
    size, stride, offset = view
    return index.as_strided(size, stride, offset).reshape(-1).numpy()


def _views_of(X, views):
    """`LawSums`' ``stacked`` of the rows of X: parameter k's view of every row at once,
    (rows, *shape), ``views[k]`` its (size, stride, offset) in a row; made once."""
    stacked = tuple(X.as_strided((X.shape[0], *size), (X.stride(0), *stride), X.storage_offset() + offset)
                    for size, stride, offset in views)
    return stacked.__getitem__


def _summing(spans: list, columns: int):
    """The sparse matrix whose row k sums the entries in ``spans[k]`` (a slice)."""
    rows = np.concatenate([np.full(r.stop - r.start, k) for k, r in enumerate(spans)] or [np.zeros(0, int)])
    cols = np.concatenate([np.arange(r.start, r.stop) for r in spans] or [np.zeros(0, int)])
    return scipy.sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(spans), columns))

