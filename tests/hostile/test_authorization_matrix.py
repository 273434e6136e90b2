"""Every route of the app, called by every kind of caller: who gets in, who is refused.

The routes come from the app's url_map at run time; the table below says who each one
is for. A route missing from the table fails the first test until it is classified.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import delete, select

from app.config import ROLES
from app.extensions import db
from app.models import ApiToken, AuditEvent, User
from app.services import passwords, users

# Role sets, as the `require_roles` / `roles_required` decorators declare them.
EVERYONE = frozenset(ROLES)  # any valid caller; the task's lane decides the rest
OFFICERS = frozenset({"dpo", "privacy_officer", "admin"})
READERS = OFFICERS | {"process_designer"}
DPO_ADMIN = frozenset({"dpo", "admin"})
DESIGNERS = frozenset({"process_designer", "admin"})
ADMIN = frozenset({"admin"})
DPO = frozenset({"dpo"})
SUBJECT_OFFICERS = frozenset({"dpo", "privacy_officer"})
WORKERS = frozenset(ROLES) - {"admin"}  # the inbox: people who do tasks

# Open to anyone, each for a reason.
PUBLIC = {
    "health.Health": "a liveness probe for load balancers; says nothing private",
    "api-docs.openapi_json": "the API's own description",
    "api-docs.openapi_swagger_ui": "the browsable view of that description",
    "static": "stylesheets, scripts and images of the pages",
    "consent_links.WithdrawLink": "the signed token in the link is the credential",
    "consent_links.RenewLink": "the signed token in the link is the credential",
    "webhook_intake.Intake": "authenticated by the HMAC signature of the body",
    "privacy_pages.PublicVersion": "a subject reads the notice they were shown",
    "web_auth.sign_in_form": "where a browser signs in",
    "web_auth.sign_in": "where a browser signs in (CSRF-checked)",
    "web_auth.sign_out": "ends whatever session there is (CSRF-checked)",
}

# (method, endpoint) -> the roles it is for.
PROTECTED = {
    ("GET", "breaches.Breaches"): OFFICERS,
    ("GET", "breaches.BreachDetail"): OFFICERS,
    ("GET", "breaches.BreachExport"): OFFICERS,
    ("GET", "consent.Notices"): OFFICERS,
    ("POST", "consent.Notices"): DPO_ADMIN,
    ("GET", "consent.Purposes"): OFFICERS,
    ("PUT", "consent.PurposeSettings"): DPO_ADMIN,
    ("POST", "consent.Consents"): OFFICERS,
    ("GET", "consent.ConsentItem"): OFFICERS,
    ("POST", "consent.Renew"): OFFICERS,
    ("GET", "consent.Demonstrate"): DPO_ADMIN,
    ("POST", "consent.Withdraw"): OFFICERS,
    ("GET", "deadlines.Deadlines"): OFFICERS,
    ("GET", "definitions.Definitions"): READERS,
    ("POST", "definitions.Definitions"): DESIGNERS,
    ("GET", "definitions.Definition"): READERS,
    ("POST", "definitions.Validate"): DESIGNERS,
    ("GET", "dpias.Dpias"): OFFICERS,
    ("GET", "dpias.DpiaDetail"): OFFICERS,
    ("GET", "forms.Forms"): READERS,
    ("POST", "forms.Forms"): DESIGNERS,
    ("GET", "forms.Form"): READERS,
    ("GET", "instances.Instances"): OFFICERS,
    ("POST", "instances.Instances"): OFFICERS,
    ("GET", "instances.InstanceDetail"): OFFICERS,
    ("POST", "instances.Cancel"): DPO_ADMIN,
    ("GET", "instances.InstanceDeadlines"): OFFICERS,
    ("POST", "instances.Retry"): DPO_ADMIN,
    ("GET", "letters.InstanceLetters"): OFFICERS,
    ("GET", "letters.Templates"): READERS,
    ("GET", "letters.Template"): READERS,
    ("PUT", "letters.Template"): DPO_ADMIN,
    ("GET", "letters.LetterDetail"): OFFICERS,
    ("GET", "letters.LetterHtml"): OFFICERS,
    ("GET", "letters.LetterPdf"): OFFICERS,
    ("GET", "letters.Outbox"): OFFICERS,
    ("GET", "letters.Mail"): OFFICERS,
    ("GET", "letters.MailAttachmentFile"): OFFICERS,
    ("POST", "messages.Messages"): OFFICERS,
    ("GET", "privacy_notices.Notices"): OFFICERS,
    ("GET", "privacy_notices.Versions"): OFFICERS,
    ("GET", "privacy_notices.Version"): OFFICERS,
    ("GET", "privacy_notices.VersionHtml"): OFFICERS,
    ("GET", "privacy_notices.VersionPdf"): OFFICERS,
    ("POST", "privacy_notices.Generate"): DPO_ADMIN,
    ("GET", "registry.Catalogue"): READERS,
    ("POST", "registry.Catalogue"): DPO_ADMIN,
    ("GET", "registry.Categories"): READERS,
    ("POST", "registry.Categories"): DPO_ADMIN,
    ("PUT", "registry.CategoryDetail"): DPO_ADMIN,
    ("DELETE", "registry.CategoryDetail"): DPO_ADMIN,
    ("GET", "registry.Fields"): READERS,
    ("POST", "registry.Fields"): DPO_ADMIN,
    ("GET", "registry.FieldDetail"): READERS,
    ("PUT", "registry.FieldDetail"): DPO_ADMIN,
    ("DELETE", "registry.FieldDetail"): DPO_ADMIN,
    ("GET", "registry.WhereUsed"): READERS,
    ("GET", "registry.FormFields"): READERS,
    ("GET", "registry.ProcessFields"): READERS,
    ("GET", "registry.Purposes"): READERS,
    ("POST", "registry.Purposes"): DPO_ADMIN,
    ("PUT", "registry.PurposeDetail"): DPO_ADMIN,
    ("DELETE", "registry.PurposeDetail"): DPO_ADMIN,
    ("GET", "registry.Systems"): READERS,
    ("POST", "registry.Systems"): DPO_ADMIN,
    ("GET", "registry.SystemDetail"): READERS,
    ("PUT", "registry.SystemDetail"): DPO_ADMIN,
    ("DELETE", "registry.SystemDetail"): DPO_ADMIN,
    ("GET", "registry.Taxonomy"): READERS,
    # Subject operations act on personal data: officers only, erasure by the DPO.
    ("POST", "subjects.AccessReport"): SUBJECT_OFFICERS,
    ("POST", "subjects.Erase"): DPO,
    ("POST", "subjects.Export"): SUBJECT_OFFICERS,
    ("POST", "subjects.Lift"): DPO,
    ("POST", "subjects.Locate"): SUBJECT_OFFICERS,
    ("POST", "subjects.Portability"): SUBJECT_OFFICERS,
    ("POST", "subjects.Restrict"): SUBJECT_OFFICERS,
    ("GET", "reports.ProcessorAgreements"): DPO_ADMIN,
    ("GET", "reports.ProcessorAgreement"): DPO_ADMIN,
    ("GET", "reports.RecordOfProcessing"): OFFICERS,
    ("GET", "subject_requests.Requests"): OFFICERS,
    ("GET", "subject_requests.OneRequest"): OFFICERS,
    ("POST", "subject_requests.SuppressionCheck"): OFFICERS,
    ("GET", "retention.Holds"): OFFICERS,
    ("POST", "retention.Holds"): DPO_ADMIN,
    ("DELETE", "retention.HoldDetail"): DPO_ADMIN,
    ("GET", "retention.Runs"): OFFICERS,
    ("GET", "retention.RunDetail"): OFFICERS,
    ("POST", "retention.Sweeps"): DPO_ADMIN,
    ("GET", "subscribers.Subscribers"): ADMIN,
    ("POST", "subscribers.Subscribers"): ADMIN,
    ("GET", "subscribers.SubscriberDetail"): ADMIN,
    ("DELETE", "subscribers.SubscriberDetail"): ADMIN,
    ("GET", "subscribers.SubscriberDeliveries"): ADMIN,
    ("POST", "subscribers.Resume"): ADMIN,
    # Tasks: any valid caller; the lane of each task decides (tests/api/test_tasks.py).
    ("GET", "tasks.Tasks"): EVERYONE,
    ("GET", "tasks.Task"): EVERYONE,
    ("POST", "tasks.Claim"): EVERYONE,
    ("POST", "tasks.Complete"): EVERYONE,
    ("GET", "tasks.TaskField"): EVERYONE,
    ("POST", "tasks.Unclaim"): EVERYONE,
    ("GET", "users.Users"): ADMIN,
    ("POST", "users.Users"): ADMIN,
    ("DELETE", "users.UserDetail"): ADMIN,
    ("PATCH", "users.UserDetail"): ADMIN,
    ("POST", "users.Tokens"): ADMIN,
    ("GET", "webhooks.Deliveries"): ADMIN,
    ("POST", "webhooks.Retry"): ADMIN,
    ("GET", "webhooks.Endpoints"): ADMIN,
    ("POST", "webhooks.Endpoints"): ADMIN,
    ("GET", "webhooks.EndpointDetail"): ADMIN,
    ("DELETE", "webhooks.EndpointDetail"): ADMIN,
    # The pages (app/web): the areas of app/web/nav.py, page by page.
    ("GET", "web_home.index"): EVERYONE,
    ("GET", "web_inbox.inbox"): WORKERS,
    ("POST", "web_inbox.claim"): WORKERS,
    ("POST", "web_inbox.release"): WORKERS,
    # A task page: any signed-in user; the task's lane decides, as on the API.
    ("GET", "web_tasks.task"): EVERYONE,
    ("POST", "web_tasks.complete"): EVERYONE,
    ("GET", "web_designer.definitions"): DESIGNERS,
    ("GET", "web_designer.edit"): DESIGNERS,
    ("POST", "web_designer.validate"): DESIGNERS,
    ("POST", "web_designer.deploy"): DESIGNERS,
    ("GET", "web_registers.breaches"): OFFICERS,
    ("GET", "web_registers.breaches_csv"): OFFICERS,
    ("GET", "web_registers.requests"): OFFICERS,
    ("GET", "web_registers.requests_csv"): OFFICERS,
    ("GET", "web_registers.deadlines"): OFFICERS,
    ("GET", "web_instances.instances"): OFFICERS,
    ("GET", "web_instances.instance"): OFFICERS,
    ("GET", "web_instances.diagram"): OFFICERS,
    ("GET", "web_instances.letter_pdf"): OFFICERS,
    ("GET", "web_registry.fields"): READERS,
    ("GET", "web_registry.field"): READERS,
    ("GET", "web_registry.subjects"): SUBJECT_OFFICERS,
    ("POST", "web_registry.subjects"): SUBJECT_OFFICERS,
}

# Path parameters that name nothing, so an authorized call is a 404 or 422.
MISSING = {"int": "999999", "default": "nope", "path": "nope", "string": "nope"}
PASSWORD = "correct horse battery"
PARAMETER = re.compile(r"<(?:(?P<converter>\w+)(?:\([^)]*\))?:)?\w+>")


@dataclass(frozen=True)
class Route:
    method: str
    endpoint: str
    url: str

    @property
    def is_api(self) -> bool:
        return self.url.startswith("/api/")

    def __str__(self) -> str:
        return f"{self.method} {self.url} ({self.endpoint})"


def routes_of(app: Flask) -> list[Route]:
    """Every method of every rule, with made-up values for its path parameters."""
    found = []
    for rule in app.url_map.iter_rules():
        url = PARAMETER.sub(
            lambda m: MISSING.get(m["converter"] or "default"), rule.rule
        )
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            found.append(Route(method, rule.endpoint, url))
    return found


def _missing_value(match: re.Match) -> str:
    return MISSING.get(match["converter"] or "default", "nope")


@dataclass
class Visitor:
    """One kind of caller: a bearer token for the API, a session for the pages."""

    label: str
    client: FlaskClient
    roles: frozenset[str] = frozenset()
    user_id: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    csrf: str | None = None
    valid: bool = False

    def call(self, route: Route) -> Any:
        kwargs: dict[str, Any] = {"headers": self.headers}
        if route.method in ("POST", "PUT", "PATCH", "DELETE"):
            if route.is_api:
                kwargs["json"] = {}
            elif self.csrf is not None:
                kwargs["data"] = {"csrf_token": self.csrf}
        return self.client.open(route.url, method=route.method, **kwargs)


def _visitor(app: Flask, label: str, roles: tuple[str, ...]) -> Visitor:
    """A user with the roles, a bearer token, and a browser signed in by the form."""
    name = f"matrix-{label}"
    with app.app_context():
        user = users.create_user(name, list(roles))
        passwords.set_password(user, PASSWORD)
        token = users.create_token(user, "matrix")
        db.session.commit()
        user_id = user.id
    client = app.test_client()
    page = client.get("/sign-in").get_data(as_text=True)
    form = {"name": name, "password": PASSWORD, "csrf_token": _csrf_in(page)}
    assert client.post("/sign-in", data=form).status_code == 302
    with client.session_transaction() as session:
        csrf = session["csrf"]
    headers = {"Authorization": f"Bearer {token}"}
    return Visitor(label, client, frozenset(roles), user_id, headers, csrf, True)


def _csrf_in(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def _spoil(app: Flask, visitor: Visitor, how: str) -> Visitor:
    with app.app_context():
        if how == "deleted user":
            users.delete_user(db.session.get(User, visitor.user_id))
        elif how == "revoked token":
            # There is no revoke endpoint: a token is revoked by removing its row,
            # and a session by a new password (which bumps the session version).
            db.session.execute(
                delete(ApiToken).where(ApiToken.user_id == visitor.user_id)
            )
            passwords.set_password(db.session.get(User, visitor.user_id), "x" * 20)
        else:
            db.session.get(User, visitor.user_id).active = False
        db.session.commit()
    visitor.label, visitor.valid = how, False
    return visitor


@pytest.fixture(params=["no credentials", "deleted user", "revoked token", "inactive"])
def stranger(request, app: Flask) -> Visitor:
    if request.param == "no credentials":
        return Visitor(request.param, app.test_client())
    return _spoil(app, _visitor(app, "spoiled", ("admin", "dpo")), request.param)


@pytest.fixture(params=sorted(ROLES))
def member(request, app: Flask) -> Visitor:
    return _visitor(app, request.param, (request.param,))


def test_every_route_is_classified(app):
    routes = {(route.method, route.endpoint) for route in routes_of(app)}
    public = {key for key in routes if key[1] in PUBLIC}

    unclassified = sorted(routes - public - PROTECTED.keys())
    stale = sorted(PROTECTED.keys() - routes)

    assert not unclassified, (
        "Classify these routes in tests/hostile/test_authorization_matrix.py "
        f"(PROTECTED with their roles, or PUBLIC with a reason): {unclassified}"
    )
    assert not stale, f"These entries name no route any more; remove them: {stale}"


def test_without_valid_credentials_nothing_protected_opens(app, stranger):
    wrong = []
    for route in routes_of(app):
        if route.endpoint in PUBLIC:
            continue
        reply = stranger.call(route)
        if not _refused_as_stranger(route, reply):
            wrong.append(f"{route}: {reply.status_code} {reply.location or ''}")

    assert not wrong, f"{stranger.label} got through or failed oddly:\n" + "\n".join(
        wrong
    )


def _refused_as_stranger(route: Route, reply: Any) -> bool:
    if route.is_api:
        return (
            reply.status_code == 401
            and reply.mimetype == "application/problem+json"
            and reply.headers["WWW-Authenticate"].startswith("Bearer")
        )
    if reply.status_code == 302:
        return reply.location.startswith("/sign-in")
    # A change posted with no session has no CSRF token to match.
    return route.method == "POST" and reply.status_code == 400


def test_each_role_opens_what_it_is_for_and_is_refused_the_rest(app, member):
    wrong = []
    for route in routes_of(app):
        if route.endpoint in PUBLIC:
            continue  # below, with no session to end (sign-out would end this one)
        reply = member.call(route)
        if reply.status_code >= 500:
            wrong.append(f"{route}: {reply.status_code}")
        elif member.roles & PROTECTED[(route.method, route.endpoint)]:
            if reply.status_code in (401, 403) or _sent_to_sign_in(reply):
                wrong.append(f"{route}: refused with {reply.status_code}")
        elif not _refused_and_audited(app, route, reply, member):
            wrong.append(f"{route}: {reply.status_code}, not a 403 in the trail")

    assert not wrong, f"{member.label}:\n" + "\n".join(wrong)


def _sent_to_sign_in(reply: Any) -> bool:
    return reply.status_code == 302 and reply.location.startswith("/sign-in")


def _refused_and_audited(app: Flask, route: Route, reply: Any, member: Visitor) -> bool:
    if reply.status_code != 403:
        return False
    if route.is_api and reply.mimetype != "application/problem+json":
        return False
    with app.app_context():
        event = db.session.scalars(
            select(AuditEvent)
            .where(AuditEvent.action == "access.denied")
            .order_by(AuditEvent.id.desc())
            .limit(1)
        ).first()
    return (
        event is not None
        and event.actor_id == member.user_id
        and event.details.get("path") == route.url
        and event.details.get("method") == route.method
    )


def test_public_routes_answer_without_credentials_and_never_fail(app, client):
    wrong = []
    for route in routes_of(app):
        if route.endpoint not in PUBLIC:
            continue
        reply = client.open(route.url, method=route.method)
        if reply.status_code >= 500 or reply.status_code == 401 and route.is_api:
            wrong.append(f"{route}: {reply.status_code}")
        reply.close()

    assert not wrong, "\n".join(wrong)
