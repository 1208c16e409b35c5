"""Background jobs: RQ on ``REDIS_URL``, or in the web process when it is empty.

A job is a function of ``eleva.services`` named by its dotted path, with JSON-able
keyword arguments, never a secret: RQ keeps arguments in Redis and its worker logs a
job's description, so a job that needs a token makes it itself.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import time
from collections.abc import Callable
from contextvars import ContextVar
from datetime import datetime, timedelta
from typing import Any

import redis
from flask import Flask, current_app
from rq import Queue, Retry, Worker, get_current_job
from sqlalchemy import delete, or_, select, update

from eleva.core.errors import ServiceUnavailable
from eleva.data import metrics
from eleva.data.db import db
from eleva.data.models import OutboxJob, utcnow

log = logging.getLogger("eleva.jobs")

QUEUE_NAME = "eleva"  # documents' text extraction, and any job but emails
EMAIL_QUEUE = "eleva-emails"
# What a worker (`flask jobs worker`, the Procfile's worker:) listens to, in this order:
# one busy with documents takes the next email before the next document.
QUEUES = (EMAIL_QUEUE, QUEUE_NAME)
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


def queues(conn: redis.Redis | None = None) -> dict[str, Queue | None]:
    """Every queue by name (None without Redis), for the metrics' queue depth."""
    conn = conn or connection()
    return {QUEUE_NAME: Queue(QUEUE_NAME, connection=conn) if conn is not None else None}


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
    # Without Redis the job runs at once, here, with the same retries minus the waits, and
    # a failure is logged, not raised: the request that asked for an email has done its part.
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


def schedule(
    func: Callable[..., Any], /, *, at: datetime, job_id: str, job_timeout: int, **kwargs: Any
) -> bool:
    """Run ``func(**kwargs)`` at ``at`` (the worker's scheduler enqueues it then), once:
    scheduling the same ``job_id`` again replaces it. False without Redis (nothing to
    schedule on); ServiceUnavailable when Redis does not answer."""
    # RQ's own scheduling (enqueue_at), run by the worker's scheduler: a job can schedule
    # its next run (the hourly erasure).
    conn = connection()
    if conn is None:
        return False
    name = name_of(func)
    try:
        queue(conn).enqueue_at(
            at,
            perform,
            name,
            kwargs,
            job_id=job_id,
            description=name,
            job_timeout=job_timeout,
            result_ttl=0,
            failure_ttl=7 * 24 * 3600,
        )
    except redis.RedisError as exc:
        log.error("could not schedule %s: %s", name, type(exc).__name__)
        raise ServiceUnavailable("The job queue is unavailable. Try again shortly.") from None
    return True


# In the web process (no Redis): the attempts of the job running here still to come.
_attempts_left: ContextVar[int] = ContextVar("eleva_job_attempts_left", default=0)


def attempts_left() -> int:
    """How many more times the running job will be tried if this attempt fails (0: this
    is its last attempt, or it is not a job)."""
    job = get_current_job()
    if job is not None:
        return job.retries_left or 0
    return _attempts_left.get()


# -- the outbox: jobs that exist if and only if their transaction commits -------------------
# Such a job (the email saying a password changed) is written into the change's transaction
# (OutboxJob) and queued after the commit; a queue that is down then delays it
# (sweep_outbox, run by `flask jobs sweep` and when a worker starts) instead of losing it
# or failing a change that was made.

_OUTBOX_KEY = "eleva.outbox"  # the session's outbox rows, until dispatch()
# A row not queued this long after its commit was left behind (the queue was down, or the
# process died in between); one queued this long ago and still there was lost or keeps
# failing: the sweep queues both again.
OUTBOX_LEFT_BEHIND = timedelta(seconds=30)
OUTBOX_LOST = timedelta(hours=1)
# A job being run holds its row this long at most (a worker killed meanwhile: its row is
# free again once the lease is over).
OUTBOX_LEASE = timedelta(minutes=15)
# A job still not done this long after its change is given up (logged as an error).
OUTBOX_GIVE_UP = timedelta(days=7)


