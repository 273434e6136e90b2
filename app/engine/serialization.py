"""Instance state without its spec, compressed; specs kept once per version."""

from __future__ import annotations

import json
import threading
import zlib
from collections.abc import Callable
from typing import Any

from SpiffWorkflow.bpmn.serializer.default.workflow import BpmnWorkflowConverter
from SpiffWorkflow.bpmn.serializer.workflow import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.spiff.serializer.config import SPIFF_CONFIG

# zlib level 1: about a fifth of gzip's default cost for nearly the same size.
COMPRESSION_LEVEL = 1


class StateOnlyWorkflowConverter(BpmnWorkflowConverter):
    """Writes an instance without its spec; the spec is re-attached on load."""

    def to_dict(self, workflow: BpmnWorkflow) -> dict[str, Any]:
        dct = super(BpmnWorkflowConverter, self).to_dict(workflow)
        dct["spec"] = workflow.spec.name
        dct["subprocess_specs"] = sorted(workflow.subprocess_specs)
        dct["subprocesses"] = self.mapping_to_dict(workflow.subprocesses)
        dct["bpmn_events"] = self.registry.convert(workflow.bpmn_events)
        return dct


_CONFIG = dict(SPIFF_CONFIG)
_CONFIG[BpmnWorkflow] = StateOnlyWorkflowConverter
_local = threading.local()


def _serializer() -> BpmnWorkflowSerializer:
    # The serializer flips shared registry state while it works: one per thread.
    serializer = getattr(_local, "serializer", None)
    if serializer is None:
        registry = BpmnWorkflowSerializer.configure(_CONFIG)
        serializer = _local.serializer = BpmnWorkflowSerializer(registry)
    return serializer


def serializer_version() -> str:
    return _serializer().VERSION


def dump_state(workflow: BpmnWorkflow) -> bytes:
    """The instance's state as compressed JSON, without any spec."""
    dct = _serializer().to_dict(workflow)
    raw = json.dumps(dct, separators=(",", ":")).encode()
    return zlib.compress(raw, COMPRESSION_LEVEL)


def load_state(
    state: bytes,
    spec: Any,
    subprocess_specs: dict[str, Any],
    stored_version: str,
    spec_json: Callable[[], str],
) -> BpmnWorkflow:
    """Rebuild an instance around the already parsed spec objects."""
    serializer = _serializer()
    dct = json.loads(zlib.decompress(state))
    if stored_version != serializer.VERSION:
        return _load_older(dct, stored_version, spec_json())
    dct["spec"] = spec
    dct["subprocess_specs"] = {
        name: subprocess_specs[name] for name in dct["subprocess_specs"]
    }
    return serializer.from_dict(dct)


def _load_older(dct: dict[str, Any], stored_version: str, spec_json: str) -> Any:
    # Migrations rewrite whole serializations, so they need the spec as a dict.
    serializer = _serializer()
    specs = json.loads(spec_json)
    dct["spec"] = specs["spec"]
    dct["subprocess_specs"] = specs["subprocess_specs"]
    dct[serializer.VERSION_KEY] = stored_version
    serializer.migrate(dct)
    return serializer.from_dict(dct)


def spec_to_json(spec: Any, subprocess_specs: dict[str, Any]) -> str:
    serializer = _serializer()
    return json.dumps(
        {
            "spec": serializer.to_dict(spec),
            "subprocess_specs": {
                name: serializer.to_dict(sub) for name, sub in subprocess_specs.items()
            },
        }
    )


def spec_from_json(text: str) -> tuple[Any, dict[str, Any]]:
    """Rebuild spec objects from stored JSON (the slow path, once per version)."""
    serializer = _serializer()
    dct = json.loads(text)
    spec = serializer.from_dict(dct["spec"])
    subs = {
        name: serializer.from_dict(sub) for name, sub in dct["subprocess_specs"].items()
    }
    return spec, subs
