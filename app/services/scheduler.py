"""Fire due deadlines exactly once; APScheduler only decides when to look."""

from __future__ import annotations

import atexit
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler
from flask import Flask, current_app, has_app_context
from sqlalchemy import event, func, inspect, or_, select
from sqlalchemy.orm import Session

from app import clock, database
from app.errors import Conflict, Unprocessable
from app.extensions import db
from app.models import Deadline, Instance
from app.models.deadlines import ESCALATE, FIRED, PENDING, REMIND, WAKE
from app.models.instances import CANCELLED, COMPLETED
from app.services import audit, deadlines, events, instances, mail, users

logger = logging.getLogger(__name__)

BATCH = 100
MAX_ATTEMPTS = 5
# The earliest due time a transaction gave a pending deadline, kept in session.info.
EARLIEST_DUE = "gdpr.earliest_due"


@dataclass
class SweepReport:
    fired: int = 0
    failed: int = 0
    fired_ids: list[int] = field(default_factory=list)


class InstanceBusy(Exception):
    """A request holds the instance a deadline would wake; the sweep does not wait."""


def _due(now: datetime) -> list[Deadline]:
    """Claim a batch: rows another sweeper holds are skipped, never taken twice.

    Lock order, so that a sweep and a request never wait on each other in a ring:
    the sweep takes the audit chain first, then its deadline rows, and never
    waits for an instance row; a request takes its instance row, then the chain.
    """
    due = (
        Deadline.state == PENDING,
        Deadline.due_at <= now,
        or_(Deadline.retry_at.is_(None), Deadline.retry_at <= now),
    )
    if db.session.scalar(select(Deadline.id).where(*due).limit(1)) is None:
        return []
    audit.lock_chain()
    query = (
        select(Deadline)
        .where(*due)
        .order_by(Deadline.due_at, Deadline.id)
        .limit(BATCH)
        .with_for_update(skip_locked=True)
    )
    return list(db.session.scalars(query))


def sweep(now: datetime | None = None, limit: int = 10_000) -> SweepReport:
    """Fire every deadline due by `now`, each in its own savepoint."""
    now = now or clock.now()
    report = SweepReport()
    woken: set[tuple[str, str]] = set()
    while report.fired + report.failed < limit:
        batch = _due(now)
        if not batch:
            db.session.commit()
            break
        for deadline in batch:
            key = (deadline.instance_id, deadline.name)
            if key in woken:
                _again_later(deadline, now)
                continue
            woken.add(key)
            _fire_one(deadline, now, report)
        db.session.commit()
    if report.fired or report.failed:
        logger.info("sweep fired %s deadlines, %s failed", report.fired, report.failed)
    return report


def _again_later(deadline: Deadline, now: datetime) -> None:
    # Woken once already in this sweep and due again: the engine fires a timer
    # only once its time is strictly past, so a wake at that very instant finds
    # it still waiting. The next sweep tries again, instead of this one forever.
    deadline.retry_at = now + timedelta(seconds=1)


def _fire_one(deadline: Deadline, now: datetime, report: SweepReport) -> None:
    try:
        with db.session.begin_nested():
            # Fired before the wake, so the wake's own timer sync leaves it alone.
            deadline.state, deadline.closed_at = FIRED, now
            _fire(deadline, now)
    except InstanceBusy:
        _again_later(deadline, now)
        return
    except Exception as error:
        if database.is_transient(error):
            # It met a request on the same instance and lost the deadlock: not
            # a failure of the deadline; the next sweep, a second later, fires it.
            logger.warning("deadline %s: deadlock victim; again shortly", deadline.id)
            _again_later(deadline, now)
            return
        logger.exception(
            "deadline %s of instance %s failed", deadline.id, deadline.instance_id
        )
        deadline.attempts += 1
        deadline.last_error = "firing failed; see the service log"
        deadline.retry_at = now + timedelta(minutes=2**deadline.attempts)
        if deadline.attempts >= MAX_ATTEMPTS:
            deadline.retry_at = now + timedelta(days=1)
        report.failed += 1
        return
    report.fired += 1
    report.fired_ids.append(deadline.id)


