"""Migrations: one history that builds the schema the models describe, both ways."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from flask_migrate import downgrade, upgrade
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.exc import IntegrityError

from eleva import create_app
from eleva.data.db import db
from tests.conftest import ON_POSTGRES, TEST_DATABASE_URL, make_config, requires_postgres


@pytest.fixture
def postgres_database() -> Iterator[str]:
    """An empty PostgreSQL database of its own, dropped afterwards."""
    name = f"eleva_migrations_{uuid.uuid4().hex[:8]}"
    admin_url = TEST_DATABASE_URL.rsplit("/", 1)[0] + "/postgres"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield TEST_DATABASE_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def empty_database(request, tmp_path) -> Iterator[str]:
    if ON_POSTGRES:
        yield request.getfixturevalue("postgres_database")
    else:
        yield f"sqlite:///{tmp_path / 'migrations.sqlite3'}"


def app_on(url: str):
    return create_app(make_config(), {"SQLALCHEMY_DATABASE_URI": url})


def table_names(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_upgrade_builds_every_table_and_downgrade_removes_them(empty_database):
    app = app_on(empty_database)
    with app.app_context():
        upgrade()
        assert table_names(empty_database) == set(db.metadata.tables)
        downgrade(revision="base")
        assert table_names(empty_database) == set()
        upgrade()
        assert table_names(empty_database) == set(db.metadata.tables)
        db.engine.dispose()


def index_names(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "sqlite":  # its inspector skips expression indexes
                rows = conn.execute(
                    text("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")
                )
            else:
                rows = conn.execute(
                    text(
                        "SELECT indexname FROM pg_indexes WHERE schemaname = 'public' AND indexname NOT LIKE 'pk_%' AND tablename <> 'alembic_version'"
                    )
                )
            return {row[0] for row in rows}
    finally:
        engine.dispose()


def test_every_index_of_the_models_survives_the_whole_history(empty_database):
    dialect = "postgresql" if ON_POSTGRES else "sqlite"
    expected = {
        index.name
        for table in db.metadata.tables.values()
        for index in table.indexes
        if dialect in index.info.get("dialects", (dialect,))
    }
    assert {
        "uq_users_email_lower",
        "uq_users_username_lower",
        "uq_subjects_owner_name_lower",
    } <= expected
    app = app_on(empty_database)
    with app.app_context():
        upgrade()
        db.engine.dispose()
    assert index_names(empty_database) == expected


def trigger_names(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "sqlite":
                sql = "SELECT name FROM sqlite_master WHERE type = 'trigger'"
            else:
                sql = "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal"
            return {row[0] for row in conn.execute(text(sql))}
    finally:
        engine.dispose()


def test_the_exact_core_drops_every_counter_and_trigger_and_puts_them_back(empty_database):
    """0011: no counter kept by a trigger, no NOTIFY; its downgrade recounts them."""
    app = app_on(empty_database)
    with app.app_context():
        upgrade(revision="0010_user_changes")
        with db.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO users (email, username, password_hash, created_at, updated_at) "
                    "VALUES ('a@example.com', 'ada', 'x', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                )
            )
            for name, archived in (("A", False), ("B", False), ("C", True)):
                conn.execute(
                    text(
                        "INSERT INTO subjects (owner_id, name, is_archived, created_at, updated_at) "
                        "SELECT id, :n, :a, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP FROM users"
                    ),
                    {"n": name, "a": archived},
                )
        assert trigger_names(empty_database)
        upgrade()
        assert trigger_names(empty_database) == set()
        columns = {c["name"] for c in inspect(db.engine).get_columns("users")}
        assert not {"subjects_active", "subjects_archived", "documents_count"} & columns
        with db.engine.begin() as conn:
            conn.execute(text("DELETE FROM subjects WHERE name = 'C'"))
        downgrade(revision="0010_user_changes")
        counts = "SELECT subjects_active, subjects_archived, documents_count FROM users"
        with db.engine.begin() as conn:
            assert tuple(conn.execute(text(counts)).one()) == (2, 0, 0)
            conn.execute(text("UPDATE subjects SET is_archived = NOT is_archived WHERE name = 'A'"))
            assert tuple(conn.execute(text(counts)).one()) == (1, 1, 0)
        upgrade()
        assert trigger_names(empty_database) == set()
        db.engine.dispose()


def test_unique_indexes_from_the_migrations_are_case_insensitive(empty_database):
    app = app_on(empty_database)
    with app.app_context():
        upgrade()
        with db.engine.begin() as conn:
            insert = text(
                "INSERT INTO users (email, username, password_hash, created_at, updated_at) "
                "VALUES (:e, :u, 'x', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            )
            conn.execute(insert, {"e": "a@example.com", "u": "Ada"})
        with pytest.raises(IntegrityError), db.engine.begin() as conn:
            conn.execute(insert, {"e": "b@example.com", "u": "ADA"})
        db.engine.dispose()


@requires_postgres
def test_models_and_migrations_agree(postgres_database):
    """`flask db check`: autogenerate finds nothing to do after upgrading to head."""
    app = app_on(postgres_database)
    runner = app.test_cli_runner()
    with app.app_context():
        upgrade()
        db.engine.dispose()
    result = runner.invoke(args=["db", "check"])
    assert result.exit_code == 0, result.output


@requires_postgres
def test_the_agreement_check_notices_drift(postgres_database):
    """The check can fail: a database without one of the models' indexes is caught."""
    app = app_on(postgres_database)
    runner = app.test_cli_runner()
    with app.app_context():
        upgrade()
        with db.engine.begin() as conn:
            conn.execute(text("DROP INDEX ix_subjects_owner_name"))
        db.engine.dispose()
    result = runner.invoke(args=["db", "check"])
    assert result.exit_code != 0
    assert "ix_subjects_owner_name" in (result.output + str(result.exception))


