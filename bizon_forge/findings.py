"""The one feedback shape every tool answers with: findings with stable ids, and a refusal that carries them."""

from typing import Literal

from pydantic import BaseModel, ConfigDict

Status = Literal["pass", "fail", "warn", "skip"]


class Finding(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    status: Status
    message: str
    file: str | None = None
    line: int | None = None
    hint: str | None = None


# The finding constructors, one family: validators.report's build a check's CheckFinding in the same shape.


def failed(id: str, message: str, hint: str | None = None, file: str | None = None, line: int | None = None) -> Finding:
    return Finding(id=id, status="fail", message=message, hint=hint, file=file, line=line)


def warned(id: str, message: str, hint: str | None = None, file: str | None = None, line: int | None = None) -> Finding:
    return Finding(id=id, status="warn", message=message, hint=hint, file=file, line=line)


class Result(BaseModel):
    """Base of every tool answer: `ok` is false when any finding failed; `next` says what to call next."""

    ok: bool = True
    findings: list[Finding] = []
    next: str | None = None


class Refused(Exception):
    """Input a tool will not act on. Raised before anything is written; the tool answers the findings."""

    def __init__(self, *findings: Finding, next: str | None = None):
        self.findings = list(findings)
        self.next = next  # what to do instead, when the findings' hints alone do not say it
        super().__init__("; ".join(f"{f.id}: {f.message}" for f in findings))


def has_failures(findings: list[Finding]) -> bool:
    return any(f.status == "fail" for f in findings)
