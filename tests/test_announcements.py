"""Announcements through the officer API and the mini-program API."""

from __future__ import annotations

import io

import pytest
import requests
from sqlalchemy import select

from app.extensions import db
from app.unit_of_work import unit_of_work
from jobs.sender import Sender
from models import Announcement, DeliveryStatus, Gender, Notification, Staff, StaffStatus
from tests.helpers import bearer

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@pytest.fixture
def union(make_staff, grant, token_for):
    """An officer and staff in two sub-unions; tokens by name."""
    ids = {
        "officer": make_staff(name="校工会干部", sub_union="机关分工会"),
        "woman": make_staff(name="女教师", sub_union="机关分工会", gender=Gender.FEMALE),
        "man": make_staff(name="男教师", sub_union="后勤分工会", gender=Gender.MALE),
        "retiree": make_staff(name="退休教师", sub_union="后勤分工会", status=StaffStatus.RETIRED),
    }
    grant(ids["officer"], "union_officer")
    return {"ids": ids, "tokens": {name: token_for(sid) for name, sid in ids.items()}}


def create(client, token, **body) -> dict:
    response = client.post("/api/v1/officer/announcements", headers=bearer(token),
                           json={"title": "关于开展春季健步走活动的通知", "body": "请各分工会组织报名。", **body})
    assert response.status_code == 201, response.json
    return response.json


def publish(client, token, announcement_id: int):
    return client.post(f"/api/v1/officer/announcements/{announcement_id}/publish", headers=bearer(token))


def titles(client, token) -> list[str]:
    return [i["title"] for i in client.get("/api/v1/announcements", headers=bearer(token)).json["items"]]


def test_published_announcement_reaches_exactly_its_audience(client, union):
    officer = union["tokens"]["officer"]
    draft = create(client, officer, title="三八节女教职工活动", audience={"genders": ["female"]})
    assert titles(client, union["tokens"]["woman"]) == []            # a draft is invisible
    assert publish(client, officer, draft["id"]).status_code == 200
    assert titles(client, union["tokens"]["woman"]) == ["三八节女教职工活动"]
    assert titles(client, union["tokens"]["man"]) == []
    detail = client.get(f"/api/v1/announcements/{draft['id']}", headers=bearer(union["tokens"]["man"]))
    assert detail.status_code == 404



def test_the_publish_answer_names_the_notice_to_follow(client, union):
    officer = union["tokens"]["officer"]
    draft = create(client, officer, title="体检通知")
    notice_id = publish(client, officer, draft["id"]).json["notice_id"]
    report = client.get(f"/api/v1/officer/notices/{notice_id}/report", headers=bearer(officer))
    assert report.status_code == 200 and report.json["title"] == "体检通知"

def test_a_category_is_given_by_its_code_or_its_chinese_label_and_answered_with_both(client, union):
    officer = union["tokens"]["officer"]
    by_label = create(client, officer, title="经费公示", category="公示")
    assert (by_label["category"], by_label["category_label"]) == ("disclosure", "公示")
    assert create(client, officer, title="秋游", category="activity")["category_label"] == "活动"
    refused = client.post("/api/v1/officer/announcements", headers=bearer(officer),
                          json={"title": "x", "body": "y", "category": "新闻"})
    assert refused.status_code == 422
    assert "notice（通知）" in refused.json["error"]["message"] and "disclosure（公示）" in refused.json["error"]["message"]


def test_pinned_first_then_newest_with_unread_flags(client, union):
    officer = union["tokens"]["officer"]
    for title, pinned in (("旧通知", False), ("置顶通知", True), ("新通知", False)):
        publish(client, officer, create(client, officer, title=title, pinned=pinned)["id"])
    staff = union["tokens"]["man"]
    listing = client.get("/api/v1/announcements", headers=bearer(staff)).json
    assert [i["title"] for i in listing["items"]] == ["置顶通知", "新通知", "旧通知"]
    assert (listing["total"], listing["total_exact"]) == (3, True)
    client.get(f"/api/v1/announcements/{listing['items'][1]['id']}", headers=bearer(staff))
    again = client.get("/api/v1/announcements", headers=bearer(staff)).json
    assert [i["read"] for i in again["items"]] == [False, True, False]


