"""Staff-congress proposals (教代会提案): members' and representatives' routes under /proposals; the committee's,
the liaisons' and the congress's frame under /officer/proposals (who may do what: app.services.policy)."""

from __future__ import annotations

import io
from datetime import date

from flask import Blueprint, Response, g
from pydantic import AliasPath, BaseModel, Field, SerializeAsAny, computed_field

from app.api.endpoint import (
    READS_RECORDS, XLSX, Merged, ascii_or, endpoint, file_download, uploaded_file,
)
from app import clock
from app.services import departments, policy
from app.services.departments import RenameFields
from app.services.proposals import congress, documents, files, filing, handling, records, review, satisfaction
from app.services.proposals.congress import PeopleFields, SessionEditFields, SessionFields, TermFields
from app.services.proposals.filing import EditFields, ProposalFields
from app.services.proposals.handling import AnswerFields, AssignFields, OpinionFields
from app.services.proposals.records import ReasonFields
from app.services.proposals.review import MergeFields, OpinionFields as ForwardFields
from app.services.proposals.satisfaction import CommentFields, RateFields
from app.validation import BeijingTime
from models import (
    AnswerGrade, AssignmentStatus, ProposalCategory, ProposalStatus, Satisfaction,
)

bp = Blueprint("proposals", __name__)
TAGS = ("proposals",)


# --- responses ----------------------------------------------------------------------------------------------------

class ProposalSummary(BaseModel):
    model_config = READS_RECORDS
    id: int
    session_id: int
    number: str | None = Field(description="立案号（立案后）")
    title: str
    category: ProposalCategory
    status: ProposalStatus
    author: str = Field(validation_alias=AliasPath("author", "name"))
    seconds: int = Field(description="附议人数")
    submitted_at: BeijingTime
    satisfaction: Satisfaction | None

    @computed_field
    @property
    def category_label(self) -> str:
        return records.CATEGORY_LABELS[self.category]

    @computed_field
    @property
    def status_label(self) -> str:
        return records.STATUS_LABELS[self.status]

    @computed_field
    @property
    def satisfaction_label(self) -> str | None:
        return records.SATISFACTION_LABELS[self.satisfaction] if self.satisfaction else None


class ProposalList(BaseModel):
    items: list[ProposalSummary]


class AssignmentOut(BaseModel):
    model_config = READS_RECORDS
    id: int
    department_id: int
    department: str = Field(validation_alias=AliasPath("department", "name"))
    lead: bool = Field(description="true 主办 / false 协办")
    round: int
    deadline: date
    status: AssignmentStatus = Field(description="pending 办理中 / done 已答复或已提交协办意见 / returned 已退办 / "
                                                 "superseded 已结束")
    assigned_at: BeijingTime
    done_at: BeijingTime | None
    return_reason: str | None


class HandlingOut(AssignmentOut):
    """For the committee and the departments handling it: the co-handlers' opinions too."""

    text: str | None = Field(description="主办部门的答复或协办部门的意见")
    grade: AnswerGrade | None


class AnswerOut(BaseModel):
    model_config = READS_RECORDS
    department: str = Field(validation_alias=AliasPath("department", "name"))
    text: str | None
    grade: AnswerGrade | None
    at: BeijingTime | None = Field(validation_alias="done_at")
    round: int

    @computed_field
    @property
    def grade_label(self) -> str | None:
        return records.GRADE_LABELS[self.grade] if self.grade else None


class FileOut(BaseModel):
    model_config = READS_RECORDS
    id: int
    filename: str
    content_type: str
    size: int
    answer: bool = Field(description="true：随部门答复提交的附件")
    created_at: BeijingTime


def _file(row) -> FileOut:
    return FileOut.model_validate(Merged(row, answer=row.assignment_id is not None))


class CommentOut(BaseModel):
    model_config = READS_RECORDS
    name: str = Field(validation_alias=AliasPath("staff", "name"))
    round: int
    text: str
    created_at: BeijingTime


