"""Task forms in HTML: a JSON Schema as fields, a submitted form back as typed JSON.

A field's HTML name is its data path with `-` between parts (`risks-0-source`);
its error key is the same path with `.` (`risks.0.source`), as the service's
validation errors name it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from werkzeug.datastructures import MultiDict

# Placeholder index in a row template; form.js replaces it with the next index.
INDEX = "__index__"
# Strings allowed this long or longer are edited in a text area.
LONG_TEXT = 200
TEXTAREA_FORMATS = {"textarea", "markdown", "multiline"}
INPUT_FORMATS = {"date": "date", "date-time": "datetime", "email": "email"}


@dataclass
class Field:
    """One thing to render: an input, a group of fields, or rows of groups."""

    kind: str
    key: str
    path: str
    label: str
    description: str = ""
    required: bool = False
    # Whether the browser may insist on a value (not inside an optional row).
    required_attr: bool = False
    value: Any = ""
    options: list[tuple[str, str]] = field(default_factory=list)
    minimum: Any = None
    maximum: Any = None
    max_length: int | None = None
    children: list[Field] = field(default_factory=list)
    rows: list[list[Field]] = field(default_factory=list)
    template: list[Field] = field(default_factory=list)
    error: str | None = None

    @property
    def name(self) -> str:
        return self.path.replace(".", "-")

    @property
    def id(self) -> str:
        return "f-" + self.name


# --- reading the schema -------------------------------------------------------------


def _resolve(spec: Any, root: dict[str, Any]) -> dict[str, Any]:
    """A property's schema with a local `$ref` merged under its own keywords."""
    if not isinstance(spec, dict):
        return {}
    ref = spec.get("$ref")
    if not isinstance(ref, str) or not ref.startswith("#/"):
        return spec
    target: Any = root
    for part in ref[2:].split("/"):
        target = target.get(part, {}) if isinstance(target, dict) else {}
    rest = {k: v for k, v in spec.items() if k != "$ref"}
    return {**_resolve(target, root), **rest}


def _types(spec: dict[str, Any]) -> list[str]:
    declared = spec.get("type")
    if isinstance(declared, str):
        return [declared]
    if isinstance(declared, list):
        return [t for t in declared if isinstance(t, str)]
    if "enum" in spec or "oneOf" in spec:
        return ["string"]
    if "properties" in spec:
        return ["object"]
    return []


def _main_type(spec: dict[str, Any]) -> str:
    return next((t for t in _types(spec) if t != "null"), "string")


def _choices(spec: dict[str, Any]) -> list[tuple[Any, str]] | None:
    """(value, label) of an enum, or of a oneOf of `const` with `title`."""
    if isinstance(spec.get("enum"), list):
        return [(v, str(v)) for v in spec["enum"] if v is not None]
    options = spec.get("oneOf")
    if (
        isinstance(options, list)
        and options
        and all(isinstance(o, dict) and "const" in o for o in options)
    ):
        return [(o["const"], str(o.get("title", o["const"]))) for o in options]
    return None


def _kind(spec: dict[str, Any], root: dict[str, Any]) -> str:
    if spec.get("readOnly"):
        return "readonly"
    kind = _main_type(spec)
    if _choices(spec) is not None and kind != "array":
        return "select"
    if kind == "array":
        return _array_kind(_resolve(spec.get("items", {}), root))
    if kind == "object":
        return "group" if spec.get("properties") else "json"
    if kind in ("integer", "number", "boolean"):
        return kind
    if "string" not in _types(spec) and _types(spec):
        return "json"
    return _string_kind(spec)


def _array_kind(items: dict[str, Any]) -> str:
    if _choices(items) is not None:
        return "checkboxes"
    item_type = _main_type(items)
    if item_type == "object":
        return "rows"
    if item_type in ("string", "integer", "number"):
        return "lines"
    return "json"


def _string_kind(spec: dict[str, Any]) -> str:
    fmt = spec.get("format")
    if fmt in INPUT_FORMATS:
        return INPUT_FORMATS[fmt]
    long = (spec.get("maxLength") or 0) > LONG_TEXT
    return "textarea" if long or fmt in TEXTAREA_FORMATS else "text"


