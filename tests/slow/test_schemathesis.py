"""Schemathesis against the app's own OpenAPI spec, in process (WSGI), as a signed-in user.

One run of schemathesis' engine — what ``schemathesis run`` does — with every check it
has enabled by default (all of them in 4.x) and all of its phases:

- examples (the spec's own examples), coverage (boundary and negative values, unexpected
  methods, missing headers …) and fuzzing (positive and negative data), per operation;
- stateful: sequences of calls linked by the ids responses hand out. The links are
  inferred from the spec (dependency analysis) and from the ``Location`` headers seen in
  the earlier phases; the spec itself declares none.

Bounded for CI: a fixed seed, derandomised, ``SCHEMATHESIS_EXAMPLES`` examples per
operation and phase (default 50; e.g. ``SCHEMATHESIS_EXAMPLES=500`` for a longer run),
no deadline, no example database, one worker. Any failure, or any error of the run
itself, fails the test; the report lists each one with a curl command to reproduce it.

    pytest -m slow tests/slow/test_schemathesis.py -s
    TEST_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test pytest -m slow …

The credentials the run needs come from the app's own endpoints: a user is registered
and logged in, and ``Authorization: Bearer <access token>`` goes on every request (the
refresh token on ``POST /auth/refresh``). ``POST /auth/logout`` and ``DELETE /users/me``
end that user's session: when one of them succeeds, or the token is refused (401), the
next request gets a freshly registered user. That keeps both operations fully tested,
success included, in every phase, rather than excluding them; a fresh user per *case*
instead would also reset the data the stateful phase links through (a subject created by
one user is 404 for the next), so the user only changes when its session has ended.

Some rules of the contract cannot be written in JSON Schema, and data that breaks them
is refused although the schema allows it. For those, and only those, the generated
*positive* data is completed before it is sent (negative data is never touched):

- the password of the signed-in user where the API asks for it (``DELETE /users/me``,
  ``current_password``, an email change in ``PATCH /users/me``), which no generator can
  guess;
- a new password that the password policy refuses (common, or the username or email):
  ``eleva.core.passwords.password_problems`` decides, as the app does;
- a card's ``note_id`` (a note of the card's subject): none;

- ``If-Match`` on a subject or a note: its current ``ETag`` (read just before), since any other
  value is stale by definition (412);
- picture uploads: real JPEG, PNG, WebP and GIF files for the media types the spec
  declares for the ``file`` part;
- the ``token`` of a password reset, an email verification or an email revert: a live
  one for the signed-in user, issued as the email jobs issue them (a reset or a revert
  then ends the session); that of an erasure's cancel link: a throwaway user asks for
  their erasure, and the token is read from the email, as its owner would.

Two rules cannot be completed that way without turning some negative data positive: a
document's type is judged by its content (random bytes are none: 415), and a move's
``subject_id`` must be one of the caller's subjects (else a field error, 422). For those
operations the check that valid data is accepted also takes that answer (``make_config``).

The refusals themselves (422, 412, 415) are asserted by the everyday suite.
"""

from __future__ import annotations

import io
import os
import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import strategies as st
from PIL import Image
from schemathesis import hooks as st_hooks
from schemathesis.config import SchemathesisConfig
from schemathesis.core.media_types import MEDIA_TYPE_STRATEGIES
from schemathesis.engine import Status, events, from_schema
from schemathesis.engine.run import PhaseName
from schemathesis.engine.statistic import Statistic
from schemathesis.transport.wsgi import WSGI_TRANSPORT

from eleva.core.passwords import password_problems
from tests.conftest import PASSWORD

pytestmark = pytest.mark.slow

EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "50"))
SEED = int(os.environ.get("SCHEMATHESIS_SEED", "20261126"))

AUTH = "/api/v1/auth"
ME = "/api/v1/users/me"
SUBJECT = "/api/v1/subjects/{subject_id}"
NOTE = "/api/v1/notes/{note_id}"
# Resources written with If-Match, and the name of their id in the path.
ETAGGED = {SUBJECT: "subject_id", NOTE: "note_id"}
REFRESH = ("POST", f"{AUTH}/refresh")
CARD_WRITES = {
    ("POST", "/api/v1/subjects/{subject_id}/cards"),
    ("POST", "/api/v1/subjects/{subject_id}/cards/bulk"),
    ("PATCH", "/api/v1/cards/{card_id}"),
}
# Operations whose valid data may still be refused by a rule of the contract (docstring).
ACCEPTED_REFUSALS = [
    ("POST", "/api/v1/subjects/{subject_id}/documents", 415),
    ("PATCH", NOTE, 422),
    ("PATCH", "/api/v1/documents/{document_id}", 422),
    ("PATCH", "/api/v1/cards/{card_id}", 422),
]
# What schemathesis' positive_data_acceptance check accepts by default.
ACCEPTED = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx"]
SESSION_ENDERS = {
    ("POST", f"{AUTH}/logout"),
    ("DELETE", ME),
    ("POST", f"{AUTH}/password/reset"),
    ("POST", f"{AUTH}/email/revert"),
}
# The links sent by email: their tokens cannot be generated, only issued.
LINK_TOKENS = {
    ("POST", f"{AUTH}/password/reset"): "reset",
    ("POST", f"{AUTH}/email/verify"): "verify",
    ("POST", f"{AUTH}/email/revert"): "revert",
}
ERASURE_CANCEL = ("POST", f"{AUTH}/erasure/cancel")
IMAGE_FORMATS = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP", "image/gif": "GIF"}


