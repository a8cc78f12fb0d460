"""The live read of a source, run in the workspace's own Python (it imports nothing of bizon_forge).

    python source_live_probe.py ROOT NAME REQUEST_JSON OUT_JSONL

REQUEST_JSON: {"config": the example config's path, "streams": [names], "max_pages": n, "budget_s": seconds,
"secret_vars": [names of the variables the config references]}. The variables themselves come in the environment
(the caller looked them up as `bizon run` would: the environment, then the tree's .env).

Unlike source_probe.py (the contract against the mock), this one reaches the user's REAL API: sources only read.
It resolves the config's `source:` section with the tree's own bizon resolver (env://, and gsm:// where the tree
has it), builds the source per stream as bizon's runner does, puts a response hook first on the source's own
`requests` session, and loops get(pagination) from `{}` until `{}`, at most max_pages times (and never past the
budget). Each page is one JSON line of OUT_JSONL: its records, the body of its last 2xx response, its requests
(method, URL, status, bytes, seconds, retries) and its time; each stream ends with one line saying why it ended.

No secret is written anywhere: every line of OUT_JSONL and everything printed (bizon's logger too: stdout and
stderr are wrapped before loguru takes them) has the resolved values of the referenced variables and the
config's literal credentials replaced by `***`; credential headers and query parameters named like a key,
token, secret or password are logged as `***`.
"""

import copy
import json
import os
import re
import sys
import time
import traceback
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

HERE = os.path.dirname(os.path.abspath(__file__))
# The validators' own modules (code.py, source.py...) must not shadow what bizon imports.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != HERE]

MARKER = "BIZON_FORGE_SOURCE_LIVE "
MASK = "***"
MIN_SECRET = 4  # shorter values are no secret worth the name, and masking them would garble every text
SECRET_NAME = re.compile(r"key|token|secret|passw|signature|sig$|auth|session|cookie|credential", re.I)
BODY_CHARS = 300
REQUEST_TIMEOUT_S = 60  # for a request the source sends without a timeout of its own
SECRETS: list = []  # filled once the config is read; the wrapped streams read it on every write


def _variants(secret: str) -> list:
    return [secret, json.dumps(secret)[1:-1], quote(secret, safe="")]


def mask_text(text: str) -> str:
    for secret in SECRETS:
        for form in _variants(secret):
            if form:
                text = text.replace(form, MASK)
    return text