# --- building fields ----------------------------------------------------------------


@dataclass
class _Build:
    root: dict[str, Any]
    raw: MultiDict
    data: dict[str, Any]


def fields(
    schema: dict[str, Any], raw: MultiDict, data: dict[str, Any] | None = None
) -> list[Field]:
    """The form's fields with the values typed (`raw`), read-only ones from `data`."""
    build = _Build(schema, raw, data or {})
    return _object_fields(build, schema, "", build.data, True)


def _object_fields(
    build: _Build, spec: dict[str, Any], prefix: str, data: Any, enforced: bool
) -> list[Field]:
    required = set(spec.get("required") or [])
    found = []
    for key, raw_spec in (spec.get("properties") or {}).items():
        prop = _resolve(raw_spec, build.root)
        value = data.get(key) if isinstance(data, dict) else None
        is_required = key in required
        found.append(
            _field(build, key, prop, prefix + key, value, is_required, enforced)
        )
    return found


def _field(
    build: _Build,
    key: str,
    spec: dict[str, Any],
    path: str,
    data: Any,
    required: bool,
    enforced: bool,
) -> Field:
    kind = _kind(spec, build.root)
    made = Field(
        kind=kind,
        key=key,
        path=path,
        label=str(spec.get("title") or key.replace("_", " ").capitalize()),
        description=str(spec.get("description") or ""),
        required=required,
        required_attr=required and enforced and kind not in NO_REQUIRED_ATTR,
        minimum=spec.get("minimum"),
        maximum=spec.get("maximum"),
        max_length=spec.get("maxLength"),
    )
    if kind == "readonly":
        made.value = data
    elif kind == "group":
        made.children = _object_fields(
            build, spec, path + ".", data, enforced and required
        )
    elif kind == "rows":
        _fill_rows(build, made, _resolve(spec.get("items", {}), build.root))
    else:
        _fill_input(build, made, spec)
    return made


# A required checkbox would force a tick; an empty choice list may be a valid answer.
NO_REQUIRED_ATTR = {"boolean", "checkboxes", "group", "rows", "readonly"}


def _fill_input(build: _Build, made: Field, spec: dict[str, Any]) -> None:
    if made.kind == "checkboxes":
        spec = _resolve(spec.get("items", {}), build.root)
    choices = _choices(spec)
    if choices is not None:
        made.options = [(str(value), label) for value, label in choices]
    if made.kind == "checkboxes":
        made.value = build.raw.getlist(made.name)
    elif made.kind == "boolean":
        made.value = made.name in build.raw
    else:
        made.value = build.raw.get(made.name, "")
    if spec.get("const") is True and made.kind == "boolean":
        made.required_attr = True


def _fill_rows(build: _Build, made: Field, items: dict[str, Any]) -> None:
    indices = _row_indices(build.raw, made.name) or [0]
    made.rows = [
        _object_fields(build, items, f"{made.path}.{index}.", None, False)
        for index in indices
    ]
    blank = _Build(build.root, MultiDict(), {})
    made.template = _object_fields(blank, items, f"{made.path}.{INDEX}.", None, False)


def _row_indices(raw: MultiDict, name: str) -> list[int]:
    pattern = re.compile(re.escape(name) + r"-(\d+)-")
    found = {int(m.group(1)) for key in raw for m in [pattern.match(key)] if m}
    return sorted(found)


# --- typed data to form values ------------------------------------------------------


def as_form(schema: dict[str, Any], data: dict[str, Any], zone: ZoneInfo) -> MultiDict:
    """The form's values as a browser would submit them: data, else defaults."""
    raw: MultiDict = MultiDict()
    _put_object(raw, schema, schema, "", data, zone)
    return raw


def _put_object(
    raw: MultiDict,
    root: dict[str, Any],
    spec: dict[str, Any],
    prefix: str,
    data: Any,
    zone: ZoneInfo,
) -> None:
    for key, raw_spec in (spec.get("properties") or {}).items():
        prop = _resolve(raw_spec, root)
        value = data.get(key) if isinstance(data, dict) else None
        if value is None and data is not None:
            value = prop.get("default")
        if value is not None:
            _put(raw, root, prop, prefix + key, value, zone)


