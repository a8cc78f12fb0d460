"""The audit trail: one JSON line in the workspace's .bizon-forge/audit.jsonl for each call that wrote or ran code.

Which calls those are follows from the tools' annotations, not from a list here: every call of a tool not
annotated read-only has a line (the CLI's validate, install and generate too), but a dry run, a refusal and a
failed answer that wrote and ran nothing (nothing changed, by contract). A line says when, who (a token id or JWT
subject, never a secret; "stdio" for the local host, "cli" for the command line), which tool and connector, the
files written, the checks run, the installer run, and the outcome. Each line is also logged by the server, outside
the tree: code that a validate tool runs could edit the file, not the server's log.
"""

import errno
import json
import logging
import os
import stat
from datetime import UTC, datetime

from bizon_forge.dependencies import InstallResult
from bizon_forge.describe import DescribeResult
from bizon_forge.findings import Finding, Result, warned
from bizon_forge.pipeline import GenerateResult
from bizon_forge.registrations import RegistrationResult, RemovalResult
from bizon_forge.render import RenderResult
from bizon_forge.source_describe import SourceDescribeResult
from bizon_forge.validators.report import ValidationResult
from bizon_forge.workspace import Workspace

log = logging.getLogger(__name__)


def entry(who: str, tool: str, name: str | None, result: Result, dry_run: bool = False) -> dict | None:
    """The line for a call of a tool that is not read-only and answered `result`; None for a dry run or a failed
    answer that wrote nothing and ran nothing. A result type unknown here still gets its line when ok."""
    if dry_run:
        return None
    written: list[str] = []
    checks = target = ran = None
    match result:
        case DescribeResult(spec_file=str(spec_file)) | SourceDescribeResult(spec_file=str(spec_file)):
            written = [spec_file]
        case RenderResult():
            written = [f.path for f in result.files if f.action in ("created", "updated")]
        case RegistrationResult():
            written = [e.path for e in result.edits]  # on a failed import check: written, then restored
        case RemovalResult():
            written = [e.path for e in result.edits] + result.deleted
        case InstallResult():
            # The answer does not tell an install from a probe that found everything there: a line either way.
            ran = result.command
        case ValidationResult():
            written = [f.path for f in result.fixed or []]
            checks, target = result.summary, result.wrote_to
        case GenerateResult():
            checks = result.summary or None
    if not (result.ok or written or checks or ran):
        return None
    line = {
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "who": who,
        "tool": tool,
        "name": name,
        "written": written,
        "checks": checks,
        "target": target,  # where live checks wrote (the check config's scratch target)
        "ran": ran,
        "outcome": "ok" if result.ok else "failed",
    }
    return {k: v for k, v in line.items() if v is not None}


def append(ws: Workspace, line: dict, echo: bool = True) -> Finding | None:
    """Append `line` to the workspace's trail; a warning finding (for the answer) if it could not be written."""
    text = json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n"
    # The copy out of reach of the code validate_destination runs matters over HTTP; over stdio the host's user
    # is the caller, and the line would only crowd the host's console: it is logged at debug there.
    log.log(logging.INFO if echo else logging.DEBUG, "audit %s %s", ws.root, text.strip())
    path = ws.audit_file
    try:
        if ws.state_dir.is_symlink():  # the trail stays in the tree it describes
            raise OSError(errno.ELOOP, "the state folder is a symlink")
        ws.state_dir.mkdir(exist_ok=True)
        # O_NOFOLLOW: a planted link must not carry the line elsewhere; O_NONBLOCK: a FIFO must not hang the call.
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        fd = os.open(path, flags, 0o600)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise OSError(errno.EINVAL, "not a regular file")
            os.write(fd, text.encode())  # one write of one line: O_APPEND keeps concurrent servers' lines whole
        finally:
            os.close(fd)
    except OSError as error:
        log.error("audit line not written to %s: %s", path, error)
        return warned(
            "audit.unwritten",
            f"The call's audit line could not be written to {path.relative_to(ws.root)}: {error.strerror or error}.",
            "Make .bizon-forge/audit.jsonl a regular file the server may append to; the server's log has the line.",
        )
    return None
