"""The legal calendar: when GDPR periods end under Regulation 1182/71.

A period in days, weeks, months or years ends with the expiry of the last hour of its
last day, returned as 23:59:59.999999 of that day in the organisation's zone: an act
is on time if it happens at or before that instant. A period in hours ends the exact
number of elapsed hours after the event and is never moved.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays

REGULATION = "Regulation 1182/71"

# The GDPR binds the EU member states and, through the EEA Agreement, Iceland,
# Liechtenstein and Norway. Codes are ISO 3166 (Greece is GR, not EL).
MEMBER_STATES = frozenset(
    {
        "AT",
        "BE",
        "BG",
        "CY",
        "CZ",
        "DE",
        "DK",
        "EE",
        "ES",
        "FI",
        "FR",
        "GR",
        "HR",
        "HU",
        "IE",
        "IS",
        "IT",
        "LI",
        "LT",
        "LU",
        "LV",
        "MT",
        "NL",
        "NO",
        "PL",
        "PT",
        "RO",
        "SE",
        "SI",
        "SK",
    }
)

# Fixed English names: the audit trail must not depend on the server's locale.
WEEKDAYS = (
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
)
HOLIDAY_LANGUAGE = "en_US"


class Unit(StrEnum):
    """The unit a period is expressed in."""

    HOURS = "hours"
    DAYS = "days"
    WEEKS = "weeks"
    MONTHS = "months"
    YEARS = "years"


RULES = {
    Unit.HOURS: f"{REGULATION} Art 3(2)(a)",
    Unit.DAYS: f"{REGULATION} Art 3(2)(b)",
    Unit.WEEKS: f"{REGULATION} Art 3(2)(c)",
    Unit.MONTHS: f"{REGULATION} Art 3(2)(c)",
    Unit.YEARS: f"{REGULATION} Art 3(2)(c)",
}
ROLL_OVER_RULE = f"{REGULATION} Art 3(4)"
TWO_WORKING_DAYS_RULE = f"{REGULATION} Art 3(5)"

# Art 3(1) with 3(2)(a) could be read as starting the clock at the next full hour;
# starting at the event itself never gives a later deadline, so it is the safe reading.
HOURS_NOTE = (
    "runs from the moment of the event for the exact number of elapsed hours and is "
    "never moved for a Saturday, Sunday or public holiday"
)

_ISO_UNITS = {"Y": Unit.YEARS, "M": Unit.MONTHS, "W": Unit.WEEKS, "D": Unit.DAYS}
_ISO = re.compile(r"P(?:(?P<amount>[0-9]+)(?P<unit>[YMWD])|T(?P<hours>[0-9]+)H)", re.I)
_WORDS = re.compile(r"(?P<amount>[0-9]+)\s*(?P<unit>hour|day|week|month|year)s?", re.I)


@dataclass(frozen=True)
class Period:
    """A legal period: a positive whole amount of a single unit."""

    amount: int
    unit: Unit

    def __post_init__(self) -> None:
        object.__setattr__(self, "unit", Unit(self.unit))
        if isinstance(self.amount, bool) or not isinstance(self.amount, int):
            raise ValueError(
                f"a period's amount must be a whole number: {self.amount!r}"
            )
        if self.amount < 1:
            raise ValueError(f"a period must be positive: {self.amount!r}")

    @classmethod
    def parse(cls, text: str) -> Period:
        """Read `PT72H`, `P1M`, `P2W`, `"72 hours"` or `"3 months"`, else ValueError."""
        cleaned = text.strip()
        found = _read_iso(cleaned) or _read_words(cleaned)
        if found is None:
            raise ValueError(
                f"{text!r} is not a period of one unit, such as 'P1M' or '72 hours'"
            )
        if found[0] < 1:
            raise ValueError(f"{text!r} is not a positive period")
        return cls(*found)

    @property
    def iso(self) -> str:
        """The period as an ISO 8601 duration, such as `P1M` or `PT72H`."""
        if self.unit is Unit.HOURS:
            return f"PT{self.amount}H"
        return f"P{self.amount}{self.unit.value[0].upper()}"

    def __str__(self) -> str:
        return self.iso


def _read_iso(text: str) -> tuple[int, Unit] | None:
    match = _ISO.fullmatch(text)
    if match is None:
        return None
    if match["hours"] is not None:
        return int(match["hours"]), Unit.HOURS
    return int(match["amount"]), _ISO_UNITS[match["unit"].upper()]


def _read_words(text: str) -> tuple[int, Unit] | None:
    match = _WORDS.fullmatch(text)
    if match is None:
        return None
    return int(match["amount"]), Unit(match["unit"].lower() + "s")


def as_period(period: Period | str) -> Period:
    """The period itself, or the period the text describes."""
    if isinstance(period, Period):
        return period
    return Period.parse(period)


@dataclass(frozen=True)
class _Adjustment:
    rule: str
    reason: str
    from_day: date
    to_day: date
    closed_days: tuple[dict[str, str | None], ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "reason": self.reason,
            "from": self.from_day.isoformat(),
            "to": self.to_day.isoformat(),
            "closed_days": list(self.closed_days),
        }


@dataclass(frozen=True)
class _Computation:
    period: Period
    event_at: datetime
    nominal_end: datetime
    adjustments: tuple[_Adjustment, ...]
    end: datetime
    note: str | None


class LegalCalendar:
    """Working days and period ends for one member state, in the organisation's zone."""

    def __init__(
        self,
        member_state: str = "NL",
        timezone: str = "Europe/Amsterdam",
        subdivision: str | None = None,
    ) -> None:
        self.member_state = member_state.strip().upper()
        self.subdivision = subdivision
        self.zone = time_zone(timezone)
        self._holidays = _public_holidays(self.member_state, subdivision)

    def is_working_day(self, day: date | datetime) -> bool:
        """Whether the local day is not a Saturday, Sunday or public holiday."""
        local = self._local_day(day)
        return local.weekday() < 5 and local not in self._holidays

    def holiday_name(self, day: date | datetime) -> str | None:
        """The name of the public holiday on the (local) day, if there is one."""
        return self._holidays.get(self._local_day(day))

    def period_end(self, event_at: datetime, period: Period | str) -> datetime:
        """When the period ends; days and longer end at 23:59:59.999999 local time."""
        return self._compute(event_at, period).end

    def add_working_days(self, day_or_dt: date | datetime, n: int) -> datetime:
        """The end (23:59:59.999999) of the `n`th working day after the given day."""
        return self._end_of(self._move(self._local_day(day_or_dt), _count(n), 1))

    def subtract_working_days(self, day_or_dt: date | datetime, n: int) -> datetime:
        """The end (23:59:59.999999) of the `n`th working day before the given day."""
        return self._end_of(self._move(self._local_day(day_or_dt), _count(n), -1))

    def explain(self, event_at: datetime, period: Period | str) -> dict[str, Any]:
        """How the period's end was found, as JSON-ready data without personal data."""
        computation = self._compute(event_at, period)
        return {
            "member_state": self.member_state,
            "subdivision": self.subdivision,
            "timezone": self.zone.key,
            "period": computation.period.iso,
            "event_at": computation.event_at.isoformat(),
            "rule": RULES[computation.period.unit],
            "note": computation.note,
            "nominal_end": computation.nominal_end.isoformat(),
            "adjustments": [item.as_dict() for item in computation.adjustments],
            "final_end": computation.end.isoformat(),
        }

    def _compute(self, event_at: datetime, period: Period | str) -> _Computation:
        period = as_period(period)
        event_at = self._localize(event_at)
        try:
            if period.unit is Unit.HOURS:
                return self._hours(event_at, period)
            return self._calendar_period(event_at, period)
        except (OverflowError, ValueError) as error:
            # Only the date range can fail here: a huge amount runs past year 9999.
            raise ValueError(
                f"{period} from {event_at} ends beyond the calendar"
            ) from error

    def _hours(self, event_at: datetime, period: Period) -> _Computation:
        # Aware arithmetic within one zone follows the wall clock and would gain or
        # lose the DST hour; through UTC the hours are real elapsed hours.
        elapsed = timedelta(hours=period.amount)
        end = (event_at.astimezone(UTC) + elapsed).astimezone(self.zone)
        return _Computation(period, event_at, end, (), end, HOURS_NOTE)

    def _calendar_period(self, event_at: datetime, period: Period) -> _Computation:
        event_day = event_at.date()
        nominal, note = _nominal_last_day(event_day, period)
        adjustments = self._adjustments(event_day, nominal)
        last_day = adjustments[-1].to_day if adjustments else nominal
        return _Computation(
            period,
            event_at,
            self._end_of(nominal),
            adjustments,
            self._end_of(last_day),
            note,
        )

    def _adjustments(self, event_day: date, nominal: date) -> tuple[_Adjustment, ...]:
        rolled = self._roll_over(nominal)
        last_day = rolled.to_day if rolled else nominal
        widened = None
        if (nominal - event_day).days >= 2:
            widened = self._two_working_days(event_day, last_day)
        return tuple(item for item in (rolled, widened) if item is not None)

    def _roll_over(self, last_day: date) -> _Adjustment | None:
        if self.is_working_day(last_day):
            return None
        next_working_day = self._move(last_day, 1, 1)
        return _Adjustment(
            ROLL_OVER_RULE,
            "the last day is a Saturday, Sunday or public holiday, so the period "
            "ends at the end of the next working day",
            last_day,
            next_working_day,
            self._closed_days(last_day, next_working_day),
        )

    def _two_working_days(self, event_day: date, last_day: date) -> _Adjustment | None:
        second_working_day = self._move(event_day, 2, 1)
        if last_day >= second_working_day:
            return None
        return _Adjustment(
            TWO_WORKING_DAYS_RULE,
            "a period of two days or more includes at least two working days",
            last_day,
            second_working_day,
            self._closed_days(event_day + timedelta(days=1), second_working_day),
        )

    def _closed_days(
        self, first: date, stop: date
    ) -> tuple[dict[str, str | None], ...]:
        days = (first + timedelta(days=offset) for offset in range((stop - first).days))
        return tuple(
            self._describe(day) for day in days if not self.is_working_day(day)
        )

    def _describe(self, day: date) -> dict[str, str | None]:
        return {
            "date": day.isoformat(),
            "weekday": WEEKDAYS[day.weekday()],
            "holiday": self.holiday_name(day),
        }

    def _move(self, day: date, n: int, step: int) -> date:
        while n > 0:
            day += timedelta(days=step)
            if self.is_working_day(day):
                n -= 1
        return day

    def _local_day(self, value: date | datetime) -> date:
        if isinstance(value, datetime):
            return self._localize(value).date()
        return value

    def _localize(self, moment: datetime) -> datetime:
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError(
                f"{moment.isoformat()} is a naive datetime: give a timezone-aware one"
            )
        return moment.astimezone(self.zone)

    def _end_of(self, day: date) -> datetime:
        return datetime.combine(day, time.max, tzinfo=self.zone)