def test_read_flags_follow_a_member_whose_kind_of_member_changes(app, client, union, grant, token_for):
    """A member's flags are kept for the page of their kind: after losing a role and getting it back, what they read
    as an officer shows read, not the flags kept while they saw the page without it."""
    from app.services import roster
    from models import Role
    officer = union["tokens"]["officer"]
    for_officers = create(client, officer, title="致工会干部", audience={"roles": ["union_officer"]})["id"]
    publish(client, officer, for_officers)
    publish(client, officer, create(client, officer, title="致全体")["id"])
    member = union["ids"]["man"]

    def listing() -> list[tuple[str, bool]]:
        items = client.get("/api/v1/announcements", headers=bearer(token_for(member))).json["items"]
        return [(i["title"], i["read"]) for i in items]

    grant(member, "union_officer")
    client.get(f"/api/v1/announcements/{for_officers}", headers=bearer(token_for(member)))
    with app.app_context(), unit_of_work():
        roster.revoke_role(db.session.get(Staff, member), Role.UNION_OFFICER, actor_label="test")
    assert listing() == [("致全体", False)]
    grant(member, "union_officer")
    assert listing() == [("致全体", False), ("致工会干部", True)]


def test_list_runs_a_bounded_number_of_queries_whatever_the_page_size(client, union, count_queries):
    officer = union["tokens"]["officer"]
    for n in range(12):
        publish(client, officer, create(client, officer, title=f"通知{n}")["id"])
    client.get("/api/v1/me", headers=bearer(union["tokens"]["man"]))       # the caller's card is cached from now
    first, again = [], []
    for size in (1, 5, 12):
        for counts in (first, again):
            with count_queries() as queries:
                response = client.get(f"/api/v1/announcements?page_size={size}",
                                      headers=bearer(union["tokens"]["man"]))
            assert len(response.json["items"]) == size
            counts.append(queries.count)
    assert first == [3, 3, 3]            # the page, the count and my read flags: the token check reads the card
    assert again == [0, 0, 0]            # the page and count kept for my kind of member, my flags for me


def test_a_list_shown_again_takes_one_round_trip_to_redis_with_the_token_check(client, union, monkeypatch):
    """The whole union opening the list: the caller's card, the kept page and their flags come in one exchange."""
    from redis.connection import AbstractConnection
    publish(client, union["tokens"]["officer"], create(client, union["tokens"]["officer"], title="节日通知")["id"])
    staff = union["tokens"]["man"]
    client.get("/api/v1/me", headers=bearer(staff))                     # the card is kept from now,
    client.get("/api/v1/announcements", headers=bearer(staff))          # the page and flags from now
    sent, send = [], AbstractConnection.send_packed_command
    monkeypatch.setattr(AbstractConnection, "send_packed_command",
                        lambda conn, *args, **kwargs: (sent.append(1), send(conn, *args, **kwargs))[1])
    assert titles(client, staff) == ["节日通知"]
    assert len(sent) == 1


def test_a_kept_page_gives_way_to_each_publication_and_withdrawal_at_once(client, union):
    officer, staff = union["tokens"]["officer"], union["tokens"]["man"]

    def titles() -> list[str]:
        return [i["title"] for i in client.get("/api/v1/announcements", headers=bearer(staff)).json["items"]]

    publish(client, officer, create(client, officer, title="第一则")["id"])
    assert titles() == ["第一则"]
    second = create(client, officer, title="第二则")["id"]
    assert titles() == ["第一则"]                       # a draft changes nothing a member sees
    publish(client, officer, second)
    assert titles() == ["第二则", "第一则"]
    assert client.post(f"/api/v1/officer/announcements/{second}/withdraw", headers=bearer(officer)).status_code == 200
    assert titles() == ["第一则"]


