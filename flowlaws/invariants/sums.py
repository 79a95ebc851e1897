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

A large parameter's columns are its products summed in place (on its device, in its
dtype), once over the axes none of its slices keeps, then over each slice's other axes; a
small one's (fewer than SMALL entries) are its entries' products, all small parameters
concatenated and multiplied in one pass in float64 on the host (each torch call costs
microseconds: a model's many biases and heads would otherwise cost more than its step).
Arrays are numpy arrays or torch tensors. A matrix law is registered by its diagonal (its
unit form): its norms bound its tolerance (its Grams are `Law.first` and `Law.second`).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse

from flowlaws.models.symmetry import View, namespace

CHANNELS = 6
QUADRATIC = ((0, 1), (0, 2), (3, 3), (0, 0), (2, 2), (4, 4))  # pairs of the operands (T, D - R, R, D, G)
LINEAR = ((1, False), (2, False), (3, True), (0, True), (2, True), (4, True))  # (operand, absolute value)
SMALL = 1 << 12


def kept_axes(view: View) -> tuple[int, ...]:
    """The axes a view's unit depends on: its own, and for a grouped convolution's input
    axis the output axis too (unit g C_in/G + l holds group g's outputs only)."""
    if view.groups == 1:
        return (view.axis,)
    return tuple(sorted((view.axis, 0 if view.axis else 1)))


def unit_of_slot(view: View, shape: tuple[int, ...]) -> np.ndarray:
    """For each entry of the sums over ``kept_axes(view)`` (row-major), its unit (the
    slicing of `View.rows`)."""
    length = shape[view.axis]
    if view.groups > 1:
        other = 0 if view.axis else 1
        outputs = shape[other] // view.groups
        l, o = np.meshgrid(np.arange(length), np.arange(shape[other]), indexing="ij")
        unit = (o // outputs) * length + l  # indexed (axis, other)
        return (unit if view.axis < other else unit.T).ravel()
    j = np.arange(length)
    if length == view.units:
        return j
    return j % view.units if view.interleaved else j // (length // view.units)


class LawSums:
    """The CHANNELS sums of every law in ``laws`` (a model with parameter ``shapes``) at
    one step: `rows(law)` are its components in ``Z``, one per unit (`__call__`)."""

    def __init__(self, laws, shapes, small: int = SMALL):
        self.shapes = tuple(tuple(s) for s in shapes)
        keeps: dict = {}  # (param, order) -> {kept axes: None}, in first-seen order
        for law in laws:
            for term in law.terms:
                keeps.setdefault((term.view.param, law.order), {})[kept_axes(term.view)] = None
        self.reductions = []  # a large parameter: (param, order, axes summed first, axes summed next per slice)
        self.flat: dict = {2: [], 1: []}  # the small parameters of each order, concatenated in this order
        columns, count = {}, 0  # (param, order, kept axes) -> first column
        for (k, order), kept in keeps.items():
            if int(np.prod(self.shapes[k])) < small:
                self.flat[order].append(k)
                continue
            union = tuple(sorted({a for axes in kept for a in axes}))
            first = tuple(a for a in range(len(self.shapes[k])) if a not in union)
            self.reductions.append((k, order, first,
                                    [tuple(union.index(a) for a in union if a not in axes) for axes in kept]))
            for axes in kept:
                columns[k, order, axes] = count
                count += int(np.prod([self.shapes[k][a] for a in axes]))
        for order, params in self.flat.items():
            for k in params:
                for axes in keeps[k, order]:
                    columns[k, order, axes] = count
                count += int(np.prod(self.shapes[k]))
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
                if view.param in self.flat[law.order]:  # one column per entry: its slot's unit
                    unit = unit[_slot_of_entry(shape, kept_axes(view))]
                column = columns[view.param, law.order, kept_axes(view)]
                entries.append((start + unit, column + np.arange(unit.size), np.full(unit.size, float(term.weight))))
            units = max(t.view.units for t in law.terms)  # (a layer law's shared slice is one unit)
            self._rows[key] = slice(start, start + units)
            start += units
        components = start
        rows = cols = alpha = np.zeros(0)
        if entries:
            rows, cols, alpha = (np.concatenate(x) for x in zip(*entries, strict=True))
        self.M = scipy.sparse.csr_matrix((alpha, (rows, cols)), shape=(components, count))
        self.absM = scipy.sparse.csr_matrix((np.abs(alpha), (rows, cols)), shape=(components, count))
        self.order = np.zeros(components, int)
        for (_, order), rows_ in self._rows.items():
            self.order[rows_] = order

    def rows(self, law) -> slice:
        """The components of ``law`` (of its unit form for a layer or matrix law)."""
        return self._rows[law.terms, law.order]

    def __call__(self, T, DR, R, D, G) -> tuple[np.ndarray, np.ndarray]:
        """(Z, Z_abs), each components x CHANNELS float64, from the step's operands (tuples
        in the model's layout; a G entry None counts as zero)."""
        operands = (T, DR, R, D, G)
        parts = [_host(part) for k, order, first, nexts in self.reductions
                 for part in _sums(tuple(x[k] for x in operands), order, first, nexts)]
        parts += [_sums(tuple(_flat(x, params) for x in operands), order, (), [()])[0]
                  for order, params in self.flat.items() if params]
        S = np.concatenate(parts, 1) if parts else np.zeros((CHANNELS, 0))
        return np.asarray(self.M @ S.T), np.asarray(self.absM @ S.T)


def _slot_of_entry(shape: tuple[int, ...], axes: tuple[int, ...]) -> np.ndarray:
    """For each entry of an array of ``shape`` (row-major), its index among the sums over
    every axis but ``axes``."""
    coordinates = np.unravel_index(np.arange(int(np.prod(shape))), shape)
    return np.ravel_multi_index(tuple(coordinates[a] for a in axes), tuple(shape[a] for a in axes))


def _host(x) -> np.ndarray:
    """x as float64 numpy (a torch tensor copied from its device)."""
    return np.asarray(x, float) if isinstance(x, np.ndarray) else x.detach().cpu().double().numpy()


def _flat(arrays, params):
    """The entries of ``arrays[k]`` for k in ``params``, concatenated on the host in float64
    (None if any is None)."""
    chosen = [arrays[k] for k in params]
    if any(x is None for x in chosen):
        return None
    xp, flat = namespace(chosen[0]), [x.reshape(-1) for x in chosen]
    return _host(xp.concatenate(flat) if xp is np else xp.cat(flat))


def _sums(operands, order: int, first: tuple[int, ...], nexts: list) -> list:
    """The CHANNELS sums of one parameter's ``operands`` (T, D - R, R, D, G): summed over
    the axes ``first``, then over each of ``nexts``; one (CHANNELS, slots) array for each."""
    xp = namespace(operands[0])
    if order == 2:
        channels = [_reduced(xp, operands[a], operands[b], first, nexts) for a, b in QUADRATIC]
    else:
        channels = [_reduced(xp, None if operands[a] is None else abs(operands[a]) if absolute else operands[a],
                             None, first, nexts) for a, absolute in LINEAR]
    present: list[list] = [c for c in channels if c is not None]
    if len(present) < CHANNELS:  # no gradient term: its channel is 0
        zero = [0 * z for z in present[0]]
        present = [zero if c is None else c for c in channels]
    return [xp.stack([c[v] for c in present]).reshape(CHANNELS, -1) for v in range(len(nexts))]


def _reduced(xp, a, b, first: tuple[int, ...], nexts: list) -> list | None:
    """a b (a alone when b is None) summed over ``first``, then over each of ``nexts``
    (None for a missing operand)."""
    if a is None:
        return None
    if first:
        x = _summed(xp, a, b, first)
        return [x.sum(away) if away else x for away in nexts]
    return [_summed(xp, a, b, away) if away else a if b is None else a * b for away in nexts]


def _summed(xp, a, b, dims: tuple[int, ...]):
    """sum over ``dims`` of a b (a alone when b is None). torch reduces a run of innermost
    axes, or of outermost ones (column sums), fast and a mix several times slower: a
    square over innermost axes is a norm (no product stored), and otherwise the outermost
    axes are summed first, then the rest of the smaller result."""
    memory = [] if xp is np else sorted(range(a.dim()), key=lambda k: a.stride(k), reverse=True)  # outermost first
    if a is b and memory and set(memory[len(memory) - len(dims):]) == set(dims):
        return xp.linalg.vector_norm(a, dim=dims) ** 2
    x = a if b is None else a * b
    if xp is np:
        return x.sum(dims)
    outer = []
    for k in memory:
        if k not in dims:
            break
        outer.append(k)
    rest = tuple(k - sum(o < k for o in outer) for k in dims if k not in outer)
    x = x.sum(tuple(outer)) if outer else x
    return x.sum(rest) if rest else x
