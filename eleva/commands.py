"""The flask CLI: demo and load data, user administration, storage and session upkeep.

Every command exits non-zero with a one-line message when it cannot do what was asked.
"""

from __future__ import annotations

import io
import secrets
from collections.abc import Callable
from datetime import timedelta
from functools import partial

import click
import marshmallow as ma
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext
from sqlalchemy import delete, func, insert, or_, select

from eleva.core.errors import AppError
from eleva.core.passwords import hash_password
from eleva.data import jobs
from eleva.data.db import db
from eleva.data.models import AccountToken, Document, LoginSession, Note, Subject, User, utcnow
from eleva.data.storage import PartialUpload, StorageError, storage
from eleva.services import (
    auth,
    document_text,
    documents,
    emails,
    erasure,
    exports,
    notes,
    study,
    study_demo,
)
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
# The demo's study material: notes in the first subjects, and a text document whose
# text the job queue extracts (search then finds it).
DEMO_NOTES = {
    "Linear algebra": [
        (
            "Eigenvalues",
            "# Eigenvalues\n\nFor a square matrix **A**, a scalar λ is an *eigenvalue* when "
            "`A v = λ v` for some non-zero vector v.\n\n- The characteristic polynomial: "
            "det(A − λI) = 0\n- The trace is the sum of the eigenvalues.\n",
        ),
        ("Matrix rank", "The rank is the number of linearly independent rows (or columns)."),
    ],
    "Organic chemistry": [
        (
            "Functional groups",
            "Alcohols (–OH), aldehydes (–CHO), ketones (C=O), carboxylic acids (–COOH).",
        ),
    ],
}
DEMO_DOCUMENT = (
    "Organic chemistry",
    "titration-lab.txt",
    "Lab report: titration of a weak acid with sodium hydroxide, phenolphthalein as the "
    "indicator. The equivalence point was reached at 24.6 mL.\n",
)
LOAD_PASSWORD = "load-test-password-not-secret"  # noqa: S105 (load data only)
BATCH_SIZE = 1000


def register_commands(app: Flask) -> None:
    app.cli.add_command(seed)
    app.cli.add_command(users_cli)
    app.cli.add_command(storage_cli)
    app.cli.add_command(sessions_cli)
    app.cli.add_command(mail_cli)
    app.cli.add_command(jobs_cli)
    app.cli.add_command(study_cli)


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
    "--users",
    "n_users",
    type=click.IntRange(min=0),
    default=0,
    help="Users in all, the demo user included (the others are load users).",
)
@click.option(
    "--subjects",
    "n_subjects",
    type=click.IntRange(min=0),
    default=10,
    help="Subjects per load user.",
)
def seed(password: str | None, n_users: int, n_subjects: int) -> None:
    """Create the demo user, its subjects, notes, a document and cards with a month of
    reviews; optionally load data. Safe to run twice."""
    shown = _seed_demo(password)
    _seed_study()
    if n_users > 1:
        _seed_load(n_users - 1, n_subjects)
    if shown:  # last, where it is seen: the verification email is printed before it
        click.echo(f"Log in as {DEMO_USERNAME} with the password (shown once): {shown}")


def _seed_demo(password: str | None) -> str | None:
    """Seed the demo user's data; the password it was given when generated here."""
    shown = None
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
            shown = password
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
    _seed_demo_material(user.id)
    return shown


