"""The listings the register pages read: breaches, requests, deadlines' instances."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest

from app.extensions import db
from app.models import SubjectRequest
from app.models.breaches import CLOSED, NO_RISK
from app.services import breaches, deadlines, subject_requests
from tests.bpmn import chain, document, user_task


@pytest.fixture
def instance_ids(deploy, start_instance):
    assert deploy(document(chain("waiting", user_task("wait")))).status_code == 201
    return [start_instance("waiting")["id"] for _ in range(4)]


def _breach(instance_id, aware_at, summary):
    return breaches.register(instance_id, aware_at, summary)


def test_breaches_awaiting_notification_come_first_soonest_due(
    ctx, frozen_clock, instance_ids
):
    first, second, third, fourth = instance_ids
    closed = _breach(first, "2026-02-20T08:00:00+00:00", "closed")
    notified = _breach(second, "2026-02-21T08:00:00+00:00", "notified")
    _breach(third, "2026-03-02T08:00:00+00:00", "later")
    _breach(fourth, "2026-03-01T08:00:00+00:00", "sooner")
    closed.status, closed.outcome = CLOSED, NO_RISK
    notified.notified_at = datetime(2026, 2, 22, tzinfo=UTC)

    found = breaches.list_breaches(order="open_due")

    assert [b.summary for b in found.items] == ["sooner", "later", "closed", "notified"]
    assert [breaches.awaits_authority(b) for b in found.items] == [
        True,
        True,
        False,
        False,
    ]


def _request(instance_id, reference, kind, received, status="open"):
    row = SubjectRequest(
        reference=reference,
        instance_id=instance_id,
        request_type=kind,
        channel="email",
        subject_hmac="0" * 64,
        identity_kinds=["email"],
        received_at=received,
        clock_starts_at=received,
        recipient_notices=[],
        status=status,
    )
    db.session.add(row)
    deadlines.set_deadline(
        instance_id, "reply", start=received.isoformat(), period="P1M"
    )
    return row


@pytest.fixture
def requests(ctx, frozen_clock, instance_ids):
    first, second, third, _ = instance_ids
    january = datetime(2026, 1, 5, tzinfo=UTC)
    _request(first, "DSR-2026-0001", "access", january, "closed")
    _request(second, "=DSR-2026-0002", "erasure", datetime(2026, 2, 20, tzinfo=UTC))
    _request(third, "DSR-2026-0003", "access", datetime(2026, 2, 10, tzinfo=UTC))
    db.session.flush()


def test_requests_open_first_are_ordered_by_their_deadline(requests):
    found = subject_requests.list_requests(None, None, 1, 50, open_first=True)

    assert [row.reference for row in found.items] == [
        "DSR-2026-0003",
        "=DSR-2026-0002",
        "DSR-2026-0001",
    ]
    assert found.items[0].due_at is not None


def test_the_request_export_has_a_line_per_request_and_guards_formulas(requests):
    header, *lines = csv.reader(io.StringIO(subject_requests.export_csv()))

    assert header == list(subject_requests.CSV_COLUMNS)
    assert "subject_hmac" not in header
    assert [line[0] for line in lines] == [
        "DSR-2026-0001",
        "DSR-2026-0003",
        "'=DSR-2026-0002",
    ]
    assert lines[1][header.index("article")] == "Art 15"
    assert lines[1][header.index("due_at")].startswith("2026-03-10")


def test_the_request_export_keeps_the_filters(requests):
    _, *lines = csv.reader(io.StringIO(subject_requests.export_csv("open", "access")))

    assert [line[0] for line in lines] == ["DSR-2026-0003"]


def test_deadlines_name_their_instances_process(ctx, instance_ids):
    deadlines.set_deadline(instance_ids[0], "reply", due_at="2026-04-01T10:00:00+00:00")
    found = deadlines.pending()

    shown = deadlines.instances_of(found.items)

    assert shown[instance_ids[0]]["process_id"] == "waiting"
    assert set(shown) == {instance_ids[0]}
