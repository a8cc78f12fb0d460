"""What specs of both kinds share: config fields, names, their checks, one parser and one store keyed by the kind.

A kind (destination.KIND, source.KIND) says which model, checks, store folder and describe tool are its own; nothing
here knows the kinds themselves, so the kinds import this module and never the other way round.
"""

import builtins
import difflib
import json
import keyword
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import NoneType, UnionType
from typing import Annotated, Any, Generic, Literal, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, Field, ValidationError
from pydantic_core import ErrorDetails

from bizon_forge.atomic import write_text
from bizon_forge.findings import Finding, Refused, failed
from bizon_forge.workspace import Workspace

NAME_RE = re.compile(r"[a-z][a-z0-9_]*")
MAX_NAME = 48
MAX_TEXT = 2000
FIELD_TYPES = ("str", "int", "float", "bool", "list[str]", "dict")
PYDANTIC_RESERVED = frozenset(n for n in dir(BaseModel) if not n.startswith("__")) | {"model_config"}
MAX_PARSE_FINDINGS = 20  # every problem of a spec in one answer, but a hostile one cannot make the answer huge

S = TypeVar("S", bound=BaseModel)  # a spec of one kind: DestinationSpec or SourceSpec


class FieldSpec(BaseModel):
    name: str
    type: str = Field("str", description="str|int|float|bool|list[str]|dict")
    required: bool = False
    default: Any = None
    description: str = ""
    secret: bool = False


class Names(BaseModel):
    """The guide's placeholder table, derived from the snake_case name."""

    pascal: str
    snake: str
    upper: str
    alias: str


@dataclass(frozen=True)
class Kind(Generic[S]):
    """One kind of spec: its model and checks, where it is stored, and which tool stores it."""

    name: Literal["destination", "source"]
    model: type[S]
    check: Callable[[S], list[Finding]]  # every finding on a parsed spec before anything is written
    check_name: Callable[[str], list[Finding]]
    folder: str  # under the workspace's state folder: a source and a destination may share a name
    noun: str  # how a message names one: "spec", "source spec"
    tool: str  # the tool that checks and stores it
    schema: str  # where an agent reads its keys

    # The store, bound to this kind: destination.load(ws, name) is common.load(ws, destination.KIND, name).
    def spec_path(self, ws: Workspace, name: str) -> Path:
        return spec_path(ws, self, name)

    def save(self, ws: Workspace, s: S) -> None:
        save(ws, self, s)

    def load(self, ws: Workspace, name: str) -> S:
        return load(ws, self, name)

    def stored(self, ws: Workspace, name: str) -> S | None:
        return stored(ws, self, name)

    def stored_names(self, ws: Workspace) -> list[str]:
        return stored_names(ws, self)


def pascal_case(name: str) -> str:
    """The guide's {{DEST_NAME}}: `my_db2` -> `MyDb2` (class names are built from it)."""
    return "".join(part[:1].upper() + part[1:] for part in name.split("_") if part)


# -- checks ----------------------------------------------------------------------------------------


def check_name(name: str, noun: str = "destination") -> list[Finding]:
    shown = name if len(name) <= 60 else name[:60] + "…"
    # A word boundary of camelCase or PascalCase becomes an underscore: MyTickets -> my_tickets, HTTPStore -> http_store
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name)
    suggestion = re.sub(r"[^a-z0-9]+", "_", words.lower()).strip("_")[:MAX_NAME] or "my_target"
    if suggestion[:1].isdigit():
        suggestion = "dest_" + suggestion
    hint = f"Use a lowercase snake_case identifier such as {suggestion!r}."
    if not name:
        return [failed("spec.name.empty", f"The {noun} name is empty.", hint)]
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


@dataclass(frozen=True)
class BaseFields:
    """The fields a kind's config class inherits, which an extra field must not shadow, and what to say."""

    names: frozenset[str]
    owner: str  # "AbstractDestinationDetailsConfig.{name}"
    hint: str


