"""The bakery's counter: one redemption per voucher whatever races it, a clear reason for every refusal, guessing
that is hopeless, cashiers who stop working the moment they are revoked."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import date

import pytest
import requests
import time_machine
from sqlalchemy import select

from app import clock
from app.extensions import db
from app.services import auth, merchants, voucher_codes
from app.unit_of_work import unit_of_work
from models import Cashier, Notice, Voucher, VoucherStatus, WeChatApp, WeChatIdentity
from tests.helpers import bearer, error_code
from tests.test_vouchers import issue, vouchers_of


@pytest.fixture
def counter(app, make_staff, grant, token_for):
    """A union officer, the designated bakery (its name is the policy's) with two shops, and a way to add cashiers."""
    officer = make_staff("U1", name="工会干事")
    grant(officer, "union_officer")
    officer_token = token_for(officer)
    with app.app_context(), unit_of_work():
        merchant_id = merchants.create_merchant(_staff(officer),
                                                merchants.MerchantIn(name="指定蛋糕店", shops=["总店", "分店"])).id
    counter = {"officer": officer_token, "merchant_id": merchant_id, "n": 0}

    def add_cashier(shop: str = "总店", merchant_id: int = merchant_id) -> tuple[int, str]:
        counter["n"] += 1
        with app.app_context(), unit_of_work():
            identity = WeChatIdentity(app=WeChatApp.MINI_PROGRAM, openid=f"openid-cashier-{counter['n']}")
            db.session.add(identity)
            db.session.flush()
            cashier = Cashier(merchant_id=merchant_id, identity_id=identity.id, shop=shop, name=f"收银员{counter['n']}")
            db.session.add(cashier)
            db.session.flush()
            return cashier.id, auth.issue_cashier_token(identity, cashier)
    counter["add_cashier"] = add_cashier
    return counter


def _staff(staff_id: int):
    from models import Staff

    return db.session.get(Staff, staff_id)


def current_code(app, voucher: Voucher) -> str:
    with app.app_context():
        window = voucher_codes.window_of(clock.now(), app.config["SU"].vouchers.show_window_seconds)
    return voucher_codes.short_code(voucher.id, voucher.secret, window)


def redeem(client, token: str, code: str):
    return client.post("/api/v1/cashier/redeem", json={"code": code}, headers=bearer(token))


def a_voucher(app, make_staff, name: str = "张小三") -> Voucher:
    today = clock.today()
    staff_id = make_staff(name=name, birthday=date(1980, today.month, min(today.day, 28)))
    issue(app, today)
    return vouchers_of(app, staff_id)[0]


def test_a_redemption_shows_face_value_and_masked_name_and_tells_the_holder(app, client, make_staff, counter):
    voucher = a_voucher(app, make_staff, "欧阳小明")
    _, token = counter["add_cashier"]()
    response = redeem(client, token, current_code(app, voucher))
    assert response.status_code == 200, response.json
    assert (response.json["holder"], response.json["face_value"], response.json["redeemed_shop"]) == \
        ("欧阳*明", "200 元", "总店")
    with app.app_context():
        assert db.session.get(Voucher, voucher.id).status is VoucherStatus.REDEEMED
        title = db.session.scalar(select(Notice.title).where(Notice.occasion.like(f"voucher-redeemed:{voucher.id}:%")))
    assert title == "生日蛋糕券已使用"
    today = client.get("/api/v1/cashier/redemptions/today", headers=bearer(token)).json["items"]
    assert [r["voucher_id"] for r in today] == [voucher.id]


def test_every_refusal_has_its_own_reason(app, client, make_staff, counter):
    used, void, expired, stale = (a_voucher(app, make_staff, f"会员{n}") for n in range(4))
    _, token = counter["add_cashier"]()
    assert redeem(client, token, current_code(app, used)).status_code == 200
    again = redeem(client, token, current_code(app, used))
    assert error_code(again) == "voucher_used" and "总店" in again.json["error"]["message"]
    client.post(f"/api/v1/officer/vouchers/{void.id}/void", json={"reason": "重复"}, headers=bearer(counter["officer"]))
    assert error_code(redeem(client, token, current_code(app, void))) == "voucher_void"
    with app.app_context(), unit_of_work():
        db.session.get(Voucher, expired.id).status = VoucherStatus.EXPIRED
    assert error_code(redeem(client, token, current_code(app, expired))) == "voucher_expired"
    old_code = current_code(app, stale)
    with time_machine.travel(clock.now().timestamp() + 600):
        _, later_token = counter["add_cashier"]()
        assert error_code(redeem(client, later_token, old_code)) == "code_expired"
    good = current_code(app, stale)
    typo = good[:3] + ("A" if good[3] != "A" else "B") + good[4:]
    assert error_code(redeem(client, token, typo)) == "code_mistyped"
    _, other_merchant = counter["add_cashier"](merchant_id=_other_merchant(app, counter))
    assert error_code(redeem(client, other_merchant, good)) == "other_merchant"


def _other_merchant(app, counter) -> int:
    from models import Merchant

    with app.app_context(), unit_of_work():
        merchant = Merchant(name="别家蛋糕店", shops=["总店"], active=True)
        db.session.add(merchant)
        db.session.flush()
        return merchant.id


@pytest.mark.row_locks
def test_50_cashiers_redeeming_one_voucher_at_once_one_succeeds(app, make_staff, counter, live_server):
    voucher = a_voucher(app, make_staff)
    tokens = [counter["add_cashier"]()[1] for _ in range(50)]
    code = current_code(app, voucher)
    with ThreadPoolExecutor(50) as pool:
        answers = list(pool.map(lambda t: requests.post(f"{live_server.url}/api/v1/cashier/redeem",
                                                        json={"code": code}, headers=bearer(t), timeout=60), tokens))
    codes = sorted(r.status_code for r in answers)
    assert codes == [200] + [409] * 49
    assert {r.json()["error"]["code"] for r in answers if r.status_code == 409} == {"voucher_used"}


@pytest.mark.row_locks
def test_a_redemption_racing_its_vouchers_void_exactly_one_wins(app, make_staff, counter, live_server):
    _, token = counter["add_cashier"]()
    for n in range(6):
        voucher = a_voucher(app, make_staff, f"竞争{n}")
        code = current_code(app, voucher)
        with ThreadPoolExecutor(2) as pool:
            redeemed = pool.submit(requests.post, f"{live_server.url}/api/v1/cashier/redeem", json={"code": code},
                                   headers=bearer(token), timeout=60)
            voided = pool.submit(requests.post, f"{live_server.url}/api/v1/officer/vouchers/{voucher.id}/void",
                                 json={"reason": "竞争"}, headers=bearer(counter["officer"]), timeout=60)
        assert sorted([redeemed.result().status_code, voided.result().status_code]) == [200, 409]


def test_a_revoked_cashier_or_a_deactivated_merchant_is_refused_at_once(app, client, counter):
    cashier_id, token = counter["add_cashier"]()
    assert client.get("/api/v1/cashier/me", headers=bearer(token)).status_code == 200
    url = f"/api/v1/officer/merchants/{counter['merchant_id']}"
    assert client.post(f"{url}/cashiers/{cashier_id}/revoke", headers=bearer(counter["officer"])).status_code == 200
    assert error_code(client.get("/api/v1/cashier/me", headers=bearer(token))) == "token_revoked"
    _, second = counter["add_cashier"]()
    assert client.post(f"{url}/deactivate", headers=bearer(counter["officer"])).status_code == 200
    assert error_code(client.get("/api/v1/cashier/me", headers=bearer(second))) == "token_revoked"


def test_a_cashier_binds_with_a_one_time_code_and_is_never_a_member(app, client, counter, make_staff, token_for):
    code = client.post(f"/api/v1/officer/merchants/{counter['merchant_id']}/cashier-codes",
                       json={"shop": "分店", "name": "小李"}, headers=bearer(counter["officer"])).json["code"]
    first = client.post("/api/v1/auth/login", json={"code": "code:o-cashier-li"}).json["token"]
    bound = client.post("/api/v1/cashier/bind", json={"code": code}, headers=bearer(first))
    assert bound.status_code == 200 and bound.json["cashier"]["shop"] == "分店"
    again = client.post("/api/v1/auth/login", json={"code": "code:o-cashier-2"}).json["token"]
    assert error_code(client.post("/api/v1/cashier/bind", json={"code": code}, headers=bearer(again))) == \
        "invalid_cashier_code"                                      # once only
    member = token_for(make_staff("M1", name="会员"))
    assert error_code(client.post("/api/v1/cashier/bind", json={"code": "x"}, headers=bearer(member))) == \
        "member_account"
    cashier = bound.json["token"]
    assert error_code(client.post("/api/v1/auth/bind", json={"employee_no": "M1", "name": "会员", "bind_code": "1"},
                                  headers=bearer(cashier))) == "cashier_account"


def test_guessing_codes_hits_the_limit_long_before_it_could_succeed(app, client, make_staff, counter):
    voucher = a_voucher(app, make_staff)
    _, token = counter["add_cashier"]()
    limits = app.config["SU"].limits
    per_cashier = int(limits.redeem_guesses_per_cashier.split("/")[0])
    good = current_code(app, voucher)
    payload = good[:5]                                              # a real voucher's id, a guessed MAC
    answers = []
    for n in range(per_cashier + 2):
        mac = voucher_codes._encode(n, voucher_codes.MAC_CHARS)
        guess = payload + mac + voucher_codes.check_character(payload + mac)
        if guess != good:
            answers.append(error_code(redeem(client, token, guess)))
    assert answers[:per_cashier] == ["unknown_code"] * per_cashier and answers[per_cashier] == "redeem_rate_limited"
    # the odds: two valid windows of a 4-character MAC, at the merchant's daily limit
    per_guess = 2 / voucher_codes.BASE ** voucher_codes.MAC_CHARS
    per_day = int(limits.redeem_guesses_per_merchant.split("/")[0])
    years_on_average = 1 / (per_guess * per_day) / 365
    assert years_on_average > 10
    with app.app_context():
        window = voucher_codes.window_of(clock.now(), app.config["SU"].vouchers.show_window_seconds)
    qr = voucher_codes.qr_token(voucher.serial, voucher.id, voucher.secret, window)
    assert redeem(client, token, qr).status_code == 200             # a scanned QR (not guessable) still works


# --- undo and the monthly statement -----------------------------------------------------------------------------

@pytest.mark.row_locks
def test_ten_undos_of_one_redemption_at_once_one_succeeds(app, client, make_staff, counter, live_server):
    voucher = a_voucher(app, make_staff)
    _, token = counter["add_cashier"]()
    assert redeem(client, token, current_code(app, voucher)).status_code == 200
    url = f"{live_server.url}/api/v1/cashier/redemptions/{voucher.id}/undo"
    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(lambda _: requests.post(url, headers=bearer(token), timeout=60), range(10)))
    assert sorted(r.status_code for r in answers).count(200) == 1
    refused = {r.json()["error"]["code"] for r in answers if r.status_code != 200}
    assert refused <= {"not_redeemed", "redemption_not_found"}     # undone already: that redemption is gone
    with app.app_context():
        assert db.session.get(Voucher, voucher.id).status is VoucherStatus.VALID


