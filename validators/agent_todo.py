"""What is left for the agent: TODO markers, stub bodies, NotImplementedError, template placeholders."""

import ast
import io
import re
import tokenize

from bizon_forge.findings import Finding
from bizon_forge.render import TODO, todo_tasks
from bizon_forge.validators.catalog import Check, static
from bizon_forge.validators.code import DestinationCode, is_stub, short

PLACEHOLDER = re.compile(r"\{\{.{0,80}?\}\}|\{%.{0,80}?%\}")


def _line_of(text: str, index: int) -> int:
    return text.count("\n", 0, index) + 1


AGENT_TODO_LEFT = Check(
    "agent.todo_left",
    "Left for the agent",
    "No `FORGE-TODO` marker is left in the destination's files.",
    "render_destination marks every place where code must be written with FORGE-TODO.",
    "Write the code each FORGE-TODO describes, then delete the marker.",
    origin="forge",
)


@static(AGENT_TODO_LEFT)
def todo_left(code: DestinationCode) -> Finding:
    hits = [(f.rel, _line_of(f.text, at), task) for f in code.files.values() for at, task in todo_tasks(f.text)]
    if not hits:
        return AGENT_TODO_LEFT.passed()
    lines = ", ".join(str(line) for rel, line, _ in hits if rel == hits[0][0])
    named = ", ".join(task for _, _, task in hits if not task.startswith("@"))
    return AGENT_TODO_LEFT.fail(
        f"{len(hits)} {TODO} task(s) left"
        + (f" ({named})" if named else "")
        + f", in {short(hits[0][0])} on lines {lines}.",
        file=hits[0][0],
        line=hits[0][1],
    )


AGENT_PASS_BODY = Check(
    "agent.pass_body",
    "Left for the agent",
    "No function or method in the destination's files has a body that is only `pass` or `...`.",
    "The guide's skeleton ends in `pass`; a stub that silently does nothing loses records.",
    "Implement the function, or delete it if nothing calls it.",
    origin="forge",
)


@static(AGENT_PASS_BODY)
def pass_body(code: DestinationCode) -> Finding:
    hits = []
    for f in code.src_files():
        for node in ast.walk(f.tree) if f.tree else []:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and is_stub(node):
                hits.append((f.rel, node.lineno, node.name))
    if not hits:
        return AGENT_PASS_BODY.passed()
    rel, line, name = hits[0]
    names = ", ".join(h[2] for h in hits)
    return AGENT_PASS_BODY.fail(f"{len(hits)} function(s) are only `pass`/`...`: {names}.", file=rel, line=line)


AGENT_NOT_IMPLEMENTED = Check(
    "agent.not_implemented",
    "Left for the agent",
    "No `NotImplementedError` is left in the destination's files.",
    "It marks code that was never written.",
    "Implement that code path; if it is unsupported on purpose, raise ValueError saying why.",
    origin="forge",
)


@static(AGENT_NOT_IMPLEMENTED)
def not_implemented(code: DestinationCode) -> Finding:
    hits = []
    for f in code.src_files():
        for node in ast.walk(f.tree) if f.tree else []:
            if isinstance(node, ast.Name) and node.id in ("NotImplementedError", "NotImplemented"):
                hits.append((f.rel, node.lineno))
    if not hits:
        return AGENT_NOT_IMPLEMENTED.passed()
    lines = ", ".join(str(line) for rel, line in hits if rel == hits[0][0])
    return AGENT_NOT_IMPLEMENTED.fail(
        f"{len(hits)} NotImplementedError(s) left, in {short(hits[0][0])} on lines {lines}.",
        file=hits[0][0],
        line=hits[0][1],
    )


def _python_placeholders(text: str) -> list[int]:
    """Lines of placeholders in comments and plain strings (f-strings may hold escaped `{{`)."""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return [_line_of(text, m.start()) for m in PLACEHOLDER.finditer(text)]
    out = []
    for tok in tokens:
        if tok.type == tokenize.COMMENT or (
            tok.type == tokenize.STRING and "f" not in tok.string.split("'")[0].split('"')[0].lower()
        ):
            if PLACEHOLDER.search(tok.string):
                out.append(tok.start[0])
    return out


AGENT_PLACEHOLDER = Check(
    "agent.placeholder",
    "Left for the agent",
    "No template placeholder (`{{ ... }}`, `{% ... %}`) is left in the destination's files or example YAML.",
    "Placeholders from the guide's templates are not valid values.",
    "Replace each placeholder with the real name or value (see the guide's placeholder table).",
    origin="forge",
)


@static(AGENT_PLACEHOLDER)
def placeholder(code: DestinationCode) -> Finding:
    hits = []
    for f in code.src_files():  # not the tests: a test may hold a template on purpose
        if f.is_python:
            hits += [(f.rel, line) for line in _python_placeholders(f.text)]
        else:
            hits += [(f.rel, _line_of(f.text, m.start())) for m in PLACEHOLDER.finditer(f.text)]
    if not hits:
        return AGENT_PLACEHOLDER.passed()
    rel, line = hits[0]
    shown = PLACEHOLDER.search(code.files[rel].text.splitlines()[line - 1])
    return AGENT_PLACEHOLDER.fail(
        f"{len(hits)} template placeholder(s) left, e.g. {shown.group(0) if shown else '{{ }}'} in {short(rel)}.",
        file=rel,
        line=line,
    )


AGENT_CHECKS = (todo_left, pass_body, not_implemented, placeholder)  # run first: they decide what may run
