"""The union's calendar: festival dates, statutory days off, notice plans and birthdays.

Pure functions over dates; no database, no Flask. Lunar dates come from lunar-python; statutory days off come
from chinese-calendar for the years it knows (the government's published schedules), otherwise from the
schedule config carries (`published`: occasion key -> (first, last)), otherwise from the occasion itself.

Notice planning rules:
- a notice is sent `lead_days` before the first day off of its occasion, or before the occasion day when it has
  no days off;
- occasions that overlap (their days off intersect, or one's day lies inside the other's days off, as 中秋
  inside the 国庆 week in 2025 and 2028) get ONE combined notice, sent on the earliest send date of its members,
  so no member's notice comes later than it would have come alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache

import chinese_calendar
from chinese_calendar import Holiday
from lunar_python import LunarYear, Solar

DaysOff = tuple[date, date]

# The occasions the union marks every year, in the order notices name them.
OCCASION_NAMES: dict[str, str] = {
    "new_year": "元旦",
    "spring_festival": "春节",
    "lantern": "元宵节",
    "womens_day": "三八妇女节",
    "labour_day": "五一劳动节",
    "dragon_boat": "端午节",
    "mid_autumn": "中秋节",
    "teachers_day": "教师节",
    "national_day": "国庆节",
    "double_ninth": "重阳节",
}

_SOLAR_DAYS: dict[str, tuple[int, int]] = {
    "new_year": (1, 1),
    "womens_day": (3, 8),
    "labour_day": (5, 1),
    "teachers_day": (9, 10),
    "national_day": (10, 1),
}
_LUNAR_DAYS: dict[str, tuple[int, int]] = {
    "spring_festival": (1, 1),
    "lantern": (1, 15),
    "dragon_boat": (5, 5),
    "qixi": (7, 7),
    "mid_autumn": (8, 15),
    "double_ninth": (9, 9),
}
# Occasions with statutory days off, and the holiday name chinese-calendar gives their days.
_STATUTORY: dict[str, Holiday] = {
    "new_year": Holiday.new_years_day,
    "spring_festival": Holiday.spring_festival,
    "labour_day": Holiday.labour_day,
    "dragon_boat": Holiday.dragon_boat_festival,
    "mid_autumn": Holiday.mid_autumn_festival,
    "national_day": Holiday.national_day,
}
# Days off counted when no schedule is known: the occasion itself, except the 国庆 week (10/1–10/7).
_DEFAULT_LENGTH: dict[str, int] = {"national_day": 7}


@dataclass(frozen=True)
class Occasion:
    key: str  # e.g. "mid_autumn"
    name: str  # e.g. "中秋节"
    day: date  # the day itself (solar)
    days_off: DaysOff | None  # the statutory holiday period containing it, if any


@dataclass(frozen=True)
class PlannedNotice:
    keys: tuple[str, ...]  # one key, or several combined occasions, in OCCASION_NAMES order
    name: str  # e.g. "中秋节、国庆节"
    send_date: date
    occasions: tuple[Occasion, ...]


# --- festivals -----------------------------------------------------------------------------------------------

def festival_date(year: int, key: str) -> date:
    """The solar date of an occasion (or of 除夕 / 七夕) in a solar year."""
    if key in _SOLAR_DAYS:
        return date(year, *_SOLAR_DAYS[key])
    if key in _LUNAR_DAYS:
        return _solar_of_lunar(year, *_LUNAR_DAYS[key])
    if key == "chuxi":  # the last day of the lunar year (12th month of 29 or 30 days): the eve of 春节
        return festival_date(year, "spring_festival") - timedelta(days=1)
    raise ValueError(f"unknown occasion key: {key!r}")


def occasions_for_year(year: int, published_days_off: dict[str, DaysOff] | None = None) -> list[Occasion]:
    """The union's occasions of a solar year, in OCCASION_NAMES order, with their days off."""
    return [
        Occasion(key, name, festival_date(year, key), statutory_days_off(year, key, published_days_off))
        for key, name in OCCASION_NAMES.items()
    ]


# --- statutory days off --------------------------------------------------------------------------------------