def test_an_undo_comes_in_time_or_not_at_all_and_never_after_the_month_closes(app, client, make_staff, counter):
    first, second = a_voucher(app, make_staff, "甲某"), a_voucher(app, make_staff, "乙某")
    _, token = counter["add_cashier"]()
    _, other_token = counter["add_cashier"]()
    redeem(client, token, current_code(app, first))
    assert error_code(client.post(f"/api/v1/cashier/redemptions/{first.id}/undo", headers=bearer(other_token))) \
        == "redemption_not_found"                                   # only the cashier who redeemed it
    with time_machine.travel(clock.now().timestamp() + 31 * 60):
        assert error_code(client.post(f"/api/v1/officer/vouchers/{first.id}/undo-redemption",
                                      headers=bearer(_fresh_officer_token(app)))) == "undo_too_late"
    redeem(client, token, current_code(app, second))
    month = f"{clock.local():%Y-%m}"
    closed = client.post(f"/api/v1/officer/merchants/{counter['merchant_id']}/statements/{month}/close",
                         headers=bearer(counter["officer"]))
    assert closed.status_code == 200 and closed.json["closed"] is True
    assert error_code(client.post(f"/api/v1/cashier/redemptions/{second.id}/undo", headers=bearer(token))) == \
        "month_closed"


