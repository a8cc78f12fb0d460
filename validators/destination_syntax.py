"""The destination's source as every check needs it: source.syntax, and the skip a check answers when what it
reads is missing or broken. The checks those skips name (checklist.config_base, checklist.destination_base,
trap.write_records_signature) are declared here too, for checklist.py and traps.py, which import these skips.

Each check takes the parsed DestinationCode and answers exactly one finding, with the id it is named for.
A check whose input is missing because another check failed answers `skip`, so one mistake is one failure.
"""

from bizon_forge.findings import Finding, passed, skipped
from bizon_forge.validators.agent_todo import AGENT_PASS_BODY
from bizon_forge.validators.catalog import Check, static
from bizon_forge.validators.code import DestinationCode, inherits_bizon_destination, is_stub, short

SOURCE_SYNTAX = Check(
    "source.syntax",
    "Source",
    "The destination's Python files and the three registration files parse.",
    "Nothing else can be checked in a file Python cannot read.",
    "Fix the syntax error at the reported line.",
    origin="forge",
)


@static(SOURCE_SYNTAX)
def source_syntax(code: DestinationCode) -> Finding:
    broken = [(f.rel, f.error) for f in [*code.python_files(), *code.registration.values()] if f.error is not None]
    if not broken:
        return SOURCE_SYNTAX.passed()
    rel, error = broken[0]
    more = f" ({len(broken) - 1} more file(s) too)" if len(broken) > 1 else ""
    return SOURCE_SYNTAX.fail(
        f"{short(rel)} does not parse: {error.msg}{more}.",
        file=rel,
        line=error.lineno,
    )


# Declared here, not beside their functions (checklist.py, traps.py): the skips below name them, and those
# modules import these skips.
CHECKLIST_CONFIG_BASE = Check(
    "checklist.config_base",
    "Config",
    "The main config (the class with `name: Literal[...]`) extends `AbstractDestinationConfig`.",
    "`BizonConfig.destination` is a Union of such classes, told apart by `name`.",
    "Derive the main config from `bizon.destination.config.AbstractDestinationConfig`.",
)


CHECKLIST_DESTINATION_BASE = Check(
    "checklist.destination_base",
    "Implementation",
    "The destination class (the one the factory returns) extends `AbstractDestination`.",
    "The engine drives the buffer, cursors and finalize through that base class.",
    "Derive it from `bizon.destination.destination.AbstractDestination` and call `super().__init__(...)`.",
)


TRAP_WRITE_RECORDS_SIGNATURE = Check(
    "trap.write_records_signature",
    "Traps",
    "`write_records` is a plain method taking exactly `df_destination_records`.",
    "bizon calls `self.write_records(df_destination_records=...)` by keyword.",
    "Declare `def write_records(self, df_destination_records: pl.DataFrame) -> Tuple[bool, Union[str, None]]:`.",
    origin="facts",
)


def config_unreadable(code: DestinationCode, id: str) -> Finding:
    owner = SOURCE_SYNTAX.id if code.config_rel in code.files else CHECKLIST_CONFIG_BASE.id
    return skipped(id, f"{code.config_rel} is missing or does not parse (see {owner}).", owner)


def needs(code: DestinationCode, rel: str, id: str) -> Finding | None:
    """A skip when `rel` is missing or does not parse (source.syntax or the file's own check reports that)."""
    f = code.files.get(rel)
    if f is None:
        owner = CHECKLIST_CONFIG_BASE.id if rel == code.config_rel else CHECKLIST_DESTINATION_BASE.id
        return skipped(id, f"{rel} does not exist (see {owner}).", owner)
    if f.tree is None:
        return skipped(id, f"{rel} does not parse (see source.syntax).", SOURCE_SYNTAX.id)
    return None


def needs_destination(code: DestinationCode, id: str) -> Finding | None:
    """A skip when destination.py is missing, does not parse or defines no destination class."""
    if (skip := needs(code, code.destination_rel, id)) is not None:
        if not (code.ws.root / code.destination_rel).exists():
            return skipped(
                id,
                f"{code.destination_rel} does not exist (see checklist.destination_base).",
                CHECKLIST_DESTINATION_BASE.id,
            )
        return skip
    if code.destination_class is None:
        return skipped(
            id, "No destination class found (see checklist.destination_base).", CHECKLIST_DESTINATION_BASE.id
        )
    return None


def needs_write_records(code: DestinationCode, id: str):
    """(function, None) or (None, finding) for checks that read write_records."""
    if skip := needs_destination(code, id):
        return None, skip
    fn = code.destination_method("write_records")
    if fn is None:
        if inherits_bizon_destination(code):
            return None, passed(id, "write_records is inherited from a bizon destination.")
        return None, skipped(
            id,
            "write_records is not defined (see trap.write_records_signature).",
            TRAP_WRITE_RECORDS_SIGNATURE.id,
        )
    if is_stub(fn):
        return None, skipped(id, "write_records is a stub (see agent.pass_body).", AGENT_PASS_BODY.id)
    return fn, None
