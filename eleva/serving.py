"""The gunicorn worker Eléva runs in production (``worker_class`` in gunicorn.conf.py).

gunicorn's sync worker (one request at a time per process), with four things it lacks:

- **Requests are buffered before a worker spends itself on them.** The sync worker reads
  a request with blocking calls, so a client that sends its headers (or body) a byte at a
  time holds the whole process until it finishes or ``timeout`` kills the worker: two
  such connections stalled both workers for 30 s. Here the worker reads every
  connection it has accepted without blocking, as a buffering proxy would, and hands a
  request to the app only once its headers and its body (up to ``BODY_BUFFER_LIMIT``)
  have arrived. A request not in within ``REQUEST_READ_TIMEOUT`` is answered 408.
  Not buffered, so still able to hold a worker until ``timeout`` (then a 500): the rest
  of a body over ``BODY_BUFFER_LIMIT``, a chunked body, and the body of a request with
  ``Expect: 100-continue`` (its client waits for gunicorn's "100 Continue").
  Requests are then served one at a time, in the order they completed. A worker takes a
  new connection from the backlog only while no complete request waits in it, so that
  the backlog goes to idle workers.
- **Connections are kept alive.** A PaaS router (Heroku's Router 2.0, for one) keeps its
  connections to the app open; the sync worker closes each after one response, so every
  request paid a new connection. Here a connection whose request was buffered whole
  waits, without a process, for its next request (``keepalive`` seconds at most).
- **A deploy answers what is already queued.** On SIGTERM gunicorn's workers stop
  accepting at once, and the connections waiting in the listen backlog are reset. Here a
  worker keeps accepting until the backlog has been empty for ``DRAIN_QUIET`` (at most
  ``DRAIN_LIMIT``), serves what it accepted, then exits.
- **gunicorn's own answers are the API's.** Its 400/414/431 (malformed request, request
  line or headers too long), the 408 above and the 500 after a worker timeout are JSON in
  the API's error shape ``{code, status, message}`` with the security headers every API
  response carries (``SECURITY_HEADERS``; tests compare them with the app's).

Imports gunicorn, the standard library and orjson only: it runs in the server, under any
WSGI app (the bare benchmark app too).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import selectors
import socket
import sys
import time
from collections import deque
from datetime import datetime
from http import HTTPStatus
from random import getrandbits
from typing import Any

import orjson
from gunicorn import http as gunicorn_http
from gunicorn import util
from gunicorn.http import errors as http_errors
from gunicorn.http import wsgi
from gunicorn.http.wsgi import Response, default_environ
from gunicorn.workers.sync import SyncWorker

# How long a client has to send a whole request (headers, and a body up to
# BODY_BUFFER_LIMIT) once connected. A PaaS router forwards a request as it receives it,
# so this is also what a slow mobile client gets; 1 MiB at 100 kB/s takes 10 s.
REQUEST_READ_TIMEOUT = 15.0
# Bodies up to this are read in full before the app sees the request (the largest JSON
# body, a note of 100,000 characters, is ~1.2 MiB); the rest of a larger one (a file
# upload) is read by the app as it arrives.
BODY_BUFFER_LIMIT = 2 * 1024 * 1024
# On SIGTERM: keep accepting until the listen backlog has been empty this long...
DRAIN_QUIET = 1.0
# ...but not longer than this (well inside gunicorn's graceful_timeout).
DRAIN_LIMIT = 10.0

# What every API response carries (eleva's web layer), repeated here because this module
# must not import the app. tests/slow/test_serving.py compares them with the app's.
SECURITY_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"),
)
# Sent when the app's configuration has HSTS_ENABLED (production), as the app does.
HSTS_HEADER = ("Strict-Transport-Security", "max-age=63072000; includeSubDomains")

# The app's messages for these statuses (eleva's error map), and gunicorn's for the rest.
MESSAGES = {
    400: "The request could not be understood.",
    403: "Forbidden.",
    408: "The request was not received in time.",
    414: "The request line is too long.",
    417: "Expectation failed.",
    431: "The request's header fields are too large.",
    500: "An unexpected error occurred.",
    501: "Transfer coding not supported.",
}

_CLIENT_ERRORS: dict[type[BaseException], int] = {
    http_errors.LimitRequestLine: 414,
    http_errors.LimitRequestHeaders: 431,
    http_errors.UnsupportedTransferCoding: 501,
    http_errors.ExpectationFailed: 417,
    http_errors.ForbiddenProxyRequest: 403,
    http_errors.ConfigurationProblem: 500,
    http_errors.InvalidResponseHeader: 500,  # the app's fault, not the client's
    http_errors.InvalidResponseHeaderName: 500,
    http_errors.ParseException: 400,  # every other parse error
}

_CONTENT_LENGTH = re.compile(rb"^content-length[ \t]*:[ \t]*(\d+)[ \t]*\r?$", re.I | re.M)
_CHUNKED_OR_CONTINUE = re.compile(
    rb"^(transfer-encoding[ \t]*:.*chunked|expect[ \t]*:[ \t]*100-continue)", re.I | re.M
)


def status_for(exc: BaseException) -> int:
    """The status gunicorn would answer ``exc`` with."""
    for cls in type(exc).__mro__:
        if cls in _CLIENT_ERRORS:
            return _CLIENT_ERRORS[cls]
    return 500


def error_response(code: int, *, hsts: bool = False) -> bytes:
    """A complete HTTP/1.1 response in the API's error shape; the connection closes."""
    status = HTTPStatus(code)
    body = orjson.dumps(
        {"code": code, "message": MESSAGES.get(code, status.phrase), "status": status.phrase},
        option=orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE,
    )
    headers = [
        ("Connection", "close"),
        ("Content-Type", "application/json"),
        ("Content-Length", str(len(body))),
        ("X-Request-ID", f"{getrandbits(128):032x}"),
        *SECURITY_HEADERS,
    ]
    if hsts:
        headers.append(HSTS_HEADER)
    head = f"HTTP/1.1 {code} {status.phrase}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers)
    return (head + "\r\n").encode("latin-1") + body


