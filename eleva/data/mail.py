"""Email: Flask-Mailman set up once, and messages rendered from Jinja templates.

Each message is a pair of templates under ``eleva/templates/email/``: ``<name>.txt``
(the plain text every client shows) and ``<name>.html`` (its HTML alternative), both
rendered with the same context. The first line of the text template is the subject.
``MAIL_BACKEND`` picks where messages go: console (development), locmem (tests), smtp.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app, render_template
from flask_mailman import EmailMultiAlternatives, Mail

PRODUCT_NAME = "Eléva"

mail = Mail()


def init_app(app: Flask) -> None:
    mail.init_app(app)


def render(name: str, **context: Any) -> tuple[str, str, str]:
    """(subject, text, html) of the message ``name``."""
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
