"""Prompts and resources: the guides, the traps they miss, the write_records contract, the source spec's schema,
reference destinations and sources.

Sized for a model (issue 25): every KB an agent reads is ~250 tokens it cannot spend on the user's code. The default
resources are compact (a checklist per kind, a check's why and limits one read away, the source guide as a digest);
the long forms stay at their old URIs, each named by the compact one, so nothing cut is out of reach."""

import difflib
import json
import re
from importlib import resources as package_files
from pathlib import Path

from mcp.server.mcpserver import MCPServer

from bizon_forge import atomic, connector, credentials, workspace
from bizon_forge.spec.source import schema as source_spec_schema
from bizon_forge.validators import catalog
from bizon_forge.validators.catalog import Check
from bizon_forge.workspace import Settings

TOKEN_BYTES = 4  # tokens are estimated as bytes/4, as bench/ does: no tokenizer works offline
CHECKLIST_TOKENS = 2000  # a kind's compact checklist (issue 25)
CHECKLIST_INTRO = {
    kind: f"Each line: a check of `{tool}` (one finding with this id), what must hold, and the fix when it is short; "
    f"{levels}: run by that level only. Why, limits and the whole fix of one: bizon-forge://check/ID. Every check in "
    "full: bizon-forge://checklist (long form)."
    for kind, tool, levels in (
        ("destination", "validate_destination", "`(full)`"),
        ("source", "validate_source", "`(full)`/`(live)`"),
    )
}


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
        # compact: indentation is a third of the indented form's bytes, and a model reads JSON without it
        return json.dumps(source_spec_schema(), separators=(",", ":"), ensure_ascii=False)

    @mcp.resource("bizon-forge://source-guide/digest", mime_type="text/markdown")
    def source_guide_digest() -> str:
        """What a source's author must know of bizon's connector guide, and where it is wrong (~2k tokens)."""
        return _text("bizon_forge.prompts", "source_digest.md") + _text("bizon_forge.prompts", "source_corrections.md")

    @mcp.resource("bizon-forge://source-guide", mime_type="text/markdown")
    def source_guide() -> str:
        """Long form (~9k tokens; the digest is bizon-forge://source-guide/digest): the workspace's own AI connector
        guide, followed by where it is wrong or silent."""
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

    @mcp.resource("bizon-forge://checklist/destination", mime_type="text/markdown")
    def checklist_destination() -> str:
        """validate_destination's checks, one line each: id, what must hold, the fix (<= 2k tokens)."""
        return compact_checklist("destination")

    @mcp.resource("bizon-forge://checklist/source", mime_type="text/markdown")
    def checklist_source() -> str:
        """validate_source's checks, one line each: id, what must hold, the fix (<= 2k tokens)."""
        return compact_checklist("source")

    @mcp.resource("bizon-forge://check/{id}", mime_type="text/markdown")
    def check(id: str) -> str:
        """One check in full: what must hold, why, its fix and limits, its level, what it requires."""
        return check_page(id)

    @mcp.resource("bizon-forge://checklist", mime_type="text/markdown")
    def checklist() -> str:
        """Long form (~12k tokens; one kind in a line per check: bizon-forge://checklist/destination or /source):
        every check of both kinds with its why, fix and limits, generated from the validators."""
        return catalog.checklist_markdown()


def _references(mcp: MCPServer, settings: Settings) -> None:
    """The code of the default workspace's existing connectors, to learn from."""

    @mcp.resource("bizon-forge://reference-source/{name}", mime_type="text/x-python")
    def reference_source(name: str) -> str:
        """Source code of an existing source in the default workspace, whole (a long form: pokeapi ~0.6k tokens,
        notion ~17k)."""
        ws = _default(settings)
        base = ws.root / connector.folder("source")
        names = sorted(p.name for p in base.iterdir() if (p / "src").is_dir())
        if name not in names:
            raise ValueError(f"No source {name!r}; the workspace has: {', '.join(names)}")
        return _modules(ws, base / name / "src")

    @mcp.resource("bizon-forge://reference/{name}", mime_type="text/x-python")
    def reference(name: str) -> str:
        """Source of an existing destination in the default workspace, whole (a long form: logger ~0.6k tokens,
        file ~1.2k, bigquery ~12k)."""
        ws = _default(settings)
        if name not in ws.destinations():
            raise ValueError(f"No destination {name!r}; the workspace has: {', '.join(ws.destinations())}")
        return _modules(ws, ws.destination_dir(name) / "src")


