"""The checks that read the destination's code with `ast`: the guide's checklist, the traps, what is left.

Each function takes the parsed DestinationCode and answers exactly one finding, with the id it is named for.
A check whose input is missing because another check failed answers `skip`, so one mistake is one failure.
"""

import ast
import io
import re
import sys
import tokenize
import tomllib

from bizon_forge.render import TODO
from bizon_forge.validators.code import (
    DestinationCode,
    base_names,
    body_without_docstring,
    extends,
    imported_names,
    is_stub,
    literal_member,
)
from bizon_forge.validators.report import CheckFinding, failed, passed, skipped, warned

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
# Packages config.py may import whatever the install: bizon itself, its pydantic, and the standard library.
ALWAYS_IMPORTABLE = {"bizon", "pydantic", "pydantic_core", "typing_extensions", "annotated_types"}
DIST_TO_MODULE = {"python-dotenv": "dotenv", "pyyaml": "yaml", "protobuf": "google.protobuf"}
# bizon modules that import bizon.common.models themselves: importing them from config.py closes the cycle.
MODELS_IMPORTERS = (
    "bizon.common.models",
    "bizon.destination.destination",
    "bizon.engine",
    "bizon.monitoring.monitor",
)
SECRET_PARTS = {"password", "passwd", "pwd", "secret", "token", "credential", "credentials", "apikey"}
SECRET_SUFFIXES = ("api_key", "private_key", "access_key", "secret_key", "auth_key")
# Names of a staging target: "staging", "stage", "temp_table", "..._temp.json"; not a mere `tempfile`.
STAGING = re.compile(r"(^|[^a-z])stag(e|ed|es|ing)($|[^a-z])|(temp|tmp)_?tables?|_(temp|tmp)($|[^a-z])")
PLACEHOLDER = re.compile(r"\{\{.{0,80}?\}\}|\{%.{0,80}?%\}")


def _short(rel: str) -> str:
    """A file named in a message: its last parts (the finding's `file` has the full path)."""
    return "/".join(rel.split("/")[-2:])


def _line_of(text: str, index: int) -> int:
    return text.count("\n", 0, index) + 1


# -- source ----------------------------------------------------------------------------------------


def source_syntax(code: DestinationCode) -> CheckFinding:
    broken = [f for f in [*code.python_files(), *code.registration.values()] if f.error is not None]
    if not broken:
        return passed("source.syntax")
    first = broken[0]
    more = f" ({len(broken) - 1} more file(s) too)" if len(broken) > 1 else ""
    return failed(
        "source.syntax",
        f"{_short(first.rel)} does not parse: {first.error.msg}{more}.",
        file=first.rel,
        line=first.error.lineno,
    )


def config_unreadable(code: DestinationCode, id: str) -> CheckFinding:
    owner = "source.syntax" if code.config_rel in code.files else "checklist.config_base"
    return skipped(id, f"{code.config_rel} is missing or does not parse (see {owner}).", owner)


def _needs(code: DestinationCode, rel: str, id: str) -> CheckFinding | None:
    """A skip when `rel` is missing or does not parse (source.syntax or the file's own check reports that)."""
    f = code.files.get(rel)
    if f is None:
        owner = "checklist.config_base" if rel == code.config_rel else "checklist.destination_base"
        return skipped(id, f"{rel} does not exist (see {owner}).", owner)
    if f.tree is None:
        return skipped(id, f"{rel} does not parse (see source.syntax).", "source.syntax")
    return None


# -- the guide's checklist: config ----------------------------------------------------------------


def init_file(code: DestinationCode) -> CheckFinding:
    if (code.ws.root / code.init_rel).is_file():
        return passed("checklist.init_file")
    return failed("checklist.init_file", f"{_short(code.init_rel)} is missing.", file=code.init_rel)


def config_base(code: DestinationCode) -> CheckFinding:
    if skip := _needs(code, code.config_rel, "checklist.config_base"):
        if not (code.ws.root / code.config_rel).exists():
            return failed(
                "checklist.config_base",
                f"{code.config_rel} does not exist.",
                file=code.config_rel,
                hint="Call render_destination, or write config.py as in the guide's Step 2.",
            )
        return skip
    cls = code.main_config
    if cls is None:
        return failed(
            "checklist.config_base",
            f"config.py has no main config class (one with `name: Literal[DestinationTypes.X]`, e.g. "
            f"{code.pascal}Config).",
            file=code.config_rel,
        )
    if not extends(cls, "AbstractDestinationConfig", code.config_classes):
        return failed(
            "checklist.config_base",
            f"{cls.name} does not extend AbstractDestinationConfig.",
            file=code.config_rel,
            line=cls.lineno,
        )
    return passed("checklist.config_base")


