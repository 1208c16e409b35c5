"""Profile pictures: process, store, point the user at the new object, drop the old.

That order keeps storage and database consistent whatever fails.
"""

from __future__ import annotations

import logging
import uuid

from eleva.core import images
from eleva.core.errors import PayloadTooLarge, ServiceUnavailable, UnsupportedMediaType
from eleva.data.db import db
from eleva.data.models import User
from eleva.data.storage import StorageError, storage
from eleva.services.users import get_user

log = logging.getLogger("eleva.pictures")

CONTENT_TYPE = "image/jpeg"
KEY_PREFIX = "profile-pictures/"


def picture_key(user_id: int) -> str:
    return f"{KEY_PREFIX}{user_id}/{uuid.uuid4().hex}.jpg"


def set_picture(user_id: int, data: bytes) -> User:
    try:
        jpeg = images.to_profile_jpeg(data)
    except images.ImageTooLarge as exc:
        raise PayloadTooLarge(str(exc)) from None
    except images.UnsupportedImage as exc:
        raise UnsupportedMediaType(f"{exc} Send a JPEG, PNG, WebP or GIF image.") from None

    key = picture_key(user_id)
    try:  # a store that fails changes nothing (503)
        storage.save(key, jpeg, CONTENT_TYPE)
    except StorageError as exc:
        log.error("picture upload for user %s failed: %s", user_id, exc)
        raise ServiceUnavailable("Picture storage is unavailable. Try again shortly.") from None

    try:
        # The current key under a row lock: of two uploads at once, each must see the
        # other's object as the old one to delete, or one object is orphaned.
        user = get_user(user_id, for_update=True)
        old_key = user.picture_key
        user.picture_key = key
        db.session.commit()
    except Exception:
        db.session.rollback()
        discard(key)  # the row never pointed at it: no orphan
        raise
    if old_key:  # best effort: a failure is logged and does not fail the request
        discard(old_key)
    return user


def remove_picture(user_id: int) -> None:
    user = get_user(user_id, for_update=True)
    old_key = user.picture_key
    if old_key is None:
        db.session.rollback()
        return
    user.picture_key = None
    db.session.commit()
    discard(old_key)


def discard(key: str) -> bool:
    """Delete an object, best effort: a failure is logged, never raised."""
    try:
        storage.delete(key)
    except StorageError as exc:
        log.warning("could not delete stored object %s: %s", key, exc)
        return False
    return True
