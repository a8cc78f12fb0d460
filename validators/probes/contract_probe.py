"""Run by validate_destination in the workspace's own Python: import bizon, validate the example config,
and drive the destination once the way the engine does. Prints a JSON marker line per step; the rest is log.

Usage: python contract_probe.py ROOT NAME EXAMPLE_YAML import
       python contract_probe.py ROOT NAME EXAMPLE_YAML contract CHECK_YAML DESTINATION_ID
The example config is only validated; the contract steps write to the check config's scratch target, and the
destination's drop_written() then removes what they wrote (the outcome goes to the drops file, see note()).
This file must import nothing from bizon_forge: it runs with the workspace's interpreter and packages.
"""

# annotations stay unevaluated: the workspace's interpreter may be a Python 3.9 (bizon supports it)
from __future__ import annotations

import json
import os
import sys
import threading
import time
import traceback
from datetime import timezone
from typing import cast

MARKER = "BIZON_FORGE_PROBE "
# Where each destination_id written to scratch is noted, then what drop_written() did with it: a line of JSON each,
# appended (several probes of one validation run at once), in the validation's own folder, the one above the folder
# each of its units gets as BIZON_FORGE_SCRATCH (connector.SCRATCH_VAR). Read now: the destination's code runs later.
SCRATCH_VAR = "BIZON_FORGE_SCRATCH"
DROPS_FILE = "drops.jsonl"
DROPS = (
    os.path.join(os.path.dirname(os.path.abspath(os.environ[SCRATCH_VAR])), DROPS_FILE)
    if os.environ.get(SCRATCH_VAR)
    else None
)
DROP_BUDGET_S = 30.0  # for all the drops of one probe: a hook that hangs must not hold the validation
REGISTRATION_FILES = ("bizon/destination/config.py", "bizon/common/models.py", "bizon/destination/destination.py")
TRACE_CHARS = 1500


def code_module(name: str) -> str:
    """bizon_forge.connector.Connector(name).code_module, repeated because this script cannot import bizon-forge
    (tests/test_connector.py holds the two equal)."""
    return f"bizon.connectors.destinations.{name}.src.destination"


class ContractBroken(Exception):
    """The destination answered, but not as the engine needs: its own traceback would only show this probe."""


def _error(error: BaseException) -> dict:
    errors = getattr(error, "errors", None)
    if type(error).__name__ == "ValidationError" and callable(errors):
        # pydantic's own text repeats the input and a docs link; the field paths and messages are what helps.
        found = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors()[:3]]
        return {"ok": False, "error": "; ".join(found)[:600], "trace": str(error)[-TRACE_CHARS:]}
    if isinstance(error, ContractBroken):
        return {"ok": False, "error": str(error)[:600], "trace": ""}
    trace = "".join(traceback.format_exception(error))
    return {"ok": False, "error": f"{type(error).__name__}: {error}"[:600], "trace": trace[-TRACE_CHARS:]}


def _step(out, result: dict, key: str, fn):
    """Run one step and report it at once: if a later step hangs, what finished is already on record."""
    started = time.perf_counter()
    try:
        value = fn()
        result[key] = {"ok": True}
    except BaseException as error:  # a destination may raise anything, SystemExit included
        value = None
        result[key] = _error(error)
    result[key]["seconds"] = round(time.perf_counter() - started, 3)
    sys.stdout.flush()
    sys.stderr.flush()
    out.write(MARKER + json.dumps({"step": key, **result[key]}, default=str) + "\n")
    out.flush()
    return value


def import_bizon(root: str, name: str) -> None:
    import bizon.common.models  # noqa: F401
    import bizon.destination.config as enum_module

    origin = os.path.realpath(enum_module.__file__)
    if not origin.startswith(os.path.realpath(root) + os.sep):
        raise ImportError(f"bizon is imported from {origin}, not from the workspace {root}")


def _config(name: str, example: str, destination_id: str | None = None):
    import yaml
    from bizon.common.models import BizonConfig

    with open(example) as handle:
        raw = yaml.safe_load(handle)
    if destination_id and isinstance((raw.get("destination") or {}).get("config"), dict):
        raw["destination"]["config"]["destination_id"] = destination_id
    config = BizonConfig.model_validate(resolve_config(raw))
    if str(getattr(config.destination.name, "value", config.destination.name)) != name:
        raise ValueError(f"the example's destination.name is {config.destination.name!r}, not {name!r}")
    return config


