"""The MCP wiring: each tool resolves its workspace and calls one plain function. No work happens here.

Heavy modules (libcst, jinja2, polars, bizon) are imported inside the tools, never at start-up.
"""

import difflib
import functools
import json
import logging
from contextvars import ContextVar
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated, Any

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import Field, WithJsonSchema, create_model

from bizon_forge import (
    atomic,
    audit,
    credentials,
    dependencies,
    describe,
    inspection,
    registrations,
    render,
    source_describe,
    validators,
    workspace,
)
from bizon_forge.credentials import Credential, Verifier
from bizon_forge.dependencies import InstallResult
from bizon_forge.describe import DescribeResult
from bizon_forge.findings import Finding, Refused, Result, failed
from bizon_forge.inspection import InspectResult
from bizon_forge.registrations import RegistrationResult, RemovalResult
from bizon_forge.render import RenderResult
from bizon_forge.server import resources, schemas
from bizon_forge.source_describe import SourceDescribeResult
from bizon_forge.spec import destination, source
from bizon_forge.spec.common import FieldSpec, fix_next, parse, parse_or_refuse
from bizon_forge.spec.destination import (
    Batching,
    ErrorHandling,
    FullRefresh,
    FullRefreshIsolation,
    RecipeName,
    WriteMethod,
    WriteSemantics,
)
from bizon_forge.spec.source import SourceSpec
from bizon_forge.validators.report import ValidationResult
from bizon_forge.workspace import Settings

READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
WRITES = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
DESTROYS = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False)
# Installing reaches the package index and changes the workspace's interpreter, never its files.
INSTALLS = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=True)
# Its live checks write to whatever target the check config names, which may be a server elsewhere.
CHECKS = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=True)

# Undescribed to save ~50 B a tool in tools/list; the instructions say what it is, once.
WorkspaceArg = str | None
# Published as an enum, taken as any string: the SDK would answer "quick" with raw pydantic text and is_error;
# the validators answer it as a finding (validate.bad_level) naming the allowed values.
Level = Annotated[str, WithJsonSchema({"enum": ["fast", "full"], "type": "string"})]
SourceLevel = Annotated[str, WithJsonSchema({"enum": ["fast", "full", "live"], "type": "string"})]
# The source spec's shape in one line; its full schema is the resource bizon-forge://source-spec.
SOURCE_SPEC_HELP = "{name, base_url, auth, streams}; schema: bizon-forge://source-spec"

# Published as an enum, taken as any string: install_dependencies answers another as a finding (install.bad_kind).
KindArg = Annotated[str | None, WithJsonSchema({"enum": ["destination", "source"], "type": "string"})]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Call:
    """The tool call being served: set by `tool` so that on_worker checks and records it, each tool body one line."""

    tool: str
    writes: bool  # not annotated read-only: it writes to the workspace, installs, or runs the tree's code
    who: Credential | None  # None: stdio, or HTTP started with --no-auth
    name: str | None  # the connector: the `name` argument, or describe_source's spec's
    dry_run: bool


_call: ContextVar[Call] = ContextVar("bizon_forge_call")


def answer(result: Result, error: bool = False) -> CallToolResult:
    """Compact JSON in both channels: every byte of an answer costs the calling agent tokens. `error`: the call
    could not do what was asked (MCP's isError, a tool execution error); the structured answer stays, findings
    and `next` included, so the agent reads why and what to do."""
    data = result.model_dump(mode="json", exclude_none=True)
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=data, is_error=error)


def failed_to_act(result: Result, reports: bool, dry_run: bool) -> bool:
    """Whether an answer (not a refusal: those always are) is a tool error. A report (inspect, validate) did what
    was asked even when its findings fail: a validation that ran and found failures succeeded. A tool that acts
    (describe, render, register, install, remove) did not when its answer is not ok; its dry run is a report."""
    return not result.ok and not reports and not dry_run


def with_findings(model: type[Result], findings: list, **fields) -> Result:
    # through model_validate: whatever built them, the findings are validated as the model's own
    return model.model_validate({**fields, "findings": [f.model_dump(exclude_none=True) for f in findings]})


