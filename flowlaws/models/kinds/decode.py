"""decode(S)[DECODER | ENCODER]: a Transformer's decoder reading an encoder's memory.

The input (T + S, d) is the target sequence x (its first T rows) and the source (its last
S rows). The encoder (any chain; empty: the identity) maps the source to the memory m,
which every ``cross_attention`` of the decoder reads as its keys and values; the block's
output is the decoder's, D(x; m) of shape (T, d'). ``nn.TransformerDecoderLayer(x,
memory)`` is ``decode(S)[residual[attention],layernorm,residual[cross_attention],...| ]``;
``nn.Transformer(src, tgt)`` gives its encoder layers as the encoder.

Numbers: the encoder's sweep, then the decoder's with m handed to its cross-attentions
(`cross_attention.reading`), which return dm on the reverse sweep for the encoder's.

Symmetry (docs/theory.md 6.3, cross-attention): the decoder's walks are a chain's, and a
walk that leaves the decoder open goes on after the block (`Site.then`). A walk that
leaves the encoder open scales the memory's features, which every cross-attention absorbs
in the rows of its Wk and Wv (`MemoryReaders`): the encoder's last rows against every
Wk[i, :] and Wv[i, :] (a LayerNorm's gain and bias against them in ``nn.Transformer``). A
scaling of the input's features reaches both: the decoder walks x's, the memory's closes
as above.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np
from hypothesis import strategies as st

from flowlaws.errors import InvalidArgument
from flowlaws.models.chain import Chain, chain
from flowlaws.models.kinds.cross_attention import CrossAttention, reading
from flowlaws.models.kinds.dense import Dense
from flowlaws.models.kinds.fork import Fork
from flowlaws.models.kinds.layernorm import LayerNorm
from flowlaws.models.kinds.residual import Residual
from flowlaws.models.layer import Layer, _number
from flowlaws.models.symmetry import Family, Path, Site, Term, rescalings, walk


@dataclass(frozen=True)
class Decode(Fork):
    """y = first(x; m), m = second(source): ``first`` the decoder, ``second`` the encoder,
    ``memory`` S the source's rows (the input's last)."""

    memory: int = 1
    kind: ClassVar[str] = "decode"
    example: ClassVar[str] = ("seq:4x3:decode(2)[residual[layernorm(affine),cross_attention(heads=1,dk=1,dv=1)] | ],"
                              "flatten,dense(1)")
    family: ClassVar[str] = "dec"
    ranks: ClassVar[tuple[int, ...]] = (2,)
    prefixes: ClassVar[tuple[str, str]] = ("", "enc.")
    other: ClassVar[str] = "encoder"

    def __post_init__(self):
        super().__post_init__()
        if not (isinstance(self.memory, int) and self.memory >= 1):
            raise InvalidArgument(f"decode: the memory's length S must be a positive integer, got {self.memory!r}")
        if not any(isinstance(x, CrossAttention) for layer in self.first for x in (layer, *layer.sublayers)):
            raise InvalidArgument("decode: its decoder reads no memory; give it a cross_attention(...)")

    # --- its spec: decode(S)[DECODER | ENCODER] ---------------------------------------------
    @classmethod
    def from_spec(cls, name, positional, keywords, flags, branches=None):
        values = [*positional, *keywords.values()]
        if not branches or len(branches) > 2 or len(values) != 1 or set(keywords) - {"memory"} or flags:
            raise InvalidArgument(f"{name} takes the memory's length and its branches: {cls.signature()}")
        return cls(*branches, memory=_number(values[0], "int"))

    @property
    def spec(self) -> str:
        return f"{self.kind}({self.memory})[{self.branch_specs(bar=True)}]"

    @classmethod
    def signature(cls) -> str:
        return "decode(S)[DECODER | ENCODER] (the encoder may be empty: the memory is the input's last S rows)"

    # --- structure --------------------------------------------------------------------------
    def chains(self, in_shape, prefix: str = "") -> tuple[Chain, Chain]:
        shape = tuple(int(n) for n in in_shape)
        if len(shape) != 2 or not 0 < self.memory < shape[0]:
            raise InvalidArgument(f"decode({self.memory}) needs a sequence of more than {self.memory} rows (T + S, d), "
                                  f"got shape {shape}")
        t = shape[0] - self.memory
        return (chain(self.first, (t, shape[1]), prefix + self.prefixes[0]),
                chain(self.second, (self.memory, shape[1]), prefix + self.prefixes[1]))

    def out_shape(self, in_shape):
        decoder, encoder = self.chains(in_shape)
        m = encoder.output_shape
        for site in readers(Site(decoder, 0, 0)):
            if len(m) != 2 or site.in_shape[1] != m[1]:
                raise InvalidArgument(f"decode: {site.name} reads {site.in_shape[1]} features and the memory has "
                                      f"shape {tuple(m)}; the encoder must end with (S', {site.in_shape[1]})")
        return decoder.output_shape

    def _rows(self, X):
        """(x, source): the input's first T rows and its last S."""
        t = X.shape[1] - self.memory
        return X[:, :t], X[:, t:]

    # --- numbers ------------------------------------------------------------------------
    def apply(self, p, X):
        (decoder, encoder), pd, pe = self._parts(p, X.shape[1:])
        x, source = self._rows(X)
        with reading(encoder.apply(pe, source, fused=False)):
            return decoder.apply(pd, x, fused=False)

    def run(self, p, X, frozen=None):
        (decoder, encoder), pd, pe = self._parts(p, X.shape[1:])
        x, source = self._rows(X)
        m, cache_e = encoder.forward(pe, source, None if frozen is None else frozen[1])
        with reading(m):
            y, cache_d = decoder.forward(pd, x, None if frozen is None else frozen[0])
        return y, (cache_d, cache_e, m)

    def pull(self, p, X, y, aux, dy, magnitude: bool = False):
        (decoder, encoder), pd, pe = self._parts(p, X.shape[1:])
        cache_d, cache_e, m = aux
        with reading(m) as memory:
            dx, gd = decoder.backward(pd, cache_d, dy, magnitude)
        dsource, ge = encoder.backward(pe, cache_e, np.zeros_like(m) if memory.grad is None else memory.grad,
                                       magnitude)
        return np.concatenate([dx, dsource], axis=1), (*gd, *ge)

    def bound_run(self, p, X, aux):
        (decoder, encoder), pd, pe = self._parts(p, X.shape[1:])
        cache_d, cache_e, _ = aux
        x, source = self._rows(X)
        m, bounds_e = encoder.bounds(pe, cache_e, source)
        with reading(m):
            y, bounds_d = decoder.bounds(pd, cache_d, x)
        return y, (bounds_d, bounds_e, m)

    # --- symmetry declarations ------------------------------------------------------------
    def inners(self, site) -> tuple[Site, Site]:
        """The decoder's first layer, and the encoder's, whose open walks go on to the
        memory's readers (`MemoryReaders`)."""
        decoder, encoder = self.chains(site.in_shape, f"{site.name}.")
        found = MemoryReaders(tuple(readers(Site(decoder, site.start, 0))))
        return (Site(decoder, site.start, 0),
                Site(encoder, site.start + len(decoder.specs), 0, Site(Chain((found,), encoder.output_shape), 0, 0)))

    def carry(self, path, site):
        """A scaling of the input's features: the decoder walks x's (open: the block's output
        carries it), the encoder and the readers close the memory's."""
        if path.span or path.interleaved or not path.on_axis(True, 2):
            return None
        decoder, encoder = self.inners(site)
        end = walk(path, decoder)
        memory = walk(Path(path.units, path.degree, last_axis=True), encoder)
        if end is None or memory is None or not memory.closed or memory.family is not Family.RESCALE or (
                end.closed and end.family is not Family.RESCALE):
            return None
        return replace(end, terms=end.terms + memory.terms, layers=end.layers + memory.layers,
                       linear=end.linear and memory.linear, uniform=end.uniform or memory.uniform,
                       blocks=math.lcm(end.blocks, memory.blocks), shifts=False,
                       classes=end.classes if memory.linear else 0)

    def centered(self, site, groups):
        return ()  # (the decoder's readers of a centred x are its own layers' to declare: not followed)

    def rescalings(self, site):
        """The decoder's rescalings, its open walks going on after the block; the encoder's,
        its open walks closing at the memory's readers."""
        decoder, encoder = self.inners(site)
        yield from rescalings(decoder.chain, decoder.offset, site.following())
        yield from rescalings(encoder.chain, encoder.offset, encoder.then)

    @classmethod
    def draw(cls, draw, shape, context):
        """A decoder of one cross-attention (alone, or a residual block's after a LayerNorm
        or none), then maybe a dense layer; an encoder empty, a dense layer, or a dense
        layer and the net's activation, keeping the features; the memory 1 row or more."""
        if len(shape) != 2 or shape[0] < 2:
            return None
        d = shape[1]
        attention = CrossAttention.drawn(draw, context)
        block = draw(st.sampled_from([(attention,), (Residual((attention,)),),
                                      (Residual((LayerNorm(affine=draw(st.booleans())), attention)),)]))
        decoder = (*block, *((Dense(draw(context.sizes), context.bias),) if draw(st.booleans()) else ()))
        # (an activation may zero a memory row, whose key a qknorm cannot normalize)
        encoder = draw(st.sampled_from([(), (Dense(d, context.bias),),
                                        *([] if attention.qknorm else [(Dense(d, context.bias), context.act)])]))
        return cls(decoder, encoder, draw(st.integers(1, shape[0] - 1)))


