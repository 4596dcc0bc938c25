"""The officers' lists run the same number of SQL statements whether they show two records or eight: no list
loads a record's relations one by one. (The announcement list, the condolence list and the proposal lists have
their own such tests beside their area's.)"""

from __future__ import annotations

from datetime import date

import pytest

from app import clock
from app.services import departments, merchants, notifications, roster, vouchers
from app.services.audiences import Audience
from app.services.policy import Caller
from tests.helpers import bearer
from tests.test_authorization_matrix import (  # noqa: F401  (world: the matrix's fixture)
    a_claim, an_announcement, an_event, build, world,
)

UNION = Caller.UNION_OFFICER
LISTS = ["/api/v1/officer/announcements?page_size=50", "/api/v1/officer/events", "/api/v1/officer/staff?page_size=100",
         "/api/v1/officer/notices?page_size=100", "/api/v1/officer/vouchers?page_size=200",
         "/api/v1/officer/mutual-aid-claims", "/api/v1/officer/merchants", "/api/v1/officer/proposals/departments"]


def _records(w, n: int, offset: int) -> None:
    """n more of each: announcements, events, members (born today: a voucher each), notices, claims, merchants,
    departments."""
    officer = w.staff(UNION)
    today = clock.today()
    for i in range(offset, offset + n):
        an_announcement(w, UNION, "all")
        an_event(w, UNION, "all")
        roster.upsert_staff(f"L{i:04d}", roster.StaffFields(
            name=f"会员{i}", sub_union="甲分工会", department=f"部门{i}",
            birthday=date(1980, 2, 28) if (today.month, today.day) == (2, 29) else today.replace(year=1980)),
            actor_label="test")
        notifications.notify_audience("service", f"lists:{i}", Audience(), f"通知{i}")
        a_claim(w, f"L{i:04d}")
        merchants.create_merchant(officer, merchants.MerchantIn(name=f"蛋糕店{i}", shops=["总店"]))
        departments.resolve(f"处室{i}")
    vouchers.issue_due_vouchers(clock.now())


def _counted(client, w, count_queries) -> dict[str, tuple[int, int]]:
    """Per list: (statements, items shown)."""
    found = {}
    client.get("/api/v1/me", headers=bearer(w.tokens[UNION]))        # the caller's card cached, as after any request
    for path in LISTS:
        with count_queries() as queries:
            response = client.get(path, headers=bearer(w.tokens[UNION]))
        assert response.status_code == 200, (path, response.get_data(as_text=True))
        found[path] = (queries.count, len(response.json["items"]))
    return found


def test_each_officer_list_runs_the_same_statements_for_two_records_or_eight(app, client, world, count_queries):
    build(app, world, lambda w: _records(w, 2, 0))
    few = _counted(client, world, count_queries)
    build(app, world, lambda w: _records(w, 6, 2))
    many = _counted(client, world, count_queries)
    for path in LISTS:
        assert many[path][1] > few[path][1], f"{path}: the second size must show more records"
        assert many[path][0] == few[path][0], f"{path}: {few[path][0]} statements for fewer, {many[path][0]} for more"
