"""One parser for the ``NAME[:key=value,...]`` strings of losses and optimizers."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from flowlaws.errors import InvalidArgument, unknown


def parse_options(text: str, registry: Mapping[str, type], what: str):
    """Build ``registry[NAME](**options)`` from ``"NAME:key=value,..."``.

    >>> from flowlaws.flows import OPTIMIZERS
    >>> parse_options("gd:lr=0.1", OPTIMIZERS, "optimizer")
    GD(lr=0.1, power=0.0, weight_decay=0.0)
    """
    if not isinstance(text, str) or not text.strip():
        raise InvalidArgument(f"{what} must be a name like {next(iter(registry))!r}, got {text!r}")
    name, _, rest = text.strip().partition(":")
    if name not in registry:
        raise unknown(what, name, registry)
    cls = registry[name]
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    aliases = getattr(cls, "aliases", {})
    options = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, sep, value = item.partition("=")
        key = aliases.get(key.strip(), key.strip())
        if not sep:
            raise InvalidArgument(f"{what} option {item!r} needs a value, e.g. {key}=0.1")
        if key not in fields:
            raise unknown(f"option of {what} {name!r}", key, [*fields, *aliases])
        options[key] = _convert(value.strip(), fields[key], what, name)
    return cls(**options)


_TYPES = {"float": float, "int": int, "str": str}


def _convert(value: str, field: dataclasses.Field, what: str, name: str):
    kind = field.type if isinstance(field.type, type) else _TYPES[str(field.type)]
    try:
        return kind(float(value)) if kind is int and "." not in value else kind(value)
    except ValueError:
        raise InvalidArgument(
            f"{what} {name!r}: {field.name}={value!r} is not a valid {kind.__name__}"
        ) from None


def format_options(obj) -> str:
    """Inverse of `parse_options`: ``"NAME:key=value,..."`` with non-default fields."""
    parts = [
        f"{f.name}={getattr(obj, f.name)!r}".replace("'", "")
        for f in dataclasses.fields(obj)
        if f.init and getattr(obj, f.name) != f.default
    ]
    return obj.name + (":" + ",".join(parts) if parts else "")
