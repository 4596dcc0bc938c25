"""Property-based API test: schemathesis over every operation of the OpenAPI document, as staff and as an officer.

For each (operation, caller): the explicit examples of the document, then generated cases, valid and invalid, each
with a fresh token; half of the cases name a seeded record (so they reach the code rather than a 404). Every answer
must be a non-5xx that matches the document. Per-operation status counts are printed at the end of the run (see
tests/conftest.py), and every operation a caller may use must have answered 2xx at least once.

PostgreSQL only (the API's behaviour is the same on every backend; this run is the slow part). The coverage phase,
which tries every boundary of every field, is the test marked `api_coverage`: it runs with `-m api_coverage`
(see the README), as the union officer, and asserts the same.
"""

from __future__ import annotations

import itertools
import os
from datetime import timedelta
import re
import subprocess
import sys
from pathlib import Path
from collections import Counter
from typing import Callable

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error, response_schema_conformance
from schemathesis.generation.meta import TestPhase

from app.extensions import db
from app import clock
from app.services import auth, redemptions, roster, voucher_codes
from app.services.condolences import payments, rates
from app.services.events import seats
from app.services.policy import Caller
from app.unit_of_work import unit_of_work
from models import Cashier, ClaimStatus, CondolenceStatus, Staff, Voucher, VoucherStatus, WeChatApp, WeChatIdentity
from tests import api_property_counts
from app.services.proposals import files as proposal_files, filing as proposal_filing
from tests import test_proposal_matrix as proposal_matrix
from tests.test_proposal_matrix import world as proposal_world  # noqa: F401  (the proposal matrix's fixture)
from tests.test_authorization_matrix import (  # noqa: F401  (world: the matrix's fixture)
    BEIJING_NOW, GIFT_APPROVED, PNG, PREVIOUS_MONTH, ROUTES, STARTING_SOON, _visit_plan, a_claim, a_condolence,
    admitted, an_announcement, an_event, checkin_code, personal_notice,
    vouchers_issued, world,
)

pytestmark = pytest.mark.postgresql_only

CALLERS = {"staff": Caller.STAFF, "officer": Caller.UNION_OFFICER, "cashier": Caller.CASHIER}
OWN = {"staff": "S0001", "officer": "U0001", "cashier": "S0001"}   # whose records each caller's ids name
PER_CALLER = {"notice_id", "voucher_id", "request_id", "file_id", "claim_id"}     # seeded records that belong to the caller
TWO_MONTHS_AGO = f"{(clock.local().replace(day=1) - timedelta(days=1)).replace(day=1) - timedelta(days=1):%Y-%m}"
CASES_PER_OPERATION = int(os.environ.get("SMART_UNION_API_CASES", "12"))


def PROPERTY_RUN(max_examples: int):  # noqa: N802  (a settings decorator, named like one)
    return settings(max_examples=max_examples, deadline=None, database=None, derandomize=True,
                    phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
OPERATIONS = [(method, re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule)) for method, rule in ROUTES]
# what each caller may use: the matrix's gate admits them (binding is for WeChat users not yet bound)
USABLE = {name: {operation for operation, row in zip(OPERATIONS, ROUTES.values())
                 if row.gate is not Caller.WECHAT and admitted(caller, row.gate)}
          for name, caller in CALLERS.items()}


