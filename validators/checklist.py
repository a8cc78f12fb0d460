"""The guide's Validation Checklist: what config.py and destination.py must declare and return."""

import ast
from typing import cast

from bizon_forge.connector import is_connector_module
from bizon_forge.findings import Finding
from bizon_forge.validators.agent_todo import AGENT_PASS_BODY
from bizon_forge.validators.catalog import Check, static
from bizon_forge.validators.code import (
    DestinationCode,
    all_bases,
    body_without_docstring,
    extends,
    imported_names,
    inherits_bizon_destination,
    is_log_call,
    is_stub,
    literal_member,
    short,
)
from bizon_forge.validators.destination_syntax import (
    CHECKLIST_CONFIG_BASE,
    CHECKLIST_DESTINATION_BASE,
    needs,
    needs_destination,
    needs_write_records,
)
from bizon_forge.validators.registered import CHECKLIST_LITERAL_NAME, REGISTRATION_ENUM

# -- the guide's checklist: config ----------------------------------------------------------------


CHECKLIST_INIT_FILE = Check(
    "checklist.init_file",
    "Config",
    "`src/__init__.py` exists.",
    "The guide's checklist asks for it (bizon's own destinations are namespace packages; it is harmless).",
    "Create an empty `src/__init__.py` in the destination folder.",
)


@static(CHECKLIST_INIT_FILE)
def init_file(code: DestinationCode) -> Finding:
    if (code.ws.root / code.init_rel).is_file():
        return CHECKLIST_INIT_FILE.passed()
    return CHECKLIST_INIT_FILE.fail(f"{short(code.init_rel)} is missing.", file=code.init_rel)


CHECKLIST_DETAILS_BASE = Check(
    "checklist.details_base",
    "Config",
    "The details config (the type of the main config's `config:` field) extends `AbstractDestinationDetailsConfig`.",
    "bizon reads buffer_size, buffer_flush_timeout, destination_id and more from that base class.",
    "Derive the details class from `bizon.destination.config.AbstractDestinationDetailsConfig`.",
    limits="Only a class defined in config.py is judged; an imported one is a skip.",
)


@static(CHECKLIST_DETAILS_BASE)
def details_base(code: DestinationCode) -> Finding:
    if skip := needs(code, code.config_rel, CHECKLIST_DETAILS_BASE.id):
        return skip
    if code.main_config is None:
        return CHECKLIST_DETAILS_BASE.skip(
            "No main config class (see checklist.config_base).",
            CHECKLIST_CONFIG_BASE.id,
        )
    name = code.details_config_name
    if name is None:
        return CHECKLIST_DETAILS_BASE.fail(
            f"{code.main_config.name} has no `config:` field naming its details class.",
            file=code.config_rel,
            line=code.main_config.lineno,
            hint=f"Add `config: {code.pascal}DestinationConfig` to {code.main_config.name}.",
        )
    cls = code.config_classes.get(name)
    if cls is None:
        imported = imported_names(code.tree(code.config_rel)).get(name)
        if imported:  # its bases live in another module, which this check does not read
            return CHECKLIST_DETAILS_BASE.skip(f"{name} is imported from {imported}: its base is not judged.")
        return CHECKLIST_DETAILS_BASE.fail(
            f"The details class {name} is neither defined nor imported in config.py.",
            file=code.config_rel,
        )
    if not extends(cls, "AbstractDestinationDetailsConfig", code.config_classes):
        return CHECKLIST_DETAILS_BASE.fail(
            f"{name} does not extend AbstractDestinationDetailsConfig.",
            file=code.config_rel,
            line=cls.lineno,
        )
    return CHECKLIST_DETAILS_BASE.passed()


@static(CHECKLIST_CONFIG_BASE)
def config_base(code: DestinationCode) -> Finding:
    if skip := needs(code, code.config_rel, CHECKLIST_CONFIG_BASE.id):
        if not (code.ws.root / code.config_rel).exists():
            return CHECKLIST_CONFIG_BASE.fail(
                f"{code.config_rel} does not exist.",
                file=code.config_rel,
                hint="Call render_destination, or write config.py as in the guide's Step 2.",
            )
        return skip
    cls = code.main_config
    if cls is None:
        return CHECKLIST_CONFIG_BASE.fail(
            f"config.py has no main config class (one with `name: Literal[DestinationTypes.X]`, e.g. "
            f"{code.pascal}Config).",
            file=code.config_rel,
        )
    if not extends(cls, "AbstractDestinationConfig", code.config_classes):
        return CHECKLIST_CONFIG_BASE.fail(
            f"{cls.name} does not extend AbstractDestinationConfig.",
            file=code.config_rel,
            line=cls.lineno,
        )
    return CHECKLIST_CONFIG_BASE.passed()


