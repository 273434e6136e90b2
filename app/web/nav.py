"""The pages' menu: each area once, shown to the roles that may open it."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app, request, url_for

from app.models import User
from app.roles import DESIGNERS, OFFICERS
from app.services.definitions import WORK_ROLES


@dataclass(frozen=True)
class Area:
    label: str
    endpoint: str
    roles: tuple[str, ...]
    # Endpoint prefixes of the pages that belong to this area.
    covers: tuple[str, ...] = ()

    def is_current(self, endpoint: str) -> bool:
        return any(endpoint.startswith(p) for p in (self.endpoint, *self.covers))


AREAS = (
    Area(
        "Inbox",
        "web_inbox.inbox",
        WORK_ROLES,
        ("web_inbox.", "web_tasks.", "web_instances."),
    ),
    Area("Deadlines", "web_registers.deadlines", OFFICERS),
    Area("Requests", "web_registers.requests", OFFICERS),
    Area("Breaches", "web_registers.breaches", OFFICERS),
    Area("Registry", "web_registry.fields", OFFICERS, ("web_registry.",)),
    Area("Designer", "web_designer.definitions", DESIGNERS, ("web_designer.",)),
)


def areas_for(user: User | None) -> list[dict[str, object]]:
    """The areas this user may open, those the app serves, the current one marked."""
    if user is None:
        return []
    endpoint = request.endpoint or ""
    return [
        {
            "label": area.label,
            "url": url_for(area.endpoint),
            "current": area.is_current(endpoint),
        }
        for area in AREAS
        if area.endpoint in current_app.view_functions and user.has_role(*area.roles)
    ]
