"""The flask CLI: demo and load data, user administration, storage and session upkeep.

Every command exits non-zero with a one-line message when it cannot do what was asked.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

import click
import marshmallow as ma
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext
from sqlalchemy import delete, func, insert, or_, select

from eleva.core.errors import AppError
from eleva.core.passwords import hash_password
from eleva.data import jobs
from eleva.data.db import db
from eleva.data.models import AccountToken, LoginSession, Subject, User, utcnow
from eleva.data.storage import StorageError, storage
from eleva.services import auth, document_text, documents, emails
from eleva.users.schemas import UserCreateSchema

DEMO_USERNAME = "demo"
DEMO_EMAIL = "demo@example.com"
DEMO_SUBJECTS = [
    # name, colour, archived
    ("Linear algebra", "#3A7BD5", False),
    ("Organic chemistry", "#2ECC71", False),
    ("World history", "#E67E22", False),
    ("French literature", "#9B59B6", False),
    ("Macroeconomics", "#F1C40F", False),
    ("Data structures", "#1ABC9C", False),
    ("Cell biology", "#E74C3C", False),
    ("Statistics", "#34495E", False),
    ("Philosophy of mind", "#95A5A6", False),
    ("Music theory", "#D35400", True),
    ("Latin I", "#7F8C8D", True),
    ("Intro to programming", "#2980B9", True),
]
LOAD_PASSWORD = "load-test-password-not-secret"  # noqa: S105 (load data only)
BATCH_SIZE = 1000


def register_commands(app: Flask) -> None:
    app.cli.add_command(seed)
    app.cli.add_command(users_cli)
    app.cli.add_command(storage_cli)
    app.cli.add_command(sessions_cli)
    app.cli.add_command(mail_cli)
    app.cli.add_command(jobs_cli)


def _find_user(login: str) -> User:
    user = auth.find_by_login(login)
    if user is None:
        raise click.ClickException(f"no user with username or email {login!r}")
    return user


# -- seed --------------------------------------------------------------------------------


@click.command("seed")
@with_appcontext
@click.option("--password", help="Password of the demo user (default: a random one, printed once).")
@click.option(
    "--users", "n_users", type=click.IntRange(min=0), default=0, help="Load users to add."
)
@click.option(
    "--subjects",
    "n_subjects",
    type=click.IntRange(min=0),
    default=10,
    help="Subjects per load user.",
)
def seed(password: str | None, n_users: int, n_subjects: int) -> None:
    """Create the demo user and subjects; optionally load data. Safe to run twice."""
    _seed_demo(password)
    if n_users:
        _seed_load(n_users, n_subjects)


def _seed_demo(password: str | None) -> None:
    user = auth.find_by_login(DEMO_USERNAME)
    if user is None:
        generated = password is None
        password = password or secrets.token_urlsafe(12)
        try:
            auth.register(
                email=DEMO_EMAIL,
                username=DEMO_USERNAME,
                password=password,
                full_name="Demo Student",
            )
        except AppError as exc:
            raise click.ClickException(f"cannot create the demo user: {exc.message}") from None
        user = auth.find_by_login(DEMO_USERNAME)
        if user is None:  # it was just created
            raise click.ClickException("the demo user vanished as it was created")
        click.echo(f"Created user {DEMO_USERNAME} ({DEMO_EMAIL}).")
        if generated:
            click.echo(f"Its password (shown once): {password}")
    else:
        click.echo(f"User {DEMO_USERNAME} already exists; left as it is.")
    existing = set(
        db.session.scalars(select(func.lower(Subject.name)).where(Subject.owner_id == user.id))
    )
    missing = [
        {
            "owner_id": user.id,
            "name": name,
            "color": color,
            "is_archived": archived,
            "description": f"Notes and documents for {name}.",
        }
        for name, color, archived in DEMO_SUBJECTS
        if name.lower() not in existing
    ]
    if missing:
        db.session.execute(insert(Subject), missing)
        db.session.commit()
    click.echo(
        f"Demo subjects: {len(missing)} added, {len(DEMO_SUBJECTS) - len(missing)} already there."
    )


def _seed_load(n_users: int, n_subjects: int) -> None:
    # One bcrypt hash shared by every load user: 10,000 hashes at cost 12 would take
    # half an hour and prove nothing.
    password_hash = hash_password(LOAD_PASSWORD, rounds=current_app.config["BCRYPT_ROUNDS"])
    now = utcnow()
    added = 0
    with click.progressbar(length=n_users, label="Load users") as bar:
        for start in range(0, n_users, BATCH_SIZE):
            names = [f"load{i:07d}" for i in range(start + 1, min(start + BATCH_SIZE, n_users) + 1)]
            taken = set(db.session.scalars(select(User.username).where(User.username.in_(names))))
            rows = [
                {
                    "username": n,
                    "email": f"{n}@load.example.com",
                    "password_hash": password_hash,
                    "created_at": now,
                    "updated_at": now,
                }
                for n in names
                if n not in taken
            ]
            if rows:
                ids = db.session.scalars(insert(User).returning(User.id), rows).all()
                subject_rows = [
                    {
                        "owner_id": uid,
                        "name": f"Subject {j + 1}",
                        "is_archived": j % 5 == 4,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for uid in ids
                    for j in range(n_subjects)
                ]
                if subject_rows:
                    db.session.execute(insert(Subject), subject_rows)
                db.session.commit()
                added += len(rows)
            bar.update(len(names))
    click.echo(
        f"Load data: {added} users added (password {LOAD_PASSWORD!r}), {n_subjects} subjects each."
    )


# -- users -------------------------------------------------------------------------------

users_cli = AppGroup("users", help="Administer user accounts.")


@users_cli.command("create")
@click.argument("username")
@click.argument("email")
@click.option("--full-name")
@click.password_option(help="Prompted (hidden, confirmed) when not given.")
def create_user(username: str, email: str, full_name: str | None, password: str) -> None:
    """Create an account, with the same rules as registration."""
    try:
        data = UserCreateSchema().load(
            {"username": username, "email": email, "password": password, "full_name": full_name}
        )
        user = auth.register(**data)
    except ma.ValidationError as exc:
        raise click.ClickException(_one_line(exc.messages)) from None
    except AppError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"Created user {user.username} (id {user.id}).")


@users_cli.command("deactivate")
@click.argument("login")
def deactivate_user(login: str) -> None:
    """Deactivate an account and end its sessions (data kept)."""
    user = _find_user(login)
    user.is_active = False
    ended = auth.end_sessions(user.id, reason="deactivated")
    db.session.commit()
    click.echo(f"Deactivated {user.username}; {ended} session(s) ended.")


@users_cli.command("activate")
@click.argument("login")
def activate_user(login: str) -> None:
    """Reactivate a deactivated account."""
    user = _find_user(login)
    user.is_active = True
    db.session.commit()
    click.echo(f"Activated {user.username}.")


@users_cli.command("purge")
@click.argument("login")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def purge_user(login: str, yes: bool) -> None:
    """Delete an account for good: its subjects, sessions and stored pictures too."""
    user = _find_user(login)
    if not yes:
        click.confirm(
            f"Delete {user.username} ({user.email}) and all their data for good?", abort=True
        )
    user_id, username = user.id, user.username
    try:
        removed = storage.delete_prefix(f"profile-pictures/{user_id}/")
    except StorageError as exc:
        raise click.ClickException(
            f"stored pictures could not be deleted, user kept: {exc}"
        ) from None
    db.session.execute(delete(User).where(User.id == user_id))
    db.session.commit()
    # Documents after the commit, best effort: what is left is unreferenced, and
    # `flask storage sweep` removes it.
    try:
        removed += storage.delete_prefix(f"{documents.KEY_PREFIX}{user_id}/")
    except StorageError as exc:
        click.echo(f"Some documents were not deleted ({exc}): run `flask storage sweep`.")
    click.echo(f"Purged {username}: account, subjects, sessions and {removed} stored object(s).")


@users_cli.command("list")
@click.option("--inactive", is_flag=True, help="Only deactivated accounts.")
@click.option("--search", help="Part of a username or email.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
def list_users(inactive: bool, search: str | None, limit: int) -> None:
    """List accounts, newest first."""
    query = select(User).order_by(User.id.desc()).limit(limit)
    if inactive:
        query = query.where(User.is_active.is_(False))
    if search:
        term = search.lower()
        query = query.where(
            or_(
                func.lower(User.username).contains(term, autoescape=True),
                User.email.contains(term, autoescape=True),
            )
        )
    rows = db.session.scalars(query).all()
    click.echo(f"{'id':>7}  {'username':<30}  {'email':<40}  active  created")
    for u in rows:
        click.echo(
            f"{u.id:>7}  {u.username:<30}  {u.email:<40}  {'yes' if u.is_active else 'no':<6}  {u.created_at:%Y-%m-%d}"
        )
    click.echo(f"{len(rows)} user(s).")


# -- storage and sessions ----------------------------------------------------------------

storage_cli = AppGroup("storage", help="Check and tidy the configured file storage.")


@storage_cli.command("check")
def storage_check() -> None:
    """Write, read back and delete a probe object in the configured backend."""
    try:
        name = storage.check()
    except StorageError as exc:
        raise click.ClickException(f"storage is not usable: {exc}") from None
    click.echo(f"Storage backend {name!r} is reachable and writable.")


@storage_cli.command("sweep")
@click.option("--dry-run", is_flag=True, help="Only say what would be removed.")
def storage_sweep(dry_run: bool) -> None:
    """Remove direct uploads never completed within an hour (object and document) and
    stored documents that no row references (older than an hour)."""
    try:
        plan = documents.sweep_plan()
    except StorageError as exc:
        raise click.ClickException(f"storage is not usable: {exc}") from None
    size = sum(obj.size for obj in plan.orphans)
    click.echo(
        f"{len(plan.stale_uploads)} upload(s) never completed; "
        f"{len(plan.orphans)} unreferenced object(s) ({size} bytes)."
    )
    if dry_run:
        for obj in plan.orphans:
            click.echo(f"  would delete {obj.key}")
        click.echo("Dry run: nothing removed.")
        return
    uploads = objects = 0
    steps: list[tuple[str, int | str]] = [("upload", doc_id) for doc_id in plan.stale_uploads]
    steps += [("object", obj.key) for obj in plan.orphans]
    with click.progressbar(steps, label="Sweeping") as bar:
        for kind, item in bar:
            if kind == "upload":
                uploads += documents.remove_stale_upload(int(item))
            else:
                objects += documents.discard(str(item))
    click.echo(f"Removed {uploads} upload(s) and {objects} unreferenced object(s).")


sessions_cli = AppGroup("sessions", help="Login-session upkeep.")


@sessions_cli.command("prune")
@click.option(
    "--days",
    type=click.IntRange(min=0),
    default=30,
    show_default=True,
    help="Keep ended sessions this many days (for audits).",
)
def prune_sessions(days: int) -> None:
    """Delete sessions that expired or were revoked more than DAYS ago, and expired
    email link tokens (a dead link has nothing to audit)."""
    now = utcnow()
    cutoff = now - timedelta(days=days)
    result = db.session.execute(
        delete(LoginSession).where(
            or_(LoginSession.expires_at < cutoff, LoginSession.revoked_at < cutoff)
        )
    )
    tokens = db.session.execute(delete(AccountToken).where(AccountToken.expires_at < now))
    db.session.commit()
    click.echo(f"Deleted {getattr(result, 'rowcount', 0)} ended session(s).")
    click.echo(f"Deleted {getattr(tokens, 'rowcount', 0)} expired email link token(s).")


def _one_line(messages: object) -> str:
    if isinstance(messages, dict):
        return "; ".join(f"{k}: {_one_line(v)}" for k, v in messages.items())
    if isinstance(messages, list):
        return " ".join(_one_line(m) for m in messages)
    return str(messages)


# -- mail and jobs -----------------------------------------------------------------------

mail_cli = AppGroup("mail", help="Email: check the settings.")


@mail_cli.command("send-test")
@click.argument("address")
@click.option("--queue", is_flag=True, help="Through the job queue (checks the worker too).")
def mail_send_test(address: str, queue: bool) -> None:
    """Send a test email to ADDRESS through MAIL_BACKEND (now, or with --queue as a job)."""
    backend = current_app.config["MAIL_BACKEND"]
    try:
        if queue:
            jobs.enqueue(emails.send_test_email, to=address)
        else:
            emails.send_test_email(address)
    except Exception as exc:  # any failure to send is the answer the command gives
        raise click.ClickException(f"could not send: {type(exc).__name__}: {exc}") from None
    where = "queued for the worker" if queue and jobs.connection() else f"sent via {backend}"
    click.echo(f"test email to {address}: {where}")


jobs_cli = AppGroup("jobs", help="Background jobs (RQ on REDIS_URL).")


@jobs_cli.command("worker")
@click.option("--burst", is_flag=True, help="Stop when the queues are empty.")
def jobs_worker(burst: bool) -> None:
    """Run a worker on the job queues, emails first (the Procfile's worker: process).

    It first queues what the outbox still holds (``flask jobs sweep``)."""
    if not current_app.config.get("REDIS_URL"):
        raise click.ClickException("REDIS_URL is not set: jobs run in the web process")
    jobs.sweep_outbox()
    jobs.work(burst=burst)


@jobs_cli.command("sweep")
def jobs_sweep() -> None:
    """Queue the outbox's jobs that never reached the queue (it was down when their
    change committed) or were lost from it. Cron it every few minutes."""
    count = jobs.sweep_outbox()
    click.echo(f"Queued {count} job(s) from the outbox.")


@jobs_cli.command("extract-text")
def jobs_extract_text() -> None:
    """Queue the text extraction of documents whose text is still pending: those
    waiting (the queue was down at upload time) and those queued over an hour ago and
    never run (a deploy lost them), at most TEXT_EXTRACTION_QUEUED per user at a time;
    each extraction that ends queues its owner's next."""
    pending = document_text.queue_all_waiting()
    click.echo(f"{pending} document(s) have their text pending: queued, or waiting their turn.")