def details_base(code: DestinationCode) -> CheckFinding:
    if skip := _needs(code, code.config_rel, "checklist.details_base"):
        return skip
    if code.main_config is None:
        return skipped(
            "checklist.details_base",
            "No main config class (see checklist.config_base).",
            "checklist.config_base",
        )
    name = code.details_config_name
    if name is None:
        return failed(
            "checklist.details_base",
            f"{code.main_config.name} has no `config:` field naming its details class.",
            file=code.config_rel,
            line=code.main_config.lineno,
            hint=f"Add `config: {code.pascal}DestinationConfig` to {code.main_config.name}.",
        )
    cls = code.config_classes.get(name)
    if cls is None:
        imported = imported_names(code.tree(code.config_rel)).get(name)
        if imported:
            return passed("checklist.details_base", f"{name} is imported from {imported}.")
        return failed(
            "checklist.details_base",
            f"The details class {name} is neither defined nor imported in config.py.",
            file=code.config_rel,
        )
    if not extends(cls, "AbstractDestinationDetailsConfig", code.config_classes):
        return failed(
            "checklist.details_base",
            f"{name} does not extend AbstractDestinationDetailsConfig.",
            file=code.config_rel,
            line=cls.lineno,
        )
    return passed("checklist.details_base")


def literal_name(code: DestinationCode) -> CheckFinding:
    """The Literal names a member the enum has; naming *another destination's* member is the trap below."""
    if skip := _needs(code, code.config_rel, "checklist.literal_name"):
        return skip
    kind, value, line = literal_member(code.main_config)
    expected = code.member or code.name.upper()
    hint = f"Write `name: Literal[DestinationTypes.{expected}]`."
    if kind is None:
        where = f"{code.main_config.name} has" if code.main_config else "config.py has"
        what = f"`name: {value}`" if value else "no `name: Literal[DestinationTypes.X]` field"
        if code.main_config is None:
            return skipped(
                "checklist.literal_name",
                "No main config class (see checklist.config_base).",
                "checklist.config_base",
            )
        return failed("checklist.literal_name", f"{where} {what}.", file=code.config_rel, line=line, hint=hint)
    if kind == "string":
        return failed(
            "checklist.literal_name",
            f"`name: Literal[{value!r}]` uses a string; the guide's configs name the enum member.",
            file=code.config_rel,
            line=line,
            hint=hint,
        )
    if value not in code.reg.enum and value == expected and code.member is None:
        return skipped(
            "checklist.literal_name",
            f"DestinationTypes.{value} is not registered (see registration.enum).",
            "registration.enum",
        )
    if value not in code.reg.enum:
        return failed(
            "checklist.literal_name",
            f"DestinationTypes has no member {value}: importing bizon.common.models raises AttributeError.",
            file=code.config_rel,
            line=line,
            hint=hint if code.member else f"Add {expected} = {code.name!r} to DestinationTypes, or fix the Literal.",
        )
    return passed("checklist.literal_name")


def _field_has_description(value: ast.expr | None) -> tuple[bool, bool]:
    """(required, described) for a field's default expression."""
    if value is None:
        return True, False
    if isinstance(value, ast.Call) and getattr(value.func, "id", getattr(value.func, "attr", "")) == "Field":
        kwargs = {k.arg: k.value for k in value.keywords if k.arg}
        default = value.args[0] if value.args else kwargs.get("default")
        required = ("default_factory" not in kwargs) and (
            default is None or (isinstance(default, ast.Constant) and default.value is ...)
        )
        desc = kwargs.get("description")
        described = isinstance(desc, ast.Constant) and isinstance(desc.value, str) and bool(desc.value.strip())
        if desc is not None and not isinstance(desc, ast.Constant):
            described = True  # a computed description: trust it
        return required, described
    return isinstance(value, ast.Constant) and value.value is ..., False


