"""督办: each department still owing its part is reminded at each offset from the round's deadline (−7, 0, +7, +14
days at 09:00) exactly once — with two scheduler processes, and with the job run twice at once without the leader
lock — and after downtime with one catch-up for the latest offset passed, not one per missed day."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import time_machine
from sqlalchemy import select

from app import clock
from app.extensions import db
from app.services.proposals import filing, handling, review
from app.unit_of_work import unit_of_work
from models import Notice, Notification, Staff
from tests.helpers import set_clock_file
from tests.proposals_support import AFTER_THE_WINDOW, BODY, IN_THE_WINDOW, cong  # noqa: F401 (fixture)

BEIJING = ZoneInfo("Asia/Shanghai")
DEADLINE = date(2027, 6, 30)
SMART_UNION = str(Path(sys.executable).parent / "smart-union")


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=BEIJING)


def handling_proposal(app, cong, deadline: date = DEADLINE) -> dict[str, int]:
    """A proposal accepted and handed to 教务处 (lead) and 后勤处 (co); returns its assignments' ids by department."""
    def person(who):
        return db.session.get(Staff, cong.ids[who])
    with time_machine.travel(IN_THE_WINDOW, tick=False), app.app_context(), unit_of_work():
        proposal = filing.file(person("author"), filing.ProposalFields(session_id=cong.session_id, **BODY))
        for who in ("seconder", "second2"):
            filing.second(person(who), proposal.id)
        pid = proposal.id
    with time_machine.travel(AFTER_THE_WINDOW, tick=False), app.app_context(), unit_of_work():
        review.close_windows(clock.now())
        review.accept(person("committee"), pid)
        handling.assign(person("committee"), pid, handling.AssignFields(
            lead_department_id=cong.departments["教务处"], co_department_ids=[cong.departments["后勤处"]],
            deadline=deadline))
        return {a.department.name: a.id for a in handling.current_assignments(pid)}


def reminders(app) -> list[tuple[str, int]]:
    """(occasion, people notified) for every reminder written."""
    with app.app_context():
        rows = db.session.execute(select(Notice.occasion, Notification.staff_id).join(Notification).where(
            Notice.occasion.like("proposal-reminder:%")).order_by(Notice.occasion)).all()
    counted: dict[str, int] = {}
    for occasion, _ in rows:
        counted[occasion] = counted.get(occasion, 0) + 1
    return sorted(counted.items())


def occasions(assignments: dict[str, int], *wanted: tuple[str, int]) -> list[tuple[str, int]]:
    return sorted((handling.reminder_occasion(assignments[dept], offset), 1) for dept, offset in wanted)


def run(app, moment: datetime) -> int:
    with time_machine.travel(moment, tick=False), app.app_context(), unit_of_work():
        return handling.send_reminders(clock.now())


def twice_at_once(app, moment: datetime, job) -> list[int]:
    """The job run by two threads at once, each in its own unit of work, without the scheduler's leader lock."""
    barrier = threading.Barrier(2)
    done: list[int] = []

    def run():
        with time_machine.travel(moment, tick=False), app.app_context(), unit_of_work():
            barrier.wait(timeout=10)
            done.append(job(clock.now()))
    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return done


def test_each_offset_once_per_department_still_owing(app, cong):
    parts = handling_proposal(app, cong)
    assert run(app, at(date(2027, 6, 23), 8, 59)) == 0                      # −7 days, before 09:00
    assert run(app, at(date(2027, 6, 23), 9, 0)) == 2
    assert run(app, at(date(2027, 6, 23), 15, 0)) == 0                      # once
    with time_machine.travel(at(date(2027, 6, 24), 10), tick=False), app.app_context(), unit_of_work():
        handling.give_opinion(db.session.get(Staff, cong.ids["houqin"]), _proposal_of(parts), parts["后勤处"],
                              handling.OpinionFields(text="同意"))
    assert run(app, at(DEADLINE, 9, 5)) == 1                                 # 后勤处 owes nothing any more
    assert run(app, at(date(2027, 7, 7), 9, 0)) == 1
    assert reminders(app) == occasions(parts, ("教务处", -7), ("后勤处", -7), ("教务处", 0), ("教务处", 7))