def _seeds(app, w, path: str) -> dict[str, object]:
    """Records every path parameter (and the ids in a body) can name: what both callers may see and manage — addressed
    to everyone by the union officer, each caller signed up; drafts where the operation publishes."""
    drafts = path.endswith(("/publish", "/attachments"))      # publishing, and attaching, need a draft
    with app.app_context(), unit_of_work():
        event_id = an_event(w, Caller.UNION_OFFICER, "all", publish=not drafts, **STARTING_SOON)
        for employee_no in ("A0002", "S0001", "U0001"):
            if not drafts:
                seats.sign_up(event_id, roster.get_staff(employee_no), {})
        announcement_id, attachment_id = an_announcement(w, Caller.UNION_OFFICER, "all", publish=not drafts,
                                                         attach=True)
        code = None if drafts else checkin_code(event_id, "A0002")
        issued = vouchers_issued(w)
        redeemable = db.session.get(Voucher, issued["A0002"])
        window = voucher_codes.window_of(clock.now(), app.config["SU"].vouchers.show_window_seconds)
        if path.endswith("/reissue"):             # only a void (or expired) voucher is reissued
            for voucher_id in issued.values():
                db.session.get(Voucher, voucher_id).status = VoucherStatus.VOID
        if "undo" in path:                        # only a redemption (by the world's cashier) is undone
            cashier = db.session.get(Cashier, w.made["cashier_id"])
            for no in set(OWN.values()):
                voucher = db.session.get(Voucher, issued[no])
                redemptions.redeem(cashier, voucher_codes.qr_token(voucher.serial, voucher.id, voucher.secret,
                                                                   voucher_codes.window_of(clock.now(), 60)))
        requests = {name: _condolence_for(w, name, path) for name in OWN}
        batch = payments.close_batch(w.staff(Caller.UNION_OFFICER), TWO_MONTHS_AGO).id
        visit_ids = _visit_plan(w)
        if "mutual-aid-claims" in path:         # the claim route's own ids (its documents are numbered as files)
            status = ClaimStatus.SUBMITTED if path.endswith(("/paid", "/refused")) else None
            requests = {name: a_claim(w, "A0002" if name == "officer" else OWN[name], status, document=True)
                        for name in OWN}
        return {"event_id": event_id, "request_id": {name: r[0] for name, r in requests.items()},
                "claim_id": {name: r[0] for name, r in requests.items()},
                "file_id": {name: r[1] for name, r in requests.items()},
                "type_id": next(k.id for k in rates.all_types() if k.name == "本人住院"), "batch_id": batch,
                "year": BEIJING_NOW.year, "visit_id": visit_ids["R0001"], "announcement_id": announcement_id,
                "attachment_id": attachment_id,
                "notice_id": {name: personal_notice(w, no) for name, no in OWN.items()}, "employee_no": "A0002",
                "voucher_id": {name: issued[no] for name, no in OWN.items()},
                "sub_union_id": w.sub_unions["甲分工会"], "code": code,
                "redeem_code": voucher_codes.short_code(redeemable.id, redeemable.secret, window),
                "merchant_id": w.made["merchant_id"], "cashier_id": w.made["cashier_id"],
                "month": f"{clock.local():%Y-%m}"}


def _condolence_for(w, caller: str, path: str) -> tuple[int, int]:
    """The request a caller's case names: their own (returned, to resubmit it); for the union officer's reviews, one
    they may act on — the sub-union officer's own (nobody in 甲 is free to verify it), or A0002's once verified."""
    if caller == "officer" and path.endswith("/approve"):
        return a_condolence(w, "A0002", CondolenceStatus.VERIFIED, attach=True)
    if caller == "officer" and path.endswith("/delivered"):
        return a_condolence(w, "A0002", attach=True, **GIFT_APPROVED)
    if caller == "officer" and path.endswith(("/verify", "/return", "/reject")):
        return a_condolence(w, "O0001", attach=True)
    status = CondolenceStatus.RETURNED if path.endswith("/resubmit") else None
    return a_condolence(w, OWN[caller], status, attach=True)


def _seeded(case, seeds: dict, caller: str) -> None:
    """Points the case at the seeded records: its path ids, and the ids (or the check-in code) in its body."""
    case.path_parameters = {name: seeds[name][caller] if name in PER_CALLER else seeds[name]
                            for name in case.path_parameters}
    if isinstance(case.body, dict):
        for name in ("sub_union_id", "employee_no") + (("code",) if case.path.endswith("/checkin") else ()):
            if name in case.body and seeds[name] is not None:
                case.body[name] = seeds[name]
        if case.path.endswith("/cashier/redeem") and "code" in case.body:
            case.body["code"] = seeds["redeem_code"]
        if "shop" in case.body:
            case.body["shop"] = "总店"                   # the world's merchant's shop
        if "file" in case.body:
            case.body["file"] = PNG
        if "type_id" in case.body:
            case.body["type_id"] = seeds["type_id"]
        if "event_date" in case.body:
            case.body["event_date"] = clock.today().isoformat()       # within the filing period, whatever day it is
        for day in ("delivered_on", "visited_on"):
            if day in case.body:
                case.body[day] = clock.today().isoformat()
        if case.path.endswith("/assign") and "employee_no" in case.body:
            case.body["employee_no"] = "O0001"                        # the officer of the retiree's sub-union
        if "plan" in case.body and isinstance(case.body["plan"], str) and "mutual-aid" in case.path:
            case.body["plan"] = "住院医疗互助保障"                      # one of the city's plans
        for day in ("filed_on", "submitted_on", "paid_on", "refused_on"):
            if day in case.body and "mutual-aid" in case.path:
                case.body[day] = clock.today().isoformat()
        if "month" in case.body:
            case.body["month"] = PREVIOUS_MONTH                       # past its cut-off day, not closed by the seeds


