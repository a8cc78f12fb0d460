"""The traps the guide misses (catalog origin "facts"): code that passes its checklist and still breaks bizon."""

import ast
import json
import re
import sys
import tomllib
from collections.abc import Set
from typing import cast
from urllib.parse import urlsplit

from bizon_forge.findings import Finding, Refused
from bizon_forge.validators.catalog import Check, static
from bizon_forge.validators.code import (
    DestinationCode,
    body_without_docstring,
    destination_config,
    inherits_bizon_destination,
    is_log_call,
    literal_member,
    short,
)
from bizon_forge.validators.destination_syntax import (
    SOURCE_SYNTAX,
    TRAP_WRITE_RECORDS_SIGNATURE,
    config_unreadable,
    needs,
    needs_destination,
    needs_write_records,
)
from bizon_forge.workspace import FACTORY_FILE, read_regular

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


TRAP_LITERAL_OTHER_MEMBER = Check(
    "trap.literal_other_member",
    "Traps",
    "The config's Literal does not name another destination's member (e.g. a copy-pasted `DestinationTypes.FILE`).",
    "pydantic raises TypeError '...mapped to multiple choices' at import time, breaking every bizon command.",
    "Name the new destination's own member in `name: Literal[DestinationTypes.<NAME>]`.",
    origin="facts",
    explained_by=(SOURCE_SYNTAX.id,),
)


@static(TRAP_LITERAL_OTHER_MEMBER)
def literal_other_member(code: DestinationCode) -> Finding:
    id = TRAP_LITERAL_OTHER_MEMBER.id
    if code.tree(code.config_rel) is None:
        return config_unreadable(code, id)
    kind, value, line = literal_member(code.main_config)
    if kind != "member" or value not in code.reg.enum or code.reg.enum[value] == code.name:
        return TRAP_LITERAL_OTHER_MEMBER.passed()
    return TRAP_LITERAL_OTHER_MEMBER.fail(
        f"`name: Literal[DestinationTypes.{value}]` is the {code.reg.enum[value]} destination's tag: two "
        "configs on one tag make pydantic fail at import ('mapped to multiple choices'), breaking every "
        "bizon command.",
        file=code.config_rel,
        line=line,
        hint=f"Write `name: Literal[DestinationTypes.{code.member or code.name.upper()}]`.",
    )


def _config_import_closure(code: DestinationCode) -> list[tuple[str, ast.Import | ast.ImportFrom]]:
    """(rel, import) of config.py's module-level imports, following relative imports into its own folder."""
    out: list[tuple[str, ast.Import | ast.ImportFrom]] = []
    todo, seen = [code.config_rel], set()
    src = f"{code.base}/src"
    while todo:
        rel = todo.pop()
        if rel in seen or (tree := code.tree(rel)) is None:
            continue
        seen.add(rel)
        nodes: list[ast.Import | ast.ImportFrom] = []
        stack: list[ast.AST] = list(tree.body)
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


