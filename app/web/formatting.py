"""How pages show times: in the organisation's zone, and as a countdown in words."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import Flask, current_app

from app import clock

# A deadline this close is marked as due soon.
SOON = timedelta(days=2)


def local_time(moment: datetime | None) -> str:
    """'3 Mar 2026, 10:00 CET' in the organisation's time zone; '' for none."""
    if moment is None:
        return ""
    local = moment.astimezone(ZoneInfo(current_app.config["TIMEZONE"]))
    return f"{local.day} {local:%b %Y, %H:%M %Z}"


def local_date(moment: datetime | None) -> str:
    if moment is None:
        return ""
    local = moment.astimezone(ZoneInfo(current_app.config["TIMEZONE"]))
    return f"{local.day} {local:%b %Y}"


def _span(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    for unit, size in (("day", 1440), ("hour", 60), ("minute", 1)):
        if minutes >= size:
            count = minutes // size
            return f"{count} {unit}{'' if count == 1 else 's'}"
    return "less than a minute"


def countdown(moment: datetime | None) -> str:
    """'due in 2 days', 'overdue by 3 hours', from now on the service's clock."""
    if moment is None:
        return ""
    left = moment - clock.now()
    if left < timedelta(0):
        return f"overdue by {_span(-left)}"
    return f"due in {_span(left)}"


def urgency(moment: datetime | None) -> str:
    """'overdue', 'soon' (within two days) or 'later': a CSS class for the mark."""
    if moment is None:
        return "none"
    left = moment - clock.now()
    if left < timedelta(0):
        return "overdue"
    return "soon" if left <= SOON else "later"


def deadline_state(deadline: Any) -> str:
    """The state, and for one closed after its end how late: 'met, 1 day late'."""
    rule = deadline.rule or {}
    if not rule.get("late"):
        return deadline.state
    late = timedelta(seconds=rule.get("late_seconds") or 0)
    return f"{deadline.state}, {_span(late)} late"


def init_app(app: Flask) -> None:
    app.add_template_filter(local_time)
    app.add_template_filter(local_date)
    app.add_template_filter(countdown)
    app.add_template_filter(urgency)
    app.add_template_filter(deadline_state)
