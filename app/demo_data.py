"""Demo data for the embedded default: a few sub-unions, about 50 staff, two union officers and a sub-union
officer, a birthday voucher, a bakery, and condolence requests at every stage. Idempotent."""

from __future__ import annotations

import json
import random
import sys
from datetime import date, datetime, time, timedelta
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
            _areas_added_since(session)
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
        _proposals_at_each_stage(officer)


def _areas_added_since(session) -> None:
    """A demo database seeded by an earlier version gains the data of the areas added since (proposals)."""
    from models import CongressTerm

    if not session.scalar(select(func.count()).select_from(CongressTerm)):
        _proposals_at_each_stage(roster.get_staff(OFFICER["employee_no"]))


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


LIAISONS = {"000091": ("吴联络", "教务处"), "000092": ("郑联络", "后勤管理处"), "000093": ("冯联络", "人事处"),
            "000094": ("褚联络", "图书馆")}
PROPOSALS = [   # title, category, author's place among the representatives, seconders, what becomes of it
    ("关于增设教职工子女暑期托管班的建议", "welfare", 0, 3, "closed"),
    ("关于延长图书馆周末开放时间的建议", "teaching", 1, 2, "answered"),
    ("关于改善新校区教职工通勤班车的建议", "logistics", 2, 4, "overdue"),
    ("关于完善青年教师职称评审办法的建议", "talent", 3, 2, "handling"),
    ("关于食堂增加清真窗口的建议", "logistics", 4, 2, "opinion"),
    ("关于暑期托管班延长接送时间的建议", "welfare", 5, 2, "merged"),
    ("关于发放节日购物卡的建议", "welfare", 6, 2, "rejected"),
    ("关于教职工体检增加项目的建议", "welfare", 1, 3, "accepted"),
    ("关于设立教职工心理咨询室的建议", "welfare", 2, 2, "under_review"),
    ("关于校园增设电动车充电桩的建议", "logistics", 3, 1, "below_minimum"),
    ("关于简化校内报销流程的建议", "other", 4, 2, "unrated"),
]


def _proposals_at_each_stage(officer: Staff) -> None:
    """第二届教代会: this year's session, its window closed, with a proposal at every stage of review, handling and
    rating; next year's session collecting, with 李老师's proposal seconded by two representatives. 周干事 sits on
    the proposal committee; 教务处, 后勤管理处, 人事处 and 图书馆 each have a liaison."""
    from app.services.proposals import congress, filing, handling, review, satisfaction
    from models import Assignment, CongressSession, Proposal

    rng = random.Random(16)
    for employee_no, (name, department) in LIAISONS.items():
        roster.upsert_staff(employee_no, roster.StaffFields(name=name, department=department, sub_union=SUB_UNIONS[0],
                                                            gender=Gender.FEMALE, phone=f"1390000{employee_no[-4:]}"),
                            actor_label="demo")
    now, today = clock.now(), clock.today()
    term = congress.create_term(officer, congress.TermFields(name="第二届", starts_on=date(today.year - 2, 3, 1),
                                                             ends_on=date(today.year + 3, 2, 28)))
    others = [OFFICER["employee_no"], SECOND_OFFICER["employee_no"], *LIAISONS]
    members = list(db.session.scalars(select(Staff.employee_no).where(
        Staff.status == StaffStatus.ACTIVE, Staff.employee_no.not_in(others)).order_by(Staff.employee_no).limit(13)))
    # 李老师 (000002) is the first representative
    congress.add_representatives(officer, term.id, congress.PeopleFields(employee_nos=members))
    congress.set_committee_member(officer, SECOND_OFFICER["employee_no"], True)
    departments = {}
    for employee_no, (_, department) in LIAISONS.items():
        departments[department] = roster.get_staff(employee_no).department_id
        congress.set_liaison(officer, departments[department], employee_no, True)
    reps = [roster.get_staff(no) for no in members]
    committee = roster.get_staff(SECOND_OFFICER["employee_no"])

    def beijing(day: date) -> datetime:
        return datetime.combine(day, time(), clock.zone())

    def file(current: CongressSession, title: str, category: str, author: int, seconds: int) -> Proposal:
        subject = title.removeprefix("关于").removesuffix("的建议")
        proposal = filing.file(reps[author], filing.ProposalFields(
            session_id=current.id, title=title, category=category, reasons=f"{subject}，教职工反映强烈。",
            measures="建议学校有关部门研究解决，明确时间表并向教代会报告。"))
        for seconder in rng.sample([r for i, r in enumerate(reps) if i != author], seconds):
            filing.second(seconder, proposal.id)
        return proposal

    # This year's meeting was held in March; its proposals were filed in its window (opened now for the filing, then
    # given its real dates) and are being handled since.
    year = today.year if today > date(today.year, 3, 20) else today.year - 1
    this_year = CongressSession(term_id=term.id, year=year, name="第二届教代会第三次会议", meeting_on=date(year, 3, 20),
                                opens_at=now - timedelta(days=1), closes_at=now + timedelta(days=1))
    db.session.add(this_year)
    db.session.flush()
    filed = {fate: file(this_year, title, category, author, seconds)
             for title, category, author, seconds, fate in PROPOSALS}
    db.session.execute(update(CongressSession).where(CongressSession.id == this_year.id).values(
        opens_at=beijing(date(year, 2, 20)), closes_at=beijing(date(year, 3, 5))))
    review.close_windows(now)
    for fate in ("closed", "answered", "overdue", "handling", "accepted", "unrated"):
        review.accept(committee, filed[fate].id)
    review.merge(committee, filed["merged"].id, review.MergeFields(into_id=filed["closed"].id))
    review.forward_as_opinion(committee, filed["opinion"].id, review.OpinionFields(
        department_id=departments["后勤管理处"], reason="属日常管理事项，转后勤管理处研究办理"))
    review.reject(committee, filed["rejected"].id, review.ReasonFields(reason="不属于教代会提案范围，已转工会福利工作统筹考虑"))
    leads = {"closed": "人事处", "answered": "图书馆", "overdue": "后勤管理处", "handling": "人事处", "unrated": "教务处"}
    for fate, lead in leads.items():
        handling.assign(committee, filed[fate].id, handling.AssignFields(
            lead_department_id=departments[lead], co_department_ids=[departments["教务处"]] if fate == "closed" else []))
    liaison_of = {departments[d]: roster.get_staff(no) for no, (_, d) in LIAISONS.items()}
    for fate in ("closed", "answered", "unrated"):
        for part in sorted(handling.current_assignments(filed[fate].id), key=lambda a: a.lead):   # co first
            liaison = liaison_of[part.department_id]
            if part.lead:
                handling.answer(liaison, filed[fate].id, part.id, handling.AnswerFields(
                    text="经研究，学校已将该事项列入本年度工作计划，由我部门牵头落实，预计下学期完成。", grade="A" if fate == "closed" else "B"))
            else:
                handling.give_opinion(liaison, filed[fate].id, part.id, handling.OpinionFields(text="同意，配合落实。"))
    satisfaction.rate(reps[0], filed["closed"].id, satisfaction.RateFields(satisfaction="满意", comment="落实到位"))
    db.session.execute(update(Proposal).where(Proposal.id == filed["unrated"].id)
                       .values(answered_at=now - timedelta(days=60)))
    satisfaction.close_unrated(now)
    db.session.execute(update(Assignment).where(Assignment.proposal_id == filed["overdue"].id).values(
        deadline=today - timedelta(days=3), assigned_at=now - timedelta(days=95)))     # 督办: past its deadline
    next_year = congress.create_session(officer, congress.SessionFields(
        term_id=term.id, year=year + 1, name="第二届教代会第四次会议", meeting_on=date(year + 1, 3, 20),
        opens_at=now - timedelta(days=1), closes_at=now + timedelta(days=20)))
    file(next_year, "关于增加教职工运动场馆开放时段的建议", "welfare", 0, 2)
    file(next_year, "关于规范学院会议时间的建议", "other", 5, 0)


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
    (OFFICER, "校工会干部（审批慰问、发布公告和活动）"), (SECOND_OFFICER, "校工会干部（双人复核的第二位审核人），提案工作委员会委员"),
    (SUB_OFFICER, "分工会干部（信息工程学院，核实慰问）"), (DEMO_STAFF, "教职工（信息工程学院），教代会代表"),
    ({"employee_no": "000091", "name": "吴联络", "phone": "13900000091"}, "教务处提案联络人（答复提案）"),
]


