"""A connector's client libraries: declared in its spec; for a destination, recorded the way bizon records its own
destinations' (an extra in the tree's pyproject.toml and the import guard of tests/cli/test_cli_imports.py); installed
into the workspace's interpreter (a source's straight from its spec).

The two record edits are pure text-in, text-out functions; apply_registrations and remove_destination write
them with the three registrations, all or nothing.
"""

import re
import shlex
import tomllib
from collections.abc import Callable, Sequence
from typing import cast

from bizon_forge import interpreter
from bizon_forge.findings import Finding, Refused, Result, failed
from bizon_forge.interpreter import distribution
from bizon_forge.spec import KINDS, destination, source
from bizon_forge.spec.common import Kind
from bizon_forge.workspace import read_regular

PYPROJECT = "pyproject.toml"
IMPORT_GUARD = "tests/cli/test_cli_imports.py"  # its OPTIONAL_DEPENDENCIES lists modules behind an extra
GUARD_LIST = "OPTIONAL_DEPENDENCIES"

# SQLAlchemy URL scheme -> the driver distribution it loads (a bare dialect means SQLAlchemy's default driver).
SQL_DRIVERS = {
    "postgresql": "psycopg2-binary>=2.9.9",
    "postgresql+psycopg2": "psycopg2-binary>=2.9.9",
    "postgresql+psycopg": "psycopg[binary]>=3.1",
    "postgresql+pg8000": "pg8000>=1.30",
    "postgresql+asyncpg": None,  # async drivers do not work in bizon's synchronous writers
    "mysql": "mysqlclient>=2.2",
    "mysql+mysqldb": "mysqlclient>=2.2",
    "mysql+pymysql": "pymysql>=1.1",
    "mariadb+pymysql": "pymysql>=1.1",
    "mysql+mysqlconnector": "mysql-connector-python>=8.3",
    "mariadb+mariadbconnector": "mariadb>=1.1",
    "duckdb": "duckdb-engine>=0.13",
    "mssql+pyodbc": "pyodbc>=5.0",
    "mssql+pymssql": "pymssql>=2.2",
    "oracle+oracledb": "oracledb>=2.0",
    "snowflake": "snowflake-sqlalchemy>=1.5",
    "bigquery": "sqlalchemy-bigquery>=1.11.0",
    "sqlite": "",  # in Python's standard library
}

# Distribution -> the module it is imported as, where the two differ beyond '-' -> '_'.
MODULES = {
    "psycopg2-binary": "psycopg2",
    "mysqlclient": "MySQLdb",
    "mysql-connector-python": "mysql.connector",
    "pymysql": "pymysql",
    "snowflake-sqlalchemy": "snowflake.sqlalchemy",
    "kafka-python": "kafka",
    "confluent-kafka": "confluent_kafka",
    "pyyaml": "yaml",
    "beautifulsoup4": "bs4",
    "elasticsearch": "elasticsearch",
    "opensearch-py": "opensearchpy",
    "google-cloud-bigquery": "google.cloud.bigquery",
    "google-cloud-storage": "google.cloud.storage",
    "google-cloud-pubsub": "google.cloud.pubsub",
    "azure-storage-blob": "azure.storage.blob",
    "clickhouse-connect": "clickhouse_connect",
    "clickhouse-driver": "clickhouse_driver",
}

REQUIREMENT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9._, -]+\])?\s*([<>=!~]=?[^;@\s,]+\s*,?\s*)*")


def module(requirement: str) -> str:
    """The module a requirement is imported as (known drivers by name, else the name with '-' -> '_')."""
    dist = distribution(requirement)
    return MODULES.get(dist, dist.replace("-", "_"))


def _scheme(entry: str) -> str | None:
    """The SQLAlchemy URL scheme an entry names ('mysql+pymysql://u@h/db' or 'mysql+pymysql://'), or None."""
    found = re.fullmatch(r"\s*([a-z][a-z0-9]*(\+[a-z0-9_]+)?)://.*", entry, re.S)
    return found.group(1) if found else None


