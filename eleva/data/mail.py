"""Email: Flask-Mailman set up once, and messages rendered from Jinja templates.

Each message is a pair of templates under ``eleva/templates/email/``: ``<name>.txt`` (the
plain text; its first line is the subject) and ``<name>.html`` (its HTML alternative).
``MAIL_BACKEND`` picks where messages go: console (development), locmem (tests), smtp.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Flask, current_app, render_template
from flask_mailman import EmailMultiAlternatives, Mail
from flask_mailman.backends import console

PRODUCT_NAME = "Eléva"

mail = Mail()


CONSOLE_BACKEND = f"{__name__}.ConsoleEmailBackend"


def init_app(app: Flask) -> None:
    # In development each message is printed readably, with where to use its token in
    # /docs when no SPA is running.
    if app.config.get("MAIL_BACKEND") == "console":
        app.config["MAIL_BACKEND"] = CONSOLE_BACKEND
    mail.init_app(app)


# The SPA's pages that emails link to, and the API call each one makes with the token:
# what a developer without the SPA does instead, in /docs.
TOKEN_PAGES = {
    "reset-password": ("POST /api/v1/auth/password/reset", '{"token": "%s", "new_password": "…"}'),
    "verify-email": ("POST /api/v1/auth/email/verify", '{"token": "%s"}'),
    "revert-email": ("POST /api/v1/auth/email/revert", '{"token": "%s"}'),
    "cancel-erasure": ("POST /api/v1/auth/erasure/cancel", '{"token": "%s"}'),
}
_LINK = re.compile(r"https?://\S+/([a-z-]+)\?token=([A-Za-z0-9_-]+)")
RULE = "─" * 79


class ConsoleEmailBackend(console.EmailBackend):  # type: ignore[misc]  # Flask-Mailman is untyped
    """Flask-Mailman's console backend, printing the message as a person reads it (its
    headers that matter and its text part) instead of raw MIME."""

    def write_message(self, message: Any) -> None:
        lines = [
            RULE,
            f"Email (development: printed here, not sent) to {', '.join(message.to)}",
            f"Subject: {message.subject}",
            "",
            message.body.rstrip(),
        ]
        hints = [
            f"  {endpoint} with {body % token}"
            for page, token in _LINK.findall(message.body)
            if page in TOKEN_PAGES
            for endpoint, body in [TOKEN_PAGES[page]]
        ]
        if hints:
            lines += ["", "No SPA running? Use the token in /docs (http://127.0.0.1:5000/docs):"]
            lines += hints
        lines.append(RULE)
        self.stream.write("\n".join(lines) + "\n")


def render(name: str, **context: Any) -> tuple[str, str, str]:
    """(subject, text, html) of the message ``name``."""
    # Both templates get the same context: the text is what every client shows.
    context = {"product": PRODUCT_NAME, **context}
    text = render_template(f"email/{name}.txt", **context)
    subject, _, body = text.partition("\n")
    html = render_template(f"email/{name}.html", subject=subject.strip(), **context)
    return subject.strip(), body.lstrip("\n"), html


def send(name: str, to: str, **context: Any) -> None:
    """Render message ``name`` and send it to ``to`` now (jobs call this)."""
    subject, text, html = render(name, **context)
    message = EmailMultiAlternatives(
        subject=subject,
        body=text,
        from_email=current_app.config["MAIL_DEFAULT_SENDER"],
        to=[to],
    )
    message.attach_alternative(html, "text/html")
    message.send()


def outbox() -> list[Any]:
    """Messages the locmem backend kept (tests)."""
    state = current_app.extensions["mailman"]
    return list(getattr(state, "outbox", []))
