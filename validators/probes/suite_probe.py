"""Run by validate_destination in the workspace's own Python: the standard destination suite, judged by reading
the target back. Every case drives the destination the way bizon's engine does (factory, write_records per
flush, finalize unless streaming), always through the check config's scratch target, each case under its own
destination_id, then compares what `read_back()` answers with what was sent.

Usage: python suite_probe.py ROOT NAME CHECK_YAML BIZON_VERSION RUN_ID suite
       python suite_probe.py ROOT NAME CHECK_YAML BIZON_VERSION RUN_ID readback DESTINATION_ID...
       python suite_probe.py ROOT NAME CHECK_YAML BIZON_VERSION RUN_ID drop DESTINATION_ID...
Prints one JSON marker line per case (or the read-back rows); the rest is log. Imports nothing from
bizon_forge: it runs with the workspace's interpreter. Shares the engine-driving code of contract_probe.py.
What the suite and the read-back wrote to scratch is dropped once read (drop_written(), see contract_probe.note);
`drop` drops what earlier validations left.
"""

# annotations stay unevaluated: the workspace's interpreter may be a Python 3.9 (bizon supports it)
from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
import sys
import time
import traceback
from collections import Counter
from datetime import datetime, timedelta, timezone

import contract_probe as probe

# The fault proxy is a fake (validators/fakes/) that runs inside this probe, in the workspace's interpreter.
sys.path.insert(1, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "fakes"))
import fault_proxy  # noqa: E402
import http_fault_proxy  # noqa: E402

MARKER = "BIZON_FORGE_SUITE "
REQUIRED = ("source_record_id", "source_data", "source_timestamp")
UTC = timezone.utc  # noqa: UP017 - runs on the workspace's Python, maybe 3.9
BASE_TIME = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
DUMMY_SOURCE = {
    "name": "dummy",
    "stream": "creatures",
    "sync_mode": "full_refresh",
    "authentication": {"type": "api_key", "params": {"token": "dummy_key"}},
}


class CaseFailed(Exception):
    """What the case found wrong, in words an agent acts on; `hint` when the catalog's fix does not fit."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.hint = hint


class CaseSkipped(Exception):
    """The case has nothing to judge here (its message says why)."""


# -- records --------------------------------------------------------------------------------------


def record(key: str, data: dict, offset: int) -> dict:
    """One record as bizon's buffer holds it; its timestamps differ from each other to the microsecond."""
    import orjson

    return {
        "bizon_id": hashlib.md5(f"{key}/{offset}".encode()).hexdigest(),
        "bizon_extracted_at": BASE_TIME + timedelta(seconds=2 * offset, microseconds=7),
        "bizon_loaded_at": BASE_TIME + timedelta(days=1, seconds=offset, microseconds=11),
        "source_record_id": key,
        "source_timestamp": BASE_TIME - timedelta(hours=offset, microseconds=offset + 1),
        "source_data": orjson.dumps(data).decode(),
    }


def plain(prefix: str, count: int, start: int = 0) -> list:
    return [
        record(f"{prefix}-{start + i}", {"id": start + i, "name": f"{prefix} {start + i}", "tags": ["a"]}, start + i)
        for i in range(count)
    ]


def hostile() -> list:
    nested: object = {"leaf": "bottom"}
    for depth in range(60):
        nested = {"level": depth, "child": [nested]}
    datas = [
        {"id": 1, "text": "naïve café, Ωmega, 日本語, emoji 🦬🐊🐸 and a flag 🇫🇷"},
        {"id": 2, "text": "quotes ' \" ` and backslashes \\ \\\\ and \\n as text", "sql": "'); DROP TABLE x; --"},
        {"id": 3, "text": "line one\nline two\r\nline three\ttab\u2028separator\x00nul"},
        {"id": 4, "blob": "x" * 100_000},
        {"id": 5, "nested": nested},
        {"id": 6, "same_id": "first of two records sharing one source_record_id"},
        {"id": 7, "same_id": "second of two records sharing one source_record_id", "n": 2.5, "none": None},
    ]
    keys = ["h-1", "h-2", "h-3", "h-4", "h-5", "h-dup", "h-dup"]
    rows = [record(k, d, 100 + i) for i, (k, d) in enumerate(list(zip(keys, datas)))]  # noqa: B905 - Python 3.9 has no strict=
    # The later h-dup is the later one by source_timestamp too: both readings of "last write wins" keep it.
    rows[-1]["source_timestamp"] = rows[-2]["source_timestamp"] + timedelta(seconds=1)
    return rows


def version(key: str, number: int) -> dict:
    """Write `number` of the record `key`: a later number has a later source_timestamp."""
    return record(key, {"id": key, "version": number}, 50 - number)


def frame(rows: list):
    import polars as pl
    from bizon.destination.models import destination_record_schema

    return pl.DataFrame(rows, schema=destination_record_schema)


# -- comparing ------------------------------------------------------------------------------------


def _canonical_json(value) -> str:
    import orjson

    if isinstance(value, (bytes, str)):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            return f"<not JSON: {str(value)[:60]!r}>"
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def _timestamp(value) -> str:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return f"<not a timestamp: {value[:40]!r}>"
    if not isinstance(value, datetime):
        return f"<{type(value).__name__}: {str(value)[:40]}>"
    value = value if value.tzinfo else value.replace(tzinfo=UTC)  # naive columns hold UTC
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def normalized(rows: list) -> list:
    return [
        (str(r["source_record_id"]), _canonical_json(r["source_data"]), _timestamp(r["source_timestamp"])) for r in rows
    ]


def _short(text: str, limit: int = 70) -> str:
    return text if len(text) <= limit else f"{text[: limit - 25]}…({len(text)} chars)…{text[-15:]}"


def compare(sent: list, got: list, what: str) -> None:
    """Raise CaseFailed naming the first difference between the records sent and those read back."""
    want, have = Counter(normalized(sent)), Counter(got)
    if want == have:
        return
    missing, extra = want - have, have - want
    by_id: dict[str, tuple] = {}
    for row in extra.elements():
        by_id.setdefault(row[0], row)
    details = []
    for row in list(missing.elements())[:2]:
        twin = by_id.get(row[0])
        if twin is None:
            details.append(f"record {row[0]!r} is missing")
            continue
        for label, a, b in (("source_data", row[1], twin[1]), ("source_timestamp", row[2], twin[2])):
            if a != b:
                details.append(f"record {row[0]!r}: {label} sent {_short(a)!r}, read back {_short(b)!r}")
    if not missing:
        details.append(
            f"{sum(extra.values())} record(s) read back that this case did not send, e.g. {next(iter(extra))[0]!r}"
        )
    lost = [row for row in missing.elements() if row[0] not in by_id]
    if lost and len(lost) == sum(want.values()):
        hint = (
            "None of the records reached the target: check that finalize() publishes what was staged (and raises "
            "when publishing fails), and that read_back() reads where write_records writes."
        )
    elif not missing:
        hint = "The target holds records this run did not send: a full refresh must replace, not append."
    else:
        hint = None  # a field differs: the catalog's fix says what to keep
    raise CaseFailed(
        f"{what}: sent {sum(want.values())} record(s), read back {sum(have.values())}; " + "; ".join(details[:3]),
        hint=hint,
    )


# -- what the destination declares (class attributes the spec renders; a hand-written one may set them) -----------

DECLARED = {"WRITE_SEMANTICS": ("append", "upsert"), "FULL_REFRESH_ISOLATION": ("atomic", "in_place")}
_declared: dict = {}


def declaration(t: Target, attribute: str) -> str:
    """The destination class's declaration, its first value when it declares none."""
    if attribute not in _declared:
        cls = type(t.build("full_refresh", t.id("probe")))
        _declared[attribute] = getattr(cls, attribute, DECLARED[attribute][0])
    value, allowed = _declared[attribute], DECLARED[attribute]
    if value not in allowed:
        raise CaseFailed(
            f"{attribute} = {value!r} on the destination class: it must be one of {', '.join(map(repr, allowed))}",
            hint=f"Set {attribute} to one of {', '.join(map(repr, allowed))} (describe_target's "
            f"{attribute.lower()} renders it).",
        )
    return value


def last_writes(rows: list) -> list:
    """What an upsert target holds after `rows` were written in order: the last record of each source_record_id."""
    last = {r["source_record_id"]: r for r in rows}
    return list(last.values())


DEDUP_HINT = (
    "Under append every record is a row, even one whose source_record_id is already there. If the target keys "
    "records on source_record_id (a document _id, a hash key, MERGE or ON CONFLICT), declare it: WRITE_SEMANTICS = "
    '"upsert" on the destination class (write_semantics="upsert" in describe_target); otherwise stop keying on '
    "source_record_id (key on bizon_id)."
)
UPSERT_HINT = (
    'WRITE_SEMANTICS is "upsert": write with source_record_id as the key (a document _id, MERGE, ON CONFLICT / ON '
    "DUPLICATE KEY UPDATE), in staging and when publishing, so the last write of each id replaces the others (within "
    "one flush, the later row)."
)


