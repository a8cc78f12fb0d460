"""Prompts and resources: the guides, the traps they miss, the write_records contract, the source spec's schema,
reference destinations and sources."""

import json
from importlib import resources as package_files
from pathlib import Path

from mcp.server.mcpserver import MCPServer

from bizon_forge import atomic, connector, credentials, workspace
from bizon_forge.spec.source import schema as source_spec_schema
from bizon_forge.validators import catalog
from bizon_forge.workspace import Settings


def _text(package: str, name: str) -> str:
    return (package_files.files(package) / name).read_text()


def register(mcp: MCPServer, settings: Settings) -> None:
    _prompts(mcp)
    _documents(mcp, settings)
    _references(mcp, settings)


def _prompts(mcp: MCPServer) -> None:
    @mcp.prompt()
    def new_destination(target: str) -> str:
        """Walk through describe -> render -> register -> validate -> fix for a new destination."""
        return _text("bizon_forge.prompts", "new_destination.md").replace("{target}", target)

    @mcp.prompt()
    def new_source(api: str) -> str:
        """Walk through describe_source -> render_source -> validate_source for a source reading an HTTP API."""
        return _text("bizon_forge.prompts", "new_source.md").replace("{api}", api)


def _documents(mcp: MCPServer, settings: Settings) -> None:
    """The guides (the workspace's own, then where they are wrong or silent), the contract, the checklist and the
    source spec's schema."""

    @mcp.resource("bizon-forge://source-spec", mime_type="application/json")
    def source_spec() -> str:
        """The JSON schema of describe_source's spec: streams, pagination patterns A-E, auth, retries."""
        return json.dumps(source_spec_schema(), indent=1)

    @mcp.resource("bizon-forge://source-guide", mime_type="text/markdown")
    def source_guide() -> str:
        """The workspace's own AI connector (source) guide, followed by where it is wrong or silent."""
        own = _default(settings).path("docs/ai-connector-guide.md")
        head = own.read_text() if own.is_file() else "(This bizon tree has no docs/ai-connector-guide.md.)\n"
        return head + _text("bizon_forge.prompts", "source_corrections.md")

    @mcp.resource("bizon-forge://guide", mime_type="text/markdown")
    def guide() -> str:
        """The workspace's own AI destination guide, followed by where it is wrong or silent."""
        own = _default(settings).path("docs/ai-destination-guide.md")
        head = own.read_text() if own.is_file() else "(This bizon tree has no docs/ai-destination-guide.md.)\n"
        return head + _text("bizon_forge.prompts", "corrections.md")

    @mcp.resource("bizon-forge://contract", mime_type="text/markdown")
    def contract() -> str:
        """What write_records receives and must return, and what each sync mode needs."""
        return _text("bizon_forge.prompts", "contract.md")

    @mcp.resource("bizon-forge://checklist", mime_type="text/markdown")
    def checklist() -> str:
        """The validation checklist, generated from the validators themselves."""
        return catalog.checklist_markdown()


def _references(mcp: MCPServer, settings: Settings) -> None:
    """The code of the default workspace's existing connectors, to learn from."""

    @mcp.resource("bizon-forge://reference-source/{name}", mime_type="text/x-python")
    def reference_source(name: str) -> str:
        """Source code of an existing source in the default workspace (pokeapi, notion, hubspot, ...)."""
        ws = _default(settings)
        base = ws.root / connector.folder("source")
        names = sorted(p.name for p in base.iterdir() if (p / "src").is_dir())
        if name not in names:
            raise ValueError(f"No source {name!r}; the workspace has: {', '.join(names)}")
        return _modules(ws, base / name / "src")

    @mcp.resource("bizon-forge://reference/{name}", mime_type="text/x-python")
    def reference(name: str) -> str:
        """Source of an existing destination in the default workspace (logger, file, bigquery, ...)."""
        ws = _default(settings)
        if name not in ws.destinations():
            raise ValueError(f"No destination {name!r}; the workspace has: {', '.join(ws.destinations())}")
        return _modules(ws, ws.destination_dir(name) / "src")


def _modules(ws: workspace.Workspace, src: Path) -> str:
    """Each module of a connector's src/, headed by its tree-relative path."""
    parts = [
        f"# {p.relative_to(ws.root)}\n{workspace.read_regular(p).decode(errors='replace')}"
        for p in sorted(src.glob("*.py"))
    ]
    return "\n\n".join(parts)


def _default(settings: Settings) -> workspace.Workspace:
    """The default workspace, refused to a credential whose roots do not hold it (as the tools refuse it), and
    rolled back, as the tools do, if a dead process left a write half done."""
    who = credentials.caller()
    ws = workspace.resolve(None, settings, within=who.roots if who else None)
    atomic.roll_back_interrupted(ws.state_dir)
    return ws