def exit_without_teardown() -> None:
    """End a worker process now, with the exit status it is leaving with, skipping the
    interpreter's teardown (gunicorn's ``worker_exit`` hook is the last code it runs).

    A worker forked from a preloaded master shares the app's memory with it until it
    writes there; tearing the interpreter down writes everywhere (reference counts of
    every module and object), which cost an exiting worker 0.3-0.5 s of CPU and 2-8 s
    before it was gone (bench.boot). Nothing is lost: log handlers are flushed, sockets
    closed by the kernel; the app keeps no work in memory between requests.
    """
    exc = sys.exc_info()[1]
    if not isinstance(exc, SystemExit):
        return  # not the way gunicorn ends a worker: let Python do it
    code = exc.code
    status = 0 if code is None else code if isinstance(code, int) else 1
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a closed pipe: nothing more to say anyway
            stream.flush()
    os._exit(status)


class _Pending:
    """An accepted connection whose request is still arriving."""

    __slots__ = ("addr", "complete", "data", "deadline", "header_end", "idle", "sock", "wanted")

    def __init__(self, sock: socket.socket, addr: Any) -> None:
        self.sock = sock
        self.addr = addr
        self.data = bytearray()
        self.deadline = time.monotonic() + REQUEST_READ_TIMEOUT
        self.idle = False  # kept alive after a response, no new request begun

    def expect_request(self, data: bytes = b"") -> None:
        self.data = bytearray(data)
        self.header_end = -1
        self.wanted = 0  # bytes in all: headers and the part of the body to buffer
        self.complete = False  # the whole request is buffered (and nothing else of it)


