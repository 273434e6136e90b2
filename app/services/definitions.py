"""Deploy BPMN as immutable versions; keep one parsed spec per version in memory."""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from app.config import ROLES
from app.engine import BpmnProblem, InvalidBpmn, ParsedProcess, UnsafeXml, parse_process
from app.errors import BadRequest, NotFound, Unprocessable
from app.extensions import db
from app.models import DefinitionVersion, FormVersion, Instance, ProcessDefinition
from app.models.instances import COMPLETED
from app.services import audit, forms, registry, taxonomy
from app.services.runtime import operators

logger = logging.getLogger(__name__)

# A task outside any lane belongs to the data-protection officer.
DEFAULT_ROLE = "dpo"
WORK_ROLES = tuple(role for role in ROLES if role != "admin")


def lane_role(lane: str | None) -> str | None:
    """The role a lane stands for: 'Privacy officer' is privacy_officer."""
    if lane is None:
        return DEFAULT_ROLE
    role = re.sub(r"[^a-z0-9]+", "_", lane.strip().lower()).strip("_")
    return role if role in WORK_ROLES else None


@dataclass
class Checked:
    parsed: ParsedProcess
    forms: dict[str, FormVersion | dict[str, Any]]
    content_sha256: str


@dataclass
class Deployment:
    version: DefinitionVersion
    created: bool


def check(
    bpmn: bytes,
    filename: str,
    process_id: str | None = None,
    uploaded_forms: dict[str, Any] | None = None,
) -> Checked:
    """Everything deployment checks, without storing anything."""
    try:
        parsed = parse_process(bpmn, filename, process_id)
    except UnsafeXml as exc:
        line = {"line": exc.line} if exc.line else {}
        raise BadRequest(exc.message, code="malformed-xml", **line) from None
    except InvalidBpmn as exc:
        raise _invalid(exc.problems) from None

    uploaded_forms = uploaded_forms or {}
    form_errors = [
        {"field": f"forms.{name}", **error}
        for name, schema in uploaded_forms.items()
        for error in forms.check_form(name, schema)
    ]
    if form_errors:
        raise Unprocessable("Some uploaded forms are not valid.", errors=form_errors)
    resolved, problems = _resolve(parsed, uploaded_forms)
    if problems:
        raise _invalid(problems)
    return Checked(parsed, resolved, _content_digest(bpmn, resolved))


def _invalid(problems: list[BpmnProblem]) -> Unprocessable:
    return Unprocessable(
        "The BPMN cannot be deployed: " + problems[0].message,
        code="invalid-bpmn",
        errors=[problem.as_dict() for problem in problems],
    )


def _resolve(
    parsed: ParsedProcess, uploaded: dict[str, Any]
) -> tuple[dict[str, FormVersion | dict[str, Any]], list[BpmnProblem]]:
    problems: list[BpmnProblem] = []
    resolved: dict[str, FormVersion | dict[str, Any]] = {}
    for bpmn_id, operator in parsed.service_operators.items():
        if operator not in operators():
            problems.append(
                BpmnProblem(bpmn_id, f"No service-task operator named '{operator}'.")
            )
    for task in parsed.user_tasks:
        if lane_role(task.lane) is None:
            problems.append(
                BpmnProblem(
                    parsed.lanes.get(task.lane or "", task.bpmn_id),
                    f"The lane '{task.lane}' names no role; lanes are named after "
                    f"roles: {', '.join(WORK_ROLES)}.",
                )
            )
        if task.form is None or task.form in resolved:
            continue
        form = uploaded.get(task.form) or forms.latest_form(task.form)
        if form is None:
            problems.append(
                BpmnProblem(task.bpmn_id, f"The form '{task.form}' is not deployed.")
            )
        else:
            resolved[task.form] = form
            problems.extend(_stored_form_problems(task.bpmn_id, task.form, form))
    unknown = _unknown_purposes(parsed)
    problems.extend(unknown)
    skipped = {problem.element_id for problem in unknown}
    problems.extend(_purpose_problems(parsed, resolved, skipped))
    return resolved, problems


def _stored_form_problems(
    bpmn_id: str, name: str, form: FormVersion | dict[str, Any]
) -> list[BpmnProblem]:
    """A form stored before today's binding rules is held to them when reused."""
    if not isinstance(form, FormVersion):
        return []
    return [
        BpmnProblem(bpmn_id, error["message"])
        for error in forms.binding_rule_errors(name, form.schema)
    ]


def _unknown_purposes(parsed: ParsedProcess) -> list[BpmnProblem]:
    """A task's purpose is a Fides data use, one of the service's own purposes
    (those of its bundled processes) or one of the organisation's purposes."""
    keys = [*registry.Known.from_database().purpose_keys(), *registry.SERVICE_PURPOSES]
    return [
        BpmnProblem(task.bpmn_id, _unknown_purpose(task.bpmn_id, task.purpose, keys))
        for task in parsed.user_tasks
        if task.purpose is not None and task.purpose not in keys
    ]


def _unknown_purpose(bpmn_id: str, purpose: str, keys: list[str]) -> str:
    message = (
        f"The task '{bpmn_id}' names the purpose '{purpose}', which is neither a "
        "Fides data use nor a purpose of the organisation in the registry."
    )
    close = taxonomy.nearest(purpose, keys)
    if close:
        message += " Did you mean: " + ", ".join(close) + "?"
    return message


