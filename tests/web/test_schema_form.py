"""JSON Schema forms as HTML fields, and submitted forms back as typed JSON."""

from __future__ import annotations

import json
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from flask import render_template_string
from werkzeug.datastructures import MultiDict

from app.web import schema_form

FORMS = Path(__file__).parents[2] / "forms"
ZONE = ZoneInfo("Europe/Amsterdam")
RENDER = (
    '{% import "web/_fields.html" as forms %}'
    "{% for item in fields %}{{ forms.render(item) }}{% endfor %}"
)
ORDER = {
    "type": "object",
    "properties": {
        "count": {"title": "Count", "type": "integer", "minimum": 1, "maximum": 9},
        "price": {"type": "number"},
        "urgent": {"type": "boolean"},
        "kind": {"type": "string", "enum": ["a", "b"]},
        "level": {
            "oneOf": [{"const": 1, "title": "Low"}, {"const": 2, "title": "High"}]
        },
        "tags": {"type": "array", "items": {"enum": ["x", "y", "z"]}},
        "names": {"type": "array", "items": {"type": "string"}},
        "when": {"type": "string", "format": "date-time"},
        "notes": {"type": "string", "maxLength": 1000},
        "fixed": {"type": "string", "readOnly": True},
        "lines": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"item": {"type": "string"}, "qty": {"type": "integer"}},
            },
        },
        "address": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
    "required": ["count", "address"],
}


def bundled() -> list[str]:
    return sorted(path.stem for path in FORMS.glob("*.json"))


def schema_of(name: str) -> dict:
    return json.loads((FORMS / f"{name}.json").read_text())


def editable_names(fields: list[schema_form.Field]) -> list[str]:
    names = []
    for item in fields:
        if item.kind in ("group", "rows"):
            names += editable_names(item.children)
            for row in item.rows:
                names += editable_names(row)
        elif item.kind != "readonly":
            names.append(item.name)
    return names


@pytest.mark.parametrize("name", bundled())
def test_every_bundled_form_renders_each_editable_field(app, name):
    schema = schema_of(name)
    fields = schema_form.fields(schema, schema_form.as_form(schema, {}, ZONE), {})

    with app.test_request_context():
        html = render_template_string(RENDER, fields=fields)

    assert fields
    for field_name in editable_names(fields):
        assert f'name="{field_name}"' in html, field_name


@pytest.mark.parametrize("name", bundled())
def test_an_empty_submission_of_a_bundled_form_parses_without_error(name):
    parsed = schema_form.parse(schema_of(name), MultiDict(), ZONE)

    assert parsed.errors == {}


def test_kinds_follow_the_schema():
    fields = {f.key: f for f in schema_form.fields(ORDER, MultiDict())}

    assert {key: f.kind for key, f in fields.items()} == {
        "count": "integer",
        "price": "number",
        "urgent": "boolean",
        "kind": "select",
        "level": "select",
        "tags": "checkboxes",
        "names": "lines",
        "when": "datetime",
        "notes": "textarea",
        "fixed": "readonly",
        "lines": "rows",
        "address": "group",
    }
    assert fields["level"].options == [("1", "Low"), ("2", "High")]
    assert fields["count"].required_attr and not fields["price"].required_attr
    assert [c.name for c in fields["address"].children] == ["address-city"]
    assert len(fields["lines"].rows) == 1
    assert fields["lines"].template[0].name == "lines-__index__-item"