def judge(t: Target, sent: list, got: list, what: str) -> None:
    """compare() against what the declared write semantics keeps of `sent` (written in this order), naming a
    deduplication the destination did not declare, or duplicates it declared away."""
    semantics = declaration(t, "WRITE_SEMANTICS")
    times_sent = Counter(r["source_record_id"] for r in sent)
    times_read = Counter(row[0] for row in got)
    for key, n in times_sent.items():
        m = times_read.get(key, 0)
        if semantics == "append" and 0 < m < n:
            raise CaseFailed(
                f"{what}: source_record_id {key!r} was sent {n} times and read back {m} time(s): the target "
                "deduplicates by it, but the destination declares append semantics (WRITE_SEMANTICS 'append', "
                "or unset)",
                hint=DEDUP_HINT,
            )
        if semantics == "upsert" and m > 1:
            raise CaseFailed(
                f"{what}: source_record_id {key!r} read back {m} times, but the destination declares "
                "WRITE_SEMANTICS = 'upsert' (one record per source_record_id, the last write wins)",
                hint=UPSERT_HINT,
            )
    try:
        compare(sent if semantics == "append" else last_writes(sent), got, what)
    except CaseFailed as error:
        if semantics == "upsert" and error.hint is None:
            error.hint = UPSERT_HINT
        raise


# -- driving the destination ------------------------------------------------------------------------


class Target:
    """The check config's destination, built the way the engine builds it, per sync mode and destination_id."""

    def __init__(self, name: str, check_yaml: str, run_id: str, stream_per_case: bool = False):
        import yaml

        with open(check_yaml) as handle:
            self.raw = yaml.safe_load(handle) or {}
        self.name, self.run_id = name, run_id
        self.written: list = []  # every destination_id a case was given, noted at once: a case may die mid-write
        self.noting = False
        # The suite names each case's stream after its destination_id: a target routed by {stream} (the http
        # recipe's path templates) keeps cases apart. Read-backs of bizon runs keep the dummy source's stream.
        self.stream_per_case = stream_per_case

    def id(self, case: str) -> str:
        destination_id = f"forge_{self.run_id}_{case}"
        if self.noting and destination_id not in self.written:
            self.written.append(destination_id)
            probe.note(destination_id, "written")
        return destination_id

    def config(self, sync_mode: str, destination_id: str, **details):
        from bizon.common.models import BizonConfig

        raw = copy.deepcopy(self.raw)
        raw["source"] = {**DUMMY_SOURCE, "sync_mode": sync_mode}
        if self.stream_per_case:
            raw["source"]["stream"] = destination_id
        raw.pop("transforms", None)
        config = raw.setdefault("destination", {}).setdefault("config", {})
        for key in ("unnest", "record_schemas"):  # the suite judges bizon's six columns
            config.pop(key, None)
        config.update({"destination_id": destination_id, **details})
        return BizonConfig.model_validate(probe.resolve_config(raw))

    def server(self):
        """(field, url, protocol, host, port) of the check config's first destination field that is a PostgreSQL or
        MySQL/MariaDB URL over TCP (SQLAlchemy's form: scheme[+driver]://user:password@host[:port]/database)."""
        import urllib.parse

        resolved = probe.resolve_config(copy.deepcopy(self.raw))
        for field, value in ((resolved.get("destination") or {}).get("config") or {}).items():
            if not isinstance(value, str) or "://" not in value:
                continue
            parts = urllib.parse.urlsplit(value)
            protocol = SERVER_SCHEMES.get(parts.scheme.split("+")[0].lower())
            query = urllib.parse.parse_qs(parts.query)
            if protocol is None or not parts.hostname or "host" in query or "unix_socket" in query:
                continue
            port = parts.port or (5432 if protocol == "postgresql" else 3306)
            return field, value, protocol, parts.hostname, port
        return None

    def build(self, sync_mode: str, destination_id: str, **details):
        return probe.build_destination(self.config(sync_mode, destination_id, **details), self.name)

    def read(self, destination_id: str, sync_mode: str = "full_refresh") -> list:
        """What read_back() answers, from a destination object of `sync_mode`: building one may act on staging
        (a full refresh's clears a failed run's leftovers), so a case that keeps staging reads in its own mode."""
        reader = self.build(sync_mode, destination_id)
        df = reader.read_back()
        if df is None or not hasattr(df, "to_dicts"):
            raise CaseFailed(f"read_back() answered {type(df).__name__}, not a polars DataFrame")
        if df.height == 0:
            return []
        lacking = [c for c in REQUIRED if c not in df.columns]
        if lacking:
            raise CaseFailed(f"read_back() has no column {', '.join(lacking)} (it has {', '.join(df.columns)})")
        return normalized(df.to_dicts())


def write(destination, rows: list, what: str = "write_records") -> None:
    answer = destination.write_records(df_destination_records=frame(rows))
    if tuple(answer) != (True, None):
        raise CaseFailed(f"{what} of {len(rows)} record(s) returned {repr(answer)[:300]}")


def run(target: Target, sync_mode: str, destination_id: str, batches: list) -> None:
    """One run: a destination object, one write_records per flush, then finalize() unless streaming."""
    destination = target.build(sync_mode, destination_id)
    for index, rows in enumerate(batches):
        write(destination, rows, f"write_records (flush {index + 1} of {len(batches)})")
    if sync_mode != "stream":
        destination.finalize()


# -- the cases ---------------------------------------------------------------------------------------


def case_read_back(t: Target) -> str:
    if not callable(getattr(t.build("full_refresh", t.id("probe")).__class__, "read_back", None)):
        raise CaseFailed("the destination defines no read_back()")
    got = t.read(t.id("probe"))
    if got:
        raise CaseFailed(f"read_back() of a destination_id nothing was written to answered {len(got)} record(s)")
    return "read_back() is defined and answers nothing for a destination_id never written"


def case_exact(t: Target) -> str:
    sent = plain("exact", 3)
    run(t, "full_refresh", t.id("exact"), [sent])
    compare(sent, t.read(t.id("exact")), "full_refresh of 3 records")
    return "3 records read back field-exact (source_record_id, source_data as JSON, source_timestamp to the µs)"


def case_several_flushes(t: Target) -> str:
    batches = [plain("flush", 2, 0), plain("flush", 3, 2), plain("flush", 1, 5)]
    run(t, "full_refresh", t.id("flushes"), batches)
    compare([r for b in batches for r in b], t.read(t.id("flushes")), "3 flushes in one full_refresh run")
    return "3 flushes in one run (2 + 3 + 1 records) all read back"


def case_hostile(t: Target) -> str:
    sent = hostile()
    run(t, "full_refresh", t.id("hostile"), [sent])
    judge(t, sent, t.read(t.id("hostile")), "hostile records")
    pair = "both records" if declaration(t, "WRITE_SEMANTICS") == "append" else "the later record (upsert)"
    return (
        "hostile records read back exact: non-ASCII and emoji, quotes and backslashes, newlines and NUL, "
        f"a 100,000-character source_data, 60-deep JSON, and {pair} of a source_record_id sent twice in one batch"
    )


def case_empty_batch(t: Target) -> str:
    sent = plain("after-empty", 2)
    run(t, "full_refresh", t.id("empty"), [[], sent])
    compare(sent, t.read(t.id("empty")), "an empty flush, then 2 records")
    return "a 0-record flush returns (True, None) and changes nothing"


def case_full_refresh_twice(t: Target) -> str:
    first, second = plain("first", 5), plain("second", 3)
    run(t, "full_refresh", t.id("refresh"), [first])
    run(t, "full_refresh", t.id("refresh"), [second])
    compare(second, t.read(t.id("refresh")), "two full_refresh runs (5 records, then 3 others)")
    return "a second full_refresh run leaves exactly its own 3 records"


def case_incremental(t: Target) -> str:
    first, second = plain("inc", 3, 0), plain("inc", 2, 3)
    run(t, "incremental", t.id("incr"), [first])
    run(t, "incremental", t.id("incr"), [second])
    compare(first + second, t.read(t.id("incr")), "two incremental runs (3 records, then 2)")
    return "two incremental runs append: 3 + 2 records read back"


def case_stream(t: Target) -> str:
    destination = t.build("stream", t.id("stream"))
    first, second = plain("stream", 2, 0), plain("stream", 2, 2)
    write(destination, first)
    compare(first, t.read(t.id("stream")), "stream, read right after write_records (no finalize)")
    write(destination, second)
    compare(first + second, t.read(t.id("stream")), "stream, after a second write_records")
    return "stream mode writes each flush straight to the target, no finalize()"


def case_stream_routing(t: Target) -> str:
    """bizon's stream runner builds one destination and sets destination_id before each group's write."""
    a, b = t.id("route_a"), t.id("route_b")
    destination = t.build("stream", a)
    first, second, third = plain("route-a", 2, 0), plain("route-b", 3, 0), plain("route-a", 1, 2)
    for destination_id, rows in ((a, first), (b, second), (a, third)):
        destination.destination_id = destination_id
        write(destination, rows, f"write_records to {destination_id}")
    compare(first + third, t.read(a), f"one stream destination object routed to {a}")
    compare(second, t.read(b), f"the same object routed to {b}")
    return "one destination object routed by destination_id: each id holds its own records"


