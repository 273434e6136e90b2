"""The legal calendar: period ends under Regulation 1182/71 and working-day offsets."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from app.calendar import LegalCalendar, Period, Unit

AMSTERDAM = ZoneInfo("Europe/Amsterdam")


@pytest.fixture(autouse=True)
def _clean_tables() -> Iterator[None]:
    """Replace conftest's cleanup: it builds the app and a database, not needed here."""
    yield


@pytest.fixture(scope="module")
def nl() -> LegalCalendar:
    return LegalCalendar()


def at(year: int, month: int, day: int, hour: int = 10, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=AMSTERDAM)


def end_of(year: int, month: int, day: int) -> datetime:
    return datetime(year, month, day, 23, 59, 59, 999999, tzinfo=AMSTERDAM)


@pytest.mark.parametrize(
    ("event_at", "period", "expected"),
    [
        (at(2025, 1, 31), "P1M", end_of(2025, 2, 28)),
        (at(2028, 1, 31), "P1M", end_of(2028, 2, 29)),
        (at(2026, 3, 31), "1 month", end_of(2026, 4, 30)),
        (at(2027, 1, 15), "P1M", end_of(2027, 2, 15)),
        (at(2026, 2, 14), "P1M", end_of(2026, 3, 16)),
        (at(2026, 1, 15), "P1M", end_of(2026, 2, 16)),
        (at(2026, 3, 27), "P1M", end_of(2026, 4, 28)),
        (at(2026, 3, 25), "P1M", end_of(2026, 4, 28)),
        (at(2025, 11, 25), "P1M", end_of(2025, 12, 29)),
        (at(2026, 11, 25), "P1M", end_of(2026, 12, 28)),
        (at(2026, 3, 6), "P1M", end_of(2026, 4, 7)),
        (at(2026, 3, 3), "P1M", end_of(2026, 4, 7)),
        (at(2025, 4, 5), "P1M", end_of(2025, 5, 6)),
        (at(2026, 4, 5), "P1M", end_of(2026, 5, 5)),
        (at(2026, 1, 15), "P3M", end_of(2026, 4, 15)),
        (at(2026, 1, 31), "3 months", end_of(2026, 4, 30)),
        (at(2028, 2, 29), "P1Y", end_of(2029, 2, 28)),
        (at(2026, 1, 12), "P10D", end_of(2026, 1, 22)),
        (at(2026, 1, 12, 23, 59), "10 days", end_of(2026, 1, 22)),
        (
            datetime(2026, 1, 12, 23, 30, tzinfo=UTC),
            "P10D",
            end_of(2026, 1, 23),
        ),
        (at(2026, 1, 14), "P2W", end_of(2026, 1, 28)),
        (at(2026, 1, 16), "P1D", end_of(2026, 1, 19)),
        (at(2026, 1, 16), "P2D", end_of(2026, 1, 20)),
        (at(2026, 12, 24), "2 days", end_of(2026, 12, 29)),
        (at(2026, 1, 14), "P2D", end_of(2026, 1, 16)),
        (at(2026, 1, 16, 15, 30), "PT72H", at(2026, 1, 19, 15, 30)),
        (at(2026, 12, 24, 9), "72 hours", at(2026, 12, 27, 9)),
        (at(2026, 10, 23, 12), "PT72H", at(2026, 10, 26, 11)),
        (at(2026, 3, 27, 12), "PT72H", at(2026, 3, 30, 13)),
    ],
    ids=[
        "1-month-from-31-jan-non-leap-ends-28-feb",
        "1-month-from-31-jan-leap-2028-ends-29-feb",
        "1-month-from-31-mar-ends-30-apr",
        "1-month-from-15-jan-ends-on-working-day-15-feb",
        "end-on-saturday-rolls-to-monday",
        "end-on-sunday-rolls-to-monday",
        "end-on-kings-day-monday-rolls-to-tuesday",
        "end-on-saturday-before-kings-day-rolls-past-it-to-tuesday",
        "end-on-christmas-thursday-rolls-past-boxing-day-and-weekend",
        "end-on-christmas-friday-2026-rolls-past-boxing-day-saturday-to-monday",
        "end-on-easter-monday-rolls-to-tuesday",
        "good-friday-is-a-nl-public-holiday-in-holidays-0.109-so-rolls-to-tuesday",
        "liberation-day-2025-is-public-in-holidays-0.109-lustrum-year-rolls",
        "liberation-day-2026-is-a-working-day-in-holidays-0.109-not-a-lustrum",
        "3-months-extension-from-15-jan",
        "3-months-from-31-jan-ends-30-apr",
        "1-year-from-29-feb-ends-28-feb",
        "10-days-from-monday-event-day-not-counted",
        "10-days-from-monday-late-evening-same-end",
        "event-day-is-taken-in-the-organisations-zone",
        "2-weeks-ends-on-same-weekday",
        "1-day-from-friday-rolls-to-monday-art-3-5-not-applicable",
        "2-days-from-friday-art-3-5-needs-two-working-days-tuesday",
        "2-days-from-christmas-eve-art-3-5-after-roll-over",
        "2-days-midweek-already-two-working-days",
        "72-hours-from-friday-afternoon-ends-monday-afternoon-not-rolled",
        "72-hours-over-christmas-ends-on-sunday-not-rolled",
        "72-hours-across-october-dst-change-wall-clock-one-hour-less",
        "72-hours-across-march-dst-change-wall-clock-one-hour-more",
    ],
)
def test_period_end(
    nl: LegalCalendar, event_at: datetime, period: str, expected: datetime
) -> None:
    end = nl.period_end(event_at, period)

    assert end == expected
    assert end.tzinfo == AMSTERDAM


