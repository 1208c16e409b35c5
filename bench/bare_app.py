"""The floor: a bare Flask app returning a small JSON, served with the same
gunicorn.conf.py as Eléva (bench.harness.floor). Nothing of Eléva is imported."""

from flask import Flask

app = Flask(__name__)


@app.get("/")
def index():
    return {"status": "ok"}