def statutory_days_off(year: int, key: str, published: dict[str, DaysOff] | None = None) -> DaysOff | None:
    """The days-off period (first, last) containing an occasion; None for occasions without days off.

    From chinese-calendar where it knows the year (the run of consecutive rest days containing the occasion,
    or adjacent to it); otherwise from `published`; otherwise the occasion itself (国庆: 10/1–10/7).
    """
    if key not in _STATUTORY:
        return None
    day = festival_date(year, key)
    if _package_knows(day):
        period = _package_days_off(day, _STATUTORY[key])
        if period is not None:
            return period
    if published and key in published:
        return _checked_period(key, published[key])
    return day, day + timedelta(days=_DEFAULT_LENGTH.get(key, 1) - 1)


def _package_knows(day: date) -> bool:
    try:
        chinese_calendar.get_holiday_detail(day)
    except NotImplementedError:
        return False
    return True


def _is_rest_day(day: date, holiday: Holiday | None = None) -> bool:
    """True on a day off (a named holiday or a weekend not worked); with `holiday`, only on that holiday."""
    try:
        is_holiday, name = chinese_calendar.get_holiday_detail(day)
    except NotImplementedError:  # a neighbouring year the package does not know
        return False
    return is_holiday and (holiday is None or name == holiday.value)


def _package_days_off(day: date, holiday: Holiday) -> DaysOff | None:
    one_day = timedelta(days=1)
    if _is_rest_day(day):
        anchor = day
    else:
        anchor = next((d for d in (day - one_day, day + one_day) if _is_rest_day(d, holiday)), None)
    if anchor is None:
        return None
    first = last = anchor
    while _is_rest_day(first - one_day):
        first -= one_day
    while _is_rest_day(last + one_day):
        last += one_day
    return first, last


def _checked_period(key: str, period: DaysOff) -> DaysOff:
    first, last = period
    if first > last:
        raise ValueError(f"published days off for {key!r} end before they start: {first} > {last}")
    return first, last


# --- notice plans --------------------------------------------------------------------------------------------

def plan_notices(year: int, lead_days: dict[str, int],
                 published_days_off: dict[str, DaysOff] | None = None) -> list[PlannedNotice]:
    """The notices of a year, by send date: one per occasion named in `lead_days`, overlapping ones combined.

    Occasions missing from `lead_days` get no notice. A send date may fall in the previous year (元旦).
    """
    _check_lead_days(lead_days)
    occasions = [o for o in occasions_for_year(year, published_days_off) if o.key in lead_days]
    notices = [_combined_notice(group, lead_days) for group in _overlapping_groups(occasions)]
    return sorted(notices, key=lambda n: (n.send_date, _order(n.keys[0])))


def _check_lead_days(lead_days: dict[str, int]) -> None:
    for key, days in lead_days.items():
        if key not in OCCASION_NAMES:
            raise ValueError(f"lead days given for an unknown occasion: {key!r}")
        if days < 0:
            raise ValueError(f"lead days for {key!r} must not be negative: {days}")


def overlaps(a: Occasion, b: Occasion) -> bool:
    """Whether two statutory holidays share days off, or one's day lies inside the other's days off. Occasions
    without days off (重阳 for retirees, 教师节) keep their own notice even inside the 国庆 week: their audience
    and wording are their own."""
    if not (a.days_off and b.days_off):
        return False
    if a.days_off[0] <= b.days_off[1] and b.days_off[0] <= a.days_off[1]:
        return True
    return _within(a.day, b.days_off) or _within(b.day, a.days_off)


def _within(day: date, period: DaysOff | None) -> bool:
    return period is not None and period[0] <= day <= period[1]


def _overlapping_groups(occasions: list[Occasion]) -> list[list[Occasion]]:
    """Occasions grouped so that overlap, applied transitively, never crosses two groups."""
    groups: list[list[Occasion]] = []
    for occasion in occasions:
        touching = [g for g in groups if any(overlaps(occasion, other) for other in g)]
        merged = [occasion] + [o for g in touching for o in g]
        groups = [g for g in groups if not any(g is t for t in touching)] + [merged]
    return groups


def _send_date(occasion: Occasion, lead: int) -> date:
    start = occasion.days_off[0] if occasion.days_off else occasion.day
    return start - timedelta(days=lead)


def _combined_notice(group: list[Occasion], lead_days: dict[str, int]) -> PlannedNotice:
    members = tuple(sorted(group, key=lambda o: _order(o.key)))
    return PlannedNotice(
        keys=tuple(o.key for o in members),
        name="、".join(o.name for o in members),
        send_date=min(_send_date(o, lead_days[o.key]) for o in members),
        occasions=members,
    )