def _modules(node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    mod = node.module or ""
    return [f"{mod}.{a.name}" for a in node.names] + [mod]


def _required_modules(code: DestinationCode) -> set[str]:
    if code.pyproject is None:
        return set()
    try:
        project = tomllib.loads(code.pyproject.decode()).get("project", {})
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        return set()
    out = set()
    for dep in project.get("dependencies", []):
        dist = re.split(r"[ <>=!~;\[]", dep.strip(), maxsplit=1)[0].lower()
        out.add(DIST_TO_MODULE.get(dist, dist.replace("-", "_")))
        if dist.startswith("google-cloud-"):
            out.add("google.cloud." + dist.removeprefix("google-cloud-").replace("-", "_"))
    return out


TRAP_OPTIONAL_IMPORT_IN_CONFIG = Check(
    "trap.optional_import_in_config",
    "Traps",
    "`config.py` imports only the standard library, pydantic, bizon and bizon's required dependencies.",
    "`bizon/common/models.py` imports every destination's config.py, so an optional package there breaks "
    "a "
    "bare bizon install (bizon's tests/cli/test_cli_imports.py enforces this).",
    "Move the import into destination.py (or inside the function that needs it).",
    origin="facts",
)


@static(TRAP_OPTIONAL_IMPORT_IN_CONFIG)
def optional_import_in_config(code: DestinationCode) -> Finding:
    id = TRAP_OPTIONAL_IMPORT_IN_CONFIG.id
    if skip := needs(code, code.config_rel, id):
        return skip
    allowed = ALWAYS_IMPORTABLE | set(sys.stdlib_module_names) | _required_modules(code)
    for rel, node in _config_import_closure(code):
        mod = _modules(node)[-1] if isinstance(node, ast.ImportFrom) else _modules(node)[0]
        top = mod.split(".")[0]
        if top in allowed or any(mod == a or mod.startswith(a + ".") for a in allowed):
            continue
        return TRAP_OPTIONAL_IMPORT_IN_CONFIG.fail(
            f"{short(rel)} imports {mod}, which a bare bizon install lacks; bizon/common/models.py imports "
            "this file, so every bizon command would fail without it.",
            file=rel,
            line=node.lineno,
            hint=f"Import {mod} in destination.py (or inside the function that uses it), never in config.py.",
        )
    return TRAP_OPTIONAL_IMPORT_IN_CONFIG.passed()


TRAP_MODELS_IMPORT_IN_CONFIG = Check(
    "trap.models_import_in_config",
    "Traps",
    "`config.py` does not import `bizon.common.models`.",
    "models.py imports config.py: the cycle fails with a partially initialised module.",
    "Import SyncMetadata and friends in destination.py only.",
    origin="facts",
)


@static(TRAP_MODELS_IMPORT_IN_CONFIG)
def models_import_in_config(code: DestinationCode) -> Finding:
    id = TRAP_MODELS_IMPORT_IN_CONFIG.id
    if skip := needs(code, code.config_rel, id):
        return skip
    for rel, node in _config_import_closure(code):
        for mod in _modules(node):
            if any(mod == m or mod.startswith(m + ".") for m in MODELS_IMPORTERS):
                return TRAP_MODELS_IMPORT_IN_CONFIG.fail(
                    f"{short(rel)} imports {mod}, which imports bizon.common.models, which imports this "
                    "config: a circular import.",
                    file=rel,
                    line=node.lineno,
                )
    return TRAP_MODELS_IMPORT_IN_CONFIG.passed()


TRAP_FACTORY_TOP_LEVEL_IMPORT = Check(
    "trap.factory_top_level_import",
    "Traps",
    "`bizon/destination/destination.py` imports the destination module inside its factory branch, not at the top.",
    "The destination module imports AbstractDestination from that same file: a top-level import is circular.",
    "Move the import into the `elif config.name == DestinationTypes.<NAME>:` branch.",
    origin="facts",
)


@static(TRAP_FACTORY_TOP_LEVEL_IMPORT)
def factory_top_level_import(code: DestinationCode) -> Finding:
    tree = code.registration[FACTORY_FILE].tree
    if tree is None:
        return TRAP_FACTORY_TOP_LEVEL_IMPORT.skip(
            f"{FACTORY_FILE} does not parse (see source.syntax).", SOURCE_SYNTAX.id
        )
    mine = code.connector.owns
    for node in tree.body:
        mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [getattr(node, "module", "") or ""]
        if isinstance(node, (ast.Import, ast.ImportFrom)) and any(mine(m) for m in mods):
            return TRAP_FACTORY_TOP_LEVEL_IMPORT.fail(
                f"{FACTORY_FILE} imports {mods[0]} at the top: the destination imports AbstractDestination "
                "from this file, so the import is circular.",
                file=FACTORY_FILE,
                line=node.lineno,
            )
    return TRAP_FACTORY_TOP_LEVEL_IMPORT.passed()


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


TRAP_SETUP_IN_CHECK_CONNECTION = Check(
    "trap.setup_in_check_connection",
    "Traps",
    "Set-up (clients, tables, folders) does not live only in `check_connection()`.",
    "The engine never calls check_connection() on a destination, so that set-up never runs.",
    "Do the set-up in `__init__` (or lazily in write_records); check_connection may reuse it.",
    limits="Judges `self.X` values that only check_connection() sets and the `self.method()` calls it makes "
    "whose names say set-up (connect, create, setup, init, open, ensure, prepare, make, mkdir, start, login, "
    "auth); set-up done through other names is not seen.",
    skip_is_not_applicable=True,
    origin="facts",
)


@static(TRAP_SETUP_IN_CHECK_CONNECTION)
def setup_in_check_connection(code: DestinationCode) -> Finding:
    id = TRAP_SETUP_IN_CHECK_CONNECTION.id
    if skip := needs_destination(code, id):
        return skip
    cls = cast(ast.ClassDef, code.destination_class)  # needs_destination found it
    methods = [s for s in cls.body if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef))]
    check = next((m for m in methods if m.name == "check_connection"), None)
    if check is None:
        return TRAP_SETUP_IN_CHECK_CONNECTION.skip("No check_connection() of its own: nothing to judge.")
    others = [m for m in methods if m is not check]
    stored_elsewhere = set().union(*(_self_attrs(m, ast.Store) for m in others)) if others else set()
    read_elsewhere = set().union(*(_self_attrs(m, ast.Load) for m in others)) if others else set()
    called_elsewhere = set().union(*(_self_calls(m) for m in others)) if others else set()
    # Properties and methods read as self.X are not state that check_connection sets up.
    defined = {m.name for m in methods}
    for attr, line in _self_attrs(check, ast.Store).items():
        if attr not in stored_elsewhere and attr in read_elsewhere and attr not in defined:
            return TRAP_SETUP_IN_CHECK_CONNECTION.fail(
                f"self.{attr} is only set in check_connection(), which bizon never calls on a destination; "
                "the methods that read it will fail.",
                file=code.destination_rel,
                line=line,
            )
    for name, line in _self_calls(check).items():
        if name in defined and name not in called_elsewhere and SETUP_VERBS.match(name):
            return TRAP_SETUP_IN_CHECK_CONNECTION.fail(
                f"self.{name}() runs only in check_connection(), which bizon never calls on a destination.",
                file=code.destination_rel,
                line=line,
            )
    return TRAP_SETUP_IN_CHECK_CONNECTION.passed()


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