def _fresh_token(app, staff_id: int | None, w=None) -> str:
    with app.app_context(), unit_of_work():
        if staff_id is None:                      # the cashier
            cashier = db.session.get(Cashier, w.made["cashier_id"])
            return auth.issue_cashier_token(db.session.get(WeChatIdentity, cashier.identity_id), cashier)
        staff = db.session.get(Staff, staff_id)
        identity = db.session.scalar(select(WeChatIdentity).where(
            WeChatIdentity.app == WeChatApp.MINI_PROGRAM, WeChatIdentity.staff_id == staff_id))
        if identity is None:                     # a case unbound them: bind again, as they would
            identity = WeChatIdentity(app=WeChatApp.MINI_PROGRAM, openid=f"openid-again-{staff_id}",
                                      staff_id=staff_id)
            db.session.add(identity)
            db.session.flush()
        return auth.issue_token(identity, staff)


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_every_answer_is_documented_and_never_a_server_error(app, world, fake_wechat, method, path, caller):  # noqa: F811
    seeds = _seeds(app, world, path)
    staff_id = world.staff_ids.get(CALLERS[caller])
    run_cases(app, method, path, caller, lambda case: _seeded(case, seeds, caller),
              lambda: _fresh_token(app, staff_id, world))


def run_cases(app, method: str, path: str, caller: str, seed: Callable, token: Callable[[], str]) -> None:
    """The document's examples (on the seeded records), then valid and invalid cases, half of them seeded, each
    with a fresh token: every answer a non-5xx that the document describes; status counts kept for the report."""
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    operation = schema[path][method]
    examples = operation.get_strategies_from_examples()
    fuzzing = [operation.as_strategy(GenerationMode.POSITIVE, phase=TestPhase.FUZZING),
               operation.as_strategy(GenerationMode.NEGATIVE, phase=TestPhase.FUZZING)]
    counts = api_property_counts.COUNTS.setdefault(f"{method} {path} as {caller}", Counter())

    def check(case, seeded: bool) -> None:
        if seeded:
            seed(case)
        response = case.call(headers={"Authorization": f"Bearer {token()}"})
        counts[response.status_code] += 1
        case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])

    if examples:
        given(case=st.one_of(examples))(PROPERTY_RUN(max_examples=3)(lambda case: check(case, True)))()
    given(case=st.one_of(fuzzing), seeded=st.booleans())(PROPERTY_RUN(max_examples=CASES_PER_OPERATION)(check))()


PROPOSAL_CALLERS = ("author", "seconder", "committee", "liaison", "staff")
PROPOSAL_OPERATIONS = [(method, re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule))
                       for method, rule in proposal_matrix.ROWS]
PROPOSAL_USABLE = {name: {operation for operation, row in zip(PROPOSAL_OPERATIONS, proposal_matrix.ROWS.values())
                          if name in row.ok} for name in PROPOSAL_CALLERS}
PROPOSAL_STATE = {   # the state a path's proposal is seeded in
    "/accept": "under_review", "/merge": "under_review", "/opinion": "under_review", "/reject": "under_review",
    "/assign": "accepted", "/rating": "answered", "/comments": "answered", "/answer": "handling_lead",
    "/return": "handling_lead",
}
TERM_NUMBERS = itertools.count(3)
EMPLOYEE_FOR = {"/representatives/": "R0002", "/committee/": "C0001", "/liaisons/": "L0002"}