def _fire(deadline: Deadline, now: datetime) -> None:
    woken = _lock_unless_busy(deadline.instance_id) if deadline.action == WAKE else None
    deadlines.record_fired(deadline, now)
    if woken is not None:
        _wake(woken)
    elif deadline.action in (REMIND, ESCALATE):
        _notify(deadline)


def _lock_unless_busy(instance_id: str) -> Instance:
    instance = db.session.scalar(
        select(Instance)
        .where(Instance.id == instance_id)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )
    if instance is None:
        # A request holds it (and may wait for the chain this sweep holds).
        raise InstanceBusy(instance_id)
    return instance


def _wake(instance: Instance) -> None:
    """Refresh the instance's timers and run it on, as a timer firing does."""
    if instance.status in (COMPLETED, CANCELLED):
        return
    instances.run_and_save(instance, instances.load(instance), None, refuse=False)


def _notify(deadline: Deadline) -> None:
    """Tell people: mail to the role's users, and the outbound event as before."""
    _mail_alert(deadline)
    event_type = (
        "deadline.missed" if deadline.action == ESCALATE else "deadline.approaching"
    )
    events.emit(
        event_type,
        {
            "instance_id": deadline.instance_id,
            "deadline": deadline.name,
            "kind": deadline.kind,
            "due_at": deadline.due_at.isoformat(),
            "article": deadline.rule.get("article"),
            "role": deadline.role,
        },
    )


def _mail_alert(deadline: Deadline) -> None:
    """Queue one alert per recipient in the firing's savepoint.

    A firing that fails rolls its savepoint back, mail included, so the retry
    that fires it mails each recipient once.
    """
    addresses = _alert_addresses(deadline)
    if not addresses:
        return
    subject, paragraphs = _alert_text(deadline)
    for address in addresses:
        mail.queue_plain(address, subject, paragraphs, deadline.instance_id)
    logger.info("deadline %s: %s alert mails queued", deadline.id, len(addresses))


def _alert_addresses(deadline: Deadline) -> list[str]:
    """The role's users with an address; an escalation reaches the DPOs as well.

    An escalation nobody holding those roles can receive goes to DPO_EMAIL.
    """
    roles = [deadline.role] if deadline.role else []
    if deadline.action == ESCALATE:
        roles.append("dpo")
    found = users.addresses_of(*roles)
    if found or deadline.action != ESCALATE:
        return found
    try:
        fallback = users.check_email(current_app.config.get("DPO_EMAIL"))
    except Unprocessable:
        logger.warning("deadline %s: DPO_EMAIL is not a mail address", deadline.id)
        return []
    return [fallback] if fallback else []


def _alert_text(deadline: Deadline) -> tuple[str, list[str]]:
    """Subject and paragraphs naming the case and its rule, never the data subject."""
    about = _legal_of(deadline)
    case = deadlines.instances_of([deadline]).get(deadline.instance_id, {})
    process = case.get("process") or case.get("process_id") or "a process"
    reference = case.get("business_key")
    fired_at = deadline.closed_at or clock.now()
    status = _how_far(about.due_at, fired_at)
    case_part = f", case {reference}" if reference else ""
    named = f"'{about.name}' of {process}{case_part}"
    if deadline.action == ESCALATE:
        subject = f"Deadline missed: {named}"
        opening = f"The {_kind(about.kind)} '{about.name}' has passed unmet."
    else:
        subject = f"Deadline reminder: {named}, {status}"
        opening = f"The {_kind(deadline.kind)} '{deadline.name}' fell due."
    paragraphs = [
        opening,
        f"Process: {process}",
        f"Instance: {deadline.instance_id}",
        *([f"Case reference: {reference}"] if reference else []),
        f"Deadline: {about.name} ({_kind(about.kind)})",
        f"Rule: {_rule_text(about)}",
        f"Due: {_local(about.due_at)}, {status}",
        f"Instance page: {_instance_page(deadline.instance_id)}",
    ]
    return subject, paragraphs


