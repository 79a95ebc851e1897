"""Rescaling symmetries of a model, composed from what each layer declares.

A rescaling multiplies parameter slices by powers of c > 0, slice v by c^alpha_v,
and leaves the network function unchanged. Differentiating at c = 1 gives
sum_v alpha_v <theta_v, dL/dtheta_v> = 0 at every theta (the Euler identity), so
gradient flow conserves Q = sum_v alpha_v ||theta_v||^2 (docs/theory.md, sections 3
and 3.7). Where every boundary on the path is linear, any invertible mixing G of the
units is a symmetry too, and the matrix sum_v alpha_v P_v P_v^T is conserved (Thm 2.2).

One walker, many declarations (`flowlaws.models.layer.Layer`). A weight layer starts a `Path`: its rows (and bias)
scale by c, exponent +1. Every later layer says how the scaling passes through it
(``layer.carry(path, site)``): an activation of degree k multiplies the degree, pooling
and flatten pass it on per channel or block, a weight layer absorbs it (its input
columns scale by c^-degree: the path closes), a residual block sends it down both
branches (the block's first layer absorbs it, its last layer's rows re-emit it). A
layer that cannot carry a scaling (a non-homogeneous activation) ends the walk with
no symmetry. A new layer adds a declaration; `walk` never changes.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

import numpy as np


def _autograd_numpy():
    import autograd.numpy as anp

    return anp


def namespace(x):
    """The array module of ``x``: numpy, torch (a tensor, on its own device and dtype), or
    autograd's numpy (a box being differentiated)."""
    if isinstance(x, np.ndarray):
        return np
    if type(x).__module__.split(".")[0] == "torch":
        import torch

        return torch
    return _autograd_numpy()


class Family(StrEnum):
    """A symmetry's family: a rescaling (c in, 1/c out), a scale a normalization removes
    (every weight positive), an attention head's GL(k), or a translation (a linear law)."""

    RESCALE = "rescale"
    SCALE = "scale"
    GL = "gl"
    TRANSLATION = "translation"


class LawKind(StrEnum):
    """A law's form: per unit (a vector), summed over the units (a scalar), a matrix, or
    the matrix's sum 1^T G 1 (the units' common direction alone: one scalar)."""

    UNIT = "unit"
    LAYER = "layer"
    MATRIX = "matrix"
    SUMMED = "summed"


