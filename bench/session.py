"""An agent's whole session, replayed over a real MCP client over stdio (issue 25): what the agent reads from the
server, from the tool list to a green `full`, in bytes and tokens, against the session's budget.

A scripted agent does what the prompt says on the happy path: it lists the tools, gets the prompt, reads every
resource the prompt names (templates such as bizon-forge://check/{id} excepted: a green path has no failure to look
up), and calls the tools in the prompt's order, install_dependencies only when an answer's `next` asks for it. Each
session runs in a fresh workspace behind its own server, whose default workspace is that tree (the resources read it).
Every resource the server lists is then read too, to judge the per-resource budgets.
"""

import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from bizon_forge import workspace

SESSION_TOKENS = 15_000  # an agent's whole session to a green full (issue 25)
CHECKLIST_TOKENS = 2_000  # a kind's compact checklist
RESOURCE_TOKENS = 4_000  # any resource, unless it is the long form the agent asked for
TOKEN_BYTES = 4
# The long forms: read only when the agent asks for them, each named by its compact resource.
LONG_FORMS = ("bizon-forge://checklist", "bizon-forge://source-guide")
URI = re.compile(r"bizon-forge://[a-z0-9/_-]+(?:\{[a-z_]+\})?")
DESTINATION = "budget_target"
SOURCE = "budget_source"


@dataclass
class Read:
    what: str  # tools/list, prompt NAME, a resource's URI or a tool call
    answer_bytes: int
    ok: bool = True
    text: str = ""  # a tool's answer as the agent reads it (python bench/session.py --show prints them)


@dataclass
class Session:
    kind: str
    reads: list[Read] = field(default_factory=list)

    @property
    def total_bytes(self) -> int:
        return sum(r.answer_bytes for r in self.reads)

    @property
    def green(self) -> bool:
        """The session ended on a passing `full`."""
        last = self.reads[-1] if self.reads else None
        return bool(last and last.what.endswith("full") and last.ok)


def tokens(n_bytes: int) -> int:
    return round(n_bytes / TOKEN_BYTES)


def named_resources(prompt: str) -> list[str]:
    """The resources a prompt names, in order, once each; templates (a `{...}` part) are looked up on demand only."""
    seen: list[str] = []
    for found in URI.findall(prompt):
        uri = found.rstrip("/")
        if "{" not in uri and uri not in seen:
            seen.append(uri)
    return seen


def destination_calls(name: str = DESTINATION) -> list[tuple[str, dict]]:
    """new_destination.md's steps with the file recipe (it renders a destination that already works)."""
    return [
        ("inspect_workspace", {}),
        ("describe_target", {"name": name, "recipe": "file", "description": "Budget target."}),
        ("render_destination", {"name": name}),
        ("apply_registrations", {"name": name}),
        ("validate_destination fast", {"name": name, "level": "fast"}),
        ("validate_destination full", {"name": name, "level": "full"}),
    ]


def source_calls(name: str = SOURCE) -> list[tuple[str, dict]]:
    """new_source.md's steps with bench's cursor-paged, bearer-authenticated, incremental API."""
    from workflow import source_spec

    return [
        ("inspect_workspace", {}),
        ("describe_source", {"spec": source_spec(name)}),
        ("render_source", {"name": name}),
        ("validate_source fast", {"name": name, "level": "fast"}),
        ("validate_source full", {"name": name, "level": "full"}),
    ]


def _text(result) -> str:
    return "".join(c.text for c in result.content if getattr(c, "type", "") == "text")


async def _resource(client: Client, uri: str) -> Read:
    try:
        got = await client.read_resource(uri)
    except Exception as error:  # noqa: BLE001 - a named resource that cannot be read is a finding of the bench
        return Read(uri, 0, ok=False) if not str(error) else Read(f"{uri} ({error})", 0, ok=False)
    return Read(uri, sum(len(getattr(c, "text", "").encode()) for c in got.contents))


async def _tool(client: Client, label: str, args: dict) -> tuple[Read, dict]:
    result = await client.call_tool(label.split()[0], args)
    data = result.structured_content or {}
    text = _text(result)
    return Read(label, len(text.encode()), ok=not result.is_error and bool(data.get("ok")), text=text), data


async def _session(client: Client, kind: str, prompt: str, argument: dict, calls) -> Session:
    session = Session(kind)
    listed = await client.list_tools()
    session.reads.append(Read("tools/list", len(listed.model_dump_json(by_alias=True, exclude_none=True).encode())))
    got = await client.get_prompt(prompt, argument)
    text = "".join(getattr(m.content, "text", "") for m in got.messages)
    session.reads.append(Read(f"prompt {prompt}", len(text.encode())))
    for uri in named_resources(text):
        session.reads.append(await _resource(client, uri))
    for label, args in calls:
        read, data = await _tool(client, label, args)
        session.reads.append(read)
        if "install_dependencies" in str(data.get("next", "")):
            installed, _ = await _tool(client, "install_dependencies", {"name": args.get("name", "")})
            session.reads.append(installed)
    return session


def _params(tree: Path) -> StdioServerParameters:
    return StdioServerParameters(
        command=sys.executable, args=["-m", "bizon_forge", "serve", "--workspace", str(tree)], env=dict(os.environ)
    )