@dataclass(frozen=True)
class MemoryReaders(Layer):
    """Where a walk that leaves a decode block's encoder open goes on: every cross-attention
    of its decoder (``sites``) absorbs the memory's scaling in its Wk and Wv rows."""

    sites: tuple
    kind: ClassVar[str] = "memory"

    def carry(self, path, site):
        if path.span or path.interleaved or path.projective or not path.on_axis(True, 2) or not self.sites:
            return None
        terms = tuple(Term(view, -path.degree) for reader in self.sites
                      for view in reader.layer.memory_columns(reader, path.units))
        return replace(path, terms=path.terms + terms, layers=(*path.layers, *(r.name for r in self.sites)),
                       closed=True)


def readers(site: Site):
    """The sites of the cross-attentions that read the memory of the decode block whose
    decoder begins at ``site``: at any depth of its branches, a nested decode block's
    encoder included (it runs in this memory) and its decoder not (it reads its own)."""
    for position in range(len(site.chain.layers)):
        here = replace(site, position=position)
        layer = here.layer
        if isinstance(layer, CrossAttention):
            yield here
        elif isinstance(layer, Fork):
            inners = layer.inners(here)
            yield from (r for inner in (inners[1:] if isinstance(layer, Decode) else inners) for r in readers(inner))


def stray(layers) -> CrossAttention | None:
    """A cross-attention among ``layers`` (at any depth) that no decode block's decoder holds:
    it would read no memory."""
    for layer in layers:
        if isinstance(layer, CrossAttention):
            return layer
        for branch in (layer.second,) if isinstance(layer, Decode) else getattr(layer, "branches", ()):
            found = stray(branch)
            if found is not None:
                return found
    return None
