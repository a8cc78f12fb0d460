"""One small libcst transform per registration, each with its exact inverse.

Untouched code round-trips byte for byte.

Every function takes and returns source text; none of them decides whether to edit (registrations.py does).
"""

import json
import re
from typing import cast

import libcst as cst
import libcst.matchers as m

from bizon_forge.connector import is_connector_module


class EditPointMissing(Exception):
    """The structure the edit hangs on is not in the file (a tree this tool does not understand)."""


def _sort_key(module: str) -> list[tuple]:
    """ruff's isort order: case-insensitive, natural (dest_9 < dest_10; zero-led runs compare digit-wise)."""
    key = []
    for run in re.findall(r"\d+|\D", module.lower()):
        if not run.isdigit():
            key.append((ord(run), 0, ""))
        else:
            key.append((ord("0"), 0, run) if run.startswith("0") else (ord("0"), int(run), ""))
    return key


def _import_from(line: cst.CSTNode) -> cst.ImportFrom:
    """The import of a line matched as SimpleStatementLine(body=[ImportFrom()])."""
    return cast(cst.ImportFrom, cast(cst.SimpleStatementLine, line).body[0])


def _module_name(node: cst.ImportFrom) -> str:
    parts: list[str] = []
    mod: cst.BaseExpression | None = node.module
    while isinstance(mod, cst.Attribute):
        parts.append(mod.attr.value)
        mod = mod.value
    if isinstance(mod, cst.Name):
        parts.append(mod.value)
    return ".".join(reversed(parts))


def _edit_class_body(module: cst.Module, name: str, edit) -> cst.Module | None:
    """The module with `edit(statements)` applied to the body of its top-level class `name`.

    None if there is no such class or `edit` returns None. Walks straight to the class: a visitor over
    every node costs ~0.1 s per file, and bizon keeps these classes at the top level.
    """
    for i, stmt in enumerate(module.body):
        if isinstance(stmt, cst.ClassDef) and stmt.name.value == name and isinstance(stmt.body, cst.IndentedBlock):
            new = edit(list(stmt.body.body))
            if new is None:
                return None
            body = list(module.body)
            body[i] = stmt.with_changes(body=stmt.body.with_changes(body=new))
            return module.with_changes(body=body)
    return None


# -- enum member in DestinationTypes ---------------------------------------------------------------


def _enum_assign(stmt, member: str | None = None) -> bool:
    target = m.Name(member) if member else m.Name()
    return m.matches(stmt, m.SimpleStatementLine(body=[m.Assign(targets=[m.AssignTarget(target=target)])]))


def add_enum_member(source: str, member: str, value: str) -> str:
    module = cst.parse_module(source)
    new = cst.parse_statement(f"{member} = {json.dumps(value)}\n", config=module.config_for_parsing)

    def edit(body):
        last = max((i for i, s in enumerate(body) if _enum_assign(s)), default=None)
        return None if last is None else [*body[: last + 1], new, *body[last + 1 :]]

    out = _edit_class_body(module, "DestinationTypes", edit)
    if out is None:
        raise EditPointMissing("class DestinationTypes with members was not found in bizon/destination/config.py")
    return out.code


def remove_enum_member(source: str, member: str) -> str:
    module = cst.parse_module(source)
    out = _edit_class_body(module, "DestinationTypes", lambda body: [s for s in body if not _enum_assign(s, member)])
    return source if out is None else out.code


# -- config import in bizon/common/models.py --------------------------------------------------------


def _import_text(module: str, name: str, line_length: int) -> str:
    one = f"from {module} import {name}\n"
    return one if len(one) - 1 <= line_length else f"from {module} import (\n    {name},\n)\n"


def add_import(source: str, module_path: str, name: str, line_length: int = 88) -> str:
    """Place the import where isort puts it: among the connector imports, in module order."""
    module = cst.parse_module(source)
    new = cst.parse_statement(_import_text(module_path, name, line_length), config=module.config_for_parsing)
    body = list(module.body)
    imports = [
        (i, _module_name(_import_from(s)))
        for i, s in enumerate(body)
        if m.matches(s, m.SimpleStatementLine(body=[m.ImportFrom(relative=[])])) and _import_from(s).module is not None
    ]
    if not imports:
        raise EditPointMissing("no top-level imports in bizon/common/models.py")
    key = _sort_key(module_path)
    connectors = [(i, mod) for i, mod in imports if is_connector_module(mod)]
    pool = connectors or [(i, mod) for i, mod in imports if mod.startswith("bizon.")] or imports
    after = [i for i, mod in pool if _sort_key(mod) > key]
    position = after[0] if after else pool[-1][0] + 1
    if position < len(body) and position == pool[0][0]:
        # Taking the first slot: the section's leading blank lines stay in front of it.
        first = body[position]
        new = new.with_changes(leading_lines=first.leading_lines)
        body[position] = first.with_changes(leading_lines=())
    body.insert(position, new)
    return module.with_changes(body=body).code


