"""Server-rendered pages: one blueprint per area, all behind CSRF and safe headers."""

from __future__ import annotations

from flask import Flask

from app.web import auth, errors, formatting, home

BLUEPRINTS = (auth.bp, home.bp)


def init_app(app: Flask) -> None:
    formatting.init_app(app)
    for blueprint in BLUEPRINTS:
        auth.protect(blueprint)
        errors.register(blueprint)
        app.register_blueprint(blueprint)
