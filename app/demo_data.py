"""Demo data for the embedded default: a few sub-unions, about 50 staff, two union officers and a sub-union
officer, a birthday voucher, a bakery, and condolence requests at every stage. Idempotent."""

from __future__ import annotations

import json
import random
import sys
from datetime import date, timedelta
from pathlib import Path

import click
from sqlalchemy import func, select, update

from app.extensions import db
from app.unit_of_work import unit_of_work
from app import clock
from app.services import merchants, roster, vouchers
from app.services.audiences import Audience
from models import BirthdayCalendar, Gender, Role, Staff, StaffStatus, WeChatApp, WeChatIdentity

SUB_UNIONS = ["机关分工会", "信息工程学院分工会", "外国语学院分工会", "后勤分工会", "离退休工作处直属小组"]
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = ["伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明", "超", "秀英", "霞", "平"]
OFFICER = {"employee_no": "000001", "name": "张工会", "phone": "13800000001"}
DEMO_STAFF = {"employee_no": "000002", "name": "李老师", "phone": "13800000002"}
SUB_OFFICER = {"employee_no": "000003", "name": "陈主席", "phone": "13800000003"}       # 李老师's sub-union
SECOND_OFFICER = {"employee_no": "000004", "name": "周干事", "phone": "13800000004"}    # four eyes need two
DEMO_SHOP = "总店"


def seed_demo_data(count: int = 50) -> None:
    with unit_of_work() as session:
        if session.scalar(select(func.count()).select_from(Staff)):
            return
        rng = random.Random(2026)
        _add(OFFICER["employee_no"], OFFICER["name"], OFFICER["phone"], SUB_UNIONS[0], Gender.FEMALE, rng)
        _add(DEMO_STAFF["employee_no"], DEMO_STAFF["name"], DEMO_STAFF["phone"], SUB_UNIONS[1], Gender.MALE, rng)
        _add(SUB_OFFICER["employee_no"], SUB_OFFICER["name"], SUB_OFFICER["phone"], SUB_UNIONS[1], Gender.MALE, rng)
        _add(SECOND_OFFICER["employee_no"], SECOND_OFFICER["name"], SECOND_OFFICER["phone"], SUB_UNIONS[0],
             Gender.FEMALE, rng)
        for n in range(5, count + 1):
            gender = rng.choice(list(Gender))
            name = rng.choice(SURNAMES) + rng.choice(GIVEN)
            _add(f"{n:06d}", name, f"139{n:08d}", rng.choice(SUB_UNIONS), gender, rng)
        officer = roster.get_staff(OFFICER["employee_no"])
        roster.grant_role(officer, Role.UNION_OFFICER, actor_label="demo")
        roster.grant_role(roster.get_staff(SECOND_OFFICER["employee_no"]), Role.UNION_OFFICER, actor_label="demo")
        sub_officer = roster.get_staff(SUB_OFFICER["employee_no"])
        roster.grant_role(sub_officer, Role.SUB_UNION_OFFICER, sub_officer.sub_union_id, actor_label="demo")
        _joined_today_but(DEMO_STAFF["employee_no"])
        _birthday_voucher_for(DEMO_STAFF["employee_no"])
        merchants.create_merchant(officer, merchants.MerchantIn(name=vouchers.current_policy().merchant,
                                                                shops=[DEMO_SHOP]))
        _condolences_at_each_stage()
        _caring_work(officer)
        _journeys(officer, rng)


def demo_cashier_code() -> str:
    """A fresh one-time code for the demo bakery's cashier (codes live a day in Redis: one per start)."""
    with unit_of_work():
        officer = roster.get_staff(OFFICER["employee_no"])
        merchant = merchants.list_merchants(officer)[0]
        return merchants.issue_cashier_code(officer, merchant.id, DEMO_SHOP, "演示收银员")


def _joined_today_but(employee_no: str) -> None:
    """Members from today (the demo's union starts today): vouchers come for birthdays from now on, not for every
    birthday already past this year — except 李老师's, whose is in three days."""
    db.session.execute(update(Staff).where(Staff.employee_no != employee_no).values(member_since=clock.today()))


