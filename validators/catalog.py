"""Every check with its stable id. The checklist an agent reads is generated from here: they cannot drift."""

from dataclasses import dataclass
from pathlib import Path

# Static failures that stop bizon from importing: a runtime failure after one of them is that failure again.
IMPORT_BLOCKERS = (
    "source.syntax",
    "registration.enum",
    "registration.union",
    "checklist.literal_name",
    "trap.literal_other_member",
    "trap.models_import_in_config",
    "trap.optional_import_in_config",
)
BUILD_BLOCKERS = (
    *IMPORT_BLOCKERS,
    "checklist.details_base",
    "registration.factory",
    "registration.same_name",
    "trap.factory_top_level_import",
    "checklist.destination_base",
    "checklist.check_connection_bool",
    "trap.write_records_signature",
)
WRITE_BLOCKERS = (
    *BUILD_BLOCKERS,
    "trap.write_records_raises",
    "checklist.write_records_returns",
    "trap.setup_in_check_connection",
)
DATA = (
    "data.read_back",
    "data.exact",
    "data.several_flushes",
    "data.hostile",
    "data.empty_batch",
    "data.full_refresh_twice",
    "data.incremental",
    "data.stream",
    "data.stream_routing",
    "data.failed_flush",
    "data.full_disk",
    "data.failed_publish",
    "data.unreliable_target",
)
RUNTIME = (
    "import.models",
    "import.config_validate",
    "contract.build",
    "contract.write_records",
    "contract.finalize",
)
# The data checks: no answer while the code cannot write, there is no scratch target, or nothing reads back;
# and a record that does not land exact explains every later data failure.
DATA_BLOCKERS = (*WRITE_BLOCKERS, *RUNTIME, "live.check_config", "live.check_references", "live.bizon_secrets_check")
READ_BLOCKERS = (*DATA_BLOCKERS, "data.read_back")
LANDED = (*READ_BLOCKERS, "data.exact")


@dataclass(frozen=True)
class Check:
    id: str
    group: str
    what: str  # the checklist line: what must hold
    why: str
    fix: str  # the default hint of a failure
    limits: str = ""  # what the check does not judge, so a pass claims no more than was checked
    level: str = "fast"  # fast | full (full runs fast's checks too)
    origin: str = "guide"  # guide (its Validation Checklist) | facts (a trap the guide misses) | forge
    explained_by: tuple[str, ...] = ()  # a failure here after one of these failed is reported as a skip
    needs_finished_code: bool = False  # not run while agent.* checks fail: running unfinished code teaches nothing
    # Its skip means "does not apply here" (no secret field, no variable of its own), not a limit of what was
    # proven: the summary counts it, the answer does not list it unless verbose.
    skip_is_not_applicable: bool = False


