"""A fork: the input goes down two branches (chains of layers) whose outputs are joined.

The shared code of the composite kinds (`residual` joins by a sum, `gated` by an
elementwise product): shapes, parameter names, the sweeps over both branches, the
patterns, and the walks of a scaling into each branch. A branch may be empty (the
identity: ``residual[BLOCK]`` keeps x as its shortcut).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, ClassVar

from flowlaws.errors import InvalidArgument
from flowlaws.models.chain import Chain, chain
from flowlaws.models.layer import Layer
from flowlaws.models.symmetry import Path, Site, centred_reader, shift_fate, unfollowed, walk


@dataclass(frozen=True)
class Fork(Layer):
    """y = join(A(x), B(x)) for two branches A (``first``) and B (``second``)."""

    first: tuple
    second: tuple = ()
    prefixes: ClassVar[tuple[str, str]] = ("", "skip.")
    other: ClassVar[str] = "shortcut"  # what the second branch is called (empty: x itself)
    composite: ClassVar[bool] = True  # of each branch's parameter names

    def __post_init__(self):
        object.__setattr__(self, "first", tuple(self.first))
        object.__setattr__(self, "second", tuple(self.second))
        if not self.first:
            raise InvalidArgument(f"{self.kind}: its first branch is empty; give it at least one layer")

    # --- its spec: KIND[A] or KIND[A | B] ------------------------------------------------
    @classmethod
    def from_spec(cls, name, positional, keywords, flags, branches=None):
        if not branches or len(branches) > 2 or positional or keywords or flags:
            raise InvalidArgument(f"{name} takes one or two branches of layers: {cls.signature()}")
        return cls(*branches)

    @property
    def spec(self) -> str:
        return f"{self.kind}[{self.branch_specs(bar=False)}]"

    def branch_specs(self, bar: bool) -> str:
        """Its branches as a spec writes them: A | B, or A alone where the second is empty and
        not ``bar`` (a kind whose empty branch means the identity writes the bar)."""
        second = f" | {','.join(layer.spec for layer in self.second)}" if bar or self.second else ""
        return ",".join(layer.spec for layer in self.first) + second

    @classmethod
    def signature(cls) -> str:
        return f"{cls.kind}[LAYERS | LAYERS]"

    # --- the join (each composite kind defines it) ------------------------------------
    def join(self, a, b):
        raise NotImplementedError

    def split(self, dy, a, b):
        """(dL/da, dL/db) from dL/dy."""
        raise NotImplementedError

    # --- structure ----------------------------------------------------------------------
    @property
    def branches(self) -> tuple[tuple, tuple]:
        return (self.first, self.second)

    def chains(self, in_shape, prefix: str = "") -> tuple[Chain, Chain]:
        shape = tuple(int(n) for n in in_shape)
        return tuple(chain(branch, shape, prefix + p)  # type: ignore[return-value]
                     for branch, p in zip(self.branches, self.prefixes, strict=True))

    def inner_specs(self, in_shape, prefix: str) -> list:
        return [spec for c in self.chains(in_shape, prefix) for spec in c.specs]

    def out_shape(self, in_shape):
        a, b = (c.output_shape for c in self.chains(in_shape))
        if tuple(a) == tuple(b):
            return a
        if not self.second:
            raise InvalidArgument(f"{self.kind}: the block maps shape {tuple(in_shape)} to {tuple(a)}; without "
                                  f"a {self.other} it must keep the input shape (or give it one: "
                                  f"{self.kind}[BLOCK | {self.other.upper()}])")
        raise InvalidArgument(f"{self.kind}: its branches map shape {tuple(in_shape)} to {tuple(a)} and "
                              f"{tuple(b)}; both must give the same shape")

    @property
    def sublayers(self) -> tuple:
        return tuple(x for branch in self.branches for layer in branch for x in (layer, *layer.sublayers))

    def mapped(self, f) -> Layer:
        return replace(self, **{name: tuple(layer.mapped(f) for layer in branch)
                                for name, branch in zip(("first", "second"), self.branches, strict=True)})

    def _parts(self, p, x_shape):
        chains = self.chains(x_shape)
        n = len(chains[0].specs)
        return chains, tuple(p[:n]), tuple(p[n:])

    # --- numbers ------------------------------------------------------------------------
    def apply(self, p, x):
        (ca, cb), pa, pb = self._parts(p, x.shape[1:])
        return self.join(ca.apply(pa, x, fused=False), cb.apply(pb, x, fused=False))

    def run(self, p, x, frozen=None):
        (ca, cb), pa, pb = self._parts(p, x.shape[1:])
        a, cache_a = ca.forward(pa, x, None if frozen is None else frozen[0])
        b, cache_b = cb.forward(pb, x, None if frozen is None else frozen[1])
        return self.join(a, b), (cache_a, cache_b, a, b)

    def pull(self, p, x, y, aux, dy, magnitude: bool = False):
        (ca, cb), pa, pb = self._parts(p, x.shape[1:])
        cache_a, cache_b, a, b = aux
        da, db = self.split(dy, a, b)
        dxa, ga = ca.backward(pa, cache_a, da, magnitude)
        dxb, gb = cb.backward(pb, cache_b, db, magnitude)
        return dxa + dxb, (*ga, *gb)

    def freeze(self, x, y, aux):
        chains = self.chains(x.shape[1:])
        return tuple(c.pattern(cache) for c, cache in zip(chains, aux[:2], strict=True))

    def nested(self, x, aux):
        return tuple((c.layers, cache) for c, cache in zip(self.chains(x.shape[1:]), aux[:2], strict=True))

    def bound_run(self, p, x, aux):
        (ca, cb), pa, pb = self._parts(p, x.shape[1:])
        a, cache_a = ca.bounds(pa, aux[0], x)
        b, cache_b = cb.bounds(pb, aux[1], x)
        return self.join(a, b), (cache_a, cache_b, a, b)

    def vjp(self, p, x, y, dy):
        """For the autograd primitive; the numpy sweeps use `run` and `pull`."""
        _, aux = self.run(p, x)
        return self.pull(p, x, y, aux, dy)

    # --- symmetry: the walks into each branch --------------------------------------------
    def inners(self, site) -> tuple[Site, Site]:
        """Where each branch's first layer sits (its parameters after the first branch's)."""
        ca, cb = self.chains(site.in_shape, f"{site.name}.")
        return Site(ca, site.start, 0), Site(cb, site.start + len(ca.specs), 0)

    def rows_on_last_axis(self, site) -> bool:
        """Whether a branch's last weight layer scales its output on the last axis."""
        found = [self.emitter(inner) for inner in self.inners(site) if inner.chain.layers]
        return any(f is not None and f[0].layer.rows_on_last_axis(f[0]) for f in found)

    def centered(self, site, groups):
        """Each branch reads the block's input: the sums its first reader keeps (a branch
        that reads a centred sample through layers that keep it centred)."""
        for inner in self.inners(site):
            reader, count = centred_reader(inner, groups)
            if reader is not None:
                yield from reader.layer.centered(reader, count)

    def branch_fate(self, site, kind: str, partial: str) -> str:
        """How a shift of x of ``kind`` (`symmetry.shift_fate`) passes the fork: each branch
        passes, removes or stops it. The join stops it when a branch does, passes or removes
        it when every branch does alike, and else (one passes it, one removes it) answers
        ``partial``: "passes" where the join keeps a shift of part of it (a sum, a
        concatenation's channels), "stops" for a shift uniform over the units, which a
        concatenation of a shifted and an unshifted part is not."""
        fates = {shift_fate(inner.chain, 0, inner.offset, kind)[0] for inner in self.inners(site)}
        if "stops" in fates:
            return "stops"
        return fates.pop() if len(fates) == 1 else partial

    @staticmethod
    def into(path: Path, inner: Site, ranged: bool = False) -> Path | None:
        """The walk of ``path`` (its layout, no terms yet) into one branch: open (no weight
        layer took it: the branch output carries it), closed, or None. An open walk that
        reaches the branch output as some of its units (`Path.span`: past a concatenation)
        is None unless the join places ``ranged`` walks (`Concat`)."""
        layout: dict[str, Any] = {"last_axis": path.last_axis, "interleaved": path.interleaved,
                                  "summed": path.summed, "offset": path.offset, "span": path.span}
        end = walk(Path(path.units, path.degree, **layout), inner)
        if end is not None and end.span and not end.closed and not ranged:
            unfollowed(inner, "one branch's units of a concatenation reach a join that does not place them")
            return None
        return end

    @staticmethod
    def last_emitter(inner: Site) -> Site | None:
        """The branch's last layer with rows (`Layer.emits`); None when it has none."""
        emitting = [i for i, layer in enumerate(inner.chain.layers) if layer.emits]
        return replace(inner, position=emitting[-1]) if emitting else None

    @staticmethod
    def emitter(inner: Site, units: int | None = None, layout: dict | None = None) -> tuple[Site, Path] | None:
        """The branch's last layer with rows, and the walk of a scaling of ``units`` (its
        own output units by default) from it to the branch's output (open: its degree
        there); None when there is none."""
        last = Fork.last_emitter(inner)
        if last is None:
            return None
        if units is None:
            units, layout = last.layer.units_out(last), {"last_axis": last.layer.rows_on_last_axis(last)}
        tail = walk(Path(units, **(layout or {})), last.following())
        if tail is not None and tail.span and not tail.closed:
            unfollowed(last, "its units reach the join as one branch's units of a concatenation")
            return None
        return None if tail is None or tail.closed else (last, tail)