def case_failed_flush(t: Target, version: str) -> str:
    """A failed flush must never be published. bizon 0.5.x calls finalize() after it anyway; 0.6.x ends the run
    first. finalize() is called here on every version: a destination must refuse (raise), so that a partial run
    reaches the target on neither."""
    kept = plain("kept", 3)
    run(t, "full_refresh", t.id("failed"), [kept])
    destination = t.build("full_refresh", t.id("failed"))
    write(destination, plain("partial", 2))
    broken = frame(plain("broken", 2)).drop("source_data")
    try:
        answer = destination.write_records(df_destination_records=broken)
    except Exception:
        answer = ("raised",)
    if answer == (True, None):
        raise CaseFailed(
            "write_records returned (True, None) for a flush it cannot have written (a frame without source_data): "
            "an error is swallowed, or the frame is not checked",
            hint="Return (False, message) from write_records when a flush cannot be written; never answer "
            "(True, None) after an exception.",
        )
    try:
        destination.finalize()
        refused = None
    except Exception as error:
        refused = type(error).__name__
    compare(kept, t.read(t.id("failed")), "after a failed flush and finalize()")
    if refused is None:
        raise CaseFailed(
            "finalize() after a failed flush returned instead of raising: bizon 0.5.x calls it after a failed "
            "flush and records the run as succeeded, so a destination that does not refuse can publish a partial "
            f"run (bizon {version} here)",
        )
    return f"after a failed flush finalize() raised {refused} and the target kept its 3 records"


@contextlib.contextmanager
def disk_full():
    """No file of this process may grow while inside: RLIMIT_FSIZE 0 makes every write that extends a file fail
    with EFBIG, as a full disk fails one with ENOSPC (SQLite answers 'database or disk is full'). Pipes and
    sockets are not files: the probe's answers and a server's connection are untouched."""
    import resource
    import signal

    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    kill = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the default action ends the process
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, kill)


def off_this_disk(written: list, got: list, expected: list, how: str) -> None:
    """Raise CaseSkipped when every record `written` while the disk was full landed anyway: the target is not on this
    disk (a server, or staging in memory), so a full disk cannot reach it. Whatever else the read-back shows (a
    full refresh that appended, doubled rows) is then no disk's doing: the skip names it and leaves the verdict to
    the cases that judge it, never to the disk. Returns when some of them are missing: the disk did reach them."""
    have = Counter(got)
    if any(have[row] < count for row, count in Counter(normalized(written)).items()):
        return
    reason = f"{how} landed in the target: the target is not on this machine's disk, so a full disk cannot reach it"
    try:
        compare(expected, got, "this run")
    except CaseFailed as other:
        # The disk did not cause it: say what the read-back shows, for the case that owns it (never blame the disk).
        reason += (
            f". The read-back differs for another reason, which data.exact, data.full_refresh_twice and "
            f"data.incremental judge: {other}" + (f" ({other.hint})" if other.hint else "")
        )
    raise CaseSkipped(reason + ".")


def case_full_disk(t: Target) -> str:
    """The disk fills during a full refresh's second flush. The run must fail and leave the last publication as it
    was; once there is room again, the next full refresh lands exactly once."""
    kept, first, second, after = (
        plain(p, n) for p, n in (("disk_kept", 3), ("disk_a", 2), ("disk_b", 2), ("disk_c", 4))
    )
    full = t.id("disk")
    run(t, "full_refresh", full, [kept])
    destination = t.build("full_refresh", full)
    write(destination, first, "write_records (flush 1 of 2, before the disk filled)")
    with disk_full():
        try:
            answer = tuple(destination.write_records(df_destination_records=frame(second)))
        except Exception as error:
            answer = ("raised", type(error).__name__)
    if answer == (True, None):
        destination.finalize()
        got = t.read(full)
        off_this_disk(second, got, first + second, "a flush written with no room left on this machine's disk")
        raise CaseFailed(
            f"write_records answered (True, None) for a flush it could not write (the disk was full): the target "
            f"then held {len(got)} record(s), not the {len(first) + len(second)} sent",
            hint="Let the OSError of a failed write reach write_records' answer: (False, message), never "
            "(True, None) after an exception.",
        )
    try:
        destination.finalize()
        published = True
    except Exception:
        published = False
    compare(kept, t.read(full), "after a full_refresh whose second flush met a full disk, and finalize()")
    if published:
        raise CaseFailed(
            "finalize() returned after a flush that failed for want of disk space: bizon 0.5.x calls it anyway and "
            "records the run as succeeded",
            hint="Remember the failed flush and make finalize() raise instead of publishing.",
        )
    run(t, "full_refresh", full, [after])
    compare(after, t.read(full), "the next full_refresh, with room on the disk again")
    return (
        f"a flush that met a full disk answered {answer[0]!r}{' ' + answer[1] if len(answer) > 1 else ''}, "
        "finalize() refused, the target kept its 3 records, and the next full_refresh landed its 4 exactly once"
    )


def case_failed_publish(t: Target) -> str:
    """An incremental run's finalize() meets a full disk. bizon has already marked the run succeeded and moved its
    cursor (both versions), so its records exist nowhere but in the destination's staging: finalize() must raise,
    publish nothing of them (no half-appended target), and the next incremental run must publish them with its own."""
    first, second, third = plain("publish_a", 3), plain("publish_b", 2), plain("publish_c", 2)
    incr = t.id("publish")
    run(t, "incremental", incr, [first])
    destination = t.build("incremental", incr)
    write(destination, second, "write_records (the run whose publication meets a full disk)")
    with disk_full():
        try:
            destination.finalize()
            raised = None
        except Exception as error:
            raised = type(error).__name__
    got = t.read(incr, "incremental")
    if raised is None:
        off_this_disk(second, got, first + second, "a finalize() that published with no room left on this disk")
        raise CaseFailed(
            f"finalize() returned although its publication did not land (the disk was full): the target holds "
            f"{len(got)} record(s), not the {len(first) + len(second)} of both runs",
            hint="Let a failed publication raise from finalize(): bizon ignores its return value.",
        )
    compare(first, got, f"after an incremental finalize() that met a full disk and raised {raised}")
    run(t, "incremental", incr, [third])
    compare(
        first + second + third,
        t.read(incr, "incremental"),
        "the next incremental run (bizon marked the failed one succeeded: its records must be published now)",
    )
    return (
        f"an incremental finalize() that met a full disk raised {raised} and left the target whole; the next run "
        "published both runs' records exactly once"
    )


def case_upsert(t: Target) -> str:
    """Records written again under a source_record_id: in the next flush, the next run, the next stream write. An
    upsert target keeps the last write of each; an append one keeps every record."""
    incr, streamed = t.id("upsert"), t.id("upsert_stream")
    runs = [
        [[version("u-1", 1), version("u-2", 1)], [version("u-2", 2), version("u-3", 1)]],
        [[version("u-1", 2), version("u-4", 1)], [version("u-3", 2)]],
    ]
    for batches in runs:
        run(t, "incremental", incr, batches)
    sent = [r for batches in runs for b in batches for r in b]
    judge(t, sent, t.read(incr, "incremental"), "two incremental runs writing u-1, u-2 and u-3 twice each")
    destination = t.build("stream", streamed)
    writes = [[version("s-1", 1), version("s-2", 1)], [version("s-1", 2)]]
    for rows in writes:
        write(destination, rows, "write_records (stream)")
    judge(t, [r for rows in writes for r in rows], t.read(streamed, "stream"), "two stream flushes writing s-1 twice")
    if declaration(t, "WRITE_SEMANTICS") == "append":
        return "append: records written again under a source_record_id (across flushes, runs, stream writes) all kept"
    return "upsert: the last write of each source_record_id wins across flushes, incremental runs and stream writes"


def _isolated(t: Target, fid: str, previous: list, running: list, when: str) -> None:
    """What a reader sees while a full refresh runs (read through a stream-mode object, which stages nothing, so
    reading cannot touch the run's staging): the previous publication, exactly."""
    got = t.read(fid, "stream")
    if Counter(got) == Counter(normalized(previous)):
        return
    old = {r["source_record_id"] for r in previous}
    new = {r["source_record_id"] for r in running}
    seen_old = sum(1 for row in got if row[0] in old)
    seen_new = sum(1 for row in got if row[0] in new)
    raise CaseFailed(
        f"{when}, a reader saw {len(got)} record(s): {seen_old} of the previous publication ({len(previous)}) and "
        f"{seen_new} of the run in progress: the full refresh changes the live target (writes into it, empties it, "
        "or points it at the new data: an alias set when the new index is created) before finalize() has published "
        "the run whole",
        hint="Write a full refresh where readers do not look (a _temp table, a new index outside the alias, a hidden "
        "file) and swap it in at finalize() in one step (RENAME, one alias update removing the old index and adding "
        'the new, os.replace). If the target cannot, declare FULL_REFRESH_ISOLATION = "in_place" '
        '(full_refresh_isolation="in_place" in describe_target).',
    )


