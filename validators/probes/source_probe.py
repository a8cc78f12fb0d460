"""The contract probe of a source, run in the workspace's own Python (it imports nothing of bizon_forge).

    python source_probe.py ROOT NAME STREAM CONFIG_JSON OUT_JSONL MAX_PAGES [LAST_RUN_ISO CURSOR_FIELD]

Builds the source as bizon's runner does (discovery by name and stream, the config class validating CONFIG_JSON,
the source's `source:` section pointed at the local mock API), then loops get(pagination) from `{}` the way the
producer does until next_pagination is `{}`, at most MAX_PAGES times; with LAST_RUN_ISO it loops
get_records_after(SourceIncrementalState(...)) instead. Every page is one JSON line of OUT_JSONL; each step prints
one marker line. Nothing but 127.0.0.1 can be reached (loopback_only).
"""

import json
import os
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import loopback_only  # noqa: E402,F401  (refuses every connection that leaves this machine)

# The validators' own modules (code.py, source.py...) must not shadow what bizon imports.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != HERE]

MARKER = "BIZON_FORGE_SOURCE_PROBE "


def say(step: str, **fields) -> None:
    print(MARKER + json.dumps({"step": step, **fields}, default=str), flush=True)


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


def main(argv: list[str]) -> int:
    root, name, stream, config_path, out_path, max_pages = argv[1:7]
    incremental = argv[7:9]
    os.chdir(root)
    sys.path.insert(0, root)
    started = time.perf_counter()
    try:
        from bizon.source.discover import get_source_instance_by_source_and_stream

        with open(config_path) as f:
            config = json.load(f)
        source = get_source_instance_by_source_and_stream(source_name=name, stream_name=stream, source_config=config)
    except BaseException as error:
        say("build", **error_fields(error))
        return 1
    say("build", ok=True, seconds=round(time.perf_counter() - started, 2))

    state = None
    if incremental:
        from datetime import datetime

        from bizon.source.models import SourceIncrementalState

        state = SourceIncrementalState(last_run=datetime.fromisoformat(incremental[0]), cursor_field=incremental[1])
    pagination: dict = {}
    seen: list[str] = []
    with open(out_path, "w") as out:
        for page in range(int(max_pages)):
            started = time.perf_counter()
            try:
                if state is not None:
                    got = source.get_records_after(source_state=state, pagination=pagination)
                else:
                    got = source.get(pagination=pagination)
                nxt = got.next_pagination
                rows = [{"id": r.id, "data": r.data} for r in got.records]
            except BaseException as error:
                say("pages", page=page, pages=page, **error_fields(error))
                return 1
            try:
                key = json.dumps(nxt, sort_keys=True)
            except (TypeError, ValueError) as error:
                say("pages", page=page, pages=page + 1, ok=False, error=f"next_pagination is not JSON: {error}")
                return 1
            line = {"page": page, "pagination": pagination, "next": nxt, "records": rows}
            out.write(json.dumps(line, default=repr) + "\n")
            out.flush()
            if not nxt:
                say("pages", ok=True, pages=page + 1, seconds=round(time.perf_counter() - started, 2))
                return 0
            if key in seen:
                say("pages", ok=False, pages=page + 1, never_ends=True, repeated=nxt)
                return 1
            seen.append(key)
            pagination = nxt
    say("pages", ok=False, pages=int(max_pages), never_ends=True)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
