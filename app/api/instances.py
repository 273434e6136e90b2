"""Process instances: start, list with filters, get with tasks and history."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from app.api.auth import current_user, require_roles
from app.api.blueprint import Blueprint
from app.api.schemas import (
    DeadlineListSchema,
    Extended,
    InstanceDetailSchema,
    InstanceListArgs,
    InstancePageSchema,
    InstanceSchema,
    InstanceStartSchema,
)
from app.extensions import db
from app.models import Instance
from app.roles import OFFICERS
from app.services import audit, deadlines, instances

PREFIX = "instances"
blp = Blueprint("instances", __name__, description="Running and finished instances.")

SUPERVISORS = ("dpo", "admin")


@blp.route("")
class Instances(MethodView):
    @require_roles(*OFFICERS)
    @blp.arguments(InstanceListArgs, location="query")
    @blp.response(200, InstancePageSchema)
    def get(self, args: dict[str, Any]) -> Any:
        """List instances, newest first; filters by process, status and key."""
        return instances.list_instances(
            bpmn_process_id=args.get("process_id"),
            status=args.get("status"),
            business_key=args.get("business_key"),
            page=args["page"],
            page_size=args["page_size"],
        )

    @require_roles(*OFFICERS)
    @blp.arguments(InstanceStartSchema)
    @blp.response(201, InstanceSchema)
    def post(self, body: dict[str, Any]) -> Instance:
        """Start the latest version of a process with input data."""
        instance = instances.start(
            body["process_id"],
            body["data"],
            body.get("business_key"),
            current_user().id,
        )
        db.session.commit()
        return instance


@blp.route("/<instance_id>")
class InstanceDetail(MethodView):
    @require_roles(*OFFICERS)
    @blp.response(200, InstanceDetailSchema)
    def get(self, instance_id: str) -> Extended:
        """One instance with its tasks, its history and its audit events."""
        instance = instances.get_instance(instance_id)
        return Extended(
            instance,
            tasks=instances.tasks_of(instance),
            history=instances.history(instance),
            audit_events=audit.events_for_instance(instance.id),
        )


@blp.route("/<instance_id>/deadlines")
class InstanceDeadlines(MethodView):
    @require_roles(*OFFICERS)
    @blp.response(200, DeadlineListSchema)
    def get(self, instance_id: str) -> dict[str, Any]:
        """Every deadline of one instance, pending or closed, by due time."""
        instance = instances.get_instance(instance_id)
        return {"items": deadlines.for_instance(instance.id)}


@blp.route("/<instance_id>/retry")
class Retry(MethodView):
    @require_roles(*SUPERVISORS)
    @blp.response(200, InstanceSchema)
    def post(self, instance_id: str) -> Instance:
        """Run the failed tasks of an instance in error again."""
        instance = instances.retry(instance_id, current_user().id)
        db.session.commit()
        return instance


@blp.route("/<instance_id>/cancel")
class Cancel(MethodView):
    @require_roles(*SUPERVISORS)
    @blp.response(200, InstanceSchema)
    def post(self, instance_id: str) -> Instance:
        """Cancel an unfinished instance and its open tasks."""
        instance = instances.cancel(instance_id, current_user().id)
        db.session.commit()
        return instance
