"""The baseline: a bare Flask app served by the same gunicorn config, to compare the real app against."""

from flask import Flask

app = Flask(__name__)


@app.get("/bare")
def bare():
    return {"status": "ok", "message": "你好"}


@app.get("/healthz")
def healthz():
    return {"status": "ok"}
