"""One unit of work at every edge: commit at the end, roll back on any exception. A refusal never commits what was
flushed before it, whether the edge is an API request, a WeChat push or a job; a failed commit is an internal
error, not a success."""

from __future__ import annotations

import threading

import pytest
import time_machine
from sqlalchemy import create_engine, event, func, select, text
from sqlalchemy.orm import Session

from app.errors import Conflict
from app.extensions import db
from app.services import roster
from app.unit_of_work import is_deadlock, unit_of_work
from models import Notice, SubUnion
from tests.helpers import bearer, error_code, linked_follower, wait_for_lock_waiters
from tests.proposals_support import IN_THE_WINDOW, Api, cong  # noqa: F401 (fixture)
from tests.wechat_client import WeChatPusher
from wechat_handlers import router


def sub_union_names(app) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(select(SubUnion.name).order_by(SubUnion.name)))


def test_a_refusal_rolls_back_what_was_flushed_before_it(app):
    with app.app_context(), pytest.raises(Conflict):
        with unit_of_work():
            roster.ensure_sub_union("已写入的分工会")          # flushed
            raise Conflict("too_late", "已截止")
    assert sub_union_names(app) == []


def test_a_wechat_refusal_is_the_reply_and_commits_nothing(app, client, monkeypatch):
    def writes_then_refuses(ctx):
        roster.ensure_sub_union("半途而废")
        raise Conflict("refused_here", "这一步不能完成，已撤销")

    route = router.Route(writes_then_refuses, "写入后拒绝", keywords=("试试",))
    monkeypatch.setattr(router, "ROUTES", [route, *router.ROUTES])
    wechat = WeChatPusher(client)
    assert wechat.push(wechat.text("o-tester01", "试试")).content == "这一步不能完成，已撤销"
    assert sub_union_names(app) == []


def test_a_failed_commit_answers_internal_error_and_keeps_nothing(app, client, make_staff, grant, token_for):
    officer = make_staff("U1", name="工会干事")
    grant(officer, "union_officer")
    token = token_for(officer)

    def database_refuses(_session):
        raise RuntimeError("the database went away at commit")

    event.listen(Session, "before_commit", database_refuses)
    try:
        response = client.post("/api/v1/officer/notices", json={"title": "体检安排"}, headers=bearer(token))
    finally:
        event.remove(Session, "before_commit", database_refuses)
    assert (response.status_code, error_code(response)) == (500, "internal_error")
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Notice)) == 0


class Commits(list):
    """Each COMMIT the app's engine sends, while inside `with`."""

    def __init__(self, app):
        super().__init__()
        self.engine = app.extensions["db.engine"]

    def _seen(self, _conn) -> None:
        self.append("commit")

    def __enter__(self) -> "Commits":
        event.listen(self.engine, "commit", self._seen)
        return self

    def __exit__(self, *_exc) -> None:
        event.remove(self.engine, "commit", self._seen)


def test_a_read_only_request_sends_no_commit_and_a_write_still_commits(app, client, make_staff, token_for):
    from sqlalchemy import update

    from models import Staff

    token = bearer(token_for(make_staff("R0100", "只读者")))
    with Commits(app) as commits:
        assert client.get("/api/v1/me", headers=token).status_code == 200
        assert client.get("/api/v1/events", headers=token).status_code == 200
        assert commits == []                                           # read-only: one round trip less each
        assert client.patch("/api/v1/me", json={"birthday_calendar": "lunar"}, headers=token).status_code == 200
        assert commits == ["commit"]
        with app.app_context(), unit_of_work():                        # a Core UPDATE alone is a write too
            db.session.execute(update(Staff).where(Staff.employee_no == "R0100").values(department="图书馆"))
        assert commits == ["commit", "commit"]
    with app.app_context():
        member = db.session.scalar(select(Staff).where(Staff.employee_no == "R0100"))
        assert (member.department, member.birthday_calendar.value) == ("图书馆", "lunar")