@static(CHECKLIST_LITERAL_NAME)
def literal_name(code: DestinationCode) -> Finding:
    """The Literal names a member the enum has; naming *another destination's* member is the trap below."""
    if skip := needs(code, code.config_rel, CHECKLIST_LITERAL_NAME.id):
        return skip
    kind, value, line = literal_member(code.main_config)
    expected = code.member or code.name.upper()
    hint = f"Write `name: Literal[DestinationTypes.{expected}]`."
    if kind is None:
        where = f"{code.main_config.name} has" if code.main_config else "config.py has"
        what = f"`name: {value}`" if value else "no `name: Literal[DestinationTypes.X]` field"
        if code.main_config is None:
            return CHECKLIST_LITERAL_NAME.skip(
                "No main config class (see checklist.config_base).",
                CHECKLIST_CONFIG_BASE.id,
            )
        return CHECKLIST_LITERAL_NAME.fail(f"{where} {what}.", file=code.config_rel, line=line, hint=hint)
    if kind == "string":
        return CHECKLIST_LITERAL_NAME.fail(
            f"`name: Literal[{value!r}]` uses a string; the guide's configs name the enum member.",
            file=code.config_rel,
            line=line,
            hint=hint,
        )
    if value not in code.reg.enum and value == expected and code.member is None:
        return CHECKLIST_LITERAL_NAME.skip(
            f"DestinationTypes.{value} is not registered (see registration.enum).",
            REGISTRATION_ENUM.id,
        )
    if value not in code.reg.enum:
        return CHECKLIST_LITERAL_NAME.fail(
            f"DestinationTypes has no member {value}: importing bizon.common.models raises AttributeError.",
            file=code.config_rel,
            line=line,
            hint=hint if code.member else f"Add {expected} = {code.name!r} to DestinationTypes, or fix the Literal.",
        )
    return CHECKLIST_LITERAL_NAME.passed()


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


CHECKLIST_FIELD_DESCRIPTIONS = Check(
    "checklist.field_descriptions",
    "Config",
    "Every required field of the details config has a non-empty `Field(..., description=...)`. Skip when "
    "config.py defines no details class (none, or an imported one): nothing to judge.",
    "The description is the only documentation a user of the YAML gets.",
    'Declare it as `name: str = Field(..., description="What it is")`.',
)


@static(CHECKLIST_FIELD_DESCRIPTIONS)
def field_descriptions(code: DestinationCode) -> Finding:
    id = CHECKLIST_FIELD_DESCRIPTIONS.id
    if skip := needs(code, code.config_rel, id):
        return skip
    name = code.details_config_name
    cls = code.config_classes.get(name or "")
    if cls is None:  # nothing here to judge
        if code.main_config is None:
            return CHECKLIST_FIELD_DESCRIPTIONS.skip(
                "No main config class (see checklist.config_base).", CHECKLIST_CONFIG_BASE.id
            )
        if name is None or name not in imported_names(code.tree(code.config_rel)):
            return CHECKLIST_FIELD_DESCRIPTIONS.skip(
                "No details class in config.py (see checklist.details_base).", CHECKLIST_DETAILS_BASE.id
            )
        return CHECKLIST_FIELD_DESCRIPTIONS.skip(
            f"{name} is imported, not defined in config.py: its fields are not judged."
        )
    missing = []
    for stmt in cls.body:
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
            if stmt.target.id.startswith("_") or "ClassVar" in ast.unparse(stmt.annotation):
                continue
            required, described = _field_has_description(stmt.value)
            if required and not described:
                missing.append((stmt.target.id, stmt.lineno))
    if not missing:
        return CHECKLIST_FIELD_DESCRIPTIONS.passed()
    names = ", ".join(n for n, _ in missing)
    return CHECKLIST_FIELD_DESCRIPTIONS.fail(
        f"Required field(s) without a description in {cls.name}: {names}.",
        file=code.config_rel,
        line=missing[0][1],
        hint=f'Declare each as `{missing[0][0]}: str = Field(..., description="What it is")`.',
    )


# -- the guide's checklist: implementation ---------------------------------------------------------


