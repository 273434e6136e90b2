"""The record of processing activities (Art 30(1)): registry and deployed processes."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from flask import current_app

from app import clock
from app.countries import third_country
from app.models import Field, System
from app.models.registry import ART9_CONDITIONS, LEGAL_BASES, TRANSFER_SAFEGUARDS
from app.services import processor_agreements, registry, taxonomy, usage

NOT_SET = "not set"
CONTROLLER_SETTINGS = {
    "name": "CONTROLLER_NAME",
    "address": "CONTROLLER_ADDRESS",
    "email": "CONTROLLER_EMAIL",
}
DPO_SETTINGS = {"name": "DPO_NAME", "email": "DPO_EMAIL"}


@dataclass
class Names:
    """Display names of purposes, data categories and subject categories."""

    purposes: dict[str, tuple[str, str, str | None]]
    categories: dict[str, str]
    subjects: dict[str, str]
    systems: dict[str, System]

    @classmethod
    def load(cls) -> Names:
        fides = taxonomy.fides()
        purposes = {k: (t.name, t.description, None) for k, t in fides.uses.items()}
        for p in registry.list_purposes():
            purposes[p.key] = (p.name, p.description, p.legal_basis)
        categories = {k: t.name for k, t in fides.categories.items()}
        categories.update({c.key: c.name for c in registry.list_categories()})
        subjects = {k: t.name for k, t in fides.subjects.items()}
        systems = {s.key: s for s in registry.list_systems()}
        return cls(purposes, categories, subjects, systems)


def record_of_processing() -> dict[str, Any]:
    """Controller, DPO, one entry per purpose, and what the record shows is missing."""
    names = Names.load()
    fields = registry.list_fields()
    processes = processes_by_purpose()
    keys = {p.key for p in registry.list_purposes()}
    keys |= {purpose for row in fields for purpose in row.purposes}
    keys |= set(processes)
    purposes = [
        purpose_entry(key, [f for f in fields if key in f.purposes], processes, names)
        for key in sorted(keys)
    ]
    return {
        "generated_at": clock.now().isoformat(),
        "controller": contact_settings(CONTROLLER_SETTINGS),
        "dpo": contact_settings(DPO_SETTINGS),
        "purposes": purposes,
        "findings": [
            *_legal_basis_findings(purposes),
            *_retention_findings(fields),
            *_transfer_findings(purposes, names),
            *processor_agreements.findings(),
        ],
    }


def contact_settings(names: dict[str, str]) -> dict[str, str]:
    return {
        key: current_app.config.get(setting) or NOT_SET
        for key, setting in names.items()
    }


def purpose_entry(
    key: str,
    fields: list[Field],
    processes: dict[str, list[dict[str, Any]]],
    names: Names,
) -> dict[str, Any]:
    name, description, default_basis = names.purposes.get(key, (key, "", None))
    systems = _systems(fields, names)
    recipients = _recipients(fields, systems, names)
    return {
        "key": key,
        "name": name,
        "description": description,
        "legal_bases": _legal_bases(fields, default_basis),
        "art9_conditions": _art9_conditions(fields),
        "subject_categories": _subject_categories(fields, names),
        "data_categories": _data_categories(fields, names),
        "recipients": recipients,
        "transfers": _transfers(recipients, names),
        "retention": [_retention(row) for row in fields],
        "systems": [_system(system) for system in systems],
        "processes": processes.get(key, []),
    }


def _legal_bases(fields: list[Field], default: str | None) -> list[dict[str, str]]:
    bases = {row.legal_basis for row in fields if row.legal_basis}
    if not bases and default:
        bases = {default}
    return [{"key": b, "article": LEGAL_BASES.get(b, "")} for b in sorted(bases)]


def _art9_conditions(fields: list[Field]) -> list[dict[str, Any]]:
    conditions: dict[str, set[str]] = defaultdict(set)
    for row in fields:
        if row.special_category and row.art9_condition:
            conditions[row.art9_condition].add(row.data_category)
    return [
        {
            "key": key,
            "article": ART9_CONDITIONS.get(key, ""),
            "data_categories": sorted(categories),
        }
        for key, categories in sorted(conditions.items())
    ]


def _subject_categories(fields: list[Field], names: Names) -> list[dict[str, str]]:
    keys = sorted({row.entity.subject_category for row in fields})
    return [{"key": key, "name": names.subjects.get(key, key)} for key in keys]


def _data_categories(fields: list[Field], names: Names) -> list[dict[str, Any]]:
    special = {row.data_category: row.special_category for row in fields}
    return [
        {
            "key": key,
            "name": names.categories.get(key, key),
            "special_category": special[key],
        }
        for key in sorted(special)
    ]


def _systems(fields: list[Field], names: Names) -> list[System]:
    keys = sorted({row.entity.system.key for row in fields})
    return [names.systems[key] for key in keys]


def _system(system: System) -> dict[str, Any]:
    return {
        "key": system.key,
        "name": system.name,
        "owner": system.owner,
        "location": system.location,
        "country": system.country,
        "third_country": third_country(system.country),
        "role": system.role,
        "description": system.description,
        "security_measures": system.security_measures or "",
    }


def _recipients(
    fields: list[Field], systems: list[System], names: Names
) -> list[dict[str, Any]]:
    """Art 30(1)(d): who receives the data, and the processors that hold it."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for system in systems:
        if system.role != "internal":
            found[("system", system.key)] = _system_recipient(system)
    for row in fields:
        for recipient in row.recipients:
            system = names.systems.get(recipient.get("system", ""))
            if system is not None:
                found[("system", system.key)] = _system_recipient(system)
            else:
                named = _named_recipient(recipient)
                found[(named["name"], named["country"])] = named
    return [found[key] for key in sorted(found, key=lambda k: found[k]["name"])]