def _proposal_of(parts: dict[str, int]) -> int:
    from models import Assignment
    return db.session.get(Assignment, parts["后勤处"]).proposal_id


def test_after_downtime_one_catch_up_for_the_latest_offset_passed(app, cong):
    parts = handling_proposal(app, cong)
    assert run(app, at(date(2027, 7, 20), 10)) == 2                          # −7, 0, +7 and +14 all passed
    assert run(app, at(date(2027, 7, 21), 10)) == 0
    assert reminders(app) == occasions(parts, ("教务处", 14), ("后勤处", 14))


def test_an_offset_that_fell_before_the_assignment_is_never_sent(app, cong):
    parts = handling_proposal(app, cong, deadline=date(2027, 3, 8))          # assigned 03-05: −7 was 02-29
    assert run(app, at(date(2027, 3, 6), 10)) == 0
    assert run(app, at(date(2027, 3, 8), 9, 30)) == 2
    assert reminders(app) == occasions(parts, ("教务处", 0), ("后勤处", 0))


@pytest.mark.row_locks
def test_the_job_run_twice_at_once_without_the_leader_lock_reminds_once(app, cong):
    parts = handling_proposal(app, cong)
    assert sorted(twice_at_once(app, at(DEADLINE, 10), handling.send_reminders)) == [0, 2]
    assert reminders(app) == occasions(parts, ("教务处", 0), ("后勤处", 0))


def test_two_scheduler_processes_remind_once_at_each_offset(app, cong, subprocess_env, tmp_path):
    parts = handling_proposal(app, cong)
    clock_file = tmp_path / "now.txt"
    set_clock_file(clock_file, at(date(2027, 6, 23), 9, 1))
    env = {**subprocess_env, "SMART_UNION__SCHEDULER__TICK_SECONDS": "0.2",
           "SMART_UNION__SCHEDULER__LEADER_LOCK_SECONDS": "2", "SMART_UNION__APP__CLOCK_FILE": str(clock_file)}
    procs = [subprocess.Popen([SMART_UNION, "scheduler"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL) for _ in range(2)]
    try:
        _wait_for(lambda: len(reminders(app)) == 2)
        set_clock_file(clock_file, at(DEADLINE, 9, 1))
        _wait_for(lambda: len(reminders(app)) == 4)
        time.sleep(1.5)                                                       # several more ticks of both
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=120)
    assert reminders(app) == occasions(parts, ("教务处", -7), ("后勤处", -7), ("教务处", 0), ("后勤处", 0))


def _wait_for(predicate, attempts: int = 600, interval: float = 0.05) -> None:
    for _ in range(attempts):
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError("condition not reached")


@pytest.mark.row_locks
def test_the_window_closed_by_two_runs_at_once_moves_each_proposal_once(app, cong):
    from models import ProposalStep
    def person(who):
        return db.session.get(Staff, cong.ids[who])
    with time_machine.travel(IN_THE_WINDOW, tick=False), app.app_context(), unit_of_work():
        for n in range(6):
            proposal = filing.file(person("author"), filing.ProposalFields(
                session_id=cong.session_id, **{**BODY, "title": f"提案{n}"}))
            for who in ("seconder", "second2")[: n % 3]:
                filing.second(person(who), proposal.id)
    assert sum(twice_at_once(app, AFTER_THE_WINDOW, review.close_windows)) == 6
    with app.app_context():
        steps = db.session.scalars(select(ProposalStep.action).where(
            ProposalStep.action.in_(("to_review", "below_minimum")))).all()
    assert sorted(steps) == ["below_minimum"] * 4 + ["to_review"] * 2