def _proposal_seeds(app, w, method: str, path: str) -> dict[str, object]:
    from models import ProposalStatus as S
    state = next((v for k, v in PROPOSAL_STATE.items() if path.endswith(k)), "submitted")
    if "/assignments/" in path and path.endswith("/opinion"):
        state = "handling_co"
    if "/assignments/" in path and path.endswith("/attachments"):
        state = "handling_lead"
    with app.app_context(), unit_of_work():
        make = proposal_matrix.a_proposal
        if state.startswith("handling"):
            pid = make(w, S.HANDLING, lead="教务处" if state == "handling_lead" else "后勤处",
                       co=None if state == "handling_lead" else "教务处")
        else:
            pid = make(w, S(state), seconded=not (method in ("PATCH", "POST") and path.endswith(
                ("{proposal_id}", "/withdraw", "/seconds", "/attachments")) and "/officer/" not in path))
        file_id = proposal_matrix.MISSING
        if "{file_id}" in path:                  # the author's file, on a proposal the seconder backs
            pid = make(w, S.SUBMITTED, seconded=False)
            file_id = proposal_files.attach_to_proposal(w.staff("author"), pid, "照片.png", PNG).id
            proposal_filing.second(w.staff("seconder"), pid)
        employee = next((no for part, no in EMPLOYEE_FOR.items() if part in path), "S0001")
        if method == "PUT":
            employee = "S0001"
        assignment = proposal_matrix.assignment_of(pid, w.departments["教务处"]) \
            if state.startswith("handling") else proposal_matrix.MISSING
        return {"proposal_id": pid, "file_id": file_id, "assignment_id": assignment,
                "into_id": make(w, S.ACCEPTED), "session_id": w.session_id, "term_id": w.term_id,
                "department_id": w.departments["后勤处"], "lead_department_id": w.departments["教务处"],
                "co_department_ids": [w.departments["后勤处"]], "employee_no": employee,
                "employee_nos": ["S0001"]}


def _proposal_seeded(case, seeds: dict) -> None:
    case.path_parameters = {name: seeds[name] for name in case.path_parameters}
    if isinstance(case.body, dict):
        for name in ("session_id", "term_id", "department_id", "lead_department_id", "co_department_ids",
                     "into_id", "employee_nos"):
            if name in case.body:
                case.body[name] = seeds[name]
        case.body.pop("deadline", None)
        if "file" in case.body:
            case.body["file"] = PNG
        for moment in ("opens_at", "closes_at", "meeting_on"):       # the world's session keeps its dates
            case.body.pop(moment, None)
        if "year" in case.body:                                      # a year the world has no session of yet
            case.body.update(year=2099, meeting_on="2099-03-20")
        if case.method == "PATCH" and "/sessions/" in case.path and not case.body:
            case.body["name"] = "第二届教代会第四次会议"
        if case.path.endswith("/officer/proposals/terms"):            # a term of its own, after the world's
            case.body.update(name=f"第{next(TERM_NUMBERS)}届", starts_on="2090-03-01", ends_on="2095-02-28")


@pytest.mark.parametrize("caller", PROPOSAL_CALLERS)
@pytest.mark.parametrize(("method", "path"), PROPOSAL_OPERATIONS, ids=[f"{m} {p}" for m, p in PROPOSAL_OPERATIONS])
def test_every_proposal_answer_is_documented_and_never_a_server_error(  # noqa: F811
        app, proposal_world, method, path, caller):
    """The proposal routes, as the callers the issue names (the author and the seconder are representatives)."""
    seeds = _proposal_seeds(app, proposal_world, method, path)
    staff_id = proposal_world.ids[caller]
    run_cases(app, method, path, caller, lambda case: _proposal_seeded(case, seeds),
              lambda: _fresh_token(app, staff_id))


def test_every_operation_a_caller_may_use_answered_2xx():
    """Runs after the property test (same module); meaningful only when the whole run was collected."""
    ran = api_property_counts.COUNTS
    if len(ran) < len(OPERATIONS) * len(CALLERS) + len(PROPOSAL_OPERATIONS) * len(PROPOSAL_CALLERS):
        pytest.skip("only part of the property run was selected")
    never = sorted(f"{m} {p} as {name}" for name, usable in (*USABLE.items(), *PROPOSAL_USABLE.items())
                   for m, p in usable if not any(200 <= status < 300 for status in ran[f"{m} {p} as {name}"]))
    assert never == []


@pytest.mark.api_coverage
def test_every_boundary_of_every_field_is_answered_without_a_server_error(app, world, live_server):  # noqa: F811
    """schemathesis's coverage phase (its own command line, against the served app) as the union officer."""
    token = _fresh_token(app, world.staff_ids[Caller.UNION_OFFICER])
    run = subprocess.run([str(Path(sys.executable).parent / "schemathesis"), "run",
                          f"{live_server.url}/api/v1/openapi.json", "--phases", "coverage", "--checks",
                          "not_a_server_error,response_schema_conformance", "-H", f"Authorization: Bearer {token}",
                          "--no-color"], capture_output=True, text=True, timeout=1800)
    print(run.stdout[-4000:])
    assert run.returncode == 0, run.stdout[-4000:]
