"""Uploaded files follow their rows: a file appears only once its row commits, a rollback leaves none behind,
and the scheduler removes files no record references once they are older than the grace period."""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import pytest

from app import clock
from app.errors import Conflict
from app.services import announcements, attachments
from app.unit_of_work import unit_of_work
from tests.helpers import bearer

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
DAY = 24 * 3600


@pytest.fixture
def storage_app(make_app, tmp_path):
    return make_app(**{"storage.path": str(tmp_path / "uploads")})


@pytest.fixture
def officer(storage_app, make_staff, grant):
    staff_id = make_staff("U1", name="工会干事")
    grant(staff_id, "union_officer")
    return staff_id


def stored(app) -> list[str]:
    root = Path(app.config["SU"].storage.path)
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


def draft_with_file(app, officer_id: int) -> tuple[int, str]:
    from app.extensions import db
    from models import Staff

    with app.app_context(), unit_of_work():
        draft = announcements.create_draft(db.session.get(Staff, officer_id), title="通知", body="正文")
        return draft.id, attachments.attach(draft, "照片.png", PNG).storage_key


def age(app, name: str, seconds: int) -> None:
    path = Path(app.config["SU"].storage.path) / name
    past = time.time() - seconds
    os.utime(path, (past, past))


def test_an_upload_is_stored_once_its_row_commits(storage_app, officer, token_for):
    client = storage_app.test_client()
    draft = client.post("/api/v1/officer/announcements", json={"title": "通知"}, headers=bearer(token_for(officer)))
    response = client.post(f"/api/v1/officer/announcements/{draft.json['id']}/attachments",
                           data={"file": (io.BytesIO(PNG), "照片.png")},
                           headers=bearer(token_for(officer)), content_type="multipart/form-data")
    assert response.status_code == 201
    [name] = stored(storage_app)
    download = client.get(response.json["url"].replace("/announcements/", "/officer/announcements/"),
                          headers=bearer(token_for(officer)))
    assert download.status_code == 200 and download.data == PNG and name.endswith(".png")


def test_a_rolled_back_upload_leaves_no_file(storage_app, officer):
    from app.extensions import db
    from models import Staff

    with storage_app.app_context(), pytest.raises(Conflict):
        with unit_of_work():
            draft = announcements.create_draft(db.session.get(Staff, officer), title="通知", body="正文")
            attachments.attach(draft, "照片.png", PNG)
            raise Conflict("later_refusal", "后面的步骤被拒绝")
    assert stored(storage_app) == []


def test_files_no_record_references_are_removed_after_the_grace_period(storage_app, officer):
    _, kept = draft_with_file(storage_app, officer)
    discarded_id, discarded = draft_with_file(storage_app, officer)
    from app.extensions import db
    from models import Staff

    with storage_app.app_context(), unit_of_work():
        announcements.discard_draft(db.session.get(Staff, officer), discarded_id)
    young_orphan = draft_with_file(storage_app, officer)
    with storage_app.app_context(), unit_of_work():
        announcements.discard_draft(db.session.get(Staff, officer), young_orphan[0])
    age(storage_app, kept, 2 * DAY)
    age(storage_app, discarded, 2 * DAY)
    with storage_app.app_context(), unit_of_work():
        assert attachments.remove_orphan_files(clock.now()) == 1
    assert stored(storage_app) == sorted([kept, young_orphan[1]])      # the young orphan waits for its grace
