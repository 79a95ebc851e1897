"""gated[A | B]: y = A(x) * B(x) elementwise (the GLU family); gated[A] is A(x) * x.

``gated[dense(8),silu | dense(8)]`` is SwiGLU's hidden layer, ``gated[dense(8),relu |
dense(8)]`` ReGLU's; ``gated[avgpool2d(H),conv2d(s,1),relu,conv2d(C,1),sigmoid,upsample2d(H)]``
a squeeze-and-excitation block's scale of its input (the missing branch is x itself, as a
residual's shortcut). Symmetry (docs/theory.md 3.8): a product multiplies the factors
of its inputs. A scaling of the input units that both branches absorb leaves y
unchanged (the walk closes); one branch absorbing it, the other carrying it with
degree k, y carries degree k. At the product two rescalings start: the rows of A's
last weight layer by c and B's by 1/c leave y unchanged (the balance law
||A_i||^2 - ||B_i||^2, for homogeneous branches), and one branch's rows by c scale y
by c, walked on (absorbed by the reader). A non-homogeneous gate (silu) has no balance
law; the value branch's law with the reader remains.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

from hypothesis import strategies as st

from flowlaws.models.kinds.dense import Dense
from flowlaws.models.kinds.fork import Fork
from flowlaws.models.symmetry import Family, Path, Rescaling, close, rescalings, walk


@dataclass(frozen=True)
class Gated(Fork):
    """y = first(x) * second(x); ``second`` () is x itself."""

    kind: ClassVar[str] = "gated"
    example: ClassVar[str] = "seq:3:gated[dense(4),silu | dense(4)],dense(2)"
    family: ClassVar[str] = "gate"
    ranks: ClassVar[tuple[int, ...]] = (1, 2)
    prefixes: ClassVar[tuple[str, str]] = ("a.", "b.")
    other: ClassVar[str] = "factor"

    def join(self, a, b):
        return a * b

    def split(self, dy, a, b):
        return dy * b, dy * a

    # --- symmetry declarations --------------------------------------------------------
    def carry(self, path, site):
        """The degrees of the branches that carry the scaling add; a branch that absorbs it
        contributes c^0; when both absorb it the walk closes."""
        walks = [self.into(path, inner) for inner in self.inners(site)]
        if any(w is None or w.family is not Family.RESCALE for w in walks):
            return None
        joined = path.joined(walks)
        carried = [w for w in walks if not w.closed]
        if not carried:
            return joined
        return replace(joined, closed=False, degree=sum(w.degree for w in carried), linear=False, shifts=False,
                       classes=0)

    def rescalings(self, site):
        """Each branch's own rescalings, the balance of the two branches' last rows, and
        the rescaling of the output units from one branch's last rows."""
        inners = self.inners(site)
        for inner in inners:
            yield from rescalings(inner.chain, inner.offset)
        found = [self.emitter(inner) for inner in inners]
        units = {last.layer.units_out(last) for last, _ in filter(None, found)}
        if len(units) != 1:
            return
        if all(found):
            (a, tail_a), (b, tail_b) = found  # type: ignore[misc]
            balance = Path(units.pop()).emitted(a, 1.0 / tail_a.degree).emitted(b, -1.0 / tail_b.degree)
            yield Rescaling("/".join(balance.layers), balance.units, balance.terms, False)
        last, tail = found[1] or found[0]  # type: ignore[misc]
        start = Path(last.layer.units_out(last), linear=False, shifts=False,
                     last_axis=last.layer.rows_on_last_axis(last)).emitted(last, 1.0 / tail.degree)
        yield from close(start, walk(start, site.following()), site)

    @classmethod
    def draw(cls, draw, shape, context):
        """A GLU hidden layer: gated[dense(h), act | dense(h)] (the activation drawn: a
        ReLU-family gate or a smooth one such as silu); or, one time in four, x gated by a
        branch of itself, gated[dense(d), act] (a squeeze-and-excitation's form)."""
        if len(shape) not in cls.ranks:
            return None
        if draw(st.integers(0, 3)) == 0:
            return cls((Dense(shape[-1], context.bias), context.act))
        width = draw(context.sizes)
        gate = (Dense(width, context.bias), context.act) if draw(st.booleans()) else (Dense(width, context.bias),)
        return cls(gate, (Dense(width, context.bias),))
