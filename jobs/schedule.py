"""The whole periodic schedule, in one list. Each job runs on an interval and does what is due and not yet
done (the database remembers what was done), so a scheduler that was down catches up and nothing runs twice."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Callable


@dataclass(frozen=True)
class JobSpec:
    id: str
    run: Callable[[datetime], int]     # called inside an app context with "now"; returns how much it did
    summary: str


def schedule() -> list[JobSpec]:
    from app.services import greetings, holidays
    from app.services import attachments, vouchers
    from app.services.condolences import retention
    from app.services.events import reminders
    from app.services.proposals import handling, review, satisfaction

    return [
        JobSpec("greetings.birthdays", greetings.send_birthday_greetings, "生日祝福（当天，按公历或农历）"),
        JobSpec("holidays.notices", holidays.send_due_holiday_notices, "节日通知与慰问品领取通知"),
        JobSpec("events.reminders", reminders.send_event_reminders, "活动前一天提醒已报名成功的人"),
        JobSpec("events.finish", reminders.finish_past_events, "活动结束后标记为已结束"),
        JobSpec("attachments.orphans", attachments.remove_orphan_files, "清理没有记录引用的上传文件"),
        JobSpec("vouchers.issue", vouchers.issue_due_vouchers, "发放到期的生日蛋糕券（每人每年一张）"),
        JobSpec("vouchers.expire", vouchers.expire_vouchers, "过期未使用的生日蛋糕券标记为已过期"),
        JobSpec("vouchers.remind", vouchers.remind_expiring, "生日蛋糕券过期前提醒"),
        JobSpec("condolences.retention", retention.erase_expired_details,
                "慰问申请办结满保存期后删除附件和加密内容（台账保留）"),
        JobSpec("proposals.windows", review.close_windows, "提案征集期结束：附议人数够的提交审查，不够的结束"),
        JobSpec("proposals.reminders", handling.send_reminders, "提案督办：在办理期限前后提醒尚未办理的部门"),
        JobSpec("proposals.unrated", satisfaction.close_unrated, "答复后逾期未评价的提案办结为“未评价”"),
    ]
