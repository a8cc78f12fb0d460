"""The answer of validate_destination: failures in full, passes summed up in one line."""

from pydantic import BaseModel

from bizon_forge.findings import Finding, Result

EXCERPT_CHARS = 400


class CheckFinding(Finding):
    excerpt: str | None = None  # at most EXCERPT_CHARS of the tool's output; the rest is in `log`
    log: str | None = None  # workspace-relative path of the full output
    blocked_by: str | None = None  # a skip's cause: the check whose failure keeps this one from an answer


class FixedFile(BaseModel):
    path: str
    diff: str
    note: str | None = None  # e.g. changes ruff wanted on lines of a registration file that are not ours


class ValidationResult(Result):
    # a pydantic subclass narrows the field; mypy flags it because list is invariant (nothing appends a Finding)
    findings: list[CheckFinding] = []  # type: ignore[assignment]
    level: str | None = None  # the level that ran; absent when the call was refused before any check
    summary: str = ""
    log_dir: str | None = None  # full output of every subprocess, for when an excerpt is not enough
    fixed: list[FixedFile] | None = None  # what fix=true changed (absent without fix)
    wrote_to: str | None = None  # where the live checks wrote: the check config's scratch target, never the example's


class SourceValidationResult(Result):
    """validate_source's answer: a source writes nowhere but its scratch run, and has nothing to fix for it."""

    findings: list[CheckFinding] = []  # type: ignore[assignment]
    level: str | None = None  # the level that ran; absent when the call was refused before any check
    summary: str = ""
    log_dir: str | None = None


def excerpt(text: str | None, limit: int = EXCERPT_CHARS) -> str | None:
    """The end of a tool's output (where errors are), trimmed to `limit` characters."""
    if not text:
        return None
    text = text.strip()
    return text if len(text) <= limit else "…" + text[-(limit - 1) :]


# The constructors of bizon_forge.findings (same names, same shape) for a check's CheckFinding: a failure's hint
# defaults to the catalog's fix for its id, and a tool's output is kept as an excerpt.


def passed(id: str, message: str = "ok") -> CheckFinding:
    return CheckFinding(id=id, status="pass", message=message)


def failed(id: str, message: str, hint=None, file=None, line=None, *, output=None, log=None) -> CheckFinding:
    from bizon_forge.validators.catalog import find

    return CheckFinding(
        id=id,
        status="fail",
        message=message,
        file=file,
        line=line,
        hint=hint or find(id).fix,
        excerpt=excerpt(output),
        log=log,
    )


def warned(id: str, message: str, hint=None, file=None, line=None) -> CheckFinding:
    from bizon_forge.validators.catalog import find

    return CheckFinding(id=id, status="warn", message=message, file=file, line=line, hint=hint or find(id).fix)


def skipped(id: str, message: str, blocked_by: str | None = None) -> CheckFinding:
    return CheckFinding(id=id, status="skip", message=message, blocked_by=blocked_by)


def explained(f: CheckFinding, explained_by: tuple[str, ...], findings: dict[str, CheckFinding]) -> CheckFinding:
    """`f`, or a skip naming the earlier failure that explains it: such a failure proves nothing on its own."""
    causes = [c for c in explained_by if c in findings and findings[c].status == "fail"] if f.status == "fail" else []
    if not causes:
        return f
    return skipped(
        f.id, f"Not conclusive: {', '.join(causes)} failed first and explains this; fix that first.", causes[0]
    ).model_copy(update={"log": f.log, "excerpt": f.excerpt})
