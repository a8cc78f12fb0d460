"""The answer of validate_destination and validate_source: failures in full, passes summed up in one line."""

from pydantic import BaseModel

from bizon_forge.findings import EXCERPT_CHARS, Result, excerpt

__all__ = ["EXCERPT_CHARS", "FixedFile", "ValidationResult", "excerpt"]


class FixedFile(BaseModel):
    path: str
    diff: str
    note: str | None = None  # e.g. changes ruff wanted on lines of a registration file that are not ours


class ValidationResult(Result):
    """One answer for both kinds; a source writes nowhere but its scratch run and has nothing to fix."""

    level: str | None = None  # the level that ran; absent when the call was refused before any check
    summary: str = ""
    log_dir: str | None = None  # full output of every subprocess, for when an excerpt is not enough
    fixed: list[FixedFile] | None = None  # what fix=true changed (absent without fix, and for a source)
    wrote_to: str | None = None  # where the live checks wrote: the check config's scratch target, never the example's
