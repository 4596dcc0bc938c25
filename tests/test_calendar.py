"""The union's calendar: festival dates against the reference table, days off, notice plans, birthdays."""

from __future__ import annotations

import csv
from datetime import date, timedelta
from pathlib import Path

import pytest
from lunar_python import Lunar, Solar

from app.services.calendar import (
    OCCASION_NAMES,
    Occasion,
    festival_date,
    lunar_birthday_in_year,
    lunar_birthdays_on,
    lunar_date_of,
    lunar_month_day,
    occasions_for_year,
    overlaps,
    plan_notices,
    solar_birthday_in_year,
    solar_birthdays_on,
    statutory_days_off,
)

pytestmark = pytest.mark.backend_independent

REFERENCE = Path(__file__).parent / "data" / "lunar-festivals-2025-2030.csv"
REFERENCE_KEYS = {"chuxi": "chuxi", "chunjie": "spring_festival", "yuanxiao": "lantern", "duanwu": "dragon_boat",
                  "qixi": "qixi", "zhongqiu": "mid_autumn", "chongyang": "double_ninth"}
LAST_KNOWN_YEAR = 2026  # chinese-calendar 1.11.0 knows 2004-2026
ALL_THREE_DAYS = {key: 3 for key in OCCASION_NAMES}


@pytest.fixture(autouse=True)
def clean_state():
    """Pure functions: no database or Redis to clean (overrides the suite's fixture of the same name)."""
    yield