def _put(
    raw: MultiDict,
    root: dict[str, Any],
    spec: dict[str, Any],
    path: str,
    value: Any,
    zone: ZoneInfo,
) -> None:
    kind, name = _kind(spec, root), path.replace(".", "-")
    if kind == "readonly":
        return
    if kind == "group":
        _put_object(raw, root, spec, path + ".", value, zone)
    elif kind == "rows" and isinstance(value, list):
        items = _resolve(spec.get("items", {}), root)
        for index, row in enumerate(value):
            _put_object(raw, root, items, f"{path}.{index}.", row, zone)
    elif kind == "checkboxes" and isinstance(value, list):
        for item in value:
            raw.add(name, str(item))
    elif kind == "boolean":
        if value is True:
            raw.add(name, "on")
    elif kind == "lines" and isinstance(value, list):
        raw.add(name, "\n".join(str(item) for item in value))
    elif kind == "json":
        raw.add(name, json.dumps(value, indent=2, ensure_ascii=False))
    elif kind == "datetime":
        raw.add(name, _local_input(value, zone))
    else:
        raw.add(name, str(value))


def _local_input(value: Any, zone: ZoneInfo) -> str:
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    if moment.tzinfo is not None:
        moment = moment.astimezone(zone)
    return moment.strftime("%Y-%m-%dT%H:%M")


# --- form values to typed data ------------------------------------------------------


@dataclass
class Parsed:
    """The typed submission, the inputs that could not be read, and moved rows."""

    data: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    # Rows left empty are dropped, so a row's index in the data may differ from
    # its index in the form: data path prefix -> form path prefix.
    moved: dict[str, str] = field(default_factory=dict)

    def form_path(self, data_path: str) -> str:
        """The form's path for a path into the submitted data."""
        data_prefix = form_prefix = ""
        for part in data_path.split("."):
            data_prefix = f"{data_prefix}.{part}" if data_prefix else part
            default = f"{form_prefix}.{part}" if form_prefix else part
            form_prefix = self.moved.get(data_prefix, default)
        return form_prefix


@dataclass
class _Parse:
    root: dict[str, Any]
    raw: MultiDict
    zone: ZoneInfo
    result: Parsed


def parse(schema: dict[str, Any], raw: MultiDict, zone: ZoneInfo) -> Parsed:
    """The submitted form as typed JSON per the schema; unreadable inputs as errors."""
    result = Parsed()
    state = _Parse(schema, raw, zone, result)
    result.data = _parse_object(state, schema, "", "")
    return result


def _parse_object(
    state: _Parse, spec: dict[str, Any], form_prefix: str, data_prefix: str
) -> dict[str, Any]:
    required = set(spec.get("required") or [])
    found = {}
    for key, raw_spec in (spec.get("properties") or {}).items():
        prop = _resolve(raw_spec, state.root)
        value = _parse_value(
            state, prop, form_prefix + key, data_prefix + key, key in required
        )
        if value is not MISSING:
            found[key] = value
    return found


MISSING = object()


def _parse_value(
    state: _Parse, spec: dict[str, Any], path: str, data_path: str, required: bool
) -> Any:
    kind, name = _kind(spec, state.root), path.replace(".", "-")
    if kind == "readonly":
        return MISSING
    if kind == "group":
        value = _parse_object(state, spec, path + ".", data_path + ".")
        return value if value or required else MISSING
    if kind == "rows":
        return _parse_rows(state, spec, path, data_path, required)
    if kind == "boolean":
        return name in state.raw
    if kind == "checkboxes":
        items = _resolve(spec.get("items", {}), state.root)
        return _chosen(items, state.raw.getlist(name))
    text = state.raw.get(name, "").strip()
    if not text:
        return MISSING
    try:
        return _typed(state, spec, kind, text)
    except ValueError as error:
        state.result.errors[path] = str(error)
        return MISSING


