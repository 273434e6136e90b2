"""The command line: users, tokens, deployment, the demo, audit verification."""

from __future__ import annotations

import pytest

from app.extensions import db
from app.models import AuditEvent


@pytest.fixture
def cli(app):
    return app.test_cli_runner()


def test_a_user_made_on_the_command_line_gets_a_working_token(cli, client):
    created = cli.invoke(args=["users", "create", "olga", "--role", "privacy_officer"])
    assert created.exit_code == 0

    issued = cli.invoke(args=["tokens", "create", "olga"])

    token = issued.stdout.strip()
    assert issued.exit_code == 0
    assert token.startswith("gws_") and "\n" not in token
    reply = client.get("/api/v1/tasks", headers={"Authorization": f"Bearer {token}"})
    assert reply.status_code == 200


def test_an_unknown_role_is_refused(cli):
    result = cli.invoke(args=["users", "create", "x", "--role", "root"])

    assert result.exit_code != 0


def test_a_token_for_nobody_is_refused(cli):
    result = cli.invoke(args=["tokens", "create", "ghost"])

    assert result.exit_code == 1
    assert "ghost" in result.stderr
    assert result.stdout == ""


def test_deploy_deploys_the_bundled_workflows_once(cli):
    first = cli.invoke(args=["deploy"])
    second = cli.invoke(args=["deploy"])

    assert "deployed: two_step_review version 1" in first.stdout
    assert "unchanged: two_step_review version 1" in second.stdout


def test_the_demo_prints_its_token_once(cli, client):
    first = cli.invoke(args=["demo"])
    token = next(word for word in first.stdout.split() if word.startswith("gws_"))

    second = cli.invoke(args=["demo"])

    reply = client.get(
        "/api/v1/definitions", headers={"Authorization": f"Bearer {token}"}
    )
    deployed = {item["process_id"] for item in reply.get_json()["items"]}
    assert {"two_step_review", "data_subject_request"} <= deployed
    assert "gws_" not in second.stdout


def test_audit_verify_fails_on_a_tampered_chain(app, cli):
    cli.invoke(args=["users", "create", "olga", "--role", "dpo"])
    assert cli.invoke(args=["audit", "verify"]).exit_code == 0

    with app.app_context():
        event = db.session.query(AuditEvent).first()
        event.details = {"user_id": 42}
        db.session.commit()
    result = cli.invoke(args=["audit", "verify"])

    assert result.exit_code == 1
    assert "broken" in result.stderr


def _emails(app):
    from app.models import User

    with app.app_context():
        return {user.name: user.email for user in db.session.query(User)}


def test_a_user_made_with_an_email_on_the_command_line_keeps_it(app, cli):
    created = cli.invoke(
        args=["users", "create", "dina", "--role", "dpo", "--email", "dina@example.org"]
    )

    assert created.exit_code == 0
    assert "dina@example.org" not in created.output
    assert _emails(app) == {"dina": "dina@example.org"}


def test_users_email_sets_and_an_empty_address_clears(app, cli):
    cli.invoke(args=["users", "create", "dina", "--role", "dpo"])

    set_ = cli.invoke(args=["users", "email", "dina", "dina@example.org"])
    assert (set_.exit_code, set_.stderr.strip()) == (0, "email set for dina")
    assert _emails(app) == {"dina": "dina@example.org"}
    cleared = cli.invoke(args=["users", "email", "dina", ""])

    assert (cleared.exit_code, cleared.stderr.strip()) == (0, "email cleared for dina")
    assert _emails(app) == {"dina": None}
    with app.app_context():
        audited = db.session.query(AuditEvent).all()
    assert "dina@example.org" not in str([event.details for event in audited])


@pytest.mark.parametrize(
    "args",
    [
        ["users", "create", "dina", "--role", "dpo", "--email", "dina at example"],
        ["users", "email", "olga", "dina at example"],
    ],
    ids=["create", "email"],
)
def test_a_bad_email_on_the_command_line_is_refused_and_changes_nothing(app, cli, args):
    cli.invoke(args=["users", "create", "olga", "--role", "dpo"])

    result = cli.invoke(args=args)

    assert result.exit_code == 1
    assert "email" in result.stderr
    assert "dina at example" not in result.stderr
    assert _emails(app) == {"olga": None}


def test_users_email_for_nobody_is_refused(cli):
    result = cli.invoke(args=["users", "email", "ghost", "ghost@example.org"])

    assert result.exit_code == 1
    assert "ghost" in result.stderr
