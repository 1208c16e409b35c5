"""gunicorn settings for a PaaS: $PORT, $WEB_CONCURRENCY, logs on stdout/stderr.

gunicorn reads this file by itself from the working directory (the Procfile's
``gunicorn wsgi:app``). Only gunicorn's own settings and documented server hooks.
"""

import multiprocessing
import os

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
# The PaaS sets WEB_CONCURRENCY per machine size (2 × cores + 1 here by default).
workers = int(os.environ.get("WEB_CONCURRENCY") or multiprocessing.cpu_count() * 2 + 1)
# gunicorn's threaded worker: a thread per request being read or served, and idle
# kept-alive connections wait in the worker's poller, not in a thread; a client that
# sends nothing is handed back to the poller after a few seconds. A few slow clients
# cost a thread each, not a process. Its limit: as many slow clients on one worker as it
# has threads stall what that worker queued behind them (docs/architecture.md, Serving).
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
# Connections a worker holds at most: those being served plus idle kept-alive ones.
worker_connections = 1000
# The app is built once in the master and the workers fork ready (no database connection
# is opened before the fork: post_fork below makes sure).
preload_app = True
# With threads this is the workers' heartbeat, not a limit per request: the app bounds
# its own waits (database statements, Redis, S3, SMTP in the job worker).
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
# On SIGTERM (a deploy) requests in flight have this long to finish; a PaaS sends
# SIGKILL after 30 s (Heroku).
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "25"))
# Longer than a PaaS router keeps an idle connection to the app (Heroku Router 2.0:
# 90 s), so that the router, not gunicorn, closes it: no request is sent on a
# connection gunicorn is closing.
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "95"))
# Heartbeat files in memory, not on a possibly slow container disk (gunicorn's advice).
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108  # nosec B108
# Nothing on a PaaS machine talks to gunicorn's control socket, and several servers on
# one machine (tests, benchmarks) would contend for its one default path.
control_socket_disable = True
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
# The PaaS router's X-Forwarded-* are handled by the app (TRUSTED_PROXY_COUNT).
forwarded_allow_ips = "127.0.0.1"
# One line per request: the path without its query string, the request id that joins
# the line to the app's own log records, the forwarded-for chain as the router sent it.
access_log_format = (
    '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(M)sms rid=%({x-request-id}o)s '
    'xff="%({x-forwarded-for}i)s" "%(a)s"'
)


def post_fork(server, worker):
    """Each worker opens its own database connections: none is shared across the fork
    (SQLAlchemy's advice for forked processes: ``dispose(close=False)``)."""
    app = worker.app.wsgi()
    extension = getattr(app, "extensions", {}).get("sqlalchemy")
    if extension is not None:
        with app.app_context():
            for engine in extension.engines.values():
                engine.dispose(close=False)


def post_worker_init(worker):
    """Load the User-Agent rules before the worker's first request, not in a user's
    first login."""
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
        prefix="eleva-metrics-",
        dir="/dev/shm" if os.path.isdir("/dev/shm") else None,  # noqa: S108  # nosec B108
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
