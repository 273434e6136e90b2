"""The Art 28(3) checklist of each processor's agreement, from the registry."""

from __future__ import annotations

from typing import Any

from app.countries import third_country
from app.errors import NotFound
from app.models import System
from app.models.registry import AGREEMENT_TERMS, TRANSFER_SAFEGUARDS
from app.services import registry

COMPLETE, INCOMPLETE, NO_AGREEMENT = "complete", "incomplete", "no_agreement"
# An agreement that was never made or has lapsed binds the processor to nothing.
NOT_IN_FORCE = ("none", "expired")


def acts_as_processor(system: System) -> bool:
    """A processor, or a recipient system bound by a processor agreement."""
    if system.role == "processor":
        return True
    return system.role != "internal" and system.agreement_status != "none"


def processors() -> list[System]:
    return [s for s in registry.list_systems() if acts_as_processor(s)]


def checklists() -> list[dict[str, Any]]:
    """Every processor's checklist, by system key."""
    return [checklist(system) for system in processors()]


def checklist_of(key: str) -> dict[str, Any]:
    """One system's checklist; a system that processes nothing for us is a 404."""
    system = registry.get_system(key)
    if not acts_as_processor(system):
        raise NotFound(
            f"The system '{key}' is not a processor and has no processor agreement.",
            code="not-a-processor",
        )
    return checklist(system)


def checklist(system: System) -> dict[str, Any]:
    """Each Art 28(3) term present or missing, and the agreement's overall status."""
    terms = system.agreement_terms or {}
    items = [
        {"term": key, "letter": letter, "label": label, "present": bool(terms.get(key))}
        for key, (letter, label) in AGREEMENT_TERMS.items()
    ]
    missing = [item for item in items if not item["present"]]
    return {
        "system": system.key,
        "name": system.name,
        "role": system.role,
        "country": system.country,
        "third_country": third_country(system.country),
        "agreement": {
            "status": system.agreement_status,
            "signed_on": system.agreement_signed_on,
            "reference": system.agreement_reference,
        },
        "items": items,
        "missing": [item["letter"] or item["term"] for item in missing],
        "sub_processors": [_sub_processor(s) for s in system.sub_processors or []],
        "status": _status(system, missing),
    }


def _status(system: System, missing: list[dict[str, Any]]) -> str:
    if system.agreement_status in NOT_IN_FORCE:
        return NO_AGREEMENT
    if system.agreement_status == "signed" and not missing:
        return COMPLETE
    return INCOMPLETE


def _sub_processor(entry: dict[str, Any]) -> dict[str, Any]:
    safeguard = entry.get("safeguard")
    country = entry.get("country") or ""
    return {
        "name": entry.get("name"),
        "country": country,
        "third_country": bool(country) and third_country(country),
        "safeguard": safeguard,
        "safeguard_article": TRANSFER_SAFEGUARDS.get(safeguard or ""),
        "note": entry.get("note"),
    }


def findings() -> list[dict[str, Any]]:
    """A processor without a signed agreement, one finding each (Art 28(3))."""
    return [
        {
            "code": "processor-without-signed-agreement",
            "article": "Art 28(3)",
            "system": system.key,
            "message": (
                f"The processor '{system.name}' has no signed agreement "
                f"(status: {system.agreement_status})."
            ),
        }
        for system in processors()
        if system.agreement_status != "signed"
    ]
