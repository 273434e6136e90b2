"""Signed requests from outside: stored first, then turned into a start or a message."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any

from flask import current_app
from marshmallow import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.errors import (
    BadRequest,
    Conflict,
    NotFound,
    ProblemError,
    Unauthorized,
    Unprocessable,
)
from app.extensions import db
from app.models import Instance, ProcessDefinition, WebhookDelivery, WebhookEndpoint
from app.models.integrations import (
    DELIVER_MESSAGE,
    FAILED,
    OPENDSR,
    PROCESSED,
    RECEIVED,
    REJECTED,
    START_PROCESS,
)
from app.models.types import utcnow
from app.services import audit, events, instances, messages, opendsr, signatures
from app.services.paging import Page, paginate

logger = logging.getLogger(__name__)

RETRYABLE = (RECEIVED, FAILED)


@dataclass(frozen=True)
class Outcome:
    """The reply a processed delivery gets, the first time and every repeat."""

    status: int
    reply: dict[str, Any]


@dataclass(frozen=True)
class SignedRequest:
    body: bytes
    timestamp: str | None
    signature: str | None
    idempotency_key: str | None


def create_endpoint(
    name: str, action: str, mapping: dict[str, Any], actor_id: int | None
) -> WebhookEndpoint:
    """A new endpoint with a fresh secret; the caller shows the secret once."""
    if db.session.scalar(
        select(WebhookEndpoint.id).where(WebhookEndpoint.name == name)
    ):
        raise Conflict(
            f"A webhook endpoint named '{name}' exists.", code="endpoint-exists"
        )
    _require_deployed(action, mapping)
    endpoint = WebhookEndpoint(
        name=name,
        action=action,
        mapping=mapping,
        signing_secret=signatures.new_secret(),
        created_by_id=actor_id,
    )
    db.session.add(endpoint)
    db.session.flush()
    audit.record(
        "webhook_endpoint.created",
        actor_id=actor_id,
        endpoint_id=endpoint.id,
        endpoint=name,
        endpoint_action=action,
    )
    logger.info("webhook endpoint %s created (%s)", name, action)
    return endpoint


def _require_deployed(action: str, mapping: dict[str, Any]) -> None:
    """An endpoint that starts a process nobody deployed would refuse every request."""
    named = _mapped_processes(action, mapping)
    deployed = set(
        db.session.scalars(
            select(ProcessDefinition.bpmn_process_id).where(
                ProcessDefinition.bpmn_process_id.in_(set(named.values()))
            )
        )
    )
    missing = {
        field: process for field, process in named.items() if process not in deployed
    }
    if not missing:
        return
    names = ", ".join(sorted({f"'{process}'" for process in missing.values()}))
    raise Unprocessable(
        f"No process {names} is deployed: deploy it before its endpoint.",
        code="process-not-deployed",
        errors=[
            {"field": field, "message": f"No process '{process}' is deployed."}
            for field, process in sorted(missing.items())
        ],
    )


def _mapped_processes(action: str, mapping: dict[str, Any]) -> dict[str, str]:
    """The process ids an endpoint starts, by the request field that names each."""
    if action == START_PROCESS:
        return {"process_id": mapping["process_id"]}
    if action == OPENDSR:
        return {
            f"request_processes.{request_type}": process
            for request_type, process in mapping["request_processes"].items()
        }
    return {}


def list_endpoints() -> list[WebhookEndpoint]:
    return list(
        db.session.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.name))
    )


def get_endpoint(name: str) -> WebhookEndpoint:
    endpoint = _find_endpoint(name)
    if endpoint is None:
        raise NotFound(f"No webhook endpoint named '{name}'.")
    return endpoint


def delete_endpoint(name: str, actor_id: int | None) -> None:
    """Stop accepting requests there; its delivery log stays."""
    endpoint = get_endpoint(name)
    audit.record(
        "webhook_endpoint.deleted",
        actor_id=actor_id,
        endpoint_id=endpoint.id,
        endpoint=name,
    )
    db.session.delete(endpoint)
    logger.info("webhook endpoint %s deleted", name)


def _find_endpoint(name: str) -> WebhookEndpoint | None:
    return db.session.scalar(
        select(WebhookEndpoint).where(WebhookEndpoint.name == name)
    )


def receive(name: str, request: SignedRequest) -> Outcome:
    """Verify, store and commit, then process; every refusal is logged as a delivery."""
    endpoint = _find_endpoint(name)
    if endpoint is None:
        raise _refuse(
            None,
            name,
            NotFound(
                f"No webhook endpoint named '{name[:80]}'.",
                code="webhook-endpoint-unknown",
            ),
        )
    _verify(endpoint, request)
    delivery_id = _store(endpoint, request)
    return process(delivery_id)


def _verify(endpoint: WebhookEndpoint, request: SignedRequest) -> None:
    try:
        signatures.verify(
            endpoint.signing_secret,
            request.timestamp,
            request.signature,
            request.body,
            now=utcnow().timestamp(),
            tolerance_seconds=current_app.config["WEBHOOK_TOLERANCE_SECONDS"],
        )
    except signatures.SignatureMissing:
        error = Unauthorized(
            f"Sign the request: headers {signatures.TIMESTAMP_HEADER} and "
            f"{signatures.SIGNATURE_HEADER}.",
            code="signature-missing",
        )
    except signatures.SignatureInvalid:
        error = Unauthorized(
            "The signature does not match the body and the endpoint's secret.",
            code="signature-invalid",
        )
    except signatures.TimestampOutsideWindow:
        error = Unauthorized(
            f"The {signatures.TIMESTAMP_HEADER} is outside the accepted window "
            "(a replay, or a clock that is off).",
            code="signature-expired",
        )
    else:
        return
    raise _refuse(endpoint, endpoint.name, error)


def _refuse(
    endpoint: WebhookEndpoint | None, name: str, error: ProblemError
) -> ProblemError:
    """Log a request refused before it was trusted (its bytes are not kept)."""
    db.session.rollback()
    now = utcnow()
    delivery = WebhookDelivery(
        endpoint_id=endpoint.id if endpoint else None,
        endpoint_name=name[:80],
        received_at=now,
        status=REJECTED,
        error_code=error.code,
        error=error.detail[:500],
        reply_status=error.status,
        processed_at=now,
    )
    db.session.add(delivery)
    db.session.commit()
    logger.warning(
        "webhook delivery %s on %r refused: %s", delivery.id, name[:80], error.code
    )
    error.extra["delivery_id"] = delivery.id
    return error


def _store(endpoint: WebhookEndpoint, request: SignedRequest) -> int:
    """Commit the verified request before anything acts on it; the id to process."""
    key = _idempotency_key(endpoint, request)
    digest = hashlib.sha256(request.body).hexdigest()
    existing = _by_key(endpoint.id, key) if key is not None else None
    if existing is not None and existing.status != REJECTED:
        return _same_request(endpoint, existing, digest)
    if existing is not None:
        # A rejection started and changed nothing (no instance waited yet, the
        # body did not fit): the key is free again, and the repeat a new delivery.
        existing.idempotency_key = None
        db.session.flush()
    delivery = WebhookDelivery(
        endpoint_id=endpoint.id,
        endpoint_name=endpoint.name,
        idempotency_key=key,
        body=request.body,
        body_sha256=digest,
        status=RECEIVED,
    )
    db.session.add(delivery)
    try:
        db.session.commit()
    except IntegrityError:
        # Another request with this key committed first: answer as it did.
        db.session.rollback()
        existing = _by_key(endpoint.id, key)
        assert existing is not None
        return _same_request(endpoint, existing, digest)
    return delivery.id


def _idempotency_key(endpoint: WebhookEndpoint, request: SignedRequest) -> str | None:
    """The header's key; for OpenDSR without one, the request's own id."""
    if request.idempotency_key is None:
        return _opendsr_key(endpoint, request.body)
    key = request.idempotency_key.strip()
    if not key or len(key) > 255:
        raise _refuse(
            endpoint,
            endpoint.name,
            BadRequest(
                "An Idempotency-Key is 1 to 255 characters.",
                code="idempotency-key-invalid",
            ),
        )
    return key


def _opendsr_key(endpoint: WebhookEndpoint, raw: bytes) -> str | None:
    if endpoint.action != OPENDSR:
        return None
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    return opendsr.subject_request_id(body)


def _by_key(endpoint_id: int, key: str | None) -> WebhookDelivery | None:
    return db.session.scalar(
        select(WebhookDelivery).where(
            WebhookDelivery.endpoint_id == endpoint_id,
            WebhookDelivery.idempotency_key == key,
        )
    )


def _same_request(
    endpoint: WebhookEndpoint, existing: WebhookDelivery, digest: str
) -> int:
    if existing.body_sha256 != digest:
        raise _refuse(
            endpoint,
            endpoint.name,
            Conflict(
                "This Idempotency-Key (or OpenDSR subject_request_id) was used "
                "before with another body.",
                code="idempotency-key-reused",
            ),
        )
    return existing.id


def process(delivery_id: int) -> Outcome:
    """Act on a stored delivery in its own transaction, or replay what it answered."""
    delivery = _lock(delivery_id)
    if delivery.status not in RETRYABLE:
        replay = _replay(delivery)
        db.session.rollback()
        if isinstance(replay, ProblemError):
            raise replay
        return replay
    endpoint = db.session.get(WebhookEndpoint, delivery.endpoint_id or 0)
    if endpoint is None:
        error = Conflict(
            "The delivery's endpoint was deleted.", code="endpoint-deleted"
        )
        raise _reject(delivery_id, error)
    try:
        fields, instance = _act(endpoint, delivery.body or b"")
    except ProblemError as error:
        raise _reject(delivery_id, error) from None
    except Exception as error:  # any failure leaves a stored, retryable delivery
        raise _fail(delivery_id, error) from None
    return _processed(delivery, endpoint, instance, fields)


def _lock(delivery_id: int) -> WebhookDelivery:
    # SQLite transactions here begin IMMEDIATE (see app.database): already one writer.
    delivery = db.session.scalar(
        select(WebhookDelivery)
        .where(WebhookDelivery.id == delivery_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if delivery is None:
        raise NotFound(f"No webhook delivery with id {delivery_id}.")
    return delivery


def _replay(delivery: WebhookDelivery) -> Outcome | ProblemError:
    reply = dict(delivery.reply or {})
    if delivery.status == PROCESSED:
        return Outcome(delivery.reply_status or 202, reply)
    return ProblemError(
        reply.get("detail", delivery.error or "The delivery was rejected."),
        code=reply.get("code", delivery.error_code),
        status=delivery.reply_status,
        errors=reply.get("errors"),
        **reply.get("extra", {}),
    )


def _acknowledge_request(delivery: WebhookDelivery, instance: Instance) -> None:
    """OpenDSR: the requester's callbacks hear at once that the request is pending."""
    urls = json.loads(delivery.body or b"{}").get("status_callback_urls") or []
    if instance.status not in ("completed", "cancelled") and urls:
        events.request_status(instance.id, urls, "pending")