def refusals(model: type[Result], hints: ToolAnnotations, reports: bool = False):
    """Turn a Refused (bad input, nothing written) into the tool's answer with ok=false and isError (it did not do
    what was asked). A read-only credential is refused by every tool its annotations do not call read-only, before
    anything is resolved. `reports`: the tool's findings are its answer (failed_to_act)."""
    writes = not hints.read_only_hint

    def wrap(fn):
        @functools.wraps(fn)
        async def call(*args, **kwargs):
            who = credentials.caller()
            try:
                if writes:
                    credentials.require_write(who, fn.__name__)
                spec = kwargs.get("spec")
                name = kwargs.get("name") or (spec.get("name") if isinstance(spec, dict) else None)
                _call.set(
                    Call(fn.__name__, writes, who, name if isinstance(name, str) else None, bool(kwargs.get("dry_run")))
                )
                result = await fn(*args, **kwargs)
                return answer(result, failed_to_act(result, reports, bool(kwargs.get("dry_run"))))
            except Refused as refused:
                if who is not None and any(f.id.startswith("auth.") for f in refused.findings):
                    log.warning("refused %s to %r: %s", fn.__name__, who.who, refused)
                return answer(with_findings(model, refused.findings, ok=False, next=refused.next), error=True)

        return call

    return wrap


def sent(ctx: Context, given: dict[str, Any]) -> dict[str, Any]:
    """A describe tool's arguments as the client sent them, every key: the SDK drops a key its signature lacks, and a
    spec stored without it would answer ok. A list or an object the client sent as a JSON string is taken as the SDK
    decoded it (`given`, the tool's parameters); `workspace` is not the spec's, and null means not given."""
    try:
        params = ctx.request_context.params or {}
    except ValueError:  # called outside a request (no client sent anything): the parameters are all there is
        params = {"arguments": given}
    arguments = params.get("arguments") or {}
    if not isinstance(arguments, dict):
        return {}
    decoded = {
        key: given[key] if isinstance(value, str) and isinstance(given.get(key), list | dict) else value
        for key, value in arguments.items()
    }
    return {key: value for key, value in decoded.items() if key != "workspace" and value is not None}


def unknown_argument(key: str, tool: str, known: list[str]) -> Finding:
    near = difflib.get_close_matches(key, known, n=1)
    return failed(
        "spec.unknown_key",
        f"{key[:60]}: {tool} takes no such argument.",
        (f"Did you mean {near[0]!r}? " if near else "") + f"Its arguments are: {', '.join(known)}.",
    )


def source_spec_sent(ctx: Context, spec: object) -> SourceSpec:
    """describe_source's spec, parsed, or a refusal naming each wrong key and value; an argument sent beside `spec`
    (its name, say) is one too, not dropped."""
    unknown = [key for key in sent(ctx, {}) if key != "spec"]
    parsed, findings = parse(source.KIND, spec)
    findings = [unknown_argument(key, "describe_source", ["spec", "workspace"]) for key in unknown] + findings
    if parsed is None or findings:
        raise Refused(*findings, next=fix_next(source.KIND))
    return parsed


def take_any_value(mcp: MCPServer, name: str) -> None:
    """The SDK validates a tool's arguments against its signature and answers a wrong one with pydantic's raw text
    (is_error). A describe tool's arguments are a spec, which spec.common.parse answers as findings naming the path
    and what is expected; so the SDK takes any value there. The published schema stays the signature's: only the
    model the SDK validates with changes (FuncMetadata's fields are read on every call)."""
    tool = mcp._tool_manager.get_tool(name)  # the same registry schemas.compact_tools rewrites
    assert tool is not None, f"{name} is registered above"
    meta = tool.fn_metadata
    anything: dict[str, Any] = {
        key: (Any, Field(None, alias=field.alias)) for key, field in meta.arg_model.model_fields.items()
    }
    meta.arg_model = create_model(meta.arg_model.__name__, __base__=meta.arg_model, **anything)


def _version() -> str:
    try:
        return version("bizon-forge")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "0+unknown"


