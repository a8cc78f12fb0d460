"""A source's files as its static checks see them, and those checks: the guide's Step 4 code structure and the
traps it misses (what running bizon 0.6.4 and 0.5.2 showed; /tmp research notes F-numbers are cited in `why`).

Each check reads the parsed SourceCode and answers one finding with the id it is named for. What a static check
cannot prove (that pages end, that every record comes out once) is the contract's: these only catch the code
shapes that bizon was seen to fail on, and say so in their limits.
"""

import ast
from dataclasses import dataclass
from pathlib import Path

from bizon_forge import pyast
from bizon_forge.connector import Connector
from bizon_forge.findings import Finding
from bizon_forge.validators.catalog import Check, static
from bizon_forge.validators.code import (
    SourceFile,
    body_without_docstring,
    extends,
    is_log_call,
    method,
    owned_files,
    read_source,
    top_classes,
)
from bizon_forge.workspace import Workspace, read_regular

REQUIRED_METHODS = (
    "streams",
    "get_config_class",
    "get_authenticator",
    "check_connection",
    "get_total_records_count",
    "get",
)
GROUP = "Source code"
# What an except clause catches that includes an HTTP error raised by requests.
HTTP_CATCHING = {"Exception", "BaseException", "RequestException", "HTTPError", "ConnectionError", "IOError", "OSError"}
# Methods whose contract is to answer a failure, not raise it: check_connection returns (False, why); a count it
# cannot get is None (bizon calls get_total_records_count outside any try, so raising there fails the run).
ANSWERS_INSTEAD = ("check_connection", "get_total_records_count")
SECRET_WORDS = ("token", "password", "secret", "api_key", "apikey", "authentication", "client_secret")


@dataclass
class SourceCode:
    ws: Workspace
    name: str
    files: dict[str, SourceFile]  # tree-relative path -> file, for src/*.py

    @classmethod
    def load(cls, ws: Workspace, name: str) -> "SourceCode":
        c = Connector(name, "source")
        rels = [r for r in owned_files(ws.root, ws.root / c.dir / "src") if r.endswith(".py")]
        return cls(ws, name, {r: read_source(ws.root, r) for r in rels})

    @property
    def connector(self) -> Connector:
        return Connector(self.name, "source")

    @property
    def tests_dir(self) -> Path:
        return self.ws.root / self.connector.tests_dir

    def classes(self) -> dict[str, tuple[str, ast.ClassDef]]:
        """Every top-level class of the source's files: name -> (file, class)."""
        out: dict[str, tuple[str, ast.ClassDef]] = {}
        for rel, f in self.files.items():
            for name, node in top_classes(f.tree).items():
                out[name] = (rel, node)
        return out

    def _extending(self, base: str) -> tuple[str, ast.ClassDef] | None:
        classes = self.classes()
        local = {n: c for n, (_, c) in classes.items()}
        for rel, node in classes.values():
            if extends(node, base, local):
                return rel, node
        return None

    @property
    def source_class(self) -> tuple[str, ast.ClassDef] | None:
        return self._extending("AbstractSource")

    @property
    def config_class(self) -> tuple[str, ast.ClassDef] | None:
        return self._extending("SourceConfig")

    def method(self, name: str):
        found = self.source_class
        if found is None:
            return None
        local = {n: c for n, (_, c) in self.classes().items()}
        return method(found[1], name, local)

    def methods(self) -> list[ast.FunctionDef]:
        found = self.source_class
        if found is None:
            return []
        return [s for s in found[1].body if isinstance(s, ast.FunctionDef)]


def _needs_source(code: SourceCode, check: Check) -> Finding | None:
    if not code.files:
        return check.skip(f"{code.connector.dir}/src/ holds no Python file (see src.layout).", SRC_LAYOUT.id)
    if any(f.tree is None for f in code.files.values()):
        return check.skip("A file of the source does not parse (see src.syntax).", SRC_SYNTAX.id)
    if code.source_class is None:
        return check.skip("No class extends AbstractSource (see src.source_base).", SRC_SOURCE_BASE.id)
    return None