@pytest.mark.parametrize(
    ("event_at", "wall_clock_hours", "expected_offset"),
    [
        (at(2026, 10, 23, 12), 71, timedelta(hours=1)),
        (at(2026, 3, 27, 12), 73, timedelta(hours=2)),
    ],
    ids=["october-ends-in-winter-time", "march-ends-in-summer-time"],
)
def test_hours_are_real_elapsed_hours_across_dst(
    nl: LegalCalendar,
    event_at: datetime,
    wall_clock_hours: int,
    expected_offset: timedelta,
) -> None:
    end = nl.period_end(event_at, "PT72H")

    # Subtracting aware datetimes of one zone compares wall clocks; UTC gives real time.
    assert end.astimezone(UTC) - event_at.astimezone(UTC) == timedelta(hours=72)
    assert end - event_at == timedelta(hours=wall_clock_hours)
    assert end.utcoffset() == expected_offset


def test_period_end_accepts_a_parsed_period(nl: LegalCalendar) -> None:
    assert nl.period_end(at(2026, 3, 31), Period(1, Unit.MONTHS)) == end_of(2026, 4, 30)


def test_period_end_is_in_the_organisations_zone_whatever_the_input_zone(
    nl: LegalCalendar,
) -> None:
    end = nl.period_end(datetime(2026, 1, 16, 14, 30, tzinfo=UTC), "PT72H")

    assert end.tzinfo == AMSTERDAM
    assert end == at(2026, 1, 19, 15, 30)


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (date(2026, 1, 19), True),
        (date(2026, 1, 17), False),
        (date(2026, 1, 18), False),
        (date(2026, 4, 27), False),
        (date(2026, 12, 25), False),
        (date(2026, 5, 5), True),
        (at(2026, 1, 16, 23, 30), True),
        (datetime(2026, 1, 16, 23, 30, tzinfo=UTC), False),
    ],
    ids=[
        "monday",
        "saturday",
        "sunday",
        "kings-day",
        "christmas",
        "liberation-day-2026-not-public-in-holidays-0.109",
        "friday-night-local",
        "friday-night-utc-is-saturday-in-amsterdam",
    ],
)
def test_is_working_day(nl: LegalCalendar, day: date, expected: bool) -> None:
    assert nl.is_working_day(day) is expected


@pytest.mark.parametrize(
    ("direction", "start", "n", "expected"),
    [
        ("subtract", end_of(2026, 1, 19), 3, end_of(2026, 1, 14)),
        ("subtract", date(2026, 1, 19), 1, end_of(2026, 1, 16)),
        ("subtract", end_of(2026, 4, 28), 1, end_of(2026, 4, 24)),
        ("subtract", end_of(2025, 12, 29), 5, end_of(2025, 12, 18)),
        ("add", date(2026, 4, 23), 5, end_of(2026, 5, 1)),
        ("add", date(2026, 1, 16), 1, end_of(2026, 1, 19)),
        ("add", date(2026, 1, 17), 0, end_of(2026, 1, 17)),
    ],
    ids=[
        "3-back-from-monday-over-weekend-is-wednesday",
        "1-back-from-monday-date-is-friday",
        "1-back-from-tuesday-over-kings-day-and-weekend-is-friday",
        "5-back-over-christmas-boxing-day-and-weekend",
        "5-forward-over-kings-day-and-weekend",
        "1-forward-from-friday-is-monday",
        "0-keeps-the-day",
    ],
)
def test_working_day_offsets(
    nl: LegalCalendar, direction: str, start: date, n: int, expected: datetime
) -> None:
    move = nl.add_working_days if direction == "add" else nl.subtract_working_days

    assert move(start, n) == expected


