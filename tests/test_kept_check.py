"""The caller check, kept by each worker while the database says nothing of the user
(eleva.data.fastread.KeptRead; PostgreSQL's LISTEN/NOTIFY fed by the triggers of
migration 0010): no statement when nothing changed, and every change heard of, whoever
made it, or the check asked anew."""

from __future__ import annotations

import select
import time
from collections.abc import Callable, Iterator

import psycopg
import pytest
from sqlalchemy import text, update

from eleva.data.db import db
from eleva.data.fastread import DIRECT_STATEMENT_LISTENERS
from eleva.data.models import User
from tests.conftest import ON_POSTGRES, TEST_DATABASE_URL, assert_error_shape, requires_postgres

ME = "/api/v1/users/me"
SUBJECTS = "/api/v1/subjects/"


@pytest.fixture
def elsewhere() -> Iterator[psycopg.Connection]:
    """A connection of its own: another worker, a job, an operator's psql."""
    dsn = TEST_DATABASE_URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        yield conn


def _until(check: Callable[[], bool], seconds: float = 2.0) -> float:
    """Seconds until ``check()`` held; fails past ``seconds``."""
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < seconds, "not within the time"
        time.sleep(0.005)
    return time.monotonic() - start


def test_a_repeated_request_checks_its_caller_without_a_statement(client, user, count_queries):
    assert client.get(ME, headers=user.headers).status_code == 200
    with count_queries() as me:
        assert client.get(ME, headers=user.headers).status_code == 200
    with count_queries() as listed:
        assert client.get(SUBJECTS, headers=user.headers).status_code == 200
    # SQLite keeps nothing: the check is a statement there, every time.
    assert len(me) == (0 if ON_POSTGRES else 1), me
    assert len(listed) == (1 if ON_POSTGRES else 2), listed


@pytest.mark.config(SESSION_CHECK_KEEP_SECONDS=0)
def test_zero_seconds_asks_the_database_every_time(client, user, count_queries):
    for _ in range(3):
        with count_queries() as statements:
            assert client.get(ME, headers=user.headers).status_code == 200
        assert len(statements) == 1, statements


def test_a_commit_of_this_process_is_seen_by_its_next_request_at_once(app, client, user):
    assert client.get(ME, headers=user.headers).status_code == 200
    with app.app_context():
        db.session.execute(update(User).where(User.id == user.id).values(is_active=False))
        db.session.commit()
    assert_error_shape(client.get(ME, headers=user.headers), 401)


def test_a_write_through_the_api_is_seen_by_the_next_request(client, user):
    assert client.get(ME, headers=user.headers).json["bio"] is None
    assert client.patch(ME, json={"bio": "hello"}, headers=user.headers).status_code == 200
    assert client.get(ME, headers=user.headers).json["bio"] == "hello"
    changed = client.patch(ME, json={"privacy": {"show_email": True}}, headers=user.headers)
    assert changed.status_code == 200
    assert client.get(ME, headers=user.headers).json["privacy"]["show_email"] is True


@requires_postgres
def test_a_session_revoked_elsewhere_ends_within_its_notification(client, user, elsewhere):
    assert client.get(ME, headers=user.headers).status_code == 200
    elsewhere.execute("UPDATE login_sessions SET revoked_at = now() WHERE user_id = %s", (user.id,))
    # Heard of long before the 10 s the worker may keep it otherwise.
    waited = _until(lambda: client.get(ME, headers=user.headers).status_code == 401)
    assert waited < 1.0


@requires_postgres
def test_a_profile_changed_elsewhere_is_read_anew(client, user, other, elsewhere, count_queries):
    assert client.get(ME, headers=other.headers).status_code == 200
    assert client.get(ME, headers=user.headers).json["full_name"] is None
    elsewhere.execute("UPDATE users SET full_name = 'Ada L.' WHERE id = %s", (user.id,))
    _until(lambda: client.get(ME, headers=user.headers).json["full_name"] == "Ada L.")
    # Another user's check was not touched: still kept, on the same connection.
    with count_queries() as statements:
        assert client.get(ME, headers=other.headers).status_code == 200
    assert statements == []


