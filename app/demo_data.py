"""Demo data for the embedded default: a few sub-unions, about 50 staff, two union officers and a sub-union
officer, a birthday voucher, a bakery, and condolence requests at every stage. Idempotent."""

from __future__ import annotations

import json
import random
from datetime import date, timedelta

import click
from sqlalchemy import func, select

from app.extensions import db
from app.unit_of_work import unit_of_work
from app import clock
from app.services import merchants, roster, vouchers
from models import BirthdayCalendar, Gender, Role, Staff, StaffStatus

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
        _birthday_voucher_for(DEMO_STAFF["employee_no"])
        merchants.create_merchant(officer, merchants.MerchantIn(name=vouchers.current_policy().merchant,
                                                                shops=[DEMO_SHOP]))
        _condolences_at_each_stage()


def demo_cashier_code() -> str:
    """A fresh one-time code for the demo bakery's cashier (codes live a day in Redis: one per start)."""
    with unit_of_work():
        officer = roster.get_staff(OFFICER["employee_no"])
        merchant = merchants.list_merchants(officer)[0]
        return merchants.issue_cashier_code(officer, merchant.id, DEMO_SHOP, "演示收银员")


def _birthday_voucher_for(employee_no: str) -> None:
    """李老师's birthday is in three days: the issuing job gives him this year's cake voucher at once."""
    in_three_days = clock.today() + timedelta(days=3)
    birthday = date(1980, in_three_days.month, min(in_three_days.day, 28 if in_three_days.month == 2 else 31))
    roster.update_staff(employee_no, {"birthday": birthday, "birthday_calendar": BirthdayCalendar.SOLAR},
                        actor_label="demo")
    vouchers.issue_due_vouchers(clock.now())


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


def print_try_it(base_url: str, fake_url: str, cashier_code: str = "") -> None:
    def login_and_bind(who: dict, label: str) -> str:
        """Works on every start: logs in, and binds only when this WeChat account is not bound yet."""
        bind = {"employee_no": who["employee_no"], "name": who["name"], "phone_code": f"phone:{who['phone']}"}
        return (f"# {label}：登录（模拟微信 code）→ 尚未绑定时绑定（模拟手机号授权）→ 我的资料\n"
                f"TOKEN=$(python3 - <<'PY'\n"
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
                f"curl -s {base_url}/api/v1/me -H \"Authorization: Bearer $TOKEN\"\n")

    click.echo(f"\n智慧工会演示已启动：{base_url}   API 文档：{base_url}/api/v1/docs   模拟微信：{fake_url}\n")
    click.echo(login_and_bind(DEMO_STAFF, "教职工 李老师"))
    click.echo(login_and_bind(OFFICER, "校工会干部 张工会"))
    click.echo(f"curl -s '{base_url}/api/v1/officer/staff?page_size=5' -H \"Authorization: Bearer $TOKEN\"\n")
    click.echo("# 李老师的生日蛋糕券：用李老师的 TOKEN 调用 GET /api/v1/vouchers，再 POST /api/v1/vouchers/<id>/show 出示\n")
    if cashier_code:
        click.echo(f"# 蛋糕店收银员：登录（code:demo-cashier）后 POST {base_url}/api/v1/cashier/bind "
                   f"-d '{{\"code\": \"{cashier_code}\"}}'，再用 /api/v1/cashier/redeem 核销李老师出示的短码\n")
