"""Human tasks: list by due time, get with form and data, claim, complete."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from app.api.auth import current_user
from app.api.blueprint import Blueprint
from app.api.schemas import (
    Extended,
    TaskCompletedSchema,
    TaskCompleteSchema,
    TaskDetailSchema,
    TaskFieldSchema,
    TaskListArgs,
    TaskPageSchema,
    TaskSchema,
)
from app.database import will_write
from app.extensions import db
from app.models import HumanTask
from app.services import tasks

PREFIX = "tasks"
blp = Blueprint("tasks", __name__, description="The human-task queue.")


@blp.route("")
class Tasks(MethodView):
    @blp.arguments(TaskListArgs, location="query")
    @blp.response(200, TaskPageSchema)
    def get(self, args: dict[str, Any]) -> Any:
        """Tasks of the caller's lanes, soonest due first."""
        status = None if args["status"] == "any" else args["status"]
        return tasks.list_tasks(
            current_user(),
            status=status,
            bpmn_process_id=args.get("process_id"),
            instance_id=args.get("instance_id"),
            assigned=args.get("assigned"),
            page=args["page"],
            page_size=args["page_size"],
        )


@blp.route("/<task_id>")
class Task(MethodView):
    @blp.response(200, TaskDetailSchema)
    def get(self, task_id: str) -> Extended:
        """One task with its form, instructions and the data its form declares."""
        task = tasks.get_task(current_user(), task_id)
        if tasks.binds_registry(task):
            # A fresh transaction that may write: showing registry values is audited.
            will_write()
            db.session.commit()
        form = tasks.form_of(task)
        shown = tasks.show_form_data(current_user(), task)
        db.session.commit()
        return Extended(
            task,
            instructions=tasks.instructions_of(task),
            form_schema=form.schema if form else None,
            data=shown.data,
            notices=shown.notices,
        )


@blp.route("/<task_id>/fields/<field_id>")
class TaskField(MethodView):
    @blp.response(200, TaskFieldSchema)
    def get(self, task_id: str, field_id: str) -> dict[str, Any]:
        """One field the task's form binds, if the task's purpose may see it."""
        # A fresh transaction that may write: the read, or its refusal, is audited.
        will_write()
        db.session.commit()
        value = tasks.field_value(current_user(), task_id, field_id)
        db.session.commit()
        return {"field_id": field_id, "value": value}


@blp.route("/<task_id>/claim")
class Claim(MethodView):
    @blp.response(200, TaskSchema)
    def post(self, task_id: str) -> HumanTask:
        """Claim a ready task, so that no one else completes it."""
        task = tasks.claim(current_user(), task_id)
        db.session.commit()
        return task


@blp.route("/<task_id>/unclaim")
class Unclaim(MethodView):
    @blp.response(200, TaskSchema)
    def post(self, task_id: str) -> HumanTask:
        """Release a claimed task back to its queue."""
        task = tasks.unclaim(current_user(), task_id)
        db.session.commit()
        return task


@blp.route("/<task_id>/complete")
class Complete(MethodView):
    @blp.arguments(TaskCompleteSchema)
    @blp.response(200, TaskCompletedSchema)
    def post(self, body: dict[str, Any], task_id: str) -> dict[str, Any]:
        """Complete a ready task with data that satisfies its form."""
        task, instance = tasks.complete(current_user(), task_id, body["data"])
        db.session.commit()
        return {"task": task, "instance": instance}
