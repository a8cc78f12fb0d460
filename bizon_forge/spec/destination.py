"""DestinationSpec: what the agent knows about the target system (Step 1 of the guide), checked and stored."""

import builtins
import json
import keyword
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args

from pydantic import BaseModel, Field

from bizon_forge import registry
from bizon_forge.atomic import write_text
from bizon_forge.connector import Connector
from bizon_forge.findings import Finding, Refused, failed
from bizon_forge.workspace import Workspace

NAME_RE = re.compile(r"[a-z][a-z0-9_]*")
MAX_NAME = 48
MAX_TEXT = 2000
FIELD_TYPES = ("str", "int", "float", "bool", "list[str]", "dict")
# Declared once here; the tool's arguments and recipes.RECIPES use these.
RecipeName = Literal["custom", "sql", "file", "http"]
WriteMethod = Literal["batch_insert", "streaming", "file_upload"]
RECIPES = get_args(RecipeName)
WRITE_METHODS = get_args(WriteMethod)
# How a full refresh replaces what a target without an atomic replace holds (the http recipe asks): the first
# POST of the publication carries "replace": true, or a DELETE of the destination_id's records comes first.
FullRefresh = Literal["replace_flag", "delete_first"]
FULL_REFRESH = get_args(FullRefresh)

# Fields every destination config inherits (AbstractDestinationDetailsConfig) and names pydantic reserves.
BASE_FIELDS = frozenset(
    {
        "buffer_size",
        "buffer_flush_timeout",
        "max_concurrent_threads",
        "record_schemas",
        "unnest",
        "authentication",
        "destination_id",
    }
)
S = TypeVar("S", bound=BaseModel)  # a stored spec: DestinationSpec here, SourceSpec in source_spec
PYDANTIC_RESERVED = frozenset(n for n in dir(BaseModel) if not n.startswith("__")) | {"model_config"}


class FieldSpec(BaseModel):
    name: str
    type: str = Field("str", description="str|int|float|bool|list[str]|dict")
    required: bool = False
    default: Any = None
    description: str = ""
    secret: bool = False


class ErrorHandling(BaseModel):
    transient: list[str] = Field([], description="Failures worth a retry, e.g. ['429', '5xx', 'ConnectionError']")
    max_retries: int = 3
    backoff_seconds: float = 1.0


class Batching(BaseModel):
    buffer_size_mb: int = 50
    flush_timeout_s: int = 600
    max_concurrent_threads: int = 10


class Names(BaseModel):
    """The guide's placeholder table, derived from the snake_case name."""

    pascal: str
    snake: str
    upper: str
    alias: str


class DestinationSpec(BaseModel):
    name: str
    recipe: RecipeName = "custom"
    write_method: WriteMethod | None = None  # None: the recipe's own (recipes.apply fills it in)
    fields: list[FieldSpec] = []
    error_handling: ErrorHandling = ErrorHandling()
    batching: Batching = Batching()
    alias: str | None = None
    description: str = ""
    # Client libraries as PEP 508 requirements; recorded as the tree's extra NAME and installed into its Python.
    dependencies: list[str] = []
    full_refresh: FullRefresh | None = None  # the http recipe's choice; the other recipes replace atomically

    @property
    def names(self) -> Names:
        n = self.name
        return Names(pascal=pascal_case(n), snake=n, upper=n.upper(), alias=self.alias or n)


def pascal_case(name: str) -> str:
    """The guide's {{DEST_NAME}}: `my_db2` -> `MyDb2` (class names are built from it)."""
    return "".join(part[:1].upper() + part[1:] for part in name.split("_") if part)


# -- checks ----------------------------------------------------------------------------------------


def check_name(name: str) -> list[Finding]:
    shown = name if len(name) <= 60 else name[:60] + "…"
    # A word boundary of camelCase or PascalCase becomes an underscore: MyTickets -> my_tickets, HTTPStore -> http_store
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name)
    suggestion = re.sub(r"[^a-z0-9]+", "_", words.lower()).strip("_")[:MAX_NAME] or "my_target"
    if suggestion[:1].isdigit():
        suggestion = "dest_" + suggestion
    hint = f"Use a lowercase snake_case identifier such as {suggestion!r}."
    if not name:
        return [failed("spec.name.empty", "The destination name is empty.", hint)]
    if len(name) > MAX_NAME:
        return [failed("spec.name.too_long", f"The name is {len(name)} characters; the limit is {MAX_NAME}.", hint)]
    if name.startswith("_"):
        return [failed("spec.name.private", f"{shown!r} starts with an underscore (private or dunder).", hint)]
    if not NAME_RE.fullmatch(name):
        if name.isascii() and NAME_RE.fullmatch(name.lower()):
            return [failed("spec.name.not_snake_case", f"{shown!r} has upper-case letters.", hint)]
        return [
            failed(
                "spec.name.not_identifier",
                f"{shown!r} is not an ASCII snake_case identifier (it becomes a package, an enum member and a class).",
                hint,
            )
        ]
    if keyword.iskeyword(name) or keyword.issoftkeyword(name):
        return [failed("spec.name.keyword", f"{name!r} is a Python keyword.", f"Use e.g. '{name}_dest'.")]
    if name in vars(builtins):
        return [failed("spec.name.builtin", f"{name!r} shadows a Python builtin.", f"Use e.g. '{name}_dest'.")]
    return []


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_default(f: FieldSpec) -> str | None:
    """Why the default does not fit the declared type, or None."""
    d = f.default
    if d is None:
        return None
    ok = {
        "str": isinstance(d, str),
        "int": isinstance(d, int) and not isinstance(d, bool),
        "float": isinstance(d, (int, float)) and not isinstance(d, bool) and math.isfinite(d),
        "bool": isinstance(d, bool),
        "list[str]": isinstance(d, list) and all(isinstance(x, str) for x in d),
        "dict": isinstance(d, dict),
    }[f.type]
    if ok and f.type == "dict":
        try:
            json.dumps(d, allow_nan=False)
        except (TypeError, ValueError):
            ok = False
    return None if ok else f"default {d!r} is not a {f.type}"