def field_descriptions(code: DestinationCode) -> CheckFinding:
    if skip := _needs(code, code.config_rel, "checklist.field_descriptions"):
        return skip
    cls = code.config_classes.get(code.details_config_name or "")
    if cls is None:
        return passed("checklist.field_descriptions", "No details class defined in config.py to check.")
    missing = []
    for stmt in cls.body:
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
            if stmt.target.id.startswith("_") or "ClassVar" in ast.unparse(stmt.annotation):
                continue
            required, described = _field_has_description(stmt.value)
            if required and not described:
                missing.append((stmt.target.id, stmt.lineno))
    if not missing:
        return passed("checklist.field_descriptions")
    names = ", ".join(n for n, _ in missing)
    return failed(
        "checklist.field_descriptions",
        f"Required field(s) without a description in {cls.name}: {names}.",
        file=code.config_rel,
        line=missing[0][1],
        hint=f'Declare each as `{missing[0][0]}: str = Field(..., description="What it is")`.',
    )


# -- the guide's checklist: implementation ---------------------------------------------------------


def _needs_destination(code: DestinationCode, id: str) -> CheckFinding | None:
    if (skip := _needs(code, code.destination_rel, id)) is not None:
        if not (code.ws.root / code.destination_rel).exists():
            return skipped(
                id,
                f"{code.destination_rel} does not exist (see checklist.destination_base).",
                "checklist.destination_base",
            )
        return skip
    if code.destination_class is None:
        return skipped(id, "No destination class found (see checklist.destination_base).", "checklist.destination_base")
    return None


def destination_base(code: DestinationCode) -> CheckFinding:
    rel = code.destination_rel
    if not (code.ws.root / rel).exists():
        return failed(
            "checklist.destination_base",
            f"{rel} does not exist.",
            file=rel,
            hint="Call render_destination, or write destination.py as in the guide's Step 3.",
        )
    if skip := _needs(code, rel, "checklist.destination_base"):
        return skip
    cls = code.destination_class
    if cls is None:
        return failed(
            "checklist.destination_base",
            f"destination.py defines no destination class (expected {code.pascal}Destination).",
            file=rel,
        )
    local = code.destination_classes
    imports = imported_names(code.tree(rel))
    if extends(cls, "AbstractDestination", local):
        return passed("checklist.destination_base")
    # A subclass of one of bizon's own destinations extends AbstractDestination through it.
    bases = [b for b in _all_bases(cls, local) if imports.get(b, "").startswith("bizon.connectors.destinations.")]
    if bases:
        return passed("checklist.destination_base", f"{cls.name} extends bizon's {bases[0]}.")
    return failed(
        "checklist.destination_base",
        f"{cls.name} does not extend AbstractDestination.",
        file=rel,
        line=cls.lineno,
    )


def _all_bases(cls: ast.ClassDef, local: dict) -> list[str]:
    out, todo = [], [cls]
    while todo:
        for name in base_names(todo.pop()):
            if name not in out:
                out.append(name)
                if name in local:
                    todo.append(local[name])
    return out