def build_server(settings: Settings, verifier: Verifier | None = None, anonymous: str = "stdio") -> MCPServer:
    """`verifier`: every HTTP request must carry a bearer token it accepts (the SDK answers 401 otherwise).
    `anonymous`: who the audit trail names for a call without a credential."""
    mcp = MCPServer(
        "bizon-forge",
        version=_version(),
        token_verifier=verifier,
        auth=verifier.auth_settings() if verifier else None,
        instructions=(
            "Adds a destination to a bizon tree in 5 calls: describe_target, render_destination, "
            "apply_registrations, validate_destination (fast, then full); install_dependencies when it names client "
            "libraries. A source (an HTTP API to read): describe_source, render_source, validate_source. "
            "Each answer's `next` says what to call. Every tool takes `workspace`, a bizon tree's path (default: the "
            "server's). "
            "inspect_workspace gives an overview; prompts new_destination and new_source teach the traps."
        ),
    )

    def tool(hints: ToolAnnotations, model: type[Result], reports: bool = False):
        """Register a tool: `hints` are published and decide what a read-only credential may call; `reports`: its
        failing findings are an answer, not a tool error (inspect, validate)."""
        return lambda fn: mcp.tool(annotations=hints)(refusals(model, hints, reports)(fn))

    async def on_worker(run, path: str | None, *args):
        """Resolve the workspace within the caller's roots, roll back a write a dead process left half done, and
        do the work off the event loop (both may wait on the workspace lock). A call that wrote or ran code leaves
        its line in the workspace's audit trail."""
        call = _call.get()

        def work():
            ws = workspace.resolve(path, settings, within=call.who.roots if call.who else None)
            atomic.roll_back_interrupted(ws.state_dir)  # after resolving, so a refused call writes nothing
            result = run(ws, *args)
            # stdio calls are recorded too (who: "stdio"): the trail says what changed the tree, whoever asked.
            who = call.who.who if call.who else anonymous
            line = audit.entry(who, call.tool, call.name, result, call.dry_run) if call.writes else None
            problem = audit.append(ws, line, echo=anonymous != "stdio") if line else None
            if problem:
                return with_findings(
                    type(result), [*result.findings, problem], **result.model_dump(exclude={"findings"})
                )
            return result

        return await anyio.to_thread.run_sync(work)

    _spec_and_render_tools(tool, on_worker)
    _tree_tools(tool, on_worker)
    take_any_value(mcp, "describe_target")
    take_any_value(mcp, "describe_source")
    resources.register(mcp, settings)
    schemas.compact_tools(mcp)
    return mcp


def _spec_and_render_tools(tool, on_worker) -> None:
    """inspect, then describe and render either kind: they write specs and the connector's files."""

    @tool(READ_ONLY, InspectResult, reports=True)
    async def inspect_workspace(workspace: WorkspaceArg = None) -> Annotated[CallToolResult, InspectResult]:
        """bizon version, destinations and their 3 registrations, sources, specs."""
        return await on_worker(inspection.inspect_workspace, workspace)

    @tool(WRITES, DescribeResult)
    # Its arguments are the tool's published input schema, one per spec field: no fewer can say it.
    async def describe_target(  # noqa: PLR0913
        ctx: Context,
        name: Annotated[str, Field(description="snake_case destination name")],
        fields: Annotated[list[FieldSpec] | None, Field(description="config fields")] = None,
        write_method: WriteMethod | None = None,  # None: the recipe's own
        recipe: Annotated[RecipeName, Field(description="sql/file/http: a working destination")] = "custom",
        error_handling: ErrorHandling | None = None,
        batching: Batching | None = None,
        alias: str | None = None,
        description: str = "",
        dependencies: Annotated[
            list[str] | None,
            Field(description="e.g. ['redis>=5']; sql: a URL scheme ['mysql+pymysql://']"),
        ] = None,
        full_refresh: Annotated[
            FullRefresh | None,
            Field(description='http (required): "replace": true honoured, or DELETE first'),
        ] = None,
        write_semantics: Annotated[
            WriteSemantics | None, Field(description="upsert: last per source_record_id wins")
        ] = None,
        full_refresh_isolation: FullRefreshIsolation | None = None,  # a recipe sets its own
        workspace: WorkspaceArg = None,
    ) -> Annotated[CallToolResult, DescribeResult]:
        """Check and store a destination spec; later tools take its name."""
        # The signature publishes the schema; the spec is what the client sent, parsed as every spec is.
        given = {key: value for key, value in locals().items() if key != "ctx"}
        spec = parse_or_refuse(destination.KIND, sent(ctx, given))
        return await on_worker(describe.describe_target, workspace, spec)

    @tool(DESTROYS, RenderResult)  # overwrite=true replaces an agent's edits
    async def render_destination(
        name: str,
        dry_run: bool = False,
        overwrite: bool = False,
        content: Annotated[bool, Field(description="dry_run: return whole files, not diffs")] = False,
        workspace: WorkspaceArg = None,
    ) -> Annotated[CallToolResult, RenderResult]:
        """Write src/, tests and configs from the spec; edits kept unless overwrite=true."""
        return await on_worker(render.render_destination, workspace, name, dry_run, overwrite, content)

    @tool(WRITES, SourceDescribeResult)
    async def describe_source(
        ctx: Context,
        spec: Annotated[dict[str, Any], Field(description=SOURCE_SPEC_HELP)],
        workspace: WorkspaceArg = None,
    ) -> Annotated[CallToolResult, SourceDescribeResult]:
        """Check and store a source spec; later tools take its name."""
        return await on_worker(source_describe.describe_source, workspace, source_spec_sent(ctx, spec))

    @tool(DESTROYS, RenderResult)  # overwrite=true replaces an agent's edits
    async def render_source(
        name: str, dry_run: bool = False, overwrite: bool = False, workspace: WorkspaceArg = None
    ) -> Annotated[CallToolResult, RenderResult]:
        """Write source.py, configs, tests; edits kept unless overwrite=true."""
        from bizon_forge import source_render  # the mock API's module and its cases: off the start-up path

        return await on_worker(source_render.render_source, workspace, name, dry_run, overwrite)


