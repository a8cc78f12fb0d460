"""The destination's files as the static checks see them: read and parsed once, with the classes they name."""

import ast
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TypeGuard, cast

from bizon_forge import pyast, registry
from bizon_forge.connector import Connector, is_connector_module
from bizon_forge.spec.destination import pascal_case
from bizon_forge.workspace import REGISTRATION_FILES, Workspace, read_regular

TEXT_SUFFIXES = (".py", ".yml", ".yaml", ".json", ".md", ".txt", ".toml", ".cfg")
LOG_METHODS = {
    "debug",
    "info",
    "warning",
    "warn",
    "error",
    "exception",
    "critical",
    "success",
    "trace",
    "log",
}
LOGGERS = {"logger", "logging", "log", "LOGGER", "_logger", "LOG"}


def short(rel: str) -> str:
    """A file named in a message: its last parts (the finding's `file` has the full path)."""
    return "/".join(rel.split("/")[-2:])


@dataclass
class SourceFile:
    rel: str
    text: str
    tree: ast.Module | None = None
    error: SyntaxError | None = None

    @property
    def is_python(self) -> bool:
        return self.rel.endswith(".py")


def read_source(root: Path, rel: str) -> SourceFile:
    path = root / rel
    # As read_text() gave it: undecodable bytes replaced, newlines translated.
    text = read_regular(path).decode("utf-8", errors="replace").replace("\r\n", "\n").replace("\r", "\n")
    f = SourceFile(rel=rel, text=text)
    if f.is_python:
        try:
            f.tree = pyast.parse(text, filename=rel)
        except (SyntaxError, ValueError) as error:
            f.error = error if isinstance(error, SyntaxError) else SyntaxError(str(error))
    return f


def owned_files(root: Path, folder: Path) -> list[str]:
    """The text files under `folder`; a symlink that leads out of the workspace is not read.

    A FIFO or other special file is listed too, so that reading it refuses instead of it looking missing.
    """
    if not folder.is_dir():
        return []
    return sorted(
        str(p.relative_to(root))
        for p in folder.rglob("*")
        if p.exists()
        and not p.is_dir()
        and "__pycache__" not in p.parts
        and p.suffix in TEXT_SUFFIXES
        and root in Path(os.path.realpath(p)).parents
    )


def base_names(cls: ast.ClassDef) -> list[str]:
    return [b.id if isinstance(b, ast.Name) else b.attr for b in cls.bases if isinstance(b, (ast.Name, ast.Attribute))]


def top_classes(tree: ast.Module | None) -> dict[str, ast.ClassDef]:
    return {n.name: n for n in (tree.body if tree else []) if isinstance(n, ast.ClassDef)}


def imported_names(tree: ast.Module | None) -> dict[str, str]:
    """Name bound at module level by `from X import Y` -> X."""
    out = {}
    for node in tree.body if tree else []:
        if isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                out[alias.asname or alias.name] = node.module
    return out


def extends(cls: ast.ClassDef, base: str, local: dict[str, ast.ClassDef], seen=None) -> bool:
    """True if `cls` derives from `base`, following classes defined in the same file."""
    seen = seen or set()
    for name in base_names(cls):
        if name == base:
            return True
        if name in local and name not in seen:
            seen.add(name)
            if extends(local[name], base, local, seen):
                return True
    return False


def all_bases(cls: ast.ClassDef, local: dict) -> list[str]:
    """Every base name of `cls`, following classes defined in the same file."""
    out, todo = [], [cls]
    while todo:
        for name in base_names(todo.pop()):
            if name not in out:
                out.append(name)
                if name in local:
                    todo.append(local[name])
    return out


def method(cls: ast.ClassDef, name: str, local: dict[str, ast.ClassDef]):
    """The method `name` of `cls` or of a base class defined in the same file (first found, MRO-ish)."""
    for stmt in cls.body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)) and stmt.name == name:
            return stmt
    for base in base_names(cls):
        if base in local and local[base] is not cls:
            found = method(local[base], name, local)
            if found is not None:
                return found
    return None


def body_without_docstring(fn) -> list[ast.stmt]:
    body = list(fn.body)
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        if isinstance(body[0].value.value, str):
            body = body[1:]
    return body


def is_stub(fn) -> bool:
    """A body that is only `pass` or `...` (after the docstring)."""
    body = body_without_docstring(fn)
    return (
        bool(body)
        and all(
            isinstance(s, ast.Pass)
            or (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant) and s.value.value is ...)
            for s in body
        )
        or not body
    )


def is_log_call(node: ast.AST) -> TypeGuard[ast.Call]:
    """A print() or a call of a logger's method."""
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    if isinstance(func, ast.Name) and func.id == "print":
        return True
    if isinstance(func, ast.Attribute) and func.attr in LOG_METHODS:
        owner = func.value
        if isinstance(owner, ast.Name) and owner.id in LOGGERS:
            return True
        if isinstance(owner, ast.Attribute) and owner.attr in LOGGERS:
            return True
    return False


def literal_member(cls: ast.ClassDef | None) -> tuple[str | None, str | None, int | None]:
    """(kind, value, line) of `name: Literal[...]`; kind is 'member' (DestinationTypes.X), 'string', None."""
    for stmt in cls.body if cls else []:
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.target.id == "name":
            ann = stmt.annotation
            if isinstance(ann, ast.Subscript):
                inner = ann.slice
                if isinstance(inner, ast.Attribute):
                    return "member", inner.attr, stmt.lineno
                if isinstance(inner, ast.Constant) and isinstance(inner.value, str):
                    return "string", inner.value, stmt.lineno
            return None, ast.unparse(ann), stmt.lineno
    return None, None, None