def _purpose_problems(
    parsed: ParsedProcess,
    resolved: dict[str, FormVersion | dict[str, Any]],
    skipped: set[str],
) -> list[BpmnProblem]:
    """Each user task's form may bind only registry fields its purpose may use."""
    problems = []
    for task in parsed.user_tasks:
        form = resolved.get(task.form or "")
        if form is None or task.bpmn_id in skipped:
            continue
        schema = form.schema if isinstance(form, FormVersion) else form
        for found in registry.task_problems(
            task.bpmn_id, task.purpose, task.form or "", schema
        ):
            problems.append(BpmnProblem(found.bpmn_id, found.message, found.field_id))
    return problems


def _content_digest(bpmn: bytes, resolved: dict[str, Any]) -> str:
    digest = hashlib.sha256(bpmn)
    for name in sorted(resolved):
        form = resolved[name]
        schema = form.schema if isinstance(form, FormVersion) else form
        digest.update(f"\0{name}\0{forms.content_digest(schema)}".encode())
    return digest.hexdigest()


def deploy(
    bpmn: bytes,
    filename: str,
    actor_id: int | None = None,
    process_id: str | None = None,
    uploaded_forms: dict[str, Any] | None = None,
) -> Deployment:
    """Store a new version; deploying the same content again changes nothing."""
    checked = check(bpmn, filename, process_id, uploaded_forms)
    parsed = checked.parsed
    definition = db.session.scalar(
        select(ProcessDefinition).where(
            ProcessDefinition.bpmn_process_id == parsed.process_id
        )
    )
    if definition is None:
        definition = ProcessDefinition(
            bpmn_process_id=parsed.process_id, name=parsed.name
        )
        db.session.add(definition)
        db.session.flush()
    existing = db.session.scalar(
        select(DefinitionVersion).where(
            DefinitionVersion.definition_id == definition.id,
            DefinitionVersion.content_sha256 == checked.content_sha256,
        )
    )
    if existing is not None:
        return Deployment(existing, created=False)

    form_ids = {
        name: _stored_form(name, form, actor_id).id
        for name, form in checked.forms.items()
    }
    number = (
        db.session.scalar(
            select(func.max(DefinitionVersion.number)).where(
                DefinitionVersion.definition_id == definition.id
            )
        )
        or 0
    ) + 1
    version = DefinitionVersion(
        definition=definition,
        number=number,
        content_sha256=checked.content_sha256,
        filename=filename,
        bpmn_xml=parsed.xml_text,
        spec_json=parsed.spec_json(),
        forms=form_ids,
        user_tasks=[task_summary(task) for task in parsed.user_tasks],
        deployed_by_id=actor_id,
    )
    definition.name = parsed.name
    db.session.add(version)
    db.session.flush()
    specs.put(version.content_sha256, parsed)
    audit.record(
        "definition.deployed",
        actor_id=actor_id,
        process_id=parsed.process_id,
        definition_version=version.id,
        number=number,
    )
    logger.info("deployed %s version %s", parsed.process_id, number)
    return Deployment(version, created=True)


def _stored_form(name: str, form: Any, actor_id: int | None) -> FormVersion:
    if isinstance(form, FormVersion):
        return form
    return forms.deploy_form(name, form, actor_id)


def task_summary(task: Any) -> dict[str, Any]:
    return {
        "bpmn_id": task.bpmn_id,
        "title": task.title,
        "lane": task.lane,
        "role": lane_role(task.lane),
        "form": task.form,
        "purpose": task.purpose,
        "instructions": task.instructions,
    }


def deploy_directory(
    workflows_dir: Path, forms_dir: Path, actor_id: int | None = None
) -> list[Deployment]:
    """Deploy every form in forms/ and then every BPMN file in workflows/."""
    deploy_forms(forms_dir, actor_id)
    return [
        deploy(path.read_bytes(), path.name, actor_id)
        for path in sorted(workflows_dir.glob("*.bpmn"))
    ]


def deploy_forms(forms_dir: Path, actor_id: int | None = None) -> None:
    for name, schema in forms.read_forms_dir(forms_dir).items():
        forms.deploy_form(name, schema, actor_id)


def get_definition(bpmn_process_id: str) -> ProcessDefinition:
    definition = db.session.scalar(
        select(ProcessDefinition).where(
            ProcessDefinition.bpmn_process_id == bpmn_process_id
        )
    )
    if definition is None:
        raise NotFound(f"No process definition '{bpmn_process_id}' is deployed.")
    return definition


def list_definitions() -> list[ProcessDefinition]:
    return list(
        db.session.scalars(
            select(ProcessDefinition).order_by(ProcessDefinition.bpmn_process_id)
        )
    )


def running_counts(definition: ProcessDefinition) -> dict[int, int]:
    """Unfinished instances per version of one definition, counted by the index."""
    rows = db.session.execute(
        select(Instance.definition_version_id, func.count())
        .join(DefinitionVersion)
        .where(
            DefinitionVersion.definition_id == definition.id,
            Instance.status != COMPLETED,
        )
        .group_by(Instance.definition_version_id)
    )
    return {version_id: count for version_id, count in rows}


class SpecCache:
    """Parsed spec objects per version content hash, shared by all requests."""

    def __init__(self, size: int = 256) -> None:
        self._items: OrderedDict[str, ParsedProcess] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def put(self, content_sha256: str, parsed: ParsedProcess) -> None:
        with self._lock:
            self._items[content_sha256] = parsed
            self._items.move_to_end(content_sha256)
            while len(self._items) > self._size:
                self._items.popitem(last=False)

    def get(self, version: DefinitionVersion) -> ParsedProcess:
        key = version.content_sha256
        with self._lock:
            parsed = self._items.get(key)
            if parsed is not None:
                self._items.move_to_end(key)
                return parsed
        parsed = parse_process(
            version.bpmn_xml.encode("utf-8"),
            version.filename,
            version.definition.bpmn_process_id,
        )
        self.put(key, parsed)
        return parsed

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


specs = SpecCache()