def walkthrough_ids() -> dict[str, int | None]:
    """The records the printed walk-through names, as they are now (the lines stay right on every start: a
    request is verified afresh when the last one was approved)."""
    from app.services import announcements
    from models import Announcement, CondolenceRequest, CondolenceStatus, CongressSession, Event

    with unit_of_work():
        _a_verified_request()
    with unit_of_work():
        events = dict(db.session.execute(select(Event.title, Event.id)).all())
        checkup = db.session.scalar(select(Announcement).where(Announcement.title == CHECKUP))
        verified = db.session.scalar(select(CondolenceRequest.id).where(
            CondolenceRequest.status == CondolenceStatus.VERIFIED).limit(1))
        session = db.session.scalar(select(CongressSession.id).order_by(CongressSession.year).limit(1))
        return {"volleyball": events.get(VOLLEYBALL), "table_tennis": events.get(TABLE_TENNIS),
                "notice": announcements.publication_notice_id(checkup) if checkup else None, "verified": verified,
                "proposal_session": session}


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
                       ("/api/v1/condolences", "⑧ 我的慰问申请（待核实）"),
                       ("/api/v1/proposals?mine=true", "⑨ 我提出和附议的教代会提案（李老师是代表）")):
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
    if ids["proposal_session"]:
        click.echo(call("OFFICER", f"/api/v1/officer/proposals/sessions/{ids['proposal_session']}/report.html",
                        "⑧ 本次教代会提案办理情况表（打印页；另有 report.xlsx、compilation.xlsx）"), nl=False)
    command = Path(sys.executable).parent / "smart-union"
    click.echo(f"{command} mp say --url {base_url} --as {OFFICER['employee_no']} \"帮助\"   # ⑨ 公众号：像微信一样推送一条消息")
    click.echo(f"# ⑩ 浏览器打开 {fake_url}/ ，看微信会送达给每个人的消息\n")
    if cashier_code:
        click.echo("# 蛋糕店收银员：用本次启动的一次性绑定码绑定（该微信账号已绑定过则不再需要），再核销李老师出示的短码")
        click.echo(f"CASHIER=$(curl -sS -X POST '{base_url}/api/v1/auth/login' -H 'Content-Type: application/json' "
                   f"-d '{{\"code\": \"code:demo-cashier\"}}' | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"token\"])')")
        click.echo(f"curl -sS -X POST '{base_url}/api/v1/cashier/bind' -H 'Content-Type: application/json' "
                   f"-H \"Authorization: Bearer $CASHIER\" -d '{{\"code\": \"{cashier_code}\"}}'\n")
