"""Outbound events: an outbox written with the change, sent later by a dispatcher."""

from __future__ import annotations

import http.client
import ipaddress
import json
import logging
import socket
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from flask import current_app
from sqlalchemy import or_, select

from app.extensions import db
from app.models import (
    Instance,
    OutboundDelivery,
    OutboundEvent,
    Subscriber,
    WebhookDelivery,
    WebhookEndpoint,
)
from app.models.integrations import (
    ACTIVE,
    GAVE_UP,
    PAUSED,
    PENDING,
    PROCESSED,
    SENDING,
    SENT,
)
from app.models.types import utcnow
from app.services import audit, deadlines, opendsr, signatures
from app.services.backoff import doubling

logger = logging.getLogger(__name__)

EVENT_TYPES = (
    "task.created",
    "deadline.approaching",
    "deadline.missed",
    "request.completed",
    "consent.withdrawn",
    "consent.lapsed",
    "instance.completed",
)
REQUEST_STATUS = "request.status"
EVENT_TYPE_HEADER = "X-Event-Type"
EVENT_ID_HEADER = "X-Event-Id"
USER_AGENT = "gdpr-workflow-events/1"


def emit(event_type: str, payload: dict[str, Any]) -> OutboundEvent | None:
    """Queue an event for every active subscriber that wants it, in this transaction.

    The payload names ids and field names, never personal values: it leaves the
    service. Nothing is sent here; `dispatch_due` sends after the commit.
    """
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type!r}")
    subscribers = db.session.scalars(
        select(Subscriber).where(Subscriber.status == ACTIVE)
    ).all()
    wanting = [subscriber for subscriber in subscribers if subscriber.wants(event_type)]
    if not wanting:
        return None
    event = _event(event_type, payload)
    for subscriber in wanting:
        db.session.add(
            OutboundDelivery(
                event_id=event.id, subscriber_id=subscriber.id, url=subscriber.url
            )
        )
    db.session.flush()
    return event


def request_status(
    instance_id: str, callback_urls: list[str], status: str
) -> OutboundEvent | None:
    """Queue an OpenDSR status callback to each URL, signed as its request was."""
    if status not in opendsr.STATUSES:
        raise ValueError(f"unknown OpenDSR status {status!r}")
    urls = [url for url in callback_urls if url.startswith(("http://", "https://"))]
    endpoint_id = _request_endpoint_id(instance_id)
    if not urls or endpoint_id is None:
        logger.info("no status callback for instance %s", instance_id)
        return None
    instance = db.session.get(Instance, instance_id)
    event = _event(
        REQUEST_STATUS,
        {
            "subject_request_id": instance.business_key if instance else None,
            "instance_id": instance_id,
            "request_status": status,
            "status_time": utcnow().isoformat(),
            "expected_completion_time": _iso(deadlines.legal_end(instance_id)),
        },
    )
    for url in urls:
        db.session.add(
            OutboundDelivery(
                event_id=event.id, webhook_endpoint_id=endpoint_id, url=url
            )
        )
    db.session.flush()
    return event


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _event(event_type: str, payload: dict[str, Any]) -> OutboundEvent:
    event = OutboundEvent(
        id=str(uuid.uuid4()),
        event_type=event_type,
        payload=payload,
        created_at=utcnow(),
    )
    db.session.add(event)
    return event


def _request_endpoint_id(instance_id: str) -> int | None:
    return db.session.scalar(
        select(WebhookDelivery.endpoint_id)
        .join(WebhookEndpoint)
        .where(
            WebhookDelivery.instance_id == instance_id,
            WebhookDelivery.status == PROCESSED,
        )
        .limit(1)
    )


@dataclass(frozen=True)
class _Job:
    """A claimed delivery, read out of the session so sending touches no database."""

    delivery_id: int
    subscriber_id: int | None
    url: str
    secret: str | None
    event_id: str
    event_type: str
    body: bytes
    due_at: datetime


@dataclass(frozen=True)
class _Result:
    status_code: int | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def dispatch_due(now: datetime | None = None, limit: int = 100) -> int:
    """Send what is due, one at a time; commits its own transactions.

    Returns how many deliveries were attempted. Rows are claimed atomically, so two
    dispatchers never send one delivery twice.
    """
    now = now or utcnow()
    failing: set[int] = set()
    attempted = 0
    for job in _claim(now, limit):
        if job.subscriber_id in failing:
            # One failure per subscriber per pass: a dead receiver costs one timeout.
            _release(job)
            continue
        attempted += 1
        result = _send(job) if job.secret else _Result(None, "no signing secret")
        if not _record(job, result, now) and job.subscriber_id is not None:
            failing.add(job.subscriber_id)
    return attempted


