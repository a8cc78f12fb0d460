"""The one feedback shape every tool answers with: findings with stable ids, and a refusal that carries them.

One model and one family of constructors for every tool and every check. A check declared in the catalog builds
its findings through its declaration (`CHECK.fail(...)`, `CHECK.passed()`), which fills in its id and its
default hint; the plain constructors below are for the findings of a tool's own input and for the checks not
converted yet (the validation engine gives their failures the catalog's hint)."""

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, field_validator

Status = Literal["pass", "fail", "warn", "skip"]
EXCERPT_CHARS = 400


class Finding(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    status: Status
    message: str
    file: str | None = None
    line: int | None = None
    hint: str | None = None
    excerpt: str | None = None  # at most EXCERPT_CHARS of a tool's output; the rest is in `log`
    log: str | None = None  # workspace-relative path of the full output
    blocked_by: str | None = None  # a skip's cause: the check whose failure keeps this one from an answer


def excerpt(text: str | None, limit: int = EXCERPT_CHARS) -> str | None:
    """The end of a tool's output (where errors are), trimmed to `limit` characters."""
    if not text:
        return None
    text = text.strip()
    return text if len(text) <= limit else "…" + text[-(limit - 1) :]


def failed(
    id: str,
    message: str,
    hint: str | None = None,
    file: str | None = None,
    line: int | None = None,
    *,
    output: str | None = None,
    log: str | None = None,
) -> Finding:
    return Finding(
        id=id, status="fail", message=message, hint=hint, file=file, line=line, excerpt=excerpt(output), log=log
    )


def warned(id: str, message: str, hint: str | None = None, file: str | None = None, line: int | None = None) -> Finding:
    return Finding(id=id, status="warn", message=message, hint=hint, file=file, line=line)


def passed(id: str, message: str = "ok") -> Finding:
    return Finding(id=id, status="pass", message=message)


def skipped(id: str, message: str, blocked_by: str | None = None) -> Finding:
    return Finding(id=id, status="skip", message=message, blocked_by=blocked_by)


def explained(f: Finding, explained_by: tuple[str, ...], findings: dict[str, Finding]) -> Finding:
    """`f`, or a skip naming the earlier failure that explains it: such a failure proves nothing on its own."""
    causes = [c for c in explained_by if c in findings and findings[c].status == "fail"] if f.status == "fail" else []
    if not causes:
        return f
    return skipped(
        f.id, f"Not conclusive: {', '.join(causes)} failed first and explains this; fix that first.", causes[0]
    ).model_copy(update={"log": f.log, "excerpt": f.excerpt})


class Result(BaseModel):
    """Base of every tool answer: `ok` is false when any finding failed; `next` says what to call next."""

    ok: bool = True
    findings: list[Finding] = []
    next: str | None = None

    @field_validator("next")
    @classmethod
    def _one_line(cls, value: str | None) -> str | None:
        """`next` is one line (issue 25): the agent acts on it, the findings carry the detail."""
        return re.sub(r"\s*\n\s*", " ", value).strip() if value else value


class Refused(Exception):
    """Input a tool will not act on. Raised before anything is written; the tool answers the findings."""

    def __init__(self, *findings: Finding, next: str | None = None):
        self.findings = list(findings)
        self.next = next  # what to do instead, when the findings' hints alone do not say it
        super().__init__("; ".join(f"{f.id}: {f.message}" for f in findings))


def has_failures(findings: list[Finding]) -> bool:
    return any(f.status == "fail" for f in findings)