class StepOut(BaseModel):
    model_config = READS_RECORDS
    action: str = Field(description="filed 提交 / edited 修改 / seconded 附议 / second_withdrawn 撤回附议 / withdrawn 撤回 / "
                                    "to_review 提交审查 / below_minimum 未达附议人数 / accepted 立案 / merged 并案 / "
                                    "merged_in 他案并入 / opinion 转为意见建议 / rejected 不予立案 / assigned 交办 / "
                                    "returned 退办 / co_returned 协办退办 / co_opinion 协办意见 / answered 答复 / "
                                    "dissatisfied 不满意再办 / rated 评价 / unrated 未评价 / commented 评论")
    actor: str | None = Field(default=None, validation_alias=AliasPath("actor", "name"))
    at: BeijingTime


class ProposalDetail(ProposalSummary):
    reasons: str
    measures: str
    session: str = Field(validation_alias=AliasPath("session", "name"))
    locked: bool = Field(description="已有附议：内容已锁定，提案人不能再修改或自行撤回")
    seconders: list[str]
    co_proposers: list[str]
    seconded_by_me: bool
    decision_reason: str | None = Field(description="不予立案或转为意见建议的原因")
    merged_into_id: int | None
    opinion_department: str | None = Field(default=None, validation_alias=AliasPath("opinion_department", "name"))
    round: int = Field(description="第几轮办理（不满意后再办理）")
    assignments: list[SerializeAsAny[AssignmentOut]] = Field(
        description="交办记录；提案工作委员会和承办部门还可见答复与协办意见的内容（text、grade）")
    answer: AnswerOut | None
    satisfaction_comment: str | None
    comments: list[CommentOut]
    files: list[FileOut]
    history: list[StepOut]


class ProposalQuery(BaseModel):
    session_id: int | None = Field(default=None, ge=1, le=2**31 - 1)
    mine: bool = Field(default=False, description="只看我提出、附议或共同提出的")


def _summary(row) -> ProposalSummary:
    return ProposalSummary.model_validate(row)


def _detail(row) -> ProposalDetail:
    seconds = filing.seconders(row)
    co = [c.staff.name for c in review.co_proposers_of(row.id)]
    shown = HandlingOut if policy.sees_handling(g.staff, row.id) else AssignmentOut
    answer = handling.latest_answer(row.id)
    return ProposalDetail.model_validate(Merged(
        row, locked=row.first_seconded_at is not None, seconders=[s.staff.name for s in seconds], co_proposers=co,
        seconded_by_me=any(s.staff_id == g.staff.id for s in seconds),
        assignments=[shown.model_validate(a) for a in handling.all_assignments(row.id)],
        answer=AnswerOut.model_validate(answer) if answer else None,
        comments=[CommentOut.model_validate(c) for c in satisfaction.comments_of(row.id)],
        files=[_file(f) for f in files.files_of(g.staff, row)]))


# --- members and representatives ----------------------------------------------------------------------------------

class SessionOut(BaseModel):
    model_config = READS_RECORDS
    id: int
    term_id: int
    term: str = Field(validation_alias=AliasPath("term", "name"))
    year: int
    name: str
    meeting_on: date
    opens_at: BeijingTime
    closes_at: BeijingTime
    window_closed_at: BeijingTime | None

    @computed_field
    @property
    def collecting(self) -> bool:
        return self.window_closed_at is None and congress.window_open(self)


class SessionList(BaseModel):
    items: list[SessionOut]


@bp.get("/proposals/sessions")
@endpoint("教代会会议及提案征集期", response=SessionList, tags=TAGS)
def sessions():
    return SessionList(items=[SessionOut.model_validate(s) for s in congress.all_sessions()])


@bp.get("/proposals")
@endpoint("提案列表（已立案的提案全体会员可见；其余仅提案人、附议人和提案工作委员会可见）", query=ProposalQuery,
          response=ProposalList, tags=TAGS)
