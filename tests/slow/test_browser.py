"""What only a browser decides (issue 17), asked of a real one: Debian's Chromium, headless,
driven by Playwright, running an SPA page served from another origin than the API's.

CORS (which origins may read which answers and headers, which preflights pass), the
refresh cookie (HttpOnly, SameSite, Secure over plain http on loopback, sent or not on a
cross-origin fetch) and canvas tainting are enforced by the browser, not by the server:
a test client that speaks HTTP only shows the headers, never what a browser does with them.

Sites, deliberately: the API is http://127.0.0.1:<port>. A page on http://localhost:<port>
is cross-site to it (another host name, another site for SameSite); a page on
http://127.0.0.1:<other port> is same-site but cross-origin (the port is part of the
origin, not of the site). One page server answers both names; another one serves an origin
that CORS_ORIGINS does not list.

Never ``playwright install``: the browser is the distribution's (.ci/run installs it).
"""

from __future__ import annotations

import contextlib
import json
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright
from playwright.sync_api import Error as PlaywrightError

from tests.conftest import PASSWORD, requires_postgres
from tests.slow.support import Api, Server, libpq_dsn

pytestmark = [pytest.mark.slow, requires_postgres]

CHROMIUM = "/usr/bin/chromium"
# --no-sandbox: CI runs as root. The background-networking flags: Chromium's own calls
# home are refused by the closed network here and would stall or fail its start-up.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

API_HOST = "127.0.0.1"  # where gunicorn listens (tests.slow.support)
CROSS_SITE = "localhost"  # a page here is on another site than the API
SAME_SITE = "127.0.0.1"  # a page here (another port) is same-site, cross-origin
COOKIE = "eleva_refresh"
AUTH = "/api/v1/auth"
REFRESH = f"{AUTH}/refresh"
ME = "/api/v1/users/me"
REFRESH_LIFETIME = 7 * 24 * 3600  # JWT_REFRESH_TOKEN_DAYS' default
RED = (200, 30, 60)

# The SPA: one helper that returns what the page's own code can see of a response — its
# status, the headers script may read (Fetch hides the others), and the body — or the
# error the browser raised instead.
SPA_PAGE = b"""<!doctype html>
<meta charset="utf-8">
<title>SPA</title>
<script>
window.call = async (url, init = {}) => {
  let response;
  try {
    response = await fetch(url, {credentials: "include", ...init});
  } catch (error) {
    return {error: error.name, message: error.message};
  }
  const headers = Object.fromEntries(response.headers);
  const text = await response.text();
  const isJson = (headers["content-type"] || "").startsWith("application/json");
  return {status: response.status, headers, body: isJson && text ? JSON.parse(text) : text};
};
</script>
"""

# The page draws a picture into a canvas, uploads it as the profile picture, as a file
# input would (multipart, field "file").
UPLOAD_PICTURE = """async ([url, token, rgb]) => {
  const canvas = document.createElement("canvas");
  canvas.width = 120;
  canvas.height = 80;
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = `rgb(${rgb.join(",")})`;
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
  const form = new FormData();
  form.append("file", blob, "me.png");
  return call(url, {method: "PUT", headers: {Authorization: `Bearer ${token}`}, body: form});
}"""

UPLOAD_DOCUMENT = """async ([url, token, text, filename]) => {
  const form = new FormData();
  form.append("file", new Blob([text], {type: "text/plain"}), filename);
  return call(url, {method: "POST", headers: {Authorization: `Bearer ${token}`}, body: form});
}"""

