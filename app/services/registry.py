"""The personal-data registry's rules: vocabulary, lookups, and form bindings."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import contains_eager

from app.errors import Conflict, NotFound
from app.extensions import db
from app.models import Category, Entity, Field, Purpose, System
from app.models.registry import ART9_CONDITIONS, LEGAL_BASES
from app.services import taxonomy

BINDING = "x-registry-field"
# The purposes of the service's own bundled processes (workflows/): the GDPR duties
# themselves, known before any catalogue is loaded. A catalogue may describe them.
SERVICE_PURPOSES = (
    "breach_management",
    "compliance_review",
    "data_subject_rights",
    "dpia",
)


@dataclass
class Known:
    """What a field may name besides Fides: organisation purposes, systems, categories.

    `categories` maps each organisation category to whether it is special.
    """

    purposes: dict[str, str | None] = field(default_factory=dict)
    systems: dict[str, str] = field(default_factory=dict)
    categories: dict[str, bool] = field(default_factory=dict)

    @classmethod
    def from_database(cls) -> Known:
        purposes = db.session.execute(select(Purpose.key, Purpose.legal_basis))
        systems = db.session.execute(select(System.key, System.role))
        categories = db.session.execute(select(Category.key, Category.special_category))
        return cls(
            {key: basis for key, basis in purposes},
            {key: role for key, role in systems},
            {key: special for key, special in categories},
        )

    def purpose_keys(self) -> list[str]:
        return [*taxonomy.fides().uses, *self.purposes]

    def category_keys(self) -> list[str]:
        return [*taxonomy.fides().categories, *self.categories]

    def is_special(self, category: str) -> bool:
        return taxonomy.is_special(category) or self.categories.get(category, False)


# --- the rules a field must satisfy ---------------------------------------------------


def check_field(
    data: dict[str, Any], known: Known
) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """The field completed from its vocabulary, and one error per broken rule."""
    data = dict(data)
    errors = [
        *_category_errors(data["data_category"], known),
        *_purpose_errors(data["purposes"], known),
        *_recipient_errors(data["recipients"], known),
    ]
    errors.extend(_fill_legal_basis(data, known))
    errors.extend(_fill_special_category(data, known))
    return data, errors


def field_error(where: str, message: str) -> dict[str, str]:
    return {"field": where, "message": message}


def _category_errors(category: str, known: Known) -> list[dict[str, str]]:
    categories = taxonomy.fides().categories
    if category in categories:
        return _deprecation("data_category", categories[category])
    if category in known.categories:
        return []
    message = taxonomy.unknown_message("data category", category, known.category_keys())
    return [field_error("data_category", message)]


def _deprecation(where: str, term: taxonomy.Term) -> list[dict[str, str]]:
    if term.replaced_by is None:
        return []
    successor = f"; use '{term.replaced_by}'" if term.replaced_by else ""
    return [field_error(where, f"'{term.key}' is deprecated in Fides{successor}.")]


def _purpose_errors(purposes: list[str], known: Known) -> list[dict[str, str]]:
    uses = taxonomy.fides().uses
    errors = []
    for index, purpose in enumerate(purposes):
        where = f"purposes.{index}"
        if purpose in uses:
            errors.extend(_deprecation(where, uses[purpose]))
        elif purpose not in known.purposes:
            message = taxonomy.unknown_message("purpose", purpose, known.purpose_keys())
            errors.append(field_error(where, message))
    return errors


def _recipient_errors(recipients: list[dict], known: Known) -> list[dict[str, str]]:
    errors = []
    for index, recipient in enumerate(recipients):
        key = recipient.get("system")
        if key is None:
            continue
        where = f"recipients.{index}.system"
        role = known.systems.get(key)
        if role is None:
            message = taxonomy.unknown_message("recipient system", key, known.systems)
            errors.append(field_error(where, message))
        elif role == "internal":
            errors.append(
                field_error(where, f"'{key}' is an internal system, not a recipient.")
            )
    return errors


def _fill_legal_basis(data: dict[str, Any], known: Known) -> list[dict[str, str]]:
    if data.get("legal_basis"):
        return []
    defaults = {known.purposes.get(purpose) for purpose in data["purposes"]}
    if len(defaults) == 1 and None not in defaults:
        data["legal_basis"] = defaults.pop()
        return []
    return [
        field_error(
            "legal_basis",
            "State the Art 6(1) legal basis: "
            + ", ".join(LEGAL_BASES)
            + " (the purposes give no single default).",
        )
    ]


def _fill_special_category(data: dict[str, Any], known: Known) -> list[dict[str, str]]:
    category = data["data_category"]
    derived = known.is_special(category)
    if derived and data.get("special_category") is False:
        return [
            field_error(
                "special_category",
                f"'{category}' is special-category data (Art 9(1)); it stays marked.",
            )
        ]
    data["special_category"] = derived or bool(data.get("special_category"))
    condition = data.get("art9_condition")
    if data["special_category"] and not condition:
        return [
            field_error(
                "art9_condition",
                f"Special-category data ('{category}') needs an Art 9(2) condition: "
                + ", ".join(ART9_CONDITIONS)
                + ".",
            )
        ]
    if condition and not data["special_category"]:
        return [
            field_error(
                "art9_condition",
                "Only special-category data takes an Art 9(2) condition.",
            )
        ]
    return []


def check_entity(data: dict[str, Any]) -> list[dict[str, str]]:
    """An entity names its data subjects with a Fides subject category."""
    subjects = taxonomy.fides().subjects
    category = data["subject_category"]
    if category in subjects:
        return []
    message = taxonomy.unknown_message("subject category", category, subjects)
    return [field_error("subject_category", message)]


def check_purpose_key(key: str) -> list[dict[str, str]]:
    if key in taxonomy.fides().uses:
        return [field_error("key", f"'{key}' is a Fides data use already.")]
    return []


def check_category_key(key: str) -> list[dict[str, str]]:
    if key in taxonomy.fides().categories:
        return [field_error("key", f"'{key}' is a Fides data category already.")]
    return []


def check_category(
    key: str, data: dict[str, Any], known: Known
) -> list[dict[str, str]]:
    """An organisation category's parent is known; under special data it is special."""
    parent = data.get("parent")
    if parent == key:
        return [field_error("parent", "A category is not its own parent.")]
    if parent and parent not in known.category_keys():
        message = taxonomy.unknown_message(
            "data category", parent, known.category_keys()
        )
        return [field_error("parent", message)]
    # A key under a Fides Art 9(1) root is special by its name, as Fides keys are.
    under = parent if parent and known.is_special(parent) else None
    if under is None and taxonomy.is_special(key):
        under = key.rsplit(".", 1)[0]
    if under and not data.get("special_category"):
        return [
            field_error(
                "special_category",
                f"'{under}' is special-category data (Art 9(1)); "
                "mark this category special too.",
            )
        ]
    return []