def _fresh_officer_token(app) -> str:
    from models import Staff

    with app.app_context(), unit_of_work():
        officer = db.session.scalar(select(Staff).where(Staff.employee_no == "U1"))
        identity = db.session.scalar(select(WeChatIdentity).where(WeChatIdentity.staff_id == officer.id))
        return auth.issue_token(identity, officer)


def test_the_months_statement_equals_the_redemptions_and_its_xlsx_cell_by_cell(app, client, make_staff, counter):
    import io

    from openpyxl import load_workbook

    redeemed = [a_voucher(app, make_staff, name) for name in ("王小五", "=HYPERLINK(1)", "李四")]
    a_voucher(app, make_staff, "未使用")
    _, token = counter["add_cashier"]("分店")
    for voucher in redeemed:
        assert redeem(client, token, current_code(app, voucher)).status_code == 200
    month = f"{clock.local():%Y-%m}"
    url = f"/api/v1/officer/merchants/{counter['merchant_id']}/statements/{month}"
    statement = client.get(url, headers=bearer(counter["officer"])).json
    assert (statement["count"], statement["face_value_fen"], statement["cost_fen"]) == (3, 60000, 54000)
    assert [i["voucher_id"] for i in statement["items"]] == [v.id for v in redeemed]
    mine = client.get(f"/api/v1/cashier/statements/{month}", headers=bearer(token)).json
    assert mine["face_value_fen"] == 60000 and "cost_fen" not in mine and "cost_fen" not in mine["items"][0]
    sheet = load_workbook(io.BytesIO(client.get(f"{url}.xlsx", headers=bearer(counter["officer"])).data)).active
    rows = [[cell.value for cell in row] for row in sheet.iter_rows()]
    assert rows[0] == ["序号", "券号", "持券人", "工号", "门店", "收银员", "核销时间", "面值（元）", "成本（元）"]
    for n, (row, voucher) in enumerate(zip(rows[1:4], redeemed), start=1):
        assert row[:6] == [n, voucher.serial, voucher.staff.name, voucher.staff.employee_no, "分店",
                           f"收银员{counter['n']}"]
        assert row[7:] == [200, 180]
    assert rows[2][2] == "=HYPERLINK(1)" and sheet.cell(row=3, column=3).data_type == "s"
    assert rows[4] == ["合计", "3 张", None, None, None, None, None, 600, 540]