def test_internal_target_three_working_days_before_the_legal_deadline(
    nl: LegalCalendar,
) -> None:
    deadline = nl.period_end(at(2026, 3, 27), "P1M")

    assert deadline == end_of(2026, 4, 28)
    assert nl.subtract_working_days(deadline, 3) == end_of(2026, 4, 22)


@pytest.mark.parametrize(
    ("text", "amount", "unit"),
    [
        ("PT72H", 72, Unit.HOURS),
        ("P1M", 1, Unit.MONTHS),
        ("P3M", 3, Unit.MONTHS),
        ("P10D", 10, Unit.DAYS),
        ("P2W", 2, Unit.WEEKS),
        ("P1Y", 1, Unit.YEARS),
        ("72 hours", 72, Unit.HOURS),
        ("1 month", 1, Unit.MONTHS),
        ("3 months", 3, Unit.MONTHS),
        ("10 days", 10, Unit.DAYS),
        (" 2 Weeks ", 2, Unit.WEEKS),
    ],
    ids=[
        "iso-hours",
        "iso-month",
        "iso-months",
        "iso-days",
        "iso-weeks",
        "iso-year",
        "words-hours",
        "words-month",
        "words-months",
        "words-days",
        "words-any-case-and-spacing",
    ],
)
def test_period_parse(text: str, amount: int, unit: Unit) -> None:
    period = Period.parse(text)

    assert (period.amount, period.unit) == (amount, unit)
    assert Period.parse(period.iso) == period


@pytest.mark.parametrize(
    "text",
    ["P1M2D", "soon", "P0D", "0 days", "-1 month", "PT0H", "P1.5M", "P1H", "P", ""],
    ids=[
        "mixed-units",
        "garbage",
        "zero-iso",
        "zero-words",
        "negative",
        "zero-hours",
        "fraction",
        "hours-without-t",
        "no-amount",
        "empty",
    ],
)
def test_period_parse_rejects_and_names_the_text(text: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(text))):
        Period.parse(text)


@pytest.mark.parametrize(
    ("amount", "unit"),
    [(0, Unit.DAYS), (-1, Unit.MONTHS), (1, "fortnights"), (True, Unit.DAYS)],
    ids=["zero", "negative", "unknown-unit", "bool-amount"],
)
def test_period_constructor_rejects(amount: int, unit: Unit | str) -> None:
    with pytest.raises(ValueError):
        Period(amount, unit)


def test_naive_datetime_is_rejected_and_named(nl: LegalCalendar) -> None:
    with pytest.raises(ValueError, match="2026-01-16T10:00:00 is a naive datetime"):
        nl.period_end(datetime(2026, 1, 16, 10), "P1M")


@pytest.mark.parametrize("text", ["P1M2D", "soon"], ids=["mixed-units", "garbage"])
def test_period_end_rejects_bad_periods_by_name(nl: LegalCalendar, text: str) -> None:
    with pytest.raises(ValueError, match=repr(text)):
        nl.period_end(at(2026, 1, 16), text)


