"""The flask CLI: seed, users, sessions."""

from __future__ import annotations

import io
import re
from pathlib import Path

import boto3
import pytest
from moto import mock_aws
from PIL import Image
from sqlalchemy import func, select

from eleva.data.db import db
from eleva.data.models import LoginSession, Subject, User
from tests.conftest import PASSWORD


def count(app, model, *where) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model).where(*where))


def jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (60, 40), (10, 20, 30)).save(out, "JPEG")
    return out.getvalue()


# -- seed --------------------------------------------------------------------------------


def test_seed_creates_the_demo_user_once(app, runner, auth):
    first = runner.invoke(args=["seed"])
    assert first.exit_code == 0, first.output
    password = re.search(r"shown once\): (\S+)", first.output).group(1)
    assert auth.login("demo", password).status_code == 200
    assert count(app, User) == 1
    assert count(app, Subject) == 12
    assert count(app, Subject, Subject.is_archived.is_(True)) == 3

    second = runner.invoke(args=["seed"])
    assert second.exit_code == 0, second.output
    assert "already exists" in second.output and "shown once" not in second.output
    assert count(app, User) == 1 and count(app, Subject) == 12


def test_seed_takes_the_demo_password(runner, auth):
    result = runner.invoke(args=["seed", "--password", "my own demo password"])
    assert result.exit_code == 0, result.output
    assert "my own demo password" not in result.output
    assert auth.login("demo@example.com", "my own demo password").status_code == 200


def test_seed_refuses_a_weak_demo_password(app, runner):
    result = runner.invoke(args=["seed", "--password", "password"])
    assert result.exit_code != 0
    assert "too common" in result.output
    assert count(app, User) == 0


def test_seed_load_data_in_batches_without_duplicates(app, runner, auth):
    # --users N: N users in all, the demo user included.
    result = runner.invoke(args=["seed", "--users", "1200", "--subjects", "3"])
    assert result.exit_code == 0, result.output
    assert count(app, User) == 1200
    assert count(app, Subject) == 12 + 1199 * 3
    again = runner.invoke(args=["seed", "--users", "1200", "--subjects", "3"])
    assert again.exit_code == 0, again.output
    assert count(app, User) == 1200 and count(app, Subject) == 12 + 1199 * 3
    assert auth.login("load0001199", "load-test-password-not-secret").status_code == 200


# -- users -------------------------------------------------------------------------------


def test_users_create_prompts_for_a_hidden_confirmed_password(app, runner, auth):
    result = runner.invoke(
        args=["users", "create", "grace", "Grace@Example.com"], input=f"{PASSWORD}\n{PASSWORD}\n"
    )
    assert result.exit_code == 0, result.output
    assert PASSWORD not in result.output  # hidden
    assert "Created user grace" in result.output
    assert auth.login("grace@example.com").status_code == 200


def test_users_create_with_a_mismatched_confirmation_asks_again(runner):
    result = runner.invoke(
        args=["users", "create", "grace", "g@example.com"],
        input=f"{PASSWORD}\nsomething else\n{PASSWORD}\n{PASSWORD}\n",
    )
    assert result.exit_code == 0, result.output
    assert "do not match" in result.output.lower() or "don't match" in result.output.lower()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["users", "create", "x", "x@example.com", "--password", PASSWORD], "username"),
        (["users", "create", "grace", "not-an-email", "--password", PASSWORD], "email"),
        (["users", "create", "grace", "g@example.com", "--password", "password"], "too common"),
        (["users", "create", "ada", "new@example.com", "--password", PASSWORD], "already taken"),
    ],
)
def test_users_create_errors(app, runner, auth, args, message):
    auth.register("ada")
    result = runner.invoke(args=args)
    assert result.exit_code == 1
    assert message in result.output
    assert count(app, User) == 1


