"""The contract probe of a source, run in the workspace's own Python (it imports nothing of bizon_forge).

    python source_probe.py ROOT NAME STREAM CONFIG_JSON OUT_JSONL MAX_PAGES [LAST_RUN_ISO CURSOR_FIELD]
    python source_probe.py --cases ROOT NAME STREAM CASES_JSON OUT_DIR MAX_PAGES CASE_TIMEOUT_S

Builds the source as bizon's runner does (discovery by name and stream, the config class validating CONFIG_JSON,
the source's `source:` section pointed at the local mock API), then loops get(pagination) from `{}` the way the
producer does until next_pagination is `{}`, at most MAX_PAGES times; with LAST_RUN_ISO it loops
get_records_after(SourceIncrementalState(...)) instead. Every page is one JSON line of OUT_JSONL; each step prints
one marker line. Nothing but 127.0.0.1 can be reached (loopback_only).

--cases: the mock's misbehaviour cases of one stream in one process (one interpreter start and one bizon import
for all of them): CASES_JSON is a list of {"case", "config"}; each case gets its own source instance, built in
turn here, and its own get() loop in its own thread, its pages in OUT_DIR/<case>.jsonl and one marker line
{"step": "case", "case", ...} when it ends (or, past CASE_TIMEOUT_S, one saying it did not). A case marked
"fast_waits" (one whose fault never lifts: only whether get() raises is judged, never when) has every time.sleep of
its thread cut to FAST_WAIT_S, so a source's whole retry budget (backoffs of tens of seconds) costs no wall time.
"""

import json
import os
import sys
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import loopback_only  # noqa: E402,F401  (refuses every connection that leaves this machine)

# The validators' own modules (code.py, source.py...) must not shadow what bizon imports.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != HERE]

MARKER = "BIZON_FORGE_SOURCE_PROBE "
FAST_WAIT_S = 0.01
FAST_THREADS: set[str] = set()  # the threads of the cases whose waits are cut short
SAYING = threading.Lock()  # the cases' threads say their ends at once: one whole line each


def say(step: str, **fields) -> None:
    line = MARKER + json.dumps({"step": step, **fields}, default=str) + "\n"
    with SAYING:
        sys.stdout.write(line)
        sys.stdout.flush()


def error_fields(error: BaseException) -> dict:
    response = getattr(error, "response", None)
    status = getattr(response, "status_code", None)
    return {
        "ok": False,
        "error": f"{type(error).__name__}: {error}"[:600],
        "error_type": type(error).__name__,
        "status": status,
        "trace": traceback.format_exc()[-4000:],
    }


def build(name: str, stream: str, config: dict):
    from bizon.source.discover import get_source_instance_by_source_and_stream

    return get_source_instance_by_source_and_stream(source_name=name, stream_name=stream, source_config=config)


def loop(source, out_path: str, max_pages: int, state=None) -> dict:
    """get() from `{}` until next_pagination is `{}` (at most max_pages); every page a line of out_path. Returns
    the marker's fields: ok, pages, and why it did not end."""
    pagination: dict = {}
    seen: list[str] = []
    with open(out_path, "w") as out:
        for page in range(max_pages):
            started = time.perf_counter()
            try:
                if state is not None:
                    got = source.get_records_after(source_state=state, pagination=pagination)
                else:
                    got = source.get(pagination=pagination)
                nxt = got.next_pagination
                rows = [{"id": r.id, "data": r.data} for r in got.records]
            except BaseException as error:
                return {"page": page, "pages": page, **error_fields(error)}
            try:
                key = json.dumps(nxt, sort_keys=True)
            except (TypeError, ValueError) as error:
                return {"page": page, "pages": page + 1, "ok": False, "error": f"next_pagination is not JSON: {error}"}
            line = {"page": page, "pagination": pagination, "next": nxt, "records": rows}
            out.write(json.dumps(line, default=repr) + "\n")
            out.flush()
            if not nxt:
                return {"ok": True, "pages": page + 1, "seconds": round(time.perf_counter() - started, 2)}
            if key in seen:
                return {"ok": False, "pages": page + 1, "never_ends": True, "repeated": nxt}
            seen.append(key)
            pagination = nxt
    return {"ok": False, "pages": max_pages, "never_ends": True}


def main(argv: list[str]) -> int:
    if argv[1:2] == ["--cases"]:
        return cases(argv[1:])
    root, name, stream, config_path, out_path, max_pages = argv[1:7]
    incremental = argv[7:9]
    os.chdir(root)
    sys.path.insert(0, root)
    started = time.perf_counter()
    try:
        with open(config_path) as f:
            config = json.load(f)
        source = build(name, stream, config)
    except BaseException as error:
        say("build", **error_fields(error))
        return 1
    say("build", ok=True, seconds=round(time.perf_counter() - started, 2))

    state = None
    if incremental:
        from datetime import datetime

        from bizon.source.models import SourceIncrementalState

        state = SourceIncrementalState(last_run=datetime.fromisoformat(incremental[0]), cursor_field=incremental[1])
    result = loop(source, out_path, int(max_pages), state)
    say("pages", **result)
    return 0 if result["ok"] else 1


def _sleep(real):
    def sleep(seconds: float) -> None:
        real(min(seconds, FAST_WAIT_S) if threading.current_thread().name in FAST_THREADS else seconds)

    return sleep


def cases(argv: list[str]) -> int:
    """Every case of one stream: the sources built one after the other (discovery imports), then each case's loop
    in its own thread, all at once: the slowest case's waits, not their sum."""
    root, name, stream, cases_path, out_dir, max_pages, timeout = argv[1:8]
    os.chdir(root)
    sys.path.insert(0, root)
    with open(cases_path) as f:
        wanted = json.load(f)
    time.sleep = _sleep(time.sleep)  # before building: a source's `from time import sleep` gets it too
    threads = []
    for item in wanted:
        case = item["case"]
        try:
            source = build(name, stream, item["config"])
        except BaseException as error:
            say("case", case=case, build=False, **error_fields(error))
            continue
        out = os.path.join(out_dir, f"{case}.jsonl")
        thread = threading.Thread(
            target=run_case, args=(case, source, out, int(max_pages)), name=f"case-{case}", daemon=True
        )
        if item.get("fast_waits"):
            FAST_THREADS.add(thread.name)
        threads.append((case, thread))
    for _, thread in threads:
        thread.start()
    deadline = time.monotonic() + float(timeout)
    for case, thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            say("case", case=case, ok=False, timed_out=True, error=f"get() was still running after {timeout} s")
    sys.stdout.flush()
    os._exit(0)  # a case's thread still blocked in a request must not hold the process


def run_case(case: str, source, out_path: str, max_pages: int) -> None:
    started = time.perf_counter()
    result = loop(source, out_path, max_pages)
    if "trace" in result:  # one short line per case: the error's end is enough beside the log
        result["trace"] = result["trace"][-1500:]
    say("case", case=case, **{**result, "seconds": round(time.perf_counter() - started, 2)})


if __name__ == "__main__":
    sys.exit(main(sys.argv))
