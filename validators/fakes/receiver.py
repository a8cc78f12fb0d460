"""A local HTTP receiver: the scratch target of destinations that POST records (the http recipe's check config
points at it through env://BIZON_FORGE_RECEIVER_URL). It keeps what it receives per destination_id, drops a
batch whose Idempotency-Key it already stored, answers GET with what it holds (what the http recipe's read_back()
asks for), and DELETE ?destination_id= empties it. It honours `"replace": true` only when made to
(`honours_replace`): a spec whose full refresh is delete_first is checked against one that ignores the flag, as
Elasticsearch's _bulk or a webhook collector would, so code that relies on the flag leaves records twice.
A record holding "key" replaces the one stored under the same key (an API that upserts by key: what the http
recipe sends when the spec's write_semantics is upsert); records without one are all kept.

It routes by path as the check config's http recipe fields say (`routes`: write_path, read_path, delete_path,
each appended to the endpoint, {destination_id} and {stream} matched in the request's path and query); a
request no route names goes by ?destination_id=, else the body's destination_id (POST), else the path's last
segment. The suite runs each case under its own stream name too, so a route naming only {stream} keeps cases
apart.

A destination_id holding `_unreliable` gets the failures of a real ingest API, in a fixed cycle of its POSTs:
429 with Retry-After, a batch stored and then its connection dropped (no answer), 503; the rest succeed. One
holding `_denied` gets 401 on every POST. POST /_fault?destination_id=...&kind=401|500|drop makes every
request for it but HEAD fail that way (drop: the connection closed unanswered, nothing stored) until kind= is
sent empty: data.publish_fails arms it around a finalize(). GET /_report?destination_id=... says how many
POSTs came, how many came sooner than the Retry-After they were given, and how many met an armed fault.
"""

import json
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import cast
from urllib.parse import parse_qs, unquote, urlparse

MAX_BODY = 64 * 1024 * 1024
RETRY_AFTER_S = 2  # longer than the recipe's first backoff (1 s), so ignoring it shows
FAULTS = {1: "429", 3: "drop", 5: "503"}  # POST number within a cycle of CYCLE -> what goes wrong
CYCLE = 6
ARMED = ("401", "500", "drop")  # what POST /_fault may make every request of a destination_id meet
ROUTED = {"POST": "write_path", "GET": "read_path", "DELETE": "delete_path"}
PLACEHOLDER = re.compile(r"\{(destination_id|stream)\}")


def route(template: str) -> re.Pattern:
    """A regex that finds a path template at the end of a request's path and query, whatever the endpoint's own
    path before it; a placeholder matches one path segment or query value."""
    parts, seen, at = [], set(), 0
    for match in PLACEHOLDER.finditer(template):
        name = match.group(1)
        parts += [re.escape(template[at : match.start()]), f"(?P={name})" if name in seen else f"(?P<{name}>[^/?&#]+)"]
        seen.add(name)
        at = match.end()
    return re.compile(".*" + "".join(parts) + re.escape(template[at:]))


def routes_from(check_text: str | None) -> dict[str, re.Pattern]:
    """Method -> route, from the check config's destination fields write_path, read_path, delete_path (those a
    placeholder names; the others leave the request to the fallbacks)."""
    import yaml

    try:
        config = ((yaml.safe_load(check_text or "") or {}).get("destination") or {}).get("config") or {}
    except (yaml.YAMLError, AttributeError):
        return {}
    found = {}
    for method, field in ROUTED.items():
        value = config.get(field) if isinstance(config, dict) else None
        if isinstance(value, str) and PLACEHOLDER.search(value):
            found[method] = route(value)
    return found


def _last_per_key(records: list) -> list:
    """The records in order, a keyed one only where it is the last of its key."""
    keyed = [json.dumps(r["key"], sort_keys=True) if isinstance(r, dict) and "key" in r else None for r in records]
    last = {key: index for index, key in enumerate(keyed) if key is not None}
    return [r for index, (r, key) in enumerate(zip(records, keyed, strict=True)) if key is None or last[key] == index]


