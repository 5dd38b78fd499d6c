"""The base of the house models (``models.py``, ``ProviderOutput``): msgspec structs with the few ways of
copying, dumping and reading them that the pipeline uses.

msgspec rather than a validating model library, because a cold start pays for the import and for every
model class: msgspec imports in a few milliseconds and builds a class in microseconds. The difference
that matters: constructing a struct checks nothing. Values are checked where they come in: a vendor's
answer through ``checked`` (the adapters) and a stored item through ``model_validate`` (the store).
"""

from __future__ import annotations

import json
from decimal import Decimal
from functools import cache
from typing import Any, Self

import msgspec

# What ``model_validate`` and ``checked`` raise when a value does not fit.
ValidationError = msgspec.ValidationError

_NO_DEFAULT = object()


class HouseModel(msgspec.Struct, kw_only=True):
    """Keyword-only fields; ``frozen`` and ``forbid_unknown_fields`` are set by each family of models."""

    # Field names in declaration order (the struct's own ``__struct_fields__``, under a readable name).
    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return cls.__struct_fields__

    def model_copy(self, *, update: dict[str, Any] | None = None) -> Self:
        """A copy with ``update``'s fields replaced (not checked, as construction is not)."""
        return msgspec.structs.replace(self, **update) if update else self

    def model_dump(
        self,
        *,
        exclude_none: bool = False,
        exclude_defaults: bool = False,
        exclude: set[str] | frozenset[str] = frozenset(),
    ) -> dict[str, Any]:
        """The fields as a dict of plain JSON values (the models hold nothing else), nested models as
        dicts. ``exclude_none`` leaves out fields that are None and ``exclude_defaults`` fields equal to
        their default, at every level (not entries of a map); ``exclude`` names top-level fields to leave
        out."""
        return _dump(self, exclude_none, exclude_defaults, exclude)

    def model_dump_json(self, *, exclude_none: bool = False, exclude_defaults: bool = False) -> str:
        if not exclude_none and not exclude_defaults:
            return msgspec.json.encode(self).decode()
        return msgspec.json.encode(_dump(self, exclude_none, exclude_defaults, frozenset())).decode()

    @classmethod
    def model_validate(cls, data: Any) -> Self:
        """``data`` (a dict of plain values, e.g. a stored item) read and checked; ``ValidationError``
        when it does not fit. Integers are accepted for floats; DynamoDB's Decimals for either."""
        try:
            return msgspec.convert(data, cls)
        except ValidationError as exc:
            if "got `decimal`" not in str(exc):
                raise
        return msgspec.convert(plain_numbers(data), cls)

    @classmethod
    def model_validate_json(cls, data: bytes | str) -> Self:
        return msgspec.json.decode(data, type=cls)


def non_default_fields(model: msgspec.Struct) -> list[tuple[str, Any]]:
    """(name, value) of the fields whose value is not their default, values as they are."""
    return [
        (name, value)
        for name, default in _defaults(type(model))
        if (value := getattr(model, name)) is not default and (default is _NO_DEFAULT or value != default)
    ]


def checked[T](value: T) -> T:
    """``value`` (a house model, a list of them, or None) after checking every field against its type
    and constraints, as reading it from JSON would; ``ValidationError`` names the first that fails.
    Not-a-number fails a range; it is refused in any float, as JSON cannot carry it, except within
    ``raw``: the vendors' answers are kept as they came (packed as text), and a value in a field nobody
    reads is no reason to refuse an answer."""
    if value is None or value == []:
        return value
    if isinstance(value, list):
        kinds = {type(item) for item in value}
        if len(kinds) > 1:
            for item in value:
                checked(item)
            return value
        # A list of one model in one pass (a vendor's answer can hold hundreds of labels).
        target: Any = list[kinds.pop()]
    else:
        target = type(value)
    plain = msgspec.to_builtins(value)
    refuse_non_finite({k: v for k, v in plain.items() if k != "raw"} if isinstance(plain, dict) else plain)
    msgspec.convert(plain, target)
    return value


def refuse_non_finite(plain: Any) -> None:
    """``ValidationError`` naming where plain JSON values hold a NaN or an infinity."""
    try:
        json.dumps(plain, allow_nan=False)  # in C: the walk below runs only to say where
    except ValueError:
        _refuse_non_finite(plain, "$")


def plain_numbers(value: Any) -> Any:
    """JSON-like values with DynamoDB's Decimals as int (when whole) or float."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {key: plain_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain_numbers(item) for item in value]
    return value


def _refuse_non_finite(value: Any, path: str) -> None:
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValidationError(f"Expected a finite number - at `{path}`")
    elif isinstance(value, dict):
        for key, item in value.items():
            _refuse_non_finite(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _refuse_non_finite(item, f"{path}[{index}]")


@cache
def _defaults(cls: type) -> tuple[tuple[str, Any], ...]:
    """(name, default) per field; a field without one gets a marker no value equals."""
    out = []
    for info in msgspec.structs.fields(cls):
        if info.default is not msgspec.NODEFAULT:
            default = info.default
        elif info.default_factory is not msgspec.NODEFAULT:
            default = info.default_factory()
        else:
            default = _NO_DEFAULT
        out.append((info.name, default))
    return tuple(out)


def _dump(model: msgspec.Struct, exclude_none: bool, exclude_defaults: bool, exclude: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, default in _defaults(type(model)):
        if name in exclude:
            continue
        value = getattr(model, name)
        if exclude_none and value is None:
            continue
        if exclude_defaults and default is not _NO_DEFAULT and value == default:
            continue
        out[name] = _plain(value, exclude_none, exclude_defaults)
    return out


def _plain(value: Any, exclude_none: bool, exclude_defaults: bool) -> Any:
    if isinstance(value, msgspec.Struct):
        return _dump(value, exclude_none, exclude_defaults, frozenset())
    if isinstance(value, list | tuple):
        return [_plain(item, exclude_none, exclude_defaults) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item, exclude_none, exclude_defaults) for key, item in value.items()}
    return value
