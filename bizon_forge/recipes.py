"""Recipes: which templates render a destination, and the fields each family of targets needs.

`custom` renders the skeleton the agent fills in. `sql`, `file` and `http` render a destination that
already works (sync modes, batching, retries, unnest) and that the agent only adapts.
"""

import re
from dataclasses import dataclass, field

from bizon_forge.connector import Connector
from bizon_forge.findings import Finding, failed, warned
from bizon_forge.spec.destination import RECIPES as RECIPES_NAMED
from bizon_forge.spec.destination import DestinationSpec, ErrorHandling, FieldSpec

STATUS_RE = re.compile(r"[1-5](\d\d|xx)", re.IGNORECASE)
# HTTP statuses that mean the request itself is wrong (bad, unauthorised, forbidden, absent, unprocessable).
PERMANENT = frozenset({400, 401, 403, 404, 405, 410, 422})


@dataclass(frozen=True)
class Recipe:
    name: str
    destination_template: str
    fields: tuple[FieldSpec, ...] = ()  # added to a spec that does not declare them
    test_template: str | None = None
    sample: dict = field(default_factory=dict)  # example-YAML values that make a run work offline
    # check-YAML values: the scratch target the validator makes (see validators/scratch.py)
    check: dict = field(default_factory=dict)
    write_method: str = "batch_insert"
    transient: tuple[str, ...] = ()  # what error_handling.transient becomes when the agent lists nothing
    # A transient name the agent may list -> the exception classes the rendered code retries on.
    exceptions: dict[str, tuple[str, ...]] = field(default_factory=dict)
    statuses: bool = False  # whether HTTP statuses ('429', '5xx') mean something to this recipe
    writes_to: str = ""  # one sentence: where the rendered destination puts records
    ignores: str = ""  # why the rendered code does not read a field the recipe did not declare
    # Its target has no atomic replace: the spec must say how a full refresh replaces (spec.FullRefresh).
    asks_full_refresh: bool = False

    def templates(self, name: str) -> list[tuple[str, str]]:
        c = Connector(name)
        out = [(c.config_rel, "config.py.j2"), (c.code_rel, self.destination_template)]
        if self.test_template:
            out.append((c.test_rel, self.test_template))
        return out

    def example_value(self, f: FieldSpec, fallback):
        """The example YAML's value: the recipe's sample for a field it added, else the agent's own."""
        return self.sample[f.name] if f.name in self.sample and f in self.fields else fallback

    def check_value(self, f: FieldSpec, fallback):
        """The check YAML's value: the recipe's scratch target for a field it reads (even one the agent declared
        with its real target as default), else the example's."""
        return self.check.get(f.name, fallback)

    def retry_plan(self, transient: list[str]) -> dict:
        """How the rendered code retries: exception classes, HTTP statuses, and what it cannot use."""
        by_lower = {k.lower(): v for k, v in self.exceptions.items()}
        plan: dict = {"exceptions": [], "statuses": [], "status_classes": [], "ignored": []}
        for token in transient:
            t = token.strip()
            if self.statuses and STATUS_RE.fullmatch(t):
                if t[1:].lower() == "xx":
                    plan["status_classes"].append(int(t[0]))
                else:
                    plan["statuses"].append(int(t))
            elif t.lower() in by_lower:
                plan["exceptions"] += [c for c in by_lower[t.lower()] if c not in plan["exceptions"]]
            else:
                plan["ignored"].append(t)
        plan["statuses"] = sorted(set(plan["statuses"]))
        plan["status_classes"] = sorted(set(plan["status_classes"]))
        return plan


def _f(name, type="str", required=False, default=None, description="", secret=False) -> FieldSpec:
    return FieldSpec(name=name, type=type, required=required, default=default, description=description, secret=secret)