def _birthday_voucher_for(employee_no: str) -> None:
    """李老师's birthday is in three days: the issuing job gives him this year's cake voucher at once."""
    in_three_days = clock.today() + timedelta(days=3)
    birthday = date(1980, in_three_days.month, min(in_three_days.day, 28 if in_three_days.month == 2 else 31))
    roster.update_staff(employee_no, {"birthday": birthday, "birthday_calendar": BirthdayCalendar.SOLAR},
                        actor_label="demo")
    vouchers.issue_due_vouchers(clock.now())


VOLLEYBALL, READING, TABLE_TENNIS = "教职工气排球赛", "读书节·好书分享会", "乒乓球友谊赛（名额已满，可候补）"
CHECKUP, ACCOUNTS = "关于开展 2026 年度教职工体检的通知", "工会经费使用情况公示"


def _journeys(officer: Staff, rng: random.Random) -> None:
    """What every journey needs: the officer and 李老师 on WeChat (the officer's mini-program login lets WeChat check
    an announcement's content; both follow the official account), two announcements of which 李老师 read one, two
    open events with seats, a full one with a waiting list, a gift campaign, and the notices all this sends."""
    from app.services import announcements, holidays
    from app.services.events import lifecycle, seats

    teacher = roster.get_staff(DEMO_STAFF["employee_no"])
    now = clock.now()
    db.session.add_all([
        WeChatIdentity(app=WeChatApp.MINI_PROGRAM, openid=f"demo-{OFFICER['employee_no']}", staff_id=officer.id,
                       bound_at=now),
        *(WeChatIdentity(app=WeChatApp.OFFICIAL_ACCOUNT, openid=f"mp-{who.employee_no}", staff_id=who.id,
                         following=True, bound_at=now) for who in (officer, teacher))])
    db.session.flush()
    for title, body in ((CHECKUP, "今年的教职工体检 12 月 10 日开始，请按分工会安排的时间到校医院参加。"),
                        (ACCOUNTS, "2026 年前三季度工会经费收支情况如下，欢迎教职工监督。")):
        draft = announcements.create_draft(officer, title=title, body=body)
        announcements.publish(officer, draft.id)
    announcements.record_read(teacher, announcements.get_for_staff(teacher, draft.id))
    for title, category, capacity in ((VOLLEYBALL, "sports", 30), (READING, "culture", 50), (TABLE_TENNIS, "sports", 2)):
        event = lifecycle.create_event(officer, lifecycle.EventFields(
            title=title, category=category, place="体育馆" if category == "sports" else "图书馆报告厅",
            description="欢迎报名", capacity=capacity, starts_at=now + timedelta(days=10),
            ends_at=now + timedelta(days=10, hours=3), signup_opens_at=now - timedelta(days=1),
            signup_closes_at=now + timedelta(days=7)))
        lifecycle.publish_event(officer, event.id)
    members = list(db.session.scalars(select(Staff).where(Staff.employee_no.not_in(
        [OFFICER["employee_no"], DEMO_STAFF["employee_no"]]), Staff.status == StaffStatus.ACTIVE).order_by(Staff.id)))
    for member in rng.sample(members, 3):                  # two seats taken, one waiting
        seats.sign_up(event.id, member, {})
    year = clock.today().year + (1 if clock.today().month > 2 else 0)
    holidays.create_campaign(officer, "spring_festival", year, "年货礼包一份", "工会办公室（行政楼 302）",
                             now + timedelta(days=30), now + timedelta(days=40), Audience())