TRAP_WRITE_RECORDS_RAISES = Check(
    "trap.write_records_raises",
    "Traps",
    "`write_records()` has no `raise` that can escape it.",
    "The checklist asks destinations to return `(False, message)`; an escaping exception skips the "
    "destination's own error reporting.",
    "Wrap the work in `try/except Exception` and `return False, message` in the handler.",
    origin="facts",
)


@static(TRAP_WRITE_RECORDS_RAISES)
def write_records_raises(code: DestinationCode) -> Finding:
    id = TRAP_WRITE_RECORDS_RAISES.id
    fn, answer = needs_write_records(code, id)
    if answer:
        return answer
    out: list[ast.Raise] = []
    _escaping_raises(fn.body, False, out)
    if not out:
        return TRAP_WRITE_RECORDS_RAISES.passed()
    return TRAP_WRITE_RECORDS_RAISES.fail(
        f"`{ast.unparse(out[0])}` can escape write_records; return (False, message) instead.",
        file=code.destination_rel,
        line=out[0].lineno,
    )


@static(TRAP_WRITE_RECORDS_SIGNATURE)
def write_records_signature(code: DestinationCode) -> Finding:
    id = TRAP_WRITE_RECORDS_SIGNATURE.id
    if skip := needs_destination(code, id):
        return skip
    cls = cast(ast.ClassDef, code.destination_class)  # needs_destination found it
    fn = code.destination_method("write_records")
    rel = code.destination_rel
    if fn is None:
        if inherits_bizon_destination(code):
            return TRAP_WRITE_RECORDS_SIGNATURE.passed("write_records is inherited from a bizon destination.")
        return TRAP_WRITE_RECORDS_SIGNATURE.fail(
            f"{cls.name} does not define write_records(); the class cannot be instantiated.",
            file=rel,
            line=cls.lineno,
        )
    if isinstance(fn, ast.AsyncFunctionDef):
        return TRAP_WRITE_RECORDS_SIGNATURE.fail(
            "write_records is `async`; bizon calls it synchronously.", file=rel, line=fn.lineno
        )
    decorators = {ast.unparse(d) for d in fn.decorator_list}
    if decorators & {"staticmethod", "classmethod"}:
        return TRAP_WRITE_RECORDS_SIGNATURE.fail("write_records must be a plain method.", file=rel, line=fn.lineno)
    a = fn.args
    positional = [*a.posonlyargs, *a.args]
    if not positional or positional[0].arg != "self":
        return TRAP_WRITE_RECORDS_SIGNATURE.fail("write_records does not take `self` first.", file=rel, line=fn.lineno)
    params = positional[1:]
    named = {p.arg for p in [*params, *a.kwonlyargs]}
    if "df_destination_records" not in named:
        got = ", ".join(p.arg for p in params) or "nothing"
        return TRAP_WRITE_RECORDS_SIGNATURE.fail(
            f"write_records takes {got}; bizon passes the keyword `df_destination_records=`.",
            file=rel,
            line=fn.lineno,
        )
    defaults_from = len(params) - len(a.defaults)
    required = [p.arg for i, p in enumerate(params) if i < defaults_from]
    required += [p.arg for p, d in zip(a.kwonlyargs, a.kw_defaults, strict=True) if d is None]
    extra = [r for r in required if r != "df_destination_records"]
    if extra:
        return TRAP_WRITE_RECORDS_SIGNATURE.fail(
            f"write_records requires {', '.join(extra)}, which bizon never passes.",
            file=rel,
            line=fn.lineno,
        )
    if "df_destination_records" not in {p.arg for p in a.kwonlyargs} and params[0].arg != "df_destination_records":
        return TRAP_WRITE_RECORDS_SIGNATURE.fail(
            "df_destination_records must be the first parameter after self.", file=rel, line=fn.lineno
        )
    return TRAP_WRITE_RECORDS_SIGNATURE.passed()