@static(CHECKLIST_DESTINATION_BASE)
def destination_base(code: DestinationCode) -> Finding:
    rel = code.destination_rel
    if not (code.ws.root / rel).exists():
        return CHECKLIST_DESTINATION_BASE.fail(
            f"{rel} does not exist.",
            file=rel,
            hint="Call render_destination, or write destination.py as in the guide's Step 3.",
        )
    if skip := needs(code, rel, CHECKLIST_DESTINATION_BASE.id):
        return skip
    cls = code.destination_class
    if cls is None:
        return CHECKLIST_DESTINATION_BASE.fail(
            f"destination.py defines no destination class (expected {code.pascal}Destination).",
            file=rel,
        )
    local = code.destination_classes
    imports = imported_names(code.tree(rel))
    if extends(cls, "AbstractDestination", local):
        return CHECKLIST_DESTINATION_BASE.passed()
    # A subclass of one of bizon's own destinations extends AbstractDestination through it.
    bases = [b for b in all_bases(cls, local) if is_connector_module(imports.get(b, ""))]
    if bases:
        return CHECKLIST_DESTINATION_BASE.passed(f"{cls.name} extends bizon's {bases[0]}.")
    return CHECKLIST_DESTINATION_BASE.fail(
        f"{cls.name} does not extend AbstractDestination.",
        file=rel,
        line=cls.lineno,
    )


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


CHECKLIST_CHECK_CONNECTION_BOOL = Check(
    "checklist.check_connection_bool",
    "Implementation",
    "`check_connection()` is defined, annotated `-> bool` if at all, cannot end without a return, and returns "
    "no literal that is not a bool.",
    "It is abstract: without it the class cannot be instantiated.",
    "Define `def check_connection(self) -> bool:` returning True or False.",
    limits="Judges literal returns only: a returned variable or call is not followed (the pass says which).",
)


@static(CHECKLIST_CHECK_CONNECTION_BOOL)
def check_connection_bool(code: DestinationCode) -> Finding:
    id = CHECKLIST_CHECK_CONNECTION_BOOL.id
    if skip := needs_destination(code, id):
        return skip
    cls = cast(ast.ClassDef, code.destination_class)  # needs_destination found it
    fn = code.destination_method("check_connection")
    if fn is None:
        if inherits_bizon_destination(code):
            return CHECKLIST_CHECK_CONNECTION_BOOL.passed("check_connection is inherited from a bizon destination.")
        return CHECKLIST_CHECK_CONNECTION_BOOL.fail(
            f"{cls.name} does not define check_connection(); the class cannot be instantiated.",
            file=code.destination_rel,
            line=cls.lineno,
        )
    if is_stub(fn):
        return CHECKLIST_CHECK_CONNECTION_BOOL.skip(
            "check_connection is a stub (see agent.pass_body).", AGENT_PASS_BODY.id
        )
    if fn.returns is not None and ast.unparse(fn.returns) != "bool":
        return CHECKLIST_CHECK_CONNECTION_BOOL.fail(
            f"check_connection is annotated `-> {ast.unparse(fn.returns)}`.",
            file=code.destination_rel,
            line=fn.lineno,
        )
    returns = _own_returns(fn)
    for ret in returns:
        v = ret.value
        if v is None or (isinstance(v, ast.Constant) and not isinstance(v.value, bool)) or isinstance(v, ast.Tuple):
            return CHECKLIST_CHECK_CONNECTION_BOOL.fail(
                f"check_connection returns `{ast.unparse(v) if v else 'None'}`, not a bool.",
                file=code.destination_rel,
                line=ret.lineno,
            )
    if not _always_exits(body_without_docstring(fn)):
        return CHECKLIST_CHECK_CONNECTION_BOOL.fail(
            "check_connection can reach its end and return None.",
            file=code.destination_rel,
            line=fn.lineno,
        )
    return CHECKLIST_CHECK_CONNECTION_BOOL.passed(
        _judged("check_connection", "bools", [r for r in returns if not _bool_by_form(r.value)])
    )


def _bool_by_form(value: ast.expr | None) -> bool:
    """A literal bool, a comparison or a `not`: a bool whatever the values in it."""
    if isinstance(value, ast.Constant):
        return isinstance(value.value, bool)
    return isinstance(value, ast.Compare) or (isinstance(value, ast.UnaryOp) and isinstance(value.op, ast.Not))


def _judged(method: str, what: str, unjudged: list[ast.Return]) -> str:
    """A pass's message: the limit of what was judged, when a return's value was not followed."""
    if not unjudged:
        return f"{method} returns {what} on every path."
    # a bare return failed before a pass is judged
    shown = ", ".join(f"`{ast.unparse(cast(ast.expr, r.value))[:60]}` (line {r.lineno})" for r in unjudged[:2])
    more = f" and {len(unjudged) - 2} more" if len(unjudged) > 2 else ""
    return (
        f"{method} never ends without a return and its literal returns are {what}; not followed (literal returns "
        f"only): {shown}{more}."
    )