def test_members_of_one_kind_share_a_kept_page_and_other_kinds_never_see_it(client, union, make_staff, token_for):
    officer = union["tokens"]["officer"]
    publish(client, officer, create(client, officer, title="致女教职工", audience={"genders": ["female"]})["id"])
    publish(client, officer, create(client, officer, title="致全体")["id"])
    colleague = token_for(make_staff(name="另一位男教师", sub_union="后勤分工会", gender=Gender.MALE))
    seen = {name: [i["title"] for i in client.get("/api/v1/announcements", headers=bearer(token)).json["items"]]
            for name, token in (("woman", union["tokens"]["woman"]), ("man", union["tokens"]["man"]),
                                ("colleague", colleague), ("woman again", union["tokens"]["woman"]))}
    assert seen == {"woman": ["致全体", "致女教职工"], "man": ["致全体"], "colleague": ["致全体"],
                    "woman again": ["致全体", "致女教职工"]}


def test_a_page_or_flags_read_while_a_change_commits_are_not_kept(app):
    """The stale refill: what was read from the database before a change committed must not be kept after it."""
    from app.services import announcement_pages

    def page_for(read_page, read_flags):
        return announcement_pages.page_for(("test-kind",), 1, 1, 20, read_page, read_flags)

    def page_racing_a_publication():
        announcement_pages.forget_all()          # a publication commits while this page is being read
        return ([(1, "旧")], 1, True)

    def flags_racing_a_read(_ids):
        announcement_pages.forget_reads({1})     # the member opens an announcement meanwhile
        return set()

    with app.app_context():
        assert page_for(page_racing_a_publication, flags_racing_a_read) == (([(1, "旧")], 1, True), set())
        assert page_for(lambda: ([(2, "新")], 1, True), lambda ids: {2}) == (([(2, "新")], 1, True), {2})
        assert page_for(lambda: pytest.fail("the page is kept"), lambda ids: pytest.fail("the flags are kept")) \
            == (([(2, "新")], 1, True), {2})


def test_a_unit_of_work_that_changed_announcements_keeps_no_page(app, client, union, count_queries):
    """Its own uncommitted change would otherwise reach every member of the kind, even if it rolled back."""
    from app.services import announcements
    officer, staff = union["tokens"]["officer"], union["tokens"]["man"]
    shown = create(client, officer, title="原标题")["id"]
    publish(client, officer, shown)
    with app.app_context(), unit_of_work():
        db.session.get(Announcement, shown).title = "未提交的标题"
        member = db.session.get(Staff, union["ids"]["man"])
        assert [r.title for r in announcements.list_for_staff(member, 1, 20)[0]] == ["未提交的标题"]
        db.session.rollback()
    client.get("/api/v1/me", headers=bearer(staff))
    with count_queries() as queries:
        titles = [i["title"] for i in client.get("/api/v1/announcements", headers=bearer(staff)).json["items"]]
    assert titles == ["原标题"] and queries.count == 3


def test_pages_past_the_kept_ones_are_read_each_time(client, union, count_queries):
    from app.services.announcement_pages import KEPT_PAGES
    officer, staff = union["tokens"]["officer"], union["tokens"]["man"]
    for n in range(KEPT_PAGES + 1):
        publish(client, officer, create(client, officer, title=f"通知{n}")["id"])
    client.get("/api/v1/me", headers=bearer(staff))
    counts = []
    for _ in range(2):
        with count_queries() as queries:
            page = client.get(f"/api/v1/announcements?page={KEPT_PAGES + 1}&page_size=1", headers=bearer(staff))
        assert [i["title"] for i in page.json["items"]] == ["通知0"]
        counts.append(queries.count)
    assert counts == [3, 3]