def case_full_refresh_isolated(t: Target) -> str:
    if declaration(t, "FULL_REFRESH_ISOLATION") == "in_place":
        raise CaseSkipped(
            "The destination declares FULL_REFRESH_ISOLATION = 'in_place': its full refresh rewrites the target where "
            "it stands, so readers may see a partial target until finalize() ends; nothing to judge."
        )
    fid = t.id("isolated")
    previous, batches = plain("isolated-old", 3), [plain("isolated-new", 2, 0), plain("isolated-new", 2, 2)]
    run(t, "full_refresh", fid, [previous])
    destination = t.build("full_refresh", fid)
    running: list = []
    for index, rows in enumerate(batches):
        write(destination, rows, f"write_records (flush {index + 1} of {len(batches)})")
        running += rows
        _isolated(t, fid, previous, running, f"After flush {index + 1} of {len(batches)} of a full refresh")
    destination.finalize()
    judge(t, running, t.read(fid), "after finalize() of the full_refresh that replaced 3 records")
    return "during a full refresh, readers saw the previous publication exactly until finalize() swapped in the new one"


RECEIVER_VAR = "BIZON_FORGE_RECEIVER_URL"  # set only when the check config posts to the local receiver
SERVER_SCHEMES = {"postgresql": "postgresql", "postgres": "postgresql", "mysql": "mysql", "mariadb": "mysql"}
LOCK_BOUND_S = 60  # how long a publication may wait on a lock another session holds before this case fails it
SERVER_HINT = (
    "Against a database server: retry a batch whose connection dropped in a new transaction, idempotently; publish "
    "in one transaction or one atomic swap; let every database error in finalize() raise; give the sessions a lock "
    "timeout."
)
MAX_DROPS = 12  # write statements of one finalize() the case drops the connection at, one run each


def _receiver_report(destination_id: str) -> dict:
    """How many POSTs the receiver got for destination_id, and how many came before their Retry-After."""
    import urllib.parse
    import urllib.request

    base = os.environ[RECEIVER_VAR].rsplit("/", 1)[0]
    url = f"{base}/_report?destination_id={urllib.parse.quote(destination_id)}"
    with urllib.request.urlopen(url, timeout=10) as answer:
        return json.load(answer)


def case_unreliable_target(t: Target) -> str:
    if RECEIVER_VAR in os.environ:
        return _unreliable_receiver(t)
    server = t.server()
    if server is not None:
        return _unreliable_server(t, *server)
    fields = _http_fields(t)
    if fields:
        return _unreliable_http(t, fields)
    raise CaseSkipped(
        "The check config's target is neither bizon-forge's local receiver nor a PostgreSQL, MySQL or MariaDB "
        "server over TCP, and its destination config names no http(s) URL: nothing here can make it fail the way "
        "a real one does."
    )


def _unreliable_receiver(t: Target) -> str:
    batches = [plain("unreliable", 3, 3 * i) for i in range(3)]
    flaky = t.id("unreliable")
    run(t, "full_refresh", flaky, batches)
    sent, got = [r for b in batches for r in b], t.read(flaky)
    try:
        compare(
            sent,
            got,
            "full_refresh of 3 flushes to a receiver that answers 429 (Retry-After: 2), 503, and drops an answer "
            "after storing the batch",
        )
    except CaseFailed as error:
        if len(got) > len(sent):  # the lost answer's batch, stored again under a new key
            error.hint = (
                "A batch whose answer was lost was stored twice: send one Idempotency-Key per batch, the same on "
                "every retry (the http recipe derives it from the batch's bytes)."
            )
        raise
    report = _receiver_report(flaky)
    if report["early"]:
        raise CaseFailed(
            f"{report['early']} POST(s) came sooner than the Retry-After the receiver answered 429 with",
            hint="Wait the seconds a 429's Retry-After header asks for before retrying (the recipes show how).",
        )
    denied = t.id("denied")
    try:
        run(t, "stream", denied, [plain("denied", 1)])
    except Exception:  # CaseFailed (write_records answered False) or the destination's own error: both fail it
        pass
    else:
        raise CaseFailed("write_records reported a batch written although every POST was answered 401")
    posts = _receiver_report(denied)["posts"]
    if posts != 1:
        raise CaseFailed(
            f"A 401 (a wrong token) was retried: {posts} POSTs for one batch",
            hint="401 and 403 are permanent: fail the batch at once, never retry them.",
        )
    return (
        f"9 records landed exactly once through 429s, a 503 and a lost answer ({report['posts']} POSTs, none before "
        "its Retry-After); a 401 failed the batch after one POST"
    )


def _proxied(url: str, port: int) -> str:
    """url with its host and port replaced by the fault proxy's (user, password, database and options kept)."""
    import urllib.parse

    parts = urllib.parse.urlsplit(url)
    user = parts.netloc.rpartition("@")[0]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}@127.0.0.1:{port}" if user else f"127.0.0.1:{port}"))


def _outcome(call) -> str | None:
    """None when call() returned, else the name of what it raised."""
    try:
        call()
    except Exception as error:
        return f"{type(error).__name__}: {str(error)[:120]}"
    return None


def _mid_flush(t: Target, proxy, via: dict) -> str:
    """Three flushes of a full refresh: the second's connection dropped at its first write statement (the server
    never sees it), the third's COMMIT answered by the server but the answer lost; then a stream flush whose COMMIT
    answer is lost. Every record must land exactly once."""
    flaky = t.id("dropped")
    batches = [plain("dropped", 3, 3 * i) for i in range(3)]
    destination = t.build("full_refresh", flaky, **via)
    write(destination, batches[0], "write_records (flush 1 of 3)")
    hint = (
        "A dropped connection is transient: retry the whole batch in a new transaction, and make the retry "
        "idempotent (a COMMIT whose answer was lost may have landed: delete the batch's bizon_ids first, or upsert)."
    )
    seen = []
    for index, (when, words, what) in enumerate(
        (("before", fault_proxy.WRITES, "its first write statement"), ("after", {"COMMIT"}, "COMMIT's answer"))
    ):
        proxy.arm(when, 1, frozenset(words))
        try:
            write(
                destination, batches[index + 1], f"write_records (flush {index + 2} of 3, connection dropped at {what})"
            )
        except CaseFailed as error:
            error.hint = hint
            raise
        finally:
            proxy.disarm()
        if proxy.fired is None and when == "before":
            why = (
                "the connection is encrypted (TLS)"
                if proxy.encrypted
                else f"the destination did not connect through the check config's `{next(iter(via))}`, or its "
                "driver speaks a protocol the proxy does not read"
            )
            raise CaseSkipped(f"The fault proxy saw no write statement of a flush: {why}.")
        seen.append(proxy.fired or "nothing (no COMMIT was seen: autocommit?)")
    destination.finalize()
    got = t.read(flaky)
    try:
        compare([r for b in batches for r in b], got, f"a full_refresh whose flushes lost their connection at {seen}")
    except CaseFailed as error:
        error.hint = hint if len(got) > 9 else error.hint
        raise
    streamed = t.id("dropped_stream")
    destination = t.build("stream", streamed, **via)
    sent = plain("dropped-stream", 3)
    proxy.arm("after", 1, frozenset({"COMMIT"}))
    try:
        write(destination, sent, "write_records (stream, COMMIT's answer lost)")
    finally:
        proxy.disarm()
    try:
        compare(sent, t.read(streamed), "a stream flush whose COMMIT landed but whose answer was lost")
    except CaseFailed as error:
        error.hint = hint
        raise
    return f"flushes dropped at {seen[0]} and at {seen[1]}, and a stream flush's, landed exactly once"


def _finalize_drops(t: Target, proxy, via: dict, mode: str) -> int:
    """Runs of `mode`, each finalize() dropped at its 1st, 2nd, ... write statement, before the server sees it and
    after it answered, until one finalize() meets no drop. A finalize() that returns must have published this run
    (and, incremental, what failed runs left staged); one that raises must leave the target as it was (or, the drop
    after a COMMIT that landed, published). The last run, undisturbed, must publish everything exactly once."""
    fid = t.id(f"drop_{mode[:4]}")
    published = plain(f"{mode}-kept", 3)
    destination = t.build(mode, fid, **via)
    write(destination, published)
    destination.finalize()
    compare(published, t.read(fid, mode), f"a {mode} run through the fault proxy, nothing dropped")
    pending: list = []  # incremental: staged by runs whose finalize() failed, to be published by a later one
    drops = 0
    for when in ("before", "after"):
        for nth in range(1, MAX_DROPS + 2):
            rows = plain(f"{mode}-{when}-{nth}", 2)
            destination = t.build(mode, fid, **via)
            write(destination, rows, f"write_records ({mode}, the run whose finalize() is dropped)")
            proxy.arm(when, nth)
            raised = _outcome(destination.finalize)
            proxy.disarm()
            fired = proxy.fired
            new = rows if mode == "full_refresh" else published + pending + rows
            got = Counter(t.read(fid, mode))
            where = f"a {mode} finalize() whose connection dropped at its write statement {nth}, {fired}"
            if fired is None:  # this finalize() has fewer write statements: nothing was dropped
                if raised:
                    raise CaseFailed(f"finalize() raised with nothing injected ({mode}, after {drops} drops): {raised}")
                compare(new, list(got.elements()), f"the next {mode} run, undisturbed, after {drops} dropped ones")
                published, pending = new, []
                break
            drops += 1
            if got == Counter(normalized(new)):
                published, pending = new, []
            elif raised is None:
                raise CaseFailed(
                    f"finalize() returned after {where}, but the target holds {sum(got.values())} record(s), not "
                    f"the {len(new)} it had to publish: bizon ignores its return value, so the run ends as a success",
                    hint="Let a failed publication raise from finalize() (never return False or swallow a database "
                    "error): bizon has already marked the job succeeded and only an exception fails the run.",
                )
            elif got == Counter(normalized(published)):
                pending += rows if mode == "incremental" else []
            else:
                raise CaseFailed(
                    f"{where} left the target with {sum(got.values())} record(s): neither the previous publication "
                    f"({len(published)}) nor this one ({len(new)}); finalize() raised {raised}",
                    hint="Publish in one step a failure cannot cut in half: one transaction for the clear and the "
                    "insert, or a swap (RENAME TABLE) of a fully written staging table; no COMMIT in between.",
                )
        else:
            raise CaseFailed(f"finalize() met a drop at each of its first {MAX_DROPS + 1} write statements ({when})")
    return drops