def _own_returns(fn) -> list[ast.Return]:
    """Return statements of `fn` itself, not of functions or classes nested in it."""
    out, todo = [], list(fn.body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        if isinstance(node, ast.Return):
            out.append(node)
        todo.extend(ast.iter_child_nodes(node))
    return sorted(out, key=lambda r: r.lineno)


def _always_exits(stmts: list[ast.stmt]) -> bool:
    """Every path through `stmts` ends in return or raise (a conservative approximation)."""
    if not stmts:
        return False
    last = stmts[-1]
    if isinstance(last, (ast.Return, ast.Raise)):
        return True
    if isinstance(last, ast.If):
        return _always_exits(last.body) and _always_exits(last.orelse)
    if isinstance(last, (ast.With, ast.AsyncWith)):
        return _always_exits(last.body)
    if isinstance(last, (ast.Try, ast.TryStar)):
        if _always_exits(last.finalbody):
            return True
        main = _always_exits(last.orelse) if last.orelse else _always_exits(last.body)
        return main and all(_always_exits(h.body) for h in last.handlers)
    if isinstance(last, ast.While) and isinstance(last.test, ast.Constant) and last.test.value is True:
        return True
    if isinstance(last, ast.Match):
        wildcard = any(isinstance(c.pattern, ast.MatchAs) and c.pattern.pattern is None for c in last.cases)
        return wildcard and all(_always_exits(c.body) for c in last.cases)
    return False


def check_connection_bool(code: DestinationCode) -> CheckFinding:
    id = "checklist.check_connection_bool"
    if skip := _needs_destination(code, id):
        return skip
    fn = code.destination_method("check_connection")
    if fn is None:
        if _inherits_bizon_destination(code):
            return passed(id, "check_connection is inherited from a bizon destination.")
        return failed(
            id,
            f"{code.destination_class.name} does not define check_connection(); the class cannot be instantiated.",
            file=code.destination_rel,
            line=code.destination_class.lineno,
        )
    if is_stub(fn):
        return skipped(id, "check_connection is a stub (see agent.pass_body).", "agent.pass_body")
    if fn.returns is not None and ast.unparse(fn.returns) != "bool":
        return failed(
            id,
            f"check_connection is annotated `-> {ast.unparse(fn.returns)}`.",
            file=code.destination_rel,
            line=fn.lineno,
        )
    for ret in _own_returns(fn):
        v = ret.value
        if v is None or (isinstance(v, ast.Constant) and not isinstance(v.value, bool)) or isinstance(v, ast.Tuple):
            return failed(
                id,
                f"check_connection returns `{ast.unparse(v) if v else 'None'}`, not a bool.",
                file=code.destination_rel,
                line=ret.lineno,
            )
    if not _always_exits(body_without_docstring(fn)):
        return failed(
            id,
            "check_connection can reach its end and return None.",
            file=code.destination_rel,
            line=fn.lineno,
        )
    return passed(id)


def _inherits_bizon_destination(code: DestinationCode) -> bool:
    imports = imported_names(code.tree(code.destination_rel))
    return any(
        imports.get(b, "").startswith("bizon.connectors.destinations.")
        for b in _all_bases(code.destination_class, code.destination_classes)
    )


def _write_records(code: DestinationCode, id: str):
    """(function, None) or (None, finding) for checks that read write_records."""
    if skip := _needs_destination(code, id):
        return None, skip
    fn = code.destination_method("write_records")
    if fn is None:
        if _inherits_bizon_destination(code):
            return None, passed(id, "write_records is inherited from a bizon destination.")
        return None, skipped(
            id,
            "write_records is not defined (see trap.write_records_signature).",
            "trap.write_records_signature",
        )
    if is_stub(fn):
        return None, skipped(id, "write_records is a stub (see agent.pass_body).", "agent.pass_body")
    return fn, None


def _tuple_annotation_ok(ann: ast.expr) -> bool:
    if isinstance(ann, ast.Subscript):
        head = ann.value.id if isinstance(ann.value, ast.Name) else getattr(ann.value, "attr", "")
        if head in ("Tuple", "tuple"):
            first = ann.slice.elts[0] if isinstance(ann.slice, ast.Tuple) and ann.slice.elts else ann.slice
            return ast.unparse(first) == "bool"
    return False


def write_records_returns(code: DestinationCode) -> CheckFinding:
    id = "checklist.write_records_returns"
    fn, answer = _write_records(code, id)
    if answer:
        return answer
    rel = code.destination_rel
    if fn.returns is not None and not _tuple_annotation_ok(fn.returns):
        return failed(id, f"write_records is annotated `-> {ast.unparse(fn.returns)}`.", file=rel, line=fn.lineno)
    for ret in _own_returns(fn):
        v = ret.value
        if v is None or isinstance(v, (ast.Constant, ast.List, ast.Dict, ast.Set)):
            shown = ast.unparse(v) if v is not None else "None"
            return failed(
                id, f"write_records returns `{shown}`, not a (bool, message) pair.", file=rel, line=ret.lineno
            )
        if isinstance(v, ast.Tuple):
            first = v.elts[0] if v.elts else None
            if len(v.elts) != 2 or (isinstance(first, ast.Constant) and not isinstance(first.value, bool)):
                return failed(
                    id,
                    f"write_records returns `{ast.unparse(v)}`, not a (bool, message) pair.",
                    file=rel,
                    line=ret.lineno,
                )
    if not _always_exits(body_without_docstring(fn)):
        return failed(id, "write_records can reach its end and return None.", file=rel, line=fn.lineno)
    return passed(id)


def _is_log_call(node: ast.AST) -> bool:
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


def _returns_failure(handler: ast.ExceptHandler) -> ast.Return | None:
    for node in ast.walk(handler):
        if isinstance(node, ast.Return) and isinstance(node.value, ast.Tuple) and node.value.elts:
            first = node.value.elts[0]
            if isinstance(first, ast.Constant) and first.value is False:
                return node
    return None


def errors_logged(code: DestinationCode) -> CheckFinding:
    id = "checklist.errors_logged"
    fn, answer = _write_records(code, id)
    if answer:
        return answer
    for node in ast.walk(fn):
        if isinstance(node, (ast.Try, ast.TryStar)):
            for handler in node.handlers:
                ret = _returns_failure(handler)
                if ret is not None and not any(_is_log_call(n) for n in ast.walk(handler)):
                    return warned(
                        id,
                        "An except block of write_records returns (False, ...) without logging the error.",
                        file=code.destination_rel,
                        line=handler.lineno,
                    )
    return passed(id)


# -- traps ---------------------------------------------------------------------------------------------


def _broad(handler: ast.ExceptHandler) -> bool:
    t = handler.type
    names = t.elts if isinstance(t, ast.Tuple) else [t]
    return t is None or any(getattr(n, "id", getattr(n, "attr", None)) in ("Exception", "BaseException") for n in names)


def _escaping_raises(stmts: list[ast.stmt], protected: bool, out: list[ast.Raise]) -> None:
    for s in stmts:
        if isinstance(s, ast.Raise):
            if not protected:
                out.append(s)
        elif isinstance(s, (ast.Try, ast.TryStar)):
            _escaping_raises(s.body, protected or any(_broad(h) for h in s.handlers), out)
            for h in s.handlers:
                _escaping_raises(h.body, protected, out)
            _escaping_raises(s.orelse, protected, out)
            _escaping_raises(s.finalbody, protected, out)
        elif isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        else:
            for field in ("body", "orelse", "finalbody"):
                _escaping_raises(getattr(s, field, []) or [], protected, out)
            for case in getattr(s, "cases", []) or []:
                _escaping_raises(case.body, protected, out)


def write_records_raises(code: DestinationCode) -> CheckFinding:
    id = "trap.write_records_raises"
    fn, answer = _write_records(code, id)
    if answer:
        return answer
    out: list[ast.Raise] = []
    _escaping_raises(fn.body, False, out)
    if not out:
        return passed(id)
    return failed(
        id,
        f"`{ast.unparse(out[0])}` can escape write_records; return (False, message) instead.",
        file=code.destination_rel,
        line=out[0].lineno,
    )


def write_records_signature(code: DestinationCode) -> CheckFinding:
    id = "trap.write_records_signature"
    if skip := _needs_destination(code, id):
        return skip
    fn = code.destination_method("write_records")
    rel = code.destination_rel
    if fn is None:
        if _inherits_bizon_destination(code):
            return passed(id, "write_records is inherited from a bizon destination.")
        return failed(
            id,
            f"{code.destination_class.name} does not define write_records(); the class cannot be instantiated.",
            file=rel,
            line=code.destination_class.lineno,
        )
    if isinstance(fn, ast.AsyncFunctionDef):
        return failed(id, "write_records is `async`; bizon calls it synchronously.", file=rel, line=fn.lineno)
    decorators = {ast.unparse(d) for d in fn.decorator_list}
    if decorators & {"staticmethod", "classmethod"}:
        return failed(id, "write_records must be a plain method.", file=rel, line=fn.lineno)
    a = fn.args
    positional = [*a.posonlyargs, *a.args]
    if not positional or positional[0].arg != "self":
        return failed(id, "write_records does not take `self` first.", file=rel, line=fn.lineno)
    params = positional[1:]
    named = {p.arg for p in [*params, *a.kwonlyargs]}
    if "df_destination_records" not in named:
        got = ", ".join(p.arg for p in params) or "nothing"
        return failed(
            id,
            f"write_records takes {got}; bizon passes the keyword `df_destination_records=`.",
            file=rel,
            line=fn.lineno,
        )
    defaults_from = len(params) - len(a.defaults)
    required = [p.arg for i, p in enumerate(params) if i < defaults_from]
    required += [p.arg for p, d in zip(a.kwonlyargs, a.kw_defaults, strict=True) if d is None]
    extra = [r for r in required if r != "df_destination_records"]
    if extra:
        return failed(
            id,
            f"write_records requires {', '.join(extra)}, which bizon never passes.",
            file=rel,
            line=fn.lineno,
        )
    if "df_destination_records" not in {p.arg for p in a.kwonlyargs} and params[0].arg != "df_destination_records":
        return failed(id, "df_destination_records must be the first parameter after self.", file=rel, line=fn.lineno)
    return passed(id)


def _self_attrs(fn, ctx) -> dict[str, int]:
    """self.X names that `fn` stores (ctx=ast.Store) or reads (ast.Load), with the first line."""
    out: dict[str, int] = {}
    for node in ast.walk(fn):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.ctx, ctx)
            and isinstance(node.value, ast.Name)
            and node.value.id == "self"
        ):
            out.setdefault(node.attr, node.lineno)
    return out


