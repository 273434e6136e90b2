"""Hostile BPMN uploads: each is refused with a problem document, and nothing is kept.

`HOSTILE_BPMN_CASES` sets how many random mutations of each bundled workflow run
(default 50 per file, about 300 in all).
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import pytest

from app.extensions import db
from app.models import ProcessDefinition
from app.services import definitions
from tests.bpmn import HEAD, chain, document, script_task, user_task

ROOT = Path(__file__).parent.parent.parent
WORKFLOWS = sorted((ROOT / "workflows").glob("*.bpmn"))
MUTATIONS = int(os.environ.get("HOSTILE_BPMN_CASES", "50"))
SEED = int(os.environ.get("HOSTILE_SEED", "7"))
BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
ENDPOINTS = ["/api/v1/definitions", "/api/v1/definitions/validate"]
# What a leaked /etc/passwd would show.
LEAKS = ("root:x:", "/bin/sh", "/bin/bash", "nologin")

VALID = document(chain("p", user_task("t")))
BODY = VALID.split(b"?>", 1)[1]


def _with_doctype(doctype: str, body: bytes = BODY) -> bytes:
    return b'<?xml version="1.0"?>\n' + doctype.encode() + b"\n" + body


LAUGHS = _with_doctype(
    "<!DOCTYPE l [<!ENTITY a 'aaaaaaaaaa'>"
    + "".join(
        f"<!ENTITY {b} '{('&' + a + ';') * 10}'>"
        for a, b in zip("abcdefgh", "bcdefghi", strict=False)
    )
    + "]>",
    BODY.replace(b'id="t"', b'id="t" name="&i;"'),
)
QUADRATIC = _with_doctype(
    f"<!DOCTYPE q [<!ENTITY a '{'x' * 50_000}'>]>",
    BODY.replace(b'id="t"', b'id="t" name="' + b"&a;" * 20 + b'"'),
)
XINCLUDE = BODY.replace(
    b'<bpmn:process id="p"',
    b'<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" '
    b'href="file:///etc/passwd" parse="text"/><bpmn:process id="p"',
)
XINCLUDE_IN_EXTENSIONS = BODY.replace(
    b'<bpmn:userTask id="t" name="t">',
    b'<bpmn:userTask id="t" name="t"><bpmn:extensionElements>'
    b'<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" '
    b'href="/etc/passwd" parse="text"/></bpmn:extensionElements>',
)
UTF16_ENTITY = (
    '<?xml version="1.0" encoding="UTF-16"?>'
    '<!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    f'<bpmn:definitions xmlns:bpmn="{BPMN_NS}">&x;</bpmn:definitions>'
).encode("utf-16")
DEEP = (
    f'<bpmn:definitions xmlns:bpmn="{BPMN_NS}">'.encode()
    + b"<a>" * 20_000
    + b"</a>" * 20_000
    + b"</bpmn:definitions>"
)

# (name, upload, status, code or None): the reply must name the problem.
HOSTILE = [
    ("billion-laughs", LAUGHS, 400, "malformed-xml"),
    ("quadratic-blowup", QUADRATIC, 400, "malformed-xml"),
    (
        "external-entity-file",
        _with_doctype('<!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'),
        400,
        "malformed-xml",
    ),
    (
        "external-entity-http",
        _with_doctype('<!DOCTYPE d [<!ENTITY x SYSTEM "http://127.0.0.1:9/x">]>'),
        400,
        "malformed-xml",
    ),
    (
        "parameter-entity",
        _with_doctype('<!DOCTYPE d [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]>'),
        400,
        "malformed-xml",
    ),
    (
        "external-dtd",
        _with_doctype('<!DOCTYPE d SYSTEM "http://127.0.0.1:9/evil.dtd">'),
        400,
        "malformed-xml",
    ),
    (
        "doctype-after-long-comment",
        b'<?xml version="1.0"?><!--'
        + b"x" * 8000
        + b'--><!DOCTYPE d SYSTEM "file:///etc/passwd">'
        + BODY,
        400,
        "malformed-xml",
    ),
    ("lowercase-doctype", _with_doctype("<!doctype d>"), 400, "malformed-xml"),
    ("utf16-entity", UTF16_ENTITY, 400, "malformed-xml"),
    (
        "utf16-billion-laughs",
        LAUGHS.replace(b'"1.0"?>', b'"1.0" encoding="UTF-16"?>')
        .decode()
        .encode("utf-16"),
        400,
        "malformed-xml",
    ),
    ("xinclude", XINCLUDE, 400, "malformed-xml"),
    ("xinclude-in-extensions", XINCLUDE_IN_EXTENSIONS, 400, "malformed-xml"),
    ("deep-nesting", DEEP, 400, "malformed-xml"),
    ("truncated", VALID[: len(VALID) // 2], 400, "malformed-xml"),
    ("garbled", VALID.replace(b"<", b"<<", 3), 400, "malformed-xml"),
    ("empty", b"", 400, "malformed-xml"),
    ("nul-bytes", b"\0" * 64, 400, "malformed-xml"),
    ("invalid-utf8", VALID.replace(b'id="t"', b'id="t\xff\xfe"'), 400, None),
    ("json-not-xml", json.dumps({"bpmn": "x"}).encode(), 400, "malformed-xml"),
    ("html", b"<html><body>not bpmn</body></html>", 400, "malformed-xml"),
    (
        "wrong-root-namespace",
        VALID.replace(BPMN_NS.encode(), b"http://example.com/not-bpmn"),
        400,
        "malformed-xml",
    ),
    (
        "bpmn-13-namespace",
        VALID.replace(b"20100524", b"20230101"),
        400,
        "malformed-xml",
    ),
    (
        "process-in-a-foreign-namespace",
        (
            HEAD + '<x:process xmlns:x="urn:other" id="p" isExecutable="true"/>'
            "</bpmn:definitions>"
        ).encode(),
        422,
        "invalid-bpmn",
    ),
    (
        "processing-instruction",
        b'<?xml version="1.0"?><?xml-stylesheet href="file:///etc/passwd"?>' + BODY,
        None,
        None,
    ),
    (
        "cdata-script-escape",
        document(
            chain(
                "p",
                '<bpmn:scriptTask id="s"><bpmn:script><![CDATA['
                "().__class__.__bases__[0].__subclasses__()"
                "]]></bpmn:script></bpmn:scriptTask>",
            )
        ),
        422,
        "invalid-bpmn",
    ),
    (
        "huge-attribute",
        VALID.replace(b'id="t"', b'id="t" name="' + b"A" * (5 * 1024**2) + b'"'),
        413,
        None,
    ),
    (
        "many-attributes",
        VALID.replace(
            b'id="t"',
            b'id="t" ' + b" ".join(b'a%d="x"' % i for i in range(200_000)),
        ),
        413,
        None,
    ),
    (
        "long-element-id",
        document(chain("p", user_task("t" * 1_000_000))),
        None,
        None,
    ),
]

SCRIPT_ESCAPES = [
    "import os",
    "from subprocess import run",
    "__import__('os').system('id')",
    "().__class__.__bases__[0].__subclasses__()",
    "'{0.__class__}'.format(1)",
    "(lambda: 0).__globals__['__builtins__']",
    "g = (i for i in [])\nf = g.gi_frame.f_back",
    "exec('import os')",
    "eval('1')",
    "int.mro()",
    "class Evil:\n    pass",
    "async def later():\n    pass",
]


@pytest.fixture
def fuzz(app, designer):
    """POST raw bytes as a designer; check the reply and that nothing was stored."""

    def post(url: str, raw: bytes, **kwargs: Any) -> Any:
        reply = designer.post(url, data=raw, content_type="application/xml", **kwargs)
        text = reply.get_data(as_text=True)
        assert reply.status_code < 500, text[:500]
        for leak in LEAKS:
            assert leak not in text, f"{leak!r} leaked into the reply"
        return reply

    return post


def _stored(app) -> int:
    with app.app_context():
        return db.session.query(ProcessDefinition).count()


def _assert_problem(reply: Any, status: int | None, code: str | None) -> None:
    body = reply.get_json()
    assert 400 <= reply.status_code < 500, body
    assert reply.mimetype == "application/problem+json"
    assert body["status"] == reply.status_code
    assert body["detail"] and body["type"].endswith(body["code"])
    if status is not None:
        assert reply.status_code == status, body
    if code is not None:
        assert body["code"] == code, body


@pytest.mark.parametrize("url", ENDPOINTS, ids=["deploy", "validate"])
@pytest.mark.parametrize(
    ("raw", "status", "code"),
    [case[1:] for case in HOSTILE],
    ids=[case[0] for case in HOSTILE],
)
def test_a_hostile_upload_is_a_problem_and_stores_nothing(
    app, fuzz, url, raw, status, code
):
    reply = fuzz(url, raw)

    if status is None and reply.status_code < 400:
        return  # harmless once parsed safely: a PI is dropped, a long id is an id
    _assert_problem(reply, status, code)
    assert _stored(app) == 0


@pytest.mark.parametrize("script", SCRIPT_ESCAPES)
def test_a_script_task_with_an_escape_is_refused_naming_it(app, fuzz, script):
    raw = document(chain("p", script_task("sneaky", script)))

    reply = fuzz("/api/v1/definitions", raw)

    _assert_problem(reply, 422, "invalid-bpmn")
    assert [error["element_id"] for error in reply.get_json()["errors"]] == ["sneaky"]
    assert _stored(app) == 0


def test_a_hostile_upload_in_a_multipart_form_is_refused(app, designer):
    import io

    deep = b"[" * 100_000 + b"]" * 100_000
    reply = designer.post(
        "/api/v1/definitions",
        data={
            "bpmn": (io.BytesIO(VALID), "p.bpmn"),
            "forms": [(io.BytesIO(deep), "deep.json")],
        },
        content_type="multipart/form-data",
    )

    _assert_problem(reply, 400, "malformed-form")
    assert _stored(app) == 0


def _mutate(raw: bytes, rng: random.Random) -> bytes:
    """One seeded change: flip, delete, duplicate, insert, truncate or swap."""
    data = bytearray(raw)
    at = rng.randrange(len(data))
    span = rng.randint(1, 64)
    kind = rng.choice(["flip", "delete", "duplicate", "insert", "truncate", "swap"])
    if kind == "flip":
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
    elif kind == "delete":
        del data[at : at + span]
    elif kind == "duplicate":
        data[at:at] = data[at : at + span]
    elif kind == "insert":
        data[at:at] = rng.choice([b"<", b">", b"&", b'"', b"\0", b"&x;", b"]]>"])
    elif kind == "truncate":
        del data[at:]
    else:
        other = rng.randrange(len(data))
        data[at], data[other] = data[other], data[at]
    return bytes(data)


@pytest.mark.parametrize("path", WORKFLOWS, ids=[path.stem for path in WORKFLOWS])
def test_random_mutations_of_the_bundled_workflows_never_fail_the_server(
    app, fuzz, path
):
    with app.app_context():
        definitions.deploy_forms(ROOT / "forms")
        db.session.commit()
    rng = random.Random(f"{SEED}:{path.name}")
    original = path.read_bytes()

    for case in range(MUTATIONS):
        mutated = _mutate(original, rng)
        deploying = case % 5 == 0
        url = ENDPOINTS[0] if deploying else ENDPOINTS[1]
        before = _stored(app) if deploying else 0
        reply = fuzz(url, mutated, query_string={"filename": path.name})

        if reply.status_code >= 400:
            _assert_problem(reply, None, None)
            if deploying:
                assert _stored(app) == before, f"case {case} stored a refused upload"