@dataclass(frozen=True)
class View:
    """Parameter ``param`` seen as a (units, rest) matrix: row i is unit i's slice.

    ``axis`` is the unit axis. When the axis is longer than ``units`` (a dense layer
    after Flatten), unit i owns the i-th contiguous block of it. ``span`` > 0: the units own
    the axis's entries ``offset`` .. ``offset + span - 1`` alone, in contiguous blocks (a
    reader of a concatenation: one branch's channels).
    """

    param: int
    name: str
    axis: int
    units: int
    size: int = 0  # entries of the whole parameter (0: unknown)
    interleaved: bool = False  # unit i owns entries i, i + units, ... of the axis (units > the axis's
    # length: row r's entries split in units / length interleaved parts, unit r units / length + g)
    ndim: int = 2  # axes of the whole parameter (a bias or a gain: 1)
    groups: int = 1  # a grouped convolution's input axis: unit i's slice is its group's rows only
    transposed: bool = False  # unit i is entry i of every row along axis 0 (a kernel's columns)
    offset: int = 0  # the first entry of the axis its units own
    span: int = 0  # how many entries of the axis its units own (0: all of them)

    def rows(self, params, flat: bool = True):
        """The (units, rest) matrix of this slice (numpy, autograd boxes, torch tensors);
        ``flat=False`` may leave the rest as several axes (no copy of a moved axis)."""
        p = params[self.param]
        xp = namespace(p)
        if self.transposed:  # (O, C, k, ...) -> (C k..., O): column i of the (O, rest) matrix
            return xp.reshape(p, (p.shape[0], -1)).T
        p = p if self.axis == 0 else xp.moveaxis(p, self.axis, 0)
        p = p[self.offset:self.offset + self.span] if self.span else p
        if not (flat or self.groups > 1 or self.interleaved) and p.shape[0] == self.units:
            return p  # (a unit owning a block of a longer axis needs the reshape)
        if self.groups > 1:  # (C_in / G, C_out, ...) -> (G, C_in / G, C_out / G, ...): unit g C_in / G + l
            rest = p.shape[2:]
            p = xp.swapaxes(xp.reshape(p, (p.shape[0], self.groups, -1, *rest)), 0, 1)
            return xp.reshape(p, (self.units, -1))
        if self.interleaved and self.units > p.shape[0]:  # each row's entries in units / rows interleaved parts
            return xp.reshape(xp.swapaxes(xp.reshape(p, (p.shape[0], -1, self.units // p.shape[0])), 1, 2),
                              (self.units, -1))
        if self.interleaved:  # a dense layer after flattening (T, d): feature j at t*d + j
            rest = p.shape[1:]
            return xp.reshape(xp.swapaxes(xp.reshape(p, (-1, self.units, *rest)), 0, 1), (self.units, -1))
        return xp.reshape(p, (self.units, -1))

    def describe(self, ndim: int, size: int, unit: str = "i") -> str:
        if self.transposed:
            return f"{self.name}[:,{unit}] ({unit} over each row's {self.units} entries)"
        if self.span and self.units > self.span:  # every entry of a range of the axis, each alone
            index = [f"{self.offset}:{self.offset + self.span}" if a == self.axis else ":" for a in range(ndim)]
            return f"{self.name}[{','.join(index)}] (entry {unit} of them)"
        size = self.span or size
        entry = f"{self.offset}+{unit}" if self.offset and size == self.units else unit
        index = [entry if a == self.axis else ":" for a in range(ndim)]
        parts = self.units // size
        block = ("" if size == self.units
                 else f" ({unit}'s group's rows, {unit} mod {size})" if self.groups > 1
                 else f" (row {unit} // {parts}, its entries {unit} mod {parts} + {parts} k)"
                 if self.interleaved and parts > 1
                 else f" (row {unit} // {parts}, its block {unit} mod {parts})" if parts > 1
                 else f" (every {self.units}th from {unit})" if self.interleaved
                 else f" (block {unit} of {size // self.units}{f' from {self.offset}' if self.offset else ''})")
        return f"{self.name}[{','.join(index)}]{block}"


@dataclass(frozen=True)
class Term:
    """One slice of a rescaling and its exponent: unit i's slice scales by c^weight."""

    view: View
    weight: float


@dataclass(frozen=True)
class Rescaling:
    """Units i = 0..units-1; for each, the slices ``terms`` scale by c^weight.

    ``linear``: every boundary on the path is linear (degree 1, no kink), so any
    invertible mixing of the units is a symmetry as well (a matrix law); ``blocks`` > 1:
    only a mixing within each of that many contiguous equal groups of units (a grouped
    convolution's), a block-diagonal matrix law.
    ``family``: "rescale" (c in, 1/c out), "scale" (a normalization removes the
    scale: every weight positive), "gl" (an attention head's GL(k) symmetry), or
    "translation" (``order`` 1: slices shift by c rather than scale, a linear law).
    ``uniform``: only one c for all units is a symmetry (a layer law, no unit law).
    ``batch_sum``: the gradient along the law vanishes only as a sum over the batch (a bias
    whose shift a BatchNorm removes) or the positions (a dead bias: a token-mixing one, an
    attention's key bias): each computed gradient entry is then round-off of that sum, far
    above round-off of the entry itself, and a zero-initialized one moves by it alone (the
    torch monitor leaves it unwatched: `flowlaws.torch.LawMonitor`).
    ``classes``: the units each read one shared value and pass one kink before their
    readers, so within a sign class of their weights any mixing is a symmetry of the
    activation region (`flowlaws.invariants.regions`): 1 class (an even kink, abs) or 2
    (by sign); 0 when not. ``summed``: only the units' common direction 1 scales (the
    mean direction of a centred stream): one law, 1^T G 1. ``projected``: the path passes
    a normalization as a linear map (`projected`), so only a mixing is a symmetry (a
    matrix law alone); ``centred``: one that centres, so only a mixing that fixes 1 is,
    and the law is C G C, C = d I - 1 1^T.
    """

    name: str
    units: int
    terms: tuple[Term, ...]
    linear: bool
    family: Family = Family.RESCALE
    order: int = 2
    uniform: bool = False
    batch_sum: bool = False
    classes: int = 0
    summed: bool = False
    blocks: int = 1
    projected: bool = False
    centred: bool = False

    @property
    def degree(self) -> float:
        """The exponent of the outgoing side, -min weight (k of ||in||^2 - k ||out||^2)."""
        return -min(t.weight for t in self.terms)


@dataclass(frozen=True)
class Path:
    """A scaling followed forward: here the units' values carry the factor c^degree.

    ``terms`` are the slices met so far; ``closed`` once a weight layer absorbed it
    (or a normalization removed it: ``family`` "scale"). ``layers`` names the layers
    it touched (for the rescaling's name). ``last_axis``: the units are the last axis
    of a (T, d) sample (attention features), so flattening interleaves them.
    ``shifts``: the path so far also commutes with shifting the units (no kink, no
    weight between), so a normalization turns the biases among its terms into a
    translation law. ``uniform``: a layer on the path needs one c for all units.
    ``scalar``: each emitted unit is w_i times one shared value (`Layer.shared_input`);
    ``classes``: after the path's one kink, the sign classes within which the units may
    still mix (`Rescaling.classes`; any later kink ends it). ``summed``: the scaling acts
    on the units' common direction 1 alone (`Rescaling.summed`). ``blocks``: a linear path
    may mix the units only within that many contiguous equal groups (`Rescaling.blocks`).
    ``projective``: the walk passes a per-sample normalization as a linear map where a later
    one removes its per-row factor (`projected`); ``centred`` once one that centres passed.
    ``span`` > 0: past a concatenation the units own the entries ``offset`` .. ``offset +
    span - 1`` of their axis alone, in contiguous blocks (one branch's channels); only layers
    that declare `Layer.ranged` carry such a path (`walk`), their views of it ranged alike
    (`View.span`).
    """

    units: int
    degree: float = 1.0
    linear: bool = True
    terms: tuple[Term, ...] = ()
    layers: tuple[str, ...] = ()
    closed: bool = False
    family: Family = Family.RESCALE
    last_axis: bool = False
    interleaved: bool = False
    shifts: bool = True
    uniform: bool = False
    per_sample: bool = False
    scales: bool = True  # a closing normalization removes the scale (eps = 0), not only shifts
    scalar: bool = False
    classes: int = 0
    summed: bool = False
    blocks: int = 1
    projective: bool = False
    centred: bool = False
    offset: int = 0
    span: int = 0

    def within(self, groups: int) -> Path:
        """Mixing allowed only within ``groups`` contiguous equal groups of the units as well:
        the common refinement of both partitions (lcm(blocks, groups) groups)."""
        return replace(self, blocks=math.lcm(self.blocks, groups))

    def times(self, degree: float, linear: bool, shifts: bool | None = None, classes: int = 0) -> Path:
        """Through a homogeneous map of the given degree (``shifts``: it commutes with
        a constant shift per unit; by default when it is linear of degree 1; ``classes``:
        a kink's sign classes for units fed by one value, `Activation.sign_classes`)."""
        shifts = (degree == 1 and linear) if shifts is None else shifts
        classes = self.classes if linear else classes if self.linear and self.scalar else 0
        return replace(self, degree=self.degree * degree, linear=self.linear and linear,
                       shifts=self.shifts and shifts, classes=classes)

    def on_axis(self, last: bool, ndim: int) -> bool:
        """Whether the units lie on a sample's last axis (``last``) or its first, for a
        sample of ``ndim`` axes (a flat sample's one axis is both; one unit is the whole
        sample, on either axis, unless it is one branch's range of a concatenation, `span`)."""
        return ndim == 1 or self.last_axis == last or (self.units == 1 and not self.span)

    def met(self, site: Site, views, weight: float) -> Path:
        """Slices ``views`` of the layer at ``site`` join the path with exponent ``weight``."""
        terms = tuple(Term(view, weight) for view in views)
        return replace(self, terms=self.terms + terms, layers=(*self.layers, site.name))

    def absorbed(self, site: Site) -> Path:
        """A weight layer takes the scaling on its input columns (exponent -degree)."""
        return replace(self.met(site, site.layer.columns(site, self), -self.degree), closed=True)

    def joined(self, walks) -> Path:
        """Closed where the walk into every branch of a fork closed: the terms of all; one c
        for every unit when any branch needs it (a LayerNorm inside one)."""
        return replace(self, closed=True, linear=self.linear and all(w.linear for w in walks),
                       classes=self.classes if all(w.linear for w in walks) else 0,
                       blocks=math.lcm(self.blocks, *(w.blocks for w in walks)),
                       uniform=self.uniform or any(w.uniform for w in walks),
                       terms=self.terms + tuple(t for w in walks for t in w.terms),
                       layers=self.layers + tuple(name for w in walks for name in w.layers))

    def emitted(self, site: Site, weight: float) -> Path:
        """The output-unit slices of the layer at ``site`` join with exponent ``weight``; a
        mixing of the units passes its rows only as they mix them (`Layer.mixes`: none for
        a diagonal; `Layer.row_blocks`: within a grouped convolution's groups)."""
        met = self.met(site, site.layer.rows(site, self.units, self.interleaved), weight)
        return replace(met, linear=met.linear and site.layer.mixes).within(site.layer.row_blocks)

    def normalized(self, site: Site, uniform: bool, per_sample: bool, scales: bool = True) -> Path:
        """A normalization removes the scale: the path closes as a scale law (every
        weight positive, no mixing of units); ``uniform`` when one c must serve all;
        ``per_sample`` when its groups lie within one sample (see `shifts`); ``scales``
        False when it removes only shifts (eps > 0: translation laws, no scale law)."""
        return replace(self, closed=True, family=Family.SCALE, linear=False, classes=0,
                       uniform=self.uniform or uniform, per_sample=per_sample, scales=scales,
                       layers=(*self.layers, site.name))


@dataclass(frozen=True)
class Site:
    """Where a layer sits: its chain, the global index of the chain's first param,
    and its position in the chain; ``then``: where a walk that reaches the chain's end
    open goes on (a decode block's decoder: after the block; its encoder: the memory's
    readers), or None (the end of a model, or a branch whose join the fork declares)."""

    chain: Any
    offset: int
    position: int
    then: Any = None

    @property
    def layer(self):
        return self.chain.layers[self.position]

    @property
    def name(self) -> str:
        return self.chain.names[self.position]

    @property
    def in_shape(self):
        return self.chain.shapes[self.position]

    @property
    def start(self) -> int:
        """Global index of the layer's first parameter."""
        return self.offset + self.chain.slots[self.position][0]

    def views(self, axis: int, units: int, own=None, interleaved: bool = False, groups: int = 1,
              ranged: Path | None = None) -> tuple[View, ...]:
        """The layer's own parameters (or those in ``own``) seen with unit axis ``axis``
        (``ranged``: the units of that path among its axis's, `Path.span`)."""
        start, stop = self.chain.slots[self.position]
        count = len(self.layer.param_shapes(self.in_shape))
        chosen = range(count) if own is None else own
        specs = self.chain.specs
        offset, span = (ranged.offset, ranged.span) if ranged is not None else (0, 0)
        return tuple(View(self.offset + start + k, specs[start + k][0], axis, units,
                          int(np.prod(specs[start + k][1])), interleaved, len(specs[start + k][1]), groups,
                          offset=offset, span=span)
                     for k in chosen if k < min(count, stop - start))

    def following(self) -> Site:
        return replace(self, position=self.position + 1)


_UNFOLLOWED: ContextVar[list | None] = ContextVar("unfollowed", default=None)


def unfollowed(site: Site, why: str) -> None:
    """Note a walk of one branch's range of a concatenation's units (`Path.span`) that ends
    here (its caller returns None) with no law though one may exist (docs/theory.md 3.13),
    for `unfollowed_ranges`. Ending it leaves a law out, never adds a false one."""
    noted = _UNFOLLOWED.get()
    if noted is not None:
        noted.append(f"{site.name}: {why}")
    return None


def unfollowed_ranges(model) -> list[str]:
    """Where ``model``'s walks of concatenated ranges end without a law (`unfollowed`): the
    nets laws-complete sets aside."""
    token = _UNFOLLOWED.set([])
    try:
        model.rescalings()
        return list(_UNFOLLOWED.get() or ())
    finally:
        _UNFOLLOWED.reset(token)


def walk(path: Path, site: Site) -> Path | None:
    """Carry ``path`` through the layers from ``site`` to the end of its chain;
    None when some layer cannot carry it (one branch's units of a concatenation reach only
    layers that declare they carry such a range, `Layer.ranged`). Where a layer passes the
    path but could absorb it whole with one c for every unit (`Layer.absorbs_whole`), that
    closed path is the answer if the passed one dies later."""
    chain, fallback = site.chain, None
    for position in range(site.position, len(chain.layers)):
        here = replace(site, position=position)
        if path.span and not here.layer.ranged:
            unfollowed(here, f"{here.layer.spec} does not carry one branch's units of a concatenation")
            return None
        fallback = fallback or here.layer.absorbs_whole(path, here)
        path = here.layer.carry(path, here)
        if path is None:
            return fallback
        if path.closed:
            return path
    if site.then is not None:  # the chain's end is not the walk's (`Site.then`)
        return walk(path, site.then) or fallback
    return path


def rescalings(chain, offset: int = 0, then: Site | None = None) -> Iterator[Rescaling]:
    """Every rescaling that starts at a layer of ``chain`` (or of a nested chain); walks that
    leave the chain open go on at ``then`` (`Site.then`)."""
    for position in range(len(chain.layers)):
        site = Site(chain, offset, position, then)
        yield from site.layer.rescalings(site)
    yield from stream_trades(chain, offset)


def stream_trades(chain, offset: int = 0) -> Iterator[Rescaling]:
    """Biases that write c 1 onto a stream that carries it unchanged from one to the next
    (`Layer.stream_shift`: pre-norm blocks, whose branch's LayerNorm removes it and whose
    skip carries it) trade it: a + c 1 and b - c 1 leave the stream after b as it was, so
    sum a - sum b is conserved (order 1). Only where the stream's shift is not removed
    later: there each bias has its own law, which implies the trade (docs/theory.md 6.1)."""
    last = None  # the bias whose c 1 the stream carries unchanged here
    for position in range(len(chain.layers)):
        site = Site(chain, offset, position)
        how, bias = site.layer.stream_shift(site)
        if how == "passes" and bias is not None and last is not None and last.size == bias.size and \
                shift_through(chain, position + 1, offset, "sample_shift")[0] != "removed":
            yield Rescaling(f"{last.name}~{bias.name}", bias.units, (Term(last, 1.0), Term(bias, -1.0)), False,
                            Family.TRANSLATION, order=1, uniform=True)
        last = bias if how in ("passes", "writes") and bias is not None else last if how == "passes" else None


def computes_identity(site: Site) -> bool:
    """Whether the layer at ``site`` computes the identity (read from its values at a probe:
    ``linear``, ``dropout(0)``): no parameters, and every entry of the probe unchanged."""
    size = 2 * int(np.prod(site.in_shape))  # both signs, no zero, all different
    probe = (np.where(np.arange(size) % 2, -1.0, 1.0) * (1 + np.arange(size) / size)).reshape(2, *site.in_shape)
    return not site.layer.param_shapes(site.in_shape) and np.array_equal(site.layer.apply((), probe), probe)


def from_weight_layer(site: Site, mixes: bool = True) -> Iterator[Rescaling]:
    """The rescaling of a layer's output units: its rows scale by c, walk forward.
    ``mixes``: the rows form a full matrix, so a linear path also allows mixing the units
    (a matrix law)."""
    start = emitted_by(site, mixes)
    end = walk(start, site.following())
    closed = tuple(close(start, end, site))
    yield from closed
    if start.linear and end is not None and end.family is Family.SCALE:
        yield from projected(start, site)
    # a shift uniform over the output's units may reach a layer that removes it where the
    # scaling does not (past pre-norm blocks, `Residual.sample_shift`: a token embedding),
    # or vary over positions too (a patch stem's kernel columns): the laws `close` lacks
    named = {r.name for r in closed}
    yield from (r for r in sample_shifts(site) if r.name not in named)


def emitted_by(site: Site, mixes: bool = True) -> Path:
    """The path a scaling of a weight layer's output units starts as: its rows by c."""
    return Path(site.layer.units_out(site), linear=mixes, last_axis=site.layer.rows_on_last_axis(site),
                scalar=site.layer.shared_input(site), blocks=site.layer.row_blocks).emitted(site, 1.0)


def projected(start: Path, site: Site) -> Iterator[Rescaling]:
    """A normalization of one sample's row, N(z) = C z / r(z) (C the centring, or I for
    RMSNorm), is linear up to its positive factor: N(G z) = G N(z) r(z) / r(G z) for any
    G that commutes with C (fixes 1). Where a later normalization removes a positive
    factor per row (`Layer.row_scale`), a mixing G of the rows that ``start`` emits passes
    N as G, and the reader's columns absorb G^-1: a matrix law, C G C when N centres
    (the centred plane's GL; docs/theory.md 7). The walk is ``start``'s once more, with
    such normalizations passed (`Path.projective`); it is taken only when the first walk
    closed at a normalization, which the second one either passes or stops at, so a
    rescaling that a weight layer closes has passed it."""
    end = walk(replace(start, projective=True), site.following())
    if end is not None and end.closed and end.linear and end.blocks == 1 and end.family is Family.RESCALE:
        yield Rescaling("/".join(end.layers), end.units, end.terms, True, projected=True, centred=end.centred)


def close(start: Path, end: Path | None, site: Site) -> Iterator[Rescaling]:
    """The laws of a scaling that starts as ``start`` (the rows that emit it) and ends as
    ``end`` after the layers that follow ``site``: a rescaling when a weight layer absorbs
    it; a scale law when a normalization removes it, and a translation law for the biases
    among its terms when nothing on the way stops a shift; when a later layer removes a
    shift constant over the batch (a BatchNorm), the emitting biases are conserved too."""
    if end is None or not end.closed:
        return
    name = "/".join(end.layers)
    kind = "feature_shift" if start.last_axis and len(site.chain.shapes[site.position + 1]) > 1 else "shift"
    remover = removes_shift(site, kind) if end.family is Family.RESCALE and end.shifts else None
    if remover:
        yield from shifts(f"{name}/{remover}", tuple(t.view for t in start.terms), end.units, False, False)
    if end.scales:
        yield Rescaling(name, end.units, end.terms, end.linear, end.family, uniform=end.uniform,
                        classes=0 if end.linear or end.family is not Family.RESCALE or end.blocks > 1 else end.classes,
                        blocks=end.blocks)
    if end.family is Family.SCALE and end.shifts:
        yield from shifts(name, tuple(t.view for t in end.terms), end.units, end.uniform, end.per_sample)


@dataclass(frozen=True)
class Centred:
    """The groups of a sample's flat entries that each sum to 0 (after a LayerNorm):
    ``count`` contiguous blocks, or (``interleaved``) entries g, g + count, g + 2 count, ...
    for group g (a LayerNorm's rows after the feature axis moves first)."""

    count: int
    interleaved: bool = False


def centred_reader(site: Site, groups: Centred) -> tuple[Site | None, Centred]:
    """The first layer from ``site`` on that does not keep its input's centred groups
    (`Layer.centred_layout`), and the centred groups that reach it; (None, groups) when
    every layer to the end of the chain keeps them."""
    chain, position = site.chain, site.position
    while position < len(chain.layers):
        kept = chain.layers[position].centred_layout(chain.shapes[position], groups)
        if kept is None:
            return replace(site, position=position), groups
        groups, position = kept, position + 1
    return None, groups


def removes_shift(site: Site, kind: str = "shift") -> str | None:
    """The name of the layer that removes a shift of the units at ``site``'s output, through
    the layers that pass one; None when a layer stops it first. ``kind`` "shift": constant
    over the batch, varying along the first axis (a bias's; ``layer.shift``), or
    "feature_shift" along the last (``layer.feature_shift``; `BATCH_SHIFTS`): its biases
    are then conserved one by one, even past a weight layer (a BatchNorm's beta read by a
    dense layer and a BatchNorm).
    "sample_shift": uniform over each sample's units (``layer.sample_shift``; a LayerNorm);
    "channel_shift": uniform over the first axis (``layer.channel_shift``; `SAMPLE_SHIFTS`).
    "row_scale": a positive factor per row of the last axis (``layer.row_scale``: what a
    LayerNorm's division leaves; a later LayerNorm at eps = 0 removes it)."""
    return shift_fate(site.chain, site.position + 1, site.offset, kind)[1]


SAMPLE_SHIFTS = ("sample_shift", "channel_shift")  # uniform over the last axis, or over the first
BATCH_SHIFTS = ("shift", "feature_shift")  # constant over the batch, varying along the first axis, or the last


def shift_fate(chain, start: int, offset: int, kind: str) -> tuple[str, str | None]:
    """How a shift (`removes_shift`'s ``kind``) entering ``chain``'s layer ``start`` fares
    through the chain: ("removed", the remover's name), ("stops", None), or ("passes",
    None) when every layer passes it (an empty chain, the identity, does) as the kind it
    came in as (a chain that transposes it stops it: added to the skip, it is neither)."""
    fate, remover, out = shift_through(chain, start, offset, kind)
    return ("stops", None) if fate == "passes" and out != kind else (fate, remover)


def shift_through(chain, start: int, offset: int, kind: str) -> tuple[str, str | None, str]:
    """`shift_fate`, and the kind the shift leaves the chain as: a layer that moves the
    axis it is uniform over answers the other kind (`MoveAxis`: channels last)."""
    for position in range(start, len(chain.layers)):
        here = Site(chain, offset, position)
        how = getattr(here.layer, kind)(here)
        if how in SAMPLE_SHIFTS + BATCH_SHIFTS:
            kind = how
        elif how != "passes":
            return how, here.name if how == "removed" else None, kind
    return "passes", None, kind


def sample_shifts(site: Site, after=None) -> Iterator[Rescaling]:
    """The translation laws of the layer at ``site`` whose output's shifts, uniform over
    its units per sample and position (`Layer.written_shifts`: a dense layer's
    W -> W + 1 a^T and b -> b + t 1 over its features, a convolution's over its channels),
    are removed later in its chain, or, given ``after``, pass the rest of its chain (a
    residual branch) to the remover ``after(kind)`` names (the shift's kind where the
    chain ends): column sums and bias sum (`shifts`); a bias entry alone where each unit's
    shift is free (not ``uniform``)."""
    for kind, rows, uniform in site.layer.written_shifts(site):
        fate, remover, kind = shift_through(site.chain, site.position + 1, site.offset, kind)
        if after is not None:  # a residual branch: the shift must leave it, for the block's remover
            remover = after(kind) if fate == "passes" else None
        if remover and rows and uniform:
            yield from shifts(f"{site.name}/{remover}", rows, rows[0].units, True, True, per_position=True)
        elif remover and rows:  # each unit's shift is free: each unit's slices sum to a law
            dead = all(v.size == v.units for v in rows)  # a unit of one entry: its gradient cancels (`batch_sum`)
            yield Rescaling(f"{site.name}/{remover}", rows[0].units, tuple(Term(v, 1.0) for v in rows), False,
                            Family.TRANSLATION, order=1, batch_sum=dead)


BIASES = (".b", ".beta", ".bo0")  # a bias of its rows: a dense layer's, a normalization's, attention's output


def shifts(name: str, rows, units: int, uniform: bool, per_sample: bool,
           per_position: bool = False) -> Iterator[Rescaling]:
    """Translation laws (order 1) of a layer whose output units (slices ``rows``) feed a
    map that ignores a constant shift of each unit (BatchNorm: per unit, over the batch),
    or of all units alike (``uniform``: LayerNorm, softmax). A bias shifts its unit; when
    the shift may differ per sample (``per_sample``), a weight matrix W -> W + 1 a^T
    shifts every unit by a^T x alike, so its column sums are conserved too (a view's
    ``ndim`` tells a weight matrix from gains, biases and kernels, which do not shift so,
    unless the shift may differ per position too (``per_position``): then a kernel's
    W[:, j] -> W[:, j] + a_j is one, and its columns' sums are conserved)."""
    biases = tuple(Term(v, 1.0) for v in rows if v.name.endswith(BIASES))
    if uniform and per_sample:
        for v in rows:
            if not v.name.endswith(BIASES) and (v.ndim == 2 or (v.ndim > 2 and per_position)):
                columns = (View(v.param, v.name, 1 - v.axis, v.size // v.units, v.size, v.interleaved, v.ndim)
                           if v.ndim == 2 else View(v.param, v.name, 0, v.size // v.units, v.size, ndim=v.ndim,
                                                    transposed=True))
                yield Rescaling(f"{name}.{v.name.rsplit('.', 1)[1]}", columns.units, (Term(columns, 1.0),),
                                False, Family.TRANSLATION, order=1)
    if biases:  # each unit's bias alone (not ``uniform``): its gradient is 0 as a sum over the batch or, removed
        # per sample (an InstanceNorm), over the positions; a uniform one's entries are each a true gradient
        yield Rescaling(f"{name}.{biases[0].view.name.rsplit('.', 1)[1]}" if uniform and per_sample else name,
                        units, biases, False, Family.TRANSLATION, order=1, uniform=uniform,
                        batch_sum=not (per_sample and uniform))


def centring(units: int, absolute: bool = False) -> np.ndarray:
    """C = d I - 1 1^T (d times the projection onto the plane orthogonal to 1: integer
    entries, so a centred law's coefficients stay exact); ``absolute``: |C|."""
    C = units * np.eye(units) - np.ones((units, units))
    return np.abs(C) if absolute else C


def centred(G, absolute: bool = False):
    """C G C with C = `centring` (|C| G |C| for ``absolute``): a square form on the centred
    plane, of numpy arrays, autograd boxes or torch tensors (on G's device, in its dtype)."""
    C = centring(G.shape[-1], absolute)
    xp = namespace(G)
    C = xp.as_tensor(C, dtype=G.dtype, device=G.device) if hasattr(xp, "as_tensor") else C
    return C @ G @ C


def parameter_count(model) -> int:
    """D, the number of a model's parameters (its `param_specs`' entries)."""
    return int(sum(np.prod(shape) for _, shape in model.param_specs))


def flatten(params) -> np.ndarray:
    """Params tuple -> one float64 vector (for integrators)."""
    return np.concatenate([p.reshape(-1) for p in params]) if params else np.zeros(0)


def flatten_rows(tuples) -> np.ndarray:
    """``np.stack([flatten(t) for t in tuples])`` (params tuples of one model), built one
    parameter at a time: a few large copies instead of one per tuple (400-step runs)."""
    arrays = list(zip(*tuples, strict=True))
    if not arrays:
        return np.zeros((len(tuples), 0))
    return np.concatenate([np.reshape(column, (len(tuples), -1)) for column in arrays], axis=1)


def unflatten(vector: np.ndarray, shapes) -> tuple[np.ndarray, ...]:
    """Inverse of `flatten` for the given shapes."""
    out, start = [], 0
    for shape in shapes:
        size = math.prod(shape)
        out.append(vector[start : start + size].reshape(shape))
        start += size
    return tuple(out)