def _self_calls(fn) -> dict[str, int]:
    out: dict[str, int] = {}
    for node in ast.walk(fn):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            if isinstance(owner, ast.Name) and owner.id == "self":
                out.setdefault(node.func.attr, node.lineno)
    return out


SETUP_VERBS = re.compile(r"^_*(connect|create|setup|set_up|init|open|ensure|prepare|make|mkdir|start|login|auth)")


def setup_in_check_connection(code: DestinationCode) -> CheckFinding:
    id = "trap.setup_in_check_connection"
    if skip := _needs_destination(code, id):
        return skip
    cls = code.destination_class
    methods = [s for s in cls.body if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef))]
    check = next((m for m in methods if m.name == "check_connection"), None)
    if check is None:
        return passed(id, "check_connection does nothing of its own.")
    others = [m for m in methods if m is not check]
    stored_elsewhere = set().union(*(_self_attrs(m, ast.Store) for m in others)) if others else set()
    read_elsewhere = set().union(*(_self_attrs(m, ast.Load) for m in others)) if others else set()
    called_elsewhere = set().union(*(_self_calls(m) for m in others)) if others else set()
    # Properties and methods read as self.X are not state that check_connection sets up.
    defined = {m.name for m in methods}
    for attr, line in _self_attrs(check, ast.Store).items():
        if attr not in stored_elsewhere and attr in read_elsewhere and attr not in defined:
            return failed(
                id,
                f"self.{attr} is only set in check_connection(), which bizon never calls on a destination; "
                "the methods that read it will fail.",
                file=code.destination_rel,
                line=line,
            )
    for name, line in _self_calls(check).items():
        if name in defined and name not in called_elsewhere and SETUP_VERBS.match(name):
            return failed(
                id,
                f"self.{name}() runs only in check_connection(), which bizon never calls on a destination.",
                file=code.destination_rel,
                line=line,
            )
    return passed(id)