SRC_LAYOUT = Check(
    "src.layout",
    GROUP,
    "The source lives at `bizon/connectors/sources/<name>/src/*.py`, where bizon discovers it.",
    "bizon finds sources by that folder (no registration); the folder's name is the source's name.",
    "render_source writes it there; move the files under `bizon/connectors/sources/<name>/src/`.",
    limits="An `__init__.py` is not required (bizon imports src/*.py without one; the guide says otherwise).",
    kind="source",
)


@static(SRC_LAYOUT)
def src_layout(code: SourceCode) -> Finding:
    if code.files:
        return SRC_LAYOUT.passed(f"{len(code.files)} file(s) in {code.connector.dir}/src/")
    return SRC_LAYOUT.fail(f"{code.connector.dir}/src/ holds no Python file.")


SRC_SYNTAX = Check(
    "src.syntax",
    GROUP,
    "The source's Python files parse.",
    "A file with a SyntaxError vanishes from `bizon source list` without a word on stdout.",
    "Fix the syntax error at the reported line.",
    origin="facts",
    kind="source",
)


@static(SRC_SYNTAX)
def src_syntax(code: SourceCode) -> Finding:
    if not code.files:
        return SRC_SYNTAX.skip("No file to parse (see src.layout).", SRC_LAYOUT.id)
    for rel, f in code.files.items():
        if f.error is not None:
            return SRC_SYNTAX.fail(f"{rel} does not parse: {f.error.msg}.", file=rel, line=f.error.lineno)
    return SRC_SYNTAX.passed()


SRC_CONFIG_BASE = Check(
    "src.config_base",
    GROUP,
    "A config class extends `SourceConfig`.",
    "bizon validates the YAML's `source:` section with it (get_config_class).",
    "Define `class <Name>SourceConfig(SourceConfig)` with the API's fields.",
    kind="source",
)


@static(SRC_CONFIG_BASE)
def src_config_base(code: SourceCode) -> Finding:
    if not code.files or any(f.tree is None for f in code.files.values()):
        return SRC_CONFIG_BASE.skip("Nothing parsed to read (see src.layout, src.syntax).", SRC_SYNTAX.id)
    found = code.config_class
    if found is None:
        return SRC_CONFIG_BASE.fail("No class of the source extends SourceConfig.")
    return SRC_CONFIG_BASE.passed(f"{found[1].name} in {found[0]}")


SRC_SOURCE_BASE = Check(
    "src.source_base",
    GROUP,
    "A source class extends `AbstractSource`.",
    "bizon's discovery keeps only subclasses of AbstractSource that define streams().",
    "Define `class <Name>Source(AbstractSource)`.",
    kind="source",
)


@static(SRC_SOURCE_BASE)
def src_source_base(code: SourceCode) -> Finding:
    if not code.files or any(f.tree is None for f in code.files.values()):
        return SRC_SOURCE_BASE.skip("Nothing parsed to read (see src.layout, src.syntax).", SRC_SYNTAX.id)
    found = code.source_class
    if found is None:
        return SRC_SOURCE_BASE.fail("No class of the source extends AbstractSource.")
    return SRC_SOURCE_BASE.passed(f"{found[1].name} in {found[0]}")


SRC_METHODS = Check(
    "src.methods",
    GROUP,
    "The source class defines streams(), get_config_class(), get_authenticator(), check_connection(), "
    "get_total_records_count() and get().",
    "They are AbstractSource's abstract methods: one missing and bizon lists the source as NOT AVAILABLE.",
    "Add the missing methods (see the guide's Step 2 template).",
    kind="source",
)


@static(SRC_METHODS)
def src_methods(code: SourceCode) -> Finding:
    if skip := _needs_source(code, SRC_METHODS):
        return skip
    missing = [m for m in REQUIRED_METHODS if code.method(m) is None]
    if missing:
        rel, node = code.source_class or ("", None)
        return SRC_METHODS.fail(
            f"{node.name if node else 'The source'} does not define {', '.join(missing)}.",
            file=rel,
            line=node.lineno if node else None,
        )
    return SRC_METHODS.passed()


def _names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} | {
        n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)
    }


def _get_methods(code: SourceCode) -> list[ast.FunctionDef]:
    """get(), get_records_after() and the helpers of the source class they may delegate to (every method)."""
    return code.methods()


