"""Settings from the environment, with defaults that are safe to run."""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any

ROLES = ("admin", "dpo", "manager", "privacy_officer", "process_designer")


def _bool(value: str | None, default: bool = False) -> bool:
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


def _secret_key(instance_path: Path) -> str:
    """SECRET_KEY, or a random one kept in the instance folder (never a constant)."""
    key = os.environ.get("SECRET_KEY")
    if key:
        return key
    key_file = instance_path / "secret_key"
    if key_file.exists():
        return key_file.read_text().strip()
    instance_path.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    key_file.write_text(key)
    key_file.chmod(0o600)
    return key


def _letters_and_mail() -> dict[str, Any]:
    """Who the letters come from, and how mail leaves (outbox or SMTP)."""
    env = os.environ.get
    return {
        "LETTERS_DIR": env("LETTERS_DIR", "letters"),
        "CONTROLLER_NAME": env("CONTROLLER_NAME", "Example Organisation B.V."),
        "CONTROLLER_ADDRESS": env(
            "CONTROLLER_ADDRESS", "Voorbeeldstraat 1, 1011 AA Amsterdam"
        ),
        "CONTROLLER_EMAIL": env("CONTROLLER_EMAIL", "privacy@example.org"),
        "DPO_NAME": env("DPO_NAME", "The Data Protection Officer"),
        "DPO_EMAIL": env("DPO_EMAIL", "dpo@example.org"),
        "SUPERVISORY_AUTHORITY_NAME": env(
            "SUPERVISORY_AUTHORITY_NAME", "Autoriteit Persoonsgegevens"
        ),
        "SUPERVISORY_AUTHORITY_URL": env(
            "SUPERVISORY_AUTHORITY_URL", "https://autoriteitpersoonsgegevens.nl"
        ),
        "MAIL_TRANSPORT": env("MAIL_TRANSPORT", "outbox"),
        "MAIL_FROM": env("MAIL_FROM", "privacy@example.org"),
        "MAIL_SMTP_HOST": env("MAIL_SMTP_HOST", "localhost"),
        "MAIL_SMTP_PORT": int(env("MAIL_SMTP_PORT", "587")),
        "MAIL_SMTP_USER": env("MAIL_SMTP_USER"),
        "MAIL_SMTP_PASSWORD": env("MAIL_SMTP_PASSWORD"),
        "MAIL_SMTP_STARTTLS": _bool(env("MAIL_SMTP_STARTTLS"), default=True),
        "MAIL_TIMEOUT_SECONDS": _float("MAIL_TIMEOUT_SECONDS", 10),
        "MAIL_RETRY_BASE_SECONDS": _float("MAIL_RETRY_BASE_SECONDS", 60),
        "MAIL_RETRY_MAX_SECONDS": _float("MAIL_RETRY_MAX_SECONDS", 6 * 3600),
        "MAIL_MAX_ATTEMPTS": int(env("MAIL_MAX_ATTEMPTS", "8")),
    }


def _web_sign_in() -> dict[str, Any]:
    """The web pages' session cookie and the sign-in lock-out."""
    env = os.environ.get
    return {
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        # Off by default so http://127.0.0.1 works; turn on behind HTTPS.
        "SESSION_COOKIE_SECURE": _bool(env("SESSION_COOKIE_SECURE")),
        "PERMANENT_SESSION_LIFETIME": timedelta(hours=_float("WEB_SESSION_HOURS", 8)),
        "SIGN_IN_MAX_FAILURES": int(env("SIGN_IN_MAX_FAILURES", "5")),
        "SIGN_IN_LOCK_MINUTES": _float("SIGN_IN_LOCK_MINUTES", 15),
    }


