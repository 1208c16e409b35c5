"""Email and background jobs: templates, the locmem outbox, a real SMTP server, and a
real RQ worker on Redis (burst mode)."""

from __future__ import annotations

import logging

import pytest
from rq import Queue

from eleva import create_app
from eleva.data import jobs, mail
from eleva.services import emails
from tests.conftest import PRODUCTION_ENV, make_config

CALLS: list[dict] = []


def flaky_job(**kwargs) -> None:
    """A job that fails the first ``fail`` times it runs."""
    CALLS.append(kwargs)
    if len(CALLS) <= kwargs["fail"]:
        raise ConnectionError("smtp.example.com refused secret-looking-value")


@pytest.fixture(autouse=True)
def _reset_calls():
    CALLS.clear()


@pytest.mark.parametrize(
    ("name", "context", "expected"),
    [
        ("password_reset", {"link": "https://app.example/reset-password?token=T"}, "expires in"),
        ("email_verification", {"link": "https://app.example/verify-email?token=T"}, "expires in"),
        (
            "email_changed",
            {"link": "https://app.example/reset-password", "new_email": "n@x.io"},
            "n@x.io",
        ),
        ("password_changed", {"link": "https://app.example/reset-password"}, "password"),
    ],
)
def test_every_account_email_names_the_product_the_link_and_if_this_was_not_you(
    app, name, context, expected
):
    with app.app_context():
        mail.send(name, "ada@example.com", username="ada", expires="30 minutes", **context)
        (message,) = mail.outbox()
    assert message.to == ["ada@example.com"]
    assert "Eléva" in message.subject
    html, mimetype = message.alternatives[0]
    assert mimetype == "text/html"
    for part in (message.body, html):
        assert context["link"] in part
        assert "this wasn't you" in part.replace("&#39;", "'")
        assert expected in part
    assert message.from_email == "Eléva <no-reply@localhost>"


def test_html_part_escapes_what_users_typed(app):
    with app.app_context():
        mail.send("password_reset", "a@example.com", username="<b>x</b>", link="l", expires="1")
        (message,) = mail.outbox()
    assert "<b>x</b>" not in message.alternatives[0][0]
    assert "&lt;b&gt;x&lt;/b&gt;" in message.alternatives[0][0]


def test_the_backend_follows_the_environment():
    assert make_config().MAIL_BACKEND == "locmem"
    from config import DevelopmentConfig, ProductionConfig

    assert DevelopmentConfig({}).MAIL_BACKEND == "console"
    assert ProductionConfig(PRODUCTION_ENV).MAIL_BACKEND == "smtp"
    assert DevelopmentConfig({"MAIL_BACKEND": "smtp"}).MAIL_BACKEND == "smtp"


def test_send_test_command_uses_the_outbox(app, runner):
    result = runner.invoke(args=["mail", "send-test", "ops@example.com"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        (message,) = mail.outbox()
    assert message.to == ["ops@example.com"] and "test email" in message.body


def smtp_app(host: str, port: int, **overrides):
    return create_app(
        make_config(),
        {"MAIL_BACKEND": "smtp", "MAIL_SERVER": host, "MAIL_PORT": port, **overrides},
    )


def test_send_test_command_through_a_real_smtp_server(smtp_server):
    host, port, inbox = smtp_server
    app = smtp_app(host, port)
    result = app.test_cli_runner().invoke(args=["mail", "send-test", "ops@example.com"])
    assert result.exit_code == 0, result.output
    (message,) = inbox.messages
    assert inbox.envelopes == [("no-reply@localhost", ["ops@example.com"])]
    assert message["To"] == "ops@example.com"
    assert "Eléva" in message["Subject"]
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "flask mail send-test" in text and "<code>flask mail send-test</code>" in html


def test_send_test_command_fails_loudly_when_smtp_is_unreachable(smtp_server):
    host, _port, _ = smtp_server
    app = smtp_app(host, 1)  # nothing listens on port 1
    result = app.test_cli_runner().invoke(args=["mail", "send-test", "ops@example.com"])
    assert result.exit_code != 0
    assert "could not send" in result.output


# -- jobs without Redis: in the web process ---------------------------------------------


def test_without_redis_a_job_runs_at_once_in_the_process(app):
    with app.app_context():
        jobs.enqueue(flaky_job, fail=0, to="x")
    assert CALLS == [{"fail": 0, "to": "x"}]


def test_without_redis_a_failing_job_is_retried_then_logged_without_its_arguments(app, caplog):
    caplog.set_level(logging.WARNING, logger="eleva.jobs")
    with app.app_context():
        jobs.enqueue(flaky_job, fail=99, token="s3cret-token-value")
    assert len(CALLS) == app.config["JOB_RETRIES"] + 1
    assert "giving up" in caplog.text and "ConnectionError" in caplog.text
    assert "s3cret-token-value" not in caplog.text
    assert "secret-looking-value" not in caplog.text  # the exception's message neither


def test_without_redis_a_job_that_fails_once_succeeds_on_retry(app):
    with app.app_context():
        jobs.enqueue(flaky_job, fail=1)
    assert len(CALLS) == 2


# -- a real RQ worker on Redis -----------------------------------------------------------


def test_a_real_worker_sends_a_queued_email_through_a_real_smtp_server(redis_url, smtp_server):
    host, port, inbox = smtp_server
    app = smtp_app(host, port, REDIS_URL=redis_url)
    from eleva.data import jobs as jobs_module

    with app.app_context():
        jobs_module.init_app(app)
        jobs.enqueue(emails.send_test_email, to="queued@example.com")
        assert inbox.messages == []  # queued, not sent by the request
        queue = jobs.queue()
        assert queue.count == 1
        assert queue.jobs[0].description == "eleva.services.emails.send_test_email"
        assert jobs.work(burst=True)
        assert queue.count == 0
    (message,) = inbox.messages
    assert message["To"] == "queued@example.com"


def test_a_real_worker_retries_a_failing_job_a_bounded_number_of_times(redis_url, caplog):
    caplog.set_level(logging.WARNING, logger="eleva.jobs")
    app = create_app(
        make_config(), {"REDIS_URL": redis_url, "JOB_RETRIES": 2, "JOB_RETRY_INTERVALS": [0]}
    )
    with app.app_context():
        jobs.init_app(app)
        jobs.enqueue(flaky_job, fail=99, token="s3cret-token-value")
        from rq import SimpleWorker

        # In this process, so that the calls and the log are seen here.
        jobs.work(burst=True, worker_class=SimpleWorker)
        failed = Queue(jobs.QUEUE_NAME, connection=jobs.connection()).failed_job_registry
        assert failed.count == 1
    assert len(CALLS) == 3  # the first run and two retries
    assert caplog.text.count("will retry") == 2 and caplog.text.count("giving up") == 1
    assert "s3cret-token-value" not in caplog.text


def test_with_redis_down_enqueue_answers_service_unavailable(app):
    from eleva.core.errors import ServiceUnavailable

    app.config["REDIS_URL"] = "redis://127.0.0.1:1/0"
    with app.app_context():
        jobs.init_app(app)
        with pytest.raises(ServiceUnavailable):
            jobs.enqueue(flaky_job, fail=0)
    assert CALLS == []