def proposals(query: ProposalQuery):
    return ProposalList(items=[_summary(p) for p in records.visible(g.staff, query.session_id, query.mine)])


@bp.get("/proposals/<int:proposal_id>")
@endpoint("提案详情（附议、办理、答复与评价）", response=ProposalDetail, tags=TAGS)
def detail(proposal_id: int):
    return _detail(records.get_proposal(g.staff, proposal_id))


@bp.post("/proposals")
@endpoint("提交提案（本届代表，征集期内）", body=ProposalFields, response=ProposalDetail, status=201, tags=TAGS)
def file(body: ProposalFields):
    return _detail(filing.file(g.staff, body))


@bp.patch("/proposals/<int:proposal_id>")
@endpoint("修改提案（提案人；有人附议前）", body=EditFields, response=ProposalDetail, tags=TAGS)
def edit(proposal_id: int, body: EditFields):
    return _detail(filing.edit(g.staff, proposal_id, body))


@bp.post("/proposals/<int:proposal_id>/withdraw")
@endpoint("撤回提案（提案人；有人附议前）", response=ProposalSummary, tags=TAGS)
def withdraw(proposal_id: int):
    return _summary(filing.withdraw(g.staff, proposal_id))


@bp.post("/proposals/<int:proposal_id>/seconds")
@endpoint("附议（本届其他代表；每人一次，征集期内）", response=ProposalDetail, status=201, tags=TAGS)
def second(proposal_id: int):
    return _detail(filing.second(g.staff, proposal_id))


@bp.delete("/proposals/<int:proposal_id>/seconds")
@endpoint("撤回附议（征集期结束前）", response=ProposalDetail, tags=TAGS)
def withdraw_second(proposal_id: int):
    return _detail(filing.withdraw_second(g.staff, proposal_id))


@bp.post("/proposals/<int:proposal_id>/attachments")
@endpoint("上传提案附件（提案人；有人附议前；图片或 PDF，multipart 字段名 file）", response=FileOut, status=201,
          tags=TAGS, upload="file")
def attach(proposal_id: int):
    return _file(files.attach_to_proposal(g.staff, proposal_id, *uploaded_file()))


@bp.get("/proposals/<int:proposal_id>/attachments/<int:file_id>")
@endpoint("下载提案或答复的附件", tags=TAGS)
def download(proposal_id: int, file_id: int):
    row, path = files.read(g.staff, proposal_id, file_id)
    return file_download(path, row.filename, row.content_type,
                         ascii_name=ascii_or(row.filename, f"proposal-{proposal_id}-{row.id}{path.suffix}"))


@bp.post("/proposals/<int:proposal_id>/rating")
@endpoint("评价答复（提案人：满意、基本满意、不满意；不满意退回再办理）", body=RateFields, response=ProposalDetail,
          tags=TAGS)
def rate(proposal_id: int, body: RateFields):
    return _detail(satisfaction.rate(g.staff, proposal_id, body))


@bp.post("/proposals/<int:proposal_id>/comments")
@endpoint("评论答复（提案人和共同提案人）", body=CommentFields, response=CommentOut, status=201, tags=TAGS)
def comment(proposal_id: int, body: CommentFields):
    return CommentOut.model_validate(satisfaction.comment(g.staff, proposal_id, body))


# --- the committee ------------------------------------------------------------------------------------------------

class CommitteeQuery(BaseModel):
    session_id: int | None = Field(default=None, ge=1, le=2**31 - 1)
    status: ProposalStatus | None = None


@bp.get("/officer/proposals")
@endpoint("全部提案（提案工作委员会）", query=CommitteeQuery, response=ProposalList, tags=TAGS)
def committee_list(query: CommitteeQuery):
    return ProposalList(items=[_summary(p) for p in review.for_committee(g.staff, query.session_id, query.status)])


