"""The answer of validate_destination: failures in full, passes summed up in one line."""

from bizon_forge.findings import Result


class ValidationResult(Result):
    level: str = "fast"
    summary: str = ""
    log_dir: str | None = None  # full output of every subprocess, for when an excerpt is not enough