def _seed_demo_material(user_id: int) -> None:
    """Notes and a document in the demo's subjects, once (left alone when it has any)."""
    subject_ids = {
        name: subject_id
        for name, subject_id in db.session.execute(
            select(Subject.name, Subject.id).where(Subject.owner_id == user_id)
        )
    }
    if db.session.scalar(select(func.count()).select_from(Note).where(Note.owner_id == user_id)):
        click.echo("Demo notes: already there.")
    else:
        added = 0
        for subject_name, items in DEMO_NOTES.items():
            for title, body in items:
                notes.create_note(
                    user_id, subject_ids[subject_name], {"title": title, "body": body}
                )
                added += 1
        click.echo(f"Demo notes: {added} added.")
    if db.session.scalar(
        select(func.count()).select_from(Document).where(Document.owner_id == user_id)
    ):
        click.echo("Demo documents: already there.")
        return
    subject_name, filename, text = DEMO_DOCUMENT
    try:
        documents.upload_document(
            user_id, subject_ids[subject_name], io.BytesIO(text.encode()), filename=filename
        )
    except AppError as exc:  # storage or the job queue unavailable: the rest is seeded
        click.echo(f"Demo document not added: {exc.message}")
        return
    click.echo(f"Demo documents: {filename} added (its text is extracted by a job).")


def _seed_study() -> None:
    """The demo user's flashcards, with a month of reviews by the real scheduler."""
    user = auth.find_by_login(DEMO_USERNAME)
    if user is None:
        return
    cards, reviews = study_demo.seed_demo_cards(user.id, now=utcnow())
    if cards:
        click.echo(f"Demo cards: {cards} added, with {reviews} reviews over a month.")
    else:
        click.echo("Demo cards: already there; left as they are.")


def _seed_load(n_users: int, n_subjects: int) -> None:
    # One bcrypt hash shared by every load user: bcrypt is slow by design, and a hash per
    # user would prove nothing.
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
    """Reactivate a deactivated account (its scheduled erasure, if any, is cancelled)."""
    user = _find_user(login)
    username = user.username
    try:
        cancelled = erasure.reactivate(user.id)
    except AppError as exc:
        raise click.ClickException(exc.message) from None
    note = f"; its erasure due {cancelled:%Y-%m-%d %H:%M} UTC is cancelled" if cancelled else ""
    click.echo(f"Activated {username}{note}.")


@users_cli.command("purge")
@click.argument("login")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def purge_user(login: str, yes: bool) -> None:
    """Erase an account now and for good (as `erase-due` does, without its last email):
    every row of the user and every stored object."""
    user = _find_user(login)
    if not yes:
        click.confirm(
            f"Delete {user.username} ({user.email}) and all their data for good?", abort=True
        )
    user_id, username = user.id, user.username
    try:
        erased = _erase(user_id, username, notify=False, due_only=False)
    except _NotFinished:
        raise click.ClickException(
            f"{username} is deactivated and marked for erasure, but not erased yet: "
            "run `flask users erase-due` (or this command again) to finish."
        ) from None
    objects = erased.objects if erased else 0
    click.echo(f"Purged {username}: account, subjects, sessions and {objects} stored object(s).")


class _NotFinished(Exception):
    """A fault stopped an erasure midway (said on stderr); the next run finishes it."""


def _erase(user_id: int, username: str, *, notify: bool, due_only: bool) -> erasure.Erased | None:
    """Erase one account: what went, or None when there was nothing to erase."""
    try:
        return erasure.erase_account(user_id, notify=notify, due_only=due_only)
    except (StorageError, AppError) as exc:
        db.session.rollback()
        message = exc.message if isinstance(exc, AppError) else str(exc)
        click.echo(f"  {username} (id {user_id}): not finished: {message}", err=True)
        raise _NotFinished from None