def _order(key: str) -> int:
    return list(OCCASION_NAMES).index(key)


# --- birthdays -----------------------------------------------------------------------------------------------

def solar_birthday_in_year(birthday: date, year: int) -> date:
    """The solar birthday in a year; 29 February becomes 28 February in non-leap years."""
    try:
        return birthday.replace(year=year)
    except ValueError:  # 29 February in a non-leap year
        return date(year, 2, 28)


def solar_birthdays_on(day: date) -> list[tuple[int, int]]:
    """The (month, day) birthdays that fall on a solar day, per `solar_birthday_in_year`: on 28 February of a
    non-leap year, also 29 February."""
    pairs = [(day.month, day.day)]
    if (day.month, day.day) == (2, 28) and solar_birthday_in_year(date(2000, 2, 29), day.year) == day:
        pairs.append((2, 29))
    return pairs


def lunar_date_of(day: date) -> tuple[int, int, int, bool]:
    """(lunar_year, month, day, is_leap_month) of a solar day."""
    for lunar_year in (day.year, day.year - 1):
        for month, first, count in _lunar_months(lunar_year):
            if first <= day < first + timedelta(days=count):
                return lunar_year, abs(month), (day - first).days + 1, month < 0
    raise ValueError(f"{day} is outside the lunar calendar's range")


def lunar_month_day(birthday: date) -> tuple[int, int]:
    """(month, day) of a solar birth date in the lunar calendar; a leap month counts as the ordinary month."""
    _, month, day, _ = lunar_date_of(birthday)
    return month, day


def lunar_birthday_in_year(birthday: date, lunar_year: int) -> date:
    """The solar date of the lunar birthday in a lunar year: always in the ordinary (not leap) month;
    a 30th the month lacks that year becomes the 29th."""
    month, day = lunar_month_day(birthday)
    return _solar_of_lunar(lunar_year, month, min(day, _month_length(lunar_year, month)))


def lunar_birthdays_on(day: date) -> list[tuple[int, int]]:
    """The (lunar month, day) birthdays that fall on a solar day, per `lunar_birthday_in_year`.

    None in a leap month (its birthdays were kept in the ordinary month); on the 29th, the last day of a
    29-day month, also the 30th.
    """
    lunar_year, month, lunar_day, is_leap = lunar_date_of(day)
    if is_leap:
        return []
    pairs = [(month, lunar_day)]
    if lunar_day == 29 and _month_length(lunar_year, month) == 29:
        pairs.append((month, 30))
    return pairs


def _month_length(lunar_year: int, month: int) -> int:
    """Days in a lunar month (a negative month is the leap month)."""
    return _lunar_month(lunar_year, month)[2]


def _solar_of_lunar(lunar_year: int, month: int, day: int) -> date:
    _, first, count = _lunar_month(lunar_year, month)
    if not 1 <= day <= count:
        raise ValueError(f"lunar {lunar_year}-{month} has {count} days, not a day {day}")
    return first + timedelta(days=day - 1)


def _lunar_month(lunar_year: int, month: int) -> tuple[int, date, int]:
    found = next((m for m in _lunar_months(lunar_year) if m[0] == month), None)
    if found is None:
        raise ValueError(f"lunar year {lunar_year} has no month {month}")
    return found


@lru_cache(maxsize=512)
def _lunar_months(lunar_year: int) -> tuple[tuple[int, date, int], ...]:
    """The months of a lunar year from lunar-python: (month, first solar day, day count), leap month negative.

    Cached: lunar-python recomputes a whole year whenever the year it last used changes, which made
    converting many birth dates of different years slow.
    """
    months = LunarYear.fromYear(lunar_year).getMonthsInYear()
    return tuple((m.getMonth(), _date_of_julian_day(m.getFirstJulianDay()), m.getDayCount()) for m in months)


def _date_of_julian_day(julian_day: float) -> date:
    solar = Solar.fromJulianDay(julian_day)
    return date(solar.getYear(), solar.getMonth(), solar.getDay())


def months_after(day: date, months: int) -> date:
    """The same day `months` later, or that month's last day (01-31 + 1 month → 02-28)."""
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    for last in (31, 30, 29, 28):
        try:
            return date(year, month, min(day.day, last))
        except ValueError:
            continue
    raise AssertionError("unreachable")
