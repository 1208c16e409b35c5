"""The floor: a bare Flask app returning a small JSON, served with the same
gunicorn.conf.py as Eléva (bench.harness.floor). Nothing of Eléva is imported.

With FLOOR_DATABASE_URL set, ``/db`` first asks PostgreSQL ``SELECT 1`` on the one
connection its worker keeps: the least CPU an answer that asks the database can cost.
"""

import os
import threading

import psycopg
from flask import Flask

app = Flask(__name__)
_connection: psycopg.Connection | None = None
_lock = threading.Lock()  # one connection per worker, opened after the fork


@app.get("/")
def index():
    return {"status": "ok"}


@app.get("/db")
def one_round_trip():
    global _connection
    with _lock:
        if _connection is None or _connection.closed:
            _connection = psycopg.connect(
                os.environ["FLOOR_DATABASE_URL"], autocommit=True, prepare_threshold=None
            )
        _connection.execute("SELECT 1").fetchone()
    return {"status": "ok"}