def _a_verified_request() -> None:
    """One request verified by 陈主席 and waiting for a union officer's approval: a colleague's hospital stay (one
    who has none this year yet, so the yearly count never stands in the way)."""
    from app.services.condolences import filing, rates, review
    from models import CondolenceRequest, CondolenceStatus

    if db.session.scalar(select(CondolenceRequest.id).where(CondolenceRequest.status == CondolenceStatus.VERIFIED)):
        return
    teacher, sub_officer = roster.get_staff(DEMO_STAFF["employee_no"]), roster.get_staff(SUB_OFFICER["employee_no"])
    kind = next(k for k in rates.all_types() if k.name == "本人住院")
    filed_this_year = select(CondolenceRequest.staff_id).where(CondolenceRequest.type_id == kind.id,
                                                               CondolenceRequest.event_year == clock.today().year)
    colleague = db.session.scalar(select(Staff).where(
        Staff.sub_union_id == teacher.sub_union_id, Staff.status == StaffStatus.ACTIVE, Staff.id.not_in(filed_this_year),
        Staff.employee_no.not_in([DEMO_STAFF["employee_no"], SUB_OFFICER["employee_no"]])).order_by(Staff.id).limit(1))
    if colleague is None:
        return
    request = filing.file_own(colleague, filing.RequestFields(type_id=kind.id, event_date=clock.today(),
                                                              place="市第一人民医院", description="肺炎住院治疗"))
    review.verify(sub_officer, request.id)


def _caring_work(officer: Staff) -> None:
    """This year's retiree visits (one made already) and a mutual-aid claim of 李老师's, submitted to the city."""
    from app.services.condolences import claims, visits

    plan = visits.create_plan(officer, visits.PlanFields(year=clock.today().year))
    planned = visits.visits_of(officer, plan)
    if planned:
        visits.record_visit(officer, plan.year, planned[0].id, visits.VisitedFields(
            visited_on=clock.today(), money_fen=50000, gift="米、油各一份", note="身体硬朗，子女常回家"))
    claim = claims.file_claim(officer, claims.ClaimFields(
        employee_no=DEMO_STAFF["employee_no"], plan="住院医疗互助保障", filed_on=clock.today() - timedelta(days=3),
        description="腰椎间盘突出住院"))
    claims.submitted(officer, claim.id, claims.SubmittedFields(submitted_on=clock.today()))


def _condolences_at_each_stage() -> None:
    """In 李老师's sub-union: his own request waiting for 陈主席 to verify, and colleagues' requests returned for
    more material, verified (张工会 may approve it), approved by 周干事, rejected and withdrawn."""
    from app.services.condolences import filing, rates, review

    teacher, sub_officer = roster.get_staff(DEMO_STAFF["employee_no"]), roster.get_staff(SUB_OFFICER["employee_no"])
    second = roster.get_staff(SECOND_OFFICER["employee_no"])
    colleagues = list(db.session.scalars(select(Staff).where(
        Staff.sub_union_id == teacher.sub_union_id, Staff.status == StaffStatus.ACTIVE,
        Staff.employee_no.not_in([DEMO_STAFF["employee_no"], SUB_OFFICER["employee_no"]])).order_by(Staff.id)))
    kinds = {kind.name: kind.id for kind in rates.all_types()}

    def file(member: Staff, kind: str, days_ago: int, description: str, **relative) -> int:
        fields = filing.RequestFields(type_id=kinds[kind], event_date=clock.today() - timedelta(days=days_ago),
                                      place="市第一人民医院", description=description, **relative)
        return filing.file_own(member, fields).id

    file(teacher, "本人住院", 5, "腰椎间盘突出住院治疗")
    returned = file(colleagues[0], "本人住院并手术", 20, "阑尾切除手术")
    review.return_for_material(sub_officer, returned, review.ReturnFields(missing="请补充出院记录和费用清单"))
    verified = file(colleagues[1], "直系亲属住院", 12, "母亲住院", relation="父母", relative_name="王秀兰")
    review.verify(sub_officer, verified)
    approved = file(colleagues[2], "直系亲属去世", 30, "父亲病逝", relation="父母", relative_name="刘建国")
    review.verify(sub_officer, approved)
    review.approve(second, approved, review.ApproveFields(payment="money"))
    rejected = file(colleagues[3], "意外事故", 40, "下班途中摔伤")
    review.reject(sub_officer, rejected, review.RejectFields(reason="请先申请工伤认定，认定后再申请"))
    filing.withdraw(colleagues[4], file(colleagues[4], "本人住院", 8, "感冒住院观察"))


