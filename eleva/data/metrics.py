"""Prometheus metrics (contract v1.2, ``/metrics``): what is counted, and the scrape.

Under gunicorn each worker counts into files that a scrape reads all of; the job worker,
on a machine of its own, counts in Redis, which a scrape of the web reads too.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Any, cast

import redis
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import event

log = logging.getLogger("eleva.metrics")

# The *_created series say when a process first counted: noise here, and absent in
# multiprocess mode anyway (the same scrape whatever the server).
disable_created_metrics()  # type: ignore[no-untyped-call]  # prometheus_client's, untyped

# What this process counts (in files under multiprocess mode, whatever the registry).
REGISTRY = CollectorRegistry(auto_describe=True)
# Jobs run in this process (no REDIS_URL): a registry of its own, so that a scrape never
# names eleva_jobs_total twice (once here, once from Redis).
INLINE_JOBS_REGISTRY = CollectorRegistry(auto_describe=True)

HTTP_REQUESTS = Counter(
    "eleva_http_requests",
    "HTTP requests answered, by method, route (the URL rule) and status.",
    ["method", "route", "status"],
    registry=REGISTRY,
)
HTTP_DURATION = Histogram(
    "eleva_http_request_duration_seconds",
    "Time to answer an HTTP request (until the response starts), by method and route.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
    registry=REGISTRY,
)
# Pool use: each worker's connections, summed over the live workers.
DB_CONNECTIONS_IN_USE = Gauge(
    "eleva_db_pool_connections_in_use",
    "Database connections checked out of the pools (live processes summed).",
    multiprocess_mode="livesum",
    registry=REGISTRY,
)
DB_CONNECTIONS_OPEN = Gauge(
    "eleva_db_pool_connections_open",
    "Database connections the pools hold open, in use or idle (live processes summed).",
    multiprocess_mode="livesum",
    registry=REGISTRY,
)
JOBS_HELP = "Job attempts by job and outcome (succeeded, retrying, failed)."
INLINE_JOBS = Counter(
    "eleva_jobs",
    JOBS_HELP,
    ["job", "outcome"],
    registry=INLINE_JOBS_REGISTRY,
)

# The job worker (`flask jobs worker`) runs as its own process, on a PaaS its own machine,
# sharing no disk with the web: it counts each job's outcome in Redis (HINCRBY), and a
# scrape of the web reads those counts and the queue's length from Redis (Jobs). Without
# REDIS_URL (development) jobs run in the web process and are counted there like requests.
# Redis keys of the job worker's counts (a hash: "<job> <outcome>" → attempts).
JOB_COUNTS_KEY = "eleva:metrics:jobs"
# generate_latest's classic text format (prometheus_client's CONTENT_TYPE_PLAIN_0_0_4).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def watch_pools(engines: Iterable[Any]) -> None:
    """Count the pools' connections (SQLAlchemy's pool events)."""
    for engine in engines:
        event.listen(engine, "checkout", _checked_out)
        event.listen(engine, "checkin", _checked_in)
        event.listen(engine, "connect", _opened)
        event.listen(engine, "close", _closed)
        event.listen(engine, "detach", _closed)  # no longer the pool's


def _checked_out(*_args: Any) -> None:
    DB_CONNECTIONS_IN_USE.inc()


def _checked_in(*_args: Any) -> None:
    DB_CONNECTIONS_IN_USE.dec()


def _opened(*_args: Any) -> None:
    DB_CONNECTIONS_OPEN.inc()


def _closed(*_args: Any) -> None:
    DB_CONNECTIONS_OPEN.dec()


def count_job(conn: redis.Redis | None, job: str, outcome: str) -> None:
    """One attempt of ``job`` ended with ``outcome``: in Redis for the job worker, here
    for a job run in the web process. Never raises: a count is not worth a job."""
    if conn is None:
        INLINE_JOBS.labels(job, outcome).inc()
        return
    try:
        conn.hincrby(JOB_COUNTS_KEY, f"{job} {outcome}", 1)
    except redis.RedisError as exc:
        log.warning("could not count job %s: %s", job, type(exc).__name__)


class Jobs:
    """A collector read at scrape time: the job worker's counts (kept in Redis) and the
    queues' depth; without Redis, jobs run in the web process and no queue waits."""

    def __init__(self, conn: redis.Redis | None, queues: dict[str, Any]) -> None:
        self.conn = conn
        self.queues = queues  # name → rq.Queue

    def describe(self) -> list[Metric]:
        return []  # nothing to read at registration

    def collect(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily(
            "eleva_job_queue_depth", "Jobs waiting in the queue.", labels=["queue"]
        )
        if self.conn is None:
            for name in self.queues:
                depth.add_metric([name], 0)
            yield depth
            return
        try:
            counts = cast(dict[bytes, bytes], self.conn.hgetall(JOB_COUNTS_KEY))
            depths = {name: queue.count for name, queue in self.queues.items()}
        except redis.RedisError as exc:
            # The scrape still answers; these series are missing from it, which is
            # what a dashboard should show while Redis is away.
            log.warning("job metrics unavailable: %s", type(exc).__name__)
            return
        jobs = CounterMetricFamily("eleva_jobs", JOBS_HELP, labels=["job", "outcome"])
        for key, value in sorted(counts.items()):
            job, _, outcome = key.decode().rpartition(" ")
            jobs.add_metric([job, outcome], float(value))
        yield jobs
        for name, count in depths.items():
            depth.add_metric([name], count)
        yield depth


def exposition(*, multiproc_dir: str | None, jobs: Jobs) -> bytes:
    """The text of one scrape: every process's counts, and the jobs'."""
    # Under gunicorn every worker is its own process: prometheus_client's multiprocess
    # mode (PROMETHEUS_MULTIPROC_DIR, set by gunicorn.conf.py before the app is imported)
    # has each worker write its counts to files there, and a scrape, whichever worker
    # answers it, reads them all. Without it (`flask run`, tests) the process counts alone.
    if multiproc_dir:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=multiproc_dir)  # type: ignore[no-untyped-call]
        text = generate_latest(registry)
    else:
        text = generate_latest(REGISTRY)
        if jobs.conn is None:  # jobs counted in this process (in the files above otherwise)
            text += generate_latest(INLINE_JOBS_REGISTRY)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(jobs)
    return text + generate_latest(registry)