def _reference_rows() -> list[dict[str, str]]:
    with REFERENCE.open(encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _solar(lunar_year: int, month: int, day: int) -> date:
    """The solar date of a lunar date (negative month: leap month), straight from lunar-python."""
    s = Lunar.fromYmd(lunar_year, month, day).getSolar()
    return date(s.getYear(), s.getMonth(), s.getDay())


def _notice_for(notices, key):
    return next(n for n in notices if key in n.keys)


# --- festival dates ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("row", _reference_rows(), ids=lambda r: f"{r['year']}-{r['occasion']}")
def test_festival_date_matches_reference_row(row):
    expected = date.fromisoformat(row["solar_date"])
    assert festival_date(int(row["year"]), REFERENCE_KEYS[row["occasion"]]) == expected


def test_reference_table_covers_every_lunar_festival_2025_to_2030():
    rows = _reference_rows()
    assert {(int(r["year"]), r["occasion"]) for r in rows} == {
        (y, o) for y in range(2025, 2031) for o in REFERENCE_KEYS}


def test_chuxi_is_last_day_of_twelfth_lunar_month_of_29_or_30_days():
    lengths = set()
    for year in range(2004, 2051):
        lunar_year, month, day, is_leap = lunar_date_of(festival_date(year, "chuxi"))
        assert (lunar_year, month, is_leap) == (year - 1, 12, False)
        assert lunar_date_of(festival_date(year, "chuxi") + timedelta(days=1)) == (year, 1, 1, False)
        lengths.add(day)
    assert lengths == {29, 30}


def test_solar_occasions_fall_on_their_fixed_days():
    assert [festival_date(2027, k) for k in ("new_year", "womens_day", "labour_day", "teachers_day",
                                             "national_day")] == [
        date(2027, 1, 1), date(2027, 3, 8), date(2027, 5, 1), date(2027, 9, 10), date(2027, 10, 1)]


def test_festival_date_rejects_unknown_key():
    with pytest.raises(ValueError, match="unknown occasion key"):
        festival_date(2025, "qingming")


def test_occasions_for_year_lists_the_ten_occasions_with_chinese_names():
    occasions = occasions_for_year(2025)
    assert [o.key for o in occasions] == list(OCCASION_NAMES)
    assert {o.key: o.name for o in occasions}["mid_autumn"] == "中秋节"
    assert {o.key: o.day for o in occasions}["double_ninth"] == date(2025, 10, 29)


# --- statutory days off --------------------------------------------------------------------------------------

def test_package_knows_years_up_to_2026_only():
    assert statutory_days_off(LAST_KNOWN_YEAR, "labour_day") == (date(2026, 5, 1), date(2026, 5, 5))
    assert statutory_days_off(LAST_KNOWN_YEAR + 1, "labour_day") == (date(2027, 5, 1), date(2027, 5, 1))


def test_spring_festival_days_off_start_before_the_festival():
    assert statutory_days_off(2025, "spring_festival") == (date(2025, 1, 28), date(2025, 2, 4))
    assert statutory_days_off(2026, "spring_festival") == (date(2026, 2, 15), date(2026, 2, 23))


def test_national_day_and_mid_autumn_share_one_period_in_2025():
    period = (date(2025, 10, 1), date(2025, 10, 8))
    assert statutory_days_off(2025, "national_day") == period
    assert statutory_days_off(2025, "mid_autumn") == period


def test_days_off_include_the_weekend_joined_to_the_holiday():
    # 2024: 端午 6/10 (Monday) "与周末连休"; 元旦 2023-12-30 to 2024-01-01.
    assert statutory_days_off(2024, "dragon_boat") == (date(2024, 6, 8), date(2024, 6, 10))
    assert statutory_days_off(2024, "new_year") == (date(2023, 12, 30), date(2024, 1, 1))


def test_occasions_without_statutory_days_off_have_none():
    for year in (2025, 2030):
        days_off = {o.key: o.days_off for o in occasions_for_year(year)}
        assert [days_off[k] for k in ("lantern", "womens_day", "teachers_day", "double_ninth")] == [None] * 4


def test_beyond_package_national_day_counts_as_first_week_of_october_and_others_as_the_day():
    assert statutory_days_off(2030, "national_day") == (date(2030, 10, 1), date(2030, 10, 7))
    assert statutory_days_off(2030, "spring_festival") == (date(2030, 2, 3), date(2030, 2, 3))


def test_beyond_package_published_days_off_are_used():
    published = {"spring_festival": (date(2030, 1, 31), date(2030, 2, 8))}
    assert statutory_days_off(2030, "spring_festival", published) == (date(2030, 1, 31), date(2030, 2, 8))


def test_package_schedule_wins_over_published_for_a_year_it_knows():
    published = {"spring_festival": (date(2026, 2, 14), date(2026, 2, 22))}
    assert statutory_days_off(2026, "spring_festival", published) == (date(2026, 2, 15), date(2026, 2, 23))


def test_published_days_off_ending_before_they_start_are_rejected():
    with pytest.raises(ValueError, match="end before they start"):
        statutory_days_off(2030, "labour_day", {"labour_day": (date(2030, 5, 5), date(2030, 5, 1))})


# --- notice plans --------------------------------------------------------------------------------------------

def test_2025_mid_autumn_inside_national_day_days_off_gives_one_combined_notice():
    notices = plan_notices(2025, {"mid_autumn": 5, "national_day": 3})
    assert len(notices) == 1
    notice = notices[0]
    assert notice.keys == ("mid_autumn", "national_day")
    assert notice.name == "中秋节、国庆节"
    assert [o.day for o in notice.occasions] == [date(2025, 10, 6), date(2025, 10, 1)]
    assert notice.send_date == date(2025, 9, 26)  # earliest member: 10/1 - 5 days


def test_2028_mid_autumn_on_october_3_lies_inside_default_national_day_week_and_is_combined():
    notice = _notice_for(plan_notices(2028, ALL_THREE_DAYS), "mid_autumn")
    assert notice.keys == ("mid_autumn", "national_day")
    assert notice.occasions[0].day == date(2028, 10, 3)
    assert notice.occasions[1].days_off == (date(2028, 10, 1), date(2028, 10, 7))
    assert notice.send_date == date(2028, 9, 28)


def test_combined_notice_is_sent_on_earliest_member_send_date():
    published = {"national_day": (date(2029, 9, 29), date(2029, 10, 6)),
                 "mid_autumn": (date(2029, 9, 22), date(2029, 9, 29))}
    notice = _notice_for(plan_notices(2029, {"mid_autumn": 1, "national_day": 10}, published), "national_day")
    assert notice.keys == ("mid_autumn", "national_day")  # the periods share 9/29
    assert notice.send_date == date(2029, 9, 19)  # national_day: 9/29 - 10 days, earlier than 9/22 - 1


def test_separate_occasions_get_separate_notices_sorted_by_send_date():
    notices = plan_notices(2026, ALL_THREE_DAYS)
    assert sorted(n.keys for n in notices) == sorted((k,) for k in OCCASION_NAMES)
    assert [n.send_date for n in notices] == sorted(n.send_date for n in notices)


def test_lead_days_count_back_from_first_day_off_where_package_knows_the_year():
    notice = _notice_for(plan_notices(2026, {"spring_festival": 5}), "spring_festival")
    assert notice.occasions[0].day == date(2026, 2, 17)
    assert notice.send_date == date(2026, 2, 15) - timedelta(days=5)


def test_lead_days_count_back_from_occasion_day_beyond_package():
    notice = _notice_for(plan_notices(2030, {"spring_festival": 5}), "spring_festival")
    assert notice.send_date == date(2030, 2, 3) - timedelta(days=5)


def test_lead_days_count_back_from_published_first_day_off():
    published = {"spring_festival": (date(2030, 2, 2), date(2030, 2, 8))}
    notice = _notice_for(plan_notices(2030, {"spring_festival": 5}, published), "spring_festival")
    assert notice.send_date == date(2030, 2, 2) - timedelta(days=5)


def test_lead_days_count_back_from_occasion_day_without_days_off():
    notice = _notice_for(plan_notices(2025, {"womens_day": 2}), "womens_day")
    assert notice.send_date == date(2025, 3, 6)


def test_new_year_notice_may_be_sent_in_previous_year():
    notice = _notice_for(plan_notices(2024, {"new_year": 3}), "new_year")
    assert notice.send_date == date(2023, 12, 27)  # days off start 2023-12-30


def test_occasions_missing_from_lead_days_get_no_notice():
    assert [n.keys for n in plan_notices(2025, {"labour_day": 1})] == [("labour_day",)]


def test_lead_days_for_unknown_occasion_or_negative_are_rejected():
    with pytest.raises(ValueError, match="unknown occasion"):
        plan_notices(2025, {"chuxi": 1})
    with pytest.raises(ValueError, match="negative"):
        plan_notices(2025, {"labour_day": -1})


def test_occasions_overlap_when_one_day_lies_inside_the_others_days_off():
    national = Occasion("national_day", "国庆节", date(2028, 10, 1), (date(2028, 10, 1), date(2028, 10, 7)))
    inside = Occasion("mid_autumn", "中秋节", date(2028, 10, 3), (date(2028, 10, 3), date(2028, 10, 3)))
    after = Occasion("mid_autumn", "中秋节", date(2028, 10, 8), (date(2028, 10, 8), date(2028, 10, 8)))
    no_days_off = Occasion("double_ninth", "重阳节", date(2028, 10, 7), None)
    assert overlaps(national, inside) and overlaps(inside, national)
    assert not overlaps(national, after)
    assert not overlaps(national, no_days_off)


# --- birthdays -----------------------------------------------------------------------------------------------

def _days(first: date, last: date, step: int = 1):
    while first <= last:
        yield first
        first += timedelta(days=step)


def test_lunar_date_of_agrees_with_lunar_python_solar_to_lunar():
    days = [*_days(date(2025, 1, 1), date(2025, 12, 31)), *_days(date(1940, 1, 3), date(2099, 12, 31), 29)]
    for day in days:
        lunar = Solar.fromYmd(day.year, day.month, day.day).getLunar()
        expected = (lunar.getYear(), abs(lunar.getMonth()), lunar.getDay(), lunar.getMonth() < 0)
        assert lunar_date_of(day) == expected, day


def test_birth_in_leap_month_counts_as_ordinary_month():
    born = _solar(2023, -2, 10)  # 闰二月初十
    assert lunar_date_of(born) == (2023, 2, 10, True)
    assert lunar_month_day(born) == (2, 10)
    assert lunar_birthday_in_year(born, 2024) == _solar(2024, 2, 10)


def test_birthday_in_year_with_leap_month_falls_in_ordinary_month():
    born = _solar(1990, 6, 10)
    assert lunar_birthday_in_year(born, 2025) == _solar(2025, 6, 10) == date(2025, 7, 4)  # not 闰六月 8/3
    born = _solar(1990, 5, 20)
    assert lunar_birthday_in_year(born, 2028) == _solar(2028, 5, 20)  # 2028 has 闰五月


def test_leap_month_30th_birthday_uses_ordinary_month_30th_when_it_exists():
    born = _solar(2017, -6, 30)  # 2017: 闰六月 has 30 days, 六月 29
    assert lunar_month_day(born) == (6, 30)
    assert lunar_birthday_in_year(born, 2025) == _solar(2025, 6, 30)


def test_lunar_30th_becomes_29th_in_year_whose_month_has_29_days():
    born = _solar(2023, 12, 30)  # 2024-02-09
    assert born == date(2024, 2, 9)
    assert lunar_birthday_in_year(born, 2024) == _solar(2024, 12, 29) == date(2025, 1, 28)  # 2024: 腊月 29 days
    assert lunar_birthday_in_year(born, 2029) == _solar(2029, 12, 30)  # 2029: 腊月 30 days


def test_solar_29_february_becomes_28_february_in_non_leap_year():
    assert solar_birthday_in_year(date(2000, 2, 29), 2025) == date(2025, 2, 28)
    assert solar_birthday_in_year(date(2000, 2, 29), 2028) == date(2028, 2, 29)
    assert solar_birthday_in_year(date(1990, 7, 15), 2025) == date(2025, 7, 15)


def test_lunar_birthdays_on_leap_month_day_is_empty():
    assert lunar_birthdays_on(_solar(2025, -6, 10)) == []
    assert lunar_birthdays_on(_solar(2025, 6, 10)) == [(6, 10)]


def test_lunar_birthdays_on_29th_of_29_day_month_includes_30th():
    assert lunar_birthdays_on(date(2025, 1, 28)) == [(12, 29), (12, 30)]  # 2024 腊月 has 29 days
    assert lunar_birthdays_on(_solar(2029, 12, 29)) == [(12, 29)]  # 2029 腊月 has 30 days
    assert lunar_birthdays_on(_solar(2029, 12, 30)) == [(12, 30)]


def _sample_births() -> list[date]:
    """One solar birth date for every lunar (month, day), plus people born in leap months."""
    births: dict[tuple[int, int], date] = {}
    for day in _days(date(1980, 1, 1), date(1989, 12, 31)):
        births.setdefault(lunar_month_day(day), day)
    assert len(births) == 12 * 30
    leap_born = [_solar(2017, -6, 30), _solar(2023, -2, 29), _solar(2020, -4, 1), _solar(2025, -6, 15)]
    return list(births.values()) + leap_born


def test_lunar_birthdays_on_agrees_with_lunar_birthday_in_year_every_day_2025_to_2027():
    births = _sample_births()
    pairs = [lunar_month_day(b) for b in births]
    birthdays = [{lunar_birthday_in_year(b, y) for y in range(2024, 2028)} for b in births]
    for day in _days(date(2025, 1, 1), date(2027, 12, 31)):
        on_day = set(lunar_birthdays_on(day))
        for pair, days in zip(pairs, birthdays):
            assert (day in days) == (pair in on_day), (day, pair)


def test_double_ninth_inside_the_national_day_week_keeps_its_own_notice():
    # 2030: 重阳 is 5 October, inside the default 国庆 days off; it is for retirees and has no days off itself
    plans = plan_notices(2030, {"national_day": 1, "double_ninth": 0})
    assert sorted(p.keys for p in plans) == [("double_ninth",), ("national_day",)]


def test_solar_birthdays_on_agrees_with_solar_birthday_in_year_every_day_2025_to_2028():
    births = [date(2000, 2, 29), date(1999, 2, 28), date(1990, 3, 1), date(1985, 12, 31), date(1970, 1, 1)]
    birthdays = [{solar_birthday_in_year(b, y) for y in range(2025, 2029)} for b in births]
    for day in _days(date(2025, 1, 1), date(2028, 12, 31)):
        on_day = set(solar_birthdays_on(day))
        for birth, days in zip(births, birthdays):
            assert (day in days) == ((birth.month, birth.day) in on_day), (day, birth)
