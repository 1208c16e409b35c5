"""A bare Flask app that runs ``SELECT 1`` five ways, for bench/db_paths.py.

Nothing of Eléva is imported: these are the paths a request can take to PostgreSQL,
with the same libraries and settings, and nothing else around them.
"""

import os

import psycopg
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import text

app = Flask(__name__)
app.config["SQLALCHEMY_DATABASE_URI"] = os.environ["DATABASE_URL"]
db = SQLAlchemy(app)
_kept: dict[str, psycopg.Connection] = {}


def autocommit_engine():
    return db.engine.execution_options(isolation_level="AUTOCOMMIT")


@app.get("/")
def floor():
    return {"status": "ok"}


@app.get("/session")
def session():  # the ORM session: BEGIN, SELECT, ROLLBACK at teardown
    db.session.execute(text("SELECT 1"))
    return {"status": "ok"}


@app.get("/core")
def core():  # a Core connection in autocommit: one round trip
    with autocommit_engine().connect() as connection:
        connection.execute(text("SELECT 1")).first()
    return {"status": "ok"}


@app.get("/pooled-driver")
def pooled_driver():  # psycopg, on a connection taken from SQLAlchemy's pool
    fairy = db.engine.raw_connection()
    try:
        fairy.driver_connection.autocommit = True
        fairy.driver_connection.execute("SELECT 1").fetchone()
    finally:
        fairy.driver_connection.autocommit = False
        fairy.close()
    return {"status": "ok"}


@app.get("/kept-driver")
def kept_driver():  # psycopg, on a connection the worker keeps (Eléva's FastRead)
    connection = _kept.get("c")
    if connection is None:
        dsn = os.environ["DATABASE_URL"].replace("postgresql+psycopg://", "postgresql://")
        connection = _kept["c"] = psycopg.connect(dsn, autocommit=True)
    connection.execute("SELECT 1").fetchone()
    return {"status": "ok"}
