"""describe_source: check what the agent learned from an API's docs (the guide's Step 1) and store it as a spec."""

from pydantic import BaseModel, ValidationError

from bizon_forge import dependencies
from bizon_forge.atomic import workspace_lock
from bizon_forge.connector import Connector
from bizon_forge.findings import Finding, Refused, Result, failed, has_failures, warned
from bizon_forge.spec import source as source_spec
from bizon_forge.spec.destination import FieldSpec
from bizon_forge.spec.source import Pagination, SourceErrorHandling, SourceSpec, StreamSpec
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
                f"The rest recipe needs no library beyond bizon's; {', '.join(s.dependencies)} is not installed "
                "for a source (install_dependencies serves destinations).",
                "Install it into the workspace's Python yourself if source.py imports it.",
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
        return SourceDescribeResult(
            ok=False, findings=findings, next="Fix the failed findings and call describe_source again."
        )
    findings += source_spec.check_against_workspace(s, ws)
    if has_failures(findings):
        return SourceDescribeResult(ok=False, findings=findings, next="Pick another name.")
    findings += _notes(s)
    with workspace_lock(ws.state_dir):
        existing = SourceExisting(spec=source_spec.spec_path(ws, s.name).is_file(), files=source_files(ws, s.name))
        source_spec.save(ws, s)
    return SourceDescribeResult(
        findings=findings,
        existing=existing,
        spec_file=str(source_spec.spec_path(ws, s.name).relative_to(ws.root)),
        next=f"render_source(name={s.name!r})",
    )


def parse_spec(args: object) -> SourceSpec:
    """describe_source's argument as a SourceSpec, or a refusal whose findings name each wrong field."""
    if not isinstance(args, dict):
        raise Refused(
            failed(
                "spec.not_a_mapping",
                f"The source spec is a {type(args).__name__}, not an object.",
                'Send {"name": ..., "base_url": ..., "streams": [...]}.',
            )
        )
    # Misspelt keys and wrong values are independent: both are reported in one answer.
    findings = [
        failed(
            "spec.unknown_key",
            f"{where}: no such key (misspelt, or of another level).",
            f"The keys here are: {', '.join(known)} (bizon-forge://source-spec).",
        )
        for where, known in list(_unknown_keys(args, SourceSpec, ""))[:8]
    ]
    try:
        parsed = SourceSpec.model_validate(args)
    except ValidationError as error:
        for e in error.errors()[:8]:
            where = ".".join(map(str, e["loc"])) or "spec"
            findings.append(failed("spec.invalid", f"{where}: {e['msg']}.", _INVALID_HINTS.get(e["type"], _HINT)))
    if findings:
        raise Refused(*findings, next="Fix the failed findings and call describe_source again.")
    return parsed


_HINT = "Give it the type and form bizon-forge://source-spec describes for it."
_INVALID_HINTS = {
    "extra_forbidden": "Drop it; the keys are those of bizon-forge://source-spec.",
    "missing": "Add it (see bizon-forge://source-spec).",
    "literal_error": "Use one of the values the message lists (bizon-forge://source-spec says what each means).",
    "enum": "Use one of the values the message lists (bizon-forge://source-spec says what each means).",
}


def _unknown_keys(value: object, model: type[BaseModel], where: str):
    """(path, the model's keys) of each key the model does not have, at every level: pydantic drops them silently."""
    if not isinstance(value, dict):
        return
    for key, item in value.items():
        path = f"{where}.{key}" if where else str(key)
        field = model.model_fields.get(str(key))
        if field is None:
            yield path, sorted(model.model_fields)
            continue
        inner = _MODELS.get(str(key))
        if inner is not None and isinstance(item, list):
            for i, element in enumerate(item):
                yield from _unknown_keys(element, inner, f"{path}.{i}")
        elif inner is not None:
            yield from _unknown_keys(item, inner, path)


# The nested models of a source spec, by the key that holds them (a list of them for streams and fields).
_MODELS: dict[str, type[BaseModel]] = {
    "streams": StreamSpec,
    "pagination": Pagination,
    "error_handling": SourceErrorHandling,
    "fields": FieldSpec,
}
