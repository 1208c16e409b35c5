"""gunicorn settings for a PaaS: $PORT, $WEB_CONCURRENCY, logs on stdout/stderr.

gunicorn reads this file by itself from the working directory.
"""

import multiprocessing
import os

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
# Sync workers: the app is CPU- and database-bound, and bcrypt releases the GIL anyway.
workers = int(os.environ.get("WEB_CONCURRENCY") or multiprocessing.cpu_count() * 2 + 1)
worker_class = "sync"
# A request may take at most: S3 retries (≈14 s worst case) well inside this.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
# On SIGTERM (a deploy), finish requests in flight for up to this long.
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "25"))
keepalive = 5
# Recycle workers now and then so slow leaks cannot grow forever.
max_requests = 2000
max_requests_jitter = 200
# Heartbeat files in memory, not on a possibly slow container disk (gunicorn's own advice
# for containers; the files hold no data, so a shared tmpfs is not a risk here).
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108  # nosec B108
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


def post_worker_init(worker):
    """Load the User-Agent rules (~0.5 s) before the worker's first request, not in a
    user's first login."""
    from eleva.core.devices import device_label

    device_label("Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0")
