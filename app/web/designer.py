"""The designer: deployed processes and their versions, and a BPMN modeler."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Blueprint, current_app, jsonify, render_template, request, url_for
from sqlalchemy import select

from app.errors import NotFound, ProblemError
from app.extensions import db
from app.models import DefinitionVersion, User
from app.roles import DESIGNERS
from app.services import definitions, forms, registry
from app.services.definitions import WORK_ROLES
from app.services.runtime import operators
from app.web.auth import current_web_user, roles_required

bp = Blueprint("web_designer", __name__, url_prefix="/designer")

NO_FILE = "There is no BPMN file or deployed version by that name."


def workflow_files() -> list[str]:
    """The names of the BPMN files in the workflows folder, sorted."""
    folder = Path(current_app.config["WORKFLOWS_DIR"])
    return sorted(path.name for path in folder.glob("*.bpmn") if path.is_file())


def _deployer_names(user_ids: set[int]) -> dict[int, str]:
    if not user_ids:
        return {}
    rows = db.session.execute(select(User.id, User.name).where(User.id.in_(user_ids)))
    return {user_id: name for user_id, name in rows}


@bp.get("", endpoint="definitions")
@roles_required(*DESIGNERS)
def definitions_page() -> Any:
    listed = definitions.list_definitions()
    counts = {d.id: definitions.running_counts(d) for d in listed}
    deployers = {v.deployed_by_id for d in listed for v in d.versions}
    return render_template(
        "web/designer_list.html",
        definitions=listed,
        counts=counts,
        deployers=_deployer_names(deployers - {None}),
        files=workflow_files(),
    )


def _opened() -> tuple[str, str, str]:
    """The BPMN to edit, its file name and a title, from ?version= or ?file=."""
    version_id = request.args.get("version", "")
    if version_id:
        version = (
            db.session.get(DefinitionVersion, int(version_id))
            if version_id.isdigit() and len(version_id) < 10
            else None
        )
        if version is None:
            raise NotFound(NO_FILE)
        title = f"{version.definition.name}, version {version.number}"
        return version.bpmn_xml, version.filename, title
    name = request.args.get("file", "")
    if name not in workflow_files():
        raise NotFound(NO_FILE)
    path = Path(current_app.config["WORKFLOWS_DIR"]) / name
    return path.read_text(encoding="utf-8"), name, name


def _form_names() -> list[str]:
    deployed = {form.name for form in forms.list_forms()}
    folder = Path(current_app.config["FORMS_DIR"])
    return sorted(deployed | {path.stem for path in folder.glob("*.json")})


@bp.get("/edit")
@roles_required(*DESIGNERS)
def edit() -> Any:
    xml, filename, title = _opened()
    data = {
        "xml": xml,
        "filename": filename,
        "operators": operators().names(),
        "forms": _form_names(),
        "purposes": [purpose.key for purpose in registry.list_purposes()],
        "roles": list(WORK_ROLES),
        "default_role": definitions.DEFAULT_ROLE,
        "validate_url": url_for("web_designer.validate"),
        "deploy_url": url_for("web_designer.deploy"),
        "list_url": url_for("web_designer.definitions"),
        "moddle_url": url_for("static", filename="js/spiffworkflow-moddle.json"),
    }
    return render_template("web/designer_edit.html", data=data, title=title)


def _sent() -> tuple[bytes, str]:
    """The BPMN posted as a file (bytes kept exact) or as a form field."""
    upload = request.files.get("bpmn")
    if upload is not None:
        bpmn = upload.read()
    else:
        bpmn = request.form.get("bpmn", "").encode("utf-8")
    filename = Path(request.form.get("filename", "")).name or "designer.bpmn"
    return bpmn, filename


def problems_of(error: ProblemError) -> list[dict[str, Any]]:
    """A refused deployment as a list of {element, message}, element may be None."""
    if isinstance(error.errors, list) and error.errors:
        return [
            {"element": item.get("element_id"), "message": item.get("message", "")}
            for item in error.errors
        ]
    line = error.extra.get("line")
    detail = f"{error.detail} (line {line})" if line else error.detail
    return [{"element": None, "message": detail}]


def _refused(error: ProblemError) -> tuple[Any, int]:
    db.session.rollback()
    return jsonify(ok=False, problems=problems_of(error)), 422


@bp.post("/validate")
@roles_required(*DESIGNERS)
def validate() -> Any:
    bpmn, filename = _sent()
    try:
        checked = definitions.check(bpmn, filename)
    except ProblemError as error:
        body, _status = _refused(error)
        return body
    db.session.rollback()
    return jsonify(ok=True, problems=[], process_id=checked.parsed.process_id)


@bp.post("/deploy")
@roles_required(*DESIGNERS)
def deploy() -> Any:
    bpmn, filename = _sent()
    try:
        deployment = definitions.deploy(bpmn, filename, current_web_user().id)
    except ProblemError as error:
        return _refused(error)
    db.session.commit()

    version = deployment.version
    number = version.number
    message = (
        f"Deployed as version {number}."
        if deployment.created
        else f"Unchanged: already version {number}."
    )
    return jsonify(
        ok=True,
        created=deployment.created,
        process_id=version.definition.bpmn_process_id,
        version=number,
        version_id=version.id,
        message=message,
        list_url=url_for("web_designer.definitions"),
        edit_url=url_for("web_designer.edit", version=version.id),
    )
