"""One page of a query's rows, with the total the query matches."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, func, select

from app.extensions import db


@dataclass
class Page:
    items: list[Any]
    total: int
    page: int
    page_size: int


def paginate(query: Select, order: tuple[Any, ...], page: int, page_size: int) -> Page:
    """Count by the indexes the filters use, then read only the page asked for."""
    total = db.session.scalar(select(func.count()).select_from(query.subquery()))
    rows = db.session.scalars(
        query.order_by(*order).limit(page_size).offset((page - 1) * page_size)
    ).all()
    return Page(list(rows), total or 0, page, page_size)
