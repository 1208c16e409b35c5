"""The floor: a bare Flask app returning a small JSON, served by the same gunicorn
settings as Eléva in bench/http.py. Nothing of Eléva is imported."""

from flask import Flask

app = Flask(__name__)


@app.get("/")
def index():
    return {"status": "ok"}