def resolve_config(raw):
    """What bizon.engine.engine.resolve_config does, without importing the whole runner (half a second)."""
    from bizon.engine.resolvers import resolve_references_in_config

    def legacy(node):
        if isinstance(node, dict):
            return {k: legacy(v) for k, v in node.items()}
        if isinstance(node, str) and node.startswith("BIZON_ENV_"):
            return os.environ.get(node)
        return node

    return resolve_references_in_config(config=legacy(raw))


def build_destination(config, name: str):
    from bizon.common.models import SyncMetadata
    from bizon.destination.destination import AbstractDestination, DestinationFactory
    from bizon.engine.backend.adapters.sqlalchemy.backend import SQLAlchemyBackend
    from bizon.engine.backend.adapters.sqlalchemy.config import SQLiteConfigDetails
    from bizon.engine.backend.config import BackendTypes
    from bizon.engine.backend.models import JobStatus
    from bizon.monitoring.noop.monitor import NoOpMonitor
    from bizon.source.callback import NoOpSourceCallback

    # The engine's own sqlite file backend, in the scratch directory this probe runs in.
    backend = SQLAlchemyBackend(
        config=SQLiteConfigDetails(database="bizon", schema="NOT_USED_IN_SQLITE"), type=BackendTypes.SQLITE
    )
    backend.create_all_tables()
    job = backend.create_stream_job(
        name=config.name,
        source_name=config.source.name,
        stream_name=config.source.stream,
        sync_mode=config.source.sync_mode,
        job_status=JobStatus.RUNNING,
    )
    metadata = SyncMetadata.from_bizon_config(job_id=job.id, config=config)
    destination = DestinationFactory.get_destination(
        sync_metadata=metadata,
        config=config.destination,
        backend=backend,
        source_callback=NoOpSourceCallback(config={}),
        monitor=NoOpMonitor(sync_metadata=metadata, monitoring_config=None),
    )
    expected = code_module(name)
    if type(destination).__module__ != expected:
        raise ContractBroken(f"the factory returned {type(destination).__module__}.{type(destination).__name__}")
    if not isinstance(destination, AbstractDestination):
        raise ContractBroken(f"{type(destination).__name__} is not an AbstractDestination")
    return destination


def _records(rows: int = 3):
    """A real frame of bizon's destination record schema, as the buffer hands it over."""
    from datetime import datetime, timedelta

    import orjson
    import polars as pl
    from bizon.destination.models import destination_record_schema

    now = datetime.now(tz=timezone.utc)  # noqa: UP017 - runs on the workspace's Python, maybe 3.9
    data = [
        {
            "bizon_id": f"{i:032x}",
            "bizon_extracted_at": now,
            "bizon_loaded_at": now,
            "source_record_id": str(1000 + i),
            "source_timestamp": now - timedelta(minutes=i),
            "source_data": orjson.dumps({"id": 1000 + i, "name": f"record {i}", "tags": ["a", "b"]}).decode(),
        }
        for i in range(rows)
    ]
    return pl.DataFrame(data, schema=destination_record_schema)


def _write(destination) -> None:
    answer = destination.write_records(df_destination_records=_records())
    shown = repr(answer)[:200]
    if not isinstance(answer, (tuple, list)) or len(answer) != 2:
        raise ContractBroken(f"it returned {shown}, not a (bool, str | None) pair")
    ok, message = answer
    if not isinstance(ok, bool) or not (message is None or isinstance(message, str)):
        raise ContractBroken(f"it returned {shown}, not a (bool, str | None) pair")
    if not ok:
        raise ContractBroken(f"it returned (False, {message!r})")


def note(destination_id: str, outcome: str, error: str | None = None) -> None:
    """Record in the drops file that destination_id was `written` to scratch, or what dropping it did: `dropped`,
    `no_hook` (the destination has no drop_written) or `failed` (with the error)."""
    if not DROPS:
        return
    line = json.dumps({"destination_id": destination_id, "outcome": outcome, "error": error}) + "\n"
    fd = os.open(DROPS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode())  # one short write in append mode: lines of concurrent probes do not mix
    finally:
        os.close(fd)