def test_a_push_opening_with_the_follower_lookup_begins_no_transaction_on_postgresql_and_sees_pending_rows(
        app, make_staff):
    from app.services import followers
    from models import WeChatApp, WeChatIdentity

    staff_id = make_staff("R0200", "关注者")
    openid = linked_follower(app, staff_id)
    with app.app_context(), unit_of_work():
        postgresql = db.engine.dialect.name == "postgresql"
        assert followers.find_follower(openid).staff_id == staff_id       # committed by another unit of work
        # no BEGIN and no ROLLBACK around a push that only looks its sender up (PostgreSQL's READ COMMITTED)
        assert db.session.in_transaction() is not postgresql
    with app.app_context(), unit_of_work():
        db.session.add(WeChatIdentity(app=WeChatApp.OFFICIAL_ACCOUNT, openid="mp-flushed", following=True))
        assert followers.find_follower("mp-flushed") is not None         # pending: flushed and read in the session
        assert followers.find_follower(openid) is not None                # once begun: in the transaction
        db.session.rollback()
    with app.app_context():
        assert followers.find_follower("mp-flushed") is None


@pytest.mark.postgresql_only
def test_a_request_the_database_picks_as_a_deadlocks_victim_runs_again_and_succeeds(app, live_server, cong):
    """A real deadlock: another transaction holds the seconder's row and then wants the proposal's, while the second
    holds the proposal's and wants the seconder's (its foreign-key check). PostgreSQL rolls back whoever detects it
    first, and each waiter looks once, deadlock_timeout after it began waiting: the other transaction waits longer
    before looking, so the request is picked and runs again once the other commits. On a busy machine the request
    may look before the other has closed the cycle, find none, and leave the other as the victim: that round
    proves nothing, and the scene is played again (at most three times) until the request was the one picked.
    (PostgreSQL only: InnoDB picks its victim by size, not by who looks.)"""
    with time_machine.travel(IN_THE_WINDOW, tick=False):      # the window is open for seconds
        api = Api(live_server, cong)
        engine = create_engine(app.extensions["db.engine"].url)     # its own connection, beside the app's pool
        try:
            for _ in range(3):
                answer, request_was_picked = _deadlock_with_a_second(app, api, engine)
                if request_was_picked:
                    break
        finally:
            engine.dispose()
    assert request_was_picked, "the other transaction was picked three times"
    assert answer.status_code == 201, answer.text
    assert answer.json()["seconds"] == 1


def _deadlock_with_a_second(app, api, engine):
    """One round: (the request's answer, whether the database picked the request rather than the other)."""
    from sqlalchemy.exc import OperationalError

    pid, headers = api.file()["id"], api.cong["seconder"]
    answer: list = []
    with engine.connect() as other:
        other.execute(text("SET LOCAL deadlock_timeout = '10s'"))
        other.execute(text("SELECT id FROM staff WHERE id = :s FOR UPDATE"), {"s": api.cong.ids["seconder"]})
        request = threading.Thread(target=lambda: answer.append(api("POST", f"/proposals/{pid}/seconds", headers)))
        request.start()
        wait_for_lock_waiters(app)               # the request waits for the seconder's row
        try:
            other.execute(text("UPDATE proposals SET updated_at = updated_at WHERE id = :p"), {"p": pid})
            other.commit()
            picked_request = True
        except OperationalError as exc:
            assert is_deadlock(exc), exc
            other.rollback()
            picked_request = False
        request.join(timeout=60)
    return answer[0], picked_request


@pytest.mark.postgresql_only
@pytest.mark.parametrize("idle_seconds, replaced", [(0, True), (3600, False)])
def test_a_connection_the_server_dropped_while_idle_is_replaced_before_a_request_uses_it(make_app, idle_seconds,
                                                                                          replaced):
    """A connection idle longer than database.ping_after_idle_seconds is checked before use (here: 0, always), so
    one the server dropped costs no request. One used within that time is handed out unchecked, with no round
    trip: had the server dropped it, the statement fails (the pool then replaces every older connection)."""
    from sqlalchemy.exc import OperationalError
    application = make_app(**{"database.ping_after_idle_seconds": idle_seconds, "database.pool_size": 1,
                              "database.max_overflow": 0})
    engine = application.extensions["db.engine"]
    with engine.connect() as conn:
        backend = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
    outside = create_engine(engine.url)
    with outside.begin() as conn:
        conn.exec_driver_sql(f"SELECT pg_terminate_backend({backend})")
    outside.dispose()
    if replaced:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT pg_backend_pid()").scalar() != backend
    else:
        with pytest.raises(OperationalError), engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
