"""POST /webhooks/<name>: signed requests from outside; no bearer token."""

from __future__ import annotations

from typing import Any

from flask import Response, request
from flask.views import MethodView

from app.api.blueprint import Blueprint
from app.api.integration_schemas import WebhookAcceptedSchema
from app.services import signatures, webhooks

blp = Blueprint(
    "webhook_intake",
    __name__,
    description="Signed webhooks that start processes or deliver messages.",
)

HEADERS = [
    {
        "in": "header",
        "name": signatures.TIMESTAMP_HEADER,
        "required": True,
        "schema": {"type": "integer"},
        "description": "Unix seconds when the request was signed (±5 minutes).",
    },
    {
        "in": "header",
        "name": signatures.SIGNATURE_HEADER,
        "required": True,
        "schema": {"type": "string"},
        "description": 'sha256=<hex HMAC-SHA256 of "<timestamp>.<raw body>">',
    },
    {
        "in": "header",
        "name": "Idempotency-Key",
        "required": False,
        "schema": {"type": "string", "maxLength": 255},
        "description": (
            "A repeat of a processed request gets the first reply; a rejected "
            "request does not hold its key. OpenDSR: defaults to subject_request_id."
        ),
    },
]

BODY = {
    "content": {"application/json": {"schema": {"type": "object"}}},
    "description": "Signed byte for byte; mapped by the endpoint's action.",
    "required": True,
}


@blp.after_request
def _signature_challenge(response: Response) -> Response:
    # The shared error path names Bearer on a 401; here a signature is what's missing.
    if response.status_code == 401:
        response.headers["WWW-Authenticate"] = 'HMAC-SHA256 realm="webhooks"'
    return response


@blp.route("/<name>")
class Intake(MethodView):
    @blp.doc(security=[], parameters=HEADERS, requestBody=BODY)
    @blp.response(202, WebhookAcceptedSchema)
    def post(self, name: str) -> tuple[dict[str, Any], int]:
        """Store a signed request, then act on it: 202 with the delivery id."""
        outcome = webhooks.receive(
            name,
            webhooks.SignedRequest(
                body=request.get_data(cache=True),
                timestamp=request.headers.get(signatures.TIMESTAMP_HEADER),
                signature=request.headers.get(signatures.SIGNATURE_HEADER),
                idempotency_key=request.headers.get("Idempotency-Key"),
            ),
        )
        return outcome.reply, outcome.status
