"""The README's tool reference, generated from the registered tools so the two cannot drift."""

from typing import cast

from mcp.types import ToolAnnotations

from bizon_forge.server.app import build_server
from bizon_forge.workspace import Settings


async def tool_reference() -> str:
    tools = await build_server(Settings()).list_tools()
    lines = ["| tool | effect | arguments | what it does |", "|---|---|---|---|"]
    for t in tools:
        a = cast(ToolAnnotations, t.annotations)  # build_server annotates every tool
        effect = "read-only" if a.read_only_hint else ("destructive" if a.destructive_hint else "writes")
        if a.idempotent_hint:
            effect += ", idempotent"
        if a.open_world_hint:
            effect += ", reaches outside the tree"
        props = t.input_schema.get("properties", {})
        required = set(t.input_schema.get("required", []))
        args = ", ".join(f"`{p}`" if p in required else f"`{p}?`" for p in props)
        what = " ".join(line.strip() for line in (t.description or "").strip().splitlines())
        lines.append(f"| `{t.name}` | {effect} | {args} | {what} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    import anyio

    print(anyio.run(tool_reference), end="")
