"""The destination's source as every check needs it: source.syntax, and the skip a check answers when what it
reads is missing or broken.

Each check takes the parsed DestinationCode and answers exactly one finding, with the id it is named for.
A check whose input is missing because another check failed answers `skip`, so one mistake is one failure.
"""

from bizon_forge.findings import Finding, failed, passed, skipped
from bizon_forge.validators.catalog import Check, static
from bizon_forge.validators.code import DestinationCode, inherits_bizon_destination, is_stub


def short(rel: str) -> str:
    """A file named in a message: its last parts (the finding's `file` has the full path)."""
    return "/".join(rel.split("/")[-2:])


@static(
    Check(
        "source.syntax",
        "Source",
        "The destination's Python files and the three registration files parse.",
        "Nothing else can be checked in a file Python cannot read.",
        "Fix the syntax error at the reported line.",
        origin="forge",
    ),
)
def source_syntax(code: DestinationCode) -> Finding:
    broken = [(f.rel, f.error) for f in [*code.python_files(), *code.registration.values()] if f.error is not None]
    if not broken:
        return passed("source.syntax")
    rel, error = broken[0]
    more = f" ({len(broken) - 1} more file(s) too)" if len(broken) > 1 else ""
    return failed(
        "source.syntax",
        f"{short(rel)} does not parse: {error.msg}{more}.",
        file=rel,
        line=error.lineno,
    )


def config_unreadable(code: DestinationCode, id: str) -> Finding:
    owner = "source.syntax" if code.config_rel in code.files else "checklist.config_base"
    return skipped(id, f"{code.config_rel} is missing or does not parse (see {owner}).", owner)


def needs(code: DestinationCode, rel: str, id: str) -> Finding | None:
    """A skip when `rel` is missing or does not parse (source.syntax or the file's own check reports that)."""
    f = code.files.get(rel)
    if f is None:
        owner = "checklist.config_base" if rel == code.config_rel else "checklist.destination_base"
        return skipped(id, f"{rel} does not exist (see {owner}).", owner)
    if f.tree is None:
        return skipped(id, f"{rel} does not parse (see source.syntax).", "source.syntax")
    return None


def needs_destination(code: DestinationCode, id: str) -> Finding | None:
    """A skip when destination.py is missing, does not parse or defines no destination class."""
    if (skip := needs(code, code.destination_rel, id)) is not None:
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
            "trap.write_records_signature",
        )
    if is_stub(fn):
        return None, skipped(id, "write_records is a stub (see agent.pass_body).", "agent.pass_body")
    return fn, None