def _claim(now: datetime, limit: int) -> list[_Job]:
    active = select(Subscriber.id).where(Subscriber.status == ACTIVE)
    rows = db.session.scalars(
        select(OutboundDelivery)
        .where(
            OutboundDelivery.status.in_((PENDING, SENDING)),
            OutboundDelivery.next_attempt_at <= now,
            or_(
                OutboundDelivery.subscriber_id.is_(None),
                OutboundDelivery.subscriber_id.in_(active),
            ),
        )
        .order_by(OutboundDelivery.next_attempt_at, OutboundDelivery.id)
        .limit(limit)
        # PostgreSQL: a row another dispatcher holds is skipped, not waited for.
        # SQLite transactions here begin IMMEDIATE (see app.database): one writer.
        .with_for_update(skip_locked=True, of=OutboundDelivery)
        .execution_options(populate_existing=True)
    ).all()
    # A claim is a lease: should this process die mid-send, the row is due again
    # once the lease runs out (so a delivery is sent at least once).
    lease = timedelta(
        seconds=len(rows) * (current_app.config["EVENTS_TIMEOUT_SECONDS"] + 1) + 60
    )
    jobs = [_job(row) for row in rows]
    for row in rows:
        row.status, row.next_attempt_at = SENDING, now + lease
    db.session.commit()
    return jobs


def _job(row: OutboundDelivery) -> _Job:
    event = row.event
    if row.subscriber_id is not None:
        secret = db.session.get(Subscriber, row.subscriber_id).signing_secret
        body: Any = {
            "id": event.id,
            "type": event.event_type,
            "created_at": event.created_at.isoformat(),
            "data": event.payload,
        }
    else:
        endpoint = db.session.get(WebhookEndpoint, row.webhook_endpoint_id or 0)
        secret = endpoint.signing_secret if endpoint else None
        body = event.payload
    return _Job(
        delivery_id=row.id,
        subscriber_id=row.subscriber_id,
        url=row.url,
        secret=secret,
        event_id=event.id,
        event_type=event.event_type,
        body=json.dumps(body, separators=(",", ":"), sort_keys=True).encode(),
        due_at=row.next_attempt_at,
    )


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # A redirect is an answer that is not 2xx: following it could reach anywhere.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


SCHEMES = ("http", "https")
NOT_PUBLIC = (
    "The host is a loopback, link-local, private or otherwise non-public address."
)


class _NotPublic(OSError):
    """An outbound POST would reach an address the settings do not allow."""


def refusal(url: str) -> str | None:
    """Why nothing may be sent to this URL, or None.

    Anyone who can name a URL (an admin, or a webhook sender's callbacks) would
    otherwise make this service POST into its own network. A host name is resolved
    and every address checked; one that does not resolve now is not refused here,
    since every delivery checks again (DNS can change).
    """
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES or not parts.hostname:
        return "Only http and https URLs are sent to."
    if current_app.config["OUTBOUND_ALLOW_PRIVATE"]:
        return None
    if not all(_public(address) for address in _addresses(parts.hostname)):
        return NOT_PUBLIC
    return None


def _addresses(host: str) -> list[str]:
    try:
        found = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return []
    return [str(entry[4][0]) for entry in found]