def _trivial(fn) -> bool:
    for s in body_without_docstring(fn):
        if isinstance(s, ast.Pass) or (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant)):
            continue
        if isinstance(s, ast.Return) and (s.value is None or isinstance(s.value, ast.Constant)):
            continue
        if isinstance(s, ast.Expr) and is_log_call(s.value):
            continue
        return False
    return True


TRAP_STAGING_WITHOUT_FINALIZE = Check(
    "trap.staging_without_finalize",
    "Traps",
    "A destination that names a staging target overrides `finalize()` with a body that does something.",
    "`finalize()` defaults to doing nothing: staged records would never reach the target.",
    "In finalize(), replace the target with the staging copy (full_refresh) or append it (incremental).",
    limits="Judged by names only (stage, staging, temp/tmp table, `_tmp`): what is written where and what "
    "finalize() does with it are not followed.",
    origin="facts",
)


@static(TRAP_STAGING_WITHOUT_FINALIZE)
def staging_without_finalize(code: DestinationCode) -> Finding:
    id = TRAP_STAGING_WITHOUT_FINALIZE.id
    if skip := needs_destination(code, id):
        return skip
    cls = cast(ast.ClassDef, code.destination_class)  # needs_destination found it
    tree = cast(ast.Module, code.tree(code.destination_rel))  # and its file parses
    mention: ast.expr | ast.stmt | None = None
    for node in ast.walk(tree):
        words: list[str] = []
        if isinstance(node, ast.Name):
            words = [node.id]
        elif isinstance(node, ast.Attribute):
            words = [node.attr]
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            words = [node.name]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and len(node.value) < 80:
            words = [node.value]
        if any(STAGING.search(w.lower()) for w in words):
            mention = cast(ast.expr | ast.stmt, node)  # a name, attribute, function or constant: words come from those
            break
    # Judged by names only: what the code writes where, and what finalize() does with it, is not followed.
    if mention is None:
        return TRAP_STAGING_WITHOUT_FINALIZE.passed(
            "No name in destination.py reads as staging (judged by names only)."
        )
    fn = code.destination_method("finalize")
    if fn is not None and not _trivial(fn):
        return TRAP_STAGING_WITHOUT_FINALIZE.passed(
            f"A name reads as staging (line {mention.lineno}) and finalize() does something; what it does is not "
            "judged.",
        )
    where = "does not override finalize()" if fn is None else "has a finalize() that does nothing"
    return TRAP_STAGING_WITHOUT_FINALIZE.fail(
        f"{cls.name} names a staging target (line {mention.lineno}) but {where}: "
        "staged records would never reach the target.",
        file=code.destination_rel,
        line=fn.lineno if fn is not None else cls.lineno,
    )


