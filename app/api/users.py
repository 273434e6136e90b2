"""Users and their tokens, managed by admins only."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from app.api.auth import current_user, require_roles
from app.api.blueprint import Blueprint
from app.api.schemas import (
    TokenCreateSchema,
    TokenSchema,
    UserCreateSchema,
    UserListSchema,
    UserSchema,
    UserUpdateSchema,
)
from app.extensions import db
from app.models import User
from app.services import users

PREFIX = "users"
blp = Blueprint("users", __name__, description="Users, roles and API tokens.")


@blp.route("")
class Users(MethodView):
    @require_roles("admin")
    @blp.response(200, UserListSchema)
    def get(self) -> dict[str, Any]:
        """Every user with their roles."""
        return {"items": users.list_users()}

    @require_roles("admin")
    @blp.arguments(UserCreateSchema)
    @blp.response(201, UserSchema)
    def post(self, body: dict[str, Any]) -> User:
        """Create a user with one or more roles."""
        user = users.create_user(
            body["name"], body["roles"], current_user().id, body.get("email")
        )
        db.session.commit()
        return user


@blp.route("/<int:user_id>")
class UserDetail(MethodView):
    @require_roles("admin")
    @blp.arguments(UserUpdateSchema)
    @blp.response(200, UserSchema)
    def patch(self, body: dict[str, Any], user_id: int) -> User:
        """Set or clear (null or "") the mail address deadline alerts go to."""
        user = users.set_email(
            users.get_user(user_id), body["email"], current_user().id
        )
        db.session.commit()
        return user

    @require_roles("admin")
    @blp.response(204)
    def delete(self, user_id: int) -> None:
        """Delete a user; their tokens stop working at once."""
        users.delete_user(users.get_user(user_id), current_user().id)
        db.session.commit()


@blp.route("/<int:user_id>/tokens")
class Tokens(MethodView):
    @require_roles("admin")
    @blp.arguments(TokenCreateSchema)
    @blp.response(201, TokenSchema)
    def post(self, body: dict[str, Any], user_id: int) -> dict[str, Any]:
        """Issue a token for a user; its value is shown this once only."""
        user = users.get_user(user_id)
        token = users.create_token(user, body["label"], current_user().id)
        db.session.commit()
        return {"token": token, "user_id": user.id, "label": body["label"]}
