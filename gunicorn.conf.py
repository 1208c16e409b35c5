"""gunicorn settings for a PaaS: $PORT, $WEB_CONCURRENCY, logs on stdout/stderr.

gunicorn reads this file by itself from the working directory (the Procfile's
``gunicorn wsgi:app``). Every setting says why; bench/README.md ("Serving") has the
figures behind them.
"""

import multiprocessing
import os

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
# One process per request at a time: the app is CPU-bound (Python) with short database
# round trips, and threads would share one GIL. The PaaS sets WEB_CONCURRENCY per
# machine size (2 × cores + 1 on Heroku, the same as the default here).
workers = int(os.environ.get("WEB_CONCURRENCY") or multiprocessing.cpu_count() * 2 + 1)
# gunicorn's sync worker, buffering each request before the app sees it (slow clients
# cost a buffer, not a process), keeping connections alive for the router, draining the
# listen backlog on SIGTERM, answering gunicorn's own errors in the API's JSON shape:
# eleva/serving.py. gunicorn's gthread spent as little or less CPU per request, but
# stalls once slow clients outnumber its threads and has no per-request timeout
# (bench.workers; bench/README.md, "Serving").
worker_class = "eleva.serving.Worker"
# Connections a worker may hold open, idle or with a request arriving (buffered).
worker_connections = 1000
# The app is built once in the master and the workers fork ready: create_app and the
# bcrypt and common-password warm-ups cost each worker 0.54 s of CPU otherwise, 0.005 s
# now, and 25 → 5 MB of private memory per worker (bench.boot).
preload_app = True
# A request may take at most: S3 retries (≈14 s worst case) well inside this.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
# On SIGTERM (a deploy), drain the backlog (≤ 10 s) and finish requests in flight for up
# to this long.
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "25"))
# An idle kept-alive connection is closed after this many seconds.
keepalive = 5
# No recycling: one recycle cost ~0.4 s of worker CPU (cold caches, new connections),
# +11 % CPU per request at 2,000 requests a worker; no growth to cure (bench.boot).
max_requests = 0
# Heartbeat files in memory, not on a possibly slow container disk (gunicorn's own advice
# for containers; the files hold no data, so a shared tmpfs is not a risk here).
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108  # nosec B108
# Nothing on a PaaS machine talks to gunicorn's control socket, and several servers on
# one machine (tests, benchmarks) would contend for its one default path.
control_socket_disable = True
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
# The PaaS router's X-Forwarded-* are handled by the app (TRUSTED_PROXY_COUNT).
forwarded_allow_ips = "127.0.0.1"
# The access log: one line per request, from the server (the app writes its own line
# only at DEBUG). The path without its query string; the request id joins the line to
# the app's own log records; xff is the forwarded-for chain as the router sent it.
access_log_format = (
    '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(M)sms rid=%({x-request-id}o)s '
    'xff="%({x-forwarded-for}i)s" "%(a)s"'
)


def post_fork(server, worker):
    """Each worker opens its own database connections: none is shared across the fork.

    create_app opens none (the workers connect on their first request), but should any
    warm-up ever connect in the master, this keeps its sockets out of the workers' pools
    (SQLAlchemy's advice for forked processes: ``dispose(close=False)``).
    """
    app = worker.app.wsgi()
    extension = getattr(app, "extensions", {}).get("sqlalchemy")
    if extension is not None:
        with app.app_context():
            for engine in extension.engines.values():
                engine.dispose(close=False)


def worker_exit(server, worker):
    """An exiting worker skips Python's teardown, which in a worker forked from a
    preloaded master costs seconds (eleva/serving.py, ``exit_without_teardown``)."""
    from eleva.serving import exit_without_teardown

    exit_without_teardown()


def post_worker_init(worker):
    """Load the User-Agent rules (~0.5 s) before the worker's first request, not in a
    user's first login."""
    from eleva.core.devices import device_label

    device_label("Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0")


# -- operations: metrics and logs ---------------------------------------------------------
# prometheus_client's multiprocess mode: each worker writes its counts to files in this
# directory and a scrape of /metrics, whichever worker answers it, reads them all
# (eleva/data/metrics.py). The variable must be set before the app imports
# prometheus_client, so here, before preload_app loads it, not in a hook; a new, empty
# directory for each server start (a reload keeps it), in memory where /dev/shm exists,
# removed on exit. `flask run` and the job worker never see it: they count alone.
import shutil  # noqa: E402
import tempfile  # noqa: E402

# A reload (SIGHUP) reads this file again in the same master: it keeps its directory.
if os.environ.get("ELEVA_METRICS_DIR_OWNER") != str(os.getpid()):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(
        prefix="eleva-metrics-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108  # nosec B108
    )
    os.environ["ELEVA_METRICS_DIR_OWNER"] = str(os.getpid())

# The access log never holds a token (local storage's signed URLs carry one in the path:
# their URL rule is logged instead), and is JSON with LOG_FORMAT=json
# (eleva/http/serverlog.py).
logger_class = "eleva.http.serverlog.Logger"


def child_exit(server, worker):
    """A dead worker's live gauges (pool connections) leave the sum; its counts stay."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