# Load an image (with or without crossOrigin="anonymous"), draw it on a canvas, read
# pixels back: a tainted canvas throws SecurityError.
DRAW_IMAGE = """async ([url, crossOrigin]) => {
  const img = new Image();
  if (crossOrigin) img.crossOrigin = crossOrigin;
  await new Promise((resolve, reject) => {
    img.onload = resolve;
    img.onerror = () => reject(new Error(`could not load ${url}`));
    img.src = url;
  });
  const canvas = document.createElement("canvas");
  canvas.width = img.naturalWidth;
  canvas.height = img.naturalHeight;
  const ctx = canvas.getContext("2d");
  ctx.drawImage(img, 0, 0);
  const size = [canvas.width, canvas.height];
  try {
    const pixel = Array.from(ctx.getImageData(size[0] >> 1, size[1] >> 1, 1, 1).data);
    return {size, pixel, dataUrl: canvas.toDataURL("image/png").slice(0, 22)};
  } catch (error) {
    return {size, error: error.name};
  }
}"""


# -- a static page server: the SPA's origin ---------------------------------------------


class _PageHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        # Any path: a page under /api/v1/auth on the API's host can show which cookies
        # of that path script can read (cookies ignore the port).
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Length", str(len(SPA_PAGE)))
        self.end_headers()
        self.wfile.write(SPA_PAGE)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: pytest shows the test's own failures


@dataclass
class PageServer:
    server: ThreadingHTTPServer

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def origin(self, host: str) -> str:
        return f"http://{host}:{self.port}"


