"""The landing page: the first area the user may open, or their roles if none."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, redirect, render_template

from app.web.auth import current_web_user, login_required
from app.web.nav import areas_for

bp = Blueprint("web_home", __name__)


@bp.get("/")
@login_required
def index() -> Any:
    user = current_web_user()
    areas = areas_for(user)
    if areas:
        return redirect(areas[0]["url"])
    return render_template("web/home.html", user=user)