def resolve(entries: list[str], recipe: str) -> tuple[list[str], list[Finding]]:
    """The spec's dependencies as PEP 508 requirements (a SQLAlchemy URL or scheme names its driver under the
    sql recipe), and findings for what is not one."""
    found: list[Finding] = []
    out: list[str] = []
    for i, raw in enumerate(entries):
        entry = raw.strip()
        where = f"dependencies[{i}] ({entry[:60]!r})"
        scheme = _scheme(entry)
        if scheme is not None:
            if recipe != "sql":
                found.append(
                    failed(
                        "spec.dependency.url",
                        f"{where} is a URL; only the sql recipe infers a driver from one.",
                        "Give a requirement such as 'redis>=5'.",
                    )
                )
                continue
            driver = SQL_DRIVERS.get(scheme)
            if driver is None:
                async_hint = " (async drivers do not work in bizon's writers)" if scheme in SQL_DRIVERS else ""
                found.append(
                    failed(
                        "spec.dependency.unknown_scheme",
                        f"{where}: no known driver for the SQLAlchemy scheme {scheme!r}{async_hint}.",
                        "Name the driver's distribution instead (e.g. 'pymysql>=1.1'); known schemes: "
                        + ", ".join(s for s, d in SQL_DRIVERS.items() if d is not None),
                    )
                )
                continue
            entry = driver
            if not entry:
                continue  # sqlite: nothing to install
        if not REQUIREMENT_RE.fullmatch(entry) or len(entry) > 200:
            found.append(
                failed(
                    "spec.dependency.invalid",
                    f"{where} is not a requirement from the package index.",
                    "Write NAME[extras]SPECIFIERS, e.g. 'redis>=5' or 'psycopg[binary]>=3.1'; "
                    "no URLs, paths or options.",
                )
            )
            continue
        if distribution(entry) not in {distribution(r) for r in out}:
            out.append(entry)
    return out, found


# -- the extra in pyproject.toml -------------------------------------------------------------------


class RecordUnknown(Exception):
    """The file's structure is not the one these edits know; nothing is changed."""


def _extras(text: str) -> dict:
    try:
        extras = tomllib.loads(text).get("project", {}).get("optional-dependencies", {})
    except ValueError as error:
        raise RecordUnknown(f"{PYPROJECT} does not parse: {error}") from None
    return extras if isinstance(extras, dict) else {}


def set_extra(text: str, name: str, requirements: list[str]) -> str:
    """pyproject text with the extra `name` holding exactly `requirements` on one line (codemods.set_extra, by
    tomlkit); with no requirements, the extra taken away. Adding and then taking away gives back the same bytes."""
    from bizon_forge import codemods  # tomlkit and libcst: off the server's start-up path

    current = _extras(text).get(name)
    if current == requirements or (current is None and not requirements):
        return text
    try:
        new = codemods.set_extra(text, name, requirements)
    except ValueError as error:
        raise RecordUnknown(f"could not record the extra {name!r} in {PYPROJECT}: {error}") from None
    if _extras(new).get(name) != (requirements or None):
        raise RecordUnknown(f"could not record the extra {name!r} in {PYPROJECT} exactly.")
    return new


def extra_of(text: str, name: str) -> list[str] | None:
    try:
        return _extras(text).get(name)
    except RecordUnknown:
        return None


def modules_of_other_extras(text: str, name: str) -> set[str]:
    """Modules that other extras of the tree provide: the import guard keeps listing them."""
    return {module(r) for key, reqs in _extras(text).items() if key != name for r in reqs if isinstance(r, str)}


# -- the import guard in tests/cli/test_cli_imports.py ---------------------------------------------


def _guard_list(tree):
    """The list node of the module-level `OPTIONAL_DEPENDENCIES = [...]`, or None."""
    import libcst as cst

    for stmt in tree.body:
        for small in stmt.body if isinstance(stmt, cst.SimpleStatementLine) else ():
            if isinstance(small, cst.Assign) and isinstance(small.value, cst.List):
                if any(isinstance(t.target, cst.Name) and t.target.value == GUARD_LIST for t in small.targets):
                    return small.value
    return None