class _Buffered:
    """The client's socket, handing out what was buffered before reading on."""

    def __init__(self, sock: socket.socket, data: bytes) -> None:
        self._sock = sock
        self._data = memoryview(data)

    def recv(self, size: int, *flags: int) -> bytes:
        if self._data:
            chunk, self._data = self._data[:size], self._data[size:]
            return bytes(chunk)
        return self._sock.recv(size, *flags)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class Worker(SyncWorker):
    """gunicorn's sync worker, buffering requests, draining on SIGTERM, and answering its
    own errors in the API's shape (see the module's docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stop_requested = False
        cfg = self.cfg
        # Past this many bytes without the end of the headers, gunicorn's parser is
        # certain to refuse the request (414 or 431): hand it over for that answer.
        self.header_limit = (
            cfg.limit_request_line
            + 4
            + max(cfg.limit_request_fields, 1) * (max(cfg.limit_request_field_size, 8190) + 2)
        )
        self.max_pending = max(cfg.worker_connections, 1)

    # -- signals ---------------------------------------------------------------------

    def handle_exit(self, sig: int, frame: Any) -> None:
        # SIGTERM: drain, then stop (run() notices). Not alive=False: that stops at once.
        self.stop_requested = True

    # -- errors ----------------------------------------------------------------------

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        code = status_for(exc)
        addr = addr or ("", -1)
        if code >= 500:
            what = f"{req.method} {req.uri}" if hasattr(req, "method") else "(no request read)"
            self.log.exception("Error handling request %s", what)
        else:
            self.log.warning("Invalid request from ip=%s: %s", addr[0], exc)
            if req is None:
                req = getattr(exc, "req", None)
        self._send(client, code)
        if req is not None:
            self._access_log(req, client, addr, code)

    def _send(self, client: Any, code: int) -> None:
        hsts = bool(getattr(getattr(self, "wsgi", None), "config", {}).get("HSTS_ENABLED"))
        try:
            client.setblocking(True)
            client.settimeout(5)
            client.sendall(error_response(code, hsts=hsts))
        except Exception:
            self.log.debug("Failed to send error response.")

    def _access_log(self, req: Any, client: Any, addr: Any, code: int) -> None:
        try:
            environ = default_environ(req, client, self.cfg)
            environ["REMOTE_ADDR"], environ["REMOTE_PORT"] = addr[0], str(addr[1])
            resp = Response(req, client, self.cfg)
            resp.status = f"{code} {HTTPStatus(code).phrase}"
            self.log.access(resp, req, environ, datetime.now() - datetime.now())
        except Exception:
            self.log.debug("Failed to log an error response.")

    # -- the loop --------------------------------------------------------------------

    def run(self) -> None:
        self.selector = selectors.DefaultSelector()
        self.pending: dict[int, _Pending] = {}
        self.ready: deque[_Pending] = deque()
        for listener in self.sockets:
            listener.setblocking(False)
            self.selector.register(listener, selectors.EVENT_READ, "listener")
        self.selector.register(self.PIPE[0], selectors.EVENT_READ, "pipe")
        self.server_address = self.sockets[0].getsockname()
        accepting = True
        drain_until = quiet_until = 0.0
        try:
            while True:
                self.notify()
                now = time.monotonic()
                if self.stop_requested and not drain_until:
                    self.log.info("Draining: answering queued connections, then stopping.")
                    drain_until = now + DRAIN_LIMIT
                    quiet_until = now + DRAIN_QUIET
                    # Kept-alive connections: a request may be on its way on one; it gets
                    # answered (with Connection: close) if it comes within the quiet time.
                    for conn in self.pending.values():
                        if conn.idle:
                            conn.deadline = min(conn.deadline, quiet_until)
                if drain_until and accepting and now >= min(drain_until, quiet_until):
                    accepting = False
                    for listener in self.sockets:
                        self.selector.unregister(listener)
                if not self.alive and accepting:  # recycled (max_requests) or aborted
                    accepting = False
                    for listener in self.sockets:
                        self.selector.unregister(listener)
                if not accepting and not self.pending and not self.ready:
                    return
                if not self.is_parent_alive():
                    return
                if self.ready:
                    timeout = 0.0
                else:
                    deadlines = [p.deadline for p in self.pending.values()]
                    if drain_until and accepting:
                        deadlines.append(min(drain_until, quiet_until))
                    timeout = min([1.0, *(d - now for d in deadlines)])
                accepted = self._poll(max(timeout, 0.0), accepting)
                if accepted and drain_until:
                    quiet_until = time.monotonic() + DRAIN_QUIET
                self._expire()
                if self.ready:
                    self._serve(self.ready.popleft())
        finally:
            for conn in list(self.pending.values()) + list(self.ready):
                conn.sock.close()
            self.selector.close()

    def _poll(self, timeout: float, accepting: bool) -> int:
        accepted = 0
        try:
            events = self.selector.select(timeout)
        except InterruptedError:
            return 0
        for key, _ in events:
            if key.data == "pipe":
                try:
                    while os.read(self.PIPE[0], 64):
                        pass
                except OSError:
                    pass
            elif key.data == "listener":
                # One at a time, and only while no complete request waits here: a
                # connection left in the backlog goes to an idle worker instead.
                if accepting and not self.ready:
                    accepted += self._accept(key.fileobj)
            else:
                self._read(key.data)
        return accepted

    def _accept(self, listener: Any) -> int:
        if len(self.pending) >= self.max_pending:
            return 0
        try:
            client, addr = listener.accept()
        except OSError as e:
            if e.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.ECONNABORTED):
                return 0
            raise
        client.setblocking(False)
        conn = _Pending(client, addr)
        conn.expect_request()
        self.pending[client.fileno()] = conn
        self.selector.register(client, selectors.EVENT_READ, conn)
        # Most clients have sent their request with the handshake: read it now.
        self._read(conn)
        return 1

    def _read(self, conn: _Pending) -> None:
        try:
            chunk = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""
        if not chunk:  # the client went away (or closed its kept-alive connection)
            self._forget(conn)
            conn.sock.close()
            return
        if conn.idle:  # a new request on a kept-alive connection: its own time to arrive
            conn.idle = False
            conn.deadline = time.monotonic() + REQUEST_READ_TIMEOUT
        conn.data += chunk
        self._check(conn)

    def _check(self, conn: _Pending) -> None:
        """Ready ``conn`` when its request is in, or when gunicorn's parser must see it."""
        if conn.header_end < 0:
            end = conn.data.find(b"\r\n\r\n")
            if end < 0:
                first_line_too_long = b"\n" not in conn.data and (
                    len(conn.data) > self.cfg.limit_request_line + 2
                )
                if first_line_too_long or len(conn.data) > self.header_limit:
                    self._make_ready(conn)  # gunicorn's parser answers 414 / 431
                return
            conn.header_end = end + 4
            head = bytes(conn.data[: conn.header_end])
            if _CHUNKED_OR_CONTINUE.search(head):
                # A chunked body's length is unknown; an Expect: 100-continue client
                # waits for gunicorn's "100 Continue" before it sends its body.
                self._make_ready(conn)
                return
            lengths = _CONTENT_LENGTH.findall(head)
            body = int(lengths[0]) if len(lengths) == 1 else 0  # several: the parser refuses
            conn.wanted = conn.header_end + min(body, BODY_BUFFER_LIMIT)
            conn.complete = body <= BODY_BUFFER_LIMIT and len(lengths) <= 1
        if len(conn.data) >= conn.wanted:
            self._make_ready(conn)

    def _make_ready(self, conn: _Pending) -> None:
        self._forget(conn)
        self.ready.append(conn)

    def _forget(self, conn: _Pending) -> None:
        if self.pending.pop(conn.sock.fileno(), None) is not None:
            self.selector.unregister(conn.sock)

    def _expire(self) -> None:
        now = time.monotonic()
        for conn in [p for p in self.pending.values() if p.deadline <= now]:
            self._forget(conn)
            if conn.data:  # a request begun and not finished in time
                self._send(conn.sock, 408)
                self.log.warning("Request not received in time from ip=%s", conn.addr[0])
            conn.sock.close()

    def _serve(self, conn: _Pending) -> None:
        conn.sock.setblocking(True)
        data, rest = bytes(conn.data), b""
        if conn.complete:  # the parser gets this request's bytes, the rest is the next's
            data, rest = data[: conn.wanted], data[conn.wanted :]
        client = _Buffered(conn.sock, data)
        if not (self._serve_one(client, conn.addr, keep_alive=conn.complete)):
            util.close_graceful(conn.sock)
            return
        # Kept alive: back to waiting, for at most `keepalive` seconds of silence.
        conn.sock.setblocking(False)
        conn.idle = not rest
        conn.deadline = time.monotonic() + (
            self.cfg.keepalive if conn.idle else REQUEST_READ_TIMEOUT
        )
        conn.expect_request(rest)
        self.pending[conn.sock.fileno()] = conn
        self.selector.register(conn.sock, selectors.EVENT_READ, conn)
        if rest:
            self._check(conn)

    def _serve_one(self, client: Any, addr: Any, *, keep_alive: bool) -> bool:
        """SyncWorker.handle for one request, without closing: whether to keep the
        connection open for the next request."""
        req = None
        try:
            parser = gunicorn_http.get_parser(self.cfg, client, addr)
            req = next(parser)
            if not self._handle_request(req, client, addr, keep_alive=keep_alive):
                return False
            # What the app left unread of the body (already buffered) is skipped.
            return bool(parser.finish_body(deadline=time.monotonic() + 1.0))
        except http_errors.NoMoreData as e:
            self.log.debug("Ignored premature client disconnection. %s", e)
        except StopIteration as e:
            self.log.debug("Closing connection. %s", e)
        except OSError as e:
            if e.errno not in (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN):
                self.log.exception("Socket error processing request.")
        except BaseException as e:  # SystemExit too: a worker timeout in the app
            self.handle_error(req, client, addr, e)
        return False

    def _handle_request(self, req: Any, client: Any, addr: Any, *, keep_alive: bool) -> bool:
        """SyncWorker.handle_request, which always closes the connection, keeping it
        open when the request allows it: whether the response left it open."""
        environ: dict[str, Any] = {}
        resp = None
        try:
            self.cfg.pre_request(self, req)
            request_start = datetime.now()
            resp, environ = wsgi.create(req, client, addr, self.server_address, self.cfg)
            self.nr += 1
            if self.nr >= self.max_requests:
                self.log.info("Autorestarting worker after current request.")
                self.alive = False
            if not (keep_alive and self.alive and self.cfg.keepalive) or self.stop_requested:
                resp.force_close()
            respiter = self.wsgi(environ, resp.start_response)
            try:
                if isinstance(respiter, environ["wsgi.file_wrapper"]):
                    resp.write_file(respiter)
                else:
                    for item in respiter:
                        resp.write(item)
                resp.close()
            finally:
                self.log.access(resp, req, environ, datetime.now() - request_start)
                if hasattr(respiter, "close"):
                    respiter.close()
            return not resp.should_close()
        except OSError:
            raise
        except (Exception, SystemExit):
            if resp and resp.headers_sent:
                # Timeout abort is SystemExit. If we already started the response,
                # writing a 500 on the same socket corrupts it.
                self.log.exception("Error handling request")
                raise StopIteration() from None
            raise
        finally:
            try:
                self.cfg.post_request(self, req, environ, resp)
            except Exception:
                self.log.exception("Exception in post_request hook")