def _system_recipient(system: System) -> dict[str, Any]:
    return {
        "system": system.key,
        "name": system.name,
        "role": system.role,
        "country": system.country,
        "third_country": third_country(system.country),
        **_safeguard(system.transfer_safeguard, system.transfer_note),
    }


def _named_recipient(recipient: dict[str, Any]) -> dict[str, Any]:
    country = recipient.get("country") or ""
    return {
        "system": None,
        "name": recipient.get("name") or "",
        "role": "recipient",
        "country": country,
        "third_country": bool(country) and third_country(country),
        **_safeguard(recipient.get("safeguard"), recipient.get("note")),
    }


def _safeguard(key: str | None, note: str | None) -> dict[str, Any]:
    return {
        "safeguard": key,
        "safeguard_article": TRANSFER_SAFEGUARDS.get(key or ""),
        "safeguard_note": note,
    }


def _transfers(recipients: list[dict[str, Any]], names: Names) -> list[dict[str, Any]]:
    """Art 30(1)(e): third-country recipients, and processors' sub-processors abroad."""
    transfers = [{**item, "via": None} for item in recipients if item["third_country"]]
    for item in recipients:
        system = names.systems.get(item["system"] or "")
        if system is None or not processor_agreements.acts_as_processor(system):
            continue
        for sub in system.sub_processors or []:
            country = sub.get("country") or ""
            if country and third_country(country):
                transfers.append(_sub_transfer(system, sub, country))
    return transfers


def _sub_transfer(system: System, sub: dict[str, Any], country: str) -> dict[str, Any]:
    return {
        "system": None,
        "name": sub.get("name") or "",
        "role": "sub_processor",
        "country": country,
        "third_country": True,
        **_safeguard(sub.get("safeguard"), sub.get("note")),
        "via": system.key,
    }


def _retention(row: Field) -> dict[str, Any]:
    rule = row.retention or {}
    return {
        "field": row.field_id,
        "name": row.name,
        "data_category": row.data_category,
        "period": rule.get("period"),
        "anchor": rule.get("anchor"),
        "criterion": rule.get("criterion"),
    }


def processes_by_purpose() -> dict[str, list[dict[str, Any]]]:
    """Each process's latest version, under every purpose its user tasks name."""
    found: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for version in usage.latest_definition_versions():
        tasks: dict[str, list[str]] = defaultdict(list)
        for task in version.user_tasks:
            if task.get("purpose"):
                tasks[task["purpose"]].append(task["bpmn_id"])
        for purpose, task_ids in tasks.items():
            found[purpose].append(
                {
                    "process_id": version.definition.bpmn_process_id,
                    "name": version.definition.name,
                    "version": version.number,
                    "task_ids": sorted(task_ids),
                }
            )
    for entries in found.values():
        entries.sort(key=lambda entry: entry["process_id"])
    return found


# --- findings: what the record shows is missing ----------------------------------


def _legal_basis_findings(purposes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "code": "purpose-without-legal-basis",
            "article": "Art 6(1)",
            "purpose": purpose["key"],
            "message": f"The purpose '{purpose['name']}' states no legal basis.",
        }
        for purpose in purposes
        if not purpose["legal_bases"]
    ]


def _retention_findings(fields: list[Field]) -> list[dict[str, Any]]:
    return [
        {
            "code": "field-without-retention",
            "article": "Art 30(1)(f)",
            "field": row.field_id,
            "message": f"The field '{row.field_id}' has no retention rule.",
        }
        for row in fields
        if not (row.retention or {}).get("period")
        and not (row.retention or {}).get("criterion")
    ]


def _transfer_findings(
    purposes: list[dict[str, Any]], names: Names
) -> list[dict[str, Any]]:
    """One finding per unprotected third-country recipient, naming its purposes."""
    unprotected: dict[tuple[Any, ...], dict[str, Any]] = {}
    for purpose in purposes:
        for item in purpose["transfers"]:
            if item["safeguard"]:
                continue
            key = (item["system"], item["name"], item["country"], item["via"])
            entry = unprotected.setdefault(key, {**item, "purposes": []})
            entry["purposes"].append(purpose["key"])
    # A processor or recipient abroad that no field names yet is flagged as well.
    for system in names.systems.values():
        key = (system.key, system.name, system.country, None)
        if _unprotected_abroad(system) and key not in unprotected:
            unprotected[key] = {
                **_system_recipient(system),
                "via": None,
                "purposes": [],
            }
    return [_transfer_finding(item) for item in unprotected.values()]


def _unprotected_abroad(system: System) -> bool:
    return (
        system.role != "internal"
        and third_country(system.country)
        and not system.transfer_safeguard
    )


def _transfer_finding(item: dict[str, Any]) -> dict[str, Any]:
    via = f" (sub-processor of '{item['via']}')" if item["via"] else ""
    return {
        "code": "transfer-without-safeguard",
        "article": "Art 44",
        "system": item["system"] or item["via"],
        "recipient": item["name"],
        "country": item["country"],
        "purposes": item["purposes"],
        "message": (
            f"'{item['name']}'{via} in {item['country']} receives personal data "
            "outside the EEA with no adequacy decision, safeguard or derogation."
        ),
    }