def mask(value):
    """`value` (JSON-like) with every secret inside its strings (keys too) replaced."""
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        return {mask_text(str(k)): mask(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [mask(v) for v in value]
    return value


class Masked:
    """A text stream whose every write is masked (loguru's default sink is sys.stderr, taken when it is imported)."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text):
        self._stream.write(mask_text(text))
        return len(text)

    def __getattr__(self, name):
        return getattr(self._stream, name)


sys.stdout = Masked(sys.stdout)
sys.stderr = Masked(sys.stderr)


def say(step: str, **fields) -> None:
    print(MARKER + json.dumps(mask({"step": step, **fields}), default=str), flush=True)


def masked_url(url: str) -> str:
    parts = urlsplit(url)
    query = [(k, MASK if SECRET_NAME.search(k) else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    return mask_text(urlunsplit(parts._replace(query=urlencode(query, safe="*"))))


def _credentials(headers) -> list:
    """(name, scheme or None, value) of each credential header a request sent."""
    found = []
    for name, value in headers.items():
        if SECRET_NAME.search(name) or name.lower() in ("authorization", "proxy-authorization", "cookie"):
            parts = str(value).split(" ", 1)
            scheme = parts[0] if len(parts) == 2 and parts[0].isalpha() else None
            found.append((name, scheme, parts[1] if scheme else str(value)))
    return found


def credential_headers(headers) -> list:
    """The credential headers a request sent, their values masked (an Authorization's scheme kept)."""
    return [f"{name}: {scheme} {MASK}" if scheme else f"{name}: {MASK}" for name, scheme, _ in _credentials(headers)]


def request_body(request) -> object:
    body = request.body
    if body is None:
        return None
    if isinstance(body, bytes):
        body = body.decode("utf-8", errors="replace")
    return mask_text(str(body))[:BODY_CHARS]


def retries_of(response) -> list:
    """The statuses (or errors) urllib3 retried before this response: the session only sees the last one."""
    history = getattr(getattr(getattr(response, "raw", None), "retries", None), "history", None) or ()
    return [h.status if h.status else type(h.error).__name__ if h.error else "redirect" for h in history]


class Recorder:
    """The response hook: every response the source's session got, until taken by the page it belongs to."""

    def __init__(self):
        self.responses = []

    def __call__(self, response, *args, **kwargs):
        # A credential the source got at run time (an OAuth access token) is hidden from here on, like the config's.
        hide([value for _, _, value in _credentials(response.request.headers)])
        self.responses.append(response)
        return response

    def take(self) -> list:
        taken, self.responses = self.responses, []
        return taken


def request_line(response) -> dict:
    request = response.request
    line = {
        "method": request.method,
        "url": masked_url(request.url),
        "status": response.status_code,
        "bytes": len(response.content or b""),
        "seconds": round(response.elapsed.total_seconds(), 3),
    }
    retried = retries_of(response)
    if retried:
        line["retried"] = retried
    auth = credential_headers(request.headers)
    if auth:
        line["auth"] = auth
    body = request_body(request)
    if body:
        line["body"] = body
    return line


def page_body(responses: list):
    """The JSON body of the page: the last 2xx answer the source got while reading it."""
    for response in reversed(responses):
        if 200 <= response.status_code < 300:
            try:
                return response.json(), None
            except ValueError:
                return None, f"the answer is not JSON ({response.headers.get('Content-Type')})"
    return None, "no 2xx answer went through the source's session"


def error_fields(error: BaseException) -> dict:
    response = getattr(error, "response", None)
    fields = {
        "error": f"{type(error).__name__}: {error}"[:600],
        "error_type": type(error).__name__,
        "status": getattr(response, "status_code", None),
        "trace": traceback.format_exc()[-3000:],
    }
    if response is not None:
        try:
            fields["message"] = response.text[:BODY_CHARS]
        except Exception:  # a body that cannot be read says nothing more
            pass
    return fields


def secrets_of(section: dict, names: list) -> list:
    """The values to hide: the referenced variables' and the literal credentials the config's auth carries."""
    found = [os.environ[n] for n in names if n in os.environ]
    params = ((section.get("authentication") or {}).get("params") or {}) if isinstance(section, dict) else {}
    if isinstance(params, dict):
        found += [v for k, v in params.items() if isinstance(v, str) and SECRET_NAME.search(k) and "://" not in v]
    return found


def resolved_values(before, after) -> list:
    """Every string a reference became (env://, gsm://, inline ${...}): the resolver's output is a secret."""
    if isinstance(before, dict) and isinstance(after, dict):
        return [v for k in before if k in after for v in resolved_values(before[k], after[k])]
    if isinstance(before, list) and isinstance(after, list):
        pairs = range(min(len(before), len(after)))  # no zip(strict=): this may run on Python 3.9
        return [v for i in pairs for v in resolved_values(before[i], after[i])]
    return [after] if isinstance(after, str) and after != before else []


def hide(values: list) -> None:
    SECRETS[:] = sorted({s for s in [*SECRETS, *values] if isinstance(s, str) and len(s) >= MIN_SECRET}, key=len)[::-1]


def bounded(session) -> None:
    """Every request of the session gets a timeout: the source's own, else REQUEST_TIMEOUT_S."""
    request = session.request

    def with_timeout(method, url, *args, **kwargs):
        if kwargs.get("timeout") is None and len(args) < 10:  # timeout is request()'s 11th parameter
            kwargs["timeout"] = REQUEST_TIMEOUT_S
        return request(method, url, *args, **kwargs)

    session.request = with_timeout


def resolve(section: dict, settings) -> dict:
    """The `source:` section with its references resolved by the tree's bizon, as `bizon run` resolves them."""
    config = {"source": section}
    if settings is not None:
        config["secrets"] = settings
    try:
        from bizon.engine.engine import resolve_config  # 0.5.2 and 0.6.x: BIZON_ENV_ then env:// / gsm://
    except ImportError:
        from bizon.engine.resolvers import resolve_references_in_config as resolve_config
    return resolve_config(config)["source"]


def read_stream(name: str, stream: str, section: dict, out, max_pages: int, deadline: float) -> None:
    from bizon.source.discover import get_source_instance_by_source_and_stream

    started = time.perf_counter()
    try:
        source = get_source_instance_by_source_and_stream(
            source_name=name, stream_name=stream, source_config={**section, "stream": stream}
        )
    except BaseException as error:
        end(out, stream, "not_built", **error_fields(error))
        return
    recorder = Recorder()
    session = getattr(source, "session", None)
    if session is not None:
        session.hooks.setdefault("response", []).insert(0, recorder)  # before raise_for_status: errors logged too
        bounded(session)
    say("build", stream=stream, ok=True, seconds=round(time.perf_counter() - started, 2))
    read_pages(source, stream, recorder, out, max_pages, deadline)


def read_pages(source, stream: str, recorder: Recorder, out, max_pages: int, deadline: float) -> None:
    pagination: dict = {}
    seen = []
    for page in range(max_pages):
        if time.monotonic() > deadline:
            return end(out, stream, "time_limit", pages=page)
        started = time.perf_counter()
        try:
            got = source.get(pagination=pagination)
            nxt, records = got.next_pagination, [{"id": r.id, "data": r.data} for r in got.records]
        except BaseException as error:
            write(out, {"stream": stream, "page": page, "requests": [request_line(r) for r in recorder.take()]})
            return end(out, stream, "error", pages=page, **error_fields(error))
        responses = recorder.take()
        body, note = page_body(responses)
        line = {"stream": stream, "page": page, "pagination": pagination, "next": nxt, "records": records}
        line.update(body=body, body_note=note, seconds=round(time.perf_counter() - started, 3))
        line["requests"] = [request_line(r) for r in responses]
        write(out, line)
        if not nxt:
            return end(out, stream, "end", pages=page + 1)
        key = json.dumps(nxt, sort_keys=True, default=repr)
        if key in seen:
            return end(out, stream, "repeated", pages=page + 1, repeated=nxt)
        seen.append(key)
        pagination = nxt
    return end(out, stream, "page_limit", pages=max_pages)


def write(out, line: dict) -> None:
    out.write(json.dumps(mask(line), default=repr, ensure_ascii=False) + "\n")
    out.flush()


def end(out, stream: str, why: str, **fields) -> None:
    trace = fields.pop("trace", None)
    if trace:
        print(f"{stream}: {trace}", file=sys.stderr)  # the kept log has it (masked); the answer has the error
    write(out, {"stream": stream, "end": why, **fields})
    say("stream", stream=stream, end=why, pages=fields.get("pages"), status=fields.get("status"))


def main(argv: list) -> int:
    root, name, request_path, out_path = argv[1:5]
    os.chdir(root)
    sys.path.insert(0, root)
    with open(request_path) as f:
        request = json.load(f)
    deadline = time.monotonic() + float(request["budget_s"])
    with open(out_path, "w", encoding="utf-8") as out:
        try:
            import yaml

            with open(request["config"]) as f:
                config = yaml.safe_load(f) or {}
            section = config.get("source") or {}
            hide(secrets_of(section, request["secret_vars"]))
            resolved = resolve(copy.deepcopy(section), config.get("secrets"))
            hide(resolved_values(section, resolved) + secrets_of(resolved, []))
        except BaseException as error:
            for stream in request["streams"]:
                end(out, stream, "not_built", **error_fields(error))
            return 1
        for stream in request["streams"]:
            read_stream(name, stream, resolved, out, int(request["max_pages"]), deadline)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
