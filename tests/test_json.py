"""The JSON encoder (eleva.http.web.JSONProvider) against Flask's own."""

from __future__ import annotations

import dataclasses
import json
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from werkzeug.datastructures import MultiDict

ROOT = Path(__file__).resolve().parent.parent
STRONG = "s" * 40
STRONG_JWT = "j" * 40


# -- the JSON encoder (eleva.http.web.JSONProvider) -------------------------------------------


@dataclasses.dataclass
class _Point:
    x: int
    label: str


JSON_PAYLOADS = [
    {"b": 1, "a": [1, 2.5, None, True, False], "c": {"z": "", "y": {"x": []}}},
    [{"id": 3, "name": "Physics"}, {"id": 1, "name": "Maths", "description": None}],
    {"errors": {"json": {"items": {2: ["Not a valid string."], 10: ["Missing."]}}}},
    {"form": MultiDict([("a", "1"), ("a", "2")])},
    {"lone surrogate": "\ud800"},
    {"when": datetime(2026, 11, 26, 9, 30, tzinfo=UTC), "day": date(2026, 11, 26)},
    {"id": uuid.UUID("12345678-1234-5678-1234-567812345678"), "amount": Decimal("1.10")},
    {"point": _Point(1, "a"), "floats": [0.1, 1e16, -0.0, 123456.789]},
    {"big": 2**70, "small": -(2**63)},  # beyond orjson's 64 bits: json.dumps takes over
    "a string",
    None,
]


@pytest.mark.parametrize("payload", JSON_PAYLOADS)
@pytest.mark.parametrize("debug", [False, True])
def test_json_responses_are_what_flasks_own_encoder_gives(app, payload, debug):
    from flask.json.provider import DefaultJSONProvider

    app.debug = debug
    with app.app_context():
        ours = app.json.response(payload)
        flasks = DefaultJSONProvider(app).response(payload)
    assert ours.mimetype == flasks.mimetype == "application/json"
    assert json.loads(ours.get_data()) == json.loads(flasks.get_data())
    if not any(isinstance(v, float) for v in _leaves(payload)):  # float spelling may differ
        assert ours.get_data() == flasks.get_data()


def test_json_responses_write_non_ascii_text_as_utf8(app):
    with app.app_context():
        body = app.json.response({"name": "Élève 学生 🎓"}).get_data()
    assert body == '{"name":"Élève 学生 🎓"}\n'.encode()


def test_json_responses_refuse_what_flask_refuses(app):
    with app.app_context(), pytest.raises(TypeError):
        app.json.response({"set": {1, 2}})


def _leaves(value):
    if isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _leaves(item)
    elif dataclasses.is_dataclass(value):
        yield from _leaves(dataclasses.asdict(value))
    else:
        yield value
