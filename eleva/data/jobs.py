"""Background jobs: RQ on ``REDIS_URL``, or in the web process when it is empty.

A job is a function of ``eleva.services`` named by its dotted path, with JSON-able
keyword arguments. Nothing secret is ever an argument: RQ keeps arguments in Redis and
its worker logs a job's description, so a job that needs a token makes it itself.

- ``enqueue(func, queue_name=…, **kwargs)``: with Redis, the job goes to a queue
  (retried ``JOB_RETRIES`` times, ``JOB_RETRY_INTERVALS`` apart): ``EMAIL_QUEUE`` for
  emails, ``QUEUE_NAME`` for the rest (documents' text). Without Redis it runs at once,
  here, with the same retries minus the waits, and a failure is logged, not raised (the
  request that asked for an email has done its part).
- ``outbox(func, **kwargs)`` then ``dispatch()``: a job that must happen if and only if
  a change commits (the email saying a password changed) is written into the change's
  transaction (``OutboxJob``) and queued after the commit; a queue that is down then
  delays it (``sweep_outbox``, run by ``flask jobs sweep`` and when a worker starts)
  instead of losing it or failing a change that was made.
- ``flask jobs worker`` (the Procfile's ``worker:``) runs RQ's worker in the app, on
  both queues, emails first: a worker busy with documents takes the next email before
  the next document.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import redis
from flask import Flask, current_app
from rq import Queue, Retry, Worker, get_current_job
from sqlalchemy import delete, or_, select, update

from eleva.core.errors import ServiceUnavailable
from eleva.data.db import db
from eleva.data.models import OutboxJob, utcnow

log = logging.getLogger("eleva.jobs")

QUEUE_NAME = "eleva"  # documents' text extraction, and any job but emails
EMAIL_QUEUE = "eleva-emails"
QUEUES = (EMAIL_QUEUE, QUEUE_NAME)  # what a worker listens to, in this order
# A request that needs Redis answers 503 within about a second when it does not answer.
SOCKET_TIMEOUT = 1.0


def init_app(app: Flask) -> None:
    url = app.config.get("REDIS_URL")
    app.extensions["eleva.jobs"] = (
        redis.Redis.from_url(
            url, socket_timeout=SOCKET_TIMEOUT, socket_connect_timeout=SOCKET_TIMEOUT
        )
        if url
        else None
    )


def connection() -> redis.Redis | None:
    conn: redis.Redis | None = current_app.extensions.get("eleva.jobs")
    return conn


def queue(conn: redis.Redis | None = None, name: str = QUEUE_NAME) -> Queue:
    conn = conn or connection()
    if conn is None:
        raise RuntimeError("REDIS_URL is not set: jobs run in the web process")
    return Queue(name, connection=conn)


def name_of(func: Callable[..., Any]) -> str:
    return f"{func.__module__}.{func.__qualname__}"


def enqueue(
    func: Callable[..., Any],
    /,
    *,
    queue_name: str = QUEUE_NAME,
    job_timeout: int | None = None,
    **kwargs: Any,
) -> bool:
    """Run ``func(**kwargs)`` in the background, or now without Redis (then True: it
    has run); the worker stops it after ``job_timeout`` seconds (default ``JOB_TIMEOUT``)."""
    return _enqueue(name_of(func), kwargs, queue_name=queue_name, job_timeout=job_timeout)


def _enqueue(
    name: str, kwargs: dict[str, Any], *, queue_name: str, job_timeout: int | None = None
) -> bool:
    conn = connection()
    if conn is None:
        run_here(name, kwargs)
        return True
    config = current_app.config
    retries = config["JOB_RETRIES"]
    try:
        queue(conn, queue_name).enqueue(
            perform,
            name,
            kwargs,
            description=name,  # what RQ logs: the task, never its arguments
            job_timeout=job_timeout or config["JOB_TIMEOUT"],
            retry=Retry(max=retries, interval=config["JOB_RETRY_INTERVALS"]) if retries else None,
            failure_ttl=7 * 24 * 3600,
        )
    except redis.RedisError as exc:
        log.error("could not enqueue %s: %s", name, type(exc).__name__)
        raise ServiceUnavailable("The job queue is unavailable. Try again shortly.") from None
    return False


# -- the outbox: jobs that exist if and only if their transaction commits -------------------

_OUTBOX_KEY = "eleva.outbox"  # the session's outbox rows, until dispatch()
# A row not queued this long after its commit was left behind (the queue was down, or the
# process died in between); one queued this long ago and still there was lost or keeps
# failing: the sweep queues both again.
OUTBOX_LEFT_BEHIND = timedelta(seconds=30)
OUTBOX_LOST = timedelta(hours=1)
# A job still not done this long after its change is given up (logged as an error).
OUTBOX_GIVE_UP = timedelta(days=7)


def outbox(func: Callable[..., Any], /, *, queue_name: str = EMAIL_QUEUE, **kwargs: Any) -> None:
    """Write the job ``func(**kwargs)`` into the current transaction; :func:`dispatch`
    queues it once the caller has committed (nothing happens if it rolls back)."""
    row = OutboxJob(
        name=name_of(func), arguments=json.dumps(kwargs), queue=queue_name, created_at=utcnow()
    )
    db.session.add(row)
    db.session.flush()
    db.session.info.setdefault(_OUTBOX_KEY, []).append((row.id, queue_name))


def dispatch() -> None:
    """Queue the outbox jobs this session committed. A queue that is down is no error:
    the change is made, and its jobs wait for the sweep."""
    rows = db.session.info.pop(_OUTBOX_KEY, [])
    if rows:
        _queue_outboxed(rows)


def sweep_outbox(now: datetime | None = None) -> int:
    """Queue again the outbox jobs left behind or lost (``OUTBOX_LEFT_BEHIND``,
    ``OUTBOX_LOST``); how many. Those older than ``OUTBOX_GIVE_UP`` are dropped."""
    now = now or utcnow()
    given_up = db.session.execute(
        delete(OutboxJob)
        .where(OutboxJob.created_at < now - OUTBOX_GIVE_UP)
        .returning(OutboxJob.name)
        .execution_options(synchronize_session=False)
    ).all()
    db.session.commit()
    for (name,) in given_up:
        log.error("outbox job %s given up: not done within %s", name, OUTBOX_GIVE_UP)
    rows = db.session.execute(
        select(OutboxJob.id, OutboxJob.queue)
        .where(
            or_(
                OutboxJob.queued_at.is_(None) & (OutboxJob.created_at < now - OUTBOX_LEFT_BEHIND),
                OutboxJob.queued_at < now - OUTBOX_LOST,
            )
        )
        .order_by(OutboxJob.id)
    )
    pending = [(outbox_id, queue_name) for outbox_id, queue_name in rows]
    db.session.rollback()
    return _queue_outboxed(pending)


def _queue_outboxed(rows: list[tuple[int, str]]) -> int:
    """Queue the outbox jobs ``rows`` (id, queue), and say so in the rows."""
    if connection() is None:  # development: run each now, as enqueue() would
        for outbox_id, _queue_name in rows:
            run_here(name_of(perform_outboxed), {"outbox_id": outbox_id})
        return len(rows)
    queued = []
    for outbox_id, queue_name in rows:
        try:
            _enqueue(name_of(perform_outboxed), {"outbox_id": outbox_id}, queue_name=queue_name)
        except ServiceUnavailable:
            log.warning("%d outbox job(s) left for the sweep: the queue is down", len(rows))
            break
        queued.append(outbox_id)
    if queued:
        db.session.execute(
            update(OutboxJob)
            .where(OutboxJob.id.in_(queued))
            .values(queued_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        db.session.commit()
    return len(queued)


def perform_outboxed(outbox_id: int) -> None:
    """The job of an outbox row: run it, then delete the row. Locked meanwhile (where the
    database can): a second copy of the job, queued by the sweep, finds nothing to do."""
    row = db.session.execute(
        select(OutboxJob.name, OutboxJob.arguments)
        .where(OutboxJob.id == outbox_id)
        .with_for_update(skip_locked=True)
    ).first()
    if row is None:  # done already, or being done
        db.session.rollback()
        return
    _call(row.name, json.loads(row.arguments))  # in its own app context and session
    db.session.execute(
        delete(OutboxJob)
        .where(OutboxJob.id == outbox_id)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()


def run_here(name: str, kwargs: dict[str, Any]) -> None:
    """Run a job in this process, retrying as the queue would; never raise."""
    attempts = current_app.config["JOB_RETRIES"] + 1
    for attempt in range(1, attempts + 1):
        try:
            _call(name, kwargs)
            return
        except Exception as exc:  # a failed email must not fail the request
            _log_failure(name, exc, attempt, attempts)


_pool_pid = os.getpid()


def perform(name: str, kwargs: dict[str, Any]) -> None:
    """What the RQ worker runs: the job ``name``, in a fresh app context."""
    global _pool_pid
    if os.getpid() != _pool_pid:
        # A forked work horse must not use its parent's pooled connections.
        db.engine.dispose(close=False)
        _pool_pid = os.getpid()
    try:
        _call(name, kwargs)
    except Exception as exc:
        job = get_current_job()
        left = job.retries_left if job is not None else None
        retries = current_app.config["JOB_RETRIES"]
        attempt = retries - left + 1 if left is not None else retries + 1
        _log_failure(name, exc, attempt, retries + 1)
        raise


def in_worker() -> bool:
    """Whether this code runs as a job of an RQ worker (not in the web process)."""
    return get_current_job() is not None


def earlier_attempt_died() -> bool:
    """For a job whose input can kill its process (a hostile file): True when an earlier
    attempt of this very job started and never ended, its work horse killed (timeout,
    memory); the job should then give up rather than be killed again. Otherwise this
    attempt is recorded as started; :func:`attempt_ended` records that it ended."""
    job = get_current_job()
    if job is None:  # in the web process: there is no earlier attempt to know of
        return False
    if job.meta.get("started"):
        return True
    job.meta["started"] = True
    job.save_meta()
    return False


def attempt_ended() -> None:
    job = get_current_job()
    if job is not None and job.meta.pop("started", None):
        job.save_meta()


def _call(name: str, kwargs: dict[str, Any]) -> None:
    module, _, attribute = name.rpartition(".")
    func = getattr(importlib.import_module(module), attribute)
    with current_app.app_context():  # its own session, removed at the end
        func(**kwargs)


def _log_failure(name: str, exc: BaseException, attempt: int, attempts: int) -> None:
    # The exception's type and the task only: a message can quote what it was given.
    final = attempt >= attempts
    log.log(
        logging.ERROR if final else logging.WARNING,
        "job %s failed (attempt %d of %d%s): %s",
        name,
        attempt,
        attempts,
        ", giving up" if final else ", will retry",
        type(exc).__name__,
    )


def work(*, burst: bool = False, worker_class: type[Worker] = Worker) -> bool:
    """Run an RQ worker on ``QUEUES``, emails first, in this app (with its scheduler,
    which puts retried jobs back on the queue when their wait is over)."""
    conn = connection()
    if conn is None:
        raise RuntimeError("REDIS_URL is not set: there is no queue to work on")
    # The worker blocks on Redis for new jobs: no socket timeout on its own connection.
    worker_conn = redis.Redis.from_url(current_app.config["REDIS_URL"])
    worker = worker_class([queue(worker_conn, name) for name in QUEUES], connection=worker_conn)
    return worker.work(burst=burst, with_scheduler=True, logging_level="WARNING")