class _Handler(BaseHTTPRequestHandler):
    receiver: "Receiver"  # set on the subclass each Receiver serves with

    def log_message(self, *args):  # the checks' logs are the destination's, not ours
        pass

    def _answer(self, status: int, body: dict | None = None, headers: dict | None = None) -> None:
        data = json.dumps(body or {}).encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _query_id(self) -> str:
        return (parse_qs(urlparse(self.path).query).get("destination_id") or [""])[0]

    def _key(self, body: dict | None = None) -> str:
        """Whose records a request is about: its route's placeholders, else ?destination_id=, the body's, the
        path's last segment."""
        pattern = self.receiver.routes.get(self.command)
        found = pattern.fullmatch(self.path) if pattern else None
        if found:
            return unquote(found.groupdict().get("destination_id") or found.group("stream"))
        if query := self._query_id():
            return query
        if body is not None:
            return str(body["destination_id"])
        return unquote(urlparse(self.path).path.rstrip("/").rpartition("/")[2]) if not pattern else ""

    def _armed(self, key: str) -> bool:
        """Answer the fault POST /_fault armed for key; True when it did."""
        fault = self.receiver.armed.get(key)
        if fault:
            with self.receiver.lock:
                self.receiver.faulted[key] = self.receiver.faulted.get(key, 0) + 1
        if fault == "drop":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
        elif fault:
            self._answer(int(fault), {"error": f"injected {fault}"})
        return fault is not None

    def do_HEAD(self):
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self):
        if urlparse(self.path).path.endswith("/_report"):
            self._answer(200, self.receiver.report(self._query_id()))
            return
        destination_id = self._key()
        if not self._armed(destination_id):
            self._answer(200, {"destination_id": destination_id, "records": self.receiver.records(destination_id)})

    def do_DELETE(self):
        destination_id = self._key()
        if not destination_id:
            self._answer(400, {"error": "DELETE needs ?destination_id= or a delete_path naming it"})
        elif not self._armed(destination_id):
            self._answer(200, {"deleted": self.receiver.delete(destination_id)})

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._answer(413, {"error": "body too large"})
            return
        if urlparse(self.path).path.endswith("/_fault"):
            kind = (parse_qs(urlparse(self.path).query).get("kind") or [""])[0]
            self.receiver.arm(self._query_id(), kind)
            self._answer(200, {"armed": kind})
            return
        try:
            body = json.loads(self.rfile.read(length))
            records = list(body["records"])
            destination_id = self._key(body)
        except (ValueError, KeyError, TypeError) as error:
            self._answer(400, {"error": f"expected {{destination_id, records, replace}}: {error}"})
            return
        if self._armed(destination_id):
            return
        fault = self.receiver.fault(destination_id)
        if fault in ("401", "429", "503"):
            headers = {"Retry-After": str(RETRY_AFTER_S)} if fault == "429" else {}
            self._answer(int(fault), {"error": f"injected {fault}"}, headers)
            return
        if not self.receiver.store(destination_id, records, self.headers.get("Idempotency-Key"), body.get("replace")):
            self._answer(200, {"duplicate": True})
            return
        if fault == "drop":  # stored, and the answer lost: only a retry with the same key is safe
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self._answer(200, {"stored": len(records)})


class _Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        pass  # a dropped answer is the point, not news


class Receiver:
    def __init__(self, honours_replace: bool = True, port: int = 0, routes: dict[str, re.Pattern] | None = None):
        self.honours_replace = honours_replace
        self.routes = routes or {}
        self.armed: dict[str, str] = {}  # destination_id -> the fault every request of it meets (POST /_fault)
        self.faulted: dict[str, int] = {}  # destination_id -> requests answered with its armed fault
        self.stored: dict[str, list] = {}
        self.keys: set[str] = set()
        self.posts: dict[str, int] = {}  # destination_id -> POSTs received
        self.early: dict[str, int] = {}  # destination_id -> POSTs sooner than the Retry-After given
        self.not_before: dict[str, float] = {}  # destination_id -> when a retry may come (after a 429)
        self.lock = threading.Lock()
        handler = type("Handler", (_Handler,), {"receiver": self})
        self.server = _Server(("127.0.0.1", port), handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True, name="bizon-forge-receiver")
        self.thread.start()

    def report(self, destination_id: str) -> dict:
        with self.lock:
            return {
                "posts": self.posts.get(destination_id, 0),
                "early": self.early.get(destination_id, 0),
                "faulted": self.faulted.get(destination_id, 0),
            }

    def arm(self, destination_id: str, kind: str) -> None:
        with self.lock:
            if kind in ARMED:
                self.armed[destination_id] = kind
            else:
                self.armed.pop(destination_id, None)

    def records(self, destination_id: str) -> list:
        with self.lock:
            return list(self.stored.get(destination_id, []))

    def delete(self, destination_id: str) -> int:
        with self.lock:
            return len(self.stored.pop(destination_id, []))

    def store(self, destination_id: str, records: list, key: str | None, replace) -> bool:
        """Keep a batch (after emptying what it replaces, if honoured); False for a key already stored."""
        with self.lock:
            if key and key in self.keys:
                return False
            if replace and self.honours_replace:
                self.stored[destination_id] = []
            self.stored[destination_id] = _last_per_key([*self.stored.get(destination_id, []), *records])
            if key:
                self.keys.add(key)
            return True

    def fault(self, destination_id: str) -> str | None:
        """What goes wrong with this POST (counted, and checked against a Retry-After given before)."""
        with self.lock:
            n = self.posts[destination_id] = self.posts.get(destination_id, 0) + 1
            now = time.monotonic()
            if now < self.not_before.pop(destination_id, 0.0):
                self.early[destination_id] = self.early.get(destination_id, 0) + 1
            if "_denied" in destination_id:
                return "401"
            if "_unreliable" not in destination_id:
                return None
            fault = FAULTS.get(n % CYCLE)
            if fault == "429":
                self.not_before[destination_id] = now + RETRY_AFTER_S - 0.05
            return fault

    @property
    def url(self) -> str:
        host, port = cast(tuple[str, int], self.server.server_address)[:2]  # an AF_INET server
        return f"http://{host}:{port}/records"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def serve_forever(port: int, honours_replace: bool = True) -> int:
    """Serve a receiver in the foreground, for running an http destination's check config by hand."""
    receiver = Receiver(honours_replace=honours_replace, port=port)
    print(f"receiving at {receiver.url} (GET ?destination_id= shows what landed); Ctrl-C stops", flush=True)
    try:
        receiver.thread.join()
    except KeyboardInterrupt:
        receiver.close()
    return 0