SRC_FIRST_PAGE = Check(
    "src.first_page",
    GROUP,
    "get() tells the first page by `not pagination`, never `pagination is None`.",
    "bizon's thread runner passes `{}` on the first call, not None: an `is None` test takes the next-page branch "
    "and the run dies before its first request.",
    "Write `if not pagination:` for the first page.",
    origin="facts",
    kind="source",
)


@static(SRC_FIRST_PAGE)
def src_first_page(code: SourceCode) -> Finding:
    if skip := _needs_source(code, SRC_FIRST_PAGE):
        return skip
    rel = code.source_class[0] if code.source_class else None
    for fn in _get_methods(code):
        for node in ast.walk(fn):
            if (
                isinstance(node, ast.Compare)
                and isinstance(node.left, ast.Name)
                and node.left.id == "pagination"
                and any(isinstance(op, (ast.Is, ast.Eq)) for op in node.ops)
                and any(isinstance(c, ast.Constant) and c.value is None for c in node.comparators)
            ):
                return SRC_FIRST_PAGE.fail(f"{fn.name}() compares pagination with None.", file=rel, line=node.lineno)
    return SRC_FIRST_PAGE.passed()


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _calls(fn: ast.AST, callee: str) -> list[ast.Call]:
    return [
        n
        for n in ast.walk(fn)
        if isinstance(n, ast.Call)
        and (getattr(n.func, "id", None) == callee or getattr(n.func, "attr", None) == callee)
    ]


SRC_PAGINATION_DICT = Check(
    "src.pagination_dict",
    GROUP,
    "Every SourceIteration gets a dict as next_pagination (`{}` at the end), never None.",
    "The guide's Step 4: pagination ends with `{}`; `None` fails SourceIteration's validation and the run.",
    "End with `next_pagination={}`.",
    limits="Reads the literal arguments only; that pages really end is pull.pagination_ends's.",
    kind="source",
)


@static(SRC_PAGINATION_DICT)
def src_pagination_dict(code: SourceCode) -> Finding:
    if skip := _needs_source(code, SRC_PAGINATION_DICT):
        return skip
    rel = code.source_class[0] if code.source_class else None
    for fn in _get_methods(code):
        for call in _calls(fn, "SourceIteration"):
            value = _keyword(call, "next_pagination")
            branches = [value.body, value.orelse] if isinstance(value, ast.IfExp) else [value]
            if any(isinstance(b, ast.Constant) and b.value is None for b in branches):
                return SRC_PAGINATION_DICT.fail("SourceIteration(next_pagination=None).", file=rel, line=call.lineno)
    return SRC_PAGINATION_DICT.passed()


SRC_DATA_DICT = Check(
    "src.data_dict",
    GROUP,
    "SourceRecord's `data` is the record as a dict, not a JSON string.",
    "The guide's Step 4: full records as dict; a string fails SourceRecord's validation.",
    "Pass the parsed record itself: `SourceRecord(id=str(row['id']), data=row)`.",
    limits="Reads the literal arguments only; that `data` is the full record is pull.full_records's.",
    kind="source",
)


@static(SRC_DATA_DICT)
def src_data_dict(code: SourceCode) -> Finding:
    if skip := _needs_source(code, SRC_DATA_DICT):
        return skip
    rel = code.source_class[0] if code.source_class else None
    for fn in _get_methods(code):
        for call in _calls(fn, "SourceRecord"):
            value = _keyword(call, "data")
            dumped = isinstance(value, ast.Call) and getattr(value.func, "attr", getattr(value.func, "id", "")) in (
                "dumps",
                "str",
            )
            if dumped or (isinstance(value, ast.Constant) and isinstance(value.value, str)):
                return SRC_DATA_DICT.fail("SourceRecord(data=...) is given a string.", file=rel, line=call.lineno)
    return SRC_DATA_DICT.passed()


def _catches_http(handler: ast.ExceptHandler) -> bool:
    if handler.type is None:
        return True
    kinds = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return any((getattr(k, "id", None) or getattr(k, "attr", None)) in HTTP_CATCHING for k in kinds)