def time_zone(name: str) -> ZoneInfo:
    """The IANA time zone of that name, else ValueError."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as error:
        raise ValueError(f"{name!r} is not a known time zone") from error


def member_state(code: str) -> str:
    """The ISO code of an EU or EEA member state, else ValueError."""
    cleaned = code.strip().upper()
    if cleaned not in MEMBER_STATES:
        raise ValueError(f"{code!r} is not an EU or EEA member state")
    return cleaned


def _public_holidays(code: str, subdivision: str | None) -> holidays.HolidayBase:
    member_state(code)
    languages = holidays.list_localized_countries().get(code, ())
    language = HOLIDAY_LANGUAGE if HOLIDAY_LANGUAGE in languages else None
    try:
        return holidays.country_holidays(code, subdiv=subdivision, language=language)
    except NotImplementedError as error:
        known = ", ".join(holidays.list_supported_countries().get(code, ()))
        raise ValueError(
            f"{subdivision!r} is not a subdivision of {code} (one of: {known})"
        ) from error


def _nominal_last_day(event_day: date, period: Period) -> tuple[date, str | None]:
    if period.unit is Unit.DAYS:
        return event_day + timedelta(days=period.amount), None
    if period.unit is Unit.WEEKS:
        return event_day + timedelta(weeks=period.amount), None
    months = period.amount * (12 if period.unit is Unit.YEARS else 1)
    return _add_months(event_day, months)


def _add_months(day: date, months: int) -> tuple[date, str | None]:
    year, month_index = divmod(day.year * 12 + day.month - 1 + months, 12)
    last = _last_day_of_month(year, month_index + 1)
    if day.day <= last.day:
        return last.replace(day=day.day), None
    return last, (
        f"day {day.day} does not occur in {last:%Y-%m}, so the period ends on the "
        "last day of that month"
    )


def _last_day_of_month(year: int, month: int) -> date:
    first_of_next = date(year + month // 12, month % 12 + 1, 1)
    return first_of_next - timedelta(days=1)


def _count(n: int) -> int:
    if n < 0:
        raise ValueError(f"a number of working days cannot be negative: {n}")
    return n
