"""PDF from a stored letter's HTML (fpdf2), always made, with or without a TTF."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path

from fpdf import FPDF

logger = logging.getLogger(__name__)

FONT_DIRS = (
    Path("/usr/share/fonts/truetype/dejavu"),
    Path("/usr/share/fonts/dejavu"),
    Path("/usr/local/share/fonts"),
)
FACES = {
    "": "DejaVuSans.ttf",
    "B": "DejaVuSans-Bold.ttf",
    "I": "DejaVuSans-Oblique.ttf",
}
FACES["BI"] = "DejaVuSans-BoldOblique.ttf"
CORE_FONT = "helvetica"

BODY = re.compile(r"<body[^>]*>(.*)</body>", re.IGNORECASE | re.DOTALL)
# Never fetched: an <img> would make fpdf2 read a file or a URL the author names.
DROPPED = re.compile(
    r"<(head|style|script|title)\b.*?</\1\s*>|<img\b[^>]*>|<!--.*?-->|<!doctype[^>]*>",
    re.IGNORECASE | re.DOTALL,
)


def render(html: str, title: str) -> bytes:
    """A PDF of the HTML body; falls back to plain text if the HTML defeats fpdf2."""
    body = _body(html)
    try:
        return _pdf(
            title,
            lambda pdf, font: pdf.write_html(
                _fit(body, font), font_family=font, warn_on_tags_not_matching=False
            ),
        )
    except Exception:
        logger.warning("letter HTML not laid out; writing it as plain text")
    from app.services.mail import plain_text

    text = plain_text(body)
    return _pdf(title, lambda pdf, font: pdf.multi_cell(0, 6, _fit(text, font)))


def _pdf(title: str, write: Callable[[FPDF, str], object]) -> bytes:
    pdf = FPDF(format="A4")
    font = _unicode_font(pdf)
    pdf.set_title(_fit(title, font))
    pdf.set_creator("gdpr-workflow")
    pdf.set_margins(20, 20, 20)
    pdf.add_page()
    pdf.set_font(font, size=11)
    write(pdf, font)
    return bytes(pdf.output())


def _body(html: str) -> str:
    match = BODY.search(html)
    return DROPPED.sub("", match.group(1) if match else html)


def _unicode_font(pdf: FPDF) -> str:
    """DejaVu when its faces are found, else fpdf2's core font."""
    for folder in FONT_DIRS:
        paths = {style: folder / name for style, name in FACES.items()}
        if all(path.is_file() for path in paths.values()):
            for style, path in paths.items():
                pdf.add_font("dejavu", style, str(path))
            return "dejavu"
    return CORE_FONT


def _fit(text: str, font: str) -> str:
    # The core fonts hold Latin-1 only: anything else becomes "?".
    if font != CORE_FONT:
        return text
    return text.encode("latin-1", "replace").decode("latin-1")