SRC_ERRORS_RAISED = Check(
    "src.errors_raised",
    GROUP,
    "No `except` in the source class swallows an HTTP error (catches it without raising), but in "
    "check_connection() and get_total_records_count(), which answer failures instead.",
    "The guide's Step 4: errors handled. A swallowed 500 becomes an empty last page: bizon ends the run green "
    "with records missing.",
    "Let the error raise (retries are the session's job), or re-raise after logging.",
    limits="Reads the source class's own methods; a helper outside it is judged by the contract's failing page.",
    kind="source",
)


@static(SRC_ERRORS_RAISED)
def src_errors_raised(code: SourceCode) -> Finding:
    if skip := _needs_source(code, SRC_ERRORS_RAISED):
        return skip
    rel = code.source_class[0] if code.source_class else None
    for fn in code.methods():
        if fn.name in ANSWERS_INSTEAD:
            continue
        for node in ast.walk(fn):
            if isinstance(node, ast.ExceptHandler) and _catches_http(node):
                if not any(isinstance(n, ast.Raise) for s in node.body for n in ast.walk(s)):
                    return SRC_ERRORS_RAISED.fail(
                        f"{fn.name}() catches an HTTP error and does not raise it again.",
                        file=rel,
                        line=node.lineno,
                    )
    return SRC_ERRORS_RAISED.passed()


SRC_RETRIES_HTTP = Check(
    "src.retries_http",
    GROUP,
    "A retry adapter the source mounts is mounted on `http://` as well as `https://`, and get_session() is not "
    "replaced without bizon's own session.",
    "bizon's session mounts its retries on https:// only, and a plain requests.Session() (the guide's template) "
    "drops its raise-for-status hook: a local or http API then gets no retry, and an error body is read as a page.",
    "Keep bizon's session and mount one Retry(status_forcelist=..., respect_retry_after_header=True) adapter on "
    "both `http://` and `https://` of self.session in __init__.",
    limits="Reads mount() calls; whether a 429 and a 503 are really retried is pull.retry_429's and "
    "pull.retry_5xx's (and api.outage's: one that outlasts the retries).",
    origin="facts",
    kind="source",
)


@static(SRC_RETRIES_HTTP)
def src_retries_http(code: SourceCode) -> Finding:
    if skip := _needs_source(code, SRC_RETRIES_HTTP):
        return skip
    rel = code.source_class[0] if code.source_class else None
    schemes: dict[str, int] = {}
    for f in code.files.values():
        for call in _calls(f.tree, "mount") if f.tree else []:
            if call.args and isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str):
                schemes.setdefault(call.args[0].value, call.lineno)
    if "https://" in schemes and "http://" not in schemes:
        return SRC_RETRIES_HTTP.fail("Retries are mounted on https:// only.", file=rel, line=schemes["https://"])
    session = code.method("get_session")
    if session is not None:
        calls_super = any(
            isinstance(n, ast.Attribute) and n.attr == "get_session" for n in ast.walk(session) if n is not session
        )
        if not calls_super:
            return SRC_RETRIES_HTTP.fail(
                "get_session() returns a new session: bizon's raise-for-status hook is gone.",
                file=rel,
                line=session.lineno,
            )
    return SRC_RETRIES_HTTP.passed()


HTTP_VERBS = ("get", "post", "put", "patch", "delete", "request", "head")


SRC_TIMEOUT = Check(
    "src.timeout",
    GROUP,
    "Every request the source makes through a session or requests passes `timeout=`.",
    "Neither bizon's session (but 0.6.4's opt-in `http:` block) nor requests has a default timeout: an API that "
    "stops answering hangs the run for ever.",
    "Pass `timeout=` on every call (the rendered source uses TIMEOUT_SECONDS).",
    limits="Reads calls of .get/.post/.put/.patch/.delete/.request/.head on a session or requests; a timeout "
    "set by a session subclass or an adapter is not seen.",
    origin="facts",
    kind="source",
)


@static(SRC_TIMEOUT)
def src_timeout(code: SourceCode) -> Finding:
    if skip := _needs_source(code, SRC_TIMEOUT):
        return skip
    for rel, f in code.files.items():
        for node in ast.walk(f.tree) if f.tree else []:
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            owner = node.func.value
            name = owner.attr if isinstance(owner, ast.Attribute) else owner.id if isinstance(owner, ast.Name) else ""
            if node.func.attr in HTTP_VERBS and name in ("session", "requests", "_session", "http"):
                if not any(k.arg == "timeout" or k.arg is None for k in node.keywords):
                    return SRC_TIMEOUT.fail(
                        f"{name}.{node.func.attr}(...) has no timeout: a silent API hangs the run.",
                        file=rel,
                        line=node.lineno,
                    )
    return SRC_TIMEOUT.passed()


