"""The floor: a bare Flask app returning a small JSON, served with the same
gunicorn.conf.py as Eléva (bench.harness.floor). Nothing of Eléva is imported.

With FLOOR_DATABASE_URL set, ``/db`` first asks PostgreSQL ``SELECT 1`` on a connection
its worker keeps: the least CPU an answer that asks the database can cost.
"""

import os

import psycopg
from flask import Flask

app = Flask(__name__)
# The worker's idle connections, opened after the fork as its threads need them; no lock
# to wait on (list.pop and list.append are atomic).
_idle: list[psycopg.Connection] = []


@app.get("/")
def index():
    return {"status": "ok"}


@app.get("/db")
def one_round_trip():
    try:
        connection = _idle.pop()
    except IndexError:
        connection = psycopg.connect(
            os.environ["FLOOR_DATABASE_URL"], autocommit=True, prepare_threshold=None
        )
    connection.execute("SELECT 1").fetchone()
    _idle.append(connection)
    return {"status": "ok"}
