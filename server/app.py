"""The MCP wiring: each tool resolves its workspace and calls one plain function. No work happens here.

Heavy modules (libcst, jinja2, polars, bizon) are imported inside the tools, never at start-up.
"""

import functools
import json
from typing import Annotated, Any, Literal

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import Field

from bizon_forge import workspace
from bizon_forge.dependencies import InstallResult
from bizon_forge.describe import DescribeResult
from bizon_forge.findings import Refused, Result
from bizon_forge.inspection import InspectResult
from bizon_forge.registrations import RegistrationResult, RemovalResult
from bizon_forge.render import RenderResult
from bizon_forge.server import resources, schemas
from bizon_forge.spec import Batching, DestinationSpec, ErrorHandling, FieldSpec, RecipeName, WriteMethod
from bizon_forge.validators.report import ValidationResult
from bizon_forge.workspace import Settings

READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
WRITES = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
DESTROYS = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False)
# Installing reaches the package index and changes the workspace's interpreter, never its files.
INSTALLS = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=True)
# Its live checks write to whatever target the check config names, which may be a server elsewhere.
CHECKS = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=True)

WorkspaceArg = Annotated[str | None, Field(description="default: server's --workspace")]


def answer(result: Result) -> CallToolResult:
    """Compact JSON in both channels: every byte of an answer costs the calling agent tokens."""
    data = result.model_dump(mode="json", exclude_none=True)
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=data)


def refusals(model: type[Result]):
    """Turn a Refused (bad input, nothing written) into an ordinary answer with ok=false."""

    def wrap(fn):
        @functools.wraps(fn)
        async def call(*args, **kwargs):
            try:
                return answer(await fn(*args, **kwargs))
            except Refused as refused:
                # through model_validate: a result whose findings are a subclass (CheckFinding) takes plain ones
                findings = [f.model_dump() for f in refused.findings]
                return answer(model.model_validate({"ok": False, "findings": findings}))

        return call

    return wrap


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("bizon-forge")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "0+unknown"