def _without_notification(conn: psycopg.Connection, sql: str, user_id: int) -> None:
    # Triggers off for this transaction only: a change the workers are not told of.
    # Setting session_replication_role takes a superuser (CI's postgres is one).
    superuser = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
    if not superuser.fetchone()[0]:
        pytest.skip("needs a PostgreSQL superuser to switch the triggers off")
    with conn.transaction():
        conn.execute("SET LOCAL session_replication_role = replica")
        conn.execute(sql, (user_id,))


@requires_postgres
@pytest.mark.config(SESSION_CHECK_KEEP_SECONDS=1)
def test_what_is_kept_is_asked_anew_after_its_seconds(client, user, elsewhere):
    """The net under notifications that never come: the check is kept, truly (a change
    nobody announced is not seen), and at most SESSION_CHECK_KEEP_SECONDS."""
    assert client.get(ME, headers=user.headers).status_code == 200
    _without_notification(
        elsewhere, "UPDATE login_sessions SET revoked_at = now() WHERE user_id = %s", user.id
    )
    assert client.get(ME, headers=user.headers).status_code == 200  # kept
    waited = _until(lambda: client.get(ME, headers=user.headers).status_code == 401, 5.0)
    # Not before its second (less what the change above took); the upper bound leaves
    # room for a loaded machine, well short of the default 10 s.
    assert 0.5 < waited < 3.0, waited


@requires_postgres
def test_a_dead_read_connection_forgets_what_it_kept(app, client, user, elsewhere):
    """A connection that died may have missed notifications: nothing it kept is used."""
    from eleva.data.fastread import _READ_CONNECTIONS

    assert client.get(ME, headers=user.headers).status_code == 200
    with app.app_context():
        reader = _READ_CONNECTIONS.held(db.engine)
    assert reader.kept, "nothing kept: the test would prove nothing"
    _without_notification(
        elsewhere, "UPDATE login_sessions SET revoked_at = now() WHERE user_id = %s", user.id
    )
    pid = reader.cursor.connection.info.backend_pid
    elsewhere.execute("SELECT pg_terminate_backend(%s)", (pid,))
    _until(
        lambda: (
            not elsewhere.execute(
                "SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)
            ).fetchone()
        )
    )
    assert_error_shape(client.get(ME, headers=user.headers), 401)


@requires_postgres
def test_a_notification_during_the_check_is_not_taken_for_an_answer(
    client, user, elsewhere, count_queries
):
    """A notification read while the check's statement runs may be of a change the
    statement did not see: its answer is used once, not kept."""

    def notify_first(_connection, sql: str, _params) -> None:
        if "login_sessions" in sql:
            elsewhere.execute("SELECT pg_notify('user_changes', %s)", (str(user.id),))
            time.sleep(0.05)  # delivered before the statement's own answer

    # A write of this process: nothing kept, the next check runs its statement.
    assert client.patch(ME, json={"bio": "x"}, headers=user.headers).status_code == 200
    DIRECT_STATEMENT_LISTENERS.append(notify_first)
    try:
        assert client.get(ME, headers=user.headers).status_code == 200
    finally:
        DIRECT_STATEMENT_LISTENERS.remove(notify_first)
    with count_queries() as statements:
        assert client.get(ME, headers=user.headers).status_code == 200
    assert len(statements) == 1, statements
    with count_queries() as statements:
        assert client.get(ME, headers=user.headers).status_code == 200
    assert statements == []


@requires_postgres
def test_a_commit_of_this_process_is_seen_without_its_notification(app, client, user, elsewhere):
    """The fence alone: a commit here that no trigger announces (triggers switched off
    for its transaction) still ends the check kept before it."""
    assert client.get(ME, headers=user.headers).status_code == 200
    if not elsewhere.execute(
        "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
    ).fetchone()[0]:
        pytest.skip("needs a PostgreSQL superuser to switch the triggers off")
    with app.app_context():
        db.session.execute(text("SET LOCAL session_replication_role = replica"))
        db.session.execute(update(User).where(User.id == user.id).values(is_active=False))
        db.session.commit()
    assert_error_shape(client.get(ME, headers=user.headers), 401)