TRAP_FINALIZE_RETURNS_FALSE = Check(
    "trap.finalize_returns_false",
    "Traps",
    "`finalize()` never answers a failure with `return False`, or with a variable an `except` sets to False.",
    "bizon ignores finalize()'s return value: a publish that failed and returned False looks like a success "
    "(0.5.x and 0.6.x alike).",
    "Raise in finalize() when publishing fails (log the context first); bizon then ends the run as failed.",
    limits="What it returns is not judged otherwise (data.publish_fails judges an http publish that fails).",
    skip_is_not_applicable=True,
    origin="facts",
)


def _false_in_except(fn: ast.AST) -> set[str]:
    """Names an `except` block of fn sets to False: `published = False` where a failure is caught."""
    names = set()
    for handler in ast.walk(fn):
        if isinstance(handler, ast.ExceptHandler):
            for node in ast.walk(handler):
                if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and node.value.value is False:
                    names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return names


@static(TRAP_FINALIZE_RETURNS_FALSE)
def finalize_returns_false(code: DestinationCode) -> Finding:
    """A `return False` in finalize(): bizon ignores the value, so the failure it means goes unnoticed."""
    id = TRAP_FINALIZE_RETURNS_FALSE.id
    if skip := needs_destination(code, id):
        return skip
    fn = code.destination_method("finalize")
    if fn is None:
        return TRAP_FINALIZE_RETURNS_FALSE.skip("No finalize() of its own: nothing to judge.")
    flags = _false_in_except(fn)
    for node in ast.walk(fn):
        if not isinstance(node, ast.Return):
            continue
        value = node.value
        literal = isinstance(value, ast.Constant) and value.value is False
        flag = value.id if isinstance(value, ast.Name) and value.id in flags else None
        if literal or flag:
            what = f"{flag}, which an `except` sets to False," if flag else "False"
            return TRAP_FINALIZE_RETURNS_FALSE.fail(
                f"finalize() returns {what} (line {node.lineno}): bizon ignores finalize()'s return value, so "
                "the run reports success while the records stay unpublished.",
                file=code.destination_rel,
                line=node.lineno,
            )
    return TRAP_FINALIZE_RETURNS_FALSE.passed(
        "finalize() never answers a failure with False (judged: `return False`, and a returned variable an "
        "`except` sets to False)."
    )


def _secret_fields(code: DestinationCode) -> dict[str, tuple[str, int]]:
    """Field name -> (annotation, line) of the details config's secret fields: typed SecretStr (what the spec's
    `secret: true` renders), marked secret in the stored spec, or named like a secret."""
    cls = code.config_classes.get(code.details_config_name or "")
    flagged = _spec_secrets(code)
    out = {}
    for stmt in cls.body if cls else []:
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
            field, annotation = stmt.target.id, ast.unparse(stmt.annotation)
            name = field.lower()
            named = set(name.split("_")) & SECRET_PARTS or name.endswith(SECRET_SUFFIXES) or name == "key"
            if named or "SecretStr" in annotation or field in flagged:
                out[field] = (annotation, stmt.lineno)
    return out


def _spec_secrets(code: DestinationCode) -> set[str]:
    """The fields the stored spec (describe_target's) marks secret; none when there is no readable spec."""
    path = code.ws.state_dir / "specs" / f"{code.name}.json"
    try:
        fields = json.loads(read_regular(path)).get("fields") or []
        return {f["name"] for f in fields if isinstance(f, dict) and f.get("secret")}
    except (OSError, ValueError, AttributeError, KeyError, TypeError, Refused):
        return set()