def _listed(node) -> list[str]:
    import libcst as cst

    # str literals: the guard lists module names, never bytes
    return [cast(str, e.value.evaluated_value) for e in node.elements if isinstance(e.value, cst.SimpleString)]


def _without(elements: list, remove: Sequence[str]) -> list:
    """The guard list's elements without the `remove` entries (the new last entry takes a removed last one's comma)."""
    import libcst as cst

    for gone in remove:
        for i, e in enumerate(elements):
            if isinstance(e.value, cst.SimpleString) and e.value.evaluated_value == gone:
                if i == len(elements) - 1 and i > 0:
                    elements[i - 1] = elements[i - 1].with_changes(comma=e.comma)
                del elements[i]
                break
    return elements


def set_guard(text: str, add: list[str], remove: Sequence[str] = ()) -> str:
    """The import guard's text with `add` listed (after the last entry, in its style) and `remove` taken away."""
    import libcst as cst

    try:
        tree = cst.parse_module(text)
    except cst.ParserSyntaxError as error:
        raise RecordUnknown(f"{IMPORT_GUARD} does not parse: {error}") from None
    node = _guard_list(tree)
    if node is None:
        raise RecordUnknown(f"{IMPORT_GUARD} has no `{GUARD_LIST} = [...]` list.")
    have = _listed(node)
    elements = _without(list(node.elements), remove)
    for new in add:
        if new in have and new not in remove:
            continue
        value = cst.SimpleString(f'"{new}"')
        if not elements:
            elements.append(cst.Element(value=value))
            continue
        last = elements[-1]
        between = elements[-2].comma if len(elements) > 1 else cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))
        elements[-1] = last.with_changes(comma=between)
        elements.append(cst.Element(value=value, comma=last.comma))
    if elements == list(node.elements):
        return text
    new_tree = tree.deep_replace(node, node.with_changes(elements=elements))
    return new_tree.code


def guard_modules(text: str) -> list[str] | None:
    import libcst as cst

    try:
        node = _guard_list(cst.parse_module(text))
    except cst.ParserSyntaxError:
        return None
    return _listed(node) if node is not None else None


# -- installing ------------------------------------------------------------------------------------


class InstallResult(Result):
    python: str | None = None
    installed: dict[str, str] = {}  # requirement -> version now installed
    command: str | None = None  # what ran, runnable as printed


def spec_kind(ws, name: str, kind: str | None = None) -> Kind:
    """Whose spec `name` is: `kind` when given; else the destination's when one is stored (as before sources had
    dependencies), else the source's when one is; else the destination's, whose load says nothing is stored."""
    if kind is not None:
        if kind not in KINDS:
            raise Refused(
                failed(
                    "install.bad_kind",
                    f"kind {str(kind)[:40]!r} is neither 'destination' nor 'source'.",
                    "Omit it; pass kind='source' only when a destination has the same name.",
                )
            )
        return KINDS[kind]
    if not destination.KIND.spec_path(ws, name).exists() and source.KIND.spec_path(ws, name).exists():
        return source.KIND
    return destination.KIND


def install_dependencies(
    ws, name: str, progress: Callable[[str], None] | None = None, kind: str | None = None
) -> InstallResult:
    """Install the client libraries a destination's or a source's spec declares into the workspace's interpreter
    (a no-op for those it has)."""
    k = spec_kind(ws, name, kind)
    s = k.load(ws, name)
    validate = f"validate_{k.name}(name={name!r})"
    state = interpreter.require(ws, s.dependencies)
    if k is destination.KIND:
        _require_recorded(ws, name, s.dependencies)  # a source has no extra in the tree: its spec is the record
    if not s.dependencies:
        return InstallResult(
            python=state.python,
            findings=[Finding(id="install.nothing", status="pass", message=f"{name} declares no client libraries.")],
            next=validate,
        )
    missing = state.missing
    command = interpreter.install_command(state.python, s.dependencies)
    shown = shlex.join(command)
    if missing:
        try:
            interpreter.run_installer(command, progress, cwd=ws.root)
        except interpreter.InstallFailed as error:
            return InstallResult(
                ok=False,
                python=state.python,
                command=shown,
                findings=[interpreter.install_failure(error, ", ".join(missing))],
            )
        state = interpreter.probe(ws, s.dependencies)
    still = state.missing
    if still:
        finding = failed(
            "install.not_importable",
            f"After installing, {', '.join(still)} is still not found by {state.python}.",
            f"Run {shown} and read its output.",
        )
    else:
        done = "installed" if missing else "already installed"
        finding = Finding(
            id="install.done", status="pass", message=f"{', '.join(s.dependencies)} {done} in {state.python}."
        )
    return InstallResult(
        ok=not still,
        python=state.python,
        installed=state.libraries,
        command=shown,
        findings=[finding],
        next=validate if not still else None,
    )