def _holding_locks(url: str, fragment: str):
    """A session that read every table whose name holds `fragment` in a transaction it keeps open (a dashboard
    in the middle of a query): PostgreSQL's ACCESS SHARE locks, MySQL's shared metadata locks."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    connection = engine.connect()
    with engine.connect() as looking:
        names = looking.execute(sa.text("SELECT table_schema, table_name FROM information_schema.tables")).all()
    quote = engine.dialect.identifier_preparer
    locked = [f"{quote.quote(s)}.{quote.quote(n)}" for s, n in names if fragment in n]
    for name in locked:
        connection.execute(sa.text(f"SELECT 1 FROM {name} LIMIT 1"))
    return engine, connection, locked


def _lock_wait(t: Target, url: str, via: dict) -> str:
    """A full refresh's finalize() meets a lock another session holds on its tables. It must fail within
    LOCK_BOUND_S (a lock timeout of its own) and leave the target as it was; the next run then publishes."""
    try:
        import sqlalchemy  # noqa: F401 - the other session is opened with it
    except ImportError:
        return "no lock wait (SQLAlchemy is not installed here to hold a lock from another session)"
    import threading

    lid = t.id("locked")
    kept, blocked, after = plain("locked-kept", 3), plain("locked-blocked", 2), plain("locked-after", 4)
    destination = t.build("full_refresh", lid, **via)
    write(destination, kept)
    destination.finalize()
    destination = t.build("full_refresh", lid, **via)
    write(destination, blocked, "write_records (the run whose publication meets a lock)")
    engine, holder, locked = _holding_locks(url, lid)
    answer: dict = {}
    started = time.perf_counter()
    finishing = threading.Thread(target=lambda: answer.update(raised=_outcome(destination.finalize)), daemon=True)
    try:
        finishing.start()
        finishing.join(LOCK_BOUND_S)
        waited = time.perf_counter() - started
        got = t.read(lid)
    finally:
        holder.rollback()
        holder.close()
        engine.dispose()
    finishing.join(LOCK_BOUND_S)
    if "raised" not in answer:
        raise CaseFailed(
            f"finalize() still waited after {LOCK_BOUND_S} s for a lock another session held on {', '.join(locked)}: "
            "a run blocked by a reader hangs for good (MariaDB's lock_wait_timeout is a year, PostgreSQL's "
            "lock_timeout is off)",
            hint="Give the destination's sessions a lock timeout (PostgreSQL: SET lock_timeout; MySQL/MariaDB: SET "
            "SESSION lock_wait_timeout, innodb_lock_wait_timeout) so a blocked publication fails and raises.",
        )
    if answer["raised"] is None:
        compare(blocked, got, "finalize() returned while another session held a lock on the target's tables")
        return "no lock wait (the publication needed no lock a reader holds)"
    compare(kept, got, f"after a publication that met a lock and raised {answer['raised']}")
    destination = t.build("full_refresh", lid, **via)
    write(destination, after)
    destination.finalize()
    compare(after, t.read(lid), "the next full_refresh run, the lock released")
    return f"a publication blocked by another session's lock raised after {waited:.1f} s and left the target whole"


def _wrong_password(t: Target, proxy, via: dict) -> str:
    """A flush with a wrong password must fail at once: one connection (two where libpq retries without TLS)."""
    import urllib.parse

    field, proxied = next(iter(via.items()))
    parts = urllib.parse.urlsplit(proxied)
    userinfo, _, where = parts.netloc.rpartition("@")
    if ":" not in userinfo:
        return "no wrong-password run (the URL holds no password)"
    wrong = urllib.parse.urlunsplit(parts._replace(netloc=f"{userinfo.split(':')[0]}:forge-wrong-{t.run_id}@{where}"))
    before, started = proxy.connections, time.perf_counter()
    try:
        destination = t.build("stream", t.id("denied"), **{field: wrong})
        write(destination, plain("denied", 1), "write_records with a wrong password")
    except Exception:  # CaseFailed (write_records answered False) or the destination's own error: both fail it
        pass
    else:
        raise CaseFailed("write_records reported a batch written although the password was wrong")
    tries, seconds = proxy.connections - before, time.perf_counter() - started
    if tries > 2:
        raise CaseFailed(
            f"A wrong password was retried: {tries} connections for one batch ({seconds:.1f} s)",
            hint="A wrong password or user, an unknown database and a missing privilege are permanent: fail the "
            "batch at once; retry only what can pass later (a dropped connection, a lock wait, a timeout).",
        )
    return f"a wrong password failed the batch after {tries} connection(s) ({seconds:.1f} s)"


def _unreliable_server(t: Target, field: str, url: str, protocol: str, host: str, port: int) -> str:
    proxy = fault_proxy.FaultProxy(host, port, protocol)
    via = {field: _proxied(url, proxy.port)}
    try:
        flushes = _mid_flush(t, proxy, via)
        full, incremental = (_finalize_drops(t, proxy, via, mode) for mode in ("full_refresh", "incremental"))
        lock = _lock_wait(t, url, via)
        denied = _wrong_password(t, proxy, via)
    except CaseFailed as error:
        error.hint = error.hint or SERVER_HINT
        raise
    finally:
        proxy.close()
    return (
        f"through a proxy that drops the connection ({protocol} at {host}:{port}): {flushes}; {full} full_refresh "
        f"and {incremental} incremental finalize() calls dropped at each write statement in turn left the target "
        f"whole, and the next run published everything exactly once; {lock}; {denied}"
    )


# -- data.unreliable_target over HTTP: any http(s) URL of the destination config, behind http_fault_proxy.py --

HTTP_FLUSHES = 5  # one flush per fault of the proxy's schedule: a destination writing once per flush meets each
DENY_BOUND_S = 60  # how long a flush answered 401 on every write may go on before this case fails it
HTTP_HINT = (
    "Over HTTP: retry 429 (after its Retry-After), 503 and a dropped or cut-off connection, and make every retry "
    "idempotent (a document id per record such as bizon_id, or one Idempotency-Key per batch): a request whose "
    "answer was lost may have landed. Read a 200 bulk answer's per-item statuses; fail at once on 401/403."
)
BULK_HINT = (
    'A 200 _bulk answer can reject items: when it says "errors": true, retry the items whose status is 429 (or '
    "5xx) and fail the flush on the others; never count a 200 as everything written."
)
DUPLICATE_HINT = (
    "A request whose answer was lost (dropped or cut off after the target processed it) was sent again and stored "
    "twice: make every retry idempotent (a document id per record, e.g. bizon_id, so a retry overwrites; or one "
    "Idempotency-Key per batch)."
)


def _http_urls(value) -> list:
    """The http(s) URLs in a config value: a string, or inside a list (hosts) or a mapping."""
    import urllib.parse

    if isinstance(value, dict):
        return [url for item in value.values() for url in _http_urls(item)]
    if isinstance(value, (list, tuple)):
        return [url for item in value for url in _http_urls(item)]
    if not isinstance(value, str) or "://" not in value:
        return []
    try:
        parts = urllib.parse.urlsplit(value.strip())
        return [value] if parts.scheme.lower() in ("http", "https") and parts.hostname and parts.port != 0 else []
    except ValueError:  # a port that is no number
        return []


def _http_fields(t: Target) -> dict:
    """The check config's destination fields holding an http(s) URL (hosts lists, endpoint and base URLs)."""
    resolved = probe.resolve_config(copy.deepcopy(t.raw))
    config = (resolved.get("destination") or {}).get("config") or {}
    return {field: value for field, value in config.items() if _http_urls(value)}


def _origin(url: str) -> str:
    import urllib.parse

    parts = urllib.parse.urlsplit(url.strip())
    scheme, host = parts.scheme.lower(), parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}:{parts.port or (443 if scheme == 'https' else 80)}"


def _pointed(value, proxies: dict):
    """value with each http(s) URL pointed at the fault proxy in front of its origin."""
    if isinstance(value, dict):
        return {key: _pointed(item, proxies) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_pointed(item, proxies) for item in value]
    return proxies[_origin(value)].url_for(value.strip()) if _http_urls(value) else value


def _loopback_direct() -> None:
    """The destination reaches the proxy directly, never through an HTTP(S)_PROXY of the environment."""
    for name in ("NO_PROXY", "no_proxy"):
        os.environ[name] = ",".join(p for p in (os.environ.get(name), "127.0.0.1", "localhost") if p)