def _trivial(fn) -> bool:
    for s in body_without_docstring(fn):
        if isinstance(s, ast.Pass) or (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant)):
            continue
        if isinstance(s, ast.Return) and (s.value is None or isinstance(s.value, ast.Constant)):
            continue
        if isinstance(s, ast.Expr) and _is_log_call(s.value):
            continue
        return False
    return True


def staging_without_finalize(code: DestinationCode) -> CheckFinding:
    id = "trap.staging_without_finalize"
    if skip := _needs_destination(code, id):
        return skip
    tree = code.tree(code.destination_rel)
    mention = None
    for node in ast.walk(tree):
        words = []
        if isinstance(node, ast.Name):
            words = [node.id]
        elif isinstance(node, ast.Attribute):
            words = [node.attr]
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            words = [node.name]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and len(node.value) < 80:
            words = [node.value]
        if any(STAGING.search(w.lower()) for w in words):
            mention = node
            break
    if mention is None:
        return passed(id, "No staging target used.")
    fn = code.destination_method("finalize")
    if fn is not None and not _trivial(fn):
        return passed(id)
    where = "does not override finalize()" if fn is None else "has a finalize() that does nothing"
    return failed(
        id,
        f"{code.destination_class.name} writes to a staging target (line {mention.lineno}) but {where}: "
        "the staged records never reach the target.",
        file=code.destination_rel,
        line=fn.lineno if fn is not None else code.destination_class.lineno,
    )