@bp.post("/officer/proposals/<int:proposal_id>/accept")
@endpoint("立案（按会议编号）", response=ProposalDetail, tags=TAGS)
def accept(proposal_id: int):
    return _detail(review.accept(g.staff, proposal_id))


@bp.post("/officer/proposals/<int:proposal_id>/merge")
@endpoint("并案（并入本次会议另一件已立案的提案；提案人和附议人成为其共同提案人）", body=MergeFields,
          response=ProposalDetail, tags=TAGS)
def merge(proposal_id: int, body: MergeFields):
    return _detail(review.merge(g.staff, proposal_id, body))


@bp.post("/officer/proposals/<int:proposal_id>/opinion")
@endpoint("转为意见建议（转有关部门，不作为正式提案）", body=ForwardFields, response=ProposalDetail, tags=TAGS)
def forward_as_opinion(proposal_id: int, body: ForwardFields):
    return _detail(review.forward_as_opinion(g.staff, proposal_id, body))


@bp.post("/officer/proposals/<int:proposal_id>/reject")
@endpoint("不予立案（说明原因）", body=ReasonFields, response=ProposalDetail, tags=TAGS)
def reject(proposal_id: int, body: ReasonFields):
    return _detail(review.reject(g.staff, proposal_id, body))


@bp.post("/officer/proposals/<int:proposal_id>/withdraw")
@endpoint("应提案人申请撤回已有附议的提案（审查前）", body=ReasonFields, response=ProposalDetail, tags=TAGS)
def withdraw_for_author(proposal_id: int, body: ReasonFields):
    return _detail(review.withdraw_for_author(g.staff, proposal_id, body))


@bp.post("/officer/proposals/<int:proposal_id>/assign")
@endpoint("交办（主办、协办部门和办理期限；退办后重新交办）", body=AssignFields, response=ProposalDetail, tags=TAGS)
def assign(proposal_id: int, body: AssignFields):
    return _detail(handling.assign(g.staff, proposal_id, body))


class AssignmentRow(HandlingOut):
    proposal_id: int
    number: str | None = Field(default=None, validation_alias=AliasPath("proposal", "number"))
    title: str = Field(validation_alias=AliasPath("proposal", "title"))

    @computed_field(description="超过办理期限的天数（尚未办理时）")
    @property
    def days_overdue(self) -> int:
        late = (clock.today() - self.deadline).days
        return late if self.status is AssignmentStatus.PENDING and late > 0 else 0


class AssignmentList(BaseModel):
    items: list[AssignmentRow]


def _rows(assignments) -> AssignmentList:
    return AssignmentList(items=[AssignmentRow.model_validate(a) for a in assignments])


@bp.get("/officer/proposals/overdue")
@endpoint("超期未办理的提案（按部门）", response=AssignmentList, tags=TAGS)
def overdue():
    return _rows(handling.overdue(g.staff))


# --- the departments' liaisons ----------------------------------------------------------------------------------

@bp.get("/officer/proposals/assigned")
@endpoint("交本部门办理的提案（部门提案联络人）", response=AssignmentList, tags=TAGS)
def assigned():
    return _rows(handling.assigned_to(g.staff))


@bp.post("/officer/proposals/<int:proposal_id>/assignments/<int:assignment_id>/return")
@endpoint("退办（交办后规定天数内，说明原因）", body=ReasonFields, response=ProposalDetail, tags=TAGS)
def send_back(proposal_id: int, assignment_id: int, body: ReasonFields):
    return _detail(handling.send_back(g.staff, proposal_id, assignment_id, body))


@bp.post("/officer/proposals/<int:proposal_id>/assignments/<int:assignment_id>/opinion")
@endpoint("提交协办意见（给主办部门）", body=OpinionFields, response=ProposalDetail, tags=TAGS)
def give_opinion(proposal_id: int, assignment_id: int, body: OpinionFields):
    return _detail(handling.give_opinion(g.staff, proposal_id, assignment_id, body))


