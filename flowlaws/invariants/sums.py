"""Every law's per-unit sums of one step, from one reduction per parameter axis.

A unit law's component i is sum_v alpha_v <a_v[i], b_v[i]> over its slices v (a layer
law's, the sum over i; a linear law's, sum_v alpha_v sum b_v[i]). A step (theta T, its change
D, the predicted rest R, the gradient G: `flowlaws.torch.LawMonitor`) needs six such sums
per slice, its CHANNELS:

    quadratic law:  <T, D - R>, <T, R>, <D, D>, <T, T>, <R, R>, <G, G>
    linear law:     sum (D - R), sum R, sum |D|, sum |T|, sum |R|, sum |G|

Rather than reduce slice by slice (hundreds of small reductions a step), one sparse matrix
M (components x columns, entry alpha_v where column s belongs to unit i's slice v) gives
every law at once from a few columns of sums S (columns x CHANNELS, float64):

    Z = M S,  Z_abs = |M| S

A parameter's five operands come stacked, one (5, *shape) array (in the monitor, a
strided view of the step's one (5, N) array). A large parameter's columns are its
products summed in place (on its device, in its dtype), once over the axes none of its
slices keeps, then over each slice's other axes: two passes, the signed products (T times
D - R and R) and the magnitudes (D, T, R and G squared), a few operands at a time, or one
batched product of Gram matrices over a contiguous parameter's rows. A small
one's (fewer than SMALL entries) are its entries' products: all small parameters'
entries come as one segment, multiplied in one pass (the monitor's on the device, in the
parameters' dtype, like every product; each torch call costs microseconds: a model's
many biases and heads would otherwise cost more than its step), and summed by M in
float64 on the host. Arrays are numpy arrays or torch tensors; `LawSums.planned` chooses
a step's views and axes once for arrays that keep their places. A matrix law is registered by its
diagonal (its unit form): its norms bound its tolerance (its Grams are `Law.first` and
`Law.second`).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import scipy.sparse

from flowlaws.invariants.laws import within_blocks
from flowlaws.models.symmetry import View, centred, namespace

CHANNELS = 6
OPERANDS = ("D - R", "D", "T", "R", "G")  # a step's operands, in the order they are stacked
DR, DELTA, THETA, REST, GRAD = range(len(OPERANDS))
SIGNED = slice(0, 4, 3)  # D - R and R: channels 0 and 1 (against T, for a quadratic law)
MAGNITUDES = slice(1, 5)  # D, T, R and G: channels 2-5
CHUNK = 1 << 21  # entries of the largest temporary (16 MB in float64)
GRAM_ROW = 32  # the shortest row whose sums come from Gram matrices (`_grams`)
SMALL = 1 << 12


def kept_axes(view: View, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The axes a view's unit depends on: its own, every axis for units finer than it (a
    unit per entry: a top-1 router's weights), and for a grouped convolution's input axis
    the output axis too (unit g C_in/G + l holds group g's outputs only); a kernel's
    columns (`View.transposed`) every axis but the first."""
    if view.transposed:
        return tuple(range(1, len(shape)))
    if view.groups == 1:
        return (view.axis,) if view.units <= (view.span or shape[view.axis]) else tuple(range(len(shape)))
    return tuple(sorted((view.axis, 0 if view.axis else 1)))