CHECKS: tuple[Check, ...] = (
    Check(
        "source.syntax",
        "Source",
        "The destination's Python files and the three registration files parse.",
        "Nothing else can be checked in a file Python cannot read.",
        "Fix the syntax error at the reported line.",
        origin="forge",
    ),
    # -- the guide's checklist: config ------------------------------------------------------------
    Check(
        "checklist.init_file",
        "Config",
        "`src/__init__.py` exists.",
        "The guide's checklist asks for it (bizon's own destinations are namespace packages; it is harmless).",
        "Create an empty `src/__init__.py` in the destination folder.",
    ),
    Check(
        "checklist.details_base",
        "Config",
        "The details config (the type of the main config's `config:` field) extends "
        "`AbstractDestinationDetailsConfig`.",
        "bizon reads buffer_size, buffer_flush_timeout, destination_id and more from that base class.",
        "Derive the details class from `bizon.destination.config.AbstractDestinationDetailsConfig`.",
        limits="Only a class defined in config.py is judged; an imported one is a skip.",
    ),
    Check(
        "checklist.config_base",
        "Config",
        "The main config (the class with `name: Literal[...]`) extends `AbstractDestinationConfig`.",
        "`BizonConfig.destination` is a Union of such classes, told apart by `name`.",
        "Derive the main config from `bizon.destination.config.AbstractDestinationConfig`.",
    ),
    Check(
        "checklist.literal_name",
        "Config",
        "`name: Literal[DestinationTypes.X]` names the enum member whose value is the destination's name.",
        "An unknown member raises AttributeError when bizon imports the config, breaking every command.",
        "Write `name: Literal[DestinationTypes.<NAME>]` with the member you added to DestinationTypes.",
        explained_by=("source.syntax",),
    ),
    Check(
        "checklist.field_descriptions",
        "Config",
        "Every required field of the details config has a non-empty `Field(..., description=...)`. Skip when "
        "config.py defines no details class (none, or an imported one): nothing to judge.",
        "The description is the only documentation a user of the YAML gets.",
        'Declare it as `name: str = Field(..., description="What it is")`.',
    ),
    # -- the guide's checklist: implementation ----------------------------------------------------
    Check(
        "checklist.destination_base",
        "Implementation",
        "The destination class (the one the factory returns) extends `AbstractDestination`.",
        "The engine drives the buffer, cursors and finalize through that base class.",
        "Derive it from `bizon.destination.destination.AbstractDestination` and call `super().__init__(...)`.",
    ),
    Check(
        "checklist.check_connection_bool",
        "Implementation",
        "`check_connection()` is defined, annotated `-> bool` if at all, cannot end without a return, and returns "
        "no literal that is not a bool.",
        "It is abstract: without it the class cannot be instantiated.",
        "Define `def check_connection(self) -> bool:` returning True or False.",
        limits="Judges literal returns only: a returned variable or call is not followed (the pass says which).",
    ),
    Check(
        "checklist.write_records_returns",
        "Implementation",
        "`write_records()` cannot end without a return, and its literal returns are `(bool, str | None)` pairs.",
        "bizon unpacks `success, error_msg = self.write_records(...)`; anything else crashes the consumer.",
        "Return `True, None` on success and `False, message` on failure.",
        limits="Judges literal returns only: a returned variable or call is not followed (the pass says which).",
    ),
    Check(
        "checklist.errors_logged",
        "Implementation",
        "Warns (never fails) when an `except` block of `write_records()` returns `(False, ...)` without a "
        "logger call in it.",
        "The returned message is all the engine keeps; a log line with the context saves a rerun.",
        "In each `except` of write_records call `logger.error(...)` before `return False, message`.",
    ),
    # -- the guide's checklist: registration ------------------------------------------------------
    Check(
        "registration.enum",
        "Registration",
        "`DestinationTypes` in `bizon/destination/config.py` has a member whose value is the destination's name.",
        "Without it `bizon.common.models` raises AttributeError on import: even `bizon --help` dies.",
        'Call apply_registrations, or add `NAME = "name"` to DestinationTypes.',
        explained_by=("source.syntax",),
    ),
    Check(
        "registration.union",
        "Registration",
        "`bizon/common/models.py` imports the main config class from the destination's `src.config` and "
        "lists "
        "it in `BizonConfig.destination`'s Union.",
        "Without it config validation fails: \"Input tag 'x' found using 'name' does not match any of the "
        'expected tags".',
        "Call apply_registrations, or add the import and the Union member by hand.",
        explained_by=("source.syntax",),
    ),
    Check(
        "registration.factory",
        "Registration",
        "`DestinationFactory.get_destination()` has a branch that imports and returns the destination class.",
        'Without it the config validates but every run fails with "Destination ... not found".',
        "Call apply_registrations, or add an `elif` before the final `raise`, its import inside the branch.",
        explained_by=("source.syntax",),
    ),
    Check(
        "registration.same_name",
        "Registration",
        "All three registrations, the config's Literal and the example YAML use the identical name string.",
        "One differing spelling routes a valid config to another destination or to none.",
        "Use the folder name as the enum value and its UPPER form as the member, everywhere.",
        explained_by=("source.syntax", "registration.enum", "registration.factory", "checklist.literal_name"),
    ),
    # -- traps the guide does not mention ---------------------------------------------------------
    Check(
        "trap.literal_other_member",
        "Traps",
        "The config's Literal does not name another destination's member (e.g. a copy-pasted `DestinationTypes.FILE`).",
        "pydantic raises TypeError '...mapped to multiple choices' at import time, breaking every bizon command.",
        "Name the new destination's own member in `name: Literal[DestinationTypes.<NAME>]`.",
        origin="facts",
        explained_by=("source.syntax",),
    ),
    Check(
        "trap.optional_import_in_config",
        "Traps",
        "`config.py` imports only the standard library, pydantic, bizon and bizon's required dependencies.",
        "`bizon/common/models.py` imports every destination's config.py, so an optional package there breaks "
        "a "
        "bare bizon install (bizon's tests/cli/test_cli_imports.py enforces this).",
        "Move the import into destination.py (or inside the function that needs it).",
        origin="facts",
    ),
    Check(
        "trap.models_import_in_config",
        "Traps",
        "`config.py` does not import `bizon.common.models`.",
        "models.py imports config.py: the cycle fails with a partially initialised module.",
        "Import SyncMetadata and friends in destination.py only.",
        origin="facts",
    ),
    Check(
        "trap.factory_top_level_import",
        "Traps",
        "`bizon/destination/destination.py` imports the destination module inside its factory branch, not at the top.",
        "The destination module imports AbstractDestination from that same file: a top-level import is circular.",
        "Move the import into the `elif config.name == DestinationTypes.<NAME>:` branch.",
        origin="facts",
    ),
    Check(
        "trap.setup_in_check_connection",
        "Traps",
        "Set-up (clients, tables, folders) does not live only in `check_connection()`.",
        "The engine never calls check_connection() on a destination, so that set-up never runs.",
        "Do the set-up in `__init__` (or lazily in write_records); check_connection may reuse it.",
        origin="facts",
    ),
    Check(
        "trap.write_records_raises",
        "Traps",
        "`write_records()` has no `raise` that can escape it.",
        "The checklist asks destinations to return `(False, message)`; an escaping exception skips the "
        "destination's own error reporting.",
        "Wrap the work in `try/except Exception` and `return False, message` in the handler.",
        origin="facts",
    ),
    Check(
        "trap.write_records_signature",
        "Traps",
        "`write_records` is a plain method taking exactly `df_destination_records`.",
        "bizon calls `self.write_records(df_destination_records=...)` by keyword.",
        "Declare `def write_records(self, df_destination_records: pl.DataFrame) -> Tuple[bool, Union[str, None]]:`.",
        origin="facts",
    ),
    Check(
        "trap.staging_without_finalize",
        "Traps",
        "A destination that names a staging target overrides `finalize()` with a body that does something.",
        "`finalize()` defaults to doing nothing: staged records would never reach the target.",
        "In finalize(), replace the target with the staging copy (full_refresh) or append it (incremental).",
        limits="Judged by names only (stage, staging, temp/tmp table, `_tmp`): what is written where and what "
        "finalize() does with it are not followed.",
        origin="facts",
    ),
    Check(
        "trap.finalize_returns_false",
        "Traps",
        "`finalize()` never answers a failure with a literal `return False`.",
        "bizon ignores finalize()'s return value: a publish that failed and returned False looks like a success "
        "(0.5.x and 0.6.x alike).",
        "Raise in finalize() when publishing fails (log the context first); bizon then ends the run as failed.",
        limits="What it returns is not judged otherwise.",
        origin="facts",
    ),
    Check(
        "trap.secret_logged",
        "Traps",
        "Secret fields are `SecretStr`, and no log line or print holds the config, a secret field or "
        "`get_secret_value()`.",
        "bizon prints whole configs in some errors (the factory's 'not found' message); log lines end up in CI output.",
        "Type secrets as `SecretStr`; log only non-secret fields.",
        origin="facts",
    ),
    Check(
        "trap.plaintext_secret",
        "Traps",
        "No secret field of the details config (SecretStr, marked secret in the spec, or named like a secret) holds "
        "a plain-text value in the example or check config: each is an env:// or gsm:// reference (whole or "
        "inline ${...}), empty, or a URL without a password. Skip when there is no secret field or neither config "
        "sets one.",
        "Both configs are committed with the tree, and bizon prints whole configs in some errors. bizon resolves "
        "env://NAME (and gsm:// on 0.6.x), and `bizon run` reads the tree's .env.",
        "Reference the secret as env://NAME and set NAME in the workspace's .env (kept out of git) or the environment.",
        skip_is_not_applicable=True,
        origin="facts",
    ),
    # -- left for the agent ----------------------------------------------------------------------
    Check(
        "agent.todo_left",
        "Left for the agent",
        "No `FORGE-TODO` marker is left in the destination's files.",
        "render_destination marks every place where code must be written with FORGE-TODO.",
        "Write the code each FORGE-TODO describes, then delete the marker.",
        origin="forge",
    ),
    Check(
        "agent.pass_body",
        "Left for the agent",
        "No function or method in the destination's files has a body that is only `pass` or `...`.",
        "The guide's skeleton ends in `pass`; a stub that silently does nothing loses records.",
        "Implement the function, or delete it if nothing calls it.",
        origin="forge",
    ),
    Check(
        "agent.not_implemented",
        "Left for the agent",
        "No `NotImplementedError` is left in the destination's files.",
        "It marks code that was never written.",
        "Implement that code path; if it is unsupported on purpose, raise ValueError saying why.",
        origin="forge",
    ),
    Check(
        "agent.placeholder",
        "Left for the agent",
        "No template placeholder (`{{ ... }}`, `{% ... %}`) is left in the destination's files or example YAML.",
        "Placeholders from the guide's templates are not valid values.",
        "Replace each placeholder with the real name or value (see the guide's placeholder table).",
        origin="forge",
    ),
    # -- format ------------------------------------------------------------------------------------
    Check(
        "format.ruff_format",
        "Format",
        "`ruff format --check` passes on the destination's files and on the lines it added to the three "
        "registration files, with the workspace's ruff config.",
        "The guide's final step; bizon's CI runs the formatter.",
        "Call validate_destination with fix=true, or run `ruff format` on the listed files.",
    ),
    Check(
        "format.ruff_check",
        "Format",
        "`ruff check` passes on the same files and lines, with the workspace's ruff config.",
        "bizon's pre-commit runs the linter (isort order, unused imports, pyupgrade).",
        "Call validate_destination with fix=true for the fixable rules; fix the rest by hand.",
    ),
    # -- where the live checks write -------------------------------------------------------------
    Check(
        "live.check_config",
        "Scratch target",
        "`config/<name>.check.yml` exists, is a bizon config for this destination, and its destination config "
        "differs from the example's in at least one field other than destination_id and buffer settings. The "
        "contract, data and smoke checks write only there. It warns when no field chooses the target, and when a "
        "sql destination that declares a server's driver checks on SQLite (a green then proves the code on SQLite "
        "only).",
        "The example config is the user's real sync: a check that writes there replaces someone's records.",
        "Point the check config (render_destination writes it next to the example) at a scratch target: a "
        "database, folder or endpoint that holds no real data. It may use env://BIZON_FORGE_SCRATCH (a fresh "
        "folder) and env://BIZON_FORGE_RECEIVER_URL (a local HTTP receiver), both made and removed by each "
        "validation.",
        limits="That it differs is checked, not that it is scratch.",
        origin="forge",
    ),
    Check(
        "live.check_references",
        "Scratch target",
        "Every `env://NAME` the check config references is set, in the environment of the bizon-forge server "
        "or in the workspace's `.env` (the environment wins, as in `bizon run`). The live checks get exactly "
        "those variables and no other of the server's environment; skip when the check config references none.",
        "The checks run with a scrubbed environment: an unset reference would stop every live check with bizon's "
        "'environment variable is not set'.",
        "Set the variable in the workspace's .env (bizon run reads it too) or in the server's environment.",
        skip_is_not_applicable=True,
        origin="forge",
    ),
    Check(
        "live.bizon_secrets_check",
        "Scratch target",
        "`bizon secrets check` on the check config (bizon's own masked dry run of its env:// and gsm:// references, "
        "inline ${...} included) resolves every reference, with the variables the live checks get and the tree's "
        ".env. Skip when the config references nothing or the tree's bizon has no `secrets check`.",
        "bizon resolves references itself, with rules of its own (inline syntax, gsm:// settings): its word on "
        "the check config is the one `bizon run` will follow.",
        "Fix the references bizon names (a typo in the name, an unclosed ${...}), or set the variables.",
        level="full",
        origin="facts",
    ),
    Check(
        "live.example_values",
        "Scratch target",
        "The example config (the user's real sync) holds none of the placeholder values render_destination "
        "writes for fields without a default (`<field>-value`).",
        "`next` ends by printing the command that runs the example: with placeholders it cannot reach a target.",
        "Put the real target's values in the example config; reference secrets as env://NAME rather than "
        "writing them there.",
        origin="forge",
    ),
    # -- import and contract (a subprocess in the workspace's Python) ------------------------------
    Check(
        "import.models",
        "Import and contract",
        "`import bizon.common.models` works in the workspace's Python, and imports the workspace's bizon.",
        "Every bizon command starts with that import.",
        "Read the excerpt: the last line names the module and the error.",
        origin="facts",
        explained_by=IMPORT_BLOCKERS,
    ),
    Check(
        "import.config_validate",
        "Import and contract",
        "The example YAML (`config/<name>.example.yml`) validates as a BizonConfig and targets this destination.",
        "It is what `bizon config validate` and `bizon run` check first.",
        "Fix the fields the validation error names, in the YAML or in config.py.",
        origin="facts",
        explained_by=(*IMPORT_BLOCKERS, "registration.same_name"),
    ),
    Check(
        "contract.build",
        "Import and contract",
        "`DestinationFactory.get_destination()` builds the destination from the check config "
        "(`config/<name>.check.yml`) on a sqlite backend.",
        "This is how the engine builds it in a run.",
        "Read the excerpt: the constructor or the factory branch raised.",
        origin="forge",
        # at full, bizon's own dry run of the check config's references names an unresolvable one first
        explained_by=(*BUILD_BLOCKERS, "live.bizon_secrets_check"),
        needs_finished_code=True,
    ),
    Check(
        "contract.write_records",
        "Import and contract",
        "`write_records()` on a real six-column DataFrame of 3 records (bizon's destination_record_schema) "
        "returns `(True, None)` and raises nothing. The records go to the check config's scratch target, never "
        "to the example's.",
        "The engine passes exactly that frame and unpacks exactly that pair.",
        "Read the excerpt; the frame holds bizon_id, bizon_extracted_at, bizon_loaded_at, source_record_id, "
        "source_timestamp, source_data.",
        limits="Not judged here: what landed (the full level's data.* checks read it back).",
        origin="forge",
        explained_by=WRITE_BLOCKERS,
        needs_finished_code=True,
    ),
    Check(
        "contract.finalize",
        "Import and contract",
        "`finalize()` after that write raises nothing.",
        "It runs once after the last flush; an exception there fails the run after the data was written.",
        "Read the excerpt: publishing the staged records failed.",
        origin="forge",
        explained_by=WRITE_BLOCKERS,
        needs_finished_code=True,
    ),
    # -- full level ----------------------------------------------------------------------------------
    Check(
        "tests.destination",
        "Tests and smoke",
        "The destination's own tests (`tests/connectors/destinations/<name>/`) pass, run with the tree's "
        "pytest "
        "and `--confcutdir` at that folder.",
        "The guide's `pytest tests/` fails offline; the destination's tests are the part that is about it.",
        "Fix the failing test or the code it tests; they must run offline and bring their own fixtures.",
        level="full",
        explained_by=(*WRITE_BLOCKERS, *RUNTIME),
        needs_finished_code=True,
    ),
    Check(
        "tests.bizon_suite",
        "Tests and smoke",
        "A service-free part of bizon's suite passes: tests/cli/test_cli_imports.py and "
        "tests/destination/test_config.py.",
        "They guard what a new destination can break: optional imports on the CLI path and destination configs.",
        "Read the failing test; usually an optional import reached config.py.",
        level="full",
        origin="facts",
        explained_by=(*IMPORT_BLOCKERS, "import.models"),
    ),
    Check(
        "data.read_back",
        "Data, read back from the scratch target",
        "The destination defines `read_back(self) -> polars.DataFrame`: what its target holds for its "
        "`destination_id`, with at least source_record_id, source_data and source_timestamp; an id never written "
        "reads back empty.",
        "Every data.* check judges what landed by reading it back; bizon's own log line only echoes write_records' "
        "return value.",
        "Define read_back(): query the target for self.destination_id and return those columns as a polars "
        "DataFrame (an empty one when the target does not exist yet).",
        level="full",
        origin="forge",
        explained_by=DATA_BLOCKERS,
        needs_finished_code=True,
    ),
    Check(
        "data.exact",
        "Data, read back from the scratch target",
        "A full_refresh run of 3 records reads back field-exact: the same source_record_ids, source_data equal as "
        "JSON, source_timestamp equal to the microsecond.",
        "A dropped or overwritten column passes every check that only counts rows.",
        "Compare the excerpt's record with what write_records stored: keep source_data whole and source_timestamp "
        "as sent (not bizon_loaded_at).",
        level="full",
        origin="forge",
        explained_by=READ_BLOCKERS,
        needs_finished_code=True,
    ),
    Check(
        "data.several_flushes",
        "Data, read back from the scratch target",
        "A run of 3 flushes (2 + 3 + 1 records) then finalize() reads back all 6.",
        "A large sync flushes many times; a destination that keeps only the last flush loses the rest.",
        "Stage every flush of a run (append to the staging target); publish them all in finalize().",
        level="full",
        origin="forge",
        explained_by=LANDED,
        needs_finished_code=True,
    ),
    Check(
        "data.hostile",
        "Data, read back from the scratch target",
        "7 hostile records read back exact: non-ASCII and emoji, quotes and backslashes, newlines, a "
        "100,000-character source_data, 60-deep JSON, two records sharing a source_record_id in one batch.",
        "Real data holds all of these; a 64 KB TEXT column, a latin1 table or a primary key on source_record_id "
        "each loses some.",
        "Store source_data in a column that holds any length and any Unicode (LONGTEXT/JSON, utf8mb4); do not key "
        "on source_record_id.",
        level="full",
        origin="forge",
        explained_by=LANDED,
        needs_finished_code=True,
    ),
    Check(
        "data.empty_batch",
        "Data, read back from the scratch target",
        "A flush of 0 records returns (True, None) and changes nothing; the next flush lands.",
        "bizon may hand over an empty frame; a destination that fails or writes a blank row on it breaks the run.",
        "Return (True, None) early when the frame has no rows.",
        level="full",
        origin="forge",
        explained_by=LANDED,
        needs_finished_code=True,
    ),
    Check(
        "data.full_refresh_twice",
        "Data, read back from the scratch target",
        "Two full_refresh runs (5 records, then 3 others) leave exactly the second run's 3.",
        "full_refresh promises the target equals the source; appending doubles it on every run.",
        "Stage the run's flushes and replace the target with the staging in finalize(), in one atomic step; "
        "over HTTP, replace the way the spec's full_refresh says the endpoint can.",
        limits='For a destination that POSTs to the local receiver: it honours `"replace": true` when the spec\'s '
        "full_refresh is replace_flag (the spec says the endpoint does; that is not proven), and ignores it when "
        "the spec says delete_first (only a DELETE ?destination_id= then empties it).",
        level="full",
        origin="forge",
        explained_by=LANDED,
        needs_finished_code=True,
    ),
    Check(
        "data.incremental",
        "Data, read back from the scratch target",
        "Two incremental runs (3 records, then 2) leave all 5.",
        "incremental promises to add to the target; replacing it loses what earlier runs wrote.",
        "Stage the run's flushes and append them to the target in finalize().",
        level="full",
        origin="forge",
        explained_by=LANDED,
        needs_finished_code=True,
    ),
    Check(
        "data.stream",
        "Data, read back from the scratch target",
        "In stream mode each write_records lands at once, without finalize() (bizon never calls it there).",
        "Records staged in stream mode are never published.",
        "In stream mode write straight to the target in write_records().",
        level="full",
        origin="forge",
        explained_by=LANDED,
        needs_finished_code=True,
    ),
    Check(
        "data.stream_routing",
        "Data, read back from the scratch target",
        "One destination object, its destination_id switched between writes (as bizon's stream runner does), puts "
        "each flush under its own id.",
        "bizon's stream runner builds one destination and sets destination_id per group; state cached for the first "
        "id sends every group there.",
        "Key per-target state (a prepared flag, cached columns) by self.destination_id, and read destination_id at "
        "write time.",
        level="full",
        origin="forge",
        explained_by=(*LANDED, "data.stream"),
        needs_finished_code=True,
    ),
    Check(
        "data.failed_flush",
        "Data, read back from the scratch target",
        "After a full_refresh that succeeded, a run whose flush fails (a frame without source_data) leaves the "
        "target as it was: write_records answers (False, message) or raises, and finalize() then raises instead "
        "of publishing (on every bizon version: 0.5.x calls it after a failed flush, 0.6.x ends the run first).",
        "bizon 0.5.x goes on after a failed flush and calls finalize(): a destination that publishes anyway "
        "replaces the target with a partial run.",
        "Remember a failed flush (a flag set where write_records returns False) and make finalize() raise instead "
        "of publishing.",
        level="full",
        origin="forge",
        explained_by=LANDED,
        needs_finished_code=True,
    ),
    Check(
        "data.full_disk",
        "Data, read back from the scratch target",
        "After a full_refresh that succeeded, the disk fills during the next run's second flush (every write that "
        "grows a file of the check's process fails, RLIMIT_FSIZE 0, as a full disk fails it): write_records "
        "answers (False, message) or raises, finalize() raises, the target still reads back the first run's 3 "
        "records exactly, and the next full_refresh, with room again, lands its 4 exactly once. Skip when the "
        "flush succeeded and landed anyway (the target is a server, off this disk).",
        "Local staging, SQLite and files meet a full disk in real runs; a swallowed write error loses records, "
        "a publish after it replaces the target with a partial run.",
        "Let a failed write reach write_records' answer, remember it, and make finalize() raise instead of "
        "publishing; publish by an atomic replace so a failure leaves the last publication whole.",
        limits="EFBIG stands for ENOSPC; a destination that stages in memory or on a server is judged only by what "
        "lands.",
        level="full",
        origin="forge",
        explained_by=LANDED,
        needs_finished_code=True,
    ),
    Check(
        "data.failed_publish",
        "Data, read back from the scratch target",
        "After an incremental run that landed 3 records, the next run's finalize() meets a full disk (as in "
        "data.full_disk): it raises, the target still reads back exactly the 3, and the run after it, with room "
        "again, leaves all 3 + 2 + 2 records exactly once. Skip when finalize() published anyway (the target is "
        "off this disk).",
        "Both bizon versions mark the job succeeded and move an incremental cursor before finalize(): a run "
        "whose publication fails is never extracted again, so its staged records must survive to the next run "
        "and be published once.",
        "Keep incremental staging where the next run finds it (never relative to the working folder), publish it "
        "atomically (a temp file then a rename, or one transaction), and let the next finalize() publish what a "
        "failed one left.",
        limits="The disk is full from the publication's first byte, so one that would fail half-way through an "
        "in-place append is not made; reads use an incremental destination object.",
        level="full",
        origin="facts",
        explained_by=LANDED,
        needs_finished_code=True,
    ),
    Check(
        "data.unreliable_target",
        "Data, read back from the scratch target",
        "Against bizon-forge's local receiver misbehaving like a real ingest API (429 with Retry-After: 2, 503, a "
        "batch stored and then its answer lost), a full_refresh of 3 flushes lands every record exactly once and "
        "no retry comes before its Retry-After; a 401 on every POST fails the batch after one POST.",
        "A new Idempotency-Key per retry duplicates a batch whose answer was lost; a retried 401 turns a wrong "
        "token into minutes of waiting; ignoring Retry-After gets a client throttled harder.",
        "Send one Idempotency-Key per batch, the same on every retry; honour Retry-After; treat 401 and 403 as "
        "permanent.",
        limits="Only a check config that posts to the receiver (env://BIZON_FORGE_RECEIVER_URL) is judged, else skip "
        "(local disks get data.full_disk; SQL servers get no injected failures yet).",
        level="full",
        origin="forge",
        explained_by=LANDED,
        needs_finished_code=True,
    ),
    Check(
        "data.empty_last_buffer",
        "Data, read back from the scratch target",
        "`bizon run` with `buffer_size: 0` (every iteration written at once, the last buffer empty) leaves the "
        "dummy source's 5 records in the target, read back.",
        "bizon returns before finalize() when the buffer is empty at the last iteration: staged records are never "
        "published, and the run says it succeeded.",
        "Override write_or_buffer_records to call finalize() when bizon skips it (the recipes show how), or write "
        "straight to the target.",
        level="full",
        origin="forge",
        explained_by=(*LANDED, "data.several_flushes", "smoke.bizon_run"),
        needs_finished_code=True,
    ),
    Check(
        "smoke.bizon_run",
        "Data, read back from the scratch target",
        "`bizon run` of the dummy source into the check config's target (fast runner settings, its own "
        "destination_id) exits 0, the destination logs no ERROR, and the 5 records read back.",
        "Only a real run proves the engine, the buffer and finalize work together; its log line proves nothing.",
        "Read the excerpt and the full log; the destination's error is usually near the end.",
        level="full",
        origin="facts",
        explained_by=READ_BLOCKERS,
        needs_finished_code=True,
    ),
)

