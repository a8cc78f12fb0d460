"""Compact tool schemas: the tool list is paid in tokens on every turn of the calling agent.

pydantic's JSON schemas carry a `title` per property, `anyOf [X, null]` for every optional and a
`$defs` copy of Finding per tool. This pass rewrites each registered tool's input and output schema
once, at build time, into a smaller schema that accepts the same answers the tools send:

- `title` keywords go (property names already say it);
- `anyOf [X, {type: null}]` with `default: null` becomes X: an omitted argument means None, and
  answers never carry null (server/app.py answer() drops None);
- `$ref`s into `$defs` are inlined (no model here is recursive; a cycle keeps its `$ref`);
- output schemas lose `default` and `description`: they validate nothing, and an answer is read as
  data (its field names and the tool's description say what it holds);
- an output's nested objects (a top-level property's object, or its array's items) keep only their
  required keys: Finding is the one shape every tool answers with, and spelling it out in all six
  tools cost ~380 tokens a turn; the interpreter, names and states of destinations are read as data
  the same way. Every answer shows its keys, and bizon-forge://checklist lists the finding ids.
"""

from typing import Any

from mcp.server.mcpserver import MCPServer

Schema = dict[str, Any]

# Keywords whose value is one subschema, a list of them, or a name -> subschema map.
ONE = ("items", "additionalProperties", "not", "if", "then", "else", "contains", "propertyNames")
MANY = ("anyOf", "oneOf", "allOf", "prefixItems")
MAP = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")


def compact(schema: Schema, *, output: bool = False) -> Schema:
    """A smaller schema accepting what the tool really sends or receives. The input is not modified."""
    defs = dict(schema.get("$defs", {}))
    kept: dict[str, Schema] = {}
    root = _inline(schema, defs, kept, ())
    root.pop("$defs", None)
    root = _strip(root, output)
    if output:
        _brief_nested(root)
    if kept:
        root["$defs"] = {name: _strip(_inline(d, defs, kept, (name,)), output) for name, d in kept.items()}
    return root


def _brief(node: Schema) -> Schema:
    brief: Schema = {"type": "object"}
    if node.get("required"):
        brief["required"] = node["required"]
    return brief


def _brief_nested(root: Schema) -> None:
    for name, prop in root.get("properties", {}).items():
        if prop.get("type") == "object" and "properties" in prop:
            root["properties"][name] = _brief(prop)
        items = prop.get("items")
        if prop.get("type") == "array" and isinstance(items, dict) and items.get("type") == "object":
            prop["items"] = _brief(items)


def _inline(node: Any, defs: dict[str, Schema], kept: dict[str, Schema], stack: tuple[str, ...]) -> Any:
    """Replace each `$ref: #/$defs/X` by X itself; a ref back into `stack` (a cycle) stays a ref."""
    if isinstance(node, list):
        return [_inline(x, defs, kept, stack) for x in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        name = ref.removeprefix("#/$defs/")
        if name in defs and name not in stack:
            siblings = {k: v for k, v in node.items() if k != "$ref"}
            return {**_inline(defs[name], defs, kept, (*stack, name)), **_inline(siblings, defs, kept, stack)}
        if name in defs:
            kept[name] = defs[name]
        return node
    return {k: (v if k == "$defs" else _inline(v, defs, kept, stack)) for k, v in node.items()}


def _strip(node: Schema, output: bool) -> Schema:
    """Drop titles, nullable wrappers of optionals and (in outputs) defaults, at every level."""
    out: Schema = {}
    for key, value in node.items():
        if key == "title" and isinstance(value, str) or key == "description" and output:
            continue
        if key in ONE and isinstance(value, dict):
            out[key] = _strip(value, output)
        elif key in MANY and isinstance(value, list):
            out[key] = [_strip(v, output) if isinstance(v, dict) else v for v in value]
        elif key in MAP and isinstance(value, dict):
            out[key] = {name: _strip(v, output) if isinstance(v, dict) else v for name, v in value.items()}
        else:
            out[key] = value
    out = _drop_null_branch(out)
    if output or ("default" in out and out["default"] is None):
        out.pop("default", None)
    return out


def _drop_null_branch(node: Schema) -> Schema:
    """`{anyOf: [X, {type: null}], default: null}` -> X. A nullable without that default keeps its null."""
    options = node.get("anyOf")
    if not isinstance(options, list) or "default" not in node or node["default"] is not None:
        return node
    rest = [o for o in options if o != {"type": "null"}]
    if len(rest) != 1 or len(rest) == len(options):
        return node
    merged = {k: v for k, v in node.items() if k not in ("anyOf", "default")}
    return {**rest[0], **merged}


def compact_tools(mcp: MCPServer) -> None:
    """Rewrite every registered tool's published schemas in place (once, at build time)."""
    # The SDK keeps registered tools in its ToolManager; FuncMetadata's fields are read live on
    # every tools/list, so reassigning them is the documented way to change what is published.
    for tool in mcp._tool_manager.list_tools():
        # a docstring's second line keeps its source indentation; an agent reads the description, not the source
        tool.description = " ".join((tool.description or "").split())
        tool.parameters = compact(tool.parameters)
        meta = tool.fn_metadata
        if meta.output_schema is not None:
            meta.output_schema = compact(meta.output_schema, output=True)
            tool.__dict__.pop("output_schema", None)  # Tool.output_schema is a cached_property
