"""The checks of where the live checks write: a scratch target of their own (the check config), apart from the
example's real one, whose every reference resolves (for bizon-forge, then for bizon's own `secrets check`).

live.check_config, live.check_references and live.bizon_secrets_check are declared in runtime.py: the checks that
run the code are explained by them, and this module runs `secrets check` through runtime's run_logged."""

from pathlib import Path

from bizon_forge import dependencies
from bizon_forge.connector import RECEIVER_VAR, SCRATCH_VAR
from bizon_forge.findings import Finding, failed, passed, skipped
from bizon_forge.spec import destination as spec
from bizon_forge.validators.catalog import Check, answers, static
from bizon_forge.validators.code import DestinationCode, destination_config, load_config
from bizon_forge.validators.runtime import (
    IMPORT_CONFIG_VALIDATE,
    LIVE_BIZON_SECRETS_CHECK,
    LIVE_CHECK_CONFIG,
    LIVE_CHECK_REFERENCES,
    PROBE_TIMEOUT_S,
    one_line,
    run_logged,
)
from bizon_forge.validators.scratch import lookup, references
from bizon_forge.workspace import Workspace, read_regular

PLACEHOLDER = "-value"  # what render_destination writes for a string field the agent gave no default
# Settings of how bizon buffers, not of where records go: equal values here do not make two targets one.
NOT_THE_TARGET = {"destination_id", "buffer_size", "buffer_flush_timeout", "unnest", "record_schemas"}


@static(LIVE_CHECK_CONFIG)
def check_config(code: DestinationCode) -> Finding:
    rel = code.check_rel
    try:
        check = load_config(code, rel)
    except Exception as error:  # a YAML error is the finding, whatever its class
        return LIVE_CHECK_CONFIG.fail(f"{rel} is not valid YAML: {' '.join(str(error).split())[:200]}", file=rel)
    if check is None:
        return LIVE_CHECK_CONFIG.fail(
            f"There is no check config at {rel}: the live checks have nowhere safe to write.", file=rel
        )
    destination = check.get("destination") if isinstance(check, dict) else None
    if not isinstance(destination, dict) or str(destination.get("name")) != code.name:
        return LIVE_CHECK_CONFIG.fail(f"{rel} has no `destination:` with `name: {code.name}`.", file=rel)
    details = destination.get("config") or {}
    text = str(details)
    elsewhere = _checks_on_sqlite_for_a_server(code, details)
    if elsewhere:
        return LIVE_CHECK_CONFIG.warn(
            f"{rel} points the checks at SQLite, while {code.name} declares a {elsewhere} driver: a green proves "
            f"the code on SQLite, not on {elsewhere.split('+')[0]}.",
            file=rel,
            hint=f"To prove it on your server, point url in {rel} at a scratch database there (the checks write "
            "tables forge_*), kept out of the YAML as env://NAME.",
        )
    if SCRATCH_VAR in text or RECEIVER_VAR in text:
        return LIVE_CHECK_CONFIG.passed(
            f"{rel} names the scratch target each validation makes ({SCRATCH_VAR} or {RECEIVER_VAR})."
        )
    try:
        example = load_config(code, code.example_rel)
    except Exception:
        example = None  # import.config_validate reports a broken example
    theirs = ((example or {}).get("destination") or {}).get("config") or {} if isinstance(example, dict) else {}
    mine = {k: v for k, v in details.items() if k not in NOT_THE_TARGET}
    if not mine:
        return LIVE_CHECK_CONFIG.warn(
            f"{rel}: no field chooses the target, so the checks keep apart from real data only by writing under "
            "destination_ids forge_*: if the destination writes to a fixed place, the checks write there too.",
            file=rel,
            hint="Give the destination a field that names its target (a database, key prefix, folder) and point "
            "the check config at a scratch one.",
        )
    if mine == {k: v for k, v in theirs.items() if k not in NOT_THE_TARGET}:
        return LIVE_CHECK_CONFIG.fail(
            f"{rel} names the same target as the example config ({', '.join(sorted(mine))} are equal): "
            "the checks would write into the user's real target.",
            file=rel,
        )
    return LIVE_CHECK_CONFIG.passed(f"{rel} names a target apart from the example's.")


