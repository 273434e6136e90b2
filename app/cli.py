"""Command-line tasks: users, tokens, deployment, audit verification, the demo."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext
from sqlalchemy import select

from app.config import ROLES
from app.errors import ProblemError
from app.extensions import db
from app.models import User
from app.registry import sample_data
from app.services import (
    audit,
    catalogue,
    definitions,
    erasure,
    letters,
    passwords,
    users,
)

users_cli = AppGroup("users", help="Manage users.")
tokens_cli = AppGroup("tokens", help="Issue API tokens.")
audit_cli = AppGroup("audit", help="Check the audit trail.")
events_cli = AppGroup("events", help="Outbound events.")
registry_cli = AppGroup("registry", help="The personal-data registry.")
mail_cli = AppGroup("mail", help="Outbound mail.")
consent_cli = AppGroup("consent", help="Consent renewal.")
retention_cli = AppGroup("retention", help="Retention enforcement (Art 5(1)(e)).")

DEMO_USER = "demo"


def _fail(error: ProblemError) -> None:
    db.session.rollback()
    click.echo(f"error: {error.detail}", err=True)
    for item in error.errors or []:
        click.echo(f"  {item}", err=True)
    sys.exit(1)


@users_cli.command("create")
@click.argument("name")
@click.option("--role", "roles", multiple=True, required=True, type=click.Choice(ROLES))
@click.option("--password-prompt", is_flag=True, help="Ask for a web password.")
@click.option("--email", default=None, help="Where deadline alerts reach the user.")
def create_user(
    name: str, roles: tuple[str, ...], password_prompt: bool, email: str | None
) -> None:
    """Create a user with one or more roles."""
    password = _ask_password() if password_prompt else None
    try:
        user = users.create_user(name, list(roles), email=email)
        if password is not None:
            passwords.set_password(user, password)
    except ProblemError as error:
        _fail(error)
    db.session.commit()
    click.echo(f"created user {user.name} ({', '.join(user.roles)})", err=True)


@users_cli.command("password")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin.")
def set_password(name: str, password_stdin: bool) -> None:
    """Set the user's web password; their open web sessions end."""
    try:
        user = users.find_user(name)
        password = _read_stdin() if password_stdin else _ask_password()
        passwords.set_password(user, password)
    except ProblemError as error:
        _fail(error)
    db.session.commit()
    click.echo(f"password set for {user.name}", err=True)


@users_cli.command("email")
@click.argument("name")
@click.argument("address")
def set_email(name: str, address: str) -> None:
    """Set the address deadline alerts reach the user at; "" clears it."""
    try:
        user = users.set_email(users.find_user(name), address)
    except ProblemError as error:
        _fail(error)
    db.session.commit()
    done = "set" if user.email else "cleared"
    click.echo(f"email {done} for {user.name}", err=True)


def _read_stdin() -> str:
    return sys.stdin.readline().rstrip("\r\n")


def _ask_password() -> str:
    return click.prompt(
        f"Password (at least {passwords.MIN_LENGTH} characters)",
        hide_input=True,
        confirmation_prompt=True,
        err=True,
    )


@users_cli.command("delete")
@click.argument("name")
def delete_user(name: str) -> None:
    """Delete a user and their tokens."""
    try:
        users.delete_user(users.find_user(name))
    except ProblemError as error:
        _fail(error)
    db.session.commit()


@tokens_cli.command("create")
@click.argument("name")
@click.option("--label", default="cli")
def create_token(name: str, label: str) -> None:
    """Print a new API token for the user, and nothing else, on stdout."""
    try:
        token = users.create_token(users.find_user(name), label)
    except ProblemError as error:
        _fail(error)
    db.session.commit()
    click.echo(token)


@audit_cli.command("verify")
@click.option(
    "--anchor",
    "anchors",
    multiple=True,
    help="A head printed by an earlier run (ID:SHA256); it must still be in the chain.",
)
def verify_audit(anchors: tuple[str, ...]) -> None:
    """Walk the hash chain; exit 1 at the first event that does not fit."""
    try:
        parsed = tuple(audit.Anchor.parse(value) for value in anchors)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--anchor") from None
    report = audit.verify(anchors=parsed)
    if report.ok:
        click.echo(f"audit chain intact: {report.checked} events")
        if report.head:
            click.echo(f"head: {report.head}")
        return
    click.echo(
        f"audit chain broken at event {report.first_bad_id}: {report.reason} "
        f"({report.checked} events verified before it)",
        err=True,
    )
    sys.exit(1)


@registry_cli.command("load")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--replace", is_flag=True, help="Also remove what the file omits.")
def load_registry(path: Path, replace: bool) -> None:
    """Load a YAML catalogue, whole or not at all; loading it again changes nothing."""
    try:
        report = catalogue.load_catalogue(path, replace=replace)
    except ProblemError as error:
        _fail(error)
    db.session.commit()
    for kind, counts in report.counts().items():
        summary = ", ".join(f"{n} {state}" for state, n in counts.items() if n)
        click.echo(f"{kind}: {summary or 'none'}")


@registry_cli.command("replay-erasures")
def replay_erasures() -> None:
    """Apply the erasure ledger again, as after restoring a system from a backup."""
    try:
        replayed = erasure.replay_erasures()
    except ProblemError as error:
        _fail(error)
    db.session.commit()
    if not replayed:
        click.echo("the erasure ledger holds nothing to replay")
    for system, replay in replayed.items():
        click.echo(f"{system}: {replay.describe()}")