SQL = Recipe(
    "sql",
    "sql/destination.py.j2",
    fields=(
        _f(
            "url",
            required=True,
            secret=True,
            description=(
                "SQLAlchemy URL of the target database, e.g. postgresql+psycopg2://user:password@host/db, "
                "mysql+pymysql://user:password@host/db (MySQL, MariaDB), duckdb:///path.duckdb or "
                "sqlite:///path.db. Secret: it may hold a password."
            ),
        ),
        _f(
            "db_schema",
            description="Database schema of the table (on MySQL/MariaDB: a database); None uses the connection's.",
        ),
        _f(
            "lock_timeout_seconds",
            type="float",
            default=10.0,
            description="How long a statement waits for a lock another session holds before the run fails "
            "(PostgreSQL, MySQL, MariaDB; set for this destination's sessions only). A publication waiting on a "
            "reader's lock holds up every reader after it.",
        ),
    ),
    test_template="tests/sql.py.j2",
    # Relative to the directory bizon runs from; the destination creates the folder of a SQLite file.
    sample={"url": "sqlite:///output/bizon_records.db", "db_schema": None},
    # A short lock wait: data.unreliable_target holds a lock on the table a publication replaces.
    check={"url": "sqlite:///${env://BIZON_FORGE_SCRATCH}/check.db", "lock_timeout_seconds": 2.0},
    write_method="batch_insert",
    writes_to="the database of its `url` (one SQLAlchemy URL, table per destination_id)",
    ignores=(
        "the sql recipe connects with one SQLAlchemy URL, so host, port, user, password and database belong "
        "inside `url` (e.g. mysql+pymysql://user:password@host:3306/db); the table is named by destination_id"
    ),
    transient=("OperationalError",),
    exceptions={
        "OperationalError": ("exc.OperationalError",),
        "InterfaceError": ("exc.InterfaceError",),
        "DisconnectionError": ("exc.DisconnectionError",),
        "TimeoutError": ("exc.TimeoutError", "TimeoutError"),
        "ConnectionError": ("exc.DisconnectionError", "ConnectionError"),
    },
)

FILE = Recipe(
    "file",
    "file/destination.py.j2",
    fields=(
        _f("directory", default=".", description="Folder of the output files (created if missing)."),
        _f("format", default="jsonl", description="jsonl, csv or parquet; one file per destination_id."),
    ),
    test_template="tests/file.py.j2",
    sample={"directory": "output"},
    check={"directory": "${env://BIZON_FORGE_SCRATCH}/files"},
    write_method="file_upload",
    writes_to=(
        "files on the local disk of the machine that runs bizon (not S3, GCS or any object store: "
        "use recipe='custom' for those)"
    ),
    ignores="the file recipe reads only directory and format",
    exceptions={"OSError": ("OSError",), "TimeoutError": ("TimeoutError",)},
)

HTTP = Recipe(
    "http",
    "http/destination.py.j2",
    fields=(
        _f("endpoint", required=True, description="URL of the API; each path below is appended to it."),
        # Path templates (not spec fields: an agent declares a field of the same name with its own default, and
        # the example and check configs then carry the same template, the check config's endpoint the receiver).
        _f(
            "write_path",
            default="",
            description="Where each batch is POSTed: appended to endpoint, {destination_id} and {stream} filled "
            "in, e.g. '/ingest/{stream}'.",
        ),
        _f(
            "read_path",
            default="?destination_id={destination_id}",
            description="read_back()'s GET, appended to endpoint, e.g. '/records/{stream}'.",
        ),
        _f(
            "delete_path",
            default="?destination_id={destination_id}",
            description="The DELETE of what a destination_id holds, appended to endpoint (full_refresh=delete_first).",
        ),
        _f("auth_token", secret=True, description="Token sent in auth_header; None for an open endpoint."),
        _f("auth_header", default="Authorization", description="Header that carries the token."),
        _f(
            "auth_scheme",
            default="Bearer",
            description="Prefix of the header value; '' sends the bare token.",
        ),
        _f("batch_size", type="int", default=500, description="Records per POST."),
        _f("timeout_seconds", type="float", default=30.0, description="Timeout of one POST."),
        _f(
            "staging_directory",
            # Not relative to the working folder: batches a failed finalize() left are posted by the next run, which
            # must find them whatever folder it runs from.
            default="~/.cache/bizon/staging",
            description="Where full_refresh and incremental syncs stage records until finalize() posts them; "
            "batches a failed finalize() left there are posted by the next run. Keep it on persistent storage.",
        ),
    ),
    test_template="tests/http.py.j2",
    # No sample endpoint: a made-up URL would look real and pass; `endpoint-value` is caught until the user's is in.
    sample={"auth_token": None},
    check={
        "endpoint": "env://BIZON_FORGE_RECEIVER_URL",
        "auth_token": None,
        "staging_directory": "${env://BIZON_FORGE_SCRATCH}/staging",
    },
    write_method="streaming",
    asks_full_refresh=True,
    writes_to="`endpoint`, as JSON POSTs to endpoint + write_path",
    ignores="the http recipe reads only its endpoint, path, auth and batching fields",
    transient=("429", "5xx", "ConnectionError", "Timeout"),
    exceptions={
        # An answer cut off mid-body is a dropped connection too (requests names it ChunkedEncodingError); every
        # POST carries its batch's Idempotency-Key, so sending it again is safe.
        "ConnectionError": ("requests.exceptions.ConnectionError", "requests.exceptions.ChunkedEncodingError"),
        "Timeout": ("requests.exceptions.Timeout",),
        "TimeoutError": ("requests.exceptions.Timeout",),
        "ReadTimeout": ("requests.exceptions.ReadTimeout",),
        "ConnectTimeout": ("requests.exceptions.ConnectTimeout",),
        "ChunkedEncodingError": ("requests.exceptions.ChunkedEncodingError",),
    },
    statuses=True,
)