@dataclass
class DestinationCode:
    ws: Workspace
    name: str
    files: dict[str, SourceFile] = field(default_factory=dict)  # the destination's own files, by rel path
    registration: dict[str, SourceFile] = field(default_factory=dict)
    pyproject: bytes | None = None  # the workspace's, read with the rest: its dependencies config.py may import

    @classmethod
    def load(cls, ws: Workspace, name: str) -> "DestinationCode":
        code = cls(ws=ws, name=name)
        for rel in owned_files(ws.root, ws.destination_dir(name)) + owned_files(ws.root, ws.root / code.tests_dir):
            code.files[rel] = read_source(ws.root, rel)
        for rel in REGISTRATION_FILES:
            code.registration[rel] = read_source(ws.root, rel)
        try:
            code.pyproject = read_regular(ws.root / "pyproject.toml")
        except OSError:
            pass  # none: only bizon, pydantic and the standard library count as installed
        return code

    # -- paths (bizon_forge.connector knows the layout) ----------------------------------------------
    @property
    def connector(self) -> Connector:
        return Connector(self.name)

    @property
    def base(self) -> str:
        return self.connector.dir

    @property
    def config_rel(self) -> str:
        return self.connector.config_rel

    @property
    def destination_rel(self) -> str:
        return self.connector.code_rel

    @property
    def init_rel(self) -> str:
        return self.connector.init_rel

    @property
    def example_rel(self) -> str:
        return self.connector.example_rel

    @property
    def check_rel(self) -> str:
        """The check config: where every live check writes (see validators/scratch.py)."""
        return self.connector.check_rel

    @property
    def tests_dir(self) -> str:
        return self.connector.tests_dir

    @property
    def config_module(self) -> str:
        return self.connector.config_module

    @property
    def destination_module(self) -> str:
        return self.connector.code_module

    @property
    def pascal(self) -> str:
        return pascal_case(self.name)

    def src_files(self) -> list[SourceFile]:
        return [f for rel, f in self.files.items() if rel.startswith(f"{self.base}/")]

    def python_files(self) -> list[SourceFile]:
        return [f for f in self.files.values() if f.is_python]

    def tree(self, rel: str) -> ast.Module | None:
        f = self.files.get(rel) or self.registration.get(rel)
        return f.tree if f else None

    # -- what the files declare -----------------------------------------------------------------------
    @cached_property
    def reg(self) -> registry.Registry:
        return registry.read(self.ws)

    @cached_property
    def member(self) -> str | None:
        """The DestinationTypes member whose value is this destination's name."""
        return self.reg.member_for_value(self.name)

    @cached_property
    def config_classes(self) -> dict[str, ast.ClassDef]:
        return top_classes(self.tree(self.config_rel))

    @cached_property
    def main_config(self) -> ast.ClassDef | None:
        """The class models.py registers from this config, else the one a Literal name tags, else by name."""
        local = self.config_classes
        imported = self.reg.imports.items()
        registered = [c for c, m in imported if m == self.config_module and c in local and c in self.reg.union]
        if registered:
            return local[registered[0]]
        for cls in local.values():
            if literal_member(cls)[0] is not None:
                return cls
        return local.get(f"{self.pascal}Config")

    @cached_property
    def details_config_name(self) -> str | None:
        for stmt in self.main_config.body if self.main_config else []:
            if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.target.id == "config":
                ann = stmt.annotation
                return ann.id if isinstance(ann, ast.Name) else ast.unparse(ann)
        return None

    @cached_property
    def factory_names(self) -> list[str]:
        """Classes the factory's branch for this destination imports."""
        tree = self.tree("bizon/destination/destination.py")
        for node in ast.walk(tree) if tree else []:
            if isinstance(node, ast.If):
                for stmt in node.body:
                    if isinstance(stmt, ast.ImportFrom) and stmt.module == self.destination_module:
                        return [a.asname or a.name for a in stmt.names]
        return []

    @cached_property
    def destination_classes(self) -> dict[str, ast.ClassDef]:
        return top_classes(self.tree(self.destination_rel))

    @cached_property
    def destination_class(self) -> ast.ClassDef | None:
        local = self.destination_classes
        for name in [*self.factory_names, f"{self.pascal}Destination"]:
            if name in local:
                return local[name]
        candidates = [c for c in local.values() if extends(c, "AbstractDestination", local)]
        candidates = candidates or [c for c in local.values() if "Destination" in c.name]
        return candidates[0] if candidates else None

    def destination_method(self, name: str):
        cls = self.destination_class
        return method(cls, name, self.destination_classes) if cls else None


def inherits_bizon_destination(code: DestinationCode) -> bool:
    """The destination class extends one of bizon's own destinations, so it inherits their methods."""
    imports = imported_names(code.tree(code.destination_rel))
    cls = cast(ast.ClassDef, code.destination_class)  # callers ran needs_destination
    return any(is_connector_module(imports.get(b, "")) for b in all_bases(cls, code.destination_classes))


def load_config(code: DestinationCode, rel: str):
    """A config file of the tree, parsed (None when it does not exist); a YAML error raises."""
    import yaml

    path = code.ws.root / rel
    if not path.is_file():
        return None
    return yaml.safe_load(read_regular(path).decode("utf-8", errors="replace"))


def destination_config(code: DestinationCode, rel: str) -> dict | None:
    """The `destination.config` mapping of a config file, or None when it has none or does not parse (the
    checks that own those failures report them)."""
    try:
        config = load_config(code, rel)
    except Exception:  # a YAML error is live.check_config's or import.config_validate's finding
        return None
    details = ((config or {}).get("destination") or {}).get("config") if isinstance(config, dict) else None
    return details if isinstance(details, dict) else None