@click.command("deploy")
@with_appcontext
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
def deploy(paths: tuple[Path, ...]) -> None:
    """Deploy forms/ and workflows/ (default), or the BPMN files named."""
    try:
        results = _deploy(paths)
    except ProblemError as error:
        _fail(error)
    db.session.commit()
    for result in results:
        version = result.version
        state = "deployed" if result.created else "unchanged"
        click.echo(
            f"{state}: {version.definition.bpmn_process_id} version {version.number}"
        )


def _deploy(paths: tuple[Path, ...]) -> list[definitions.Deployment]:
    config = current_app.config
    if not paths:
        for key in letters.deploy_directory(Path(config["LETTERS_DIR"])):
            click.echo(f"deployed: letter template {key}")
        return definitions.deploy_directory(
            Path(config["WORKFLOWS_DIR"]), Path(config["FORMS_DIR"])
        )
    definitions.deploy_forms(Path(config["FORMS_DIR"]))
    return [definitions.deploy(path.read_bytes(), path.name) for path in paths]


@click.command("demo")
@with_appcontext
def demo() -> None:
    """Build the sample systems, load the demo catalogue, deploy, make the user."""
    if sample_data.create(current_app.config["DEMO_SYSTEMS_URL"]):
        click.echo("created the demo's sample systems (HR, CRM, billing, marketing)")
    try:
        catalogue.load_catalogue(catalogue.DEMO)
        _deploy(())
        _deploy_examples()
    except ProblemError as error:
        _fail(error)
    _demo_sign_ins()
    existing = db.session.scalar(select(User).where(User.name == DEMO_USER))
    if existing is not None:
        db.session.commit()
        click.echo(f"demo user '{DEMO_USER}' exists; its token was shown when made.")
        click.echo(f"new token: flask --app app tokens create {DEMO_USER}")
        return
    user = users.create_user(DEMO_USER, [role for role in ROLES])
    token = users.create_token(user, "demo")
    db.session.commit()
    click.echo(f"demo user '{DEMO_USER}' holds every role. API token (shown once):")
    click.echo(f"\n    {token}\n")
    click.echo(
        f"try: curl -H 'Authorization: Bearer {token}' "
        "http://127.0.0.1:5000/api/v1/definitions"
    )


def _deploy_examples() -> None:
    """Examples whose forms bind the demo catalogue's fields, such as the leave one."""
    config = current_app.config
    for result in definitions.deploy_directory(
        Path(config["WORKFLOWS_DIR"]) / "examples",
        Path(config["FORMS_DIR"]) / "examples",
    ):
        click.echo(f"example: {result.version.definition.bpmn_process_id}")


def _demo_sign_ins() -> None:
    """One web user per role, `demo_<role>`, its password printed only when made."""
    made = []
    for role in ROLES:
        name = f"demo_{role}"
        if users.user_named(name) is not None:
            click.echo(f"web user '{name}' exists; its password was shown when made.")
            continue
        password = passwords.random_password()
        passwords.set_password(users.create_user(name, [role]), password)
        made.append((name, password))
    if made:
        click.echo("web sign-in at http://127.0.0.1:5000/sign-in (shown once):")
    for name, password in made:
        click.echo(f"    {name:<24} {password}")


@click.command("scheduler")
@with_appcontext
@click.option("--once", is_flag=True, help="Sweep once and exit (for cron).")
def scheduler(once: bool) -> None:
    """Run the deadline scheduler alone, outside the web processes."""
    from app.services import scheduler as deadline_scheduler

    if once:
        report = deadline_scheduler.sweep()
        click.echo(f"fired {report.fired} deadlines, {report.failed} failed")
        return
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    runner = deadline_scheduler.start_once(current_app._get_current_object())
    click.echo("deadline scheduler running; Ctrl+C stops it", err=True)
    stop.wait()
    runner.shutdown()


@events_cli.command("dispatch")
@click.option("--limit", default=100, show_default=True, help="Most to send.")
def dispatch_events(limit: int) -> None:
    """Send the outbound deliveries that are due, once."""
    from app.services import events

    attempted = events.dispatch_due(limit=limit)
    click.echo(f"attempted {attempted} deliveries")


@mail_cli.command("dispatch")
@click.option("--limit", default=100, show_default=True, help="Most to send.")
def dispatch_mail(limit: int) -> None:
    """Send the queued mail that is due, once (MAIL_TRANSPORT=smtp)."""
    from app.services import mail

    attempted = mail.dispatch_due(limit=limit)
    click.echo(f"attempted {attempted} messages")


@consent_cli.command("sweep")
def consent_sweep() -> None:
    """Start the consent renewals that are due, once."""
    from app.services import consent

    started = consent.start_due_renewals()
    db.session.commit()
    click.echo(f"started {len(started)} consent renewals")


@retention_cli.command("sweep")
def retention_sweep() -> None:
    """Start one retention sweep now, unless one is already running."""
    from app.services import retention

    try:
        instance = retention.start_sweep()
    except ProblemError as error:
        _fail(error)
    db.session.commit()
    click.echo(f"retention sweep started: instance {instance.id}")


def register(app: Flask) -> None:
    commands = (
        users_cli,
        tokens_cli,
        audit_cli,
        events_cli,
        mail_cli,
        consent_cli,
        retention_cli,
        registry_cli,
        deploy,
        demo,
        scheduler,
    )
    for command in commands:
        app.cli.add_command(command)