def _public(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return ip.is_global and not ip.is_multicast


def _check_peer(sock: socket.socket) -> None:
    # The address actually connected to: a name that resolved to a public address
    # a moment ago may resolve to a private one now (DNS rebinding).
    if current_app.config["OUTBOUND_ALLOW_PRIVATE"] or _public(sock.getpeername()[0]):
        return
    sock.close()
    raise _NotPublic(NOT_PUBLIC)


class _PublicHTTPConnection(http.client.HTTPConnection):
    def connect(self) -> None:
        super().connect()
        _check_peer(self.sock)


class _PublicHTTPSConnection(http.client.HTTPSConnection):
    def connect(self) -> None:
        super().connect()
        _check_peer(self.sock)


class _PublicHTTPHandler(urllib.request.HTTPHandler):
    # Through a proxy the peer is the proxy; the target was checked by `refusal`.
    def http_open(self, req: urllib.request.Request) -> Any:
        direct = not req.has_proxy()
        connection = _PublicHTTPConnection if direct else http.client.HTTPConnection
        return self.do_open(connection, req)


class _PublicHTTPSHandler(urllib.request.HTTPSHandler):
    def https_open(self, req: urllib.request.Request) -> Any:
        direct = getattr(req, "_tunnel_host", None) is None
        connection = _PublicHTTPSConnection if direct else http.client.HTTPSConnection
        return self.do_open(connection, req, context=getattr(self, "_context", None))


_opener = urllib.request.build_opener(
    _NoRedirects, _PublicHTTPHandler, _PublicHTTPSHandler
)


def _send(job: _Job) -> _Result:
    """One signed POST; the status code, or a short error. No body is read."""
    assert job.secret is not None
    refused = refusal(job.url)
    if refused is not None:
        return _Result(None, refused)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        EVENT_TYPE_HEADER: job.event_type,
        EVENT_ID_HEADER: job.event_id,
        **signatures.headers(job.secret, int(time.time()), job.body),
    }
    request = urllib.request.Request(job.url, data=job.body, headers=headers)
    try:
        with _opener.open(
            request, timeout=current_app.config["EVENTS_TIMEOUT_SECONDS"]
        ) as reply:
            return _Result(reply.status, None)
    except urllib.error.HTTPError as error:
        error.close()
        return _Result(error.code, f"HTTP {error.code}")
    except urllib.error.URLError as error:
        return _Result(None, _reason(error.reason))
    except (OSError, ValueError) as error:
        return _Result(None, _reason(error))


def _reason(reason: Any) -> str:
    text = str(reason) if not isinstance(reason, TimeoutError) else "timed out"
    return (text or type(reason).__name__)[:300]


def _release(job: _Job) -> None:
    delivery = _lock(job.delivery_id)
    if delivery is not None and delivery.status == SENDING:
        delivery.status, delivery.next_attempt_at = PENDING, job.due_at
    db.session.commit()


def _lock(delivery_id: int) -> OutboundDelivery | None:
    return db.session.scalar(
        select(OutboundDelivery)
        .where(OutboundDelivery.id == delivery_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


def _record(job: _Job, result: _Result, now: datetime) -> bool:
    """Write down one attempt; whether it succeeded."""
    delivery = _lock(job.delivery_id)
    if delivery is None:
        db.session.commit()
        return result.ok
    delivery.attempts += 1
    delivery.last_attempt_at = now
    delivery.last_status_code, delivery.last_error = result.status_code, result.error
    subscriber = _lock_subscriber(job.subscriber_id)
    if result.ok:
        delivery.status, delivery.sent_at = SENT, now
        if subscriber is not None:
            subscriber.consecutive_failures = 0
    else:
        _failed(delivery, subscriber, now)
    db.session.commit()
    return result.ok


def _lock_subscriber(subscriber_id: int | None) -> Subscriber | None:
    if subscriber_id is None:
        return None
    return db.session.scalar(
        select(Subscriber)
        .where(Subscriber.id == subscriber_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


def _failed(
    delivery: OutboundDelivery, subscriber: Subscriber | None, now: datetime
) -> None:
    limit = int(current_app.config["EVENTS_MAX_FAILURES"])
    delivery.status = PENDING
    delivery.next_attempt_at = now + backoff(delivery.attempts)
    logger.info(
        "outbound delivery %s failed (attempt %s): %s",
        delivery.id,
        delivery.attempts,
        delivery.last_error,
    )
    if subscriber is None:
        if delivery.attempts >= limit:
            delivery.status = GAVE_UP
            logger.warning("status callback %s given up", delivery.id)
        return
    subscriber.consecutive_failures += 1
    if subscriber.status == ACTIVE and subscriber.consecutive_failures >= limit:
        subscriber.status, subscriber.paused_at = PAUSED, now
        audit.record(
            "subscriber.paused",
            subscriber_id=subscriber.id,
            consecutive_failures=subscriber.consecutive_failures,
        )
        logger.warning(
            "subscriber %s paused after %s failures in a row",
            subscriber.id,
            subscriber.consecutive_failures,
        )


def backoff(attempts: int) -> timedelta:
    """The wait after the n-th failed attempt, by this service's settings."""
    config = current_app.config
    return doubling(
        attempts,
        config["EVENTS_RETRY_BASE_SECONDS"],
        config["EVENTS_RETRY_MAX_SECONDS"],
    )