def test_with_redis_down_the_list_and_the_token_check_read_the_database(make_app, client, union):
    """Redis lost: no card, no kept page, the same answers (auth reads the staff row, the list its queries)."""
    officer = union["tokens"]["officer"]
    publish(client, officer, create(client, officer, title="停电通知")["id"])
    down = make_app(**{"redis.url": "redis://127.0.0.1:1/0"}).test_client()
    me = down.get("/api/v1/me", headers=bearer(union["tokens"]["man"]))
    assert me.status_code == 200 and me.json["name"] == "男教师"
    listing = down.get("/api/v1/announcements", headers=bearer(union["tokens"]["man"]))
    assert listing.status_code == 200
    assert [i["title"] for i in listing.json["items"]] == ["停电通知"]


def test_the_total_counts_up_to_a_thousand_and_says_when_there_are_more(app, client, union):
    """The count costs the same at 1,002 announcements as at 1,000: it stops there, and says so."""
    from datetime import datetime, timezone
    from sqlalchemy import insert
    from app.services.announcements import COUNTED_UP_TO
    from models import AnnouncementStatus
    now = datetime.now(timezone.utc)

    def published(n: int) -> None:
        with app.app_context(), unit_of_work() as session:
            session.execute(insert(Announcement), [{"title": f"通知{i}", "body": "正文", "published_at": now,
                                                    "status": AnnouncementStatus.PUBLISHED} for i in range(n)])

    published(COUNTED_UP_TO)
    listing = client.get("/api/v1/announcements?page_size=5", headers=bearer(union["tokens"]["man"])).json
    assert (listing["total"], listing["total_exact"], len(listing["items"])) == (1000, True, 5)
    published(2)
    listing = client.get("/api/v1/announcements?page_size=5", headers=bearer(union["tokens"]["man"])).json
    assert (listing["total"], listing["total_exact"]) == (1000, False)


def test_reading_is_recorded_and_statistics_show_who_has_not(client, union, app):
    officer = union["tokens"]["officer"]
    draft = create(client, officer)
    publish(client, officer, draft["id"])
    client.get(f"/api/v1/announcements/{draft['id']}", headers=bearer(union["tokens"]["woman"]))
    client.get(f"/api/v1/announcements/{draft['id']}", headers=bearer(union["tokens"]["woman"]))   # twice: one read
    stats = client.get(f"/api/v1/officer/announcements/{draft['id']}/reads", headers=bearer(officer)).json
    assert (stats["audience"], stats["read"], stats["unread"]) == (4, 1, 3)
    assert sorted(s["name"] for s in stats["unread_staff"]) == ["校工会干部", "男教师", "退休教师"]
    # opening the announcement also marked its inbox entry read
    inbox = client.get("/api/v1/inbox", headers=bearer(union["tokens"]["woman"])).json
    assert inbox["items"][0]["title"] == draft["title"] and inbox["items"][0]["read"] is True


def test_publishing_notifies_through_one_fanout_and_withdrawing_cancels_the_rest(client, union, app):
    officer = union["tokens"]["officer"]
    draft = create(client, officer)
    publish(client, officer, draft["id"])
    with app.app_context():
        assert db.session.scalar(select(Notification.id)) is None          # nothing per person yet
    withdrawn = client.post(f"/api/v1/officer/announcements/{draft['id']}/withdraw", headers=bearer(officer))
    assert withdrawn.json["status"] == "withdrawn"
    Sender(app).drain()
    with app.app_context():
        assert db.session.scalars(select(Notification.status)).all() == []  # the fan-out never ran
    assert titles(client, union["tokens"]["man"]) == []


def test_withdrawal_cancels_only_what_was_not_sent(client, union, app):
    officer = union["tokens"]["officer"]
    draft = create(client, officer)
    publish(client, officer, draft["id"])
    from app.services import delivery

    with app.app_context(), unit_of_work():
        delivery.expand_one_fanout_batch()
    client.post(f"/api/v1/officer/announcements/{draft['id']}/withdraw", headers=bearer(officer))
    with app.app_context():
        statuses = set(db.session.scalars(select(Notification.status)))
    assert statuses == {DeliveryStatus.CANCELLED}


