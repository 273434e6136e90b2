"""Small BPMN documents built in tests, for the shapes one file per case would bloat."""

from __future__ import annotations

from xml.sax.saxutils import escape

HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
    'xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
    'id="Definitions_test" targetNamespace="http://bpmn.io/schema/bpmn">\n'
)


def document(process: str, extra: str = "") -> bytes:
    return (HEAD + extra + process + "</bpmn:definitions>\n").encode()


def chain(process_id: str, *elements: str, lanes: str = "") -> str:
    """A process whose elements run in order from a start to an end event."""
    ids = ["start"] + [_id_of(element) for element in elements] + ["end"]
    flows = "".join(
        f'<bpmn:sequenceFlow id="f{i}" sourceRef="{a}" targetRef="{b}" />'
        for i, (a, b) in enumerate(zip(ids, ids[1:], strict=False))
    )
    return (
        f'<bpmn:process id="{process_id}" isExecutable="true">{lanes}'
        '<bpmn:startEvent id="start" />'
        + "".join(elements)
        + '<bpmn:endEvent id="end" />'
        + flows
        + "</bpmn:process>"
    )


def _id_of(element: str) -> str:
    return element.split('id="', 1)[1].split('"', 1)[0]


def user_task(bpmn_id: str, name: str = "", form: str | None = None) -> str:
    props = ""
    if form:
        props = (
            "<bpmn:extensionElements><spiffworkflow:properties>"
            f'<spiffworkflow:property name="form" value="{form}" />'
            "</spiffworkflow:properties></bpmn:extensionElements>"
        )
    title = escape(name or bpmn_id, {'"': "&quot;"})
    return f'<bpmn:userTask id="{bpmn_id}" name="{title}">{props}</bpmn:userTask>'


def script_task(bpmn_id: str, script: str) -> str:
    return (
        f'<bpmn:scriptTask id="{bpmn_id}">'
        f"<bpmn:script>{escape(script)}</bpmn:script></bpmn:scriptTask>"
    )


def service_task(bpmn_id: str, operator: str, **params: str) -> str:
    parameters = "".join(
        f'<spiffworkflow:parameter id="{name}" type="any" value="{_attr(value)}" />'
        for name, value in params.items()
    )
    return (
        f'<bpmn:serviceTask id="{bpmn_id}"><bpmn:extensionElements>'
        f'<spiffworkflow:serviceTaskOperator id="{operator}" resultVariable="result">'
        f"<spiffworkflow:parameters>{parameters}</spiffworkflow:parameters>"
        "</spiffworkflow:serviceTaskOperator></bpmn:extensionElements></bpmn:serviceTask>"
    )


def _attr(value: str) -> str:
    return escape(value, {'"': "&quot;"})


def timer_catch(bpmn_id: str, duration_expression: str) -> str:
    return (
        f'<bpmn:intermediateCatchEvent id="{bpmn_id}"><bpmn:timerEventDefinition>'
        '<bpmn:timeDuration xsi:type="bpmn:tFormalExpression">'
        f"{escape(duration_expression)}</bpmn:timeDuration></bpmn:timerEventDefinition></bpmn:intermediateCatchEvent>"
    )


def script_process(script: str, process_id: str = "scripted") -> bytes:
    """start -> script -> user task 'after' -> end."""
    return document(
        chain(process_id, script_task("run_script", script), user_task("after"))
    )