def test_deactivate_and_activate(app, runner, auth, user):
    result = runner.invoke(args=["users", "deactivate", "ADA"])
    assert result.exit_code == 0, result.output
    assert "1 session(s) ended" in result.output
    assert auth.client.get("/api/v1/users/me", headers=user.headers).status_code == 401
    assert auth.login("ada").status_code == 403
    result = runner.invoke(args=["users", "activate", "ada@example.com"])
    assert result.exit_code == 0, result.output
    assert auth.login("ada").status_code == 200


@pytest.mark.parametrize("command", ["deactivate", "activate", "purge"])
def test_unknown_users_are_a_clear_error(runner, command):
    result = runner.invoke(
        args=["users", command, "nobody", *(["--yes"] if command == "purge" else [])]
    )
    assert result.exit_code == 1
    assert "no user with username or email 'nobody'" in result.output


def test_purge_deletes_the_user_their_subjects_sessions_and_pictures(
    app, runner, client, user, other
):
    client.post("/api/v1/subjects/", headers=user.headers, json={"name": "Gone"})
    client.post("/api/v1/subjects/", headers=other.headers, json={"name": "Kept"})
    upload = client.put(
        "/api/v1/users/me/picture",
        headers=user.headers,
        data={"file": (io.BytesIO(jpeg()), "a.jpg")},
    )
    assert upload.status_code == 200
    root = Path(app.config["LOCAL_STORAGE_PATH"])
    # A leftover from a replace whose delete failed must go too.
    (root / f"profile-pictures/{user.id}/orphan.jpg").write_bytes(b"old")

    result = runner.invoke(args=["users", "purge", "ada", "--yes"])
    assert result.exit_code == 0, result.output
    assert "2 stored object(s)" in result.output
    assert count(app, User, User.id == user.id) == 0
    assert count(app, Subject, Subject.owner_id == user.id) == 0
    assert count(app, LoginSession, LoginSession.user_id == user.id) == 0
    assert not (root / f"profile-pictures/{user.id}").exists()
    assert count(app, Subject) == 1  # grace's


def test_purge_asks_first(app, runner, user):
    result = runner.invoke(args=["users", "purge", "ada"], input="n\n")
    assert result.exit_code == 1
    assert count(app, User) == 1
    result = runner.invoke(args=["users", "purge", "ada"], input="y\n")
    assert result.exit_code == 0
    assert count(app, User) == 0


@pytest.mark.config(STORAGE_BACKEND="s3", S3_BUCKET="eleva-purge", S3_REGION="us-east-1")
def test_purge_removes_stored_objects_from_s3(app, runner, client, user, monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="eleva-purge")
        s3.put_object(Bucket="eleva-purge", Key="profile-pictures/999/other-user.jpg", Body=b"x")
        response = client.put(
            "/api/v1/users/me/picture",
            headers=user.headers,
            data={"file": (io.BytesIO(jpeg()), "a.jpg")},
        )
        assert response.status_code == 200
        result = runner.invoke(args=["users", "purge", "ada", "--yes"])
        assert result.exit_code == 0, result.output
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket="eleva-purge").get("Contents", [])]
        assert keys == ["profile-pictures/999/other-user.jpg"]
    assert count(app, User) == 0


def test_users_list(runner, auth, user, other):
    runner.invoke(args=["users", "deactivate", "grace"])
    result = runner.invoke(args=["users", "list"])
    assert result.exit_code == 0
    assert "ada" in result.output and "grace" in result.output and "2 user(s)" in result.output
    assert "$2b$" not in result.output
    inactive = runner.invoke(args=["users", "list", "--inactive"])
    assert "grace" in inactive.output and "ada@example.com" not in inactive.output
    search = runner.invoke(args=["users", "list", "--search", "ADA"])
    assert "ada" in search.output and "grace" not in search.output


def test_sessions_prune(app, runner, client, user):
    client.post("/api/v1/auth/logout", headers=user.headers)
    kept = runner.invoke(args=["sessions", "prune"])
    assert kept.exit_code == 0 and "Deleted 0" in kept.output
    pruned = runner.invoke(args=["sessions", "prune", "--days", "0"])
    assert pruned.exit_code == 0 and "Deleted 1" in pruned.output
    assert count(app, LoginSession) == 0
