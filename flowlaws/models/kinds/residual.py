"""residual[BLOCK] and residual[BLOCK | SHORTCUT]: y = BLOCK(x) + SHORTCUT(x).

The shortcut is the identity when omitted (a ResNet basic block), or any chain: a
strided 1x1 convolution and BatchNorm (a downsampling block), a pool. Symmetry
(docs/theory.md 3.7): a scaling of the input units must reach the sum with the same
factor on both branches. A branch with no weight layer carries it (the identity:
unchanged); a branch whose weight layers absorb it re-emits it by the rows of its
last weight layer; when both branches absorb it, the walk closes. The output units
of two weighted branches scale together: the rows of both last weight layers, walked
on past the sum (a rescaling that starts at the join); and two biases added at the sum
conserve their difference (b_A - b_B: shifting one by t and the other by -t leaves y),
a bias being any vector a branch's last layer adds per unit (a dense bias, a
normalization's beta, attention's output bias).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import ClassVar

from hypothesis import strategies as st

from flowlaws.models.kinds.batchnorm import BatchNorm
from flowlaws.models.kinds.conv import Conv1d
from flowlaws.models.kinds.dense import Dense
from flowlaws.models.kinds.fork import Fork
from flowlaws.models.kinds.scale import Scale
from flowlaws.models.symmetry import (
    BIASES,
    Family,
    Path,
    Rescaling,
    Term,
    close,
    computes_identity,
    removes_shift,
    rescalings,
    sample_shifts,
    shift_fate,
    walk,
)


@dataclass(frozen=True)
class Residual(Fork):
    """y = block(x) + shortcut(x); ``shortcut`` () is the identity."""

    kind: ClassVar[str] = "residual"
    example: ClassVar[str] = ("seq:2x6:residual[conv1d(3,1),relu,conv1d(4,1,stride=2) | conv1d(4,1,stride=2)],"
                              "relu,flatten,dense(2)")
    family: ClassVar[str] = "res"
    ranks: ClassVar[tuple[int, ...]] = (1, 2, 3)

    @property
    def block(self) -> tuple:
        return self.first

    def join(self, a, b):
        return a + b

    def split(self, dy, a, b):
        return dy, dy

    def inlined(self) -> tuple:
        """The block alone, its own blocks inlined (what a net without its skips computes)."""
        return tuple(x for layer in self.first for x in layer.inlined())

    # --- symmetry declarations --------------------------------------------------------
    def carry(self, path, site):
        """Both branches must map c^d-scaled inputs to outputs scaled alike."""
        inners = self.inners(site)
        walks = [self.into(path, inner) for inner in inners]
        if any(w is None for w in walks):
            return None
        layout = {"last_axis": path.last_axis, "interleaved": path.interleaved, "summed": path.summed}
        open_ = [w for w in walks if not w.closed]
        if not open_:  # both absorb it: the symmetry closes here
            if any(w.family is not Family.RESCALE for w in walks):
                return None
            return path.joined(walks)
        degree = open_[0].degree
        if any(w.degree != degree or (w.last_axis, w.interleaved) != (path.last_axis, path.interleaved)
               for w in open_):  # (a branch that moves the units' axis: the sum scales no unit alike)
            return None
        terms, layers, linear, uniform = path.terms, path.layers, path.linear, path.uniform
        keeps = all(w.linear for w in walks)  # no kink inside: a sign class's mixing
        blocks = path.blocks
        for w, inner in zip(walks, inners, strict=True):
            if w.closed:  # its last rows re-emit the scaling
                found = self.emitter(inner, path.units, layout)
                if found is None:
                    return None
                last, tail = found
                w = replace(w, **layout).emitted(last, degree / tail.degree)
                linear, uniform = linear and tail.linear, uniform or tail.uniform
                keeps = keeps and tail.linear  # passes (`Path.classes`)
            terms, layers, blocks = terms + w.terms, layers + w.layers, math.lcm(blocks, w.blocks)
            linear, uniform = linear and w.linear, uniform or w.uniform
        shifts_on = path.shifts and all(not w.closed and w.shifts for w in walks)
        return replace(path, degree=degree, linear=linear, shifts=shifts_on, uniform=uniform,
                       terms=terms, layers=layers, classes=path.classes if keeps else 0, blocks=blocks)

    def sample_shift(self, site) -> str:
        """y = F(x) + S(x) and a shift uniform over each sample's units: each branch passes
        it (the identity does), removes it (a pre-norm block: its LayerNorm first) or stops
        it. The sum carries it when no branch stops it and one passes it; it is removed when
        both remove it (docs/theory.md 6.1: a pre-norm stream's writers)."""
        return self.branch_fate(site, "sample_shift", "passes")

    def stream_shift(self, site):
        """A pre-norm block, x + F(x) with F's first layer removing a shift uniform over each
        sample (a LayerNorm), carries a stream's c 1 unchanged; its last writer's bias (the
        layers after it the identity) adds its own c 1 (`symmetry.stream_trades`)."""
        block = self.inners(site)[0]
        if self.second or shift_fate(block.chain, 0, block.offset, "sample_shift")[0] != "removed":
            return super().stream_shift(site)
        writer = _writer(block)
        bias = self._bias(writer) if _identity_after(writer) and (
            writer.layer.rows_on_last_axis(writer) or len(writer.in_shape) == 1) else None
        return "passes", bias

    def row_scale(self, site) -> str:
        """y = F(x) + S(x) keeps a factor per row when every layer of both branches passes it."""
        layers = [replace(inner, position=k) for inner in self.inners(site) for k in range(len(inner.chain.layers))]
        return "passes" if all(here.layer.row_scale(here) == "passes" for here in layers) else "stops"

    def rescalings(self, site):
        """Each branch's own rescalings; the join's when both branches have weight layers;
        and, when a shift uniform over a sample is removed after the block (a LayerNorm),
        the translation laws of a branch's last dense layer (a uniform shift of its output
        is one of the sum's)."""
        inners = self.inners(site)
        for inner in inners:
            yield from rescalings(inner.chain, inner.offset)
        for inner in inners:
            if inner.chain.layers:
                yield from sample_shifts(_writer(inner), lambda kind: removes_shift(site, kind))
        yield from self._joined(site, inners)

    def _joined(self, site, inners):
        """The output units of two weighted branches: both last rows scale by c^(1/tail)."""
        found = [self.emitter(inner) if inner.chain.layers else None for inner in inners]
        if any(f is None for f in found):
            return
        (a, tail_a), (b, tail_b) = found  # type: ignore[misc]
        units, last_axis = a.layer.units_out(a), a.layer.rows_on_last_axis(a)
        if (units, last_axis) != (b.layer.units_out(b), b.layer.rows_on_last_axis(b)):
            return
        path = Path(units, linear=tail_a.linear and tail_b.linear, last_axis=last_axis,
                    shifts=tail_a.shifts and tail_b.shifts)
        path = path.emitted(a, 1.0 / tail_a.degree).emitted(b, 1.0 / tail_b.degree)
        yield from close(path, walk(path, site.following()), site)
        biases = [self._bias(last) for last, _ in found if _identity_after(last)]  # type: ignore[misc]
        if len(biases) == 2 and all(biases):
            yield Rescaling(f"{a.name}+{b.name}.b", units, (Term(biases[0], 1.0), Term(biases[1], -1.0)),
                            False, Family.TRANSLATION, order=1)

    @staticmethod
    def _bias(last):
        rows = last.layer.rows(last, last.layer.units_out(last))
        views = [v for v in rows if v.name.endswith(BIASES) and v.ndim == 1]
        return views[0] if views else None

    # --- its spec: residual[BLOCK] or residual[BLOCK | SHORTCUT] --------------------------
    @classmethod
    def signature(cls) -> str:
        return "residual[LAYERS] | residual[LAYERS | LAYERS]"

    @classmethod
    def draw(cls, draw, shape, context):
        """A block that keeps or changes the width (weight, activation, weight), with the
        identity or a shortcut of its own (a dense layer, or a strided 1x1 convolution);
        its last layer may mix the stream partly: a grouped convolution, or a dense layer
        followed by a layer scale (a diagonal, as ConvNeXt's), or be followed by the
        activation (relu(a(x)) + b(x)), or both branches end in an affine BatchNorm (a
        downsampling block's bn2 and shortcut: their biases trade a shift)."""
        if len(shape) not in (1, 2):
            return None
        conv = len(shape) == 2
        width = draw(st.sampled_from([shape[0], draw(context.sizes)]))
        stride = draw(st.integers(1, 2)) if conv else 1

        def weight(n, s=1):
            return Conv1d(n, 1, s, 0, context.bias) if conv else Dense(n, context.bias)

        inner, last, tail = draw(context.sizes), weight(width, stride), ()
        if conv and width % 2 == 0 and inner % 2 == 0 and draw(st.booleans()):
            last = replace(last, groups=2)
        elif not conv and draw(st.booleans()):
            tail = (Scale(),)
        elif draw(st.booleans()):  # an activation after the branch's last layer: relu(a(x)) + b(x)
            tail = (context.act,)
        elif draw(st.booleans()):  # torchvision's downsampling block: BatchNorms end both branches
            norm = (BatchNorm(affine=True, eps=draw(st.sampled_from([0.0, 1e-5]))),)
            return cls((weight(inner), context.act, last, *norm), (weight(width, stride), *norm))
        block = (weight(inner), context.act, last, *tail)
        same = width == shape[0] and stride == 1
        return cls(block, () if same and draw(st.booleans()) else (weight(width, stride),))


def _identity_after(site) -> bool:
    """Whether the layers after ``site`` in its branch compute the identity (read from their
    values at a probe: ``linear``, ``dropout(0)``), so that a shift of its output reaches the
    join as it is: two branches' biases then trade it (b_A + t, b_B - t). A kink (relu), a
    slope other than 1 (``prelu(-1,-1)`` turns t into -t) or a mask breaks that trade."""
    return all(computes_identity(replace(site, position=position))
               for position in range(site.position + 1, len(site.chain.layers)))


def _writer(inner):
    """A branch's last layer whose own parameters shift its output (`Layer.written_shifts`;
    the layers after it may pass the shift: nanoGPT's residual dropout(0), the MLP-Mixer's
    moveaxis back)."""
    position = len(inner.chain.layers) - 1
    while position > 0 and not inner.chain.layers[position].written_shifts(replace(inner, position=position)):
        position -= 1
    return replace(inner, position=position)