def _legal_of(deadline: Deadline) -> Deadline:
    """The deadline a target or reminder counts back from; otherwise itself."""
    parent = deadline.rule.get("of")
    if not parent:
        return deadline
    found = db.session.scalar(
        select(Deadline)
        .where(Deadline.instance_id == deadline.instance_id, Deadline.name == parent)
        .order_by(Deadline.id.desc())
        .limit(1)
    )
    return found or deadline


KIND_WORDS = {
    "legal": "legal deadline",
    "internal_target": "internal target",
    "reminder": "reminder",
    "escalation": "escalation",
    "bpmn_timer": "timer",
}


def _kind(kind: str) -> str:
    return KIND_WORDS.get(kind, kind)


def _rule_text(deadline: Deadline) -> str:
    rule = deadline.rule
    parts = [
        rule.get("article") or "no article named",
        f"period {rule['period']}" if rule.get("period") else None,
        rule.get("rule"),
    ]
    return ", ".join(part for part in parts if part)


def _local(moment: datetime) -> str:
    """The moment on the organisation's clock, e.g. '2 April 2026, 23:59 CEST'."""
    local = moment.astimezone(deadlines.calendar().zone)
    return f"{local.day} {local:%B %Y, %H:%M %Z}"


def _how_far(due_at: datetime, now: datetime) -> str:
    if due_at <= now:
        return f"overdue by {_span(now - due_at)}"
    return f"due in {_span(due_at - now)}"