def _tree_tools(tool, on_worker) -> None:
    """What changes the tree beyond the connector's folder, installs into its interpreter, or runs its code."""

    @tool(WRITES, RegistrationResult)
    async def apply_registrations(
        name: str, dry_run: bool = False, workspace: WorkspaceArg = None
    ) -> Annotated[CallToolResult, RegistrationResult]:
        """Add the enum member, models import + Union member, factory branch; atomic, with diffs."""
        return await on_worker(registrations.apply_registrations, workspace, name, dry_run)

    @tool(INSTALLS, InstallResult)
    async def install_dependencies(
        name: str, ctx: Context, kind: KindArg = None, workspace: WorkspaceArg = None
    ) -> Annotated[CallToolResult, InstallResult]:
        """Install a connector's client libraries into bizon's Python (kind: when a destination and a source share
        a name)."""
        lines = iter(range(1, 1 << 30))  # progress must grow with each notification; an install has no total

        def progress(message: str) -> None:
            anyio.from_thread.run(ctx.report_progress, next(lines), None, message)

        return await on_worker(
            functools.partial(dependencies.install_dependencies, progress=progress, kind=kind), workspace, name
        )

    @tool(CHECKS, ValidationResult, reports=True)  # fix=true rewrites files; logs, the check cache: .bizon-forge/
    async def validate_destination(
        name: str,
        ctx: Context,
        level: Level = "fast",
        fix: Annotated[bool, Field(description="ruff fix + format the touched files")] = False,
        verbose: Annotated[bool, Field(description="list passing checks too")] = False,
        workspace: WorkspaceArg = None,
    ) -> Annotated[CallToolResult, ValidationResult]:
        """Run the checklist. fast: static, format, import, contract; full: + tests, bizon runs, data read back
        (written only to config/NAME.check.yml's target)."""

        def progress(done: int, total: int, message: str) -> None:
            anyio.from_thread.run(ctx.report_progress, done, total, message)

        check = functools.partial(
            validators.validate_destination, level=level, fix=fix, verbose=verbose, progress=progress
        )
        return await on_worker(check, workspace, name)

    @tool(CHECKS, ValidationResult, reports=True)  # logs go to .bizon-forge/; only a local mock API is reached
    async def validate_source(
        name: str,
        ctx: Context,
        level: SourceLevel = "fast",
        recorded: Annotated[str | None, Field(description="folder of saved pages to serve")] = None,
        verbose: bool = False,
        max_pages: int = 3,
        save: Annotated[str | None, Field(description="live: folder to save pages in")] = None,
        workspace: WorkspaceArg = None,
    ) -> Annotated[CallToolResult, ValidationResult]:
        """Check a source. fast: static, discovery, get() on a local mock API; full: + its tests, a bizon run,
        misbehaving APIs; live: max_pages of the real API."""

        def progress(done: float, total: float, message: str) -> None:
            anyio.from_thread.run(ctx.report_progress, done, total, message)

        check = functools.partial(
            validators.validate_source,
            level=level,
            verbose=verbose,
            progress=progress,
            recorded=recorded,
            max_pages=max_pages,
            save=save,
        )
        return await on_worker(check, workspace, name)

    @tool(DESTROYS, RemovalResult)
    async def remove_destination(
        name: str, delete_files: bool = False, workspace: WorkspaceArg = None
    ) -> Annotated[CallToolResult, RemovalResult]:
        """Undo the 3 registrations exactly; delete_files: also its folder, tests, spec."""
        return await on_worker(registrations.remove_destination, workspace, name, delete_files)


def serve(
    settings: Settings,
    http: bool = False,
    host: str = "127.0.0.1",
    port: int = 8765,
    stateless=False,
    verifier: Verifier | None = None,
) -> Any:
    """stdio takes no credential: the host's own process boundary is one. HTTP checks `verifier`'s tokens;
    the CLI has already refused to start without one anywhere but on loopback with --no-auth."""
    mcp = build_server(settings, verifier, anonymous="http-no-auth" if http else "stdio")
    if http:
        # Stateless answers still stream (SSE per request): a JSON-only answer drops progress notifications,
        # and clients time out a silent validate_destination run.
        return mcp.run("streamable-http", host=host, port=port, stateless_http=stateless)
    return mcp.run()
