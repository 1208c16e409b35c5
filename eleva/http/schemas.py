"""The base of every response schema: marshmallow's output, built more cheaply.

For the plain fields Eléva's responses are made of (Integer, String, Boolean, ISO
DateTime), ``ResponseSchema`` works out once per schema a plan of one ``getattr`` and one
conversion per value; tests/test_schemas.py checks it gives marshmallow's own output.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

import marshmallow as ma
import orjson
from marshmallow.decorators import POST_DUMP, PRE_DUMP

_ABSENT = object()

# A plan entry: (output key, attribute, value type, conversion, field). The value type
# is None for a field that serialises itself (given its name as the attribute).
Plan = list[tuple[str, str, type | None, Callable[[Any], Any] | None, ma.fields.Field]]


def _plain(field: Any) -> tuple[type, Callable[[Any], Any] | None] | None:
    """For a plain field: the value type ``field._serialize`` returns as is (or, for an
    ISO datetime, as its ``isoformat()``, the second item). None for any other field."""
    kind = type(field)
    if kind is ma.fields.Integer and not field.as_string:
        return int, None
    if kind is ma.fields.String:
        return str, None
    if kind is ma.fields.Boolean:
        return bool, None
    if kind in (ma.fields.DateTime, ma.fields.AwareDateTime) and (
        field.format or field.DEFAULT_FORMAT
    ) in ("iso", "iso8601"):
        return dt.datetime, iso_format
    return None


def iso_format(value: dt.datetime) -> str:
    """``value.isoformat()``. For a UTC datetime (every one Eléva reads) orjson writes
    the same text, more cheaply."""
    if value.tzinfo is dt.UTC:
        return orjson.dumps(value)[1:-1].decode()
    return value.isoformat()


class ResponseSchema(ma.Schema):
    """A schema for what the API sends; loads like any marshmallow schema."""

    _plan: Plan | None

    def dump(self, obj: Any, *, many: bool | None = None) -> Any:
        plan = self.__dict__.get("_plan", _ABSENT)
        if plan is _ABSENT:
            plan = self._plan = self._make_plan()
        if plan is None:
            return super().dump(obj, many=many)
        if self.many if many is None else many:
            return [self._dump_one(plan, item) for item in obj]
        return self._dump_one(plan, obj)

    # A field that is not plain serialises itself; a schema with dump hooks, or an object
    # missing an attribute, takes marshmallow's own path. This reads marshmallow's _hooks
    # and calls Field._serialize: marshmallow is pinned, and tests/test_schemas.py fails if
    # they change.
    def _make_plan(self) -> Plan | None:
        if self._hooks[PRE_DUMP] or self._hooks[POST_DUMP] or self.dict_class is not dict:
            return None
        plan: Plan = []
        for name, field in self.dump_fields.items():
            attribute = field.attribute or name
            if "." in attribute:  # a dotted path: marshmallow's get_value walks it
                return None
            key = field.data_key if field.data_key is not None else name
            plain = _plain(field)
            if plain is None:
                plan.append((key, name, None, None, field))
            else:
                plan.append((key, attribute, *plain, field))
        return plan

    def _dump_one(self, plan: Plan, obj: Any) -> Any:
        mapping = isinstance(obj, Mapping)
        result = {}
        for key, attribute, exact, convert, field in plan:
            if exact is None:
                value = field.serialize(attribute, obj, accessor=self.get_attribute)
                if value is ma.missing:
                    continue
            else:
                value = obj.get(attribute, _ABSENT) if mapping else getattr(obj, attribute, _ABSENT)
                if value is _ABSENT:  # marshmallow's rules for missing values apply
                    return super().dump(obj, many=False)
                if value is not None:
                    if type(value) is not exact:
                        value = field._serialize(value, attribute, obj)
                    elif convert is not None:
                        value = convert(value)
            result[key] = value
        return result