@users_cli.command("erase-due")
@click.option("--dry-run", is_flag=True, help="Only list what would be erased.")
def erase_due(dry_run: bool) -> None:
    """Erase the accounts whose erasure is due (and finish any a fault interrupted):
    a last email, every stored object, every row. Run it hourly (the worker does)."""
    due = erasure.due_erasures()
    click.echo(f"{len(due)} account(s) to erase.")
    if dry_run:
        for item in due:
            found = erasure.footprint(item.user_id)
            rows = ", ".join(f"{table} {n}" for table, n in sorted(found.rows.items()))
            state = "begun, to finish" if item.started else f"due {item.erase_at:%Y-%m-%d %H:%M}"
            click.echo(
                f"  would erase {item.username} (id {item.user_id}, {state}): rows: {rows}; "
                f"{found.objects} stored object(s), {found.bytes} bytes"
            )
        click.echo("Dry run: nothing erased.")
        return
    failed = erased_count = 0
    for item in due:
        try:
            erased = _erase(item.user_id, item.username, notify=True, due_only=True)
        except _NotFinished:
            failed += 1
            continue
        if erased is None:
            click.echo(f"  kept {item.username} (id {item.user_id}): its erasure was cancelled")
        else:
            erased_count += 1
            click.echo(f"  erased {item.username} (id {item.user_id}): {erased.objects} object(s)")
    if failed:
        raise click.ClickException(
            f"{failed} erasure(s) not finished (see above): run this command again."
        )
    click.echo(f"Erased {erased_count} account(s).")


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
    """Remove direct uploads never completed within an hour (object and document),
    stored documents and exports that no row references, and writes never finished
    (older than an hour); delete exports EXPORT_KEEP_DAYS after they were ready, and
    fail those whose job can no longer be running."""
    try:
        plan = documents.sweep_plan()
        export_plan = exports.sweep_plan()
    except StorageError as exc:
        raise click.ClickException(f"storage is not usable: {exc}") from None
    orphans = plan.orphans + export_plan.orphans
    partials = plan.partials + export_plan.partials
    size = sum(obj.size for obj in orphans)
    click.echo(
        f"{len(plan.stale_uploads)} upload(s) never completed; "
        f"{len(orphans)} unreferenced object(s) ({size} bytes)."
    )
    click.echo(
        f"Exports: {len(export_plan.expired)} to expire, {len(export_plan.stalled)} stalled, "
        f"{len(export_plan.leftovers)} failed with an object left; "
        f"{len(partials)} write(s) never finished."
    )
    if dry_run:
        for obj in orphans:
            click.echo(f"  would delete {obj.key}")
        for upload in partials:
            click.echo(f"  would abort the write of {upload.key}")
        click.echo("Dry run: nothing removed.")
        return
    counts = dict.fromkeys(("upload", "object", "expire", "stalled", "leftover", "partial"), 0)
    steps: list[tuple[str, Callable[[], bool]]] = [
        *(("upload", partial(documents.remove_stale_upload, i)) for i in plan.stale_uploads),
        *(("object", partial(documents.discard, obj.key)) for obj in orphans),
        *(("expire", partial(exports.expire, i)) for i in export_plan.expired),
        *(("stalled", partial(exports.fail_stalled, i)) for i in export_plan.stalled),
        *(("leftover", partial(exports.clear_leftover, i)) for i in export_plan.leftovers),
        *(("partial", partial(_abort_partial, upload)) for upload in partials),
    ]
    failures = 0
    with click.progressbar(steps, label="Sweeping") as bar:
        for kind, step in bar:
            try:
                counts[kind] += step()
            except StorageError:
                db.session.rollback()
                failures += 1
    click.echo(
        f"Removed {counts['upload']} upload(s) and {counts['object']} unreferenced object(s)."
    )
    click.echo(
        f"Exports: {counts['expire']} expired, {counts['stalled']} stalled marked failed, "
        f"{counts['leftover']} left object(s) deleted; {counts['partial']} write(s) aborted."
    )
    if failures:
        raise click.ClickException(f"{failures} step(s) failed: storage is not usable.")


def _abort_partial(upload: PartialUpload) -> bool:
    storage.abort_partial(upload)
    return True


study_cli = AppGroup("study", help="Study upkeep.")


@study_cli.command("prune")
def prune_study() -> None:
    """Delete Idempotency-Keys older than 24 hours (their requests may be sent again as
    new ones). Cron it hourly, or daily: a key past its time is ignored anyway."""
    click.echo(f"Deleted {study.prune_idempotency_keys()} idempotency key(s).")


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

    def once_connected() -> None:
        jobs.sweep_outbox()  # what a queue down earlier left behind
        if not burst:  # the hourly erasure of what is due: each run schedules the next
            erasure.schedule_next_run()

    jobs.work(burst=burst, once_connected=once_connected)


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
