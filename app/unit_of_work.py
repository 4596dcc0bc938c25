"""One unit of work per request: services flush, the request commits once at its end or rolls back."""

from __future__ import annotations

from flask import Flask, Response

from app.extensions import db


def init_app(app: Flask) -> None:
    app.after_request(_commit_if_successful)


def _commit_if_successful(response: Response) -> Response:
    # A failed commit raises here and becomes a JSON 500; teardown then discards the session.
    if response.status_code < 400:
        db.session.commit()
    else:
        db.session.rollback()
    return response
