"""DestinationSpec: what the agent knows about the target system (Step 1 of the guide), checked and stored."""

import math
from typing import Literal, get_args

from pydantic import BaseModel, Field

from bizon_forge import registry
from bizon_forge.connector import Connector
from bizon_forge.findings import Finding, failed
from bizon_forge.spec import common
from bizon_forge.spec.common import MAX_TEXT, BaseFields, FieldSpec, Kind, Names, check_unicode, pascal_case
from bizon_forge.workspace import Workspace

# Declared once here; the tool's arguments and recipes.RECIPES use these.
RecipeName = Literal["custom", "sql", "file", "http"]
WriteMethod = Literal["batch_insert", "streaming", "file_upload"]
RECIPES = get_args(RecipeName)
WRITE_METHODS = get_args(WriteMethod)
# How a full refresh replaces what a target without an atomic replace holds (the http recipe asks): the first
# POST of the publication carries "replace": true, or a DELETE of the destination_id's records comes first.
FullRefresh = Literal["replace_flag", "delete_first"]
FULL_REFRESH = get_args(FullRefresh)
# How the target keys records: append = every record a row; upsert = one record per source_record_id, the last
# write wins (the later source_timestamp; within one flush, the later row). The rendered class says it too.
WriteSemantics = Literal["append", "upsert"]
# What a reader sees during a full refresh: atomic = the previous publication until finalize() swaps in the new one
# whole; in_place = the target is rewritten where it stands (readers may see a partial target meanwhile).
FullRefreshIsolation = Literal["atomic", "in_place"]

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
BASE = BaseFields(
    BASE_FIELDS,
    "AbstractDestinationDetailsConfig.{name}",
    "Rename it; buffer settings belong in `batching`, the target id in `destination_id`.",
)


class ErrorHandling(BaseModel):
    transient: list[str] = Field([], description="e.g. ['429', '5xx', 'ConnectionError']")
    max_retries: int = 3
    backoff_seconds: float = 1.0


class Batching(BaseModel):
    buffer_size_mb: int = 50
    flush_timeout_s: int = 600
    max_concurrent_threads: int = 10


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
    write_semantics: WriteSemantics = "append"
    full_refresh_isolation: FullRefreshIsolation = "atomic"  # a recipe says its own (recipes.apply)

    @property
    def names(self) -> Names:
        n = self.name
        return Names(pascal=pascal_case(n), snake=n, upper=n.upper(), alias=self.alias or n)


# -- checks ----------------------------------------------------------------------------------------


def check_name(name: str) -> list[Finding]:
    return common.check_name(name, "destination")


def check_fields(fields: list[FieldSpec]) -> list[Finding]:
    return common.check_fields(fields, BASE)


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


KIND = Kind(
    name="destination",
    model=DestinationSpec,
    check=check_spec,
    check_name=check_name,
    folder="specs",
    noun="spec",
    tool="describe_target",
    schema="describe_target's input schema",
)


# -- the store inside the workspace: common's, bound to this kind ----------------------------------

spec_path, save, load, stored, stored_names = (KIND.spec_path, KIND.save, KIND.load, KIND.stored, KIND.stored_names)
