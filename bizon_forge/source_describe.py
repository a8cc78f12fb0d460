"""describe_source: check what the agent learned from an API's docs (the guide's Step 1) and store it as a spec."""

from pydantic import BaseModel

from bizon_forge import dependencies
from bizon_forge.connector import Connector
from bizon_forge.describe import stored
from bizon_forge.findings import Finding, Result, has_failures, warned
from bizon_forge.spec import source as source_spec
from bizon_forge.spec.common import fix_next, parse_or_refuse
from bizon_forge.spec.source import SourceSpec
from bizon_forge.workspace import Workspace


class SourceExisting(BaseModel):
    spec: bool = False
    files: list[str] = []


class SourceDescribeResult(Result):
    existing: SourceExisting | None = None
    spec_file: str | None = None


def source_files(ws: Workspace, name: str) -> list[str]:
    """The source's files in the tree (its folder and its tests), workspace-relative."""
    c = Connector(name, "source")
    out: list[str] = []
    for rel in (c.dir, c.tests_dir):
        folder = ws.root / rel
        if folder.is_dir():
            out += [str(p.relative_to(ws.root)) for p in folder.rglob("*") if p.is_file()]
    return sorted(f for f in out if "__pycache__" not in f)


def _notes(s: SourceSpec) -> list[Finding]:
    """What the spec leaves to chance, said before any code exists."""
    found: list[Finding] = []
    for stream in s.streams:
        if stream.cursor_field and not stream.updated_after_param:
            found.append(
                warned(
                    "spec.stream.client_side_filter",
                    f"Stream {stream.name!r}: incremental runs read every page and keep records whose "
                    f"{stream.cursor_field!r} is after the last run (no updated_after_param).",
                    "If the API filters by date, name its parameter in updated_after_param.",
                )
            )
    if s.fields and s.recipe == "rest":
        found.append(
            warned(
                "spec.fields.unread",
                f"Field(s) {', '.join(f.name for f in s.fields)} go into the config class, but the rest recipe's "
                "code never reads them.",
                "Read them in source.py (e.g. a header or a path parameter), or drop them.",
            )
        )
    if s.dependencies:
        found.append(
            warned(
                "spec.dependencies.not_installed",
                f"{', '.join(s.dependencies)} is not installed in the workspace's Python yet (the rest recipe needs "
                "no library beyond bizon's).",
                f"Call install_dependencies(name={s.name!r}) once source.py imports it.",
            )
        )
    if 429 not in s.error_handling.transient_statuses:
        found.append(
            warned(
                "spec.error_handling.no_429",
                "error_handling.transient_statuses leaves out 429: a rate-limited page fails the run.",
                "Add 429 unless the API never rate-limits.",
            )
        )
    return found


def describe_source(ws: Workspace, s: SourceSpec) -> SourceDescribeResult:
    requirements, findings = dependencies.resolve(s.dependencies, "custom")
    s = s.model_copy(update={"dependencies": requirements, "base_url": s.base_url.rstrip("/") or s.base_url})
    findings += source_spec.check_source(s)
    if has_failures(findings):
        return SourceDescribeResult(ok=False, findings=findings, next=fix_next(source_spec.KIND))
    findings += source_spec.check_against_workspace(s, ws)
    if has_failures(findings):
        return SourceDescribeResult(ok=False, findings=findings, next="Pick another name.")
    findings += _notes(s)

    def existed() -> SourceExisting:
        return SourceExisting(spec=source_spec.spec_path(ws, s.name).is_file(), files=source_files(ws, s.name))

    return SourceDescribeResult(findings=findings, **stored(ws, source_spec.KIND, s, existed))


def parse_spec(args: object) -> SourceSpec:
    """describe_source's argument as a SourceSpec, or a refusal whose findings name each wrong key and value."""
    return parse_or_refuse(source_spec.KIND, args)
