"""Migrate a fresh database and give it callers and processes.

`python -m tests.system.seed`: the migration is the one `flask --app app db upgrade`
runs, done here to start the app once instead of twice. Reads
{"callers": [...], "bpmn": {filename: xml}} on stdin, prints {name: [id, token]}.
"""

from __future__ import annotations

import json
import sys

import flask_migrate

from app import create_app
from app.extensions import db
from app.services import definitions, users

ROLES = ["admin", "dpo", "privacy_officer", "process_designer"]


def main() -> None:
    wanted = json.load(sys.stdin)
    app = create_app()
    made = {}
    try:
        with app.app_context():
            flask_migrate.upgrade()
            for name in wanted["callers"]:
                user = users.create_user(name, ROLES)
                made[name] = [user.id, users.create_token(user, "system-test")]
            for filename, bpmn in wanted["bpmn"].items():
                definitions.deploy(bpmn.encode(), filename)
            db.session.commit()
    finally:
        app.extensions["gdpr.engine"].script_engine.environment.sandbox.close()
    print(json.dumps(made))


if __name__ == "__main__":
    main()
