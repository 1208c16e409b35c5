"""Profile pictures: process, store, point the user at the new object, drop the old.

The order keeps storage and database consistent whatever fails:
process → store the new object → commit the row → delete the old object.
A store failure changes nothing (503); a failed commit deletes the new object; a failed
delete of the old object is logged and does not fail the request.
"""

from __future__ import annotations

import logging
import uuid

from eleva import images
from eleva.errors import PayloadTooLarge, ServiceUnavailable, UnsupportedMediaType
from eleva.extensions import db, storage
from eleva.models import User
from eleva.storage import StorageError

log = logging.getLogger("eleva.pictures")

CONTENT_TYPE = "image/jpeg"


def picture_key(user_id: int) -> str:
    return f"profile-pictures/{user_id}/{uuid.uuid4().hex}.jpg"


def set_picture(user: User, data: bytes) -> User:
    try:
        jpeg = images.to_profile_jpeg(data)
    except images.ImageTooLarge as exc:
        raise PayloadTooLarge(str(exc)) from None
    except images.UnsupportedImage as exc:
        raise UnsupportedMediaType(f"{exc} Send a JPEG, PNG, WebP or GIF image.") from None

    key = picture_key(user.id)
    try:
        storage.save(key, jpeg, CONTENT_TYPE)
    except StorageError as exc:
        log.error("picture upload for user %s failed: %s", user.id, exc)
        raise ServiceUnavailable("Picture storage is unavailable. Try again shortly.") from None

    try:
        # Read the current key under a row lock: of two uploads at once, each must see
        # the other's object as the old one to delete, or one object is orphaned.
        db.session.refresh(user, with_for_update=True)
        old_key = user.picture_key
        user.picture_key = key
        db.session.commit()
    except Exception:
        db.session.rollback()
        discard(key)  # the row never pointed at it: no orphan
        raise
    if old_key:
        discard(old_key)
    return user


def remove_picture(user: User) -> None:
    db.session.refresh(user, with_for_update=True)
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
