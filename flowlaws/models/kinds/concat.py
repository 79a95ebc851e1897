"""concat[A | B]: y = cat(A(x), B(x)) along the sample's first axis (channels, or a flat
sample's features): torch.cat([a, b], 1).

Either branch may be empty, the identity: ``concat[ | conv1d(4,3,padding=1),relu]`` is a
DenseNet layer, cat(x, f(x)); a U-Net's skip connection is ``concat[ | DOWN..., UP...]``
(its skip, then the upsampled path). Symmetry (docs/theory.md 3.13): the branches' outputs
are separate units of y. A scaling of the input units that every branch absorbs closes
here (the terms of all); one that a single branch carries reaches y as that branch's
units, a range of y's (`Path.span`), which only layers declaring `Layer.ranged` carry on
(a reader's columns of that range absorb it). A branch's last weight layer emits its
units past the join in the same way, as its own range of y's units.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import ClassVar

from hypothesis import strategies as st

from flowlaws.errors import InvalidArgument
from flowlaws.models.kinds.conv import Conv1d
from flowlaws.models.kinds.dense import Dense
from flowlaws.models.kinds.fork import Fork
from flowlaws.models.symmetry import (
    Family,
    Path,
    close,
    emitted_by,
    namespace,
    rescalings,
    unfollowed,
    walk,
)


@dataclass(frozen=True)
class Concat(Fork):
    """y = cat(first(x), second(x)) on the first sample axis; an empty branch is x."""

    kind: ClassVar[str] = "concat"
    example: ClassVar[str] = ("seq:2x5:conv1d(2,1,bias),relu,concat[ | conv1d(2,3,padding=1),relu],conv1d(2,1),"
                              "flatten,dense(1)")
    family: ClassVar[str] = "cat"
    ranks: ClassVar[tuple[int, ...]] = (1, 2)
    prefixes: ClassVar[tuple[str, str]] = ("a.", "b.")
    ranged: ClassVar[bool] = True

    def __post_init__(self):
        object.__setattr__(self, "first", tuple(self.first))
        object.__setattr__(self, "second", tuple(self.second))
        if not (self.first or self.second):
            raise InvalidArgument("concat: both branches are empty; give one at least one layer (concat[ | LAYERS] "
                                  "is cat(x, f(x)))")

    @property
    def spec(self) -> str:
        return f"{self.kind}[{self.branch_specs(bar=True)}]"

    @classmethod
    def signature(cls) -> str:
        return "concat[LAYERS | LAYERS] (either may be empty: the identity)"

    def out_shape(self, in_shape):
        a, b = (tuple(c.output_shape) for c in self.chains(in_shape))
        if a[1:] != b[1:]:
            raise InvalidArgument(f"concat: its branches map shape {tuple(in_shape)} to {a} and {b}; all but the "
                                  "first axis (the one joined) must agree")
        return (a[0] + b[0], *a[1:])

    def join(self, a, b):
        return namespace(a).concatenate([a, b], axis=1)

    def split(self, dy, a, b):
        return dy[:, :a.shape[1]], dy[:, a.shape[1]:]

    # --- symmetry declarations --------------------------------------------------------
    def _placed(self, w: Path, branch: int, site) -> Path | None:
        """An open walk at branch ``branch``'s output as a range of y's first axis: the
        entries its units own there (the whole axis, or its own range), moved past the
        branches before it; None for units interleaved or on another axis."""
        shapes = [c.output_shape for c in self.chains(site.in_shape)]
        if w.interleaved or (w.last_axis and len(shapes[0]) > 1):
            unfollowed(site, "units interleaved or on the last axis, not the one joined")
            return None
        before = sum(int(s[0]) for s in shapes[:branch])
        return replace(w, offset=before + w.offset, span=w.span or int(shapes[branch][0]))

    def carry(self, path, site):
        """Closed where every branch absorbs the scaling (the terms of all); carried on as
        one branch's range of y's units where that branch alone carries it (commuting with
        a shift of the units when every branch passes one: a shift some absorb goes on as
        their output's, `shift`)."""
        if (path.last_axis and len(site.in_shape) > 1) or path.projective:
            unfollowed(site, "units on the last axis, or a normalization's projection")
            return None
        found = [self.into(path, inner, ranged=True) for inner in self.inners(site)]
        walks = [w for w in found if w is not None]
        if len(walks) < len(found):
            return None
        open_ = [k for k, w in enumerate(walks) if not w.closed]
        if any(w.family is not Family.RESCALE for w in walks):
            unfollowed(site, "a branch's normalization removes the scaling")
            return None
        if not open_:
            return path.joined(walks)
        if len(open_) > 1:
            unfollowed(site, "two branches carry the units: two ranges of y")
            return None
        placed = self._placed(walks[open_[0]], open_[0], site)
        if placed is None:
            return None
        linear = path.linear and all(w.linear for w in walks)
        return replace(placed, terms=path.terms + tuple(t for w in walks for t in w.terms),
                       layers=path.layers + tuple(n for w in walks for n in w.layers),
                       linear=linear, shifts=path.shifts and placed.shifts and self.shift(site) != "stops",
                       classes=path.classes if linear else 0, uniform=path.uniform or any(w.uniform for w in walks),
                       blocks=math.lcm(path.blocks, *(w.blocks for w in walks)),
                       scalar=path.scalar, summed=False)

    def shift(self, site) -> str:
        return self.branch_fate(site, "shift", "passes")

    def feature_shift(self, site) -> str:
        return self.shift(site) if len(site.in_shape) == 1 else self.branch_fate(site, "feature_shift", "passes")

    def sample_shift(self, site) -> str:
        return self.branch_fate(site, "sample_shift", "stops")

    def channel_shift(self, site) -> str:
        return self.sample_shift(site) if len(site.in_shape) == 1 else self.branch_fate(site, "channel_shift", "stops")

    def rescalings(self, site):
        """Each branch's own rescalings, and the scalings that leave a branch open walked on
        past the join, each as its range of y's units (`open_paths`)."""
        for inner in self.inners(site):
            yield from rescalings(inner.chain, inner.offset)
        for start, placed in self.open_paths(site):
            yield from close(start, walk(placed, site.following()), site)

    def open_paths(self, site):
        """(start, path at y) of each scaling that starts in a branch and leaves it open,
        placed among y's units (`_open_ends`)."""
        for k, inner in enumerate(self.inners(site)):
            for start, tail in _open_ends(inner):
                placed = self._placed(tail, k, site)
                if placed is not None:
                    yield start, placed

    @classmethod
    def draw(cls, draw, shape, context):
        """cat(x, f(x)) (DenseNet), cat(f(x), x), or cat(f(x), g(x)) (an Inception module):
        f a weight layer and an activation (a convolution of kernel 1 or 3, padded to keep
        the positions), g a weight layer."""
        if len(shape) not in cls.ranks:
            return None
        conv = len(shape) == 2

        def weight(n):
            if conv:
                kernel = draw(st.sampled_from([1, 3]))
                return Conv1d(n, kernel, 1, kernel // 2, context.bias)
            return Dense(n, context.bias)

        f = (weight(draw(context.sizes)), context.act)
        form = draw(st.sampled_from(["identity first", "identity last", "two"]))
        if form == "two":
            return cls(f, (weight(draw(context.sizes)),))
        return cls((), f) if form == "identity first" else cls(f, ())


def _open_ends(inner):
    """(start, path at the branch's end) of each scaling that reaches the end of a branch
    open: its last weight layer's rows, and the scalings that leave a concatenation after
    it (nested, as torch.cat of three values converts)."""
    last = Fork.last_emitter(inner)
    begun = []  # (start, path, where its walk goes on)
    if last is not None:
        start = emitted_by(last, last.layer.mixes)
        begun.append((start, start, last.following()))
    for position in range(last.position + 1 if last is not None else 0, len(inner.chain.layers)):
        here = replace(inner, position=position)
        if isinstance(here.layer, Concat):
            begun += [(start, placed, here.following()) for start, placed in here.layer.open_paths(here)]
    for start, path, where in begun:
        tail = walk(path, where)
        if tail is not None and not tail.closed:
            yield start, tail