def outbox(func: Callable[..., Any], /, *, queue_name: str = EMAIL_QUEUE, **kwargs: Any) -> None:
    """Write the job ``func(**kwargs)`` into the current transaction; :func:`dispatch`
    queues it once the caller has committed (nothing happens if it rolls back). A job
    about a user (``user_id``) is deleted with the user's row."""
    row = OutboxJob(
        name=name_of(func),
        arguments=json.dumps(kwargs),
        queue=queue_name,
        user_id=kwargs.get("user_id"),
        created_at=utcnow(),
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
    """The job of an outbox row: claimed (a lease, committed at once: no transaction
    stays open while the job runs in its own session), run, then its row deleted. A
    second copy, queued by the sweep, finds it claimed or gone and does nothing."""
    now = utcnow()
    row = db.session.execute(
        update(OutboxJob)
        .where(
            OutboxJob.id == outbox_id,
            or_(OutboxJob.claimed_at.is_(None), OutboxJob.claimed_at < now - OUTBOX_LEASE),
        )
        .values(claimed_at=now)
        .returning(OutboxJob.name, OutboxJob.arguments)
        .execution_options(synchronize_session=False)
    ).first()
    db.session.commit()
    if row is None:  # done already, or being done
        return
    try:
        _call(row.name, json.loads(row.arguments))  # in its own app context and session
    except Exception:
        _outbox_claim(outbox_id, None)  # free for the retry
        raise
    db.session.execute(
        delete(OutboxJob)
        .where(OutboxJob.id == outbox_id)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()


def _outbox_claim(outbox_id: int, claimed_at: datetime | None) -> None:
    db.session.execute(
        update(OutboxJob)
        .where(OutboxJob.id == outbox_id)
        .values(claimed_at=claimed_at)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()


def run_here(name: str, kwargs: dict[str, Any]) -> None:
    """Run a job in this process, retrying as the queue would; never raise."""
    attempts = current_app.config["JOB_RETRIES"] + 1
    for attempt in range(1, attempts + 1):
        token = _attempts_left.set(attempts - attempt)
        started = time.perf_counter()
        try:
            _call(name, kwargs)
        except Exception as exc:  # a failed email must not fail the request
            _attempt_ended(name, None, attempt, attempts, started, type(exc).__name__)
        else:
            _attempt_ended(name, None, attempt, attempts, started, None)
            return
        finally:
            _attempts_left.reset(token)


_pool_pid = os.getpid()


def perform(name: str, kwargs: dict[str, Any]) -> None:
    """What the RQ worker runs: the job ``name``, in a fresh app context."""
    global _pool_pid
    if os.getpid() != _pool_pid:
        # A forked work horse must not use its parent's pooled connections.
        db.engine.dispose(close=False)
        _pool_pid = os.getpid()
    job = get_current_job()
    attempt, attempts = _attempt_of(job)
    started = time.perf_counter()
    try:
        _call(name, kwargs)
    except Exception as exc:
        _attempt_ended(
            name, job.id if job else None, attempt, attempts, started, type(exc).__name__
        )
        raise
    _attempt_ended(name, job.id if job else None, attempt, attempts, started, None)


def _attempt_of(job: Any) -> tuple[int, int]:
    """(this attempt, all attempts) of an RQ job, from the retries it has left."""
    retries = current_app.config["JOB_RETRIES"]
    left = job.retries_left if job is not None else None
    return (retries - left + 1 if left is not None else 1), retries + 1


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
    job.save_meta()  # type: ignore[no-untyped-call]  # rq's public method, untyped
    return False


def attempt_ended() -> None:
    job = get_current_job()
    if job is not None and job.meta.pop("started", None):
        job.save_meta()  # type: ignore[no-untyped-call]


def _call(name: str, kwargs: dict[str, Any]) -> None:
    module, _, attribute = name.rpartition(".")
    func = getattr(importlib.import_module(module), attribute)
    with current_app.app_context():  # its own session, removed at the end
        func(**kwargs)


def _attempt_ended(
    name: str,
    job_id: str | None,
    attempt: int,
    attempts: int,
    started: float,
    error: str | None,
) -> None:
    """The attempt's one log line and its count. ``error``: the exception's type only
    (a message can quote what the job was given)."""
    duration_ms = round((time.perf_counter() - started) * 1000, 1)
    which = f"{name} {job_id or '(in process)'}"
    if error is None:
        outcome, level = "succeeded", logging.INFO
        message = f"job {which} succeeded in {duration_ms} ms (attempt {attempt} of {attempts})"
    else:
        final = attempt >= attempts
        outcome, level = ("failed", logging.ERROR) if final else ("retrying", logging.WARNING)
        message = (
            f"job {which} failed in {duration_ms} ms (attempt {attempt} of {attempts}, "
            f"{'giving up' if final else 'will retry'}): {error}"
        )
    fields = {
        "job": name,
        "job_id": job_id,
        "outcome": outcome,
        "duration_ms": duration_ms,
        "attempt": attempt,
    }
    log.log(level, "%s", message, extra={"fields": fields})
    # Counted for /metrics (eleva.data.metrics): in Redis for the worker's jobs.
    metrics.count_job(connection(), name, outcome)


def _work_horse_killed(job: Any, _pid: int, status: int, _rusage: Any) -> None:
    """RQ's hook in the worker when a job's process died (killed at its time limit, out
    of memory): the attempt's line, which the dead process could not write."""
    name = job.args[0] if job.args else job.description
    attempt, attempts = _attempt_of(job)
    ran = (time.time() - job.started_at.timestamp()) if job.started_at else 0.0
    signal = f" by signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status) else ""
    _attempt_ended(
        name, job.id, attempt, attempts, time.perf_counter() - ran, f"its process died{signal}"
    )


# The worker's wait for Redis at start: 1 s, doubling, at most this long between tries.
REDIS_WAIT_MAX_SECONDS = 30.0


def wait_for_redis(conn: redis.Redis, *, sleep: Callable[[float], Any] = time.sleep) -> int:
    """Return once Redis answers a PING (the number of tries); until then one line per
    try, not a traceback (Redis may come up after the worker on a PaaS)."""
    delay, tries = 1.0, 1
    kwargs = conn.connection_pool.connection_kwargs
    where = f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}/{kwargs.get('db', 0)}"
    while True:
        try:
            conn.ping()
            return tries
        except redis.RedisError as exc:
            log.warning(
                "waiting for Redis at %s (try %d: %s); next try in %.0f s",
                where,
                tries,
                type(exc).__name__,
                delay,
            )
        sleep(delay)
        delay, tries = min(delay * 2, REDIS_WAIT_MAX_SECONDS), tries + 1


def work(
    *,
    burst: bool = False,
    worker_class: type[Worker] = Worker,
    once_connected: Callable[[], Any] | None = None,
) -> bool:
    """Run an RQ worker on ``QUEUES``, emails first, in this app (with its scheduler,
    which puts retried jobs back on the queue when their wait is over);
    ``once_connected`` runs when Redis first answers, before the first job."""
    conn = connection()
    if conn is None:
        raise RuntimeError("REDIS_URL is not set: there is no queue to work on")
    # The worker blocks on Redis for new jobs: no socket timeout on its own connection.
    worker_conn = redis.Redis.from_url(current_app.config["REDIS_URL"])
    wait_for_redis(conn)
    if once_connected is not None:
        once_connected()
    worker = worker_class(
        [queue(worker_conn, name) for name in QUEUES],
        connection=worker_conn,
        work_horse_killed_handler=_work_horse_killed,
    )
    return worker.work(burst=burst, with_scheduler=True, logging_level="WARNING")