def _chosen(items: dict[str, Any], sent: list[str]) -> list[Any]:
    """The ticked options, typed and in the schema's order."""
    return [value for value, _ in _choices(items) or [] if str(value) in sent]


def _typed(state: _Parse, spec: dict[str, Any], kind: str, text: str) -> Any:
    if kind == "select":
        return _option(spec, text)
    if kind in ("integer", "number"):
        return _number(kind, text)
    if kind == "lines":
        items = _resolve(spec.get("items", {}), state.root)
        item_kind = _main_type(items)
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        if item_kind in ("integer", "number"):
            return [_number(item_kind, line) for line in lines]
        return lines
    if kind == "json":
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            raise ValueError("is not valid JSON") from None
    if kind == "datetime":
        return _aware(text, state.zone)
    return text


def _option(spec: dict[str, Any], text: str) -> Any:
    for value, _ in _choices(spec) or []:
        if str(value) == text:
            return value
    raise ValueError("is not one of the choices offered")


def _number(kind: str, text: str) -> int | float:
    try:
        return int(text) if kind == "integer" else float(text)
    except ValueError:
        if kind == "integer":
            raise ValueError("must be a whole number") from None
        raise ValueError("must be a number") from None


def _aware(text: str, zone: ZoneInfo) -> str:
    """A `datetime-local` value, read in the organisation's zone, as RFC 3339."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError("must be a date and time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.isoformat()


def _parse_rows(
    state: _Parse, spec: dict[str, Any], path: str, data_path: str, required: bool
) -> Any:
    items = _resolve(spec.get("items", {}), state.root)
    rows = []
    for index in _row_indices(state.raw, path.replace(".", "-")):
        if _row_is_empty(state.raw, f"{path}.{index}.".replace(".", "-")):
            continue
        row_path = f"{data_path}.{len(rows)}"
        state.result.moved[row_path] = f"{path}.{index}"
        rows.append(_parse_object(state, items, f"{path}.{index}.", row_path + "."))
    return rows if rows or required else MISSING


def _row_is_empty(raw: MultiDict, name_prefix: str) -> bool:
    return not any(
        value.strip()
        for key, value in raw.items(multi=True)
        if key.startswith(name_prefix)
    )


# --- the service's errors, per field ------------------------------------------------


def field_errors(
    errors: Any, form_fields: list[Field], parsed: Parsed | None = None
) -> tuple[dict[str, str], list[str]]:
    """Service errors as (message by field path, messages no field shows)."""
    known = set(_paths(form_fields))
    by_field: dict[str, str] = {}
    unplaced: list[str] = []
    for error in errors if isinstance(errors, list) else []:
        if not isinstance(error, dict):
            continue
        message = str(error.get("message") or "is not valid")
        where = _as_path(error.get("field"))
        if parsed is not None and where:
            where = parsed.form_path(where)
        target = _nearest(where, known)
        if target is None:
            unplaced.append(f"{where}: {message}" if where else message)
        else:
            by_field.setdefault(target, message)
    return by_field, unplaced


def _as_path(where: Any) -> str:
    """A JSON pointer (`/risks/0/source`) or a dotted path, as a dotted path."""
    if not isinstance(where, str):
        return ""
    if where.startswith("/"):
        parts = [p.replace("~1", "/").replace("~0", "~") for p in where[1:].split("/")]
        return ".".join(parts)
    return where


def _nearest(path: str, known: set[str]) -> str | None:
    """The field at the path, or the closest field that holds it."""
    parts = path.split(".") if path else []
    while parts:
        candidate = ".".join(parts)
        if candidate in known:
            return candidate
        parts.pop()
    return None


def _walk(form_fields: list[Field]) -> list[Field]:
    found = []
    for item in form_fields:
        found.append(item)
        found.extend(_walk(item.children))
        for row in item.rows:
            found.extend(_walk(row))
    return found


def _paths(form_fields: list[Field]) -> list[str]:
    return [item.path for item in _walk(form_fields)]


def attach_errors(form_fields: list[Field], by_field: dict[str, str]) -> None:
    """Put each message on the field it names, to show beside it."""
    for item in _walk(form_fields):
        item.error = by_field.get(item.path, item.error)