BY_ID = {c.id: c for c in CHECKS}
ORDER = {c.id: i for i, c in enumerate(CHECKS)}


def checklist_markdown(heading: bool = True) -> str:
    """The checklist as markdown: the bizon-forge://checklist resource, or (no heading) README's section."""
    lines = ["# Validation checklist", ""] if heading else []
    lines += [
        "Generated from the validators: each item is one check of `validate_destination`, answered as",
        "one finding with this id. `fast` runs the static, format, import and contract checks (what an",
        "agent calls after each edit); `full` adds the destination's tests, part of bizon's suite, the",
        "data suite and two real `bizon run`s, each read back. Every check that writes records writes",
        "them to the check config's scratch target, never to the example's.",
    ]
    group = None
    for c in CHECKS:
        if c.group != group:
            group = c.group
            lines += ["", f"### {group}", ""]
        level = " (full)" if c.level == "full" else ""
        missed = " *A trap bizon's guide misses.*" if c.origin == "facts" else ""
        lines.append(f"- [ ] `{c.id}`{level}: {c.what}{missed}")
        if c.limits:
            lines.append(f"  *Limits:* {c.limits}")
        lines.append(f"  *Why:* {c.why} *Fix:* {c.fix}")
    return "\n".join(lines) + "\n"


def write_readme_section(readme: Path) -> bool:
    """Put the generated checklist between README's markers; True if the file changed."""
    text = readme.read_text()
    start, end = "<!-- checklist:start -->\n", "<!-- checklist:end -->"
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    new = head + start + checklist_markdown(heading=False) + end + tail
    if new != text:
        readme.write_text(new)
    return new != text


if __name__ == "__main__":  # python -m bizon_forge.validators.catalog README.md
    import sys

    write_readme_section(Path(sys.argv[1]))