def _add(employee_no: str, name: str, phone: str, sub_union: str, gender: Gender, rng: random.Random) -> None:
    retired = sub_union.startswith("离退休")
    fields = roster.StaffFields(
        name=name, gender=gender, phone=phone, sub_union=sub_union, department=sub_union.removesuffix("分工会"),
        birthday=date(rng.randint(1950 if retired else 1965, 1958 if retired else 2000), rng.randint(1, 12),
                      rng.randint(1, 28)),
        birthday_calendar=BirthdayCalendar.LUNAR if rng.random() < 0.2 else BirthdayCalendar.SOLAR,
        status=StaffStatus.RETIRED if retired else StaffStatus.ACTIVE)
    roster.upsert_staff(employee_no, fields, actor_label="demo")


ACCOUNTS_TABLE = [   # 工号, 姓名, 角色, 手机号（绑定时的模拟授权码 phone:手机号）
    (OFFICER, "校工会干部（审批慰问、发布公告和活动）"), (SECOND_OFFICER, "校工会干部（双人复核的第二位审核人）"),
    (SUB_OFFICER, "分工会干部（信息工程学院，核实慰问）"), (DEMO_STAFF, "教职工（信息工程学院）"),
]


def walkthrough_ids() -> dict[str, int | None]:
    """The records the printed walk-through names, as they are now (the lines stay right on every start: a
    request is verified afresh when the last one was approved)."""
    from app.services import announcements
    from models import Announcement, CondolenceRequest, CondolenceStatus, Event

    with unit_of_work():
        _a_verified_request()
    with unit_of_work():
        events = dict(db.session.execute(select(Event.title, Event.id)).all())
        checkup = db.session.scalar(select(Announcement).where(Announcement.title == CHECKUP))
        verified = db.session.scalar(select(CondolenceRequest.id).where(
            CondolenceRequest.status == CondolenceStatus.VERIFIED).limit(1))
        return {"volleyball": events.get(VOLLEYBALL), "table_tennis": events.get(TABLE_TENNIS),
                "notice": announcements.publication_notice_id(checkup) if checkup else None, "verified": verified}


