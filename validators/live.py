"""live.check_config: the live checks have a scratch target of their own, apart from the example's real one."""

from bizon_forge.validators.code import DestinationCode
from bizon_forge.validators.report import CheckFinding, failed, passed, skipped, warned
from bizon_forge.validators.scratch import RECEIVER_VAR, SCRATCH_VAR, lookup, references
from bizon_forge.workspace import read_regular

ID = "live.check_config"
PLACEHOLDER = "-value"  # what render_destination writes for a string field the agent gave no default
# Settings of how bizon buffers, not of where records go: equal values here do not make two targets one.
NOT_THE_TARGET = {"destination_id", "buffer_size", "buffer_flush_timeout", "unnest", "record_schemas"}


def _load(code: DestinationCode, rel: str):
    import yaml

    path = code.ws.root / rel
    if not path.is_file():
        return None
    return yaml.safe_load(read_regular(path).decode("utf-8", errors="replace"))


def destination_config(code: DestinationCode, rel: str) -> dict | None:
    """The `destination.config` mapping of a config file, or None when it has none or does not parse (the
    checks that own those failures report them)."""
    try:
        config = _load(code, rel)
    except Exception:  # a YAML error is live.check_config's or import.config_validate's finding
        return None
    details = ((config or {}).get("destination") or {}).get("config") if isinstance(config, dict) else None
    return details if isinstance(details, dict) else None


def check_config(code: DestinationCode) -> CheckFinding:
    rel = code.check_rel
    try:
        check = _load(code, rel)
    except Exception as error:  # a YAML error is the finding, whatever its class
        return failed(ID, f"{rel} is not valid YAML: {' '.join(str(error).split())[:200]}", file=rel)
    if check is None:
        return failed(ID, f"There is no check config at {rel}: the live checks have nowhere safe to write.", file=rel)
    destination = check.get("destination") if isinstance(check, dict) else None
    if not isinstance(destination, dict) or str(destination.get("name")) != code.name:
        return failed(ID, f"{rel} has no `destination:` with `name: {code.name}`.", file=rel)
    details = destination.get("config") or {}
    text = str(details)
    elsewhere = _checks_on_sqlite_for_a_server(code, details)
    if elsewhere:
        return warned(
            ID,
            f"{rel} points the checks at SQLite, while {code.name} declares a {elsewhere} driver: a green proves "
            f"the code on SQLite, not on {elsewhere.split('+')[0]}.",
            file=rel,
            hint=f"To prove it on your server, point url in {rel} at a scratch database there (the checks write "
            "tables forge_*), kept out of the YAML as env://NAME.",
        )
    if SCRATCH_VAR in text or RECEIVER_VAR in text:
        return passed(ID, f"{rel} names the scratch target each validation makes ({SCRATCH_VAR} or {RECEIVER_VAR}).")
    try:
        example = _load(code, code.example_rel)
    except Exception:
        example = None  # import.config_validate reports a broken example
    theirs = ((example or {}).get("destination") or {}).get("config") or {} if isinstance(example, dict) else {}
    mine = {k: v for k, v in details.items() if k not in NOT_THE_TARGET}
    if not mine:
        return warned(
            ID,
            f"{rel}: no field chooses the target, so the checks keep apart from real data only by writing under "
            "destination_ids forge_*: if the destination writes to a fixed place, the checks write there too.",
            file=rel,
            hint="Give the destination a field that names its target (a database, key prefix, folder) and point "
            "the check config at a scratch one.",
        )
    if mine == {k: v for k, v in theirs.items() if k not in NOT_THE_TARGET}:
        return failed(
            ID,
            f"{rel} names the same target as the example config ({', '.join(sorted(mine))} are equal): "
            "the checks would write into the user's real target.",
            file=rel,
        )
    return passed(ID, f"{rel} names a target apart from the example's.")


def check_references(code: DestinationCode) -> CheckFinding:
    """live.check_references: every env://NAME of the check config is set where bizon run would find it."""
    id, rel = "live.check_references", code.check_rel
    path = code.ws.root / rel
    names = references(read_regular(path).decode(errors="replace")) if path.is_file() else []
    if not names:
        return skipped(
            id,
            f"{rel} references no env:// variable of its own (BIZON_FORGE_* are the scratch places each validation "
            "makes): nothing to judge.",
        )
    found = lookup(code.ws.root, names)
    missing = [n for n in names if n not in found]
    dotenv = code.ws.root / ".env"
    if missing:
        them = ", ".join(missing)
        return failed(
            id,
            f"{rel} references {', '.join(f'env://{n}' for n in missing)}, set neither in the environment of "
            f'the bizon-forge server nor in {dotenv}: bizon would stop with "environment variable '
            f"'{missing[0]}' is not set\". The checks that write were not run.",
            file=rel,
            hint=f"Set {them} in {dotenv} (bizon run reads it too; keep it out of git), or in the server's "
            f"environment (`env` in the host's mcp.json, `claude mcp add -e {missing[0]}=...`, then restart the "
            "server), and validate again. Keep the value itself out of the YAML.",
        )
    where = ", ".join(f"{n} (from the {found[n][1]})" for n in names)
    return passed(id, f"Every env:// reference of {rel} is set: {where}. The checks get exactly these variables.")


def example_values(code: DestinationCode) -> CheckFinding:
    """live.example_values: the example config holds no value render_destination made up."""
    id = "live.example_values"
    details = destination_config(code, code.example_rel)
    if details is None:
        return passed(id, "No destination config to judge (see import.config_validate).")
    made_up = sorted(k for k, v in details.items() if v == f"{k}{PLACEHOLDER}")
    if made_up:
        return failed(
            id,
            f"{code.example_rel} still holds placeholder values for {', '.join(made_up)} "
            f"(e.g. {made_up[0]}: {made_up[0]}{PLACEHOLDER}): the sync it describes cannot reach a real target.",
            file=code.example_rel,
        )
    return passed(id, "The example config holds no placeholder value.")


def _checks_on_sqlite_for_a_server(code: DestinationCode, details: dict) -> str | None:
    """The server's SQLAlchemy scheme when a sql-recipe destination declares its driver but checks on SQLite."""
    from bizon_forge import dependencies, spec

    declared = spec.stored(code.ws, code.name)
    if declared is None or declared.recipe != "sql" or not str(details.get("url", "")).startswith("sqlite"):
        return None
    return dependencies.sql_scheme(declared.dependencies)