@bp.post("/officer/proposals/<int:proposal_id>/assignments/<int:assignment_id>/attachments")
@endpoint("上传答复附件（主办部门，答复之前；图片或 PDF，multipart 字段名 file）", response=FileOut, status=201,
          tags=TAGS, upload="file")
def attach_to_answer(proposal_id: int, assignment_id: int):
    return _file(files.attach_to_answer(g.staff, proposal_id, assignment_id, *uploaded_file()))


@bp.post("/officer/proposals/<int:proposal_id>/assignments/<int:assignment_id>/answer")
@endpoint("答复（主办部门：答复内容和等级 A/B/C/D）", body=AnswerFields, response=ProposalDetail, tags=TAGS)
def answer(proposal_id: int, assignment_id: int, body: AnswerFields):
    return _detail(handling.answer(g.staff, proposal_id, assignment_id, body))


# --- the congress's frame: terms, sessions, representatives, committee, departments --------------------------------

class TermOut(BaseModel):
    model_config = READS_RECORDS
    id: int
    name: str
    starts_on: date
    ends_on: date


class TermList(BaseModel):
    items: list[TermOut]


class PersonOut(BaseModel):
    model_config = READS_RECORDS
    employee_no: str
    name: str


class PeopleList(BaseModel):
    items: list[PersonOut]


class Granted(BaseModel):
    granted: int = Field(description="新授予的人数（已是代表的不重复计算）")


@bp.get("/officer/proposals/terms")
@endpoint("教代会届次", response=TermList, tags=TAGS)
def terms():
    return TermList(items=[TermOut.model_validate(t) for t in congress.all_terms(g.staff)])


@bp.post("/officer/proposals/terms")
@endpoint("新建届次", body=TermFields, response=TermOut, status=201, tags=TAGS)
def create_term(body: TermFields):
    return TermOut.model_validate(congress.create_term(g.staff, body))


@bp.post("/officer/proposals/sessions")
@endpoint("新建年度会议及提案征集期（默认现在开始，会议前 15 天截止）", body=SessionFields, response=SessionOut,
          status=201, tags=TAGS)
def create_session(body: SessionFields):
    return SessionOut.model_validate(congress.create_session(g.staff, body))


@bp.patch("/officer/proposals/sessions/<int:session_id>")
@endpoint("修改会议名称、日期或征集期（征集结束前）", body=SessionEditFields, response=SessionOut, tags=TAGS)
def edit_session(session_id: int, body: SessionEditFields):
    return SessionOut.model_validate(congress.edit_session(g.staff, session_id, body))


@bp.get("/officer/proposals/terms/<int:term_id>/representatives")
@endpoint("本届代表名单", response=PeopleList, tags=TAGS)
def representatives(term_id: int):
    return PeopleList(items=[PersonOut.model_validate(s) for s in congress.representatives(g.staff, term_id)])


@bp.post("/officer/proposals/terms/<int:term_id>/representatives")
@endpoint("导入代表名单（工号列表；有不在名册的工号则全部不导入）", body=PeopleFields, response=Granted, tags=TAGS)
def add_representatives(term_id: int, body: PeopleFields):
    return Granted(granted=congress.add_representatives(g.staff, term_id, body))


@bp.delete("/officer/proposals/terms/<int:term_id>/representatives/<employee_no>")
@endpoint("取消代表资格", status=204, tags=TAGS)
def remove_representative(term_id: int, employee_no: str):
    congress.remove_representative(g.staff, term_id, employee_no)
    return Response(status=204)


@bp.get("/officer/proposals/committee")
@endpoint("提案工作委员会委员", response=PeopleList, tags=TAGS)
def committee():
    return PeopleList(items=[PersonOut.model_validate(s) for s in congress.committee(g.staff)])


