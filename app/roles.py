"""The role sets that decide who may open what, shared by the API and the pages."""

from __future__ import annotations

# Cases, registers, instances, deadlines and letters: the people who work them.
OFFICERS = ("dpo", "privacy_officer", "admin")
# Deploying processes and forms.
DESIGNERS = ("process_designer", "admin")
