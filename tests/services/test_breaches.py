"""Hours-based reminders for wall-clock deadlines, and the register's CSV cells."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.errors import Unprocessable
from app.services import breaches, deadlines
from tests.bpmn import chain, document, user_task

AWARE = "2026-03-02T08:00:00+00:00"


@pytest.fixture
def instance_id(deploy, start_instance):
    assert deploy(document(chain("waiting", user_task("wait")))).status_code == 201
    return start_instance("waiting")["id"]


def _due(instance_id, name):
    return deadlines.get_deadline(instance_id, name).due_at


def test_a_reminder_in_hours_falls_that_many_wall_clock_hours_before(ctx, instance_id):
    deadlines.set_deadline(
        instance_id,
        "authority",
        start=AWARE,
        period="PT72H",
        article="Art 33(1)",
        reminder_hours_before=24,
    )

    assert _due(instance_id, "authority") == datetime(2026, 3, 5, 8, tzinfo=UTC)
    reminder = deadlines.get_deadline(instance_id, "authority.reminder")
    assert reminder.due_at == datetime(2026, 3, 4, 8, tzinfo=UTC)
    assert reminder.kind == "reminder"
    assert reminder.rule["article"] == "Art 33(1)"


def test_an_extension_keeps_the_reminder_in_hours(ctx, instance_id):
    deadlines.set_deadline(
        instance_id, "authority", start=AWARE, period="PT72H", reminder_hours_before=6
    )

    deadlines.extend(instance_id, "authority", "PT24H", "phase two")

    assert _due(instance_id, "authority") == datetime(2026, 3, 6, 8, tzinfo=UTC)
    assert _due(instance_id, "authority.reminder") == datetime(
        2026, 3, 6, 2, tzinfo=UTC
    )


@pytest.mark.parametrize("hours", [0, -3])
def test_a_reminder_needs_a_positive_number_of_hours(ctx, instance_id, hours):
    with pytest.raises(Unprocessable) as refused:
        deadlines.set_deadline(
            instance_id,
            "authority",
            start=AWARE,
            period="PT72H",
            reminder_hours_before=hours,
        )

    assert refused.value.errors[0]["field"] == "reminder_hours_before"


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("=SUM(A1:A9)", "'=SUM(A1:A9)"),
        ("+31 20 123", "'+31 20 123"),
        ("-1", "'-1"),
        ("@cmd", "'@cmd"),
        ("\tindent", "'\tindent"),
        ("plain text", "plain text"),
        (["email", "=name"], "email; =name"),
        (True, "yes"),
        (None, ""),
        (1200, "1200"),
    ],
)
def test_a_csv_cell_a_spreadsheet_would_run_is_quoted(value, cell):
    assert breaches.csv_cell(value) == cell