def _secretish(node: ast.AST) -> str | None:
    """What in a logged expression can hold a secret: a name that says so, or the whole config."""
    whole = node.value if isinstance(node, ast.FormattedValue) else node
    if (isinstance(whole, ast.Attribute) and whole.attr == "config") or (
        isinstance(whole, ast.Name) and whole.id == "config"
    ):
        return "the whole config"
    for n in ast.walk(node):
        if isinstance(n, ast.FormattedValue) and n is not node:
            if inner := _secretish(n):
                return inner
        name = n.attr if isinstance(n, ast.Attribute) else n.id if isinstance(n, ast.Name) else None
        if name and any(w in name.lower() for w in SECRET_WORDS):
            return name
    return None


SRC_SECRETS_NOT_LOGGED = Check(
    "src.secrets_not_logged",
    GROUP,
    "No log or print call of the source formats its authentication, a token, a password or a secret.",
    "bizon itself logs no credential; a source that does puts it in every run's log.",
    "Log the request's path and status, never the config's authentication or headers.",
    limits="Reads names in log calls; pull.secrets_not_logged runs the source with a sentinel secret and reads "
    "its output.",
    origin="facts",
    kind="source",
)


@static(SRC_SECRETS_NOT_LOGGED)
def src_secrets_not_logged(code: SourceCode) -> Finding:
    if not code.files or any(f.tree is None for f in code.files.values()):
        return SRC_SECRETS_NOT_LOGGED.skip("Nothing parsed to read (see src.syntax).", SRC_SYNTAX.id)
    for rel, f in code.files.items():
        for node in ast.walk(f.tree) if f.tree else []:
            if isinstance(node, ast.Call) and (is_log_call(node) or getattr(node.func, "id", None) == "print"):
                for arg in [*node.args, *(k.value for k in node.keywords)]:
                    leak = _secretish(arg)
                    if leak:
                        return SRC_SECRETS_NOT_LOGGED.fail(f"A log call formats `{leak}`.", file=rel, line=node.lineno)
    return SRC_SECRETS_NOT_LOGGED.passed()


SRC_TESTS_PRESENT = Check(
    "src.tests_present",
    GROUP,
    "The source has tests: `tests/connectors/sources/<name>/test_*.py`.",
    "The guide's Step 4: tests. bizon keeps each connector's tests there.",
    "render_source writes one; add cases that serve pages with requests-mock or a local server.",
    limits="Judged: a test file imports the source's own modules (a placeholder `assert True` tests nothing of it); "
    "not what the tests assert. That they pass is tests.source's (full).",
    kind="source",
)


@static(SRC_TESTS_PRESENT)
def src_tests_present(code: SourceCode) -> Finding:
    folder = code.tests_dir
    files = sorted(folder.rglob("test_*.py")) if folder.is_dir() else []
    if not files:
        return SRC_TESTS_PRESENT.fail(f"No test_*.py in {code.connector.tests_dir}/.")
    if any(_imports(path, code.connector.src_module) for path in files):
        return SRC_TESTS_PRESENT.passed()
    return SRC_TESTS_PRESENT.fail(
        f"No test in {code.connector.tests_dir}/ imports the source ({code.connector.src_module}): tests that never "
        "build it prove nothing of it.",
        hint="Import the source's classes in the tests and drive get() against a local server, as render_source's "
        "tests do.",
    )


def _imports(path: Path, package: str) -> bool:
    """Whether a Python file imports `package` or one of its modules (a file that does not parse: no)."""
    try:
        tree = pyast.parse(read_regular(path).decode(errors="replace"))
    except (OSError, SyntaxError, ValueError):
        return False
    for node in ast.walk(tree):
        names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
        names += [a.name for a in node.names] if isinstance(node, ast.Import) else []
        if any(n == package or n.startswith(package + ".") for n in names):
            return True
    return False


__all__ = ["SourceCode", "body_without_docstring"]