def _require_recorded(ws, name: str, declared: list[str]) -> None:
    """Install what the tree records, or the tree and its interpreter part ways: record first."""
    records = read_records(ws)
    recorded = extra_of(records[PYPROJECT], name) if PYPROJECT in records else declared
    if declared and recorded != declared:
        raise Refused(
            failed(
                "install.not_recorded",
                f"The spec of {name} declares {', '.join(declared)}, but the tree's extra {name!r} records "
                f"{', '.join(recorded) if recorded else 'nothing'}.",
                f"apply_registrations(name={name!r}) records it; then call install_dependencies again.",
            )
        )


def sql_scheme(requirements: list[str]) -> str | None:
    """The SQLAlchemy scheme whose driver the requirements name (the first listed for it), or None."""
    have = {distribution(r) for r in requirements}
    return next((s for s, d in SQL_DRIVERS.items() if d and distribution(d) in have), None)


def sql_driver_note(s, requirements: list[str]) -> list[Finding]:
    """Under the sql recipe with no driver declared, say that only SQLite works until one is."""
    if s.recipe != "sql" or requirements:
        return []
    return [
        Finding(
            id="spec.dependency.no_driver",
            status="pass",
            message="No database driver declared: the sql recipe then reaches SQLite only (Python has its driver).",
            hint="For another database pass its URL or scheme in dependencies, e.g. ['mysql+pymysql://'] "
            "(MySQL, MariaDB: pymysql) or ['postgresql://'] (psycopg2); it is recorded as the tree's extra "
            "and installed by install_dependencies.",
        )
    ]


# -- the two records, planned together --------------------------------------------------------------


def read_records(ws) -> dict[str, str]:
    """The texts of pyproject.toml and the import guard, for those the tree has."""
    return {rel: read_regular(ws.path(rel)).decode() for rel in (PYPROJECT, IMPORT_GUARD) if ws.path(rel).is_file()}


def plan_records(texts: dict[str, str], name: str, requirements: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    """(new texts, {extra | import_guard: added | updated | already_present | removed}) so that the tree's extra
    `name` holds exactly `requirements` and the import guard lists their modules. A module stays listed while
    another extra still provides it. Raises RecordUnknown for a file whose structure these edits do not know."""
    texts = dict(texts)
    status: dict[str, str] = {}
    pyproject = texts.get(PYPROJECT)
    before = extra_of(pyproject, name) if pyproject is not None else None
    if pyproject is None or (before is None and not requirements):
        return texts, status
    texts[PYPROJECT] = set_extra(pyproject, name, requirements)
    status["extra"] = _status(before, requirements)
    if IMPORT_GUARD in texts:
        others = modules_of_other_extras(texts[PYPROJECT], name)
        want = list(dict.fromkeys(module(r) for r in requirements))
        dropped = [m for m in dict.fromkeys(module(r) for r in before or []) if m not in want and m not in others]
        listed = guard_modules(texts[IMPORT_GUARD]) or []
        texts[IMPORT_GUARD] = set_guard(texts[IMPORT_GUARD], want, dropped)
        status["import_guard"] = _status([m for m in listed if m in want or m in dropped] or None, want)
    return texts, status


def _status(before: list | None, after: list) -> str:
    if before == after or (before and after and set(before) == set(after)):
        return "already_present"
    return "removed" if not after else "added" if not before else "updated"