def _leaks(arg: ast.AST, secrets: set[str], tainted: Set[str] = frozenset(), attrs: Set[str] = frozenset()):
    """What in an expression can hold a secret, or None: a secret field, get_secret_value(), the whole config,
    or a local variable (`tainted`) or attribute of self (`attrs`) that was given one of those."""
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
        if isinstance(node, ast.Name) and node.id in tainted and isinstance(node.ctx, ast.Load):
            return f"{node.id}, which holds a secret"
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "self"
            and node.attr in attrs
            and not isinstance(parents.get(node), ast.Attribute)  # self.client.host is not self.client
        ):
            return f"self.{node.attr}, which holds a secret"
    return None


def _bindings(node: ast.AST) -> list[tuple[ast.AST, ast.AST]]:
    """(target, value) pairs a statement binds: assignments, walrus, for loops, with ... as."""
    if isinstance(node, ast.Assign):
        return [(t, node.value) for t in node.targets]
    if isinstance(node, (ast.AnnAssign, ast.AugAssign, ast.NamedExpr)) and node.value is not None:
        return [(node.target, node.value)]
    if isinstance(node, (ast.For, ast.AsyncFor, ast.comprehension)):
        return [(node.target, node.iter)]
    if isinstance(node, ast.withitem) and node.optional_vars is not None:
        return [(node.optional_vars, node.context_expr)]
    return []


def _names(target: ast.AST) -> tuple[set[str], set[str]]:
    """Local names and self attributes a binding target writes (`x[k] = secret` and `x.y = secret` taint x)."""
    if isinstance(target, ast.Name):
        return {target.id}, set()
    if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) and target.value.id == "self":
        return set(), {target.attr}
    if isinstance(target, (ast.Attribute, ast.Subscript, ast.Starred)):
        return _names(target.value)
    local, attrs = set(), set()
    for element in getattr(target, "elts", []):
        more = _names(element)
        local |= more[0]
        attrs |= more[1]
    return local, attrs


def _secret_attributes(tree: ast.Module, secrets: set[str]) -> set[str]:
    """Attributes of self that any method gives a secret (e.g. `self.password = config.password.get_secret_value()`)."""
    attrs: set[str] = set()
    while True:  # an attribute given another tainted attribute is tainted too
        before = len(attrs)
        for node in ast.walk(tree):
            for target, value in _bindings(node):
                if _leaks(value, secrets, attrs=attrs):
                    attrs |= _names(target)[1] - {"config"}  # self.config is judged as the whole config
        if len(attrs) == before:
            return attrs


def _tainted_locals(fn: ast.AST, secrets: set[str], attrs: set[str]) -> set[str]:
    tainted: set[str] = set()
    while True:  # `pw = ...secret...; creds = {"pw": pw}` taints both, in any order of the two
        before = len(tainted)
        for node in ast.walk(fn):
            for target, value in _bindings(node):
                if _leaks(value, secrets, tainted, attrs):
                    tainted |= _names(target)[0]
        if len(tainted) == before:
            return tainted


TRAP_SECRET_LOGGED = Check(
    "trap.secret_logged",
    "Traps",
    "Secret fields are `SecretStr`, and no log line or print holds the config, a secret field or `get_secret_value()`.",
    "bizon prints whole configs in some errors (the factory's 'not found' message); log lines end up in CI output.",
    "Type secrets as `SecretStr`; log only non-secret fields.",
    origin="facts",
)


@static(TRAP_SECRET_LOGGED)
def secret_logged(code: DestinationCode) -> Finding:
    id = TRAP_SECRET_LOGGED.id
    if code.tree(code.config_rel) is None:
        return config_unreadable(code, id)
    secrets = _secret_fields(code)
    for field, (annotation, line) in secrets.items():
        if "SecretStr" not in annotation and "str" in annotation:
            return TRAP_SECRET_LOGGED.fail(
                f"The secret field {field} is a plain `{annotation}`: any log line or error that prints the "
                "config shows it.",
                file=code.config_rel,
                line=line,
                hint=f"Declare `{field}: SecretStr` (pydantic) and read it with `.get_secret_value()` where needed.",
            )
    for f in code.src_files():
        leak = _logged_secret(f.tree, set(secrets)) if f.tree is not None else None
        if leak:
            what, line = leak
            return TRAP_SECRET_LOGGED.fail(
                f"A log line prints {what}.",
                file=f.rel,
                line=line,
                hint="Log only non-secret fields (host, table, counts), never the config object.",
            )
    return TRAP_SECRET_LOGGED.passed()