def _unreached(faults, fields: dict, error: BaseException | None) -> None:
    """CaseSkipped when nothing of the destination went through the proxies: nothing was judged."""
    named = ", ".join(f"`{f}`" for f in fields)
    if faults.encrypted:
        raise CaseSkipped(
            f"The destination spoke TLS to the fault proxy put in {named} (its client insists on https): the proxy "
            "listens on plain http and does the TLS to the target itself, so it cannot fail this client's requests."
        )
    if faults.requests == 0:
        why = f" ({type(error).__name__}: {str(error)[:200]})" if error is not None else ""
        raise CaseSkipped(
            f"No request reached the fault proxy put in {named}: the destination did not connect through "
            f"{'them' if len(fields) > 1 else 'it'}, or its client refuses a plain-http URL{why}."
        )


def _http_flushes(t: Target, faults, via: dict) -> str:
    """A full refresh of HTTP_FLUSHES flushes while the proxy fails its write requests (429, 503, a dropped and a
    cut-off answer after the target did the work, per-item rejections in a 200 _bulk answer): every record must
    land exactly once, and no write may come before a 429's Retry-After."""
    flaky = t.id("http_faults")
    batches = [plain("http-faults", 3, 3 * i) for i in range(HTTP_FLUSHES)]
    faults.start()
    try:
        destination = t.build("full_refresh", flaky, **via)
        for index, rows in enumerate(batches):
            write(destination, rows, f"write_records (flush {index + 1} of {len(batches)})")
        destination.finalize()
    except CaseFailed as error:
        _unreached(faults, via, error)
        bulk = bool(faults.fired) and faults.fired[-1].startswith("bulk")
        raise CaseFailed(
            f"{error}; the proxy had injected: {', '.join(faults.fired) or 'nothing yet'}",
            hint=BULK_HINT if bulk else HTTP_HINT,
        ) from error
    except Exception as error:
        _unreached(faults, via, error)
        raise
    finally:
        left = faults.left
        faults.stop()
    _unreached(faults, via, None)
    sent, got = [r for b in batches for r in b], t.read(flaky)
    try:
        compare(sent, got, f"a full_refresh of {len(batches)} flushes through {', '.join(faults.fired)}")
    except CaseFailed as error:
        bulk = any(f.startswith("bulk") for f in faults.fired)
        error.hint = DUPLICATE_HINT if len(got) > len(sent) else BULK_HINT if bulk else HTTP_HINT
        raise
    if faults.early:
        raise CaseFailed(
            f"{faults.early} write request(s) came sooner than the Retry-After: {http_fault_proxy.RETRY_AFTER_S} "
            "a 429 asked for",
            hint="Wait the seconds a 429's Retry-After header asks for before retrying.",
        )
    missed = f"; not injected: {', '.join(left)} ({'no _bulk request' if left == ['bulk'] else 'too few writes'})"
    return (
        f"{len(sent)} records landed exactly once through {', '.join(faults.fired)} ({faults.writes} write "
        f"requests, none before its Retry-After){missed if left else ''}"
    )


def _http_denied(t: Target, faults, via: dict) -> str:
    """A stream flush whose every write request is answered 401 must fail, after at most 2 of them (a client may
    refresh its token once)."""
    import threading

    outcome: dict = {}

    def attempt() -> None:
        try:
            # Not "_denied": bizon-forge's receiver, when it is the target behind the proxy, answers 401 to every
            # request of such an id for ever, drop_written()'s too.
            write(t.build("stream", t.id("http_refused"), **via), plain("denied", 1), "write_records answered 401")
            outcome["written"] = True
        except Exception as error:  # CaseFailed (write_records answered False) or the destination's own error
            outcome["error"] = error

    faults.deny()
    trying = threading.Thread(target=attempt, daemon=True)
    trying.start()
    trying.join(DENY_BOUND_S)
    tries = faults.writes
    faults.stop()
    hint = "401 and 403 are permanent: fail the batch at once (refreshing a token once at most), never retry them."
    if trying.is_alive():
        raise CaseFailed(f"A flush answered 401 on every write was still retried after {DENY_BOUND_S} s", hint=hint)
    if outcome.get("written"):
        raise CaseFailed("write_records reported a batch written although every write request was answered 401")
    if tries > 2:
        raise CaseFailed(f"A 401 (a wrong token) was retried: {tries} write requests for one batch", hint=hint)
    return f"a 401 on every write failed the flush after {tries} write request(s)"


def _unreliable_http(t: Target, fields: dict) -> str:
    _loopback_direct()
    faults = http_fault_proxy.Faults()
    origins = sorted({_origin(url) for value in fields.values() for url in _http_urls(value)})
    proxies = {origin: http_fault_proxy.HttpFaultProxy(origin, faults) for origin in origins}
    via = {field: _pointed(value, proxies) for field, value in fields.items()}
    try:
        landed = _http_flushes(t, faults, via)
        denied = _http_denied(t, faults, via)
    except CaseFailed as error:
        error.hint = error.hint or HTTP_HINT
        raise
    finally:
        for proxy in proxies.values():
            proxy.close()
    return f"through an HTTP fault proxy in front of {', '.join(origins)}: {landed}; {denied}"


# data.failed_flush also takes bizon's version (suite() passes it)
# The data suite's cases, in the order they run: each one's declaration (the checklist's id, what must hold,
# why, the fix, its limits) beside the function that runs it. Plain literals: bizon-forge reads them without
# running this file (catalog.data_suite), and builds the checks of runtime.suite from them. `after`: the cases
# whose failure explains this one's (bizon-forge adds the checks that must pass before any data case).
PUBLISH_FAULTS = {"401": "401 Unauthorized", "500": "500 on every try", "drop": "its connection dropped on every try"}
PUBLISH_BOUND_S = 120  # how long a finalize() may go on retrying a publish that cannot succeed


def _arm(destination_id: str, kind: str) -> None:
    """Make every request the receiver gets for destination_id fail as `kind` says ('' disarms)."""
    import urllib.parse
    import urllib.request

    base = os.environ[RECEIVER_VAR].rsplit("/", 1)[0]
    query = urllib.parse.urlencode({"destination_id": destination_id, "kind": kind})
    with urllib.request.urlopen(urllib.request.Request(f"{base}/_fault?{query}", b"", method="POST"), timeout=10):
        pass


def _failing_finalize(fid: str, destination, kind: str) -> str | None:
    """finalize() with every request of fid failing as `kind` says: what it raised, or None when it returned."""
    _arm(fid, kind)
    try:
        return _outcome(destination.finalize)
    finally:
        _arm(fid, "")


def case_publish_fails(t: Target) -> str:
    """A full refresh's publish fails inside finalize() (a 401, a 500 and a dropped connection, each on every
    request): finalize() must raise each time, and the next full refresh land exactly once. The three finalize()
    calls run at once (retrying the transient ones takes their backoff); destinations are built one by one (each
    build opens the engine's SQLite backend)."""
    from concurrent.futures import ThreadPoolExecutor, wait

    if RECEIVER_VAR not in os.environ:
        raise CaseSkipped(
            "The check config's target is not bizon-forge's local receiver: nothing here can make its publish fail "
            "(data.unreliable_target drops a database server's connections inside finalize())."
        )
    staged = {}
    for kind in PUBLISH_FAULTS:
        fid = t.id(f"publish_{kind}")
        run(t, "full_refresh", fid, [plain(f"publish-{kind}-kept", 2)])
        staged[kind] = (fid, t.build("full_refresh", fid))
        write(staged[kind][1], plain(f"publish-{kind}", 3), "write_records (the run whose publish fails)")
    pool = ThreadPoolExecutor(len(PUBLISH_FAULTS))
    futures = {kind: pool.submit(_failing_finalize, *staged[kind], kind) for kind in PUBLISH_FAULTS}
    wait(futures.values(), timeout=PUBLISH_BOUND_S)
    pool.shutdown(wait=False)
    slow = [PUBLISH_FAULTS[k] for k, f in futures.items() if not f.done()]
    if slow:
        raise CaseFailed(
            f"finalize() was still retrying a publish that met {' and '.join(slow)} after {PUBLISH_BOUND_S} s",
            hint="Bound the retries (attempts and Retry-After) and raise when they are spent.",
        )
    raised = {kind: future.result() for kind, future in futures.items()}
    if not any(_receiver_report(fid)["faulted"] for fid, _ in staged.values()):
        raise CaseSkipped(
            "finalize() sent the receiver no request (the records were posted before it, by write_records): no "
            "publish inside finalize() to make fail."
        )
    returned = [PUBLISH_FAULTS[k] for k, r in raised.items() if r is None]
    if returned:
        raise CaseFailed(
            f"finalize() returned although its publish met {' and '.join(returned)}: bizon ignores finalize()'s "
            "return value, so the run ends as a success while the records were never published"
        )
    for kind, (fid, _) in staged.items():
        after = plain(f"publish-{kind}-after", 2)
        run(t, "full_refresh", fid, [after])
        compare(after, t.read(fid), f"the full_refresh after one whose publish met {PUBLISH_FAULTS[kind]}")
    return (
        "a full refresh's finalize() raised when its publish met "
        + ", ".join(f"{PUBLISH_FAULTS[k]} ({r.split(':')[0]})" for k, r in raised.items() if r)
        + "; the next full_refresh landed exactly once"
    )