def print_try_it(base_url: str, fake_url: str, ids: dict[str, int | None], cashier_code: str = "") -> None:
    def login(who: dict, variable: str, label: str) -> str:
        """Works on every start: logs in, and binds only when this WeChat account is not bound yet."""
        bind = {"employee_no": who["employee_no"], "name": who["name"], "phone_code": f"phone:{who['phone']}"}
        return (f"# {label}：登录（模拟的微信登录凭证）→ 尚未绑定时绑定（模拟的手机号授权）→ 我的资料\n"
                f"{variable}=$(python3 - <<'PY'\n"
                f"import json, urllib.request\n"
                f"def post(path, body, token=None):\n"
                f"    headers = {{'Content-Type': 'application/json', **({{'Authorization': 'Bearer ' + token}} if token else {{}})}}\n"
                f"    request = urllib.request.Request('{base_url}' + path, json.dumps(body).encode(), headers)\n"
                f"    return json.load(urllib.request.urlopen(request))\n"
                f"answer = post('/api/v1/auth/login', {{'code': 'code:demo-{who['employee_no']}'}})\n"
                f"if not answer['bound']:\n"
                f"    answer = post('/api/v1/auth/bind', {json.dumps(bind, ensure_ascii=False)}, answer['token'])\n"
                f"print(answer['token'])\n"
                f"PY\n)\n"
                f"curl -sS --fail-with-body {base_url}/api/v1/me -H \"Authorization: Bearer ${variable}\"\n")

    def call(variable: str, path: str, note: str, method: str = "GET", body: str = "") -> str:
        data = f" -H 'Content-Type: application/json' -d '{body}'" if body else ""
        verb = f" -X {method}" if method != "GET" else ""
        return (f"curl -sS --fail-with-body{verb} '{base_url}{path}' -H \"Authorization: Bearer ${variable}\"{data}"
                f"   # {note}\n")

    click.echo(f"\n智慧工会演示已启动：{base_url}\n  API 文档（浏览器打开）：{base_url}/api/v1/docs\n"
               f"  模拟微信（微信会送达的消息，按人分组）：{fake_url}/\n")
    click.echo("演示账号（小程序登录凭证模拟为 code:demo-工号，手机号授权模拟为 phone:手机号）：")
    click.echo(f"  {'工号':<6}  {'姓名':<4}  {'手机号':<11}  角色")
    for who, role in ACCOUNTS_TABLE:
        click.echo(f"  {who['employee_no']:<8}{who['name']:<5}{who['phone']:<13}{role}")
    click.echo("\n=== 教职工的前五分钟（李老师）===")
    click.echo(login(DEMO_STAFF, "STAFF", "① 登录"))
    steps = [("/api/v1/announcements", "② 公告：两条，一条未读"), ("/api/v1/events", "③ 可以报名的活动")]
    click.echo("".join(call("STAFF", path, note) for path, note in steps), nl=False)
    if ids["volleyball"] and ids["table_tennis"]:
        click.echo(call("STAFF", f"/api/v1/events/{ids['volleyball']}/signup", "④ 报名气排球赛（有名额：报名成功）",
                        "POST"), nl=False)
        click.echo(call("STAFF", f"/api/v1/events/{ids['table_tennis']}/signup", "⑤ 报名乒乓球赛（已满：进入候补）",
                        "POST"), nl=False)
    for path, note in (("/api/v1/inbox", "⑥ 我的消息"), ("/api/v1/vouchers", "⑦ 生日蛋糕券（三天后生日）"),
                       ("/api/v1/condolences", "⑧ 我的慰问申请（待核实）")):
        click.echo(call("STAFF", path, note), nl=False)
    click.echo("\n=== 工会干部的前五分钟（张工会）===")
    click.echo(login(OFFICER, "OFFICER", "① 登录"))
    click.echo(call("OFFICER", "/api/v1/officer/staff?page_size=5", "② 名册"), nl=False)
    if ids["table_tennis"]:
        click.echo(call("OFFICER", f"/api/v1/officer/events/{ids['table_tennis']}/signups", "③ 乒乓球赛的报名与候补名单"),
                   nl=False)
    click.echo(call("OFFICER", "/api/v1/officer/notices", "④ 发出的通知"), nl=False)
    if ids["notice"]:
        click.echo(call("OFFICER", f"/api/v1/officer/notices/{ids['notice']}/report", "⑤ 体检通知的送达情况"), nl=False)
    click.echo(call("OFFICER", "/api/v1/officer/condolences", "⑥ 慰问申请（各个阶段）"), nl=False)
    if ids["verified"]:
        click.echo(call("OFFICER", f"/api/v1/officer/condolences/{ids['verified']}/approve",
                        "⑦ 批准分工会已核实的申请（按标准金额）", "POST", '{"payment": "money"}'), nl=False)
    command = Path(sys.executable).parent / "smart-union"
    click.echo(f"{command} mp say --url {base_url} --as {OFFICER['employee_no']} \"帮助\"   # ⑧ 公众号：像微信一样推送一条消息")
    click.echo(f"# ⑨ 浏览器打开 {fake_url}/ ，看微信会送达给每个人的消息\n")
    if cashier_code:
        click.echo("# 蛋糕店收银员：用本次启动的一次性绑定码绑定（该微信账号已绑定过则不再需要），再核销李老师出示的短码")
        click.echo(f"CASHIER=$(curl -sS -X POST '{base_url}/api/v1/auth/login' -H 'Content-Type: application/json' "
                   f"-d '{{\"code\": \"code:demo-cashier\"}}' | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"token\"])')")
        click.echo(f"curl -sS -X POST '{base_url}/api/v1/cashier/bind' -H 'Content-Type: application/json' "
                   f"-H \"Authorization: Bearer $CASHIER\" -d '{{\"code\": \"{cashier_code}\"}}'\n")