def remove_import(source: str, module_path: str, name: str) -> str:
    module = cst.parse_module(source)
    body = list(module.body)
    for i, s in enumerate(body):
        if (
            m.matches(s, m.SimpleStatementLine(body=[m.ImportFrom()]))
            and _import_from(s).module is not None
            and _module_name(_import_from(s)) == module_path
            and not isinstance(names := _import_from(s).names, cst.ImportStar)
            and [a.name.value for a in names] == [name]
        ):
            removed = body.pop(i)
            if removed.leading_lines and i < len(body):
                # Blank lines or comments above the import stay where they were, above what follows it.
                body[i] = body[i].with_changes(leading_lines=[*removed.leading_lines, *body[i].leading_lines])
            return module.with_changes(body=body).code
    return source


# -- member of BizonConfig.destination: Union[...] -------------------------------------------------

_UNION = m.SimpleStatementLine(
    body=[m.AnnAssign(target=m.Name("destination"), annotation=m.Annotation(annotation=m.Subscript()))]
)


def _member_layout(sub: cst.Subscript) -> cst.ParenthesizedWhitespace | None:
    """What separates members in this Union when it is written one per line: a new line at member indent."""
    layouts = [sub.lbracket.whitespace_after] + [
        e.comma.whitespace_after for e in list(sub.slice)[:-1] if isinstance(e.comma, cst.Comma)
    ]
    return next((w for w in layouts if isinstance(w, cst.ParenthesizedWhitespace)), None)


def _fresh_comma(sub: cst.Subscript) -> cst.Comma:
    multi = _member_layout(sub)
    if multi is None:
        return cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))
    return cst.Comma(whitespace_after=multi.with_changes(first_line=cst.TrailingWhitespace(), empty_lines=[]))


def _split_lines(comma: cst.Comma | cst.MaybeSentinel) -> cst.ParenthesizedWhitespace | None:
    """The whitespace after a comma that ends its line."""
    if isinstance(comma, cst.Comma) and isinstance(comma.whitespace_after, cst.ParenthesizedWhitespace):
        return comma.whitespace_after
    return None


def _edit_union(source: str, edit) -> str:
    module = cst.parse_module(source)

    def edit_class(body):
        for i, stmt in enumerate(body):
            if m.matches(stmt, _UNION):
                ann = stmt.body[0]
                new = ann.with_changes(
                    annotation=ann.annotation.with_changes(annotation=edit(ann.annotation.annotation))
                )
                return [*body[:i], stmt.with_changes(body=[new]), *body[i + 1 :]]
        return None

    out = _edit_class_body(module, "BizonConfig", edit_class)
    if out is None:
        raise EditPointMissing("`destination: Union[...]` in class BizonConfig was not found in bizon/common/models.py")
    return out.code


def add_union_member(source: str, name: str) -> str:
    """Append `name` to the Union. A comment on the last member's line stays on that line."""

    def edit(sub: cst.Subscript) -> cst.Subscript:
        elements = list(sub.slice)
        last = elements[-1]
        after = _split_lines(last.comma)
        if after is not None:
            # One member per line, trailing comma: the last member keeps its line (and comment); the lines
            # that followed it (comments, the closing bracket's indent) now follow the new member.
            comma = cast(cst.Comma, last.comma)  # _split_lines found a Comma
            layout = _member_layout(sub) or after
            kept = after.with_changes(empty_lines=[], indent=layout.indent, last_line=layout.last_line)
            moved = after.with_changes(first_line=cst.TrailingWhitespace())
            new_comma: cst.Comma | cst.MaybeSentinel = comma.with_changes(whitespace_after=moved)
            elements[-1] = last.with_changes(comma=comma.with_changes(whitespace_after=kept))
        else:
            new_comma = last.comma
            elements[-1] = last.with_changes(comma=_fresh_comma(sub))
        new = cst.SubscriptElement(slice=cst.Index(value=cst.Name(name)), comma=new_comma)
        return sub.with_changes(slice=[*elements, new])

    return _edit_union(source, edit)


def remove_union_member(source: str, name: str) -> str:
    """The exact inverse of add_union_member: the new last member takes back what followed the removed one."""

    def edit(sub: cst.Subscript) -> cst.Subscript:
        elements = list(sub.slice)
        hit = [i for i, e in enumerate(elements) if m.matches(e.slice, m.Index(value=m.Name(name)))]
        if not hit or len(elements) == 1:
            return sub
        i = hit[0]
        removed = elements.pop(i)
        if i == len(elements):
            prev = elements[-1]
            mine, theirs = _split_lines(prev.comma), _split_lines(removed.comma)
            if mine is not None and theirs is not None:
                merged = mine.with_changes(
                    empty_lines=[*mine.empty_lines, *theirs.empty_lines],
                    indent=theirs.indent,
                    last_line=theirs.last_line,
                )
                comma = cast(cst.Comma, prev.comma)  # _split_lines found a Comma
                elements[-1] = prev.with_changes(comma=comma.with_changes(whitespace_after=merged))
            else:
                elements[-1] = prev.with_changes(comma=removed.comma)
        return sub.with_changes(slice=elements)

    return _edit_union(source, edit)


