"""Object storage for user files, as a Flask extension, with two backends chosen by
``STORAGE_BACKEND``: ``local`` (development default: files under ``LOCAL_STORAGE_PATH``,
served by the app under ``/media/<key>``) and ``s3`` (any S3-compatible store, boto3).

Backend failures surface as :class:`StorageError`; the caller decides what they mean.
"""

from __future__ import annotations

import io
import logging
import os
import re
import shutil
import tempfile
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, Protocol
from urllib.parse import quote

from flask import Flask, current_app, has_request_context, request, url_for
from itsdangerous import BadSignature, URLSafeTimedSerializer

log = logging.getLogger("eleva.storage")

EXTENSION_KEY = "eleva.storage"
# Segments of letters, digits, "_", "-" and ".", never starting with a dot: no "..",
# no hidden files, no absolute paths, no backslashes.
_KEY_RE = re.compile(
    r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}(/[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}){0,7}$"
)
IMMUTABLE_CACHE = "public, max-age=31536000, immutable"
# The only prefix anyone may read without a signed URL (profile pictures); everything
# else (documents, exports) is private.
PUBLIC_PREFIXES = ("profile-pictures/",)


class StorageError(Exception):
    """The backend could not do what was asked (unreachable, denied, timed out)."""


class InvalidKey(ValueError):
    """A key that could escape its folder or is not one Eléva would make."""


def check_key(key: str) -> str:
    if not isinstance(key, str) or not _KEY_RE.match(key):
        raise InvalidKey(f"invalid storage key: {key!r}")
    return key


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    modified: datetime


@dataclass(frozen=True)
class PartialUpload:
    """What a write that never finished left behind: the ``key`` it was writing, when
    it began, and what names it to the backend (``ref``: a partial file's path, an S3
    multipart upload's id)."""

    key: str
    started: datetime
    ref: str


@dataclass(frozen=True)
class UploadForm:
    """Where and how a client sends a file itself: a multipart POST to ``url`` with
    every field of ``fields``, then ``file``."""

    url: str
    fields: dict[str, str]


COPY_CHUNK = 1024 * 1024
# Local download and upload URLs of the app are signed with SECRET_KEY, one salt per
# purpose: a download token cannot be replayed as an upload token.
DOWNLOAD_SALT = "eleva.documents.download"
UPLOAD_SALT = "eleva.documents.upload"
# The app's routes behind those URLs (eleva.documents.routes).
DOWNLOAD_ENDPOINT = "documents.DownloadFile"
UPLOAD_ENDPOINT = "documents.UploadTarget"


def sign(salt: str, data: Any) -> str:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=salt).dumps(data)


def unsign(salt: str, token: str, max_age: int) -> Any:
    """The data ``token`` carries; InvalidToken when forged, altered or older than ``max_age``."""
    serializer = URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=salt)
    try:
        return serializer.loads(token, max_age=max_age)
    except BadSignature:  # SignatureExpired too
        raise InvalidToken("invalid or expired link") from None


class InvalidToken(ValueError):
    """A signed link that is forged, altered or expired."""


def attachment(filename: str) -> str:
    """A Content-Disposition that makes browsers save the file, never show it (RFC 6266)."""
    ascii_name = filename.encode("ascii", "ignore").decode().replace('"', "").replace("\\", "")
    ascii_name = "".join(ch for ch in ascii_name if ch.isprintable()) or "download"
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename, safe='')}"