# -- the signed-in user --------------------------------------------------------------------


@dataclass
class Account:
    username: str
    email: str
    password: str
    access_token: str
    refresh_token: str


class Accounts:
    """The user the run acts as, registered and logged in through the API itself."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.client = app.test_client()  # the leak-checking client of tests/conftest.py
        self.current: Account | None = None
        self.registered = 0

    def get(self) -> Account:
        if self.current is None:
            self.current = self._register()
        return self.current

    def end(self) -> None:
        """That user's session is over: the next request gets a new user."""
        self.current = None

    def _register(self) -> Account:
        while True:
            self.registered += 1
            username = f"schemathesis-{self.registered:04d}"
            email = f"{username}@example.com"
            response = self.client.post(
                f"{AUTH}/register",
                json={"username": username, "email": email, "password": PASSWORD},
            )
            if response.status_code != 409:  # a name the run itself generated earlier
                break
        assert response.status_code == 201, response.get_data(as_text=True)
        response = self.client.post(f"{AUTH}/login", json={"login": username, "password": PASSWORD})
        assert response.status_code == 200, response.get_data(as_text=True)
        tokens = response.get_json()
        return Account(username, email, PASSWORD, tokens["access_token"], tokens["refresh_token"])

    def link_token(self, purpose: str) -> str:
        """A live token of an email link for the current user, as the email job makes it."""
        from eleva.services import auth, emails

        account = self.get()
        with self.app.app_context():
            user = auth.find_by_login(account.username)
            assert user is not None
            return emails.new_link_token(user.id, purpose, user.email)

    def erasure_token(self) -> str:
        """A live cancel link of an erasure, from the email a throwaway user gets."""
        from eleva.data import mail

        self.registered += 1
        username = f"erasable-{self.registered:04d}"
        body = {"username": username, "email": f"{username}@example.com", "password": PASSWORD}
        assert self.client.post(f"{AUTH}/register", json=body).status_code == 201
        login = self.client.post(f"{AUTH}/login", json={"login": username, "password": PASSWORD})
        bearer = {"Authorization": f"Bearer {login.get_json()['access_token']}"}
        asked = self.client.delete(ME, json={"password": PASSWORD, "erase": True}, headers=bearer)
        assert asked.status_code == 202, asked.get_data(as_text=True)
        with self.app.app_context():
            (message,) = [
                m for m in mail.outbox() if m.to == [body["email"]] and "erased" in m.subject
            ]
        found = re.search(r"cancel-erasure\?token=([A-Za-z0-9_-]+)", message.body)
        assert found is not None
        return found.group(1)

    def etag(self, path: str, authorization: str) -> str | None:
        response = self.client.get(path, headers={"Authorization": authorization})
        return response.headers.get("ETag") if response.status_code == 200 else None


def _operation(case: schemathesis.Case) -> tuple[str, str]:
    return case.method.upper(), case.operation.path


def _is_positive(case: schemathesis.Case) -> bool:
    generation = getattr(case.meta, "generation", None)
    mode = getattr(generation, "mode", None)
    return bool(mode is not None and mode.is_positive)


def _acceptable_password(password: str, account: Account, username: Any, email: Any) -> str:
    """``password``, or a strong one if the password policy would refuse it."""
    username = username if isinstance(username, str) else account.username
    email = email if isinstance(email, str) else account.email
    if password_problems(password, username=username, email=email):
        return f"{PASSWORD} {account.username}"
    return password