def test_risky_text_stays_a_draft_with_the_reason(client, union, app):
    officer = union["tokens"]["officer"]
    draft = create(client, officer, body="这是一段违规内容")
    response = publish(client, officer, draft["id"])
    assert response.status_code == 422
    assert response.json["error"]["code"] == "content_risky"
    assert "内容安全检查" in response.json["error"]["message"]
    shown = client.get(f"/api/v1/officer/announcements/{draft['id']}", headers=bearer(officer)).json
    assert shown["status"] == "draft"
    assert shown["body"] == "这是一段违规内容"


def test_officer_not_recently_in_the_mini_program_is_asked_to_open_it(client, union, fake_wechat):
    officer = union["tokens"]["officer"]
    draft = create(client, officer)
    requests.post(f"{fake_wechat.url}_fake/inject", json={"endpoint": "wxa/msg_sec_check", "errcode": 61010},
                  timeout=10)
    response = publish(client, officer, draft["id"])
    assert response.status_code == 422
    assert response.json["error"]["code"] == "need_mini_program"
    assert publish(client, officer, draft["id"]).status_code == 200      # after opening the mini-program


def test_staff_cannot_use_officer_endpoints(client, union):
    response = client.post("/api/v1/officer/announcements", headers=bearer(union["tokens"]["man"]),
                           json={"title": "x"})
    assert response.status_code == 403


def test_sub_union_officer_publishes_only_to_their_sub_union(client, make_staff, grant, token_for, union):
    sub_officer = make_staff(name="后勤干部", sub_union="后勤分工会")
    grant(sub_officer, "sub_union_officer", sub_union="后勤分工会")
    token = token_for(sub_officer)
    draft = create(client, token, title="后勤分工会通知")
    publish(client, token, draft["id"])
    assert titles(client, union["tokens"]["man"]) == ["后勤分工会通知"]
    assert titles(client, union["tokens"]["woman"]) == []               # 机关分工会
    # and cannot see or touch the union's own announcements
    union_draft = create(client, union["tokens"]["officer"])
    assert client.get(f"/api/v1/officer/announcements/{union_draft['id']}", headers=bearer(token)).status_code == 404


def test_attachments_are_served_only_to_the_audience(client, union):
    officer = union["tokens"]["officer"]
    draft = create(client, officer, audience={"statuses": ["retired"]})
    uploaded = client.post(f"/api/v1/officer/announcements/{draft['id']}/attachments", headers=bearer(officer),
                           data={"file": (io.BytesIO(PNG), "海报.png")}, content_type="multipart/form-data")
    assert uploaded.status_code == 201, uploaded.json
    publish(client, officer, draft["id"])
    url = uploaded.json["url"]
    ok = client.get(url, headers=bearer(union["tokens"]["retiree"]))
    assert ok.status_code == 200 and ok.data == PNG and ok.mimetype == "image/png"
    assert client.get(url, headers=bearer(union["tokens"]["man"])).status_code == 404


def test_only_images_and_pdfs_are_accepted(client, union):
    officer = union["tokens"]["officer"]
    draft = create(client, officer)
    response = client.post(f"/api/v1/officer/announcements/{draft['id']}/attachments", headers=bearer(officer),
                           data={"file": (io.BytesIO(b"MZ\x90\x00 not a picture"), "photo.png")},
                           content_type="multipart/form-data")
    assert response.status_code == 400
    assert response.json["error"]["code"] == "unsupported_file"


def test_incomplete_draft_cannot_be_published(client, union, app):
    officer = union["tokens"]["officer"]
    draft = create(client, officer, body="")
    response = publish(client, officer, draft["id"])
    assert response.status_code == 400
    assert response.json["error"]["code"] == "announcement_incomplete"
    with app.app_context():
        assert db.session.get(Announcement, draft["id"]).status.value == "draft"