def check_fields(fields: list[FieldSpec]) -> list[Finding]:
    found: list[Finding] = []
    seen: set[str] = set()
    for i, f in enumerate(fields):
        where = f"fields[{i}] ({f.name[:40]!r})"
        if not f.name or not re.fullmatch(r"[a-z_][a-z0-9_]*", f.name) or len(f.name) > 64:
            found.append(
                failed("spec.field.not_identifier", f"{where} is not a snake_case identifier.", "e.g. 'api_key'.")
            )
            continue
        if keyword.iskeyword(f.name) or keyword.issoftkeyword(f.name):
            found.append(failed("spec.field.keyword", f"{where} is a Python keyword.", f"Use e.g. '{f.name}_value'."))
            continue
        if f.name.startswith("_"):
            found.append(failed("spec.field.private", f"{where} starts with an underscore; pydantic ignores it."))
            continue
        if f.name in BASE_FIELDS:
            found.append(
                failed(
                    "spec.field.shadows_base",
                    f"{where} shadows AbstractDestinationDetailsConfig.{f.name}.",
                    "Rename it; buffer settings belong in `batching`, the target id in `destination_id`.",
                )
            )
            continue
        if f.name in PYDANTIC_RESERVED or f.name.startswith("model_"):
            found.append(failed("spec.field.reserved", f"{where} clashes with a pydantic BaseModel attribute."))
            continue
        if f.name in seen:
            found.append(failed("spec.field.duplicate", f"{where} is declared twice.", "Keep one declaration."))
            continue
        seen.add(f.name)
        if f.type not in FIELD_TYPES:
            found.append(
                failed(
                    "spec.field.unknown_type",
                    f"{where} has type {f.type[:40]!r}.",
                    f"Use one of {', '.join(FIELD_TYPES)}.",
                )
            )
            continue
        if f.required and not f.description.strip():
            found.append(
                failed(
                    "spec.field.missing_description", f"{where} is required but has no description.", "Say what it is."
                )
            )
        if len(f.description) > MAX_TEXT:
            found.append(failed("spec.field.description_too_long", f"{where} description exceeds {MAX_TEXT} chars."))
        if f.required and f.default is not None:
            found.append(
                failed("spec.field.required_with_default", f"{where} is required and has a default.", "Drop one.")
            )
        if f.secret and f.type != "str":
            found.append(failed("spec.field.secret_type", f"{where} is secret but not a str.", "Secrets are strings."))
        if f.secret and f.default is not None:
            found.append(
                failed(
                    "spec.field.secret_default",
                    f"{where} is secret and has a default, which would put a secret in source code.",
                    "Drop the default; pass the value in the YAML (bizon resolves env:// references).",
                )
            )
        why = _check_default(f)
        if why:
            found.append(failed("spec.field.default_type", f"{where}: {why}.", f"Give a {f.type} or no default."))
    return found