def complete_positive_case(accounts: Accounts, case: schemathesis.Case) -> None:
    """Fill in what the contract requires and the schema cannot say (module docstring)."""
    if not _is_positive(case) or case.method.upper() != case.operation.method.upper():
        return
    account = accounts.get()
    operation = _operation(case)
    body = case.body if isinstance(case.body, dict) else None
    if body is not None and operation == ("DELETE", ME) and isinstance(body.get("password"), str):
        body["password"] = account.password
    elif body is not None and operation == ("PATCH", ME) and isinstance(body.get("email"), str):
        body["current_password"] = account.password  # a new email needs it
    elif body is not None and operation == ("PUT", f"{ME}/password"):
        if isinstance(body.get("current_password"), str):
            body["current_password"] = account.password
        if isinstance(body.get("new_password"), str):
            body["new_password"] = _acceptable_password(body["new_password"], account, None, None)
    elif body is not None and operation == ("POST", f"{AUTH}/register"):
        if isinstance(body.get("password"), str):
            body["password"] = _acceptable_password(
                body["password"], account, body.get("username"), body.get("email")
            )
    elif body is not None and operation == ERASURE_CANCEL and isinstance(body.get("token"), str):
        body["token"] = accounts.erasure_token()
    elif body is not None and operation in LINK_TOKENS and isinstance(body.get("token"), str):
        body["token"] = accounts.link_token(LINK_TOKENS[operation])
        if isinstance(body.get("new_password"), str):
            body["new_password"] = _acceptable_password(body["new_password"], account, None, None)
    elif body is not None and operation in CARD_WRITES:
        # A card's note must be a note of its subject, which no generator can know.
        for card in body.get("cards", [body]) if isinstance(body.get("cards"), list) else [body]:
            if isinstance(card, dict) and isinstance(card.get("note_id"), int):
                card["note_id"] = None
    elif case.operation.path in ETAGGED and operation[0] in ("PATCH", "DELETE"):
        headers = case.headers or {}
        if "If-Match" in headers and isinstance(case.path_parameters, dict):
            name = ETAGGED[case.operation.path]
            path = case.operation.path.format(**{name: case.path_parameters.get(name)})
            etag = accounts.etag(path, headers.get("Authorization", ""))
            if etag is not None:
                headers["If-Match"] = etag


def follow_session(accounts: Accounts, case: schemathesis.Case, response: Any) -> None:
    """Keep the account in step with what the request did to it."""
    account = accounts.current
    if account is None:
        return
    operation = _operation(case)
    sent = (case.headers or {}).get("Authorization", "")
    ours = sent in (f"Bearer {account.access_token}", f"Bearer {account.refresh_token}")
    status = response.status_code
    if status == 401 and ours:
        accounts.end()  # revoked (e.g. a refresh token replayed) or deactivated
    elif not 200 <= status < 300 or not ours:
        return
    elif operation in SESSION_ENDERS:
        accounts.end()
    elif operation == REFRESH:
        tokens = response.json()
        account.access_token = tokens["access_token"]
        account.refresh_token = tokens["refresh_token"]
    elif operation == ("PUT", f"{ME}/password") and isinstance(case.body, dict):
        account.password = case.body["new_password"]
    elif operation == ("PATCH", ME):
        me = response.json()
        account.username, account.email = me["username"], me["email"]


# -- media --------------------------------------------------------------------------------


def _image(media_type: str) -> st.SearchStrategy[bytes]:
    def encode(size: tuple[int, int], colour: tuple[int, int, int]) -> bytes:
        buffer = io.BytesIO()
        Image.new("RGB", size, colour).save(buffer, IMAGE_FORMATS[media_type])
        return buffer.getvalue()

    sizes = st.tuples(st.integers(1, 64), st.integers(1, 64))
    colours = st.tuples(*[st.integers(0, 255)] * 3)
    return st.builds(encode, sizes, colours)


# -- the run ------------------------------------------------------------------------------


def make_config() -> SchemathesisConfig:
    return SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "workers": 1,
            "generation": {
                "max-examples": EXAMPLES,
                "deterministic": True,
                "database": "none",
            },
            "cache": {"enabled": False},  # writes nothing to disk
            "operations": [
                {
                    "include-method": method,
                    "include-path": path,
                    "checks": {
                        "positive_data_acceptance": {"expected-statuses": [*ACCEPTED, str(code)]}
                    },
                }
                for method, path, code in ACCEPTED_REFUSALS
            ],
            # Reproductions keep their bodies (the passwords are the run's own); tokens go.
            "output": {
                "sanitization": {
                    "keys-to-sanitize": ["authorization"],
                    "sensitive-markers": ["authorization"],
                }
            },
        }
    )


@dataclass
class Run:
    schema: Any
    accounts: Accounts