@bp.put("/officer/proposals/committee/<employee_no>")
@endpoint("任命提案工作委员会委员（校工会）", status=204, tags=TAGS)
def appoint(employee_no: str):
    congress.set_committee_member(g.staff, employee_no, True)
    return Response(status=204)


@bp.delete("/officer/proposals/committee/<employee_no>")
@endpoint("免去提案工作委员会委员（校工会）", status=204, tags=TAGS)
def dismiss(employee_no: str):
    congress.set_committee_member(g.staff, employee_no, False)
    return Response(status=204)


class DepartmentOut(BaseModel):
    model_config = READS_RECORDS
    id: int
    name: str
    aliases: list[str] = Field(description="曾用名（导入时按原部门对应）")
    liaisons: list[PersonOut]


class DepartmentList(BaseModel):
    items: list[DepartmentOut]


def _departments(rows) -> list[DepartmentOut]:
    aliases = departments.aliases_of([d.id for d in rows])
    liaisons = congress.liaisons_by_department()
    return [DepartmentOut.model_validate(Merged(d, aliases=aliases.get(d.id, []), liaisons=[
        PersonOut.model_validate(s) for s in liaisons.get(d.id, [])])) for d in rows]


@bp.get("/officer/proposals/departments")
@endpoint("部门及其提案联络人", response=DepartmentList, tags=TAGS)
def department_list():
    return DepartmentList(items=_departments(congress.departments_for(g.staff)))


@bp.post("/officer/proposals/departments/<int:department_id>/rename")
@endpoint("部门更名（原名保留为曾用名，交办记录不变）", body=RenameFields, response=DepartmentOut, tags=TAGS)
def rename_department(department_id: int, body: RenameFields):
    return _departments([departments.rename(g.staff, department_id, body)])[0]


@bp.put("/officer/proposals/departments/<int:department_id>/liaisons/<employee_no>")
@endpoint("指定部门提案联络人（校工会）", status=204, tags=TAGS)
def appoint_liaison(department_id: int, employee_no: str):
    congress.set_liaison(g.staff, department_id, employee_no, True)
    return Response(status=204)


@bp.delete("/officer/proposals/departments/<int:department_id>/liaisons/<employee_no>")
@endpoint("取消部门提案联络人（校工会）", status=204, tags=TAGS)
def remove_liaison(department_id: int, employee_no: str):
    congress.set_liaison(g.staff, department_id, employee_no, False)
    return Response(status=204)


# --- the session's documents ------------------------------------------------------------------------------------

@bp.get("/officer/proposals/sessions/<int:session_id>/compilation.xlsx")
@endpoint("提案汇编（XLSX：每件立案提案及答复）", tags=TAGS)
def compilation_xlsx(session_id: int):
    session, data = documents.compilation_xlsx(g.staff, session_id)
    return file_download(io.BytesIO(data), f"{session.name}-提案汇编.xlsx", XLSX,
                         ascii_name=f"proposals-{session.year}.xlsx")


@bp.get("/officer/proposals/sessions/<int:session_id>/report.xlsx")
@endpoint("提案办理情况表（XLSX：立案号、案由、主办部门、答复等级、满意度）", tags=TAGS)
def report_xlsx(session_id: int):
    session, data = documents.report_xlsx(g.staff, session_id)
    return file_download(io.BytesIO(data), f"{session.name}-提案办理情况.xlsx", XLSX,
                         ascii_name=f"proposal-report-{session.year}.xlsx")


@bp.get("/officer/proposals/sessions/<int:session_id>/compilation.html")
@endpoint("提案汇编（打印页）", tags=TAGS)
def compilation_page(session_id: int):
    return Response(documents.printable(g.staff, session_id, "compilation"), mimetype="text/html")


@bp.get("/officer/proposals/sessions/<int:session_id>/report.html")
@endpoint("提案办理情况表（打印页）", tags=TAGS)
def report_page(session_id: int):
    return Response(documents.printable(g.staff, session_id, "report"), mimetype="text/html")