@contextlib.contextmanager
def page_server() -> Iterator[PageServer]:
    # Loopback only; "localhost" reaches it too (Chromium falls back from ::1).
    server = ThreadingHTTPServer(("127.0.0.1", 0), _PageHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield PageServer(server)
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def spa() -> Iterator[PageServer]:
    """The SPA's page server: its localhost and 127.0.0.1 origins are in CORS_ORIGINS."""
    with page_server() as server:
        yield server


@pytest.fixture(scope="module")
def stranger() -> Iterator[PageServer]:
    """Another page server, whose origins no API server here lists."""
    with page_server() as server:
        yield server


# -- the API, one gunicorn per cookie configuration --------------------------------------


@pytest.fixture(scope="module")
def database_url(new_database) -> str:
    return libpq_dsn(new_database())


@contextlib.contextmanager
def _api(gunicorn, database_url: str, spa: PageServer, **env: str) -> Iterator[Server]:
    origins = ",".join(spa.origin(host) for host in (CROSS_SITE, SAME_SITE))
    server = gunicorn(database_url=database_url, CORS_ORIGINS=origins, workers=1, **env)
    yield server
    server.stop()  # now, not at the end of the session: the machine is shared


@pytest.fixture(scope="module")
def none_api(gunicorn, database_url: str, spa: PageServer) -> Iterator[Server]:
    """REFRESH_COOKIE_SAMESITE=None (hence Secure and Partitioned): for an SPA on
    another site."""
    with _api(gunicorn, database_url, spa, REFRESH_COOKIE_SAMESITE="None") as server:
        yield server


@pytest.fixture(scope="module")
def strict_api(gunicorn, database_url: str, spa: PageServer) -> Iterator[Server]:
    """The default: SameSite=Strict, and not Secure outside production."""
    with _api(gunicorn, database_url, spa) as server:
        yield server


# -- the browser ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # Fail, never skip: without the browser nothing here would be proved.
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: apt-get install chromium"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A fresh profile (its own cookie jar) per test."""
    context = browser.new_context()
    context.set_default_timeout(15_000)
    yield context
    context.close()


class Spa:
    """A page of the SPA at ``origin`` calling the API at ``api`` as its own code would."""

    def __init__(self, context: BrowserContext, origin: str, api: Server, path: str = "/"):
        self.api = api
        self.page: Page = context.new_page()
        self.page.goto(origin + path)

    def fetch(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        headers: dict[str, str] | None = None,
        token: str | None = None,
        blocked: bool = False,
    ) -> dict[str, Any]:
        """What the page's code gets; ``blocked``: the browser must refuse it (a
        TypeError, as fetch() reports a CORS failure and a network error alike)."""
        init: dict[str, Any] = {"method": method, "headers": dict(headers or {})}
        if token is not None:
            init["headers"]["Authorization"] = f"Bearer {token}"
        if body is not None:
            init["headers"]["Content-Type"] = "application/json"
            init["body"] = json.dumps(body)
        url = self.api.url(path)
        result = self.page.evaluate("([url, init]) => call(url, init)", [url, init])
        if blocked:
            assert result.get("error") == "TypeError", f"{method} {path} was not blocked"
        else:
            assert "error" not in result, f"the browser refused {method} {path}: {result}"
        return result

    def login(self, username: str, *, in_cookie: bool = True, **kwargs: Any) -> dict[str, Any]:
        body = {"login": username, "password": PASSWORD, "refresh_in_cookie": in_cookie}
        return self.fetch("POST", f"{AUTH}/login", body=body, **kwargs)

    def refresh(self, csrf: str | None) -> dict[str, Any]:
        # No Authorization header: the refresh token is whatever cookie the browser sends.
        return self.fetch("POST", REFRESH, headers={"X-CSRF-Token": csrf} if csrf else {})


def new_user(api: Server, prefix: str) -> str:
    username = f"{prefix}_{secrets.token_hex(4)}"
    registered = Api(api.base_url).register(username)
    assert registered.status_code == 201, registered.text
    return username


def refresh_cookies(context: BrowserContext, api: Server) -> list[dict[str, Any]]:
    """The refresh cookies in the browser's jar for the API's URLs under /api/v1/auth."""
    return [c for c in context.cookies(api.url(REFRESH)) if c["name"] == COOKIE]


def access_log_lines(server: Server, request_line: str) -> int:
    return sum(f'"{request_line} HTTP/1.1"' in line for line in server.log().splitlines())


def wait_for_log(server: Server, request_line: str, count: int, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while access_log_lines(server, request_line) < count:
        assert time.monotonic() < deadline, f"{request_line!r} never reached the server"
        time.sleep(0.05)


# -- 1. CORS with credentials -----------------------------------------------------------


def test_the_listed_origin_reads_answers_and_exposed_headers_after_preflights(
    context, none_api, spa
):
    app = Spa(context, spa.origin(CROSS_SITE), none_api)
    username = f"cors_{secrets.token_hex(4)}"
    registered = app.fetch(
        "POST",
        f"{AUTH}/register",
        body={"username": username, "email": f"{username}@example.com", "password": PASSWORD},
    )
    assert registered["status"] == 201, registered
    assert registered["body"]["username"] == username

    login = app.login(username)
    assert login["status"] == 200, login
    assert set(login["body"]) >= {"access_token", "csrf_token"}
    assert "refresh_token" not in login["body"]
    token = login["body"]["access_token"]

    created = app.fetch("POST", "/api/v1/subjects/", token=token, body={"name": "Physics"})
    assert created["status"] == 201, created
    subject_id = created["body"]["id"]
    assert created["headers"]["location"].endswith(f"/api/v1/subjects/{subject_id}")

    listed = app.fetch("GET", "/api/v1/subjects/", token=token)
    assert listed["status"] == 200, listed
    assert "x-pagination" in listed["headers"], listed["headers"]
    assert json.loads(listed["headers"]["x-pagination"])["total"] == 1

    path = f"/api/v1/subjects/{subject_id}"
    got = app.fetch("GET", path, token=token)
    assert got["headers"].get("etag"), got["headers"]
    etag = got["headers"]["etag"]
    # The browser hides every header the API does not expose: the list above is what
    # an SPA can read, not merely what the server sends.
    assert "x-frame-options" not in got["headers"]
    assert "content-security-policy" not in got["headers"]

    # Authorization, If-Match and X-CSRF-Token are not CORS-safelisted: the PATCH goes
    # only after a preflight the API answered for them.
    preflights = access_log_lines(none_api, f"OPTIONS {path}")
    headers = {"If-Match": etag, "X-CSRF-Token": login["body"]["csrf_token"]}
    patched = app.fetch("PATCH", path, token=token, headers=headers, body={"color": "#112233"})
    assert patched["status"] == 200, patched
    assert patched["body"]["color"] == "#112233"
    wait_for_log(none_api, f"OPTIONS {path}", preflights + 1)
    stale = app.fetch("PATCH", path, token=token, headers=headers, body={"color": "#445566"})
    assert stale["status"] == 412, stale
    assert stale["body"]["code"] == 412


def test_an_origin_not_listed_cannot_call_the_api(context, none_api, stranger):
    page = Spa(context, stranger.origin(CROSS_SITE), none_api)
    username = new_user(none_api, "stranger")
    logins = access_log_lines(none_api, f"POST {AUTH}/login")
    preflights = access_log_lines(none_api, f"OPTIONS {AUTH}/login")

    page.login(username, blocked=True)
    # The browser asked first, got no CORS consent, and never sent the login itself.
    wait_for_log(none_api, f"OPTIONS {AUTH}/login", preflights + 1)
    assert access_log_lines(none_api, f"POST {AUTH}/login") == logins

    # A simple request is sent, answered, and its answer withheld from the page.
    page.fetch("GET", "/health", blocked=True)
    assert refresh_cookies(context, none_api) == []


# -- 2. the refresh cookie --------------------------------------------------------------


def test_the_refresh_cookie_refreshes_a_cross_site_spa_and_script_never_sees_it(
    context, none_api, spa
):
    username = new_user(none_api, "cookie")
    app = Spa(context, spa.origin(CROSS_SITE), none_api)
    login = app.login(username)
    assert login["status"] == 200, login
    csrf = login["body"]["csrf_token"]

    # SameSite=None needs Secure; Chromium stores a Secure cookie sent over plain http
    # because 127.0.0.1 is a potentially trustworthy origin. This Chromium blocks
    # third-party cookies (it dropped the cookie, "blocked by user preferences", until
    # the API made it Partitioned): it keeps it in the jar of the SPA's site.
    [cookie] = refresh_cookies(context, none_api)
    assert cookie["domain"] == API_HOST
    assert cookie["path"] == AUTH
    assert cookie["httpOnly"] is True
    assert cookie["secure"] is True
    assert cookie["sameSite"] == "None"
    assert cookie["partitionKey"] == f"http://{CROSS_SITE}"
    assert abs(cookie["expires"] - (time.time() + REFRESH_LIFETIME)) < 120

    assert app.refresh(None)["status"] == 401
    refreshed = app.refresh(csrf)
    assert refreshed["status"] == 200, refreshed
    assert "refresh_token" not in refreshed["body"]
    new_csrf = refreshed["body"]["csrf_token"]
    assert new_csrf != csrf
    me = app.fetch("GET", ME, token=refreshed["body"]["access_token"])
    assert me["status"] == 200 and me["body"]["username"] == username
    [rotated] = refresh_cookies(context, none_api)
    assert rotated["value"] != cookie["value"]

    # The last csrf_token only: the old one no longer matches the rotated cookie.
    assert app.refresh(csrf)["status"] == 401
    again = app.refresh(new_csrf)
    assert again["status"] == 200, again

    logout = app.fetch("POST", f"{AUTH}/logout", token=again["body"]["access_token"])
    assert logout["status"] == 204, logout
    assert refresh_cookies(context, none_api) == []
    assert app.refresh(again["body"]["csrf_token"])["status"] == 401


def test_a_strict_cookie_is_neither_stored_nor_sent_across_sites(context, strict_api, spa):
    username = new_user(strict_api, "strict")
    cross_site = Spa(context, spa.origin(CROSS_SITE), strict_api)
    # Same site, other origin (port); under the cookie's path on the API's host (cookies
    # ignore ports), where script would read the cookie if it were not HttpOnly.
    same_site = Spa(context, spa.origin(SAME_SITE), strict_api, path=f"{AUTH}/spa")

    # The API sets the cookie; the browser refuses it from a cross-site response.
    with cross_site.page.expect_response(strict_api.url(f"{AUTH}/login")) as answer:
        login = cross_site.login(username)
    assert login["status"] == 200, login
    assert f"{COOKIE}=" in answer.value.all_headers()["set-cookie"]
    assert refresh_cookies(context, strict_api) == []
    assert cross_site.refresh(login["body"]["csrf_token"])["status"] == 401

    login = same_site.login(username)
    assert login["status"] == 200, login
    [cookie] = refresh_cookies(context, strict_api)
    assert (cookie["domain"], cookie["path"]) == (API_HOST, AUTH)
    # As configured: not Secure outside production, and unpartitioned.
    assert (cookie["sameSite"], cookie["secure"], cookie["httpOnly"]) == ("Strict", False, True)
    assert "partitionKey" not in cookie

    # A cookie like it but without HttpOnly shows that script here would see it.
    readable = {k: cookie[k] for k in ("domain", "path", "secure", "sameSite")}
    context.add_cookies([{**readable, "name": "readable", "value": "1", "httpOnly": False}])
    visible = same_site.page.evaluate("document.cookie")
    assert "readable=1" in visible
    assert COOKIE not in visible

    refreshed = same_site.refresh(login["body"]["csrf_token"])
    assert refreshed["status"] == 200, refreshed
    csrf = refreshed["body"]["csrf_token"]

    # Stored, yet not sent on a cross-site fetch: the right csrf_token alone gets a 401.
    assert cross_site.refresh(csrf)["status"] == 401
    assert len(refresh_cookies(context, strict_api)) == 1
    assert same_site.refresh(csrf)["status"] == 200


# -- 3. pictures drawn on a canvas ------------------------------------------------------


def test_a_profile_picture_draws_on_a_canvas_of_any_origin(context, none_api, spa, stranger):
    username = new_user(none_api, "picture")
    app = Spa(context, spa.origin(CROSS_SITE), none_api)
    token = app.login(username, in_cookie=False)["body"]["access_token"]
    uploaded = app.page.evaluate(UPLOAD_PICTURE, [none_api.url(f"{ME}/picture"), token, RED])
    assert uploaded["status"] == 200, uploaded
    url = uploaded["body"]["profile_picture_url"]
    assert url.startswith(none_api.url("/media/profile-pictures/")), url

    # An origin CORS_ORIGINS does not list: /media is public to every origin.
    other = Spa(context, stranger.origin(CROSS_SITE), none_api)
    # Without CORS the image shows but taints the canvas: the check below is real.
    plain = other.page.evaluate(DRAW_IMAGE, [url, None])
    assert plain == {"size": [120, 80], "error": "SecurityError"}
    # Then with CORS, the same URL (now in the browser's cache, fetched without an
    # Origin): the canvas stays readable.
    drawn = other.page.evaluate(DRAW_IMAGE, [url, "anonymous"])
    assert "error" not in drawn, drawn
    assert drawn["size"] == [120, 80]
    assert drawn["dataUrl"] == "data:image/png;base64,"
    assert all(abs(a - b) <= 12 for a, b in zip(drawn["pixel"][:3], RED, strict=True)), drawn


def test_a_document_download_opens_as_a_download_not_a_page(context, none_api, spa):
    username = new_user(none_api, "download")
    app = Spa(context, spa.origin(CROSS_SITE), none_api)
    token = app.login(username, in_cookie=False)["body"]["access_token"]
    subject = app.fetch("POST", "/api/v1/subjects/", token=token, body={"name": "Essays"})
    upload_url = none_api.url(f"/api/v1/subjects/{subject['body']['id']}/documents")
    document = app.page.evaluate(UPLOAD_DOCUMENT, [upload_url, token, "Week 1 notes", "w1.txt"])
    assert document["status"] == 201, document
    link = app.fetch("GET", f"/api/v1/documents/{document['body']['id']}/download", token=token)
    assert link["status"] == 200, link

    tab = context.new_page()
    # Chromium aborts the navigation ("Download is starting") when the answer is an
    # attachment: nothing of the file becomes a page of the API's origin.
    with tab.expect_download() as download, contextlib.suppress(PlaywrightError):
        tab.goto(link["body"]["url"])
    assert download.value.suggested_filename == "w1.txt"
    assert tab.url == "about:blank"