def _name_problem(where: str, f: FieldSpec, base: BaseFields, seen: set[str]) -> Finding | None:
    """The one thing wrong with a field's name, or None."""
    if not f.name or not re.fullmatch(r"[a-z_][a-z0-9_]*", f.name) or len(f.name) > 64:
        return failed("spec.field.not_identifier", f"{where} is not a snake_case identifier.", "e.g. 'api_key'.")
    if keyword.iskeyword(f.name) or keyword.issoftkeyword(f.name):
        return failed("spec.field.keyword", f"{where} is a Python keyword.", f"Use e.g. '{f.name}_value'.")
    if f.name.startswith("_"):
        return failed("spec.field.private", f"{where} starts with an underscore; pydantic ignores it.")
    if f.name in base.names:
        return failed("spec.field.shadows_base", f"{where} shadows {base.owner.format(name=f.name)}.", base.hint)
    if f.name in PYDANTIC_RESERVED or f.name.startswith("model_"):
        return failed("spec.field.reserved", f"{where} clashes with a pydantic BaseModel attribute.")
    if f.name in seen:
        return failed("spec.field.duplicate", f"{where} is declared twice.", "Keep one declaration.")
    return None


def _value_problems(where: str, f: FieldSpec) -> list[Finding]:
    if f.type not in FIELD_TYPES:
        return [
            failed(
                "spec.field.unknown_type", f"{where} has type {f.type[:40]!r}.", f"Use one of {', '.join(FIELD_TYPES)}."
            )
        ]
    found: list[Finding] = []
    if f.required and not f.description.strip():
        found.append(
            failed("spec.field.missing_description", f"{where} is required but has no description.", "Say what it is.")
        )
    if len(f.description) > MAX_TEXT:
        found.append(failed("spec.field.description_too_long", f"{where} description exceeds {MAX_TEXT} chars."))
    if f.required and f.default is not None:
        found.append(failed("spec.field.required_with_default", f"{where} is required and has a default.", "Drop one."))
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


def check_fields(fields: list[FieldSpec], base: BaseFields) -> list[Finding]:
    """The extra config fields of either kind; `base` names what the kind's config class already has."""
    found: list[Finding] = []
    seen: set[str] = set()
    for i, f in enumerate(fields):
        where = f"fields[{i}] ({f.name[:40]!r})"
        problem = _name_problem(where, f, base, seen)
        if problem is not None:
            found.append(problem)
            continue
        seen.add(f.name)
        found += _value_problems(where, f)
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


# -- the parser: a raw mapping (a tool's arguments, a spec file) into a spec of a kind, or findings --------------


def parse(kind: Kind[S], raw: object) -> tuple[S | None, list[Finding]]:
    """The spec, or None and a finding for each problem: a key the model does not have at any level
    (`spec.unknown_key`, with the nearest valid key) and each value of the wrong type or form (`spec.invalid`,
    naming the path and what is expected). pydantic would drop unknown keys silently and word the rest for a Python
    programmer; both kinds, from every entry point, are answered the same way."""
    if not isinstance(raw, dict):
        shown = "null" if raw is None else type(raw).__name__
        return None, [
            failed(
                "spec.not_a_mapping",
                f"The {kind.noun} is a {shown}, not an object.",
                f"Send an object with the keys of {kind.schema}.",
            )
        ]
    findings = [_unknown_key(path, key, known, kind) for path, key, known in unknown_keys(raw, kind.model)]
    parsed: S | None = None
    try:
        parsed = kind.model.model_validate(raw)
    except ValidationError as error:
        findings += _invalid(error, kind)
    if len(findings) > MAX_PARSE_FINDINGS:
        more = len(findings) - MAX_PARSE_FINDINGS
        last = findings[MAX_PARSE_FINDINGS - 1]
        capped = last.model_copy(update={"message": f"{last.message} ({more} more problems not shown)"})
        findings = [*findings[: MAX_PARSE_FINDINGS - 1], capped]
    return (None if findings else parsed), findings


def parse_or_refuse(kind: Kind[S], raw: object) -> S:
    """parse, raising Refused with every finding: for the entry points that answer a refusal."""
    parsed, findings = parse(kind, raw)
    if parsed is None:
        raise Refused(*findings, next=fix_next(kind))
    return parsed