def _processed(
    delivery: WebhookDelivery,
    endpoint: WebhookEndpoint,
    instance: Instance,
    fields: list[str],
) -> Outcome:
    reply = {
        "delivery_id": delivery.id,
        "status": PROCESSED,
        "instance_id": instance.id,
    }
    delivery.status, delivery.instance_id = PROCESSED, instance.id
    delivery.reply_status, delivery.reply = 202, reply
    if endpoint.action == OPENDSR:
        _acknowledge_request(delivery, instance)
    _finish(delivery)
    audit.record(
        "webhook.processed",
        instance_id=instance.id,
        delivery_id=delivery.id,
        endpoint=endpoint.name,
        endpoint_action=endpoint.action,
        body_fields=fields,
    )
    db.session.commit()
    logger.info(
        "webhook delivery %s on %s processed: instance %s",
        delivery.id,
        endpoint.name,
        instance.id,
    )
    return Outcome(202, reply)


def _finish(delivery: WebhookDelivery) -> None:
    # A processed or rejected body is no longer needed: personal data leaves with it.
    delivery.body = None
    delivery.attempts += 1
    delivery.processed_at = utcnow()


def _reject(delivery_id: int, error: ProblemError) -> ProblemError:
    """The body does not fit the endpoint: nothing started, and it stays so."""
    db.session.rollback()
    delivery = _lock(delivery_id)
    error.extra["delivery_id"] = delivery_id
    delivery.status, delivery.error_code = REJECTED, error.code
    delivery.error = error.detail[:500]
    delivery.reply_status = error.status
    delivery.reply = {
        "detail": error.detail,
        "code": error.code,
        "errors": error.errors,
        "extra": error.extra,
    }
    _finish(delivery)
    audit.record(
        "webhook.rejected",
        delivery_id=delivery_id,
        endpoint=delivery.endpoint_name,
        code=error.code,
    )
    db.session.commit()
    logger.warning(
        "webhook delivery %s on %s rejected: %s",
        delivery_id,
        delivery.endpoint_name,
        error.code,
    )
    return error