def _config_import_closure(code: DestinationCode) -> list[tuple[str, ast.AST]]:
    """(rel, import) of config.py's module-level imports, following relative imports into its own folder."""
    out, todo, seen = [], [code.config_rel], set()
    src = f"{code.base}/src"
    while todo:
        rel = todo.pop()
        if rel in seen or code.tree(rel) is None:
            continue
        seen.add(rel)
        nodes = []
        stack = list(code.tree(rel).body)
        while stack:  # everything that runs at import: not function bodies
            node = stack.pop()
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue
            if isinstance(node, ast.If) and ast.unparse(node.test) in (
                "TYPE_CHECKING",
                "typing.TYPE_CHECKING",
            ):
                stack.extend(node.orelse)  # the body only runs under a type checker
                continue
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                nodes.append(node)
            stack.extend(ast.iter_child_nodes(node))
        for node in sorted(nodes, key=lambda n: n.lineno):
            if isinstance(node, ast.ImportFrom) and node.level:
                if node.level == 1 and node.module:
                    todo.append(f"{src}/{node.module.replace('.', '/')}.py")
                continue
            out.append((rel, node))
    return out


def _modules(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    mod = node.module or ""
    return [f"{mod}.{a.name}" for a in node.names] + [mod]


def _required_modules(code: DestinationCode) -> set[str]:
    try:
        project = tomllib.loads((code.ws.root / "pyproject.toml").read_text()).get("project", {})
    except (OSError, tomllib.TOMLDecodeError):
        return set()
    out = set()
    for dep in project.get("dependencies", []):
        dist = re.split(r"[ <>=!~;\[]", dep.strip(), maxsplit=1)[0].lower()
        out.add(DIST_TO_MODULE.get(dist, dist.replace("-", "_")))
        if dist.startswith("google-cloud-"):
            out.add("google.cloud." + dist.removeprefix("google-cloud-").replace("-", "_"))
    return out


def optional_import_in_config(code: DestinationCode) -> CheckFinding:
    id = "trap.optional_import_in_config"
    if skip := _needs(code, code.config_rel, id):
        return skip
    allowed = ALWAYS_IMPORTABLE | set(sys.stdlib_module_names) | _required_modules(code)
    for rel, node in _config_import_closure(code):
        mod = _modules(node)[-1] if isinstance(node, ast.ImportFrom) else _modules(node)[0]
        top = mod.split(".")[0]
        if top in allowed or any(mod == a or mod.startswith(a + ".") for a in allowed):
            continue
        return failed(
            id,
            f"{_short(rel)} imports {mod}, which a bare bizon install lacks; bizon/common/models.py imports "
            "this file, so every bizon command would fail without it.",
            file=rel,
            line=node.lineno,
            hint=f"Import {mod} in destination.py (or inside the function that uses it), never in config.py.",
        )
    return passed(id)


def models_import_in_config(code: DestinationCode) -> CheckFinding:
    id = "trap.models_import_in_config"
    if skip := _needs(code, code.config_rel, id):
        return skip
    for rel, node in _config_import_closure(code):
        for mod in _modules(node):
            if any(mod == m or mod.startswith(m + ".") for m in MODELS_IMPORTERS):
                return failed(
                    id,
                    f"{_short(rel)} imports {mod}, which imports bizon.common.models, which imports this "
                    "config: a circular import.",
                    file=rel,
                    line=node.lineno,
                )
    return passed(id)


def _secret_fields(code: DestinationCode) -> dict[str, tuple[str, int]]:
    """Field name -> (annotation, line) of the details config's fields whose name says they are secret."""
    cls = code.config_classes.get(code.details_config_name or "")
    out = {}
    for stmt in cls.body if cls else []:
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
            name = stmt.target.id.lower()
            if set(name.split("_")) & SECRET_PARTS or name.endswith(SECRET_SUFFIXES) or name == "key":
                out[stmt.target.id] = (ast.unparse(stmt.annotation), stmt.lineno)
    return out


def _leaks(arg: ast.AST, secrets: set[str]) -> str | None:
    """What in a log call's argument can hold a secret, or None."""
    parents = {}
    for node in ast.walk(arg):
        for child in ast.iter_child_nodes(node):
            parents[child] = node
    for node in ast.walk(arg):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "get_secret_value":
            return "get_secret_value()"
        if isinstance(node, ast.Attribute) and node.attr in secrets:
            return f"the secret field {node.attr}"
        whole_config = (isinstance(node, ast.Attribute) and node.attr == "config") or (
            isinstance(node, ast.Name) and node.id == "config"
        )
        if whole_config and not isinstance(parents.get(node), ast.Attribute):
            return "the whole config"
    return None


def secret_logged(code: DestinationCode) -> CheckFinding:
    id = "trap.secret_logged"
    if code.tree(code.config_rel) is None:
        return config_unreadable(code, id)
    secrets = _secret_fields(code)
    for field, (annotation, line) in secrets.items():
        if "SecretStr" not in annotation and "str" in annotation:
            return failed(
                id,
                f"The secret field {field} is a plain `{annotation}`: any log line or error that prints the "
                "config shows it.",
                file=code.config_rel,
                line=line,
                hint=f"Declare `{field}: SecretStr` (pydantic) and read it with `.get_secret_value()` where needed.",
            )
    for f in code.src_files():
        if f.tree is None:
            continue
        for node in ast.walk(f.tree):
            if _is_log_call(node):
                for arg in [*node.args, *(k.value for k in node.keywords)]:
                    what = _leaks(arg, set(secrets))
                    if what:
                        return failed(
                            id,
                            f"A log line prints {what}.",
                            file=f.rel,
                            line=node.lineno,
                            hint="Log only non-secret fields (host, table, counts), never the config object.",
                        )
    return passed(id)


# -- left for the agent ------------------------------------------------------------------------------


def todo_left(code: DestinationCode) -> CheckFinding:
    hits = [(f.rel, _line_of(f.text, i.start())) for f in code.files.values() for i in re.finditer(TODO, f.text)]
    if not hits:
        return passed("agent.todo_left")
    lines = ", ".join(str(line) for rel, line in hits if rel == hits[0][0])
    return failed(
        "agent.todo_left",
        f"{len(hits)} {TODO} marker(s) left, in {_short(hits[0][0])} on lines {lines}.",
        file=hits[0][0],
        line=hits[0][1],
    )


def pass_body(code: DestinationCode) -> CheckFinding:
    hits = []
    for f in code.src_files():
        for node in ast.walk(f.tree) if f.tree else []:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and is_stub(node):
                hits.append((f.rel, node.lineno, node.name))
    if not hits:
        return passed("agent.pass_body")
    rel, line, name = hits[0]
    names = ", ".join(h[2] for h in hits)
    return failed("agent.pass_body", f"{len(hits)} function(s) are only `pass`/`...`: {names}.", file=rel, line=line)


def not_implemented(code: DestinationCode) -> CheckFinding:
    hits = []
    for f in code.src_files():
        for node in ast.walk(f.tree) if f.tree else []:
            if isinstance(node, ast.Name) and node.id in ("NotImplementedError", "NotImplemented"):
                hits.append((f.rel, node.lineno))
    if not hits:
        return passed("agent.not_implemented")
    lines = ", ".join(str(line) for rel, line in hits if rel == hits[0][0])
    return failed(
        "agent.not_implemented",
        f"{len(hits)} NotImplementedError(s) left, in {_short(hits[0][0])} on lines {lines}.",
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


def placeholder(code: DestinationCode) -> CheckFinding:
    hits = []
    for f in code.src_files():  # not the tests: a test may hold a template on purpose
        if f.is_python:
            hits += [(f.rel, line) for line in _python_placeholders(f.text)]
        else:
            hits += [(f.rel, _line_of(f.text, m.start())) for m in PLACEHOLDER.finditer(f.text)]
    if not hits:
        return passed("agent.placeholder")
    rel, line = hits[0]
    shown = PLACEHOLDER.search(code.files[rel].text.splitlines()[line - 1])
    return failed(
        "agent.placeholder",
        f"{len(hits)} template placeholder(s) left, e.g. {shown.group(0) if shown else '{{ }}'} in {_short(rel)}.",
        file=rel,
        line=line,
    )


AGENT_CHECKS = (todo_left, pass_body, not_implemented, placeholder)  # run first: they decide what may run
CODE_CHECKS = (
    source_syntax,
    init_file,
    details_base,
    config_base,
    literal_name,
    field_descriptions,
    destination_base,
    check_connection_bool,
    write_records_returns,
    errors_logged,
    optional_import_in_config,
    models_import_in_config,
    setup_in_check_connection,
    write_records_raises,
    write_records_signature,
    staging_without_finalize,
    secret_logged,
)
