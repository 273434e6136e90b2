"""The engine and operator registry the app factory built for this app."""

from __future__ import annotations

from flask import current_app

from app.engine import Engine, OperatorRegistry


def engine() -> Engine:
    return current_app.extensions["gdpr.engine"]


def operators() -> OperatorRegistry:
    return engine().operators
