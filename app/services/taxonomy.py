"""The Fides default taxonomy: the registry's shared vocabulary of data and uses."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any

# Art 9(1) lists racial or ethnic origin, political opinions, religious or
# philosophical beliefs, trade-union membership, genetic and biometric data,
# health, and sex life or sexual orientation; these are where Fides files them.
# Fides has no key for trade-union membership or philosophical beliefs: mark such
# a field special yourself. Criminal history is Art 10 data, held to the same
# requirement of a stated condition here.
SPECIAL_ROOTS = (
    "user.health_and_medical",
    "user.biometric",
    "user.authorization.biometric",
    "user.demographic.race_ethnicity",
    "user.demographic.political_opinion",
    "user.demographic.religious_belief",
    "user.demographic.sexual_orientation",
    "user.criminal_history",
)


@dataclass(frozen=True)
class Term:
    key: str
    name: str
    description: str
    replaced_by: str | None = None


@dataclass(frozen=True)
class Vocabulary:
    categories: dict[str, Term]
    uses: dict[str, Term]
    subjects: dict[str, Term]


@cache
def fides() -> Vocabulary:
    """The default taxonomy of the installed fideslang, read once per process."""
    from fideslang.default_taxonomy import DEFAULT_TAXONOMY

    return Vocabulary(
        categories=_terms(DEFAULT_TAXONOMY.data_category),
        uses=_terms(DEFAULT_TAXONOMY.data_use),
        subjects=_terms(DEFAULT_TAXONOMY.data_subject),
    )


def _terms(items: Iterable[Any]) -> dict[str, Term]:
    """Fides keys with their names; a deprecated key records its successor."""
    return {
        item.fides_key: Term(
            key=item.fides_key,
            name=item.name or item.fides_key,
            description=item.description or "",
            replaced_by=(item.replaced_by or "") if item.version_deprecated else None,
        )
        for item in items
    }


def is_special(category: str) -> bool:
    """Whether a Fides data category is special-category (Art 9) data."""
    return any(
        category == root or category.startswith(root + ".") for root in SPECIAL_ROOTS
    )


def special_categories() -> list[str]:
    return sorted(key for key in fides().categories if is_special(key))


def nearest(key: str, known: Iterable[str], count: int = 3) -> list[str]:
    """The known keys closest to a mistyped one, best first."""
    return difflib.get_close_matches(key, list(known), n=count, cutoff=0.6)


def unknown_message(what: str, key: str, known: Iterable[str]) -> str:
    """'Unknown data category 'x'; did you mean: a, b?' (without the hint if none)."""
    message = f"Unknown {what} '{key}'."
    close = nearest(key, known)
    if close:
        message += " Did you mean: " + ", ".join(close) + "?"
    return message