CUSTOM = Recipe("custom", "custom/destination.py.j2", writes_to="whatever the agent's destination.py writes")
RECIPES = {r.name: r for r in (CUSTOM, SQL, FILE, HTTP)}
assert tuple(RECIPES) == RECIPES_NAMED, "spec.RecipeName and the recipes here must list the same names"


def get(name: str) -> Recipe:
    return RECIPES[name]


def _full_refresh(recipe: Recipe, s: DestinationSpec) -> list[Finding]:
    if recipe.asks_full_refresh and s.full_refresh is None:
        return [
            failed(
                "recipe.full_refresh_unchosen",
                f"The {recipe.name} recipe needs to know how a full refresh replaces what the endpoint holds: it "
                "has no atomic replace, and assuming one leaves every record twice on a receiver that ignores it.",
                "Pass full_refresh='replace_flag' if the endpoint drops what it holds for the destination_id when "
                "a POST says \"replace\": true, or 'delete_first' if it accepts a DELETE of them (delete_path) "
                "(posted after the DELETE). If it does neither, a full refresh cannot be made safe over it: use "
                "recipe='custom' and sync incrementally or by stream.",
            )
        ]
    if not recipe.asks_full_refresh and s.full_refresh is not None:
        how = "the agent's code decides" if recipe.name == "custom" else "it replaces atomically"
        return [
            warned(
                "recipe.full_refresh_ignored",
                f"full_refresh={s.full_refresh!r} is for the http recipe; the {recipe.name} recipe ignores it "
                f"({how}): the spec does not keep it.",
                "Leave full_refresh out.",
            )
        ]
    return []


def apply(s: DestinationSpec) -> tuple[DestinationSpec, list[Finding]]:
    """The spec with the recipe's fields and defaults merged in, and findings on what does not fit.

    A field the agent declared under a recipe field's name must keep that field's type (and secrecy):
    the rendered code reads it.
    """
    recipe = get(s.recipe)
    findings: list[Finding] = _full_refresh(recipe, s)
    if recipe.asks_full_refresh or s.full_refresh is None:
        updates: dict = {}
    else:
        updates = {"full_refresh": None}  # the spec says only what the rendered code does
    if recipe.name != "custom":  # the rendered code's own isolation: a swap, or (no atomic replace) in place
        updates["full_refresh_isolation"] = "in_place" if recipe.asks_full_refresh else "atomic"
    if recipe.name == "custom":
        updates.setdefault("write_method", s.write_method or recipe.write_method)
        return s.model_copy(update=updates), findings
    updates["fields"], added = _merged_fields(recipe, s.fields, findings)
    if s.write_method != recipe.write_method:
        updates["write_method"] = recipe.write_method  # the rendered code writes this way, whatever was asked
    if s.write_method not in (None, recipe.write_method):
        findings.append(
            warned(
                "recipe.write_method_changed",
                f"The {recipe.name} recipe writes by {recipe.write_method}, not {s.write_method}: the spec says "
                f"{recipe.write_method}.",
                f"To write by {s.write_method}, use recipe='custom' and write it yourself.",
            )
        )
    transient = s.error_handling.transient or list(recipe.transient)
    if transient != s.error_handling.transient:
        updates["error_handling"] = ErrorHandling(**{**s.error_handling.model_dump(), "transient": transient})
    findings += _retry_findings(recipe, transient)
    findings += _fields_findings(recipe, [f.name for f in s.fields], added)
    findings += _path_findings(updates["fields"]) if recipe.name == "http" else []
    findings.append(
        Finding(id="recipe.writes_to", status="pass", message=f"The {recipe.name} recipe writes to {recipe.writes_to}.")
    )
    return s.model_copy(update=updates), findings