def _drop_one(destination) -> tuple[str, str | None]:
    hook = getattr(type(destination), "drop_written", None)
    if not callable(hook):
        return "no_hook", None
    destination.drop_written()
    # The hook's word is not taken: what read_back() still answers stayed (data.read_back judges a reader that
    # raises or lacks; it then cannot judge the hook).
    try:
        left = destination.read_back()
    except Exception:
        left = None
    if getattr(left, "height", 0):
        return "failed", f"read_back() still answers {left.height} record(s) after drop_written()"
    return "dropped", None


def _drop_within(build, destination_id: str, seconds: float) -> tuple[str, str | None]:
    """_drop_one in a thread of its own, given `seconds`: a hook that hangs is left behind (the probe exits).
    `build` may answer several destinations for the id (ways it may have been written): the worst outcome counts."""
    done: dict = {}

    def work():
        try:
            built = build(destination_id)
            outcomes = [_drop_one(d) for d in (built if isinstance(built, tuple) else (built,))]
            done["outcome"] = max(outcomes, key=lambda o: ("dropped", "no_hook", "failed").index(o[0]))  # the worst
        except BaseException as error:  # a destination may raise anything, SystemExit included
            done["outcome"] = ("failed", f"{type(error).__name__}: {error}"[:300])

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    worker.join(seconds)
    return done.get("outcome", ("failed", f"drop_written() did not finish within {seconds:.0f} s"))


def drop_all(build, destination_ids: list, budget: float = DROP_BUDGET_S) -> None:
    """Call drop_written() on a destination built for each id (`build(destination_id)`) within what is left of
    `budget`, and note what it did. Never raises: cleaning up never fails a check."""
    started = time.monotonic()
    deadline = started + budget
    hookless = False
    for destination_id in destination_ids:
        left = deadline - time.monotonic()
        if hookless:
            note(destination_id, "no_hook")
        elif left <= 0:
            note(destination_id, "failed", f"not tried: the {budget:.0f} s for dropping ran out")
        else:
            outcome, problem = _drop_within(build, destination_id, left)
            hookless = outcome == "no_hook"  # the class has none: the other ids need no build to say so
            note(destination_id, outcome, problem)
    try:  # for the log; the destination may have closed or replaced sys.stdout
        print(f"--- drop_written(): {len(destination_ids)} id(s) in {time.monotonic() - started:.2f} s", flush=True)
    except (ValueError, OSError):
        pass


def forget_bytecode(root: str, name: str) -> None:
    """Drop cached byte-code of the files an agent edits: Python trusts a .pyc whose source has the same
    size and mtime second, so two quick edits of equal length would run the old code."""
    import glob
    import importlib.util

    sources = glob.glob(os.path.join(root, "bizon", "connectors", "destinations", name, "**", "*.py"), recursive=True)
    sources += [os.path.join(root, *rel.split("/")) for rel in REGISTRATION_FILES]
    for source in sources:
        try:
            os.remove(importlib.util.cache_from_source(source))
        except (OSError, ValueError):
            pass


def main() -> None:
    root, name, example, mode = sys.argv[1:5]
    check, destination_id = sys.argv[5:7] if mode == "contract" else (None, None)
    forget_bytecode(root, name)
    # The real stdout, kept aside: the destination may print, redirect or close sys.stdout.
    out = os.fdopen(os.dup(1), "w")
    result: dict = {}
    _step(out, result, "import", lambda: import_bizon(root, name))
    config = _step(out, result, "config", lambda: _config(name, example)) if result["import"]["ok"] else None
    if config is not None and mode == "contract":
        check_rel = cast(str, check)  # mode contract: argv gave it
        destination = _step(
            out, result, "build", lambda: build_destination(_config(name, check_rel, destination_id), name)
        )
        if destination is not None:
            note(cast(str, destination_id), "written")
            _step(out, result, "write", lambda: _write(destination))
            if result["write"]["ok"] and str(getattr(destination.sync_metadata.sync_mode, "value", "")) != "stream":
                _step(out, result, "finalize", destination.finalize)
            drop_all(lambda _: destination, [destination_id])
    os._exit(0)  # threads a destination left running must not keep the probe alive


if __name__ == "__main__":
    main()
