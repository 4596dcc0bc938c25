"""Audiences resolve to exactly the staff they describe, in one query."""

from __future__ import annotations

import pytest

from app.services.audiences import Audience, count_audience, includes, resolve_audience
from models import Gender, StaffStatus


@pytest.fixture
def roster_people(make_staff, grant):
    people = {
        "f_active_a": make_staff("A1", sub_union="甲分工会", gender=Gender.FEMALE),
        "m_active_a": make_staff("A2", sub_union="甲分工会", gender=Gender.MALE),
        "f_retired_b": make_staff("B1", sub_union="乙分工会", gender=Gender.FEMALE, status=StaffStatus.RETIRED),
        "m_retired_b": make_staff("B2", sub_union="乙分工会", gender=Gender.MALE, status=StaffStatus.RETIRED),
        "f_left_a": make_staff("A3", sub_union="甲分工会", gender=Gender.FEMALE, status=StaffStatus.LEFT),
        "m_active_c": make_staff("C1", sub_union="丙分工会", gender=Gender.MALE),
    }
    grant(people["m_active_c"], "sub_union_officer", sub_union="丙分工会")
    return people


def _sub_union_ids(*names):
    from app.services.roster import ensure_sub_union

    return [ensure_sub_union(n)[0].id for n in names]


def _numbers(staff):
    return sorted(s.employee_no for s in staff)


@pytest.mark.parametrize("criteria, expected", [
    ({}, ["A1", "A2", "B1", "B2", "C1"]),
    ({"statuses": ["retired"]}, ["B1", "B2"]),
    ({"statuses": ["active"], "genders": ["female"]}, ["A1"]),
    ({"genders": ["female"]}, ["A1", "B1"]),
    ({"roles": ["sub_union_officer"]}, ["C1"]),
    ({"statuses": ["left"]}, []),      # nobody who has left is ever addressed
])
def test_audience_resolves_to_exactly_its_staff(app_ctx, roster_people, count_queries, criteria, expected):
    audience = Audience.model_validate(criteria)
    with count_queries() as queries:
        staff = resolve_audience(audience)
    assert _numbers(staff) == expected
    assert queries.count == 1
    assert count_audience(audience) == len(expected)
    assert all(includes(audience, s) for s in staff)


def test_audience_by_sub_unions(app_ctx, roster_people, count_queries):
    audience = Audience(sub_union_ids=_sub_union_ids("甲分工会", "丙分工会"))
    with count_queries() as queries:
        staff = resolve_audience(audience)
    assert _numbers(staff) == ["A1", "A2", "C1"]
    assert queries.count == 1


def test_includes_agrees_with_the_query_for_everyone(app_ctx, roster_people):
    from sqlalchemy import select

    from app.extensions import db
    from models import Staff

    everyone = db.session.scalars(select(Staff)).unique().all()
    for criteria in ({}, {"statuses": ["retired"]}, {"genders": ["female"]}, {"roles": ["sub_union_officer"]},
                     {"sub_union_ids": _sub_union_ids("乙分工会")}):
        audience = Audience.model_validate(criteria)
        resolved = {s.id for s in resolve_audience(audience)}
        assert {s.id for s in everyone if includes(audience, s)} == resolved


def test_audience_rejects_unknown_criteria():
    with pytest.raises(ValueError):
        Audience.model_validate({"departments": ["x"]})
