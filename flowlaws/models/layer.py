"""The `Layer` base: what every registered layer kind declares.

A layer is a frozen dataclass. It declares, in one module per kind
(`flowlaws.models.kinds`):

- numbers: ``param_shapes(in_shape)``, ``out_shape(in_shape)``, ``apply(p, x)``
  (autograd.numpy, differentiable generically), ``vjp(p, x, y, dy) -> (dx, dp)`` and
  the numpy sweeps ``run`` / ``pull`` / ``bound_run`` (see `flowlaws.models.chain`);
  ``vjp_magnitude`` is the same sweep on absolute values: the scale that round-off
  errors of the gradient are measured against (`flowlaws.checking`);
- symmetry: how a scaling of its input units passes through it (``carry``), which
  rescalings start at it (``rescalings``), how shifts pass (``shift``, ``sample_shift``)
  and whether it keeps a centred group centred (``keeps_sums``);
- its spec: ``kind`` (its name in spec strings), ``from_spec`` and ``spec`` (derived
  from the dataclass fields: required fields positional, options ``key=value``,
  booleans as flags), and ``draw`` (how strategies draw one for an input shape).

Data layout is channels first: dense inputs ``(N, d)``, 1D conv inputs ``(N, C, L)``,
2D ``(N, C, H, W)``; a sequence is ``(N, T, d)`` with its features last.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np

from flowlaws.errors import InvalidArgument
from flowlaws.models.symmetry import BIASES, Centred, from_weight_layer, sample_shifts, unfollowed

REALMIN = float(np.finfo(np.float64).tiny)  # smallest normal float64: the underflow threshold


def _number(text: str, annotation: str):
    """A spec argument as the field's type (int unless the field is a float or a str; a
    field that takes a tuple reads one int per axis as ``3x2``)."""
    if annotation == "str":
        return text
    try:
        if "tuple" in annotation and "x" in text:
            return tuple(int(part) for part in text.split("x"))
        return float(text) if "float" in annotation else int(text)
    except ValueError:
        raise InvalidArgument(f"expected {'a number' if 'float' in annotation else 'an integer'}"
                              f"{' or one per axis, as 3x2' if 'tuple' in annotation else ''}, got {text!r}") from None


def fmt(value) -> str:
    """A number as a spec writes it: 1e-05, 0.1, 3; one per axis as 3x2."""
    if isinstance(value, tuple):
        return "x".join(fmt(v) for v in value)
    return f"{value:g}" if isinstance(value, float) and float(value) == float(f"{value:g}") else (
        repr(float(value)) if isinstance(value, float) else str(value))


class Layer:
    """Base of every layer kind (parametrized, structural, activations, composites)."""

    kind: ClassVar[str]  # its name in spec strings
    example: ClassVar[str] = ""  # a spec using it, small enough for discovery (the layer contract tests it)
    family: ClassVar[str] = ""  # the prefix of its parameter names (default: kind)
    composite: ClassVar[bool] = False  # holds branches of layers: KIND[A | B] in a spec
    ranks: ClassVar[tuple[int, ...]] = ()  # the input ranks (sample axes) strategies draw it at
    has_weight: ClassVar[bool] = False
    polynomial: ClassVar[bool] = True  # in its params and input, once its pattern is frozen
    couples_samples: ClassVar[bool] = False  # its output for one sample depends on others
    reads_last_axis: ClassVar[bool] = False  # a weight layer's columns read the sample's last axis
    keeps_order: ClassVar[bool] = False  # its output's flat entries are its input's, in place (maps of each)
    # (attention's features, a position-wise dense layer's), not its first (a convolution's channels)
    ranged: ClassVar[bool] = False  # it carries a path of some of its input units (`Path.span`)
    drawn_in: ClassVar[str] = ""  # the composite kind that draws it, where it is never drawn alone

    def param_shapes(self, in_shape):
        return ()

    def out_shape(self, in_shape):
        return in_shape

    def apply(self, p, x):
        raise NotImplementedError

    def vjp(self, p, x, y, dy):
        raise NotImplementedError

    def vjp_magnitude(self, p, x, y, dy):
        dx, dp = self.vjp(tuple(np.abs(q) for q in p), np.abs(x), y, dy)
        return np.abs(dx), tuple(np.abs(g) for g in dp)

    @property
    def piecewise(self) -> bool:
        """Whether it has activation regions (a kink, a max, a mask) that a pattern freezes."""
        return False

    # --- the numpy sweeps (see flowlaws.models.chain.Chain) ----------------------------
    def run(self, p, x, frozen=None):
        """(output, aux for `pull`); ``frozen`` is this layer's entry of a pattern."""
        return self.apply(p, x), None

    def pull(self, p, x, y, aux, dy, magnitude: bool = False):
        """(dx, dparams): the VJP, or its magnitude sweep."""
        return (self.vjp_magnitude if magnitude else self.vjp)(p, x, y, dy)

    def freeze(self, x, y, aux):
        """This layer's entry of the activation pattern (None: nothing to freeze)."""
        return None

    def bound_run(self, p, x, aux):
        return self.bound(p, x), aux

    def bound(self, p, x):
        """An entrywise bound on |output| and on the terms summed to form it, for inputs
        bounded by x >= 0 and params p >= 0 (the forward magnitude sweep)."""
        return self.run(p, x)[0]

    # --- composites (a residual or gated node holds chains of layers) -------------------
    @property
    def sublayers(self) -> tuple:
        """The layers nested in this one (a composite's branches), depth first."""
        return ()

    def inner_specs(self, in_shape, prefix: str) -> list:
        """(name, shape) of the parameters of its nested chains."""
        return []

    def nested(self, x, aux):
        """(layers, cache) of each nested chain in a forward pass's aux."""
        return ()

    def mapped(self, f) -> Layer:
        """This layer with ``f`` applied to every layer it holds, itself included."""
        return f(self)

    def inlined(self) -> tuple:
        """The layers a net without skip connections computes in its place."""
        return (self,)

    # --- symmetry declarations (see flowlaws.models.symmetry) -------------------------
    @property
    def emits(self) -> bool:
        """Its output units can be scaled through its own parameters (it has rows)."""
        return self.has_weight

    @property
    def mixes(self) -> bool:
        """Its rows form a full matrix, so a linear path also allows mixing its units."""
        return True

    @property
    def row_blocks(self) -> int:
        """Its rows mix its output units only within this many contiguous equal groups (a
        grouped convolution's; 1: a full matrix)."""
        return 1

    @property
    def absorbs(self) -> bool:
        """Its columns can absorb a scaling of its input units (it has a weight matrix)."""
        return self.has_weight

    def mapped_alone(self, path, site):
        """A scaling of an axis the layer maps slice by slice (each row of a (T, d) input
        through a dense layer, each position through a pointwise convolution): it passes a
        bias-free layer unchanged (linearly), and a biased one when one c scales every unit
        and the bias with them (y[c] = W x[c] + b: the bias, shared by the units, joins
        whole; no mixing, no shift); some of the units (`Path.span`) and a bias: no symmetry."""
        if path.span and getattr(self, "bias", False):
            unfollowed(site, "a bias shared by one branch's units and the others'")
            return None
        if not getattr(self, "bias", False):
            return path.times(1.0, True, shifts=False)
        shared = dataclasses.replace(path.met(site, site.views(0, 1, own=(1,)), path.degree), uniform=True)
        return shared.times(1.0, False, shifts=False)

    def absorbs_whole(self, path, site):
        """The path closed here when one c for all its units scales this layer's whole input
        and its weights absorb it whole (c^-degree), where `carry` passes it instead: the
        walk's fallback if the passed path dies later (`symmetry.walk`). None: no such
        absorption (the default)."""
        return None

    def carry(self, path, site):
        """How a scaling of the input units passes through: the path after this layer,
        or None when it cannot pass (no symmetry). A weight layer absorbs a scaling of
        the sample axis its columns read (`reads_last_axis`); a scaling of any other axis
        (the positions of a convolution's input) does not pass: no symmetry."""
        if self.absorbs and path.on_axis(self.reads_last_axis, len(site.in_shape)):
            return path.absorbed(site)
        return None

    def shift(self, site) -> str:
        """How a shift of its input constant over the batch passes, one that varies along
        the sample's first axis only (per channel: a convolution's bias; on a flat sample,
        any vector): "passes" (as another such shift: a weight layer maps it to W delta),
        "removed" (a BatchNorm subtracts it), "feature_shift" (it leaves varying along the
        last axis only: `MoveAxis`), or "stops" (a kink, a max pool, a normalization within
        a sample, zero padding, or a layer reading the last axis of a sample of several
        axes: W delta varies along that axis too)."""
        return "passes" if self.absorbs and (len(site.in_shape) == 1 or not self.reads_last_axis) else "stops"

    def feature_shift(self, site) -> str:
        """How a shift constant over the batch that varies along the last axis only (per
        feature, the same at every position: a dense layer's bias on a sequence) passes:
        as `shift` on a flat sample; else a weight layer reading the last axis passes it
        (W delta, still the same at every position), "shift" when that axis moves first,
        and any other layer stops it (the default: a BatchNorm averages over that axis)."""
        if len(site.in_shape) == 1:
            return self.shift(site)
        return "passes" if self.absorbs and self.reads_last_axis else "stops"

    def sample_shift(self, site) -> str:
        """How a shift of its input uniform over each sample's units (varying per sample)
        passes: "passes", "removed" (a LayerNorm subtracts it) or "stops" (the default)."""
        return "stops"

    def channel_shift(self, site) -> str:
        """How a shift uniform over its input's first axis (its channels), varying per
        sample and position (a convolution's), passes: as `sample_shift` on a flat input
        (one axis, the last too), else "stops" (the default), or the other kind when the
        axis moves last (`MoveAxis`)."""
        return self.sample_shift(site) if len(site.in_shape) == 1 else "stops"

    def row_scale(self, site) -> str:
        """How a positive factor per row of its input's last axis (per sample and position:
        what a normalization's division leaves) passes: "passes" (a positively homogeneous
        map of each row alone), "removed" (a normalization of each row at eps = 0) or
        "stops" (the default)."""
        return "stops"

    def keeps_sums(self, in_shape) -> bool:
        """Whether a sample whose last-axis groups each sum to 0 (after a LayerNorm)
        leaves it with groups that each sum to 0 (flatten, a linear activation)."""
        return False

    def keeps_group_sums(self, in_shape) -> bool:
        """Whether a group of several last-axis rows summing to 0 (a GroupNorm's) still
        sums to 0: as `keeps_sums`, unless the layer scales its rows one by one."""
        return self.keeps_sums(in_shape)

    def centred_groups(self, in_shape, groups: int) -> int:
        """How many centred groups its output has when it keeps sums (`keeps_sums`): one per
        row of its output's last axis, or the input's when it flattens them into blocks."""
        out = self.out_shape(in_shape)
        return groups if len(out) == 1 else int(np.prod(out[:-1]))

    def centred_layout(self, in_shape, groups: Centred) -> Centred | None:
        """The centred groups of its output (`symmetry.Centred`), None when it does not keep
        them: contiguous groups as `keeps_sums` and `centred_groups` say; interleaved ones
        only through a layer that keeps every entry in its place (``keeps_order``)."""
        if not self.keeps_sums(in_shape):
            return None
        if groups.interleaved:
            return groups if self.keeps_order else None
        return Centred(self.centred_groups(in_shape, groups.count))

    def rescalings(self, site):
        """The rescalings that start at this layer (a layer that only adds parameters, a
        class token: the translation laws of the shifts they make, `written_shifts`)."""
        return from_weight_layer(site, mixes=self.mixes) if self.emits else sample_shifts(site)

    def rows_on_last_axis(self, site) -> bool:
        """Whether its output units lie on the last axis of a sample (a position-wise dense
        or attention layer's features) rather than the first (a convolution's channels)."""
        return False

    def shifted_rows(self, site):
        """The slices a shift of its output uniform over a sample moves (a dense layer's
        W -> W + 1 a^T and b -> b + t 1); () when no own parameter can."""
        return ()

    def written_shifts(self, site):
        """(kind, slices, uniform) for each shift of its output its own parameters make
        (`symmetry.sample_shifts`): by default `shifted_rows`, over the last axis."""
        rows = self.shifted_rows(site)
        return (("sample_shift", rows, True),) if rows else ()

    def stream_shift(self, site):
        """How a constant shift c 1 of its input over the last axis fares, and the bias whose
        own c 1 it adds (`symmetry.stream_trades`): ("passes", bias or None) when the output
        carries the input's c 1 unchanged (the identity: ``linear``, ``dropout(0)``);
        ("writes", bias) when the input's is lost but a bias of its rows adds one to every
        output unit (a dense layer or attention on the last axis); ("stops", None) else."""
        from flowlaws.models.symmetry import computes_identity

        if isinstance(self, Entrywise) and computes_identity(site):  # (probed: an Entrywise layer alone)
            return "passes", None
        if not self.emits or not (self.rows_on_last_axis(site) or len(site.in_shape) == 1):
            return "stops", None
        biases = self.bias_rows(site)
        return ("writes", biases[0]) if len(biases) == 1 else ("stops", None)

    def bias_rows(self, site):
        """The slices whose sums per output unit shift that unit alike at every position, as
        a bias does (what an `offset` right after it absorbs): its bias, if any."""
        rows = self.rows(site, self.units_out(site))
        return [v for v in rows if v.name.endswith(BIASES) and v.ndim == 1]

    def shared_input(self, site) -> bool:
        """Every output unit is w_i times one shared input value, with no bias (one input
        feature): such units share their activation pattern by the sign of w_i
        (`flowlaws.invariants.regions`)."""
        return False

    def units_out(self, site) -> int:
        """How many output units its rows scale."""
        return getattr(self, "channels")  # noqa: B009 (weight layers define it)

    def rows(self, site, units, interleaved: bool = False):
        """The slices that scale with output unit i: every own parameter along axis 0
        (``interleaved``: unit i owns rows i, i + units, ...: a flattened (T, d) layout)."""
        return site.views(0, units, interleaved=interleaved)

    def columns(self, site, path):
        """The slices that absorb a scaling of input unit i: the weight along axis 1."""
        return site.views(1, path.units, own=(0,), interleaved=path.interleaved, ranged=path)

    def centered(self, site, groups: Centred):
        """Slices whose entry sums never move when its input is centered (sums to 0) over
        each of its centred ``groups`` (after a LayerNorm, `symmetry.Centred`): none here."""
        return ()

    # --- its spec (see flowlaws.models.spec) ---------------------------------------------
    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The names this kind answers to in spec strings."""
        return (cls.kind,)

    @classmethod
    def from_spec(cls, name: str, positional: list[str], keywords: dict[str, str], flags: set[str],
                  branches: list | None = None) -> Layer:
        """Build from spec arguments: required fields positional or by name, options by
        name, boolean fields as flags (``dense(4,bias)``, ``conv1d(4,3,stride=2)``)."""
        fields = [f for f in dataclasses.fields(cls) if f.init]  # type: ignore[arg-type]
        flag_names = {f.name for f in fields if f.type == "bool"}
        valued = [f for f in fields if f.type != "bool"]
        unknown_flags = flags - flag_names
        if unknown_flags:
            raise InvalidArgument(f"unknown option {sorted(unknown_flags)[0]!r} for {name}; "
                                  f"its flags are {', '.join(sorted(flag_names)) or 'none'}")
        if len(positional) > len(valued):
            raise InvalidArgument(f"{name} takes at most {len(valued)} positional arguments, got {len(positional)}")
        pairs = zip(valued, positional, strict=False)
        values: dict[str, Any] = {f.name: _number(text, str(f.type)) for f, text in pairs}
        for key, text in keywords.items():
            field = next((f for f in valued if f.name == key), None)
            if field is None or key in values:
                raise InvalidArgument(f"unknown option {key!r} for {name}; its options are "
                                      f"{', '.join(f.name for f in valued) or 'none'}" if field is None
                                      else f"{name}: {key} given twice")
            values[key] = _number(text, str(field.type))
        values.update({flag: True for flag in flags})
        try:
            return cls(**values)
        except TypeError as error:
            raise InvalidArgument(f"bad arguments for {name}: {error}") from None

    @property
    def spec(self) -> str:
        """Its spec string: required fields positional, then the options that differ from
        their default, in field order (``key=value``, or the flag for a boolean)."""
        parts = []
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            if not f.init:
                continue
            value = getattr(self, f.name)
            if f.default is dataclasses.MISSING:
                parts.append(fmt(value))
            elif value != f.default:
                parts.append(f.name if f.type == "bool" else f"{f.name}={fmt(value)}")
        return f"{self.kind}({','.join(parts)})" if parts else self.kind

    @classmethod
    def signature(cls) -> str:
        """Its spec form for help texts: ``dense(units[,bias])``."""
        parts = []
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            if f.init:
                required = f.default is dataclasses.MISSING
                parts.append(f.name.upper() if required else f"[{f.name}]" if f.type == "bool"
                             else f"[{f.name}={fmt(f.default)}]")
        return f"{cls.kind}({','.join(parts)})" if parts else cls.kind

    @classmethod
    def draw(cls, draw, shape, context):
        """One layer of this kind for an input of ``shape``, its sizes drawn (``draw`` is
        Hypothesis's; ``context`` has ``sizes``, ``act``, ``bias`` and ``chain`` for a
        nested chain); None when it does not fit the shape. Default: the kind is never drawn."""
        return None


class Entrywise(Layer):
    """A layer that maps each entry alone (an activation, dropout): a shift of any kind
    (`Layer.feature_shift`, `sample_shift`, `channel_shift`) passes it as a shift constant
    over the batch does (`shift`)."""

    ranged: ClassVar[bool] = True  # one branch's units of a concatenation pass it
    keeps_order: ClassVar[bool] = True

    def feature_shift(self, site) -> str:
        return self.shift(site)

    def sample_shift(self, site) -> str:
        return self.shift(site)

    def channel_shift(self, site) -> str:
        return self.shift(site)