def category_problems(key: str, data: dict[str, Any]) -> list[dict[str, str]]:
    """What a changed category would break: a parent loop, fields left without Art 9."""
    parents = {c.key: c.parent for c in list_categories()}
    parent = data.get("parent")
    seen = {key}
    while parent in parents:
        if parent in seen:
            return [field_error("parent", f"'{data['parent']}' lies under '{key}'.")]
        seen.add(parent)
        parent = parents[parent]
    if not data.get("special_category"):
        return []
    lacking = [
        row.field_id for row in list_fields(category=key) if not row.art9_condition
    ]
    if not lacking:
        return []
    return [
        field_error(
            "special_category",
            f"The fields {', '.join(lacking)} have no Art 9(2) condition; give them "
            "one before the category is marked special.",
        )
    ]


# --- lookups --------------------------------------------------------------------------


def list_systems() -> list[System]:
    return list(db.session.scalars(select(System).order_by(System.key)))


def get_system(key: str) -> System:
    system = db.session.scalar(select(System).where(System.key == key))
    if system is None:
        raise NotFound(f"No system '{key}' in the registry.")
    return system


def split_field_id(field_id: str) -> tuple[str, str, str]:
    parts = field_id.split(".")
    if len(parts) != 3:
        raise NotFound(f"'{field_id}' is not a field id (system.entity.field).")
    return parts[0], parts[1], parts[2]