def _span(delta: timedelta) -> str:
    if delta >= timedelta(days=1):
        return _count(delta.days, "day")
    if delta >= timedelta(hours=1):
        return _count(int(delta.total_seconds() // 3600), "hour")
    return "less than an hour"


def _count(n: int, unit: str) -> str:
    return f"{n} {unit}" if n == 1 else f"{n} {unit}s"


def _instance_page(instance_id: str) -> str:
    base = str(current_app.config.get("PUBLIC_BASE_URL") or "").rstrip("/")
    return f"{base}/instances/{instance_id}"


def next_due_at() -> datetime | None:
    """When the earliest pending deadline falls due (or may be retried)."""
    due = db.session.scalar(
        select(func.min(Deadline.due_at)).where(
            Deadline.state == PENDING, Deadline.retry_at.is_(None)
        )
    )
    retry = db.session.scalar(
        select(func.min(Deadline.retry_at)).where(
            Deadline.state == PENDING, Deadline.retry_at.is_not(None)
        )
    )
    db.session.commit()
    times = [moment for moment in (due, retry) if moment is not None]
    return min(times) if times else None


class DeadlineScheduler:
    """One APScheduler job that sleeps until the next deadline, then sweeps."""

    JOB_ID = "deadline-sweep"

    def __init__(self, app: Flask, poll_seconds: float = 30.0) -> None:
        self.app = app
        self.poll = timedelta(seconds=poll_seconds)
        self._scheduler = BackgroundScheduler(timezone="UTC")
        self._lock = threading.Lock()
        self._stopping = False
        self.sweeps = 0

    def start(self) -> None:
        """Start and sweep at once: what came due while stopped fires now."""
        self._scheduler.start()
        self._plan(clock.now())
        config = self.app.config
        self._every(
            self._dispatch, config["EVENTS_DISPATCH_SECONDS"], "outbound-dispatch"
        )
        self._every(
            self._renew_consents,
            config["CONSENT_RENEWAL_SWEEP_SECONDS"],
            "consent-renewal-sweep",
        )
        self._every(
            self._sweep_retention, config["RETENTION_SWEEP_SECONDS"], "retention-sweep"
        )
        logger.info("deadline scheduler started")

    def shutdown(self) -> None:
        # APScheduler's shutdown holds its job-store lock while it waits for a
        # running sweep; a sweep re-planning itself then would wait forever.
        with self._lock:
            self._stopping = True
        if self._scheduler.running:
            self._scheduler.shutdown(wait=True)

    def nudge(self, when: datetime) -> None:
        """Wake earlier than planned, for a deadline made in this process."""
        job = self._scheduler.get_job(self.JOB_ID)
        planned = job.next_run_time if job is not None else None
        wanted = datetime.now(UTC) + max(when - clock.now(), timedelta(0))
        if planned is None or wanted < planned:
            self._plan(when)

    def _plan(self, when: datetime) -> None:
        # APScheduler sleeps on the real clock; the delay comes from the service's.
        delay = max(when - clock.now(), timedelta(0))
        with self._lock:
            if self._stopping:
                return
            self._scheduler.add_job(
                self._run,
                "date",
                run_date=datetime.now(UTC) + delay,
                id=self.JOB_ID,
                replace_existing=True,
                misfire_grace_time=None,
                coalesce=True,
            )

    def _every(self, job: Callable[[], None], seconds: float, job_id: str) -> None:
        self._scheduler.add_job(
            job,
            "interval",
            seconds=seconds,
            id=job_id,
            replace_existing=True,
            coalesce=True,
            max_instances=1,
        )

    def _in_app(self, work: Callable[[], None], what: str) -> None:
        """Run one job's work in its own app context and transaction."""
        with self.app.app_context():
            try:
                work()
                db.session.commit()
            except Conflict:
                logger.info("%s: already under way; nothing started", what)
                db.session.rollback()
            except Exception:
                logger.exception("%s failed", what)
                db.session.rollback()
            finally:
                db.session.remove()

    def _dispatch(self) -> None:
        """Send the outbound events, status callbacks and mail that are due."""
        self._in_app(events.dispatch_due, "outbound dispatch")
        self._in_app(mail.dispatch_due, "mail dispatch")

    def _renew_consents(self) -> None:
        """Start the consent renewals that fell due (interval or material notice)."""
        from app.services import consent

        self._in_app(lambda: consent.start_due_renewals(clock.now()), "consent renewal")

    def _sweep_retention(self) -> None:
        """Start the retention sweep (Art 5(1)(e)) unless one is still running."""
        from app.services import retention

        self._in_app(retention.start_sweep, "retention sweep")

    def _run(self) -> None:
        with self.app.app_context():
            try:
                sweep()
                upcoming = next_due_at()
            except Exception:
                logger.exception("deadline sweep failed")
                db.session.rollback()
                upcoming = None
            finally:
                db.session.remove()
        self.sweeps += 1
        wake = clock.now() + self.poll
        self._plan(min(upcoming, wake) if upcoming else wake)


_started: list[DeadlineScheduler] = []
_starting = threading.Lock()


def start_once(app: Flask) -> DeadlineScheduler:
    """This process's scheduler: started by the first call, reused by any later one.

    A second scheduler in one process would only sweep the same rows again;
    processes coordinate through the database, threads need not.
    """
    with _starting:
        if not _started:
            runner = DeadlineScheduler(app, app.config["SCHEDULER_POLL_SECONDS"])
            runner.start()
            atexit.register(runner.shutdown)
            _started.append(runner)
            _watch_commits()
        app.extensions["gdpr.scheduler"] = _started[0]
        return _started[0]


def _watch_commits() -> None:
    listeners = {
        "after_flush": _note_due_times,
        "after_commit": _nudge_after_commit,
        "after_rollback": _forget_due_times,
    }
    for name, listener in listeners.items():
        if not event.contains(db.session, name, listener):
            event.listen(db.session, name, listener)


def _note_due_times(session: Session, _flush: object) -> None:
    """Remember the earliest due time this flush gave a pending deadline."""
    for row in (*session.new, *session.dirty):
        if not isinstance(row, Deadline):
            continue
        tracked = inspect(row)
        set_to = tracked.attrs.due_at.history.added
        if not set_to or tracked.dict.get("state", PENDING) != PENDING:
            continue
        earliest = session.info.get(EARLIEST_DUE)
        due = set_to[0] if earliest is None else min(earliest, set_to[0])
        session.info[EARLIEST_DUE] = due


def _nudge_after_commit(session: Session) -> None:
    # A deadline made here may fall due before the next planned sweep, which
    # would otherwise only see it after SCHEDULER_POLL_SECONDS.
    earliest = session.info.pop(EARLIEST_DUE, None)
    if earliest is None or not has_app_context():
        return
    runner = current_app.extensions.get("gdpr.scheduler")
    if runner is not None:
        runner.nudge(earliest)


def _forget_due_times(session: Session) -> None:
    session.info.pop(EARLIEST_DUE, None)