@requires_postgres
def test_a_commit_of_this_process_makes_the_next_check_ask_once(
    app, client, user, other, count_queries
):
    """The fence: after a commit here the next check asks (bringing the commit's
    notifications with its answer); the one after is kept again."""
    assert client.get(ME, headers=user.headers).status_code == 200
    with app.app_context():
        db.session.execute(update(User).where(User.id == other.id).values(bio="elsewhere"))
        db.session.commit()
    for expected in (1, 0):
        with count_queries() as statements:
            assert client.get(ME, headers=user.headers).status_code == 200
        assert len(statements) == expected, statements


@requires_postgres
def test_the_subject_counters_alone_are_not_announced(client, user, elsewhere, count_queries):
    """Every subject written changes its owner's counters; nothing kept reads them."""
    assert client.get(ME, headers=user.headers).status_code == 200
    elsewhere.execute(
        "INSERT INTO subjects (owner_id, name, is_archived, created_at, updated_at) "
        "VALUES (%s, 'Maths', false, now(), now())",
        (user.id,),
    )
    assert elsewhere.execute(
        "SELECT subjects_active FROM users WHERE id = %s", (user.id,)
    ).fetchone() == (1,)
    time.sleep(0.2)  # time for a notification, were one sent
    with count_queries() as statements:
        assert client.get(ME, headers=user.headers).status_code == 200
    assert statements == []


@requires_postgres
def test_a_truncate_elsewhere_makes_every_worker_forget_all(client, user, other, elsewhere):
    """A TRUNCATE names no user: its notification ('*') clears everything kept."""
    assert client.get(ME, headers=user.headers).status_code == 200
    assert client.get(ME, headers=other.headers).status_code == 200
    elsewhere.execute("TRUNCATE login_sessions CASCADE")
    assert _until(lambda: client.get(ME, headers=user.headers).status_code == 401) < 1.0
    assert_error_shape(client.get(ME, headers=other.headers), 401)


@requires_postgres
@pytest.mark.parametrize(
    "change",
    [
        "UPDATE users SET is_active = false WHERE id = %(id)s",
        "DELETE FROM users WHERE id = %(id)s",
        # An upsert that updates: its UPDATE triggers fire too.
        "INSERT INTO users SELECT * FROM users WHERE id = %(id)s"
        " ON CONFLICT (id) DO UPDATE SET is_active = false",
    ],
    ids=["deactivated", "deleted", "upserted"],
)
def test_a_user_ended_elsewhere_is_refused_within_its_notification(
    client, user, elsewhere, count_queries, change
):
    assert client.get(ME, headers=user.headers).status_code == 200
    with count_queries() as statements:
        assert client.get(ME, headers=user.headers).status_code == 200
    assert statements == [], "not kept: the test would prove nothing"
    elsewhere.execute(change, {"id": user.id})
    assert _until(lambda: client.get(ME, headers=user.headers).status_code == 401) < 1.0


@requires_postgres
def test_a_check_is_never_kept_past_its_session_expiry(client, user, elsewhere, count_queries):
    """Kept up to 10 s, but the session ends in about one: the check ends with it."""
    elsewhere.execute(
        "UPDATE login_sessions SET expires_at = now() + interval '1.5 seconds' WHERE user_id = %s",
        (user.id,),
    )
    _until(lambda: client.get(ME, headers=user.headers).status_code == 200)
    with count_queries() as statements:
        assert client.get(ME, headers=user.headers).status_code == 200
    assert statements == [], "not kept: the test would prove nothing"
    waited = _until(lambda: client.get(ME, headers=user.headers).status_code == 401, 5.0)
    assert waited < 3.0, waited