def _fail(delivery_id: int, error: Exception) -> ProblemError:
    """An unexpected failure: the body stays, and the delivery can be retried."""
    db.session.rollback()
    kind = type(error).__name__
    # The exception's text may quote the body; only its type is written down.
    logger.error("webhook delivery %s failed: %s", delivery_id, kind)
    delivery = _lock(delivery_id)
    delivery.status, delivery.error_code = FAILED, "processing-failed"
    delivery.error = f"Processing failed ({kind}); the delivery can be retried."
    delivery.attempts += 1
    db.session.commit()
    return ProblemError(
        "The delivery is stored but could not be processed; it can be retried.",
        status=500,
        code="webhook-processing-failed",
        delivery_id=delivery_id,
    )


def _act(endpoint: WebhookEndpoint, raw: bytes) -> tuple[list[str], Instance]:
    """Run the endpoint's action; the body's top-level field names, and the instance."""
    body = _parse(raw)
    fields = sorted(body) if isinstance(body, dict) else []
    mapping = endpoint.mapping
    if endpoint.action == START_PROCESS:
        data = _pick(body, mapping.get("data_fields", {}))
        key_field = mapping.get("business_key_field")
        business_key = _business_key(body, key_field) if key_field else None
        return fields, instances.start(mapping["process_id"], data, business_key, None)
    if endpoint.action == DELIVER_MESSAGE:
        correlation = _pick(body, mapping["correlation_fields"])
        payload = _pick(body, mapping.get("payload_fields", {}))
        return fields, messages.deliver(
            mapping["message_name"], correlation, payload, None
        )
    if endpoint.action == OPENDSR:
        return fields, _start_request(body, mapping["request_processes"])
    raise Conflict(
        f"Unknown endpoint action '{endpoint.action}'.", code="unknown-action"
    )