# -- branch in DestinationFactory.get_destination() ------------------------------------------------


def _branch_member(node: cst.CSTNode) -> str | None:
    hit = m.extract(
        node,
        m.If(
            test=m.Comparison(
                left=m.Attribute(attr=m.Name("name")),
                comparisons=[
                    m.ComparisonTarget(
                        operator=m.Equal(),
                        comparator=m.Attribute(value=m.Name("DestinationTypes"), attr=m.SaveMatchedNode(m.Name(), "a")),
                    )
                ],
            )
        ),
    )
    return cast(cst.Name, hit["a"]).value if hit else None


def _branch(module: cst.Module, member: str, dest_module: str, cls: str) -> cst.If:
    code = (
        "if x:\n    pass\n\n"
        f"elif config.name == DestinationTypes.{member}:\n"
        f"    from {dest_module} import (\n        {cls},\n    )\n\n"
        f"    return {cls}(\n"
        "        sync_metadata=sync_metadata,\n        config=config.config,\n        backend=backend,\n"
        "        source_callback=source_callback,\n        monitor=monitor,\n    )\n"
    )
    return cast(cst.If, cast(cst.If, cst.parse_statement(code, config=module.config_for_parsing)).orelse)


def _edit_chain(source: str, edit) -> str:
    module = cst.parse_module(source)

    def edit_method(fn: cst.FunctionDef) -> cst.FunctionDef | None:
        body = list(fn.body.body)
        for i, stmt in enumerate(body):
            if isinstance(stmt, cst.If) and _branch_member(stmt):
                body[i] = edit(module, stmt)
                return fn.with_changes(body=fn.body.with_changes(body=body))
        return None

    def edit_class(body):
        for i, stmt in enumerate(body):
            if isinstance(stmt, cst.FunctionDef) and stmt.name.value == "get_destination":
                new = edit_method(stmt)
                return None if new is None else [*body[:i], new, *body[i + 1 :]]
        return None

    out = _edit_class_body(module, "DestinationFactory", edit_class)
    if out is None:
        raise EditPointMissing(
            "the `if config.name == DestinationTypes.X` chain of DestinationFactory.get_destination() was not found"
        )
    return out.code


def add_factory_branch(source: str, member: str, dest_module: str, cls: str) -> str:
    """Append an elif at the end of the chain (before an `else:` if any), so it precedes the raise."""

    chain_depth = [0]

    def edit(module, node: cst.If) -> cst.If:
        if isinstance(node.orelse, cst.If):
            chain_depth[0] += 1
            return node.with_changes(orelse=edit(module, node.orelse))
        branch = _branch(module, member, dest_module, cls)
        # The blank lines above the new elif copy those above the last elif, without its comments.
        spacing = (
            [line for line in node.leading_lines if line.comment is None]
            if chain_depth[0]
            else [cst.EmptyLine(indent=False)]
        )
        return node.with_changes(orelse=branch.with_changes(orelse=node.orelse, leading_lines=spacing))

    return _edit_chain(source, edit)


def remove_factory_branch(source: str, member: str) -> str:
    def edit(module, node: cst.If) -> cst.If:
        nxt = node.orelse
        if isinstance(nxt, cst.If):
            if _branch_member(nxt) == member:
                return node.with_changes(orelse=nxt.orelse)
            return node.with_changes(orelse=edit(module, nxt))
        return node

    return _edit_chain(source, edit)


# -- pyproject.toml: the extra a destination's client libraries are recorded in ---------------------------------------


def set_extra(text: str, name: str, requirements: list[str]) -> str:
    """pyproject text with [project.optional-dependencies] `name` holding exactly `requirements` on one line (added
    after the table's last entry, or put in place of the one there, however it was written); with no requirements,
    the extra taken away. tomlkit keeps every other byte as written, so adding and then taking away gives back the
    same bytes, line endings included. Raises ValueError for a text that is not TOML or has no [project] table."""
    import tomlkit  # only registration edits the file: off the server's start-up path
    from tomlkit.items import Table

    crlf = "\r\n" in text
    doc = tomlkit.parse(text)
    project = doc.get("project")
    if not isinstance(project, Table):
        raise ValueError("it has no [project] table")
    extras = project.get("optional-dependencies")
    if extras is None:
        if not requirements:
            return text
        extras = tomlkit.table()
        project.append("optional-dependencies", extras)
    if not isinstance(extras, dict):
        raise ValueError("its project.optional-dependencies is not a table")
    if not requirements:
        extras.pop(name, None)
    else:
        line = tomlkit.array()
        line.extend(requirements)
        extras[name] = line
    new = tomlkit.dumps(doc)
    # tomlkit writes the lines it adds with "\n": a CRLF file keeps its own endings
    return new.replace("\r\n", "\n").replace("\n", "\r\n") if crlf else new
