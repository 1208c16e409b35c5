"""Account recovery and email: the jobs that send account emails, and what the links
in them do (password reset, email verification).

Emails are jobs (``eleva.data.jobs``): a request only enqueues one, with ids and
addresses, never a token. A job that sends a link makes the link's token itself.
"""

from __future__ import annotations

import logging

from flask import current_app

from eleva.data import mail

log = logging.getLogger("eleva.accounts")


def send_test_email(to: str) -> None:
    """Job: a test message (``flask mail send-test --queue``), to check the worker path."""
    config = current_app.config
    mail.send(
        "test",
        to,
        backend=config["MAIL_BACKEND"],
        server=f"{config['MAIL_SERVER']}:{config['MAIL_PORT']}",
    )
