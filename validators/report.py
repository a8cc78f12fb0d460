"""The answer of validate_destination and validate_source: failures in full, passes summed up in one line."""

from pydantic import BaseModel, SerializerFunctionWrapHandler, field_serializer

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

    # No return annotation: with one, pydantic would publish it as the findings' schema instead of list[Finding].
    @field_serializer("findings", mode="wrap")
    def _logs_in_log_dir(self, findings: list, handler: SerializerFunctionWrapHandler):
        """A finding's log as a path inside `log_dir` when it lies there: the folder is said once per answer, not
        once per finding (issue 25). A log elsewhere (a cached finding's, from an earlier run) keeps its full path."""
        out = handler(findings)
        prefix = f"{self.log_dir}/"
        for f in out if self.log_dir else ():
            log = f.get("log") if isinstance(f, dict) else None
            if isinstance(log, str) and log.startswith(prefix):
                f["log"] = log.removeprefix(prefix)
        return out