def build_server(settings: Settings) -> MCPServer:
    mcp = MCPServer(
        "bizon-forge",
        version=_version(),
        instructions=(
            "Adds a destination to a bizon tree in 5 calls: describe_target, render_destination, "
            "apply_registrations, validate_destination (fast, then full); install_dependencies when it names client "
            "libraries. Each answer's `next` says what to call. "
            "inspect_workspace gives an overview; prompt new_destination teaches the traps."
        ),
    )

    async def on_worker(run, path: str | None, *args):
        """Resolve the workspace and do the work off the event loop: resolving may wait on the workspace lock."""
        return await anyio.to_thread.run_sync(lambda: run(workspace.resolve(path, settings), *args))

    @mcp.tool(annotations=READ_ONLY)
    @refusals(InspectResult)
    async def inspect_workspace(workspace: WorkspaceArg = None) -> Annotated[CallToolResult, InspectResult]:
        """bizon version, every destination and which of its 3 registrations exist, stored specs."""
        from bizon_forge.inspection import inspect_workspace as run

        return await on_worker(run, workspace)

    @mcp.tool(annotations=WRITES)
    @refusals(DescribeResult)
    async def describe_target(
        name: Annotated[str, Field(description="snake_case destination name")],
        fields: Annotated[list[FieldSpec] | None, Field(description="connection/config fields")] = None,
        write_method: Annotated[WriteMethod | None, Field(description="default: the recipe's")] = None,
        recipe: Annotated[RecipeName, Field(description="sql/file/http render a working destination")] = "custom",
        error_handling: ErrorHandling | None = None,
        batching: Batching | None = None,
        alias: str | None = None,
        description: str = "",
        dependencies: Annotated[
            list[str] | None,
            Field(description="client libraries, e.g. ['redis>=5']; sql: a URL scheme, e.g. ['mysql+pymysql://']"),
        ] = None,
        workspace: WorkspaceArg = None,
    ) -> Annotated[CallToolResult, DescribeResult]:
        """Check and store the target's spec (Step 1). Later tools need only the name."""
        from bizon_forge.describe import describe_target as run

        spec = DestinationSpec(
            name=name,
            fields=fields or [],
            write_method=write_method,
            recipe=recipe,
            error_handling=error_handling or ErrorHandling(),
            batching=batching or Batching(),
            alias=alias,
            description=description,
            dependencies=dependencies or [],
        )
        return await on_worker(run, workspace, spec)

    @mcp.tool(annotations=DESTROYS)  # overwrite=true replaces an agent's edits
    @refusals(RenderResult)
    async def render_destination(
        name: str,
        dry_run: bool = False,
        overwrite: bool = False,
        content: Annotated[bool, Field(description="dry_run: return whole files, not diffs")] = False,
        workspace: WorkspaceArg = None,
    ) -> Annotated[CallToolResult, RenderResult]:
        """Write the src/ files and example YAML from the spec; edited files are kept unless overwrite=true."""
        from bizon_forge.render import render_destination as run

        return await on_worker(run, workspace, name, dry_run, overwrite, content)

    @mcp.tool(annotations=WRITES)
    @refusals(RegistrationResult)
    async def apply_registrations(
        name: str, dry_run: bool = False, workspace: WorkspaceArg = None
    ) -> Annotated[CallToolResult, RegistrationResult]:
        """Add the enum member, models import + Union member and factory branch; atomic, idempotent, with diffs."""
        from bizon_forge.registrations import apply_registrations as run

        return await on_worker(run, workspace, name, dry_run)

    @mcp.tool(annotations=INSTALLS)
    @refusals(InstallResult)
    async def install_dependencies(
        name: str, ctx: Context, workspace: WorkspaceArg = None
    ) -> Annotated[CallToolResult, InstallResult]:
        """pip-install the destination's client libraries into the workspace's Python (the one bizon runs with)."""
        from bizon_forge.dependencies import install_dependencies as run

        lines = iter(range(1, 1 << 30))  # progress must grow with each notification; an install has no total

        def progress(message: str) -> None:
            anyio.from_thread.run(ctx.report_progress, next(lines), None, message)

        return await on_worker(functools.partial(run, progress=progress), workspace, name)

    @mcp.tool(annotations=CHECKS)  # fix=true rewrites files; logs and the check cache go to .bizon-forge/
    @refusals(ValidationResult)
    async def validate_destination(
        name: str,
        ctx: Context,
        level: Literal["fast", "full"] = "fast",
        fix: Annotated[bool, Field(description="apply ruff fixes/format to the touched files")] = False,
        verbose: Annotated[bool, Field(description="list passing checks too")] = False,
        workspace: WorkspaceArg = None,
    ) -> Annotated[CallToolResult, ValidationResult]:
        """Run the checklist (fast: static, format, import, contract; full: + tests, data read back, bizon runs).
        Writes only to the scratch target of config/NAME.check.yml."""
        from bizon_forge.validators import validate_destination as run

        def progress(done: int, total: int, message: str) -> None:
            anyio.from_thread.run(ctx.report_progress, done, total, message)

        check = functools.partial(run, level=level, fix=fix, verbose=verbose, progress=progress)
        return await on_worker(check, workspace, name)

    @mcp.tool(annotations=DESTROYS)
    @refusals(RemovalResult)
    async def remove_destination(
        name: str, delete_files: bool = False, workspace: WorkspaceArg = None
    ) -> Annotated[CallToolResult, RemovalResult]:
        """Undo the 3 registrations byte-exactly; delete_files also removes the folder, tests and spec."""
        from bizon_forge.registrations import remove_destination as run

        return await on_worker(run, workspace, name, delete_files)

    resources.register(mcp, settings)
    schemas.compact_tools(mcp)
    return mcp


def serve(settings: Settings, http: bool = False, host: str = "127.0.0.1", port: int = 8765, stateless=False) -> Any:
    mcp = build_server(settings)
    if http:
        # Stateless answers still stream (SSE per request): a JSON-only answer drops progress notifications,
        # and clients time out a silent validate_destination run.
        return mcp.run("streamable-http", host=host, port=port, stateless_http=stateless)
    return mcp.run()
