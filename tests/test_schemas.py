"""ResponseSchema (eleva/schemas.py) gives exactly marshmallow's output."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import uuid
from types import SimpleNamespace

import marshmallow as ma
import pytest
from hypothesis import given
from hypothesis import strategies as st

from eleva.http.schemas import ResponseSchema, iso_format

UTC = dt.UTC
AWARE = dt.datetime(2026, 11, 26, 10, 30, 5, 123456, tzinfo=UTC)
NAIVE = dt.datetime(2026, 11, 26, 10, 30, 5)
OTHER_ZONE = AWARE.astimezone(dt.timezone(dt.timedelta(hours=-5)))


def marshmallow_dump(schema: ma.Schema, obj, many=None):
    """What marshmallow itself gives, on the same schema instance, as JSON: True and 1
    are equal in Python, not in a response."""
    return json.dumps(ma.Schema.dump(schema, obj, many=many), sort_keys=True)


def fast_dump(schema: ResponseSchema, obj, many=None):
    return json.dumps(schema.dump(obj, many=many), sort_keys=True)


class Plain(ResponseSchema):
    number = ma.fields.Integer(allow_none=True)
    text = ma.fields.String(allow_none=True)
    flag = ma.fields.Boolean(allow_none=True)
    when = ma.fields.AwareDateTime(allow_none=True)
    naive = ma.fields.DateTime(allow_none=True)
    renamed = ma.fields.String(data_key="shownAs", attribute="source")
    secret = ma.fields.String(load_only=True)
    as_text = ma.fields.Integer(as_string=True)


@pytest.mark.parametrize(
    "values",
    [
        {"number": 3, "text": "ab", "flag": True, "when": AWARE, "naive": NAIVE},
        {"number": None, "text": None, "flag": None, "when": None, "naive": None},
        # Values of another type than the field expects go through the field itself.
        {"number": True, "text": b"bytes", "flag": "false", "when": OTHER_ZONE, "naive": AWARE},
        {"number": decimal.Decimal("7"), "text": 12, "flag": 0, "when": AWARE, "naive": NAIVE},
        {"number": 2.9, "text": "é\u2028", "flag": "yes", "when": AWARE, "naive": NAIVE},
    ],
)
def test_plain_fields_match_marshmallow(values):
    obj = SimpleNamespace(**values, source="s", secret="never shown", as_text=5)
    schema = Plain()
    assert fast_dump(schema, obj) == marshmallow_dump(schema, obj)
    assert "secret" not in schema.dump(obj) and schema.dump(obj)["shownAs"] == "s"


def test_many_and_mappings_and_missing_attributes_match_marshmallow():
    schema = Plain()
    full = SimpleNamespace(
        number=1, text="t", flag=False, when=AWARE, naive=NAIVE, source="s", as_text=2
    )
    partial = SimpleNamespace(number=1)  # marshmallow leaves absent attributes out
    mapping = {"number": 4, "text": "m", "source": "x"}
    full_mapping = {**vars(full), "flag": "yes", "number": True}
    for obj in (partial, mapping, full_mapping):
        assert fast_dump(schema, obj) == marshmallow_dump(schema, obj)
    items = [full, partial, mapping, full_mapping]
    assert fast_dump(schema, items, many=True) == marshmallow_dump(schema, items, many=True)
    assert fast_dump(Plain(many=True), items) == marshmallow_dump(Plain(many=True), items)


class Inner(ResponseSchema):
    a = ma.fields.Integer()


class Rich(ResponseSchema):
    total = ma.fields.Function(lambda obj: obj.x + obj.y)
    maybe = ma.fields.Method("shown")
    inner = ma.fields.Nested(Inner)
    inner_list = ma.fields.List(ma.fields.Nested(Inner))
    uid = ma.fields.UUID()

    def shown(self, obj):
        return obj.x if obj.show else ma.missing


def test_fields_that_serialise_themselves_match_marshmallow():
    import uuid

    schema = Rich()
    for show in (True, False):
        obj = SimpleNamespace(
            x=1,
            y=2,
            show=show,
            inner=SimpleNamespace(a=5),
            inner_list=[SimpleNamespace(a=1), {"a": 2}],
            uid=uuid.uuid4(),
        )
        assert fast_dump(schema, obj) == marshmallow_dump(schema, obj)
    assert "maybe" not in schema.dump(obj)


class Hooked(ResponseSchema):
    a = ma.fields.Integer()

    @ma.post_dump
    def add(self, data, **_kwargs):
        return {**data, "hooked": True}


def test_a_schema_with_dump_hooks_takes_marshmallows_path():
    assert Hooked().dump(SimpleNamespace(a=1)) == {"a": 1, "hooked": True}


def test_the_apps_response_schemas_match_marshmallow(app, client, user):
    """Every response schema, on the objects the app hands it."""
    from sqlalchemy import select

    from eleva.auth.schemas import TokenPairSchema
    from eleva.data.db import db
    from eleva.data.models import Note, Subject, User
    from eleva.health import ServiceIndexSchema, StatusSchema
    from eleva.notes.schemas import NoteListItemSchema, NoteSchema
    from eleva.services.auth import CurrentUser
    from eleva.services.notes import list_notes
    from eleva.subjects.schemas import SubjectSchema
    from eleva.users.schemas import PrivateUserSchema, PublicUserSchema

    created = client.post("/api/v1/subjects/", json={"name": "Maths"}, headers=user.headers)
    written = client.post(
        f"/api/v1/subjects/{created.json['id']}/notes",
        json={"title": "Sets", "body": "*A* ∪ *B*"},
        headers=user.headers,
    )
    assert written.status_code == 201
    with app.test_request_context():
        orm_user = db.session.scalar(select(User))
        principal = CurrentUser(
            **{
                name: getattr(orm_user, name)
                for name in CurrentUser.__dataclass_fields__
                if name not in ("session_id", "session_expires_at")
            },
            session_id=uuid.uuid4(),
            session_expires_at=dt.datetime.now(dt.UTC),
        )
        subject = db.session.scalar(select(Subject))
        note = db.session.scalar(select(Note))
        (listed,) = list_notes(user.id, subject.id).items  # only the listed columns loaded
        for show_email in (False, True):
            orm_user.show_email = show_email
            cases = [
                (PrivateUserSchema(), orm_user),
                (PrivateUserSchema(), principal),
                (PublicUserSchema(), orm_user),
                (SubjectSchema(), subject),
                (SubjectSchema(many=True), [subject, subject]),
                (NoteSchema(), note),
                (NoteListItemSchema(many=True), [listed, note]),
                (TokenPairSchema(), SimpleNamespace(
                    access_token="a", refresh_token="r", expires_in=1800, token_type="Bearer"
                )),
                (StatusSchema(), {"status": "ok"}),
                (ServiceIndexSchema(), {"name": "Eléva API", "health": "/health", "ready": "/r"}),
                (ServiceIndexSchema(), {"name": "E", "health": "/h", "ready": "/r", "docs": "/d"}),
            ]  # fmt: skip
            for schema, obj in cases:
                assert fast_dump(schema, obj) == marshmallow_dump(schema, obj), type(schema)
        db.session.rollback()


@given(
    st.datetimes(
        min_value=dt.datetime(1, 1, 1),
        max_value=dt.datetime(9999, 12, 31, 23, 59, 59, 999999),
        timezones=st.sampled_from([dt.UTC, None, dt.timezone(dt.timedelta(hours=-5))]),
    )
)
def test_iso_format_is_isoformat(value):
    assert iso_format(value) == value.isoformat()