def unit_of_slot(view: View, shape: tuple[int, ...]) -> np.ndarray:
    """For each entry of the sums over ``kept_axes(view)`` (row-major), its unit (the
    slicing of `View.rows`), or -1 for an entry of none (`View.span`: another branch's)."""
    if view.transposed:  # the sums over the first axis, row-major: entry i is unit i
        return np.arange(view.units)
    length = shape[view.axis]
    if view.groups == 1 and view.units > (view.span or length):
        # `View.rows`: the entries (of its range of the axis), unit axis first, in blocks of size / units
        size = int(np.prod(shape))
        unit = np.full(size, -1)
        block = np.moveaxis(np.arange(size).reshape(shape), view.axis, 0)
        block = block[view.offset:view.offset + view.span] if view.span else block
        moved, rows = block.ravel(), len(block)
        m = np.arange(moved.size)
        if view.interleaved:  # row r's entries in units / rows interleaved parts
            parts = view.units // rows
            unit[moved] = m // (moved.size // rows) * parts + m % (moved.size // rows) % parts
        else:
            unit[moved] = m // (moved.size // view.units)
        return unit
    if view.groups > 1:
        other = 0 if view.axis else 1
        outputs = shape[other] // view.groups
        l, o = np.meshgrid(np.arange(length), np.arange(shape[other]), indexing="ij")
        unit = (o // outputs) * length + l  # indexed (axis, other)
        return (unit if view.axis < other else unit.T).ravel()
    j = np.arange(length)
    if view.span:  # its own entries of the axis, in blocks; -1 elsewhere
        mine = (j >= view.offset) & (j < view.offset + view.span)
        return np.where(mine, (j - view.offset) // (view.span // view.units), -1)
    if length == view.units:
        return j
    return j % view.units if view.interleaved else j // (length // view.units)


class LawSums:
    """The CHANNELS sums of every law in ``laws`` (a model with parameter ``shapes``) at
    one step: `rows(law)` are its components in ``Z``, one per unit (`__call__`).
    ``views``: each parameter's (shape, strides, offset) in one vector, when `stacked` gives
    strided views of it: parameters of one shape and strides at evenly spaced offsets
    (heads, experts) are then summed as one batch."""

    def __init__(self, laws, shapes, small: int = SMALL, flat: dict | None = None, views: dict | None = None):
        self.shapes = tuple(tuple(s) for s in shapes)
        keeps: dict = {}  # (param, order) -> {kept axes: None}, in first-seen order
        for law in laws:
            for term in law.terms:
                k = term.view.param
                keeps.setdefault((k, law.order), {})[kept_axes(term.view, self.shapes[k])] = None
        if flat is None:  # the small parameters, end to end
            small_params = sorted({k for k, _ in keeps if int(np.prod(self.shapes[k])) < small})
            sizes = [int(np.prod(self.shapes[k])) for k in small_params]
            starts = np.cumsum([0, *sizes])
            flat = {k: np.arange(a, a + n) for k, a, n in zip(small_params, starts, sizes, strict=False)}
        self.positions = flat  # a parameter summed entry by entry: its entries' places in the segment
        self.length = max((int(p.max()) + 1 for p in flat.values() if p.size), default=0)
        self.reductions = []  # large parameters: (params, spacing, order, axes summed first, next per slice)
        self.flat: dict = {2: [], 1: []}  # the parameters summed entry by entry, per order
        alike: dict = {}  # (shape, strides, order, kept) -> [(offset, param)]: summed alike
        for (k, order), kept in keeps.items():
            if k in flat:
                self.flat[order].append(k)
                continue
            _, stride, offset = (views or {}).get(k, (None, None, k))
            alike.setdefault((self.shapes[k], stride, order, tuple(kept)), []).append(((offset,), k))
        columns, count = {}, 0  # (param, order, kept axes) -> first column
        for (shape, _, order, kept), members in alike.items():
            union = tuple(sorted({a for axes in kept for a in axes}))
            first = tuple(a for a in range(len(shape)) if a not in union)
            nexts = [tuple(union.index(a) for a in union if a not in axes) for axes in kept]
            # evenly spaced parameters are one view, but for a kernel of more than two axes (a
            # convolution's: torch reduces its mix of axes under a batch axis several times slower)
            runs = (_evenly_spaced(members) if views is not None and len(shape) <= 2 else
                    [((0,), [k]) for _, k in members])
            for (spacing,), params in runs:
                self.reductions.append((params, spacing, order, first, nexts))
                for axes in kept:
                    slots = int(np.prod([shape[a] for a in axes]))
                    for b, k in enumerate(params):  # a batch's sums come parameter by parameter
                        columns[k, order, axes] = count + b * slots
                    count += len(params) * slots
        segment = {}  # order -> the first column of its segment's sums
        for order, params in self.flat.items():
            if params:
                segment[order] = count
                count += self.length
        # where each sum lands (`flowlaws.torch.kernel` writes them): (param, order, kept axes) -> its
        # first column, and order -> the first column of the segment's entries
        self.placed, self.segment_start = columns, segment
        self._rows: dict = {}  # (terms, order) -> slice of components
        entries: list = []  # (components, columns, alpha)
        start = 0
        for law in laws:
            key = (law.terms, law.order)
            if key in self._rows:
                continue
            for term in law.terms:
                view, shape = term.view, self.shapes[term.view.param]
                unit = unit_of_slot(view, shape)
                if view.param in flat:  # one column per entry, at its place in the segment: its slot's unit
                    unit = unit[_slot_of_entry(shape, kept_axes(view, shape))]
                    column = segment[law.order] + flat[view.param]
                else:
                    column = columns[view.param, law.order, kept_axes(view, shape)] + np.arange(unit.size)
                mine = unit >= 0
                entries.append((start + unit[mine], column[mine], np.full(int(mine.sum()), float(term.weight))))
            units = max(t.view.units for t in law.terms)  # (a layer law's shared slice is one unit)
            self._rows[key] = slice(start, start + units)
            start += units
        components = start
        rows = cols = alpha = np.zeros(0)
        if entries:
            rows, cols, alpha = (np.concatenate(x) for x in zip(*entries, strict=True))
        self.M = scipy.sparse.csr_matrix((alpha, (rows, cols)), shape=(components, count))
        self.both = scipy.sparse.vstack([self.M, abs(self.M)], format="csr")  # M over |M|: one product a step
        self.order = np.zeros(components, int)
        for (_, order), rows_ in self._rows.items():
            self.order[rows_] = order

    def rows(self, law) -> slice:
        """The components of ``law`` (of its unit form for a layer or matrix law)."""
        return self._rows[law.terms, law.order]

    def __call__(self, stacked, segment=None, formed=None) -> tuple[np.ndarray, np.ndarray]:
        """(Z, Z_abs), each components x CHANNELS float64, from the step's operands
        (`columns`)."""
        return self.combine(self.columns(stacked, segment, formed))

    def columns(self, stacked, segment=None, formed=None, out=None):
        """The columns of sums S (columns x CHANNELS, float64 numpy) of one step's operands:
        ``stacked(k)`` is parameter k's five (`OPERANDS`) as one (5, *shape) array (`stack`),
        ``segment`` the (5, length) operands of the parameters summed entry by entry, each
        entry at its `positions` (default: those parameters' entries end to end, from
        ``stacked``, on the host). ``formed``: (a quadratic law's CHANNELS products already
        formed, as ``stacked`` gives operands; those of the segment, (CHANNELS, length)):
        each quadratic sum is then a view's reduction (`products`). ``out``: a torch
        (CHANNELS, columns) tensor to write S transposed into instead, in one call, on the
        operands' device and in their dtype (nothing copied to the host)."""
        return self.planned(stacked, segment, formed)(out)

    def planned(self, stacked, segment=None, formed=None):
        """`columns` as a call ``write(out=None)``, planned once for arrays that keep their
        places while their values change (the monitor's kept buffer): each call makes the
        reductions alone, their views and axes chosen here (a torch call costs
        microseconds, and choosing them as much again)."""
        calls, gather = [], None
        for params, spacing, order, first, nexts in self.reductions:
            ready = order == 2 and formed is not None
            Y, first, nexts = _batched(formed[0] if ready else stacked, params, spacing, first, nexts)
            calls.append(_reduced(namespace(Y), lambda Y=Y: Y, first, nexts, None) if ready else
                         _sums(Y, order, first, nexts))
        for order, params in self.flat.items():
            if not params:
                continue
            if order == 2 and formed is not None:
                calls.append(lambda entries=formed[1]: [entries])
                continue
            if segment is None:  # the small parameters' entries, gathered on the host at each call
                segment = np.zeros((len(OPERANDS), self.length))
                gather = functools.partial(_gathered, stacked, sorted(self.positions), segment)
            calls.append(_sums(segment, order, (), [()]))

        def write(out=None):
            if gather is not None:
                gather()
            parts = [part.reshape(CHANNELS, -1) for call in calls for part in call()]
            if out is not None:
                return namespace(out).cat(parts, 1, out=out)
            return _on_host(parts).T
        return write

    def combine(self, S) -> tuple[np.ndarray, np.ndarray]:
        """(Z, Z_abs) = (M S, |M| S) of columns S (`columns`), or of several steps' columns
        stacked on axis 1 (columns, steps, CHANNELS): one sparse product for every step."""
        Z = (self.both @ S.reshape(len(S), -1)).reshape(-1, *S.shape[1:])
        return Z[:len(self.order)], Z[len(self.order):]


def products(X, out, views: tuple | None = None):
    """A quadratic law's CHANNELS products of the step's rows X (`OPERANDS`, N) into
    ``out`` (CHANNELS, N): T (D - R), T R, D^2, T^2, R^2, G^2, in two passes. ``views``:
    `product_views` of X and out, made once for arrays kept between steps (a view costs
    a torch call)."""
    theta, signed, magnitudes, out_signed, out_magnitudes = views or product_views(X, out)
    xp = namespace(X)
    xp.multiply(theta, signed, out=out_signed)
    xp.multiply(magnitudes, magnitudes, out=out_magnitudes)
    return out


def product_views(X, out) -> tuple:
    """The views `products` reads and writes: T, (D - R, R), (D, T, R, G) of X, and the
    signed and magnitude channels of out."""
    return X[THETA], X[SIGNED], X[MAGNITUDES], out[:2], out[2:]


class MatrixForms:
    """Every matrix law's first-order change at one step, and its prediction at one entry,
    in a few batched products. Law l's slices are views P_v of the step's one (5, N)
    array of operands, and

        residual_l  = G + G^T,  G = sum_v alpha_v P_v(T) P_v(D - R)^T   (first(T, D - R))
        predicted_l[i, j] = sum_v alpha_v (T_i R_j + T_j R_i + D_i D_j)  (first(T, R) + Q(D))

    with T_i row i of P_v(T) (`Law.first`, `Law.second`; a blocked law's off-block entries
    0). Laws whose slices have the same shapes, strides and exponents, at offsets evenly
    spaced, are one batch: each slice is then one strided view over the batch (no copy)
    and each product one batched matmul; a slice no strides describe (a grouped
    convolution's) is gathered. A centred law's entry mixes every row (C . C): its whole
    prediction is formed. ``positions(k)``: parameter k's entries' places in the vector
    (row-major), on ``device``."""

    def __init__(self, laws, shapes, positions, device=None):
        import torch

        places = {k: positions(k).reshape(tuple(shapes[k])) for law in laws for k in law.params}
        alike: dict = {}  # signature -> [(each slice's start, (law, each slice's (units, r) places))]
        for law in laws:
            slices = [t.view.rows(places) for t in law.terms]
            strides = [affine_strides(rows) for rows in slices]
            strided = all(s is not None for s in strides)
            kinds = ((rows.shape, s, float(t.weight)) for rows, s, t in zip(slices, strides, law.terms, strict=True))
            alike.setdefault((law.centred, law.blocks, strided, *kinds), []).append(
                (tuple(int(rows[0, 0]) for rows in slices), (law, slices)))
        self.batches = []  # (laws, centred, blocks, [(exponent, (units, r), strides or None, offset or index)])
        for (plane, blocks, strided, *kinds), members in alike.items():
            for spacings, run in (_evenly_spaced(members) if strided else [(None, [m for _, m in members])]):
                views = []
                for v, (shape, strides, weight) in enumerate(kinds):
                    where = (int(run[0][1][v][0, 0]) if strided else
                             torch.as_tensor(np.stack([p[v] for _, p in run]).reshape(-1), device=device))
                    views.append((weight, shape, (spacings[v], *strides) if strided else None, where))
                self.batches.append(([law for law, _ in run], plane, blocks, views))
        self.longest = max((sum(shape[1] for _, shape, _, _ in views) for *_, views in self.batches), default=0)

    @staticmethod
    def _views(X, count: int, views) -> list:
        """(exponent, (5, count, units, r) view of X) for each slice of one batch of laws."""
        found = []
        for weight, shape, strides, where in views:
            V = (X.index_select(1, where).view(len(X), count, *shape) if strides is None else
                 X.as_strided((len(X), count, *shape), (X.stride(0), *strides), X.storage_offset() + where))
            found.append((weight, V))
        return found

    def __call__(self, X) -> dict:
        """id(law) -> its residual form, a (units, units) float64 array; keeps X for `predicted`."""
        self._X, found = X, {}
        for members, plane, blocks, views in self.batches:
            G = sum(weight * (V[THETA] @ V[DR].mT) for weight, V in self._views(X, len(members), views))
            for law, form in zip(members, to_host(G + G.mT), strict=True):
                form = within_blocks(np, form, blocks)
                found[id(law)] = centred(form) if plane else form
        return found

    def predicted(self, worst: dict) -> dict:
        """id(law) -> its prediction first(T, R) + Q(D) at the entry ``worst[id(law)]`` =
        (i, j) of the step `__call__` saw (at (0, 0) for a law ``worst`` leaves out)."""
        import torch

        found = {}
        for members, plane, blocks, views in self.batches:
            entries = [worst.get(id(law), (0, 0)) for law in members]
            rows = torch.as_tensor(entries)  # (laws, 2)
            every = torch.arange(len(members))[:, None]
            total: Any = 0.0
            for weight, V in self._views(self._X, len(members), views):
                if plane:  # C . C mixes every row: the whole form
                    H = V[THETA] @ V[REST].mT
                    total = total + weight * (H + H.mT + V[DELTA] @ V[DELTA].mT)
                    continue
                Y = V[:, every, rows]  # (5, laws, 2, r): rows i and j of each law's slice
                total = total + weight * (Y[:, :, 0].transpose(0, 1) @ Y[:, :, 1].permute(1, 2, 0))  # 5 x 5 Grams
            if not plane:  # T_i . R_j + R_i . T_j + D_i . D_j
                total = total[:, THETA, REST] + total[:, REST, THETA] + total[:, DELTA, DELTA]
            for law, value, (a, b) in zip(members, to_host(total), entries, strict=True):
                if plane:
                    found[id(law)] = float(centred(within_blocks(np, value, blocks))[a, b])
                else:
                    size = views[0][1][0] // blocks
                    found[id(law)] = float(value) if a // size == b // size else 0.0
        return found


def affine_strides(grid) -> tuple | None:
    """The strides s, each >= 0, with grid[idx] = grid[0, ..., 0] + sum_a idx_a s_a (places
    of entries that one strided view reads), else None."""
    if grid.size == 0:
        return (0,) * grid.ndim
    origin = grid.flat[0]
    strides = tuple(int(np.take(grid, 1, axis=a).flat[0] - origin) if n > 1 else 0 for a, n in enumerate(grid.shape))
    expected = origin + sum((s * np.arange(n)).reshape([n if b == a else 1 for b in range(grid.ndim)])
                            for a, (s, n) in enumerate(zip(strides, grid.shape, strict=True)))
    return strides if min(strides, default=0) >= 0 and np.array_equal(grid, expected) else None


def _evenly_spaced(members: list) -> list:
    """``members`` ((starts, item): starts a tuple of places) in runs whose starts advance
    by one positive spacing per place, as (spacings, items): each run is one strided view
    (a model's heads or experts, views of one torch parameter, and their laws)."""
    runs: list = []  # [spacings, last starts, items]
    for starts, item in sorted(members, key=lambda m: m[0]):
        if runs:
            spacings, last, items = runs[-1]
            step = tuple(s - a for s, a in zip(starts, last, strict=True))
            if all(x > 0 for x in step) and (len(items) == 1 or step == spacings):
                runs[-1] = [step, starts, [*items, item]]
                continue
        runs.append([(0,) * len(starts), starts, [item]])
    return [(spacings, items) for spacings, _, items in runs]


def _batched(stacked, params, spacing: int, first: tuple, nexts: list) -> tuple:
    """(``stacked`` of one parameter, or of a run of evenly spaced ones as one strided view
    (rows, batch, *shape), the axes ``first`` and ``nexts`` of that view: the batch axis
    kept, so its sums come parameter by parameter)."""
    Y = stacked(params[0])
    if len(params) == 1:
        return Y, first, nexts
    Y = Y.as_strided((len(Y), len(params), *Y.shape[1:]), (Y.stride(0), spacing, *Y.stride()[1:]),
                     Y.storage_offset())
    return Y, tuple(a + 1 for a in first), [tuple(a + 1 for a in away) for away in nexts]


def stack(T, DR, R, D, G):
    """`LawSums`' ``stacked`` from the operands as tuples in the model's layout (a G
    entry None counts as zero), stacked in `OPERANDS` order."""
    def stacked(k):
        xp = namespace(T[k])
        operands = [DR[k], D[k], T[k], R[k], 0 * T[k] if G[k] is None else G[k]]
        return np.stack(operands) if xp is np else xp.stack(operands)
    return stacked


def _slot_of_entry(shape: tuple[int, ...], axes: tuple[int, ...]) -> np.ndarray:
    """For each entry of an array of ``shape`` (row-major), its index among the sums over
    every axis but ``axes``."""
    coordinates = np.unravel_index(np.arange(int(np.prod(shape))), shape)
    return np.ravel_multi_index(tuple(coordinates[a] for a in axes), tuple(shape[a] for a in axes))


def _gathered(stacked, params: list, segment) -> None:
    """The operands of ``params`` (`LawSums`' small parameters) end to end, into ``segment``
    (5, length) on the host."""
    np.concatenate([to_host(stacked(k)).reshape(len(OPERANDS), -1) for k in params], 1, out=segment)


def _on_host(parts: list) -> np.ndarray:
    """``parts`` (numpy arrays or torch tensors, each CHANNELS x n) side by side on the host
    in float64, each run of torch tensors copied in one call."""
    joined: list = []
    for part in parts:
        if joined and not isinstance(part, np.ndarray) and isinstance(joined[-1], list):
            joined[-1].append(part)
        else:
            joined.append(part if isinstance(part, np.ndarray) else [part])
    host = [x if isinstance(x, np.ndarray) else to_host(x[0] if len(x) == 1 else namespace(x[0]).cat(x, 1))
            for x in joined]
    return np.concatenate(host, 1) if host else np.zeros((CHANNELS, 0))


def to_host(x) -> np.ndarray:
    """x as float64 numpy (a torch tensor copied from its device)."""
    return np.asarray(x, float) if isinstance(x, np.ndarray) else x.detach().cpu().double().numpy()


def _sums(Y, order: int, first: tuple[int, ...], nexts: list):
    """A call giving the CHANNELS sums of one parameter's stacked operands Y (5, *shape, in
    `OPERANDS` order), summed over its axes ``first``, then over each of ``nexts`` (axes of
    what remains); one (CHANNELS, slots) array for each. Two passes over Y: the signed
    products (T (D - R) and T R, or D - R and R themselves for a linear law) and the
    magnitudes (the squares, or absolute values, of D, T, R and G), a few operands at a
    time (`_chunked`); a quadratic law's sums over trailing axes of a contiguous torch
    parameter are read from the 5 x 5 Gram matrices of its rows instead, one batched
    product (`_grams`); where nothing is summed (each entry its own slot), the two in one
    call each."""
    xp = namespace(Y)
    size = Y[0].size if xp is np else Y[0].numel()
    theta, signed, magnitudes = Y[THETA], Y[SIGNED], Y[MAGNITUDES]
    if not first and nexts == [()] and 4 * size <= CHUNK:  # nothing summed: each entry's, in two calls
        return lambda: [xp.concatenate([theta * signed if order == 2 else signed, _powered(magnitudes, order)])]
    by_gram = {v: _grams(Y, len(away)) for v, away in enumerate(nexts) if _gram_fits(xp, Y, order, first, away)}
    others = [away for v, away in enumerate(nexts) if v not in by_gram]
    if others:
        def signs_of(rows):
            part = signed[rows]
            return _reduced(xp, (lambda: theta * part) if order == 2 else lambda: part, first, others, None)

        def sizes_of(rows):
            part = magnitudes[rows]
            return _reduced(xp, lambda: part, first, others, 2 if order == 2 else 1)
        signs, sizes = _chunked(xp, 2, size, signs_of), _chunked(xp, 4, size, sizes_of)

    def sums():
        summed = iter([xp.concatenate([s.reshape(2, -1), m.reshape(4, -1)]) for s, m in
                       zip(signs(), sizes(), strict=True)] if others else [])
        return [by_gram[v]() if v in by_gram else next(summed) for v in range(len(nexts))]
    return sums


def _gram_fits(xp, Y, order: int, first: tuple[int, ...], away: tuple[int, ...]) -> bool:
    """Whether `_grams` gives these sums: a quadratic law's, over the trailing axes (at
    least GRAM_ROW entries, where a batched product beats the passes) of a contiguous
    torch parameter, with nothing summed first."""
    if xp is np or order != 2 or first or not away:
        return False
    ndim = Y.dim() - 1
    return (away == tuple(range(ndim - len(away), ndim)) and Y[0].is_contiguous()
            and int(np.prod(Y.shape[1 + ndim - len(away):])) >= GRAM_ROW)


def _grams(Y, trailing: int):
    """A call giving the CHANNELS sums over the last ``trailing`` axes of stacked operands
    Y, from each slot's 5 x 5 Gram matrix of the five operands' rows: one pass over Y."""
    rows = Y.reshape(len(Y), -1, int(np.prod(Y.shape[Y.dim() - trailing:]))).transpose(0, 1)

    def grams():
        products = rows @ rows.mT  # (slots, 5, 5)
        return namespace(Y).cat([products[:, THETA, SIGNED].T, products.diagonal(dim1=1, dim2=2).T[MAGNITUDES]])
    return grams


def _chunked(xp, rows: int, size: int, reduced):
    """A call giving ``reduced(rows)()`` of every operand, as many at a time as keep a
    temporary under CHUNK entries (a larger one is a fresh mapping from the system, paged
    in again on every call: twice the time), joined."""
    step = max(1, CHUNK // max(size, 1))
    calls = [reduced(slice(a, a + step)) for a in range(0, rows, step)]
    if len(calls) == 1:
        return calls[0]
    join = np.concatenate if xp is np else xp.cat
    return lambda: [join(p) for p in zip(*(call() for call in calls), strict=True)]


def _reduced(xp, source, first: tuple[int, ...], nexts: list, power: int | None):
    """A call giving |x|^power (x when power is None) summed over the parameter axes
    ``first``, then over each of ``nexts``, of x = ``source()`` (an array whose axis 0
    stacks operands, and stays; made once a call)."""
    like = source()
    if first:  # the rest of the sum over ``first``, y, is summed again
        summed = _summed(xp, like, first, power)
        keeps = [tuple(a + 1 for a in away) for away in nexts]
        return lambda: [y.sum(axes) if axes else y for y in [summed(source())] for axes in keeps]
    each = [_summed(xp, like, away, power) if away else lambda x: _powered(x, power) for away in nexts]
    return lambda: [summed(x) for x in [source()] for summed in each]


def _powered(x, power: int | None):
    return x if power is None else abs(x) if power == 1 else x * x


def _summed(xp, like, dims: tuple[int, ...], power: int | None):
    """A function giving the sum over the parameter axes ``dims`` of |x|^power, for arrays x
    laid out as ``like``. torch reduces a run of innermost axes, or of outermost ones (column
    sums), fast and a mix several times slower: a square over innermost axes is a 2-norm
    (nothing stored; torch's 1-norm is 5-10 times slower than |x| summed), and otherwise the
    outermost axes are summed first, then the rest of the smaller result."""
    axes = tuple(a + 1 for a in dims)
    if xp is np:
        return lambda x: _powered(x, power).sum(axes)
    memory = sorted(range(1, like.dim()), key=like.stride, reverse=True)  # outermost first
    if power == 2 and set(memory[len(memory) - len(axes):]) == set(axes):
        return lambda x: xp.linalg.vector_norm(x, ord=power, dim=axes) ** power
    outer = []
    for k in memory:
        if k not in axes:
            break
        outer.append(k)
    rest = tuple(k - sum(o < k for o in outer) for k in axes if k not in outer)

    def summed(x):
        x = _powered(x, power)
        x = x.sum(tuple(outer)) if outer else x
        return x.sum(rest) if rest else x
    return summed