def load(instance_path: Path, keyed: bool = False) -> dict[str, Any]:
    """The configuration mapping the app factory starts from."""
    default_db = f"sqlite:///{instance_path / 'gdpr.sqlite3'}"
    return {
        "SQLALCHEMY_DATABASE_URI": os.environ.get("DATABASE_URL", default_db),
        # The demo's own sample systems (HR, CRM, billing, marketing) that the demo
        # catalogue's connectors read; `flask demo` creates it.
        "DEMO_SYSTEMS_URL": os.environ.get(
            "DEMO_SYSTEMS_URL", f"sqlite:///{instance_path / 'demo_systems.sqlite3'}"
        ),
        # A caller that brings its own key leaves no key file behind.
        "SECRET_KEY": "" if keyed else _secret_key(instance_path),
        "TIMEZONE": os.environ.get("TIMEZONE", "Europe/Amsterdam"),
        "MEMBER_STATE": os.environ.get("MEMBER_STATE", "NL"),
        # A region whose own public holidays count too, e.g. BY (Bavaria) for DE.
        "MEMBER_STATE_SUBDIVISION": os.environ.get("MEMBER_STATE_SUBDIVISION"),
        "SCHEDULER_ENABLED": _bool(os.environ.get("SCHEDULER_ENABLED")),
        "SCHEDULER_POLL_SECONDS": float(os.environ.get("SCHEDULER_POLL_SECONDS", "30")),
        "MAX_CONTENT_LENGTH": int(os.environ.get("MAX_CONTENT_LENGTH", 2 * 1024**2)),
        "WORKFLOWS_DIR": os.environ.get("WORKFLOWS_DIR", "workflows"),
        "FORMS_DIR": os.environ.get("FORMS_DIR", "forms"),
        **_letters_and_mail(),
        **_web_sign_in(),
        "SANDBOX_TIMEOUT_SECONDS": float(os.environ.get("SANDBOX_TIMEOUT", "2")),
        "SANDBOX_MEMORY_MB": int(os.environ.get("SANDBOX_MEMORY_MB", "512")),
        "SANDBOX_WORKERS": int(os.environ.get("SANDBOX_WORKERS", "2")),
        "LOG_JSON": _bool(os.environ.get("LOG_JSON")),
        "LOG_LEVEL": os.environ.get("LOG_LEVEL", "INFO").upper(),
        # Signed webhook requests older or newer than this are refused as replays.
        "WEBHOOK_TOLERANCE_SECONDS": _float("WEBHOOK_TOLERANCE_SECONDS", 300),
        "EVENTS_TIMEOUT_SECONDS": _float("EVENTS_TIMEOUT_SECONDS", 5),
        "EVENTS_RETRY_BASE_SECONDS": _float("EVENTS_RETRY_BASE_SECONDS", 30),
        "EVENTS_RETRY_MAX_SECONDS": _float("EVENTS_RETRY_MAX_SECONDS", 6 * 3600),
        # A subscriber failing this many times in a row is paused.
        "EVENTS_MAX_FAILURES": _float("EVENTS_MAX_FAILURES", 8),
        "EVENTS_DISPATCH_SECONDS": _float("EVENTS_DISPATCH_SECONDS", 10),
        # Off: no outbound POST may reach loopback, link-local or private addresses.
        "OUTBOUND_ALLOW_PRIVATE": _bool(os.environ.get("OUTBOUND_ALLOW_PRIVATE")),
        # Art 8(1): 16 unless member-state law sets a lower age, not below 13.
        "CONSENT_MINIMUM_AGE": int(os.environ.get("CONSENT_MINIMUM_AGE", "16")),
        "CONSENT_RENEWAL_SWEEP_SECONDS": _float("CONSENT_RENEWAL_SWEEP_SECONDS", 3600),
        "RETENTION_SWEEP_SECONDS": _float("RETENTION_SWEEP_SECONDS", 86400),
        "PUBLIC_BASE_URL": os.environ.get("PUBLIC_BASE_URL", "http://127.0.0.1:5000"),
        # Art 12(3)'s month runs from receipt; some authorities start it once
        # identity is confirmed ("identity").
        "REQUEST_CLOCK_START": os.environ.get("REQUEST_CLOCK_START", "receipt"),
        # Art 35(11): how long after its conclusion a DPIA comes back for review.
        "DPIA_REVIEW_PERIOD": os.environ.get("DPIA_REVIEW_PERIOD", "P1Y"),
        "API_TITLE": "GDPR workflow service",
        "API_VERSION": "v1",
        "OPENAPI_VERSION": "3.0.3",
        "OPENAPI_URL_PREFIX": "/api",
        "OPENAPI_JSON_PATH": "openapi.json",
        "OPENAPI_SWAGGER_UI_PATH": "docs",
        "OPENAPI_SWAGGER_UI_URL": "/static/vendor/swagger-ui/",
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
    }
