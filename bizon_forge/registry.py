"""What the three registration files say today, read with `ast` (cheap: no libcst on read-only paths)."""

import ast
from dataclasses import dataclass, field
from typing import cast

from bizon_forge import pyast
from bizon_forge.connector import Connector
from bizon_forge.workspace import ENUM_FILE, FACTORY_FILE, MODELS_FILE, REGISTRATION_FILES, Workspace, read_regular


@dataclass
class Registry:
    enum: dict[str, str] = field(default_factory=dict)  # member -> value
    enum_lines: dict[str, int] = field(default_factory=dict)
    imports: dict[str, str] = field(default_factory=dict)  # class imported in models.py -> module
    import_lines: dict[str, int] = field(default_factory=dict)
    union: list[str] = field(default_factory=list)  # members of BizonConfig.destination
    factory: dict[str, str] = field(default_factory=dict)  # enum member -> module imported in its branch
    edit_points: dict[str, int] = field(default_factory=dict)  # enum | union | factory -> line found by structure
    errors: list[str] = field(default_factory=list)

    def member_for_value(self, value: str) -> str | None:
        return next((m for m, v in self.enum.items() if v == value), None)

    def registered(self, name: str) -> dict[str, bool]:
        """Which of its three registrations a destination has, the one answer every tool and check gives: a
        DestinationTypes member whose value is the name; a class imported from its config module that
        BizonConfig.destination's Union lists; a branch of get_destination() importing its destination module
        (only that chain is read, as the codemods edit only it)."""
        c = Connector(name)
        return {
            "enum": self.member_for_value(name) is not None,
            "union": any(module == c.config_module and cls in self.union for cls, module in self.imports.items()),
            "factory": c.code_module in self.factory.values(),
        }


def _parse(rel: str, text: str, errors: list[str]) -> ast.Module | None:
    try:
        return pyast.parse(text)
    except (SyntaxError, ValueError) as error:
        errors.append(f"{rel}: {error}")
        return None


def _enum(tree: ast.Module, reg: Registry) -> None:
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == "DestinationTypes":
            reg.edit_points["enum"] = node.lineno
            for stmt in node.body:
                if (
                    isinstance(stmt, ast.Assign)
                    and len(stmt.targets) == 1
                    and isinstance(stmt.targets[0], ast.Name)
                    and isinstance(stmt.value, ast.Constant)
                ):
                    reg.enum[stmt.targets[0].id] = cast(str, stmt.value.value)  # DestinationTypes is a str Enum
                    reg.enum_lines[stmt.targets[0].id] = stmt.lineno


def union_node(tree: ast.Module) -> ast.AST | None:
    """The subscript slice of `destination: Union[...]` in `class BizonConfig`."""
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == "BizonConfig":
            for stmt in node.body:
                if (
                    isinstance(stmt, ast.AnnAssign)
                    and isinstance(stmt.target, ast.Name)
                    and stmt.target.id == "destination"
                    and isinstance(stmt.annotation, ast.Subscript)
                ):
                    return stmt.annotation.slice
    return None


def _line_of(tree: ast.Module, slice_: ast.AST) -> int | None:
    """The line of the `destination: Union[...]` statement that holds `slice_`."""
    for node in ast.walk(tree):
        if isinstance(node, ast.AnnAssign) and getattr(node.annotation, "slice", None) is slice_:
            return node.lineno
    return None


def _models(tree: ast.Module, reg: Registry) -> None:
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                reg.imports[alias.asname or alias.name] = node.module
                reg.import_lines[alias.asname or alias.name] = node.lineno
    slice_ = union_node(tree)
    if slice_ is not None:
        if (line := _line_of(tree, slice_)) is not None:  # always: union_node found slice_ in such a statement
            reg.edit_points["union"] = line
        elts = slice_.elts if isinstance(slice_, ast.Tuple) else [slice_]
        reg.union = [e.id for e in elts if isinstance(e, ast.Name)]


def _branch_member(node: ast.AST) -> str | None:
    """X of `if config.name == DestinationTypes.X:`, or None."""
    test = node.test if isinstance(node, ast.If) else None
    if (
        isinstance(test, ast.Compare)
        and isinstance(test.left, ast.Attribute)
        and test.left.attr == "name"
        and len(test.comparators) == 1
        and isinstance(test.comparators[0], ast.Attribute)
        and isinstance(test.comparators[0].value, ast.Name)
        and test.comparators[0].value.id == "DestinationTypes"
    ):
        return test.comparators[0].attr
    return None


def _factory(tree: ast.Module, reg: Registry) -> None:
    """The branches of the `if/elif` chain in DestinationFactory.get_destination(): exactly what the codemods edit
    (an `if config.name == DestinationTypes.X` anywhere else in the file is not a registration)."""
    for node in tree.body:
        if not (isinstance(node, ast.ClassDef) and node.name == "DestinationFactory"):
            continue
        reg.edit_points["factory"] = node.lineno
        method = next((s for s in node.body if isinstance(s, ast.FunctionDef) and s.name == "get_destination"), None)
        chain = next((s for s in method.body if isinstance(s, ast.If) and _branch_member(s)), None) if method else None
        while chain is not None and (member := _branch_member(chain)):
            module = next((s.module for s in chain.body if isinstance(s, ast.ImportFrom) and s.module), "")
            reg.factory[member] = module
            chain = chain.orelse[0] if len(chain.orelse) == 1 and isinstance(chain.orelse[0], ast.If) else None


def from_texts(texts: dict[str, str]) -> Registry:
    """The registry of the three files' texts (workspace-relative path -> source)."""
    reg = Registry()
    for rel, reader in ((ENUM_FILE, _enum), (MODELS_FILE, _models), (FACTORY_FILE, _factory)):
        tree = _parse(rel, texts[rel], reg.errors)
        if tree is not None:
            reader(tree, reg)
    return reg


def read_texts(ws: Workspace) -> dict[str, str]:
    """The three files' texts with their line endings as they are (read_text would turn CRLF into LF)."""
    return {rel: read_regular(ws.path(rel)).decode("utf-8") for rel in REGISTRATION_FILES}


def read(ws: Workspace) -> Registry:
    try:
        texts = read_texts(ws)
    except (OSError, ValueError) as error:
        return Registry(errors=[str(error)])
    return from_texts(texts)
