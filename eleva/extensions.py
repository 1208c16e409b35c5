"""Bare extension instances. ``create_app`` initialises each of them; none holds an app."""

from flask_cors import CORS
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

from eleva.api import Api
from eleva.database import Session
from eleva.security import JWTManager
from eleva.storage import Storage

# Deterministic constraint names, so migrations can name what they alter or drop.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


# Objects keep their values after commit: every value is set in Python, and reloading
# after the commit would race with concurrent writers (a PATCH answering for a row a
# DELETE removed right after it committed).
db = SQLAlchemy(model_class=Base, session_options={"class_": Session, "expire_on_commit": False})
migrate = Migrate()
jwt = JWTManager()
cors = CORS()
api = Api()
# The client address is request.remote_addr, which ProxyFix rewrites from
# X-Forwarded-For for exactly TRUSTED_PROXY_COUNT hops (see create_app).
limiter = Limiter(key_func=get_remote_address)
storage = Storage()