def test_hardening_counts_notes_in_the_quota_and_cleans_their_excerpts(empty_database):
    """0013_hardening on existing rows: notes' bytes backfilled into the quota, excerpts
    that turned escaped text into tags made again, and (PostgreSQL) the vectors rebuilt
    with punctuation made spaces, so a word inside an address is found."""
    app = app_on(empty_database)
    with app.app_context():
        upgrade(revision="0010_user_changes")
        with db.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO users (email, username, password_hash, storage_used, "
                    "created_at, updated_at) VALUES ('a@example.com', 'ada', 'x', 10, "
                    "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO subjects (owner_id, name, created_at, updated_at) "
                    "SELECT id, 'S', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP FROM users"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO notes (owner_id, subject_id, title, body, excerpt, created_at, "
                    "updated_at) SELECT owner_id, id, 'Tél', :body, :excerpt, "
                    "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP FROM subjects"
                ),
                {"body": "mail ada@example.com &lt;img src=x&gt;", "excerpt": "<img src=x>"},
            )
        upgrade()
        with db.engine.begin() as conn:
            size, excerpt = conn.execute(text("SELECT size, excerpt FROM notes")).one()
            used = conn.execute(text("SELECT storage_used FROM users")).scalar()
            if ON_POSTGRES:
                found = conn.execute(
                    text(
                        "SELECT count(*) FROM notes WHERE search_vector @@ "
                        "to_tsquery('eleva_search', 'example')"
                    )
                ).scalar()
                assert found == 1
        assert size == len("Tél".encode()) + len("mail ada@example.com &lt;img src=x&gt;")
        assert used == 10 + size
        assert "<" not in excerpt and excerpt.startswith("mail ada@example.com")
        downgrade(revision="0010_user_changes")
        with db.engine.begin() as conn:
            assert conn.execute(text("SELECT storage_used FROM users")).scalar() == 10
        db.engine.dispose()