@static(LIVE_CHECK_REFERENCES)
def check_references(code: DestinationCode) -> Finding:
    """live.check_references: every env://NAME of the check config is set where bizon run would find it."""
    id, rel = LIVE_CHECK_REFERENCES.id, code.check_rel
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


@answers(LIVE_BIZON_SECRETS_CHECK)
def secrets_check(ws: Workspace, check: str, cwd: Path, log: Path, env: dict[str, str]) -> Finding:
    """live.bizon_secrets_check: bizon's own masked dry run of the check config's references, with exactly the
    variables the live checks get (its find_dotenv also reads the tree's .env, as `bizon run` does)."""
    cmd = [ws.python(), "-m", "bizon.cli.main", "secrets", "check", str(ws.root / check)]
    run = run_logged(ws, cmd, cwd, log, PROBE_TIMEOUT_S, env=env)
    if "No such command 'secrets'" in run.tail:
        return LIVE_BIZON_SECRETS_CHECK.skip("This tree's bizon has no `bizon secrets check`.")
    if "No gsm:// / env:// references found" in run.tail:
        return LIVE_BIZON_SECRETS_CHECK.skip(
            f"bizon secrets check {check}: the check config references nothing to resolve."
        )
    lines = [ln.strip() for ln in run.tail.splitlines() if ln.strip()]
    if run.returncode == 0 and not run.timed_out:
        return LIVE_BIZON_SECRETS_CHECK.passed(f"bizon secrets check {check}: {lines[-1] if lines else 'passed'}")
    unresolved = [ln for ln in lines if "✗" in ln]
    return LIVE_BIZON_SECRETS_CHECK.fail(
        f"bizon secrets check {check} failed: {len(unresolved) or 'some'} reference(s) did not resolve"
        + (f" ({one_line(unresolved[0])})" if unresolved else "")
        + ".",
        file=check,
        output="\n".join(unresolved) or run.tail,
        log=run.log,
    )


LIVE_EXAMPLE_VALUES = Check(
    "live.example_values",
    "Scratch target",
    "The example config (the user's real sync) holds none of the placeholder values render_destination "
    "writes for fields without a default (`<field>-value`).",
    "`next` ends by printing the command that runs the example: with placeholders it cannot reach a target.",
    "Put the real target's values in the example config; reference secrets as env://NAME rather than "
    "writing them there.",
    origin="forge",
)


@static(LIVE_EXAMPLE_VALUES)
def example_values(code: DestinationCode) -> Finding:
    """live.example_values: the example config holds no value render_destination made up."""
    details = destination_config(code, code.example_rel)
    if details is None:
        return LIVE_EXAMPLE_VALUES.skip(
            "No destination config to judge (see import.config_validate).", IMPORT_CONFIG_VALIDATE.id
        )
    made_up = sorted(k for k, v in details.items() if v == f"{k}{PLACEHOLDER}")
    if made_up:
        return LIVE_EXAMPLE_VALUES.fail(
            f"{code.example_rel} still holds placeholder values for {', '.join(made_up)} "
            f"(e.g. {made_up[0]}: {made_up[0]}{PLACEHOLDER}): the sync it describes cannot reach a real target.",
            file=code.example_rel,
        )
    return LIVE_EXAMPLE_VALUES.passed("The example config holds no placeholder value.")


def _checks_on_sqlite_for_a_server(code: DestinationCode, details: dict) -> str | None:
    """The server's SQLAlchemy scheme when a sql-recipe destination declares its driver but checks on SQLite."""
    declared = spec.stored(code.ws, code.name)
    if declared is None or declared.recipe != "sql" or not str(details.get("url", "")).startswith("sqlite"):
        return None
    return dependencies.sql_scheme(declared.dependencies)