async def resource_sizes(client: Client) -> dict[str, int]:
    """Every listed resource, and each template at every value it lists (a check page: the largest of them)."""
    sizes: dict[str, int] = {}
    for r in (await client.list_resources()).resources:
        sizes[str(r.uri)] = (await _resource(client, str(r.uri))).answer_bytes
    from bizon_forge.validators import catalog

    ids = [c.id for mods in (catalog.MODULES, catalog.SOURCE_MODULES) for c in catalog.collect(mods).checks]
    pages = [(await _resource(client, f"bizon-forge://check/{i}")).answer_bytes for i in ids]
    sizes["bizon-forge://check/{id} (largest)"] = max(pages)
    return sizes


async def replay(root: Path) -> tuple[list[Session], dict[str, int]]:
    """Both sessions, each in a fresh tree under `root` behind its own server, and every resource's size."""
    sessions, sizes = [], {}
    plans = (
        ("destination", "new_destination", {"target": "JSON Lines files"}, destination_calls()),
        ("source", "new_source", {"api": "a cursor-paged REST API"}, source_calls()),
    )
    for kind, prompt, argument, calls in plans:
        tree = workspace.init(str(root / kind))
        with (root / f"{kind}-server.log").open("w") as errlog:
            async with Client(stdio_client(_params(tree), errlog=errlog)) as client:
                sessions.append(await _session(client, kind, prompt, argument, calls))
                if kind == "source":
                    sizes = await resource_sizes(client)
    return sessions, sizes


def over_budget(uri: str, n_bytes: int) -> str | None:
    """Why a resource breaks its budget, or None."""
    if uri.startswith("bizon-forge://checklist/") and tokens(n_bytes) > CHECKLIST_TOKENS:
        return f"a checklist over {CHECKLIST_TOKENS:,} tok"
    if uri not in LONG_FORMS and not uri.startswith("bizon-forge://reference") and tokens(n_bytes) > RESOURCE_TOKENS:
        return f"over {RESOURCE_TOKENS:,} tok and no long form"
    return None


def _parts(session: Session) -> str:
    """Where a session's tokens go: the tool list, the prompt, the resources it names, the tools' answers."""
    groups = {"tools/list": 0, "prompt": 0, "resources": 0, "answers": 0}
    for r in session.reads:
        key = "resources" if r.what.startswith("bizon-forge://") else r.what.split()[0]
        groups[key if key in groups else "answers"] += r.answer_bytes
    return " · ".join(f"{k} {tokens(v):,}" for k, v in groups.items())


def rows(sessions: list[Session], sizes: dict[str, int]) -> list:
    """The bench's rows: each session against its budget, then every resource against its own."""
    from report import Row, size

    out = []
    for s in sessions:
        resources = sum(1 for r in s.reads if r.what.startswith("bizon-forge://"))
        calls = [r.what for r in s.reads if not r.what.startswith(("bizon-forge://", "tools/list", "prompt"))]
        failed = [r.what for r in s.reads if not r.ok]
        status = "met" if tokens(s.total_bytes) <= SESSION_TOKENS and s.green else "missed"
        if tokens(s.total_bytes) > SESSION_TOKENS:
            status = f"missed by {tokens(s.total_bytes) - SESSION_TOKENS:,} tok"
        if not s.green or failed:
            status += f" (not green: {', '.join(failed) or 'no full'})"
        out.append(
            Row(
                f"{s.kind} session replayed over stdio: tools/list → prompt → {resources} resource(s) it names → "
                f"{len(calls)} calls to a green full",
                size(s.total_bytes),
                f"parts, tok: {_parts(s)}",
                "",
                f"≤ {SESSION_TOKENS:,} tok",
                status,
            )
        )
    for uri, n in sizes.items():
        budget = (
            f"≤ {CHECKLIST_TOKENS:,} tok"
            if uri.startswith("bizon-forge://checklist/")
            else ("long form: asked for" if uri in LONG_FORMS else f"≤ {RESOURCE_TOKENS:,} tok")
        )
        why = over_budget(uri, n)
        out.append(Row(f"resource `{uri}`", size(n), "", "", budget, f"missed: {why}" if why else "met"))
    return out


if __name__ == "__main__":  # python bench/session.py [--show]: the replay alone, every answer's text with --show
    import tempfile

    import anyio

    sys.path.insert(0, str(Path(__file__).parent))
    with tempfile.TemporaryDirectory(prefix="bizon-forge-session-") as tmp:
        got, sized = anyio.run(replay, Path(tmp))
    for s in got:
        print(f"{s.kind}: {s.total_bytes:,} B ≈ {tokens(s.total_bytes):,} tok, green={s.green}")
        for r in s.reads:
            print(f"  {r.what}: {r.answer_bytes:,} B ≈ {tokens(r.answer_bytes):,} tok{'' if r.ok else ' (ok=false)'}")
            if r.text and "--show" in sys.argv:
                print(f"    {r.text}")
    for uri, n in sized.items():
        print(f"{uri}: {n:,} B ≈ {tokens(n):,} tok {over_budget(uri, n) or ''}")
