"""Object storage for user files, as a Flask extension.

One small interface — ``save(key, data, content_type)``, ``delete(key)``, ``url(key)`` —
and two backends chosen by ``STORAGE_BACKEND``:

- ``local`` (development default): files under ``LOCAL_STORAGE_PATH``, served by the app
  under ``/media/<key>``;
- ``s3``: any S3-compatible store through boto3 (``S3_ENDPOINT_URL`` for MinIO, R2 …).

Backend failures surface as :class:`StorageError`; the caller decides what they mean.
The extension follows Flask's extension pattern: ``init_app`` keeps its state in
``app.extensions`` and never holds the app.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import threading
import uuid
from pathlib import Path
from typing import Any, Protocol

from flask import Flask, current_app, has_request_context, url_for

log = logging.getLogger("eleva.storage")

EXTENSION_KEY = "eleva.storage"
# Segments of letters, digits, "_", "-" and ".", never starting with a dot: no "..",
# no hidden files, no absolute paths, no backslashes.
_KEY_RE = re.compile(
    r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}(/[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}){0,7}$"
)
IMMUTABLE_CACHE = "public, max-age=31536000, immutable"


class StorageError(Exception):
    """The backend could not do what was asked (unreachable, denied, timed out)."""


class InvalidKey(ValueError):
    """A key that could escape its folder or is not one Eléva would make."""


def check_key(key: str) -> str:
    if not isinstance(key, str) or not _KEY_RE.match(key):
        raise InvalidKey(f"invalid storage key: {key!r}")
    return key


class Backend(Protocol):
    name: str

    def save(self, key: str, data: bytes, content_type: str) -> None: ...
    def delete(self, key: str) -> None: ...
    def url(self, key: str) -> str: ...
    def exists(self, key: str) -> bool: ...
    def delete_prefix(self, prefix: str) -> int: ...


class LocalBackend:
    name = "local"

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        public_base_url: str | None = None,
        request_host: bool = True,
    ) -> None:
        self.root = Path(root).resolve()
        # URLs handed out are built on PUBLIC_BASE_URL, never on a client's Host header
        # unless allowed (development); else they are relative to the API's origin.
        self.public_base_url = public_base_url.rstrip("/") if public_base_url else None
        self.request_host = request_host

    def path(self, key: str) -> Path:
        path = (self.root / check_key(key)).resolve()
        # The regex already forbids escaping; resolving guards against symlinks too.
        if self.root not in path.parents:
            raise InvalidKey(f"invalid storage key: {key!r}")
        return path

    def save(self, key: str, data: bytes, content_type: str) -> None:
        path = self.path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Write then rename: a reader never sees half a file.
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except OSError as exc:
            raise StorageError(f"local storage write failed: {exc.strerror}") from exc

    def delete(self, key: str) -> None:
        try:
            self.path(key).unlink(missing_ok=True)
        except OSError as exc:
            raise StorageError(f"local storage delete failed: {exc.strerror}") from exc

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def delete_prefix(self, prefix: str) -> int:
        folder = self.path(prefix.rstrip("/"))
        if not folder.is_dir():
            return 0
        removed = 0
        try:
            for path in sorted(folder.rglob("*"), reverse=True):  # files before folders
                if path.is_dir():
                    path.rmdir()
                else:
                    path.unlink()
                    removed += 1
            folder.rmdir()
        except OSError as exc:
            raise StorageError(f"local storage delete failed: {exc.strerror}") from exc
        return removed

    def url(self, key: str) -> str:
        check_key(key)
        if self.public_base_url:
            return f"{self.public_base_url}/media/{key}"
        if self.request_host and has_request_context():
            return url_for("media.serve", key=key, _external=True)
        return f"/media/{key}"


class S3Backend:
    name = "s3"

    def __init__(
        self,
        *,
        bucket: str,
        region: str | None = None,
        endpoint_url: str | None = None,
        public_base_url: str | None = None,
    ) -> None:
        self.bucket = bucket
        self.region = region
        self.endpoint_url = endpoint_url
        if public_base_url:
            self.public_base_url = public_base_url.rstrip("/")
        elif endpoint_url:
            self.public_base_url = f"{endpoint_url.rstrip('/')}/{bucket}"
        else:
            host = f"s3.{region}.amazonaws.com" if region else "s3.amazonaws.com"
            self.public_base_url = f"https://{bucket}.{host}"
        self._client: Any = None
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        # One client per process, made on first use: after gunicorn forks, not before.
        if self._client is None:
            with self._lock:
                if self._client is None:
                    import boto3
                    from botocore.config import Config

                    self._client = boto3.client(
                        "s3",
                        region_name=self.region,
                        endpoint_url=self.endpoint_url,
                        config=Config(
                            # S3 hung: an answer (503) within 10 s, far inside gunicorn's
                            # 30 s. Two attempts in all ("max_attempts" would count retries
                            # only: three attempts, 24 s measured): ≈ 2 × (2 s + 1 s) + backoff.
                            connect_timeout=2,
                            read_timeout=2,
                            retries={"total_max_attempts": 2, "mode": "standard"},
                        ),
                    )
        return self._client

    def _call(self, operation: str, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self.client, operation)(Bucket=self.bucket, **kwargs)
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"s3 {operation} failed: {type(exc).__name__}") from exc

    def save(self, key: str, data: bytes, content_type: str) -> None:
        self._call(
            "put_object",
            Key=check_key(key),
            Body=data,
            ContentType=content_type,
            CacheControl=IMMUTABLE_CACHE,
        )

    def delete(self, key: str) -> None:
        self._call("delete_object", Key=check_key(key))

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=check_key(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise StorageError(f"s3 head_object failed: {type(exc).__name__}") from exc
        return True

    def delete_prefix(self, prefix: str) -> int:
        check_key(prefix.rstrip("/"))
        removed = 0
        pages = self._call_paginated("list_objects_v2", Prefix=prefix)
        for page in pages:
            keys = [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
            if keys:
                self._call("delete_objects", Delete={"Objects": keys, "Quiet": True})
                removed += len(keys)
        return removed

    def _call_paginated(self, operation: str, **kwargs: Any) -> list[dict]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            paginator = self.client.get_paginator(operation)
            return list(paginator.paginate(Bucket=self.bucket, **kwargs))
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"s3 {operation} failed: {type(exc).__name__}") from exc

    def url(self, key: str) -> str:
        return f"{self.public_base_url}/{check_key(key)}"


def build_backend(config: Any) -> Backend:
    if config["STORAGE_BACKEND"] == "s3":
        return S3Backend(
            bucket=config["S3_BUCKET"],
            region=config.get("S3_REGION"),
            endpoint_url=config.get("S3_ENDPOINT_URL"),
            public_base_url=config.get("S3_PUBLIC_BASE_URL"),
        )
    return LocalBackend(
        config["LOCAL_STORAGE_PATH"],
        public_base_url=config.get("PUBLIC_BASE_URL"),
        request_host=config.get("ELEVA_ENV") != "production",
    )


class Storage:
    """The extension object: ``storage.save(...)`` uses the current app's backend."""

    def init_app(self, app: Flask) -> None:
        app.extensions[EXTENSION_KEY] = build_backend(app.config)

    @property
    def backend(self) -> Backend:
        return current_app.extensions[EXTENSION_KEY]

    def save(self, key: str, data: bytes, content_type: str) -> None:
        self.backend.save(key, data, content_type)

    def delete(self, key: str) -> None:
        self.backend.delete(key)

    def url(self, key: str) -> str:
        return self.backend.url(key)

    def exists(self, key: str) -> bool:
        return self.backend.exists(key)

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under ``prefix`` (a folder); return how many."""
        return self.backend.delete_prefix(prefix)

    def check(self) -> str:
        """Write and delete a probe object; return the backend's name or raise StorageError."""
        key = f"healthchecks/{uuid.uuid4().hex}.txt"
        self.save(key, b"eleva storage check\n", "text/plain")
        if not self.exists(key):
            raise StorageError("probe object was written but cannot be read back")
        self.delete(key)
        return self.backend.name


storage = Storage()