def _parse(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise Unprocessable("The body is not JSON.", code="body-not-json") from None


def _pick(body: Any, paths: dict[str, str]) -> dict[str, Any]:
    """Instance names to values found at dotted paths in the body; each must exist."""
    values, missing = {}, []
    for name, path in paths.items():
        found, value = _lookup(body, path)
        if found:
            values[name] = value
        else:
            missing.append({"field": path, "message": "Missing in the body."})
    if missing:
        raise Unprocessable(
            "The body lacks fields this endpoint maps.",
            code="body-mapping-failed",
            errors=missing,
        )
    return values


def _lookup(body: Any, path: str) -> tuple[bool, Any]:
    node = body
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _business_key(body: Any, path: str) -> str:
    value = _pick(body, {"key": path})["key"]
    if isinstance(value, bool) or not isinstance(value, (str, int)) or value == "":
        raise Unprocessable(
            "The business key must be a string or a number.",
            code="body-mapping-failed",
            errors=[{"field": path, "message": "Not a string or a number."}],
        )
    return str(value)[:255]


def _start_request(body: Any, processes: dict[str, str]) -> Instance:
    try:
        request = opendsr.load(body)
    except ValidationError as error:
        raise Unprocessable(
            "The body is not a valid OpenDSR request.",
            code="opendsr-invalid",
            errors=_field_errors(error.messages),
        ) from None
    request_type = request["subject_request_type"]
    process_id = processes.get(request_type)
    if process_id is None:
        raise Unprocessable(
            f"This endpoint does not accept '{request_type}' requests.",
            code="request-type-not-accepted",
            errors=[{"field": "subject_request_type", "message": "Not accepted here."}],
        )
    _check_callbacks(request["status_callback_urls"])
    data = opendsr.instance_data(request)
    return instances.start(process_id, data, request["subject_request_id"], None)


def _check_callbacks(urls: list[str]) -> None:
    """Status callbacks go only where the outbound settings allow."""
    refused = [
        {"field": f"status_callback_urls.{index}", "message": reason}
        for index, url in enumerate(urls)
        if (reason := events.refusal(url)) is not None
    ]
    if refused:
        raise Unprocessable(
            "A status callback URL is not a public address.",
            code="opendsr-invalid",
            errors=refused,
        )


def _field_errors(nested: Any, path: str = "") -> list[dict[str, Any]]:
    """marshmallow's nested messages, one entry per field (they never quote values)."""
    if isinstance(nested, dict):
        out: list[dict[str, Any]] = []
        for key, value in nested.items():
            child = path if key == "_schema" else f"{path}.{key}" if path else str(key)
            out.extend(_field_errors(value, child))
        return out
    items = nested if isinstance(nested, list) else [nested]
    return [{"field": path or None, "message": str(item)} for item in items]


def retry(delivery_id: int, actor_id: int | None) -> WebhookDelivery:
    """Process a failed (or stuck) delivery again; the delivery as it ends up."""
    delivery = get_delivery(delivery_id)
    if delivery.status not in RETRYABLE:
        raise Conflict(
            f"Only a failed delivery can be retried; this one is {delivery.status}.",
            code="delivery-not-retryable",
        )
    audit.record("webhook.retried", actor_id=actor_id, delivery_id=delivery_id)
    db.session.commit()
    try:
        process(delivery_id)
    except ProblemError:
        db.session.rollback()
    return get_delivery(delivery_id)


def get_delivery(delivery_id: int) -> WebhookDelivery:
    delivery = db.session.get(WebhookDelivery, delivery_id, populate_existing=True)
    if delivery is None:
        raise NotFound(f"No webhook delivery with id {delivery_id}.")
    return delivery


def list_deliveries(
    *,
    endpoint_name: str | None = None,
    status: str | None = None,
    page: int = 1,
    page_size: int = 50,
) -> Page:
    """The delivery log, newest first; bodies are never part of it."""
    query = select(WebhookDelivery)
    if endpoint_name:
        query = query.where(WebhookDelivery.endpoint_name == endpoint_name)
    if status:
        query = query.where(WebhookDelivery.status == status)
    order = (WebhookDelivery.received_at.desc(), WebhookDelivery.id.desc())
    return paginate(query, order, page, page_size)