CASES = (
    {
        "id": "data.read_back",
        "run": "case_read_back",
        "what": (
            "The destination defines `read_back(self) -> polars.DataFrame`: what its target holds for its "
            "`destination_id`, with at least source_record_id, source_data and source_timestamp; an id never "
            "written reads back empty."
        ),
        "why": (
            "Every data.* check judges what landed by reading it back; bizon's own log line only echoes "
            "write_records' return value."
        ),
        "fix": (
            "Define read_back(): query the target for self.destination_id and return those columns as a "
            "polars DataFrame (an empty one when the target does not exist yet)."
        ),
        "after": (),
    },
    {
        "id": "data.exact",
        "run": "case_exact",
        "what": (
            "A full_refresh run of 3 records reads back field-exact: the same source_record_ids, source_data "
            "equal as JSON, source_timestamp equal to the microsecond."
        ),
        "why": "A dropped or overwritten column passes every check that only counts rows.",
        "fix": (
            "Compare the excerpt's record with what write_records stored: keep source_data whole and "
            "source_timestamp as sent (not bizon_loaded_at)."
        ),
        "after": ("data.read_back",),
    },
    {
        "id": "data.several_flushes",
        "run": "case_several_flushes",
        "what": "A run of 3 flushes (2 + 3 + 1 records) then finalize() reads back all 6.",
        "why": "A large sync flushes many times; a destination that keeps only the last flush loses the rest.",
        "fix": "Stage every flush of a run (append to the staging target); publish them all in finalize().",
        "after": ("data.read_back", "data.exact"),
    },
    {
        "id": "data.hostile",
        "run": "case_hostile",
        "what": (
            "7 hostile records read back exact: non-ASCII and emoji, quotes and backslashes, newlines, a "
            "100,000-character source_data, 60-deep JSON, two records sharing a source_record_id in one "
            "batch (both read back under append; the later one under upsert, the destination's "
            "WRITE_SEMANTICS)."
        ),
        "why": (
            "Real data holds all of these; a 64 KB TEXT column, a latin1 table or a key on source_record_id "
            "the destination does not declare each loses some."
        ),
        "fix": (
            "Store source_data in a column that holds any length and any Unicode (LONGTEXT/JSON, utf8mb4); key "
            'on source_record_id only under WRITE_SEMANTICS = "upsert", keeping the later row.'
        ),
        "after": ("data.read_back", "data.exact"),
    },
    {
        "id": "data.empty_batch",
        "run": "case_empty_batch",
        "what": "A flush of 0 records returns (True, None) and changes nothing; the next flush lands.",
        "why": (
            "bizon may hand over an empty frame; a destination that fails or writes a blank row on it breaks the run."
        ),
        "fix": "Return (True, None) early when the frame has no rows.",
        "after": ("data.read_back", "data.exact"),
    },
    {
        "id": "data.full_refresh_twice",
        "run": "case_full_refresh_twice",
        "what": "Two full_refresh runs (5 records, then 3 others) leave exactly the second run's 3.",
        "why": "full_refresh promises the target equals the source; appending doubles it on every run.",
        "fix": (
            "Stage the run's flushes and replace the target with the staging in finalize(), in one atomic "
            "step; over HTTP, replace the way the spec's full_refresh says the endpoint can."
        ),
        "limits": (
            'For a destination that POSTs to the local receiver: it honours `"replace": true` when the spec\'s '
            "full_refresh is replace_flag (the spec says the endpoint does; that is not proven), and ignores "
            "it when the spec says delete_first (only a DELETE ?destination_id= then empties it)."
        ),
        "after": ("data.read_back", "data.exact"),
    },
    {
        "id": "data.incremental",
        "run": "case_incremental",
        "what": "Two incremental runs (3 records, then 2) leave all 5.",
        "why": "incremental promises to add to the target; replacing it loses what earlier runs wrote.",
        "fix": "Stage the run's flushes and append them to the target in finalize().",
        "after": ("data.read_back", "data.exact"),
    },
    {
        "id": "data.stream",
        "run": "case_stream",
        "what": ("In stream mode each write_records lands at once, without finalize() (bizon never calls it there)."),
        "why": "Records staged in stream mode are never published.",
        "fix": "In stream mode write straight to the target in write_records().",
        "after": ("data.read_back", "data.exact"),
    },
    {
        "id": "data.stream_routing",
        "run": "case_stream_routing",
        "what": (
            "One destination object, its destination_id switched between writes (as bizon's stream runner "
            "does), puts each flush under its own id."
        ),
        "why": (
            "bizon's stream runner builds one destination and sets destination_id per group; state cached for "
            "the first id sends every group there."
        ),
        "fix": (
            "Key per-target state (a prepared flag, cached columns) by self.destination_id, and read "
            "destination_id at write time."
        ),
        "after": ("data.read_back", "data.exact", "data.stream"),
    },
    {
        "id": "data.failed_flush",
        "run": "case_failed_flush",
        "what": (
            "After a full_refresh that succeeded, a run whose flush fails (a frame without source_data) "
            "leaves the target as it was: write_records answers (False, message) or raises, and finalize() "
            "then raises instead of publishing (on every bizon version: 0.5.x calls it after a failed flush, "
            "0.6.x ends the run first)."
        ),
        "why": (
            "bizon 0.5.x goes on after a failed flush and calls finalize(): a destination that publishes "
            "anyway replaces the target with a partial run."
        ),
        "fix": (
            "Remember a failed flush (a flag set where write_records returns False) and make finalize() raise "
            "instead of publishing."
        ),
        "after": ("data.read_back", "data.exact", "data.full_refresh_isolated"),  # in-place writes fail this too
    },
    {
        "id": "data.full_disk",
        "run": "case_full_disk",
        "what": (
            "After a full_refresh that succeeded, the disk fills during the next run's second flush (every "
            "write that grows a file of the check's process fails, RLIMIT_FSIZE 0, as a full disk fails it): "
            "write_records answers (False, message) or raises, finalize() raises, the target still reads back "
            "the first run's 3 records exactly, and the next full_refresh, with room again, lands its 4 "
            "exactly once. Skip when the flush succeeded and landed anyway (the target is a server, off this "
            "disk)."
        ),
        "why": (
            "Local staging, SQLite and files meet a full disk in real runs; a swallowed write error loses "
            "records, a publish after it replaces the target with a partial run."
        ),
        "fix": (
            "Let a failed write reach write_records' answer, remember it, and make finalize() raise instead "
            "of publishing; publish by an atomic replace so a failure leaves the last publication whole."
        ),
        "limits": (
            "EFBIG stands for ENOSPC; a destination that stages in memory or on a server is judged only by what lands."
        ),
        "after": ("data.read_back", "data.exact", "data.full_refresh_twice", "data.full_refresh_isolated"),
    },
    {
        "id": "data.failed_publish",
        "run": "case_failed_publish",
        "what": (
            "After an incremental run that landed 3 records, the next run's finalize() meets a full disk (as "
            "in data.full_disk): it raises, the target still reads back exactly the 3, and the run after it, "
            "with room again, leaves all 3 + 2 + 2 records exactly once. Skip when finalize() published "
            "anyway (the target is off this disk)."
        ),
        "why": (
            "Both bizon versions mark the job succeeded and move an incremental cursor before finalize(): a "
            "run whose publication fails is never extracted again, so its staged records must survive to the "
            "next run and be published once."
        ),
        "fix": (
            "Keep incremental staging where the next run finds it (never relative to the working folder), "
            "publish it atomically (a temp file then a rename, or one transaction), and let the next "
            "finalize() publish what a failed one left."
        ),
        "limits": (
            "The disk is full from the publication's first byte, so one that would fail half-way through an "
            "in-place append is not made; reads use an incremental destination object."
        ),
        "origin": "facts",
        "after": ("data.read_back", "data.exact", "data.incremental"),
    },
    {
        "id": "data.unreliable_target",
        "run": "case_unreliable_target",
        "what": (
            "Against bizon-forge's local receiver misbehaving like a real ingest API (429 with Retry-After: "
            "2, 503, a batch stored and then its answer lost), a full_refresh of 3 flushes lands every record "
            "exactly once and no retry comes before its Retry-After; a 401 on every POST fails the batch "
            "after one POST. Against a PostgreSQL, MySQL or MariaDB server, through a proxy that drops "
            "connections: a full_refresh whose 2nd flush loses its connection at its first write and whose "
            "3rd flush's COMMIT lands with its answer lost, and a stream flush whose COMMIT answer is lost, "
            "land every record exactly once; full_refresh and incremental finalize() calls dropped at each "
            "write statement in turn (before the server sees it, and after it answered) either publish, or "
            "raise and leave the target as it was, and the next run publishes everything exactly once "
            "(incremental: the failed runs' staged records too); a publication meeting a lock another session "
            "holds on its tables raises within 60 s and leaves the target as it was; a wrong password fails "
            "the flush after at most 2 connections. Against any other http(s) URL of the destination config "
            "(a string, a list such as `hosts`, a nested mapping), through an HTTP fault proxy that fails every "
            "other write request of a full_refresh of 5 flushes in turn with a 429 (Retry-After: 2), a 503, a "
            "connection dropped after the target processed the request, an answer cut off after it, and (at "
            "the first Elasticsearch/OpenSearch-style `_bulk` request after those) a 200 whose answer rejects "
            "every other item with a per-item 429 without forwarding it: every record lands exactly once and "
            "no write comes before its Retry-After; a 401 on every write fails a flush after at most 2 write "
            "requests."
        ),
        "why": (
            "Real targets fail: a server drops a connection mid-transaction, a COMMIT lands while its answer "
            "is lost, a reader's open transaction holds a lock the publication waits on (MariaDB's "
            "lock_wait_timeout is a year, PostgreSQL's lock_timeout is off). A retry that is not idempotent "
            "duplicates records, a publication that is not atomic empties the target, a finalize() that "
            "swallows an error reports success after bizon marked the job succeeded, a 200 bulk answer whose "
            "items were rejected loses them unless they are read, and a retried permanent error (401, a wrong "
            "password) turns a failure into minutes of waiting."
        ),
        "fix": (
            "Retry only transient failures and make every retry idempotent (one Idempotency-Key per batch "
            "or a document id per record over HTTP; in SQL delete the batch's bizon_ids before inserting "
            "again, or upsert); honour Retry-After; retry the items a 200 bulk answer rejects; fail at once on "
            "401/403, a wrong password, an unknown database or a missing privilege; publish in one transaction "
            "or one atomic RENAME; let every error in finalize() raise; give the sessions a lock timeout."
        ),
        "limits": (
            "Judged when the check config posts to the receiver (env://BIZON_FORGE_RECEIVER_URL), or one of "
            "its destination fields is a URL `postgresql|postgres|mysql|mariadb[+driver]://user@host[:port]/db` "
            "over plain TCP, or else holds an http(s) URL; else skip (local disks get data.full_disk). HTTP: "
            "the proxy listens on plain http and does the TLS to an https target itself, checked against the "
            "system's CAs (SSL_CERT_FILE when the checks get it): a client that insists on TLS to it skips with "
            "that reason, and a target whose CA only the destination's own config names answers 502; a remote "
            "target gets its own name as Host (a loopback one the client's), so a request signed over its Host "
            "(AWS SigV4) fails a remote target's signature check. Reads "
            "(GET, HEAD, `_search` and its kin) are never failed; the faults fall on whichever write requests "
            "come first (write_records' or finalize()'s), so a destination writing less meets fewer (the answer "
            "names what was injected); a stalled answer (a client without a timeout), redirects and per-item "
            "errors other than 429 are not injected; a host and port given as separate fields are not proxied. "
            "SQL: TLS, a Unix socket or a host override in the query string are "
            "not judged; the lock part needs SQLAlchemy in the workspace and locks the tables whose name "
            "holds the case's destination_id; the wrong-password part needs a password in the URL. A server "
            "that stalls without a lock, a failover, a restart and deadlocks are not injected. Nothing on the "
            "server changes but the case's own tables and its own sessions' settings."
        ),
        "after": ("data.read_back", "data.exact"),
    },
    {
        "id": "data.upsert",
        "run": "case_upsert",
        "what": (
            "Records written again under a source_record_id (in the next flush, the next incremental run, the "
            'next stream write) read back as the destination declares: WRITE_SEMANTICS = "upsert" keeps the '
            'last write of each id (later flush, later run, later source_timestamp), "append" (or none '
            "declared) keeps every record."
        ),
        "why": (
            "A target keyed on source_record_id (Elasticsearch _id, a Redis hash, MERGE) is right when the user "
            "wants upserts and loses history silently when they want every record; only the declaration says "
            "which was meant."
        ),
        "fix": (
            'Under "upsert", write with source_record_id as the key in staging and on publish, the later write '
            'winning; under "append", store every record (key on bizon_id), or declare "upsert" if the target '
            "keys by id."
        ),
        "limits": (
            "Later writes carry later source_timestamps here, so a target that keeps the latest source_timestamp "
            "and one that keeps the last write both pass; full refreshes are judged by data.hostile."
        ),
        "after": ("data.read_back", "data.exact", "data.several_flushes", "data.incremental", "data.stream"),
    },
    {
        "id": "data.full_refresh_isolated",
        "run": "case_full_refresh_isolated",
        "what": (
            "While a full refresh runs after a published one, a reader (read_back() of a fresh stream-mode "
            "object, after each flush and before finalize()) sees the previous publication exactly; after "
            "finalize() the new one whole. Skip when the destination declares FULL_REFRESH_ISOLATION = "
            '"in_place".'
        ),
        "why": (
            "Dashboards and jobs read the target while bizon loads it: a run written into the live target, or an "
            "alias pointed at the new index when it is created, shows them a partial or mixed target, and every "
            "end-state check still passes."
        ),
        "fix": (
            "Stage the full refresh where readers do not look (a _temp table, a new index outside the alias, a "
            "hidden file) and swap it in at finalize() in one step; or declare FULL_REFRESH_ISOLATION = "
            '"in_place" if the target cannot.'
        ),
        "limits": (
            "What a reader sees inside finalize() itself is not observed: a swap done in several steps there passes."
        ),
        "after": ("data.read_back", "data.exact", "data.several_flushes", "data.full_refresh_twice"),
    },
    {
        "id": "data.publish_fails",
        "run": "case_publish_fails",
        "what": (
            "A full_refresh whose publish fails inside finalize() (the local receiver answers every request "
            "of it with a 401, a 500, or drops the connection) makes finalize() raise, each time; the next "
            "full_refresh lands exactly once."
        ),
        "why": (
            "bizon ignores finalize()'s return value and has already marked the job succeeded: a finalize() "
            "that swallows a failed publish (returns False, or a flag holding it) reports a sync that "
            "published nothing as a success."
        ),
        "fix": (
            "Let every error of the publish raise from finalize() (log it first); never answer it with a return value."
        ),
        "limits": (
            "Judged only when the check config posts to the local receiver (env://BIZON_FORGE_RECEIVER_URL), "
            "which routes by the check config's write_path/read_path/delete_path; else skip, as when finalize() "
            "sends no request (write_records posted everything). What the target holds after the failure is not "
            "judged (an HTTP publish is in place)."
        ),
        "after": ("data.read_back", "data.exact"),
    },
)