def _field_query() -> Any:
    return (
        select(Field)
        .join(Field.entity)
        .join(Entity.system)
        .options(contains_eager(Field.entity).contains_eager(Entity.system))
    )


def find_fields(field_ids: Iterable[str]) -> dict[str, Field]:
    """The registry fields among the ids given, by id; unknown ids are left out."""
    parts = [tuple(i.split(".")) for i in set(field_ids) if i.count(".") == 2]
    if not parts:
        return {}
    matches = [
        and_(System.key == s, Entity.key == e, Field.key == f) for s, e, f in parts
    ]
    found = db.session.scalars(_field_query().where(or_(*matches)))
    return {f.field_id: f for f in found}


def get_field(field_id: str) -> Field:
    found = find_fields([field_id]).get(field_id)
    if found is None:
        raise NotFound(f"No field '{field_id}' in the registry.")
    return found


def list_fields(
    system: str | None = None,
    category: str | None = None,
    purpose: str | None = None,
    special: bool | None = None,
) -> list[Field]:
    """Fields by system, category (or its sub-categories), purpose, special flag."""
    query = _field_query().order_by(System.key, Entity.key, Field.key)
    if system:
        query = query.where(System.key == system)
    if category:
        query = query.where(
            or_(
                Field.data_category == category,
                Field.data_category.startswith(category + ".", autoescape=True),
            )
        )
    if special is not None:
        query = query.where(Field.special_category == special)
    rows = list(db.session.scalars(query))
    if purpose:
        rows = [row for row in rows if purpose in row.purposes]
    return rows


def find_purpose(key: str) -> Purpose | None:
    """The organisation's purpose with this key, if it defines one."""
    return db.session.scalar(select(Purpose).where(Purpose.key == key))


def list_purposes() -> list[Purpose]:
    return list(db.session.scalars(select(Purpose).order_by(Purpose.key)))


def get_purpose(key: str) -> Purpose:
    """The organisation's purpose; a Fides data use is 409, since Fides is fixed."""
    if key in taxonomy.fides().uses:
        raise _fixed("data use", key)
    purpose = find_purpose(key)
    if purpose is None:
        raise NotFound(f"No purpose '{key}' of the organisation in the registry.")
    return purpose


def list_categories() -> list[Category]:
    return list(db.session.scalars(select(Category).order_by(Category.key)))


def get_category(key: str) -> Category:
    """The organisation's category; a Fides category is 409, since Fides is fixed."""
    if key in taxonomy.fides().categories:
        raise _fixed("data category", key)
    category = db.session.scalar(select(Category).where(Category.key == key))
    if category is None:
        raise NotFound(f"No data category '{key}' of the organisation in the registry.")
    return category


def _fixed(kind: str, key: str) -> Conflict:
    return Conflict(
        f"'{key}' is a Fides {kind}; Fides entries cannot be changed or deleted, "
        "only the organisation's own.",
        code="fides-entry",
    )


def purpose_names(keys: Iterable[str]) -> dict[str, str]:
    """Each purpose's name: the organisation's own, else Fides's, else its key."""
    own = {purpose.key: purpose.name for purpose in list_purposes()}
    uses = taxonomy.fides().uses
    return {
        key: own.get(key) or (uses[key].name if key in uses else key) for key in keys
    }


def category_names(keys: Iterable[str]) -> dict[str, str]:
    """Each data category's name: Fides's, else the organisation's, else its key."""
    own = {category.key: category.name for category in list_categories()}
    terms = taxonomy.fides().categories
    return {key: terms[key].name if key in terms else own.get(key, key) for key in keys}


def purposes_in_use() -> list[str]:
    """The purposes at least one field names, sorted by key."""
    return sorted({purpose for row in list_fields() for purpose in row.purposes})