def _tuple_annotation_ok(ann: ast.expr) -> bool:
    if isinstance(ann, ast.Subscript):
        head = ann.value.id if isinstance(ann.value, ast.Name) else getattr(ann.value, "attr", "")
        if head in ("Tuple", "tuple"):
            first = ann.slice.elts[0] if isinstance(ann.slice, ast.Tuple) and ann.slice.elts else ann.slice
            return ast.unparse(first) == "bool"
    return False


CHECKLIST_WRITE_RECORDS_RETURNS = Check(
    "checklist.write_records_returns",
    "Implementation",
    "`write_records()` cannot end without a return, and its literal returns are `(bool, str | None)` pairs.",
    "bizon unpacks `success, error_msg = self.write_records(...)`; anything else crashes the consumer.",
    "Return `True, None` on success and `False, message` on failure.",
    limits="Judges literal returns only: a returned variable or call is not followed (the pass says which).",
)


@static(CHECKLIST_WRITE_RECORDS_RETURNS)
def write_records_returns(code: DestinationCode) -> Finding:
    id = CHECKLIST_WRITE_RECORDS_RETURNS.id
    fn, answer = needs_write_records(code, id)
    if answer:
        return answer
    rel = code.destination_rel
    if fn.returns is not None and not _tuple_annotation_ok(fn.returns):
        return CHECKLIST_WRITE_RECORDS_RETURNS.fail(
            f"write_records is annotated `-> {ast.unparse(fn.returns)}`.", file=rel, line=fn.lineno
        )
    for ret in _own_returns(fn):
        v = ret.value
        if v is None or isinstance(v, (ast.Constant, ast.List, ast.Dict, ast.Set)):
            shown = ast.unparse(v) if v is not None else "None"
            return CHECKLIST_WRITE_RECORDS_RETURNS.fail(
                f"write_records returns `{shown}`, not a (bool, message) pair.", file=rel, line=ret.lineno
            )
        if isinstance(v, ast.Tuple):
            first = v.elts[0] if v.elts else None
            if len(v.elts) != 2 or (isinstance(first, ast.Constant) and not isinstance(first.value, bool)):
                return CHECKLIST_WRITE_RECORDS_RETURNS.fail(
                    f"write_records returns `{ast.unparse(v)}`, not a (bool, message) pair.",
                    file=rel,
                    line=ret.lineno,
                )
    if not _always_exits(body_without_docstring(fn)):
        return CHECKLIST_WRITE_RECORDS_RETURNS.fail(
            "write_records can reach its end and return None.", file=rel, line=fn.lineno
        )
    unjudged = [r for r in _own_returns(fn) if not (isinstance(r.value, ast.Tuple) and _bool_by_form(r.value.elts[0]))]
    return CHECKLIST_WRITE_RECORDS_RETURNS.passed(_judged("write_records", "(bool, message) pairs", unjudged))


def _returns_failure(handler: ast.ExceptHandler) -> ast.Return | None:
    for node in ast.walk(handler):
        if isinstance(node, ast.Return) and isinstance(node.value, ast.Tuple) and node.value.elts:
            first = node.value.elts[0]
            if isinstance(first, ast.Constant) and first.value is False:
                return node
    return None


CHECKLIST_ERRORS_LOGGED = Check(
    "checklist.errors_logged",
    "Implementation",
    "Warns (never fails) when an `except` block of `write_records()` returns `(False, ...)` without a "
    "logger call in it.",
    "The returned message is all the engine keeps; a log line with the context saves a rerun.",
    "In each `except` of write_records call `logger.error(...)` before `return False, message`.",
)


@static(CHECKLIST_ERRORS_LOGGED)
def errors_logged(code: DestinationCode) -> Finding:
    id = CHECKLIST_ERRORS_LOGGED.id
    fn, answer = needs_write_records(code, id)
    if answer:
        return answer
    for node in ast.walk(fn):
        if isinstance(node, (ast.Try, ast.TryStar)):
            for handler in node.handlers:
                ret = _returns_failure(handler)
                if ret is not None and not any(is_log_call(n) for n in ast.walk(handler)):
                    return CHECKLIST_ERRORS_LOGGED.warn(
                        "An except block of write_records returns (False, ...) without logging the error.",
                        file=code.destination_rel,
                        line=handler.lineno,
                    )
    return CHECKLIST_ERRORS_LOGGED.passed()