def test_a_submitted_form_is_typed_per_the_schema():
    raw = MultiDict(
        [
            ("count", "3"),
            ("price", "2.50"),
            ("urgent", "on"),
            ("kind", "b"),
            ("level", "2"),
            ("tags", "z"),
            ("tags", "x"),
            ("names", "Ann\n\n Bob \n"),
            ("when", "2026-03-02T10:00"),
            ("notes", ""),
            ("fixed", "ignored"),
            ("lines-0-item", "Pen"),
            ("lines-0-qty", "2"),
            ("lines-1-item", ""),
            ("lines-1-qty", ""),
            ("lines-2-item", "Ink"),
            ("address-city", "Utrecht"),
        ]
    )

    parsed = schema_form.parse(ORDER, raw, ZONE)

    assert parsed.errors == {}
    assert parsed.data == {
        "count": 3,
        "price": 2.5,
        "urgent": True,
        "kind": "b",
        "level": 2,
        "tags": ["x", "z"],
        "names": ["Ann", "Bob"],
        "when": "2026-03-02T10:00:00+01:00",
        "lines": [{"item": "Pen", "qty": 2}, {"item": "Ink"}],
        "address": {"city": "Utrecht"},
    }
    assert parsed.form_path("lines.1.item") == "lines.2.item"


def test_an_unchecked_box_is_false_and_empty_optional_inputs_are_left_out():
    parsed = schema_form.parse(ORDER, MultiDict([("count", "1")]), ZONE)

    assert parsed.data == {"count": 1, "urgent": False, "tags": [], "address": {}}


@pytest.mark.parametrize(
    ("field", "typed", "message"),
    [
        ("count", "abc", "must be a whole number"),
        ("count", "1.5", "must be a whole number"),
        ("price", "two", "must be a number"),
        ("kind", "c", "is not one of the choices offered"),
        ("when", "yesterday", "must be a date and time"),
        ("lines-0-qty", "many", "must be a whole number"),
    ],
)
def test_unreadable_inputs_are_field_errors(field, typed, message):
    parsed = schema_form.parse(ORDER, MultiDict([(field, typed)]), ZONE)

    assert parsed.errors == {field.replace("-", "."): message}


def test_typed_data_fills_the_form_and_reads_back_the_same():
    data = {
        "count": 2,
        "urgent": True,
        "tags": ["y"],
        "names": ["Ann"],
        "level": 1,
        "lines": [{"item": "Pen", "qty": 1}, {"item": "Ink", "qty": 3}],
        "address": {"city": "Delft"},
        "when": "2026-03-02T09:00:00+00:00",
    }

    raw = schema_form.as_form(ORDER, data, ZONE)

    assert raw["when"] == "2026-03-02T10:00"
    parsed = schema_form.parse(ORDER, raw, ZONE)
    assert parsed.data == {**data, "when": "2026-03-02T10:00:00+01:00"}


def test_defaults_fill_an_empty_form():
    schema = schema_of("dsr_objection")

    raw = schema_form.as_form(schema, {}, ZONE)

    assert "objection_upheld" not in raw
    assert raw["objection_grounds"] == ""


def test_service_errors_land_on_their_fields_pointers_and_moved_rows_too():
    raw = MultiDict([("lines-3-item", "Pen"), ("count", "1")])
    parsed = schema_form.parse(ORDER, raw, ZONE)
    fields = schema_form.fields(ORDER, raw)
    errors = [
        {"field": "lines.0.qty", "message": "is required"},
        {"field": "/address/city", "message": "is required"},
        {"field": "names.0", "message": "must have at least 1 characters"},
        {"field": None, "message": "has fields the form does not know"},
    ]

    by_field, unplaced = schema_form.field_errors(errors, fields, parsed)

    assert by_field == {
        "lines.3.qty": "is required",
        "address.city": "is required",
        "names": "must have at least 1 characters",
    }
    assert unplaced == ["has fields the form does not know"]


def test_attached_errors_are_rendered_beside_their_field(app):
    fields = schema_form.fields(ORDER, MultiDict([("count", "abc")]))
    schema_form.attach_errors(fields, {"count": "must be a whole number"})

    with app.test_request_context():
        html = render_template_string(RENDER, fields=fields)

    block = html[: html.index('name="price"')]
    assert 'value="abc"' in block
    assert "Count must be a whole number" in block
    assert 'aria-invalid="true"' in block


def test_a_task_without_a_form_has_no_fields_and_submits_nothing():
    assert schema_form.fields({}, MultiDict()) == []
    assert schema_form.parse({}, MultiDict(), ZONE).data == {}
