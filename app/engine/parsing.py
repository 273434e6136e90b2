"""Read BPMN safely, parse it with the spiff parser, and refuse what cannot run."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from typing import Any

from lxml import etree
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.bpmn.specs.event_definitions.message import (
    MessageEventDefinition,
)
from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition
from SpiffWorkflow.bpmn.specs.mixins.events.event_types import CatchingEvent
from SpiffWorkflow.bpmn.specs.mixins.events.start_event import StartEvent
from SpiffWorkflow.exceptions import SpiffWorkflowException
from SpiffWorkflow.spiff.parser.process import VALIDATOR, SpiffBpmnParser
from SpiffWorkflow.spiff.specs.mixins.service_task import ServiceTask

from app.engine.sandbox import check_source
from app.engine.serialization import spec_to_json

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
NSMAP = {"bpmn": BPMN_NS}
XI = "http://www.w3.org/2001/XInclude"
XI_OLD = "http://www.w3.org/2003/XInclude"

# ISO 8601 durations, cycles and date-times, as a designer would type them bare.
ISO_LITERAL = re.compile(r"^(R\d*/)?P[\dYMWDTHS.,]+$|^\d{4}-\d{2}-\d{2}")

_ERRORS = etree.ErrorTypes
# Our own words for libxml2's commonest complaints; its raw text is for its authors.
SYNTAX_PROBLEMS = {
    _ERRORS.ERR_DOCUMENT_EMPTY: "there is no root element",
    _ERRORS.ERR_DOCUMENT_END: "there is more content after the root element",
    _ERRORS.ERR_TAG_NAME_MISMATCH: "a closing tag does not match the element it closes",
    _ERRORS.ERR_TAG_NOT_FINISHED: "the file ends before an element is closed",
    _ERRORS.ERR_LTSLASH_REQUIRED: "the file ends before an element is closed",
    _ERRORS.ERR_GT_REQUIRED: "a tag is missing its closing '>'",
    _ERRORS.ERR_NAME_REQUIRED: "a tag or entity reference has no valid name",
    _ERRORS.ERR_SPACE_REQUIRED: "an attribute is written wrongly",
    _ERRORS.ERR_ATTRIBUTE_NOT_STARTED: "an attribute value is not in quotes",
    _ERRORS.ERR_ATTRIBUTE_NOT_FINISHED: "an attribute value is not closed",
    _ERRORS.ERR_ATTRIBUTE_WITHOUT_VALUE: "an attribute has no value",
    _ERRORS.ERR_LT_IN_ATTRIBUTE: "an attribute value contains '<'",
    _ERRORS.ERR_ATTRIBUTE_REDEFINED: "an element has the same attribute twice",
    _ERRORS.ERR_ENTITYREF_SEMICOL_MISSING: "an '&' starts no entity; write '&amp;'",
    _ERRORS.ERR_UNDECLARED_ENTITY: "it names an undefined entity; write '&' as '&amp;'",
    _ERRORS.NS_ERR_UNDEFINED_NAMESPACE: "a namespace prefix is used but not declared",
    _ERRORS.ERR_INVALID_CHAR: "it contains a character XML does not allow",
    _ERRORS.ERR_INVALID_ENCODING: "it contains bytes not valid in its encoding",
    _ERRORS.ERR_UNSUPPORTED_ENCODING: "it declares an encoding the server cannot read",
    _ERRORS.ERR_RESOURCE_LIMIT: "it is nested too deeply or expands too far",
    _ERRORS.ERR_HYPHEN_IN_COMMENT: "a comment contains '--'",
}


class UnsafeXml(ValueError):
    """The upload is not well-formed XML, or uses a DTD or entities."""

    def __init__(
        self, message: str, line: int | None = None, column: int | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column


@dataclass(frozen=True)
class BpmnProblem:
    element_id: str | None
    message: str
    # The registry field a problem is about, when it is about one.
    field: str | None = None

    def as_dict(self) -> dict[str, Any]:
        named = {"element_id": self.element_id, "message": self.message}
        return {**named, "field": self.field} if self.field else named


class InvalidBpmn(ValueError):
    """The BPMN parsed as XML but cannot be deployed; `problems` says why."""

    def __init__(self, problems: list[BpmnProblem]) -> None:
        super().__init__("; ".join(p.message for p in problems))
        self.problems = problems


@dataclass(frozen=True)
class UserTaskSpec:
    bpmn_id: str
    title: str
    lane: str | None
    form: str | None
    purpose: str | None
    instructions: str | None


@dataclass
class ParsedProcess:
    process_id: str
    name: str
    spec: Any
    subprocess_specs: dict[str, Any]
    user_tasks: list[UserTaskSpec] = field(default_factory=list)
    service_operators: dict[str, str] = field(default_factory=dict)
    lanes: dict[str, str] = field(default_factory=dict)
    # The document as UTF-8 text, whatever encoding it was uploaded in.
    xml_text: str = ""

    def spec_json(self) -> str:
        """The spec and its subprocess specs as JSON, for slow-path upgrades."""
        return spec_to_json(self.spec, self.subprocess_specs)


def read_xml(data: bytes) -> etree._Element:
    """Parse XML with no DTD, no entities and no network access."""
    head = data[:4096].upper()
    if b"<!DOCTYPE" in head or b"<!ENTITY" in data.upper():
        raise UnsafeXml("BPMN files may not contain a DOCTYPE or entity declarations.")
    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_pis=True,
    )
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise _not_well_formed(exc) from None
    # The byte checks above miss a DOCTYPE after long comments or in UTF-16.
    if root.getroottree().docinfo.doctype:
        raise UnsafeXml("BPMN files may not contain a DOCTYPE or entity declarations.")
    if root.xpath("//*[namespace-uri()=$a or namespace-uri()=$b]", a=XI, b=XI_OLD):
        raise UnsafeXml("BPMN files may not use XInclude.")
    if (
        etree.QName(root).localname != "definitions"
        or root.nsmap.get(root.prefix) != BPMN_NS
    ):
        raise UnsafeXml("The file is not BPMN 2.0: its root is not bpmn:definitions.")
    return root


def _not_well_formed(exc: etree.XMLSyntaxError) -> UnsafeXml:
    line, column = exc.position
    problem = SYNTAX_PROBLEMS.get(exc.code, "the parser cannot read it")
    return UnsafeXml(
        f"The file is not well-formed XML at line {line}, column {column}: {problem}.",
        line,
        column,
    )


def _as_utf8_text(data: bytes, tree: etree._ElementTree) -> str:
    """The document as UTF-8 text: as sent when it is UTF-8, else re-encoded."""
    if (tree.docinfo.encoding or "").upper() in ("UTF-8", "UTF8"):
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            pass  # a UTF-16 file without a declaration reports UTF-8
    serialized = etree.tostring(tree, encoding="UTF-8", xml_declaration=True)
    return serialized.decode("utf-8")


def parse_process(
    data: bytes, filename: str, process_id: str | None = None
) -> ParsedProcess:
    """Parse one executable process and check everything the engine will evaluate."""
    root = read_xml(data)
    text = _as_utf8_text(data, root.getroottree())
    parser = SpiffBpmnParser(validator=VALIDATOR)
    try:
        parser.add_bpmn_xml(root, filename)
        process_id = _choose_process(root, process_id)
        spec = parser.get_spec(process_id)
        subprocess_specs = parser.get_subprocess_specs(process_id)
    except ValidationException as exc:
        raise InvalidBpmn([_problem_from_validation(exc)]) from None
    except SpiffWorkflowException as exc:
        raise InvalidBpmn([BpmnProblem(None, str(exc))]) from None

    parsed = ParsedProcess(process_id, spec.description or process_id, spec, {})
    parsed.subprocess_specs = subprocess_specs
    parsed.lanes = _lane_names(root)
    parsed.xml_text = text
    problems: list[BpmnProblem] = []
    for one_spec in [spec, *subprocess_specs.values()]:
        for task_spec in one_spec.task_specs.values():
            problems.extend(_inspect(task_spec, parsed))
    if problems:
        raise InvalidBpmn(problems)
    return parsed


def _choose_process(root: etree._Element, wanted: str | None) -> str:
    executable = root.xpath("bpmn:process[@isExecutable='true']/@id", namespaces=NSMAP)
    if not executable:
        raise InvalidBpmn(
            [BpmnProblem(None, 'The file has no process with isExecutable="true".')]
        )
    if wanted is not None:
        if wanted not in executable:
            raise InvalidBpmn(
                [BpmnProblem(wanted, f"No executable process with id '{wanted}'.")]
            )
        return wanted
    called = set(root.xpath("//bpmn:callActivity/@calledElement", namespaces=NSMAP))
    top_level = [pid for pid in executable if pid not in called]
    if len(top_level) != 1:
        names = ", ".join(top_level or executable)
        raise InvalidBpmn(
            [BpmnProblem(None, f"Several executable processes ({names}); name one.")]
        )
    return top_level[0]


def _lane_names(root: etree._Element) -> dict[str, str]:
    return {
        lane.get("name") or lane.get("id"): lane.get("id")
        for lane in root.xpath("//bpmn:lane", namespaces=NSMAP)
    }


def _problem_from_validation(exc: ValidationException) -> BpmnProblem:
    message = str(exc.args[0]) if exc.args else "The BPMN is not valid."
    if exc.line_number:
        message = f"{message} (line {exc.line_number})"
    return BpmnProblem(exc.id or None, message)


def _inspect(task_spec: Any, parsed: ParsedProcess) -> list[BpmnProblem]:
    """Collect what a task spec declares and check every piece of code in it."""
    bpmn_id = getattr(task_spec, "bpmn_id", None)
    if bpmn_id is None:
        return []
    problems: list[BpmnProblem] = []
    for source, mode, what in _code_of(task_spec):
        problems.extend(_check_code(bpmn_id, source, mode, what))
    if isinstance(task_spec, ServiceTask):
        parsed.service_operators[bpmn_id] = task_spec.operation_name
    if getattr(task_spec, "manual", False):
        parsed.user_tasks.append(user_task_spec(task_spec))
    problems.extend(_check_message_correlation(task_spec, bpmn_id))
    return problems


def user_task_spec(task_spec: Any) -> UserTaskSpec:
    """What a human task declares: title, lane, form, purpose, instructions."""
    extensions = getattr(task_spec, "extensions", None) or {}
    properties = extensions.get("properties", {})
    return UserTaskSpec(
        bpmn_id=task_spec.bpmn_id,
        title=task_spec.bpmn_name or task_spec.bpmn_id,
        lane=task_spec.lane,
        form=properties.get("form"),
        purpose=properties.get("purpose"),
        instructions=extensions.get("instructionsForEndUser"),
    )


def _code_of(task_spec: Any) -> list[tuple[str, str, str]]:
    """Every script and expression the engine will run for this task spec."""
    code: list[tuple[str, str, str]] = []
    for attr, what in (("script", "script"), ("prescript", "pre-script")):
        if getattr(task_spec, attr, None):
            code.append((getattr(task_spec, attr), "exec", what))
    if getattr(task_spec, "postscript", None):
        code.append((task_spec.postscript, "exec", "post-script"))
    for condition, target in getattr(task_spec, "cond_task_specs", []):
        # Flow conditions are wrapped in an operator whose one argument is the code.
        if condition is not None:
            code.append(
                (condition.args[0], "eval", f"condition of the flow to {target}")
            )
    for attr in ("cardinality", "condition", "completion_condition"):
        value = getattr(task_spec, attr, None)
        if isinstance(value, str) and value:
            code.append((value, "eval", attr.replace("_", " ")))
    if isinstance(task_spec, ServiceTask):
        for name, param in task_spec.operation_params.items():
            code.append((param["value"], "eval", f"operator parameter '{name}'"))
    event = getattr(task_spec, "event_definition", None)
    if isinstance(event, TimerEventDefinition):
        code.append((event.expression, "timer", "timer expression"))
    if isinstance(event, MessageEventDefinition):
        for prop in event.correlation_properties + _process_correlations(event):
            code.append((prop.retrieval_expression, "eval", f"correlation {prop.name}"))
        if getattr(event, "expression", None):
            code.append((event.expression, "eval", "message payload"))
    return code


def _check_code(bpmn_id: str, source: str, mode: str, what: str) -> list[BpmnProblem]:
    if mode == "timer":
        unquoted = _unquoted_literal(source)
        if unquoted:
            return [BpmnProblem(bpmn_id, unquoted)]
        mode = "eval"
    error = check_source(source, mode)
    if error is None:
        return []
    where = f" on line {error.line}" if error.line else ""
    return [BpmnProblem(bpmn_id, f"The {what} cannot run{where}: {error.message}")]


def _unquoted_literal(expression: str) -> str | None:
    """Timers are Python expressions: a bare ISO literal must be quoted."""
    text = expression.strip()
    if not ISO_LITERAL.match(text):
        return None
    try:
        body = ast.parse(text, mode="eval").body
    except SyntaxError:
        body = None
    if isinstance(body, ast.Constant):
        return None
    return (
        f"The timer expression {text} is an unquoted literal; timers are "
        f'expressions, so write "{text}".'
    )


def _process_correlations(event: MessageEventDefinition) -> list[Any]:
    return list(getattr(event, "process_correlations", []))


def _check_message_correlation(task_spec: Any, bpmn_id: str) -> list[BpmnProblem]:
    """A catch without correlation values would accept any instance's message."""
    event = getattr(task_spec, "event_definition", None)
    if not isinstance(event, MessageEventDefinition):
        return []
    if not isinstance(task_spec, CatchingEvent) or isinstance(task_spec, StartEvent):
        return []
    if _process_correlations(event):
        return []
    return [
        BpmnProblem(
            bpmn_id,
            f"The message catch for '{event.name}' has no "
            "spiffworkflow:processVariableCorrelation, so it would accept a message "
            "meant for any instance.",
        )
    ]