def fix_next(kind: Kind) -> str:
    """The `next` of a spec refused for its own findings."""
    return f"Fix the failed findings and call {kind.tool} again."


def _unknown_key(path: str, key: str, known: list[str], kind: Kind) -> Finding:
    near = difflib.get_close_matches(key, known, n=1)
    said = f"Did you mean {near[0]!r}? " if near else ""
    return failed(
        "spec.unknown_key",
        f"{path}: no such key (misspelt, or of another level).",
        f"{said}The keys here are: {', '.join(known)} ({kind.schema}).",
    )


def unknown_keys(value: object, annotation: Any, path: str = "") -> Iterator[tuple[str, str, list[str]]]:
    """(path, key, the keys valid there) of each key no model has, at every level the annotation reaches: a nested
    model, a list of them, a dict of them, an optional one. Any model works: new fields need nothing here."""
    model = _member(annotation, lambda a: isinstance(a, type) and issubclass(a, BaseModel))
    if model is not None and isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            field = model.model_fields.get(str(key))
            if field is None:
                yield where, str(key), sorted(model.model_fields)
            else:
                yield from unknown_keys(item, field.annotation, where)
    elif isinstance(value, list):
        items = _member(annotation, lambda a: get_origin(a) in (list, tuple, set, frozenset))
        for i, item in enumerate(value if items is not None else []):
            yield from unknown_keys(item, _arg(items, 0), f"{path}[{i}]")
    elif isinstance(value, dict):
        mapping = _member(annotation, lambda a: get_origin(a) is dict)
        for key, item in (value if mapping is not None else {}).items():
            yield from unknown_keys(item, _arg(mapping, 1), f"{path}.{key}")


def _arg(annotation: Any, i: int) -> Any:
    args = get_args(annotation)
    return args[i] if len(args) > i else Any


def _options(annotation: Any) -> list[Any]:
    """The types an annotation allows: X | Y | None -> [X, Y, None], Annotated[X, ...] -> [X]."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _options(get_args(annotation)[0])
    if origin in (Union, UnionType):
        return [o for a in get_args(annotation) for o in _options(a)]
    return [annotation]


def _member(annotation: Any, wanted: Callable[[Any], bool]) -> Any:
    return next((o for o in _options(annotation) if wanted(o)), None)


# pydantic error types that say "not of this type or form": answered with what the model expects there.
_NOT_THE_TYPE = re.compile(r".*_(type|parsing)$|literal_error|enum|is_instance_of|union_tag_invalid")


def _invalid(error: ValidationError, kind: Kind) -> list[Finding]:
    found: list[Finding] = []
    seen: set[str] = set()
    for e in error.errors(include_url=False):
        path, annotation = _locate(kind.model, e["loc"])
        if path in seen:  # one finding a path: a union reports each of its members
            continue
        seen.add(path)
        expected = expected_of(annotation)
        found.append(failed("spec.invalid", f"{path}: {_why(e, expected)}.", _hint(e, kind)))
    return found


def _why(e: ErrorDetails, expected: str) -> str:
    if e["type"] == "missing":
        return f"missing; it is required ({expected})"
    if _NOT_THE_TYPE.fullmatch(e["type"]):
        return f"{_shown(e['input'])} is not {expected}"
    # A constraint or a model's own validator: its sentence, without pydantic's "Value error, " prefix.
    return str(e["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")


def _hint(e: ErrorDetails, kind: Kind) -> str:
    if e["type"] == "missing":
        return f"Add it (see {kind.schema})."
    return f"Give it the type and form {kind.schema} describes for it."


def _shown(value: object) -> str:
    text = json.dumps(value, ensure_ascii=False, default=repr) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:60] + "…"


def _locate(model: type[BaseModel], loc: tuple[int | str, ...]) -> tuple[str, Any]:
    """The dotted path (`streams[0].pagination.pattern`) of an error's location, and the annotation there. A
    segment the model does not have (pydantic's tag of a union member) ends the walk: the path so far is the place."""
    annotation: Any = model
    path = ""
    for part in loc:
        inner = _step(annotation, part)
        if inner is None:
            break
        annotation = inner
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "spec", annotation


def _step(annotation: Any, part: int | str) -> Any:
    model = _member(annotation, lambda a: isinstance(a, type) and issubclass(a, BaseModel))
    if model is not None and isinstance(part, str) and part in model.model_fields:
        return model.model_fields[part].annotation
    items = _member(annotation, lambda a: get_origin(a) in (list, tuple, set, frozenset))
    if items is not None and isinstance(part, int):
        return _arg(items, 0)
    mapping = _member(annotation, lambda a: get_origin(a) is dict)
    if mapping is not None and isinstance(part, str):
        return _arg(mapping, 1)
    return None


_SIMPLE = {str: "a string", int: "an integer", float: "a number", bool: "true or false", dict: "an object"}
_PLURAL = {str: "strings", int: "integers", float: "numbers", bool: "booleans"}


def expected_of(annotation: Any) -> str:
    """What a value of this annotation is, in words: 'one of 'cursor', 'none'', 'a list of strings or null'."""
    options = _options(annotation)
    words = [_one(o) for o in options if o is not NoneType]
    return " or ".join(dict.fromkeys(words)) + (" or null" if NoneType in options else "")


def _one(annotation: Any) -> str:
    origin = get_origin(annotation)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(annotation))
    if origin in (list, tuple, set, frozenset):
        item = _arg(annotation, 0)
        model = isinstance(item, type) and issubclass(item, BaseModel)
        return "a list of " + ("objects" if model else _PLURAL.get(item, "values"))
    if origin is dict:
        return "an object"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return f"an object (keys: {', '.join(annotation.model_fields)})"
    return _SIMPLE.get(annotation, "any value")


