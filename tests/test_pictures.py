"""Profile pictures: the Pillow pipeline, the storage backends (local, S3 via moto), the
upload/replace/delete flow and its failure modes."""

from __future__ import annotations

import io
import logging
import re
import struct
import time
import zlib
from pathlib import Path

import boto3
import pytest
from moto import mock_aws
from PIL import Image

from eleva.core import images
from eleva.data.db import db
from eleva.data.models import User
from eleva.data.storage import InvalidKey, LocalBackend, StorageError, check_key, storage
from tests.conftest import assert_error_shape

PICTURE = "/api/v1/users/me/picture"
ME = "/api/v1/users/me"
BUCKET = "eleva-test-pictures"
KEY_RE = r"profile-pictures/{user_id}/[0-9a-f]{{32}}\.jpg"


# -- image factories ---------------------------------------------------------------------


def encode(im: Image.Image, fmt: str, **params) -> bytes:
    out = io.BytesIO()
    im.save(out, fmt, **params)
    return out.getvalue()


def photo(size=(1200, 800), fmt="JPEG", **params) -> bytes:
    """A picture with a red top-left corner, so orientation can be checked."""
    im = Image.new("RGB", size, (40, 120, 200))
    im.paste((255, 0, 0), (0, 0, size[0] // 4, size[1] // 4))
    return encode(im, fmt, **params)


def exif_photo(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "SecretCam"  # Make
    exif[0x8825] = {2: (48.0, 51.0, 24.0)}  # GPS IFD
    return photo(
        exif=exif.tobytes(), icc_profile=b"not-a-real-icc-profile" * 4, comment=b"secret comment"
    )


def png_with_alpha() -> bytes:
    im = Image.new("RGBA", (200, 100), (0, 0, 0, 0))  # fully transparent...
    im.paste((0, 128, 0, 255), (100, 0, 200, 100))  # ...but the right half is opaque green
    return encode(im, "PNG")


def animated_gif(frames: int, size=(64, 64)) -> bytes:
    first = Image.new("P", size, 1)
    rest = [Image.new("P", size, (n % 200) + 2) for n in range(frames - 1)]
    return encode(first, "GIF", save_all=True, append_images=rest, duration=20, loop=0)


def png_header_only(width: int, height: int) -> bytes:
    """A valid PNG claiming a huge canvas, with almost no pixel data behind it."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def gif_huge_canvas(width: int, height: int) -> bytes:
    """A GIF whose logical screen is huge and whose one frame is 1×1."""
    header = (
        b"GIF89a" + struct.pack("<HHBBB", width, height, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    )
    frame = b"\x2c" + struct.pack("<HHHHB", 0, 0, 1, 1, 0) + b"\x02\x02\x44\x01\x00"
    return header + frame + b"\x3b"


def upload(
    client, account, data: bytes, filename="me.jpg", content_type="image/jpeg", field="file"
):
    return client.put(
        PICTURE,
        headers=account.headers,
        data={field: (io.BytesIO(data), filename, content_type)},
        content_type="multipart/form-data",
    )


def decoded(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


# -- the pipeline, pure ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((1200, 800), (500, 333)),
        ((800, 1200), (333, 500)),
        ((300, 300), (300, 300)),
        ((500, 500), (500, 500)),
        ((4000, 10), (500, 1)),
    ],
)
def test_fits_within_500_without_upscaling(size, expected):
    out = decoded(images.to_profile_jpeg(photo(size)))
    assert out.format == "JPEG" and out.mode == "RGB"
    assert out.size == expected


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF"])
def test_accepts_the_four_formats_by_content(fmt):
    data = photo((640, 480), fmt)
    out = decoded(images.to_profile_jpeg(data))
    assert out.format == "JPEG" and out.size == (500, 375)


def test_exif_orientation_is_applied_and_every_metadata_block_dropped():
    source = exif_photo(orientation=6)  # "rotate 90° clockwise to display"
    assert b"SecretCam" in source and b"secret comment" in source
    data = images.to_profile_jpeg(source)
    out = decoded(data)
    assert out.size == (333, 500)
    # The red corner was top-left; after a 90° clockwise turn it is top-right.
    assert out.getpixel((out.width - 5, 5))[0] > 200
    assert out.getpixel((5, 5))[0] < 100
    assert not out.info.get("exif") and not out.getexif()
    assert "icc_profile" not in out.info and "comment" not in out.info
    for secret in (b"SecretCam", b"secret comment", b"not-a-real-icc-profile", b"Exif\x00\x00"):
        assert secret not in data


def test_transparency_becomes_white():
    out = decoded(images.to_profile_jpeg(png_with_alpha()))
    r, g, b = out.getpixel((10, 50))
    assert min(r, g, b) > 245  # was transparent
    r, g, b = out.getpixel((190, 50))
    assert g > 100 and r < 40  # was opaque green


def test_palette_gif_with_transparency_becomes_white():
    im = Image.new("P", (50, 50), 0)
    im.putpalette([0, 0, 0] * 256)
    data = encode(im, "GIF", transparency=0)
    assert decoded(images.to_profile_jpeg(data)).getpixel((25, 25))[0] > 245


def test_only_the_first_frame_of_an_animation_is_decoded_quickly():
    data = animated_gif(10_000, size=(32, 32))
    started = time.perf_counter()
    out = decoded(images.to_profile_jpeg(data))
    assert time.perf_counter() - started < 1.0
    assert out.size == (32, 32)


@pytest.mark.parametrize(
    "data",
    [
        png_header_only(20_000, 20_000),
        png_header_only(12_000, 9_000),
        gif_huge_canvas(65_535, 65_535),
    ],
    ids=["png-20000x20000", "png-12000x9000", "gif-65535x65535"],
)
def test_pixel_floods_are_refused_from_the_header(data):
    import tracemalloc

    tracemalloc.start()
    started = time.perf_counter()
    with pytest.raises(images.ImageTooLarge):
        images.to_profile_jpeg(data)
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert elapsed < 0.05
    assert peak < 5 * 1024 * 1024


NOT_IMAGES = {
    "html": b"<!doctype html><html><script>alert(1)</script></html>",
    "pdf": b"%PDF-1.7\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF",
    "svg": b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
    "php": b"<?php system($_GET['c']); ?>",
    "empty": b"",
    "bmp": None,  # a real image, but not one of the four formats
    "tiff": None,
    "truncated-jpeg": None,
    "png-signature-only": b"\x89PNG\r\n\x1a\n",
}


def _not_image(kind: str) -> bytes:
    if kind == "bmp":
        return photo((20, 20), "BMP")
    if kind == "tiff":
        return photo((20, 20), "TIFF")
    if kind == "truncated-jpeg":
        return photo((800, 600))[:600]
    return NOT_IMAGES[kind]


@pytest.mark.parametrize("kind", list(NOT_IMAGES))
def test_anything_else_is_unsupported(kind):
    with pytest.raises(images.UnsupportedImage):
        images.to_profile_jpeg(_not_image(kind))


# -- upload through the API, local storage ----------------------------------------------


def media_path(app, key: str) -> Path:
    return Path(app.config["LOCAL_STORAGE_PATH"]) / key


def stored_files(app) -> list[str]:
    root = Path(app.config["LOCAL_STORAGE_PATH"])
    return (
        sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
        if root.exists()
        else []
    )


def picture_key(app, user_id: int) -> str | None:
    with app.app_context():
        return db.session.get(User, user_id).picture_key


def test_upload_stores_a_500px_jpeg_under_the_key_pattern_and_serves_it(app, client, user):
    response = upload(client, user, photo((1200, 800)))
    assert response.status_code == 200, response.json
    body = response.json
    key = picture_key(app, user.id)
    assert re.fullmatch(KEY_RE.format(user_id=user.id), key)
    assert body["profile_picture_url"] == f"http://localhost/media/{key}"
    assert set(body) >= {"id", "email", "privacy"}  # the private view
    served = client.get(f"/media/{key}")
    assert served.status_code == 200
    assert served.mimetype == "image/jpeg"
    assert served.headers["X-Content-Type-Options"] == "nosniff"
    assert decoded(served.data).size == (500, 333)
    assert stored_files(app) == [key]


def test_the_picture_shows_on_the_public_profile(client, user, other):
    upload(client, user, photo())
    url = client.get(ME, headers=user.headers).json["profile_picture_url"]
    assert client.get("/api/v1/users/ada", headers=other.headers).json["profile_picture_url"] == url


def test_replacing_deletes_the_old_object(app, client, user):
    upload(client, user, photo())
    first = picture_key(app, user.id)
    upload(client, user, photo((300, 300), "PNG"), filename="me.png", content_type="image/png")
    second = picture_key(app, user.id)
    assert second != first
    assert stored_files(app) == [second]
    assert client.get(f"/media/{first}").status_code == 404


def test_delete_removes_the_object_and_nulls_the_url(app, client, user):
    upload(client, user, photo())
    response = client.delete(PICTURE, headers=user.headers)
    assert response.status_code == 204
    assert stored_files(app) == []
    assert client.get(ME, headers=user.headers).json["profile_picture_url"] is None
    assert client.delete(PICTURE, headers=user.headers).status_code == 204  # idempotent


@pytest.mark.parametrize("kind", list(NOT_IMAGES))
def test_non_images_are_415_whatever_their_name_and_type(app, client, user, kind):
    response = upload(
        client, user, _not_image(kind), filename="innocent.png", content_type="image/png"
    )
    assert_error_shape(response, 415)
    assert picture_key(app, user.id) is None and stored_files(app) == []


def test_pixel_flood_upload_is_refused(app, client, user):
    response = upload(
        client, user, png_header_only(20_000, 20_000), filename="x.png", content_type="image/png"
    )
    body = assert_error_shape(response, 413)
    assert "megapixels" in body["message"]
    assert stored_files(app) == []


@pytest.mark.config(MAX_UPLOAD_MB=1)
def test_too_large_is_413(app, client, user):
    big = photo((200, 200), "PNG") + b"\0" * (1024 * 1024 + 100)
    assert_error_shape(upload(client, user, big, filename="big.png", content_type="image/png"), 413)
    assert stored_files(app) == [] and picture_key(app, user.id) is None


@pytest.mark.config(MAX_UPLOAD_MB=1)
def test_a_file_just_under_the_limit_is_accepted(client, user):
    data = photo((400, 400), "PNG")
    data += b"\0" * (1024 * 1024 - len(data) - 10)  # trailing bytes after IEND are ignored
    assert (
        upload(client, user, data, filename="ok.png", content_type="image/png").status_code == 200
    )


def test_missing_file_is_422(client, user):
    body = assert_error_shape(upload(client, user, photo(), field="picture"), 422)
    assert "file" in body["errors"]["files"]
    response = client.put(
        PICTURE, headers=user.headers, data={}, content_type="multipart/form-data"
    )
    assert_error_shape(response, 422)


def test_a_non_multipart_body_is_415(client, user):
    assert_error_shape(client.put(PICTURE, headers=user.headers, json={"file": "aGVsbG8="}), 415)


def test_upload_needs_a_token(client):
    assert_error_shape(client.put(PICTURE, data={"file": (io.BytesIO(photo()), "a.jpg")}), 401)
    assert_error_shape(client.delete(PICTURE), 401)


@pytest.mark.config(RATELIMIT_ENABLED=True, RATELIMIT_UPLOAD="2 per minute")
def test_uploads_are_limited_per_user(client, auth):
    ada, grace = auth.account("ada"), auth.account("grace")
    assert [upload(client, ada, photo((50, 50))).status_code for _ in range(2)] == [200, 200]
    limited = upload(client, ada, photo((50, 50)))
    assert_error_shape(limited, 429)
    assert limited.headers["Retry-After"]
    assert upload(client, grace, photo((50, 50))).status_code == 200


def test_store_failure_is_503_and_changes_nothing(app, client, user, monkeypatch):
    upload(client, user, photo())
    key = picture_key(app, user.id)

    def broken(self, key, data, content_type):
        raise StorageError("disk on fire")

    monkeypatch.setattr(LocalBackend, "save", broken)
    response = upload(client, user, photo((300, 300)))
    body = assert_error_shape(response, 503)
    assert "fire" not in body["message"]
    assert picture_key(app, user.id) == key
    assert stored_files(app) == [key]


def test_commit_failure_leaves_no_orphan(app, client, user, monkeypatch):
    from eleva.services import pictures

    real_commit = db.session.commit

    def failing_commit():
        raise RuntimeError("database went away mid-commit")

    monkeypatch.setattr(pictures.db.session, "commit", failing_commit, raising=False)
    response = upload(client, user, photo())
    monkeypatch.setattr(pictures.db.session, "commit", real_commit, raising=False)
    assert_error_shape(response, 500)
    assert stored_files(app) == []
    assert picture_key(app, user.id) is None


def test_failing_delete_of_the_old_object_does_not_fail_the_request(
    app, client, user, monkeypatch, caplog
):
    upload(client, user, photo())
    old = picture_key(app, user.id)

    def broken(self, key):
        raise StorageError("permission denied")

    monkeypatch.setattr(LocalBackend, "delete", broken)
    with caplog.at_level(logging.WARNING, logger="eleva.pictures"):
        response = upload(client, user, photo((300, 300)))
    assert response.status_code == 200
    assert picture_key(app, user.id) != old
    assert any(old in r.getMessage() for r in caplog.records)


# -- local backend: keys and paths ------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "../etc/passwd",
        "/etc/passwd",
        "a/../../b",
        "a/./b",
        ".hidden",
        "a//b",
        "a\\b",
        "",
        "a/",
        "profile-pictures/1/../../x",
        "%2e%2e/x",
    ],
)
def test_keys_that_could_escape_are_refused(tmp_path, key):
    backend = LocalBackend(tmp_path)
    with pytest.raises(InvalidKey):
        check_key(key)
    with pytest.raises(InvalidKey):
        backend.save(key, b"x", "text/plain")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "path",
    [
        "/media/../config.py",
        "/media/%2e%2e/config.py",
        "/media/..%2fconfig.py",
        "/media/profile-pictures/1/nope.jpg",
        "/media/.env",
    ],
)
def test_media_route_never_serves_outside_its_folder(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert b"SECRET" not in response.data and b"import" not in response.data


def test_storage_check_command_local(runner):
    result = runner.invoke(args=["storage", "check"])
    assert result.exit_code == 0, result.output
    assert "'local' is reachable and writable" in result.output


# -- S3 backend with moto ----------------------------------------------------------------


@pytest.fixture
def aws(monkeypatch):
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        yield s3


def bucket_keys(s3) -> list[str]:
    return sorted(obj["Key"] for obj in s3.list_objects_v2(Bucket=BUCKET).get("Contents", []))


S3_CONFIG = {"STORAGE_BACKEND": "s3", "S3_BUCKET": BUCKET, "S3_REGION": "us-east-1"}


@pytest.mark.config(**S3_CONFIG)
def test_s3_upload_replace_and_delete(app, client, user, aws):
    response = upload(client, user, photo())
    assert response.status_code == 200, response.json
    key = picture_key(app, user.id)
    assert re.fullmatch(KEY_RE.format(user_id=user.id), key)
    assert bucket_keys(aws) == [key]
    head = aws.head_object(Bucket=BUCKET, Key=key)
    assert head["ContentType"] == "image/jpeg"
    assert "max-age=31536000" in head["CacheControl"]
    assert (
        response.json["profile_picture_url"] == f"https://{BUCKET}.s3.us-east-1.amazonaws.com/{key}"
    )
    body = aws.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    assert decoded(body).size == (500, 333)

    upload(client, user, photo((300, 300)))
    second = picture_key(app, user.id)
    assert bucket_keys(aws) == [second]

    assert client.delete(PICTURE, headers=user.headers).status_code == 204
    assert bucket_keys(aws) == []
    assert client.get(ME, headers=user.headers).json["profile_picture_url"] is None


@pytest.mark.config(**S3_CONFIG, S3_PUBLIC_BASE_URL="https://cdn.example.com/pics/")
def test_s3_public_base_url(client, user, aws):
    url = upload(client, user, photo()).json["profile_picture_url"]
    assert re.fullmatch(rf"https://cdn\.example\.com/pics/{KEY_RE.format(user_id=user.id)}", url)


@pytest.mark.config(**S3_CONFIG)
def test_s3_store_failure_is_503_with_no_change(app, client, user, aws):
    upload(client, user, photo())
    key = picture_key(app, user.id)
    aws.delete_object(Bucket=BUCKET, Key=key)
    aws.delete_bucket(Bucket=BUCKET)  # every put now fails: NoSuchBucket
    assert_error_shape(upload(client, user, photo((300, 300))), 503)
    assert picture_key(app, user.id) == key


@pytest.mark.config(**S3_CONFIG)
def test_s3_commit_failure_deletes_the_new_object(app, client, user, aws, monkeypatch):
    from eleva.services import pictures

    def failing_commit():
        raise RuntimeError("commit failed")

    monkeypatch.setattr(pictures.db.session, "commit", failing_commit, raising=False)
    assert_error_shape(upload(client, user, photo()), 500)
    monkeypatch.undo()
    assert bucket_keys(aws) == []


@pytest.mark.config(**S3_CONFIG)
def test_storage_check_command_s3(app, runner, aws):
    result = runner.invoke(args=["storage", "check"])
    assert result.exit_code == 0, result.output
    assert "'s3' is reachable and writable" in result.output
    assert bucket_keys(aws) == []
    aws.delete_bucket(Bucket=BUCKET)
    failed = runner.invoke(args=["storage", "check"])
    assert failed.exit_code != 0
    assert "storage is not usable" in failed.output


@pytest.mark.config(**S3_CONFIG)
def test_s3_client_is_made_once_per_process(app, aws):
    with app.app_context():
        backend = storage.backend
        assert backend.client is backend.client
