"""The bundled processes open readably in a modeler: each element drawn in its lane."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from app.services import definitions

ROOT = Path(__file__).parent.parent
WORKFLOWS = sorted((ROOT / "workflows").glob("**/*.bpmn"))
NS = {
    "bpmn": "http://www.omg.org/spec/BPMN/20100524/MODEL",
    "bpmndi": "http://www.omg.org/spec/BPMN/20100524/DI",
    "dc": "http://www.omg.org/spec/DD/20100524/DC",
}
NOT_DRAWN = {"laneSet", "sequenceFlow", "extensionElements", "documentation"}


def _process(path: Path) -> tuple[etree._Element, etree._Element]:
    root = etree.parse(str(path)).getroot()
    return root, root.find("bpmn:process", NS)


def _nodes(process: etree._Element) -> list[etree._Element]:
    return [e for e in process if etree.QName(e).localname not in NOT_DRAWN]


def _bounds(root: etree._Element) -> dict[str, tuple[float, float, float, float]]:
    found = {}
    for shape in root.iter(f"{{{NS['bpmndi']}}}BPMNShape"):
        box = shape.find("dc:Bounds", NS)
        found[shape.get("bpmnElement")] = tuple(
            float(box.get(k)) for k in ("x", "y", "width", "height")
        )
    return found


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    return ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_every_element_and_flow_is_drawn(path):
    root, process = _process(path)
    shapes = _bounds(root)
    edges = {e.get("bpmnElement") for e in root.iter(f"{{{NS['bpmndi']}}}BPMNEdge")}

    undrawn = [n.get("id") for n in _nodes(process) if n.get("id") not in shapes]
    flows = [f.get("id") for f in process.findall("bpmn:sequenceFlow", NS)]

    assert undrawn == []
    assert [f for f in flows if f not in edges] == []


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_no_two_elements_are_drawn_on_top_of_each_other(path):
    root, process = _process(path)
    shapes = _bounds(root)
    nodes = _nodes(process)
    # A boundary event sits on the edge of the task it is attached to.
    attached = {(n.get("id"), n.get("attachedToRef")) for n in nodes}

    clashes = [
        (a.get("id"), b.get("id"))
        for i, a in enumerate(nodes)
        for b in nodes[i + 1 :]
        if _overlap(shapes[a.get("id")], shapes[b.get("id")])
        and (a.get("id"), b.get("id")) not in attached
        and (b.get("id"), a.get("id")) not in attached
    ]

    assert clashes == []


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_each_element_is_drawn_inside_the_lane_that_holds_it(path):
    root, _ = _process(path)
    shapes = _bounds(root)

    outside = []
    for lane in root.iter(f"{{{NS['bpmn']}}}lane"):
        lx, ly, lw, lh = shapes[lane.get("id")]
        for ref in lane.findall("bpmn:flowNodeRef", NS):
            x, y, w, h = shapes[ref.text]
            if not (lx <= x and x + w <= lx + lw and ly <= y and y + h <= ly + lh):
                outside.append((ref.text, lane.get("name")))

    assert outside == []


def test_the_bundled_processes_and_their_forms_deploy(app):
    with app.app_context():
        deployed = definitions.deploy_directory(ROOT / "workflows", ROOT / "forms")

    names = {d.version.definition.bpmn_process_id for d in deployed}
    assert {"data_subject_request", "personal_data_breach", "consent_renewal"} <= names
