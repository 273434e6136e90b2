"""The signed-in landing page (the inbox takes its place later)."""

from __future__ import annotations

from flask import Blueprint, render_template

from app.web.auth import current_web_user, login_required

bp = Blueprint("web_home", __name__)


@bp.get("/")
@login_required
def index() -> str:
    return render_template("web/home.html", user=current_web_user())