def test_working_day_offsets_reject_naive_and_negative(nl: LegalCalendar) -> None:
    with pytest.raises(ValueError, match="naive"):
        nl.add_working_days(datetime(2026, 1, 16, 10), 1)
    with pytest.raises(ValueError, match="-1"):
        nl.subtract_working_days(date(2026, 1, 16), -1)


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"member_state": "XX"}, "'XX'"),
        ({"member_state": "US"}, "'US'"),
        ({"member_state": "DE", "subdivision": "ZZ"}, "'ZZ'"),
        ({"timezone": "Mars/Olympus"}, "'Mars/Olympus'"),
        ({"timezone": "Europe/"}, "'Europe/'"),
    ],
    ids=[
        "unknown-member-state",
        "not-an-eu-or-eea-member-state",
        "unknown-subdivision",
        "unknown-zone",
        "malformed-zone",
    ],
)
def test_calendar_rejects_unknown_settings(kwargs: dict[str, str], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        LegalCalendar(**kwargs)


@pytest.mark.parametrize(
    ("calendar", "event_at", "expected"),
    [
        (LegalCalendar("NL"), at(2026, 5, 4), end_of(2026, 6, 4)),
        (
            LegalCalendar("DE", "Europe/Berlin", subdivision="BY"),
            at(2026, 5, 4),
            end_of(2026, 6, 5),
        ),
        (LegalCalendar("DE", "Europe/Berlin"), at(2026, 5, 4), end_of(2026, 6, 4)),
        (LegalCalendar("NL"), at(2026, 6, 21), end_of(2026, 7, 21)),
        (LegalCalendar("BE", "Europe/Brussels"), at(2026, 6, 21), end_of(2026, 7, 22)),
    ],
    ids=[
        "nl-corpus-christi-is-a-working-day",
        "de-bavaria-corpus-christi-rolls-to-friday",
        "de-without-subdivision-corpus-christi-is-a-working-day",
        "nl-21-july-is-a-working-day",
        "be-national-day-21-july-rolls-to-wednesday",
    ],
)
def test_member_state_and_subdivision_matter(
    calendar: LegalCalendar, event_at: datetime, expected: datetime
) -> None:
    end = calendar.period_end(event_at, "P1M")

    assert end.date() == expected.date()
    assert (end.hour, end.minute, end.microsecond) == (23, 59, 999999)
    assert end.tzinfo == calendar.zone


def test_explain_names_the_rule_and_the_holiday_that_caused_the_roll_over(
    nl: LegalCalendar,
) -> None:
    explanation = nl.explain(at(2026, 3, 25), "1 month")

    assert explanation["rule"] == "Regulation 1182/71 Art 3(2)(c)"
    assert explanation["period"] == "P1M"
    assert explanation["nominal_end"] == "2026-04-25T23:59:59.999999+02:00"
    assert explanation["final_end"] == "2026-04-28T23:59:59.999999+02:00"
    [roll_over] = explanation["adjustments"]
    assert roll_over["rule"] == "Regulation 1182/71 Art 3(4)"
    assert roll_over["closed_days"] == [
        {"date": "2026-04-25", "weekday": "Saturday", "holiday": None},
        {"date": "2026-04-26", "weekday": "Sunday", "holiday": None},
        {"date": "2026-04-27", "weekday": "Monday", "holiday": "King's Day"},
    ]


def test_explain_agrees_with_period_end_and_is_json(nl: LegalCalendar) -> None:
    event_at = at(2026, 12, 24)
    explanation = nl.explain(event_at, "P2D")

    assert json.loads(json.dumps(explanation)) == explanation
    assert explanation["final_end"] == nl.period_end(event_at, "P2D").isoformat()
    rules = [item["rule"] for item in explanation["adjustments"]]
    assert rules == ["Regulation 1182/71 Art 3(4)", "Regulation 1182/71 Art 3(5)"]


def test_explain_notes_a_missing_day_of_month(nl: LegalCalendar) -> None:
    explanation = nl.explain(at(2025, 1, 31), "P1M")

    assert "day 31 does not occur in 2025-02" in explanation["note"]
    assert explanation["adjustments"] == []


def test_explain_hours_are_never_moved(nl: LegalCalendar) -> None:
    explanation = nl.explain(at(2026, 1, 16, 15, 30), "PT72H")

    assert explanation["rule"] == "Regulation 1182/71 Art 3(2)(a)"
    assert explanation["adjustments"] == []
    assert "never moved" in explanation["note"]
    assert explanation["final_end"] == "2026-01-19T15:30:00+01:00"


GOOD_SETTINGS = {"MEMBER_STATE": "NL", "TIMEZONE": "Europe/Amsterdam"}


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"TIMEZONE": "Europe/"}, "TIMEZONE: 'Europe/' is not a known time zone"),
        ({"MEMBER_STATE": "EL"}, "MEMBER_STATE: 'EL' is not an EU or EEA member"),
        (
            {"MEMBER_STATE": "DE", "MEMBER_STATE_SUBDIVISION": "by"},
            r"MEMBER_STATE_SUBDIVISION: 'by' is not a subdivision of DE \(one of: .*BY",
        ),
    ],
    ids=["time-zone", "member-state", "subdivision"],
)
def test_a_bad_calendar_setting_is_named(settings: dict[str, str], named: str) -> None:
    from app.services.deadlines import InvalidSetting, check_settings

    with pytest.raises(InvalidSetting, match=named):
        check_settings({**GOOD_SETTINGS, **settings})


@pytest.mark.parametrize(
    "settings",
    [
        GOOD_SETTINGS,
        {**GOOD_SETTINGS, "MEMBER_STATE_SUBDIVISION": ""},
        {"MEMBER_STATE": "DE", "MEMBER_STATE_SUBDIVISION": "BY", "TIMEZONE": "UTC"},
    ],
    ids=["national", "empty-subdivision", "bavaria"],
)
def test_good_calendar_settings_pass(settings: dict[str, str]) -> None:
    from app.services.deadlines import check_settings

    check_settings(settings)