# -- the checklists sized for a model ---------------------------------------------------------------------------


def _sentence(text: str) -> str:
    """The first sentence of `text`, its parentheticals dropped: the one-line form of a check's what or fix. A full
    stop inside a code span (`a.b`) ends no sentence."""
    text = re.sub(r" \([^()]*\)", "", text)
    ticks = 0
    for i, ch in enumerate(text):
        ticks += ch == "`"
        if ch in ".!?" and ticks % 2 == 0 and (i + 1 == len(text) or text[i + 1] == " "):
            return text[:i]
    return text.rstrip(".")


def _clip(text: str, width: int) -> str:
    """`text` cut at a word to at most `width` characters, marked with an ellipsis when cut."""
    if len(text) <= width:
        return text
    return text[:width].rsplit(" ", 1)[0].rstrip(",;:") + "…"


def _short_fix(fix: str, width: int = 60) -> str:
    """A fix's first clause when it is short enough to act on as it stands; else nothing (its page has it whole)."""
    first = re.split(r", or |; ", _sentence(fix), maxsplit=1)[0]
    return first if len(first) <= width else ""


def _line(c: Check, width: int) -> str:
    level = f" ({c.level})" if c.level != "fast" else ""
    fix = _short_fix(c.fix)
    what = _clip(_sentence(c.what), width)
    return f"- {c.id}{level}: {what}{'' if what.endswith('…') else '.'}" + (f" Fix: {fix}." if fix else "")


def _checks(kind: str) -> tuple[Check, ...]:
    return catalog.collect(catalog.MODULES if kind == "destination" else catalog.SOURCE_MODULES).checks


def compact_checklist(kind: str) -> str:
    """A kind's checklist in one line per check, grouped, within CHECKLIST_TOKENS: each line's `what` is cut only as
    far as the whole must be (checks added later shorten the lines, never break the budget)."""
    checks = _checks(kind)
    for width in range(140, 30, -5):
        lines = [f"# {kind.capitalize()} checklist", "", CHECKLIST_INTRO[kind]]
        group = None
        for c in checks:
            if c.group != group:
                group = c.group
                lines += ["", f"{group}:"]
            lines.append(_line(c, width))
        text = "\n".join(lines) + "\n"
        if len(text.encode()) <= CHECKLIST_TOKENS * TOKEN_BYTES:
            break
    return text


def check_page(id: str) -> str:
    """Everything the catalog declares of one check: the long form of its checklist line."""
    try:
        c = catalog.find(id)
    except KeyError:
        # An answer, not an error: the SDK hides a resource's error message from the client, and the agent needs it.
        ids = [c.id for kind in ("destination", "source") for c in _checks(kind)]
        close = difflib.get_close_matches(id, ids, n=3)
        return (
            f"No check {id!r}"
            + (f"; did you mean {', '.join(close)}?" if close else ".")
            + " Every id: bizon-forge://checklist/destination and bizon-forge://checklist/source.\n"
        )
    tool = "validate_destination" if c.kind == "destination" else "validate_source"
    lines = [
        f"# {c.id}",
        "",
        f"{tool}, level {c.level}, group {c.group}" + (" (a trap bizon's guide misses)" if c.origin == "facts" else ""),
        "",
        f"What must hold: {c.what}",
        f"Why: {c.why}",
        f"Fix: {c.fix}",
    ]
    if c.limits:
        lines.append(f"Limits: {c.limits}")
    if c.requires:
        lines.append(f"Runs only once these pass: {', '.join(c.requires)}")
    if c.explained_by:
        lines.append(f"A failure after one of these failed is answered as a skip: {', '.join(c.explained_by)}")
    return "\n".join(lines) + "\n"


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
