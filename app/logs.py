"""Logging: plain lines for a terminal, JSON lines when deployed (LOG_JSON=1)."""

from __future__ import annotations

import json
import logging

from flask import Flask


class JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "at": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line)


def configure(app: Flask) -> None:
    logger = logging.getLogger("app")
    if logger.handlers and not isinstance(logger.handlers[0], logging.NullHandler):
        return
    handler = logging.StreamHandler()
    if app.config["LOG_JSON"]:
        handler.setFormatter(JsonLines())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
        )
    logger.handlers = [handler]
    logger.setLevel(app.config.get("LOG_LEVEL", "INFO"))
