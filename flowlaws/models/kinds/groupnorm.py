"""groupnorm(groups=G[,affine][,eps=E]): torch's GroupNorm(G, C) on (C, ...) inputs.

The C channels split into G groups of C / G; each sample's group (its channels at every
position) is normalized to mean 0 and variance 1, then ``affine`` scales and shifts
each channel (gamma, beta). G = 1 normalizes a whole sample (LayerNorm over (C, L)),
G = C each channel alone (InstanceNorm).

Symmetry (docs/theory.md 6.2): at eps = 0 scaling every channel of a group by one c > 0
leaves the output unchanged, so the rows feeding the group conserve their summed
squared norm (one scale law per group: the channel rescaling seen with G units, each
owning a contiguous block of C / G channels). At any eps a shift uniform over a group is
removed: the biases feeding a group conserve their sum. A scaling of the last axis
must be one c for the whole sample.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

import autograd.numpy as anp
import numpy as np
from hypothesis import strategies as st

from flowlaws.errors import InvalidArgument
from flowlaws.models.kinds.normalization import Normalization
from flowlaws.models.symmetry import Centred, Family, Rescaling, Term
from flowlaws.validation import positive_int


@dataclass(frozen=True)
class GroupNorm(Normalization):
    """Per sample over groups of ``groups`` channels and every position."""

    groups: int = 1
    kind: ClassVar[str] = "groupnorm"
    example: ClassVar[str] = "seq:2x4:conv1d(4,1,bias),groupnorm(groups=2),relu,flatten,dense(2)"
    family: ClassVar[str] = "gn"
    ranks: ClassVar[tuple[int, ...]] = (2, 3)
    constant_group: ClassVar[str] = "a sample's group of channels is constant (e.g. all 0 after ReLU)"

    def __post_init__(self):
        super().__post_init__()
        positive_int("groupnorm", "groups", self.groups)

    def axes(self, ndim):
        return tuple(range(1, ndim))  # a whole sample: what one c must serve on the last axis

    def channel_axis(self, ndim):
        return 1

    def out_shape(self, in_shape):
        if len(in_shape) < 2 or in_shape[0] % self.groups:
            raise InvalidArgument(f"{self.spec} needs (channels, positions...) with channels divisible by "
                                  f"{self.groups}, got shape {tuple(in_shape)}")
        return in_shape

    def view(self, x):
        return anp.reshape(x, (x.shape[0], self.groups, -1)), (2,)

    def carry(self, path, site):
        """A channel scaling becomes one c per group: the path seen with G units. A scaling
        of the last axis needs one c for all; the shift a group removes is constant over
        its positions (not one per position, as a LayerNorm's)."""
        if path.last_axis or path.units != site.in_shape[0]:  # (or one unit, the whole sample)
            return path.normalized(site, uniform=True, per_sample=False, scales=not self.eps)
        if any(t.view.interleaved or t.view.groups > 1 for t in path.terms):
            return None
        grouped = tuple(Term(replace(t.view, units=self.groups), t.weight) for t in path.terms)
        return replace(path, units=self.groups, terms=grouped).normalized(
            site, uniform=False, per_sample=True, scales=not self.eps)

    def shift(self, site) -> str:
        """A shift of each channel constant over the batch is removed when each channel is a group."""
        return "removed" if site.in_shape[0] == self.groups else "stops"

    def sample_shift(self, site) -> str:
        return "stops"

    def row_scale(self, site) -> str:
        """A positive factor per row of the last axis is removed when each row is a group
        (eps = 0): one channel per group, of one row ((C, T), or every axis between of
        size 1). A channel of several rows (C, H, W) holds several factors, of which the
        group removes only their common one (found by the composition campaign, seed
        6300001: seq:1x4x4:conv2d(1,1),rmsnorm(eps=1e-05),groupnorm,...)."""
        one_row = int(np.prod(site.in_shape[1:-1])) == 1
        return "removed" if not self.eps and site.in_shape[0] == self.groups and one_row else "stops"

    def _centered(self, site):
        """Each group of a sample sums to 0: its reader, through layers that keep every
        group's sum at 0 and its entries in place (flatten, linear activations, average
        pools that tile every axis), may add c to its weights along a group: their sums are
        conserved (translation laws; the reader declares which sums, `Layer.centered`)."""
        chain, position = site.chain, site.position + 1
        while position < len(chain.layers) and self._keeps_centred(chain.layers[position], chain.shapes[position]):
            position += 1
        if position == len(chain.layers):
            return
        reader = replace(site, position=position)
        if len(reader.in_shape) != 1:  # a reader of a flat sample: its columns in G contiguous blocks
            return
        for view in reader.layer.centered(reader, Centred(self.groups)):
            yield Rescaling(f"{site.name}/{reader.name}.{view.name.rsplit('.', 1)[1]}", view.units,
                            (Term(view, 1.0),), False, Family.TRANSLATION, order=1)

    def _keeps_centred(self, layer, in_shape) -> bool:
        """`keeps_groups`, or a permutation of the sample's axes (`moveaxis`) when the one
        group is the whole sample: it still sums to 0 (found by the laws-complete campaign:
        seq:2x3:groupnorm,moveaxis(0,-1),flatten,dense(1), 1 law, 0 derived)."""
        from flowlaws.models.kinds.moveaxis import MoveAxis

        return self.keeps_groups(layer, in_shape) or (self.groups == 1 and isinstance(layer, MoveAxis))

    @staticmethod
    def keeps_groups(layer, in_shape) -> bool:
        """It keeps sums at 0 and maps every entry to one place (no cropping), with no weights:
        a 1x1 convolution mixes channels, which keeps a LayerNorm's rows centred but not a
        group that spans channels (found by the composition campaign). ``mean`` averages each
        channel over its positions, so a group's channel averages still sum to 0, in G
        contiguous blocks of the flat output (found by the laws-complete campaign:
        seq:2x3:groupnorm,mean,flatten,dense(1), 1 law)."""
        from flowlaws.models.kinds.mean import Mean

        if isinstance(layer, Mean) and not layer.last:
            return True
        if layer.has_weight or not layer.keeps_group_sums(in_shape):
            return False
        ratio = int(anp.prod(anp.array(in_shape))) // int(anp.prod(anp.array(layer.out_shape(in_shape))))
        return ratio == int(anp.prod(anp.array(getattr(layer, "sizes", ()))))  # a pool's window, per axis

    def degenerate(self, in_shape) -> bool:
        return in_shape[0] % self.groups != 0 or in_shape[0] // self.groups * int(
            anp.prod(anp.array(in_shape[1:]))) < 3

    @classmethod
    def draw(cls, draw, shape, context):
        if len(shape) not in cls.ranks:
            return None
        layer = cls(affine=draw(st.booleans()), eps=draw(st.sampled_from([0.0, 1e-5])),
                    groups=draw(st.sampled_from([g for g in (1, 2, shape[0]) if shape[0] % g == 0])))
        return None if layer.degenerate(shape) else layer