# One small interface: save, delete, url; for documents and exports save_stream (a file
# object, copied in chunks), open (a seekable reader), read_chunks (a streaming read),
# size, list_objects, short-lived download_url and direct upload_form; partial_uploads
# (what a write killed midway left: a local partial file, an S3 multipart upload never
# completed).
class Backend(Protocol):
    name: str

    def save(self, key: str, data: bytes, content_type: str) -> None: ...
    def save_stream(
        self, key: str, fileobj: BinaryIO, content_type: str, *, sequential: bool = False
    ) -> None: ...
    def open(self, key: str) -> BinaryIO: ...
    def read_chunks(self, key: str, chunk_size: int = COPY_CHUNK) -> Iterator[bytes]: ...
    def partial_uploads(self, prefix: str) -> Iterator[PartialUpload]: ...
    def abort_partial(self, upload: PartialUpload) -> None: ...
    def discard_upload(self, key: str) -> None: ...
    def size(self, key: str) -> int | None: ...
    def list_objects(self, prefix: str) -> Iterator[StoredObject]: ...
    def delete(self, key: str) -> None: ...
    def url(self, key: str) -> str: ...
    def download_url(
        self, key: str, *, filename: str, content_type: str, expires_in: int
    ) -> str: ...
    def upload_form(self, key: str, *, size: int, expires_in: int, token: Any) -> UploadForm: ...
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

    @staticmethod
    def _partial_path(path: Path) -> Path:
        # Named after its key (keys are unique uuids: one writer each), so that the
        # writer's next attempt, or discard_upload, finds what a killed one left.
        return path.with_name(f".{path.name}.partial")

    def save_stream(
        self, key: str, fileobj: BinaryIO, content_type: str, *, sequential: bool = False
    ) -> None:
        path = self.path(key)
        partial = self._partial_path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                with partial.open("wb") as fh:
                    shutil.copyfileobj(fileobj, fh, COPY_CHUNK)
                os.replace(partial, path)  # a reader never sees half a file
            except BaseException:
                partial.unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise StorageError(f"local storage write failed: {exc.strerror}") from exc

    def open(self, key: str) -> BinaryIO:
        try:
            return self.path(key).open("rb")
        except OSError as exc:
            raise StorageError(f"local storage read failed: {exc.strerror}") from exc

    def read_chunks(self, key: str, chunk_size: int = COPY_CHUNK) -> Iterator[bytes]:
        with self.open(key) as fh:
            while True:
                try:
                    chunk = fh.read(chunk_size)
                except OSError as exc:
                    raise StorageError(f"local storage read failed: {exc.strerror}") from exc
                if not chunk:
                    return
                yield chunk

    def partial_uploads(self, prefix: str) -> Iterator[PartialUpload]:
        folder = self.path(prefix.rstrip("/"))
        if not folder.is_dir():
            return
        for path in sorted(folder.rglob(".*")):
            name = path.name
            if not path.is_file():
                continue
            if name.endswith(".partial"):
                target = path.with_name(name[1 : -len(".partial")])
            elif name.startswith(".upload-"):  # a whole-bytes save's temporary file
                target = path
            else:
                continue
            yield PartialUpload(
                target.relative_to(self.root).as_posix(),
                datetime.fromtimestamp(path.stat().st_mtime, UTC),
                path.relative_to(self.root).as_posix(),
            )

    def abort_partial(self, upload: PartialUpload) -> None:
        path = (self.root / upload.ref).resolve()
        if self.root not in path.parents or not path.name.startswith("."):
            raise InvalidKey(f"not a partial upload: {upload.ref!r}")
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise StorageError(f"local storage delete failed: {exc.strerror}") from exc

    def discard_upload(self, key: str) -> None:
        path = self.path(key)
        try:
            path.unlink(missing_ok=True)
            self._partial_path(path).unlink(missing_ok=True)
        except OSError as exc:
            raise StorageError(f"local storage delete failed: {exc.strerror}") from exc

    def size(self, key: str) -> int | None:
        try:
            return self.path(key).stat().st_size
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageError(f"local storage stat failed: {exc.strerror}") from exc

    def list_objects(self, prefix: str) -> Iterator[StoredObject]:
        folder = self.path(prefix.rstrip("/"))
        if not folder.is_dir():
            return
        for path in sorted(folder.rglob("*")):
            if path.is_file() and not path.name.startswith("."):
                stat = path.stat()
                yield StoredObject(
                    path.relative_to(self.root).as_posix(),
                    stat.st_size,
                    datetime.fromtimestamp(stat.st_mtime, UTC),
                )

    def download_url(self, key: str, *, filename: str, content_type: str, expires_in: int) -> str:
        # The token carries what the file route needs: no database read to serve it.
        token = sign(DOWNLOAD_SALT, {"k": check_key(key), "f": filename, "t": content_type})
        return self._app_url(DOWNLOAD_ENDPOINT, token=token)

    def upload_form(self, key: str, *, size: int, expires_in: int, token: Any) -> UploadForm:
        return UploadForm(self._app_url(UPLOAD_ENDPOINT, token=sign(UPLOAD_SALT, token)), {})

    def _app_url(self, endpoint: str, **values: Any) -> str:
        """A URL of one of the app's routes to hand out, as :meth:`url` builds media URLs:
        on PUBLIC_BASE_URL, the request's own host only where allowed (development),
        else relative to the API's origin."""
        if self.request_host and not self.public_base_url:
            return url_for(endpoint, **values, _external=True)
        path = url_for(endpoint, **values)
        if has_request_context() and request.script_root:
            path = path.removeprefix(request.script_root)
        return f"{self.public_base_url or ''}{path}"

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
    # Any S3-compatible store: S3_ENDPOINT_URL for MinIO, R2 …
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
        self._pid = 0
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        # One client per process, made on first use: after gunicorn forks, not before,
        # and anew in a forked job process (RQ's work horse), whose parent's pooled
        # connections are not its own.
        if self._client is None or self._pid != os.getpid():
            with self._lock:
                if self._client is None or self._pid != os.getpid():
                    import boto3
                    from botocore.config import Config

                    self._client = boto3.client(
                        "s3",
                        region_name=self.region,
                        endpoint_url=self.endpoint_url,
                        config=Config(
                            # S3 hung: a 503 well inside gunicorn's timeout, from two
                            # attempts in all, each bounded by these timeouts, plus a
                            # backoff ("max_attempts" would count retries only: three).
                            connect_timeout=2,
                            read_timeout=2,
                            retries={"total_max_attempts": 2, "mode": "standard"},
                            # Presigned URLs and forms signed with SigV4 (SigV2 is
                            # deprecated and refused by newer regions).
                            signature_version="s3v4",
                        ),
                    )
                    self._pid = os.getpid()
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

    def save_stream(
        self, key: str, fileobj: BinaryIO, content_type: str, *, sequential: bool = False
    ) -> None:
        from boto3.exceptions import S3UploadFailedError
        from boto3.s3.transfer import TransferConfig
        from botocore.exceptions import BotoCoreError, ClientError

        # Multipart above 8 MB (boto3's managed upload, which aborts the upload when a
        # part fails): never the whole file in memory. ``sequential``: one part at a
        # time, so at most one part (8 MB) is in memory, for files of any size.
        config = TransferConfig(use_threads=False) if sequential else None
        try:
            self.client.upload_fileobj(
                fileobj,
                self.bucket,
                check_key(key),
                ExtraArgs={"ContentType": content_type, "CacheControl": "private, no-store"},
                Config=config,
            )
        except (BotoCoreError, ClientError, S3UploadFailedError) as exc:
            raise StorageError(f"s3 upload failed: {type(exc).__name__}") from exc

    def open(self, key: str) -> BinaryIO:
        size = self.size(key)
        if size is None:
            raise StorageError(f"s3 object {key} is missing")
        return io.BufferedReader(_RangedReader(self, check_key(key), size), COPY_CHUNK)

    def read_chunks(self, key: str, chunk_size: int = COPY_CHUNK) -> Iterator[bytes]:
        from botocore.exceptions import BotoCoreError

        body = self._call("get_object", Key=check_key(key))["Body"]
        try:
            # One GET, read as it arrives: a chunk in memory at a time.
            yield from body.iter_chunks(chunk_size)
        except (BotoCoreError, OSError) as exc:  # timed out or cut while streaming
            raise StorageError(f"s3 read of {key} failed: {type(exc).__name__}") from exc
        finally:
            body.close()

    def partial_uploads(self, prefix: str) -> Iterator[PartialUpload]:
        check_key(prefix.rstrip("/"))
        for page in self._call_paginated("list_multipart_uploads", Prefix=prefix):
            for upload in page.get("Uploads", []):
                yield PartialUpload(upload["Key"], upload["Initiated"], upload["UploadId"])

    def abort_partial(self, upload: PartialUpload) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.abort_multipart_upload(
                Bucket=self.bucket, Key=check_key(upload.key), UploadId=upload.ref
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "NoSuchUpload":
                raise StorageError(f"s3 abort_multipart_upload failed: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"s3 abort_multipart_upload failed: {type(exc).__name__}") from exc

    def discard_upload(self, key: str) -> None:
        self.delete(key)
        for upload in self.partial_uploads(key):
            if upload.key == key:
                self.abort_partial(upload)

    def size(self, key: str) -> int | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            head = self.client.head_object(Bucket=self.bucket, Key=check_key(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise StorageError(f"s3 head_object failed: {type(exc).__name__}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"s3 head_object failed: {type(exc).__name__}") from exc
        return int(head["ContentLength"])

    def list_objects(self, prefix: str) -> Iterator[StoredObject]:
        check_key(prefix.rstrip("/"))
        for page in self._call_paginated("list_objects_v2", Prefix=prefix):
            for obj in page.get("Contents", []):
                yield StoredObject(obj["Key"], int(obj["Size"]), obj["LastModified"])

    def download_url(self, key: str, *, filename: str, content_type: str, expires_in: int) -> str:
        url: str = self._presign(
            "generate_presigned_url",
            ClientMethod="get_object",
            Params={
                "Bucket": self.bucket,
                "Key": check_key(key),
                "ResponseContentDisposition": attachment(filename),
                "ResponseContentType": content_type,
            },
            ExpiresIn=expires_in,
        )
        return url

    def upload_form(self, key: str, *, size: int, expires_in: int, token: Any) -> UploadForm:
        # The policy pins the key and the exact size: S3 refuses any other body.
        post = self._presign(
            "generate_presigned_post",
            Bucket=self.bucket,
            Key=check_key(key),
            Conditions=[["content-length-range", size, size]],
            ExpiresIn=expires_in,
        )
        return UploadForm(post["url"], dict(post["fields"]))

    def _presign(self, operation: str, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self.client, operation)(**kwargs)
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"s3 {operation} failed: {type(exc).__name__}") from exc

    def read_range(self, key: str, start: int, end: int) -> bytes:
        body = self._call("get_object", Key=key, Range=f"bytes={start}-{end}")["Body"]
        try:
            data: bytes = body.read()
            return data
        finally:
            body.close()

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

    def _call_paginated(self, operation: str, **kwargs: Any) -> list[dict[str, Any]]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            paginator = self.client.get_paginator(operation)
            return list(paginator.paginate(Bucket=self.bucket, **kwargs))
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"s3 {operation} failed: {type(exc).__name__}") from exc

    def url(self, key: str) -> str:
        return f"{self.public_base_url}/{check_key(key)}"


class _RangedReader(io.RawIOBase):
    """A seekable read-only view of an S3 object: each read is a ranged GET, so that
    sniffing its type (its head, a ZIP's central directory at its end) never downloads
    the whole object at once."""

    def __init__(self, backend: S3Backend, key: str, size: int) -> None:
        self._backend, self._key, self._size, self._pos = backend, key, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        if self._pos >= self._size or not len(buffer):
            return 0
        end = min(self._pos + len(buffer), self._size) - 1
        data = self._backend.read_range(self._key, self._pos, end)
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)


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
        # Flask's extension pattern: the state lives in app.extensions, never the app here.
        app.extensions[EXTENSION_KEY] = build_backend(app.config)

    @property
    def backend(self) -> Backend:
        backend: Backend = current_app.extensions[EXTENSION_KEY]
        return backend

    def save(self, key: str, data: bytes, content_type: str) -> None:
        self.backend.save(key, data, content_type)

    def save_stream(
        self, key: str, fileobj: BinaryIO, content_type: str, *, sequential: bool = False
    ) -> None:
        """Store a file object's content from its current position, in chunks
        (``sequential``: one chunk in memory at a time, whatever the size)."""
        self.backend.save_stream(key, fileobj, content_type, sequential=sequential)

    def open(self, key: str) -> BinaryIO:
        """A seekable binary reader of a stored object (close it)."""
        return self.backend.open(key)

    def read_chunks(self, key: str, chunk_size: int = COPY_CHUNK) -> Iterator[bytes]:
        """The stored object's bytes, a chunk at a time, as they are read."""
        return self.backend.read_chunks(key, chunk_size)

    def partial_uploads(self, prefix: str) -> Iterator[PartialUpload]:
        """Writes under ``prefix`` that never finished (killed midway)."""
        return self.backend.partial_uploads(prefix)

    def abort_partial(self, upload: PartialUpload) -> None:
        self.backend.abort_partial(upload)

    def discard_upload(self, key: str) -> None:
        """Delete the object ``key`` and whatever a write of it killed midway left."""
        self.backend.discard_upload(key)

    def size(self, key: str) -> int | None:
        """The stored object's size in bytes, or None when there is no such object."""
        return self.backend.size(key)

    def list_objects(self, prefix: str) -> Iterator[StoredObject]:
        return self.backend.list_objects(prefix)

    def download_url(self, key: str, *, filename: str, content_type: str, expires_in: int) -> str:
        """A URL that serves the object as an attachment for ``expires_in`` seconds."""
        return self.backend.download_url(
            key, filename=filename, content_type=content_type, expires_in=expires_in
        )

    def upload_form(self, key: str, *, size: int, expires_in: int, token: Any) -> UploadForm:
        """Where a client uploads exactly ``size`` bytes to ``key`` itself. ``token`` is
        what the local backend's signed URL carries back to the app."""
        return self.backend.upload_form(key, size=size, expires_in=expires_in, token=token)

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