def vocabulary() -> dict[str, Any]:
    """Every category and purpose a field may name: Fides and the organisation's."""
    fides = taxonomy.fides()
    return {
        "data_categories": [
            *(
                {
                    **_term(term),
                    "special_category": taxonomy.is_special(term.key),
                    "source": "fides",
                }
                for term in fides.categories.values()
            ),
            *(
                {
                    "key": c.key,
                    "name": c.name,
                    "description": c.description,
                    "special_category": c.special_category,
                    "art9_basis_note": c.art9_basis_note,
                    "parent": c.parent,
                    "source": "organisation",
                }
                for c in list_categories()
            ),
        ],
        "purposes": [
            *({**_term(term), "source": "fides"} for term in fides.uses.values()),
            *(
                {
                    "key": p.key,
                    "name": p.name,
                    "description": p.description,
                    "legal_basis": p.legal_basis,
                    "source": "organisation",
                }
                for p in list_purposes()
            ),
        ],
        "subject_categories": [_term(term) for term in fides.subjects.values()],
        "legal_bases": [{"key": k, "article": a} for k, a in LEGAL_BASES.items()],
        "art9_conditions": [
            {"key": k, "article": a} for k, a in ART9_CONDITIONS.items()
        ],
    }


def _term(term: taxonomy.Term) -> dict[str, Any]:
    described = {"key": term.key, "name": term.name, "description": term.description}
    if term.replaced_by is not None:
        described["deprecated"] = True
        described["replaced_by"] = term.replaced_by or None
    return described


# --- bindings: form properties that name registry fields ------------------------------


def bindings(schema: Any) -> dict[str, Any]:
    """Each bound property of a form (dotted path for nested ones) and its value."""
    found: dict[str, Any] = {}
    _collect(schema, "", found)
    return found


def _collect(node: Any, path: str, found: dict[str, Any]) -> None:
    if not isinstance(node, dict):
        return
    properties = node.get("properties")
    if isinstance(properties, dict):
        for name, child in properties.items():
            child_path = f"{path}.{name}" if path else str(name)
            if isinstance(child, dict) and BINDING in child:
                found[child_path] = child[BINDING]
            _collect(child, child_path, found)
    _collect(node.get("items"), path, found)


def form_binding_errors(name: str, schema: Any) -> list[dict[str, str]]:
    """Bindings of a form to fields the registry does not know, as field errors."""
    bound = bindings(schema)
    known = find_fields(value for value in bound.values() if isinstance(value, str))
    errors = []
    for path, value in bound.items():
        where = f"{name}.properties.{path}.{BINDING}"
        if not isinstance(value, str):
            errors.append(field_error(where, "A binding names a field id as a string."))
        elif value not in known:
            errors.append(field_error(where, _unknown_field(value)))
    return errors


def _unknown_field(field_id: str) -> str:
    system_key = field_id.split(".", 1)[0]
    ids = [f.field_id for f in list_fields(system=system_key)] or _all_field_ids()
    return taxonomy.unknown_message("registry field", field_id, ids)


def _all_field_ids() -> list[str]:
    return [f.field_id for f in list_fields()]


@dataclass(frozen=True)
class PurposeProblem:
    """A user task whose form shows a field its purpose may not use."""

    bpmn_id: str
    field_id: str | None
    message: str


def task_problems(
    bpmn_id: str, purpose: str | None, form_name: str, schema: Any
) -> list[PurposeProblem]:
    """Privacy by design: a task's form binds only fields its purpose may use."""
    bound = {p: v for p, v in bindings(schema).items() if isinstance(v, str)}
    known = find_fields(bound.values())
    problems = []
    for path, field_id in bound.items():
        row = known.get(field_id)
        if row is None:
            message = (
                f"The form '{form_name}' of task '{bpmn_id}' binds '{path}': "
                + _unknown_field(field_id)
            )
        elif purpose is None:
            message = (
                f"The task '{bpmn_id}' names no purpose, but its form '{form_name}' "
                f"binds the registry field '{field_id}'."
            )
        elif purpose not in row.purposes:
            message = (
                f"The task '{bpmn_id}' has the purpose '{purpose}', but its form "
                f"'{form_name}' binds the field '{field_id}', whose purposes are "
                f"{', '.join(row.purposes)}."
            )
        else:
            continue
        problems.append(PurposeProblem(bpmn_id, field_id, message))
    return problems
