"""Server-rendered pages: one blueprint per area, all behind CSRF and safe headers."""

from __future__ import annotations

from flask import Flask

from app.web import (
    auth,
    designer,
    errors,
    formatting,
    home,
    inbox,
    instances,
    registers,
    registry,
    tasks,
)

BLUEPRINTS = (
    auth.bp,
    home.bp,
    registers.bp,
    registry.bp,
    inbox.bp,
    instances.bp,
    designer.bp,
    tasks.bp,
)


# Once per process: a blueprint cannot change after its first registration,
# and every app made in the process (tests, benchmarks) registers the same ones.
for _blueprint in BLUEPRINTS:
    auth.protect(_blueprint)
    errors.register(_blueprint)


def init_app(app: Flask) -> None:
    formatting.init_app(app)
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