def _texts(value):
    """Every string in a spec value (names, descriptions, defaults inside lists and dicts)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, BaseModel):
        for item in vars(value).values():
            yield from _texts(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _texts(key)
            yield from _texts(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _texts(item)


def check_unicode(spec: BaseModel) -> list[Finding]:
    """A lone surrogate from JSON's \\ud800 anywhere in a spec (of either kind): it cannot be stored, rendered or read
    back, so no other check is worth running."""
    bad = next((t for t in _texts(spec) if not t.isascii() and not _encodes(t)), None)
    if bad is None:
        return []
    return [
        failed(
            "spec.text.not_unicode",
            f"A string in the spec holds a lone surrogate: {bad[:60]!r}.",
            "Send well-formed Unicode (pair surrogates, or drop the character).",
        )
    ]


def check_spec(spec: DestinationSpec) -> list[Finding]:
    if bad := check_unicode(spec):
        return bad
    found = check_name(spec.name) + check_fields(spec.fields)
    if spec.alias is not None and (not spec.alias.strip() or len(spec.alias) > 100):
        found.append(failed("spec.alias.invalid", "The alias must be 1-100 characters.", "Omit it to use the name."))
    if len(spec.description) > MAX_TEXT:
        found.append(failed("spec.description_too_long", f"The description exceeds {MAX_TEXT} characters."))
    b, e = spec.batching, spec.error_handling
    if b.buffer_size_mb < 0 or b.buffer_size_mb > 10_000:
        found.append(failed("spec.batching.buffer_size", "buffer_size_mb must be 0-10000 (0 writes every iteration)."))
    if b.flush_timeout_s < 0:
        found.append(failed("spec.batching.flush_timeout", "flush_timeout_s must be >= 0 (0 turns the timeout off)."))
    if not 1 <= b.max_concurrent_threads <= 256:
        found.append(failed("spec.batching.threads", "max_concurrent_threads must be 1-256."))
    if not 0 <= e.max_retries <= 20:
        found.append(failed("spec.error_handling.max_retries", "max_retries must be 0-20."))
    if not (0 < e.backoff_seconds <= 600) or not math.isfinite(e.backoff_seconds):
        found.append(failed("spec.error_handling.backoff", "backoff_seconds must be in (0, 600]."))
    return found


def check_against_workspace(spec: DestinationSpec, ws: Workspace, reg: registry.Registry) -> list[Finding]:
    """Name clashes with what the tree already has. A destination this tool described before is not a clash."""
    n = spec.names
    ours = spec_path(ws, spec.name).exists()
    found: list[Finding] = []
    if not ours and ws.destination_dir(spec.name).exists():
        found.append(
            failed(
                "spec.name.taken",
                f"bizon already has a destination folder {spec.name!r}.",
                "Pick another name; to rebuild it, remove it first with remove_destination.",
            )
        )
    member = reg.member_for_value(spec.name)
    if member and member != n.upper:
        found.append(failed("spec.name.taken", f"DestinationTypes.{member} already has the value {spec.name!r}."))
    if n.upper in reg.enum and reg.enum[n.upper] != spec.name:
        found.append(failed("spec.name.taken", f"DestinationTypes.{n.upper} exists with value {reg.enum[n.upper]!r}."))
    for cls in (f"{n.pascal}Config", f"{n.pascal}DestinationConfig", f"{n.pascal}Destination"):
        module = reg.imports.get(cls)
        if module and not Connector(spec.name).owns(module):
            found.append(
                failed(
                    "spec.name.class_taken",
                    f"Class {cls} is already imported in bizon/common/models.py from {module}.",
                    "Pick a name whose PascalCase form is new.",
                )
            )
    return found


# -- the store inside the workspace ----------------------------------------------------------------


def spec_path(ws: Workspace, name: str):
    return ws.state_dir / "specs" / f"{name}.json"


def stored(ws: Workspace, name: str) -> DestinationSpec | None:
    """The stored spec, or None when there is none or it does not load (describe_target says what is wrong)."""
    try:
        return load(ws, name) if spec_path(ws, name).is_file() else None
    except Exception:  # a broken or foreign spec file is describe_target's finding, not a caller's crash
        return None


def save(ws: Workspace, spec: DestinationSpec) -> None:
    write_text(spec_path(ws, spec.name), spec.model_dump_json(indent=2) + "\n")


def load(ws: Workspace, name: str) -> DestinationSpec:
    return load_stored(ws, spec_path(ws, name), name, DestinationSpec, check_spec, "spec", "describe_target")


def load_stored(
    ws: Workspace,
    path: Path,
    name: str,
    model: type[S],
    check: Callable[[S], list[Finding]],
    kind: str,
    tool: str,
    name_check: Callable[[str], list[Finding]] = check_name,
) -> S:
    """The spec stored at `path` for `name` (a destination's or a source's, by `model`), or a Refused saying why not:
    nothing stored, an unreadable file, or one whose content the describe tool would refuse."""
    bad = name_check(name)
    if bad:
        raise Refused(*bad)
    if not path.exists():
        raise Refused(
            failed("spec.not_found", f"No {kind} stored for {name!r} in this workspace.", f"Call {tool} first.")
        )
    why: str | None
    try:
        if not path.is_file():  # a folder, or a FIFO whose read would never return
            raise OSError(f"{path.name} is not a regular file")
        stored = model.model_validate_json(path.read_text())
    except (OSError, ValueError) as error:  # pydantic's ValidationError and UnicodeDecodeError are ValueErrors
        why = f"{type(error).__name__}: {str(error)[:200]}"  # and raise below, before stored is read
    else:
        # A store edited by hand must not smuggle in a name (say '../../x') that the describe tool would refuse.
        stored_name = getattr(stored, "name", "")
        why = None if stored_name == name else f"it names {stored_name[:60]!r}"
        why = why or "; ".join(f.message for f in check(stored) if f.status == "fail") or None
    if why:
        raise Refused(
            failed(
                "spec.unreadable",
                f"The stored {kind} for {name!r} is not a valid spec of that name ({why}).",
                f"Call {tool} again to store it afresh.",
                file=str(path.relative_to(ws.root)),
            )
        )
    return stored


def stored_names(ws: Workspace) -> list[str]:
    folder = ws.state_dir / "specs"
    return sorted(p.stem for p in folder.glob("*.json")) if folder.exists() else []