def _report(out, payload: dict) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    out.write(MARKER + json.dumps(payload, default=str) + "\n")
    out.flush()


def suite(out, target: Target, version: str) -> None:
    blocked = None
    for declared in CASES:
        id, case = declared["id"], globals()[declared["run"]]
        started = time.perf_counter()
        payload: dict[str, object]
        if blocked:
            payload = {"status": "skip", "message": f"Not run: {blocked} failed.", "blocked_by": blocked}
        else:
            print(f"--- {id}", flush=True)
            try:
                message = case(target, version) if id == "data.failed_flush" else case(target)
                payload = {"status": "pass", "message": message}
            except CaseFailed as error:
                payload = {"status": "fail", "message": str(error), "hint": error.hint}
            except CaseSkipped as error:
                payload = {"status": "skip", "message": str(error)}
            except BaseException as error:  # a destination may raise anything, SystemExit included
                trace = "".join(traceback.format_exception(error))[-probe.TRACE_CHARS :]
                payload = {"status": "fail", "message": f"{type(error).__name__}: {error}"[:600], "trace": trace}
            if id == "data.read_back" and payload["status"] != "pass":
                blocked = id
        payload.update(case=id, seconds=round(time.perf_counter() - started, 3))
        _report(out, payload)


def readback(out, target: Target, destination_ids: list) -> None:
    """The smoke runs' read-back, their last reader: what they wrote is dropped once read."""
    for destination_id in destination_ids:
        probe.note(destination_id, "written")
        answer = {"case": "readback", "destination_id": destination_id}
        try:
            answer.update(status="pass", rows=target.read(destination_id))
        except BaseException as error:
            trace = "".join(traceback.format_exception(error))[-probe.TRACE_CHARS :]
            answer.update(status="fail", message=f"{type(error).__name__}: {error}"[:600], trace=trace)
        _report(out, answer)
    probe.drop_all(lambda i: target.build("full_refresh", i), destination_ids)


def main() -> None:
    root, name, check_yaml, version, run_id, mode = sys.argv[1:7]
    probe.forget_bytecode(root, name)
    out = os.fdopen(os.dup(1), "w")  # the real stdout: the destination may print to or close sys.stdout
    try:
        probe.import_bizon(root, name)
        target = Target(name, check_yaml, run_id, stream_per_case=mode == "suite")
        target.config("full_refresh", target.id("probe"))  # the check config validates
    except BaseException as error:
        trace = "".join(traceback.format_exception(error))[-probe.TRACE_CHARS :]
        _report(
            out,
            {"case": "setup", "status": "fail", "message": f"{type(error).__name__}: {error}"[:600], "trace": trace},
        )
        os._exit(0)
    if mode == "suite":
        target.noting = True
        suite(out, target, version)
        probe.drop_all(lambda i: target.build("full_refresh", i), target.written)
    elif mode == "readback":
        readback(out, target, sys.argv[7:])
    else:  # what earlier validations left: a suite case's stream was its destination_id, a bizon run's the dummy's
        per_case = Target(name, check_yaml, run_id, stream_per_case=True)
        probe.drop_all(lambda i: (per_case.build("full_refresh", i), target.build("full_refresh", i)), sys.argv[7:])
    os._exit(0)  # threads a destination left running must not keep the probe alive


if __name__ == "__main__":
    main()