@pytest.fixture
def run(make_app: Callable[..., Flask], monkeypatch: pytest.MonkeyPatch) -> Iterator[Run]:
    # tests/slow/conftest.py: in memory on SQLite; on PostgreSQL a private database built by
    # the migrations, as the rest of the slow suite (not the everyday suite's `test`).
    app = make_app(LOG_LEVEL="WARNING")  # thousands of access-log lines otherwise
    accounts = Accounts(app)
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app, config=make_config())

    @schema.auth(refresh_interval=None)  # not cached: each case gets the current user's token
    class SignedIn:
        def get(self, case: schemathesis.Case, context: schemathesis.AuthContext) -> str:
            account = accounts.get()
            return account.refresh_token if _operation(case) == REFRESH else account.access_token

        def set(self, case: schemathesis.Case, token: str, context: schemathesis.AuthContext):
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}

    def before_call(context: schemathesis.HookContext, case: schemathesis.Case, kwargs) -> None:
        complete_positive_case(accounts, case)

    def after_call(context: schemathesis.HookContext, case: schemathesis.Case, response) -> None:
        follow_session(accounts, case, response)

    schema.hook(after_call)
    # The registry behind schemathesis.openapi.media_type(), which would also replace the
    # transports' own image serializers for the rest of the session.
    for media_type in IMAGE_FORMATS:
        monkeypatch.setitem(MEDIA_TYPE_STRATEGIES, media_type, _image(media_type))
    monkeypatch.setattr(WSGI_TRANSPORT, "send", _send_without_socket_options)
    # before_call exists only as a global hook: registered for this test only.
    schemathesis.hook(before_call)
    try:
        yield Run(schema, accounts)
    finally:
        st_hooks.unregister(before_call)


_original_send = WSGI_TRANSPORT.send


def _send_without_socket_options(case: schemathesis.Case, *, session=None, **kwargs):
    # schemathesis 4.32.5: the `ignored_auth` check re-sends a case with the run's transport
    # options but without its session, and the WSGI transport then hands the socket-level
    # ones (max_redirects, verify, cert, proxies) to werkzeug, which raises TypeError. The
    # WSGI transport drops them itself when a session comes along; do the same without one.
    if session is None:
        for name in ("max_redirects", "verify", "cert", "proxies"):
            kwargs.pop(name, None)
    return _original_send(case, session=session, **kwargs)


def test_the_api_conforms_to_its_spec(run: Run, capsys: pytest.CaptureFixture) -> None:
    statistic = Statistic()
    cases: Counter[str] = Counter()
    statuses: dict[str, Counter[str]] = defaultdict(Counter)
    phases: dict[str, Status] = {}
    errors: list[events.NonFatalError] = []
    finished: events.EngineFinished | None = None
    started = time.perf_counter()

    for event in from_schema(run.schema).execute():
        if isinstance(event, events.ScenarioFinished) and event.is_test_scenario:
            statistic.on_scenario_finished(event.recorder)
            cases[event.phase.value] += len(event.recorder.cases)
            for case_id, interaction in event.recorder.interactions.items():
                if interaction.response is not None:
                    label = event.recorder.cases[case_id].value.operation.label
                    statuses[label][f"{interaction.response.status_code // 100}xx"] += 1
        elif isinstance(event, events.PhaseFinished):
            phases[event.phase.name.value] = event.status
        elif isinstance(event, events.NonFatalError):
            errors.append(event)
        elif isinstance(event, events.FatalError):
            raise event.exception
        elif isinstance(event, events.EngineFinished):
            finished = event
    elapsed = time.perf_counter() - started

    assert finished is not None
    if finished.failures:
        statistic.record_run_check_failures(finished.failures, label="run checks")
    summary = (
        f"schemathesis {schemathesis.__version__}: {sum(cases.values())} cases "
        f"({', '.join(f'{phase} {n}' for phase, n in cases.items())}) in {elapsed:.1f} s; "
        f"{EXAMPLES} examples per operation, seed {SEED}; "
        f"{run.accounts.registered} users registered; "
        f"{statistic.total_failures} failures, {len(errors)} errors"
    )
    with capsys.disabled():
        print(f"\n{summary}")
        for label in sorted(statuses):
            counts = " ".join(f"{k}={v}" for k, v in sorted(statuses[label].items()))
            print(f"  {label:<45} {counts}")

    assert not errors and not statistic.failures, _report(summary, statistic, errors)
    # The run really ran: every phase, the stateful one included (it needs links).
    for phase in (PhaseName.COVERAGE, PhaseName.FUZZING, PhaseName.STATEFUL_TESTING):
        assert phases.get(phase.value) == Status.SUCCESS, (phase, phases)
        assert cases[phase.value] > 0, (phase, cases)


def _report(summary: str, statistic: Statistic, errors: list[events.NonFatalError]) -> str:
    output = make_config().output
    lines = [summary, ""]
    for label in sorted(statistic.failures):
        lines.append(f"__ {label} __")
        for index, group in enumerate(statistic.failures[label].values(), 1):
            lines.append(group.format(index=index, curl=group.code_sample, config=output))
    for error in errors:
        lines.append(f"__ error: {error.label} __")
        lines.append(f"{error.info.title}: {error.info.message}")
        if error.info.code_sample:
            lines.append(error.info.code_sample)
    return "\n".join(lines)