@requires_postgres
def test_a_connection_ended_with_a_notification_pending_is_not_used(app, client, user, elsewhere):
    """The server ends the read connection just after a notification of the caller: a
    first read finds the notification, the end only a second. The check asks the
    database on a new connection, not on the ended one (a 500)."""
    from eleva.data.fastread import _READ_CONNECTIONS

    assert client.get(ME, headers=user.headers).status_code == 200
    with app.app_context():
        reader = _READ_CONNECTIONS.held(db.engine)
    socket = reader.cursor.connection.pgconn.socket
    elsewhere.execute("SELECT pg_notify('user_changes', %s)", (str(user.id),))
    _until(lambda: _polled(socket, select.POLLIN))  # the notification is in
    pid = reader.cursor.connection.info.backend_pid
    elsewhere.execute("SELECT pg_terminate_backend(%s)", (pid,))
    _until(lambda: _polled(socket, select.POLLRDHUP))  # and the end after it
    assert client.get(ME, headers=user.headers).status_code == 200
    with app.app_context():
        assert _READ_CONNECTIONS.held(db.engine) is not reader


def _polled(socket: int, event: int) -> bool:
    """Whether ``event`` is on the socket, read without consuming anything."""
    poller = select.poll()
    poller.register(socket, event)
    return any(happened & event for _fd, happened in poller.poll(0))


# -- a read connection ended between its check and its statement --------------------------


@pytest.fixture
def ended_after_its_check(app, elsewhere, monkeypatch) -> Callable[[], object]:
    """Ends this thread's read connection, then makes its next liveness check say alive:
    the server ended it between the check and the statement (a restart, a failover)."""
    from eleva.data import fastread

    def end() -> object:
        with app.app_context():
            reader = fastread._READ_CONNECTIONS.held(db.engine)
        pid = reader.cursor.connection.info.backend_pid
        # With a timeout, pg_terminate_backend returns once the backend is gone.
        assert elsewhere.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,)).fetchone()[0]
        checked = fastread._Held.usable
        fooled: list[object] = []

        def alive_once(held, commits: int) -> bool:
            if not fooled:
                fooled.append(held)
                return True
            return checked(held, commits)

        monkeypatch.setattr(fastread._Held, "usable", alive_once)
        return reader

    return end


@requires_postgres
@pytest.mark.config(SESSION_CHECK_KEEP_SECONDS=0)
def test_a_read_whose_connection_ended_after_its_check_is_sent_again(
    app, client, user, ended_after_its_check, caplog, count_queries
):
    from eleva.data.fastread import _READ_CONNECTIONS

    assert client.get(ME, headers=user.headers).status_code == 200
    reader = ended_after_its_check()
    with count_queries() as sent:
        me = client.get(ME, headers=user.headers)
    assert me.status_code == 200, me.json  # not a 503
    assert len(sent) == 2 and sent[0] == sent[1]  # once on the ended connection, once anew
    lost = [r for r in caplog.records if r.name == "eleva.data.fastread"]
    assert [r.levelname for r in lost] == ["WARNING"] and not lost[0].exc_info
    with app.app_context():
        assert _READ_CONNECTIONS.held(db.engine) is not reader


@requires_postgres
def test_a_write_whose_connection_ended_is_not_sent_again(
    app, client, user, elsewhere, ended_after_its_check, count_queries
):
    """Whether a write whose connection died committed is unknown: it fails (a 503 in a
    request) and is never sent a second time."""
    from eleva.services import subjects

    created = client.post(SUBJECTS, json={"name": "Physics"}, headers=user.headers)
    subject_id = created.json["id"]
    ended_after_its_check()
    with count_queries() as sent, app.app_context(), pytest.raises(psycopg.OperationalError):
        subjects.update_subject_by_id(user.id, subject_id, {"description": "new"})
    assert len(sent) == 1 and sent[0].startswith("UPDATE")
    description = elsewhere.execute("SELECT description FROM subjects WHERE id = %s", (subject_id,))
    assert description.fetchone()[0] != "new"
