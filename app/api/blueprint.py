"""The API's blueprint: flask-smorest's, with a request reader that cannot crash."""

from __future__ import annotations

from typing import Any

import flask
import flask_smorest
import marshmallow as ma
from webargs.flaskparser import FlaskParser

from app.errors import BadRequest

# PostgreSQL text cannot hold NUL: refused on the way in, not failed on the way down.
NUL = "\x00"


class BodyParser(FlaskParser):
    """webargs' Flask parser; an undecodable body or a NUL character is a 400."""

    def _raw_load_json(self, req: flask.Request) -> Any:
        try:
            body = super()._raw_load_json(req)
        except RecursionError:
            # json.loads recurses once per level: `[[[[...` a few thousand deep
            # exhausts the stack before any schema sees the body.
            raise BadRequest(
                "The JSON body is nested too deeply.", code="json-too-deep"
            ) from None
        if _holds_nul(body):
            raise _nul_refused("The JSON body")
        return body

    def load_querystring(self, req: flask.Request, schema: ma.Schema) -> Any:
        if any(NUL in key or NUL in value for key, value in req.args.items(True)):
            raise _nul_refused("The query string")
        return super().load_querystring(req, schema)


def refuse_nul_in_path() -> None:
    """Before every API request: a path parameter may not hold NUL either."""
    if NUL in flask.request.path:
        raise _nul_refused("The path")


def _holds_nul(value: Any) -> bool:
    # Iterative: a body nested just under the decoder's limit must not recurse here.
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if NUL in item:
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


def _nul_refused(where: str) -> BadRequest:
    return BadRequest(f"{where} contains a NUL character.", code="nul-character")


class Blueprint(flask_smorest.Blueprint):
    ARGUMENTS_PARSER = BodyParser()