def _merged_fields(recipe: Recipe, fields: list[FieldSpec], findings: list[Finding]) -> tuple[list, list[str]]:
    """The spec's fields plus the recipe's it lacks, and the names added; a declared recipe field of another type
    (or not secret where the recipe's is) is a finding appended to `findings`."""
    declared = {f.name: f for f in fields}
    merged, added = list(fields), []
    for need in recipe.fields:
        have = declared.get(need.name)
        if have is None:
            merged.append(need)
            added.append(need.name)
        elif have.type != need.type:
            findings.append(
                failed(
                    "recipe.field_conflict",
                    f"The {recipe.name} recipe reads {need.name!r} as a {need.type}, not a {have.type}.",
                    f"Declare {need.name!r} as type {need.type!r}, or leave it out and the recipe adds it.",
                )
            )
        elif need.secret and not have.secret:
            findings.append(
                failed(
                    "recipe.field_not_secret",
                    f"Field {need.name!r} must be secret in the {recipe.name} recipe: {need.description}",
                    f"Set secret=true on {need.name!r}, or leave it out and the recipe adds it.",
                )
            )
    return merged, added


HTTP_PATHS = ("write_path", "read_path", "delete_path")


def _path_findings(fields: list[FieldSpec]) -> list[Finding]:
    """The http recipe's path templates that name {stream} but not {destination_id}: every destination_id of a
    stream then shares one URL."""
    shared = [
        f.name
        for f in fields
        if f.name in HTTP_PATHS
        and isinstance(f.default, str)
        and "{stream}" in f.default
        and "{destination_id}" not in f.default
    ]
    if not shared:
        return []
    return [
        warned(
            "recipe.path_without_destination_id",
            f"{', '.join(shared)} name {{stream}} but not {{destination_id}}: every destination_id of one stream "
            "writes to (or reads) the same URL. bizon's stream runner routes records by destination_id, and the "
            "checks' own runs (the contract probe, the bizon runs, each on stream 'creatures') meet there.",
            "Name {destination_id} in the path (set destination_id to the API's stream name in the config), "
            "unless one destination_id per stream is certain.",
        )
    ]


def _retry_findings(recipe: Recipe, transient: list[str]) -> list[Finding]:
    """What the recipe cannot retry on, and what it would retry on that never passes."""
    findings = []
    plan = recipe.retry_plan(transient)
    if plan["ignored"]:
        known = sorted(recipe.exceptions) + (["'429'", "'5xx'"] if recipe.statuses else [])
        findings.append(
            warned(
                "recipe.transient_unknown",
                f"The {recipe.name} recipe cannot retry on {', '.join(map(repr, plan['ignored']))}: ignored.",
                f"It understands: {', '.join(known)}. Anything else fails the batch at once.",
            )
        )
    permanent = [s for s in plan["statuses"] if s in PERMANENT] + [f"{c}xx" for c in plan["status_classes"] if c == 4]
    if permanent:
        findings.append(
            warned(
                "recipe.transient_permanent",
                f"The {recipe.name} recipe will retry on {', '.join(map(str, permanent))}, which is permanent by "
                "nature: a wrong token or a bad request fails the same way on every try, only later.",
                "Drop it from error_handling.transient unless this target really answers it for a passing "
                "condition (then say so in the description).",
            )
        )
    return findings


def _fields_findings(recipe: Recipe, declared: list[str], added: list[str]) -> list[Finding]:
    """The declared fields the recipe's code never reads, and the recipe's fields it added."""
    findings = []
    reads = [f.name for f in recipe.fields]
    ignored = [name for name in dict.fromkeys(declared) if name not in reads]
    if ignored:
        findings.append(
            warned(
                "recipe.fields_ignored",
                f"Field(s) {', '.join(ignored)} are rendered into the config class but the {recipe.name} recipe's "
                f"code never reads them: {recipe.ignores}.",
                f"Fold them into the recipe's fields ({', '.join(reads)}), read them in destination.py yourself, "
                "or use recipe='custom'.",
            )
        )
    if added:
        findings.append(
            Finding(
                id="recipe.fields_added",
                status="pass",
                message=f"The {recipe.name} recipe reads {', '.join(reads)}; it added: {', '.join(added)}.",
            )
        )
    return findings