def _logged_secret(tree: ast.Module, secrets: set[str]) -> tuple[str, int] | None:
    """(what is printed, line) of the first log call in a module that prints a secret, or None."""
    attrs = _secret_attributes(tree, secrets)
    functions = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    for scope in [tree, *functions]:
        tainted = _tainted_locals(scope, secrets, attrs) if scope is not tree else set()
        for node in ast.walk(scope):
            if not is_log_call(node):
                continue
            for arg in [*node.args, *(k.value for k in node.keywords)]:
                what = _leaks(arg, secrets, tainted, attrs)
                if what:
                    return what, node.lineno
    return None


# What bizon resolves in a config value (whole value or inline ${...}): such a value references a secret.
SECRET_REFERENCE = re.compile(r"(^|\$\{)(env|gsm)://")


def _plaintext(value) -> str | None:
    """What of a secret field's value is written in the clear, or None: a reference, null or empty holds none,
    and a URL only when it carries a password (a SQLite path or a password-less URL is no secret)."""
    if not isinstance(value, (str, int, float)) or value == "" or isinstance(value, bool):
        return None
    text = str(value)
    if SECRET_REFERENCE.search(text):
        return None
    if "://" in text:
        try:
            return "the URL's password" if urlsplit(text).password else None
        except ValueError:  # an unparsable URL is import.config_validate's business, not a secret's
            return None
    return "the value"


TRAP_PLAINTEXT_SECRET = Check(
    "trap.plaintext_secret",
    "Traps",
    "No secret field of the details config (SecretStr, marked secret in the spec, or named like a secret) holds "
    "a plain-text value in the example or check config: each is an env:// or gsm:// reference (whole or "
    "inline ${...}), empty, or a URL without a password. Skip when there is no secret field or neither config "
    "sets one.",
    "Both configs are committed with the tree, and bizon prints whole configs in some errors. bizon resolves "
    "env://NAME (and gsm:// on 0.6.x), and `bizon run` reads the tree's .env.",
    "Reference the secret as env://NAME and set NAME in the workspace's .env (kept out of git) or the environment.",
    skip_is_not_applicable=True,
    origin="facts",
)


@static(TRAP_PLAINTEXT_SECRET)
def plaintext_secret(code: DestinationCode) -> Finding:
    """trap.plaintext_secret: the committed configs reference their secrets instead of holding them."""
    id = TRAP_PLAINTEXT_SECRET.id
    if code.tree(code.config_rel) is None:
        return config_unreadable(code, id)
    secrets = _secret_fields(code)
    if not secrets:
        return TRAP_PLAINTEXT_SECRET.skip(
            "The details config has no secret field (SecretStr, marked secret, or named like one)."
        )
    judged = []
    for rel in (code.example_rel, code.check_rel):
        details = destination_config(code, rel) or {}
        for field in sorted(set(secrets) & set(details)):
            judged.append(f"{rel.rsplit('/', 1)[-1]}:{field}")
            what = _plaintext(details[field])
            if what:
                return TRAP_PLAINTEXT_SECRET.fail(
                    f"{rel} holds {what} of the secret field {field} in plain text: the config is committed with "
                    "the tree, and bizon prints whole configs in some errors.",
                    file=rel,
                    hint=f"Write `{field}: env://{code.name.upper()}_{field.upper()}` (or ${{env://NAME}} inside a "
                    "URL) and set the value in the workspace's .env (keep it out of git) or in the environment.",
                )
    if not judged:
        return TRAP_PLAINTEXT_SECRET.skip("Neither config sets a secret field: nothing to judge.")
    return TRAP_PLAINTEXT_SECRET.passed(
        f"Every secret field the configs set is a reference, empty or a URL without a password: {', '.join(judged)}.",
    )