# -- the store inside the workspace, one folder a kind ------------------------------------------------------------


def spec_path(ws: Workspace, kind: Kind, name: str) -> Path:
    return ws.state_dir / kind.folder / f"{name}.json"


def save(ws: Workspace, kind: Kind[S], s: S) -> None:
    write_text(spec_path(ws, kind, vars(s)["name"]), s.model_dump_json(indent=2) + "\n")


def load(ws: Workspace, kind: Kind[S], name: str) -> S:
    """The spec stored for `name`, or a Refused saying why not: nothing stored, an unreadable file, or one whose
    content the describe tool would refuse."""
    bad = kind.check_name(name)
    if bad:
        raise Refused(*bad)
    path = spec_path(ws, kind, name)
    if not path.exists():
        raise Refused(
            failed(
                "spec.not_found", f"No {kind.noun} stored for {name!r} in this workspace.", f"Call {kind.tool} first."
            )
        )
    why: str | None
    try:
        if not path.is_file():  # a folder, or a FIFO whose read would never return
            raise OSError(f"{path.name} is not a regular file")
        stored = kind.model.model_validate_json(path.read_text())
    except (OSError, ValueError) as error:  # pydantic's ValidationError and UnicodeDecodeError are ValueErrors
        why = f"{type(error).__name__}: {str(error)[:200]}"  # and raise below, before stored is read
    else:
        # A store edited by hand must not smuggle in a name (say '../../x') that the describe tool would refuse.
        stored_name = getattr(stored, "name", "")
        why = None if stored_name == name else f"it names {stored_name[:60]!r}"
        why = why or "; ".join(f.message for f in kind.check(stored) if f.status == "fail") or None
    if why:
        raise Refused(
            failed(
                "spec.unreadable",
                f"The stored {kind.noun} for {name!r} is not a valid spec of that name ({why}).",
                f"Call {kind.tool} again to store it afresh.",
                file=str(path.relative_to(ws.root)),
            )
        )
    return stored


def stored(ws: Workspace, kind: Kind[S], name: str) -> S | None:
    """The stored spec, or None when there is none or it does not load (the describe tool says what is wrong)."""
    try:
        return load(ws, kind, name) if spec_path(ws, kind, name).is_file() else None
    except Refused:  # a broken or foreign spec file is the describe tool's finding, not a caller's crash
        return None


def stored_names(ws: Workspace, kind: Kind) -> list[str]:
    folder = ws.state_dir / kind.folder
    return sorted(p.stem for p in folder.glob("*.json")) if folder.exists() else []
