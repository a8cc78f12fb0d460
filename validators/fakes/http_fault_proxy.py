"""An HTTP proxy in front of an http(s) target that fails the way real APIs do: the data suite's
`data.unreliable_target` points a destination's URL fields at it (suite_probe.py) and reads back what landed.

It listens on plain http at 127.0.0.1 and forwards each request to its upstream (http or https: the destination
talks http to it, the proxy does the TLS). Requests that change nothing (GET, HEAD, OPTIONS, `_search` and its
kin) always pass. Write requests take a schedule of faults (`Faults.start`), one fault every other write request
so a retry can pass:
  429   answered here with Retry-After, never forwarded; a write that comes sooner counts as early
  503   answered here, never forwarded
  drop  forwarded, the target answered, then the connection is closed with no answer (did it land?)
  cut   forwarded, the target answered, the answer is cut off half-way (the status arrived, the body did not)
  bulk  an Elasticsearch/OpenSearch `_bulk` request: every other item is answered here with a per-item 429 inside
        a 200 `{"errors": true, "items": [...]}`, never forwarded; the rest is forwarded and its items merged in
`Faults.deny()` answers 401 to every write request instead (a wrong token: must not be retried for long).
A client that speaks TLS to the proxy (it insists on https) is seen (`encrypted`) and hung up on.

Runs in the workspace's Python (maybe 3.9); imports nothing but the standard library.
"""

from __future__ import annotations

import gzip
import http.client
import json
import socket
import ssl
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

RETRY_AFTER_S = 2  # longer than a usual first backoff (1 s), so ignoring it shows
UPSTREAM_TIMEOUT_S = 60
SCHEDULE = ("429", "503", "drop", "cut", "bulk")
# Requests that change nothing, though some are POSTs: never failed, never counted as writes.
READS = frozenset("_search _msearch _count _mget _field_caps _refresh _validate _explain".split())
HOP_BY_HOP = frozenset(
    "connection keep-alive proxy-connection proxy-authorization te trailer transfer-encoding upgrade host "
    "content-length expect".split()
)
TLS_HANDSHAKE = 0x16  # the first byte of a TLS ClientHello


def is_write(method: str, path: str) -> bool:
    last = urllib.parse.urlsplit(path).path.rstrip("/").rsplit("/", 1)[-1]
    return method not in ("GET", "HEAD", "OPTIONS") and last not in READS


def is_bulk(path: str) -> bool:
    return urllib.parse.urlsplit(path).path.rstrip("/").endswith("_bulk")


class Faults:
    """What the proxies in front of one target do to its write requests (shared by the proxies of several URLs)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._pending: list[str] = []
        self._gap = False  # the write request after a fault passes: a retry can land
        self._denying = False
        self._not_before = 0.0
        self.fired: list[str] = []  # "429 (POST /x/_bulk)", in the order they fired
        self.requests = 0  # every request that reached a proxy
        self.writes = 0  # write requests since start() or deny()
        self.early = 0  # write requests sooner than the Retry-After of a 429
        self.encrypted = False  # a client spoke TLS to a proxy

    def start(self, schedule=SCHEDULE) -> None:
        with self.lock:
            self._pending, self._gap, self._denying = list(schedule), False, False
            self.fired, self.writes, self.early = [], 0, 0

    def deny(self) -> None:
        with self.lock:
            self._pending, self._denying, self.writes = [], True, 0

    def stop(self) -> None:
        with self.lock:
            self._pending, self._denying = [], False

    @property
    def left(self) -> list[str]:
        with self.lock:
            return list(self._pending)

    def decide(self, method: str, path: str) -> str | None:
        """The fault this request gets, if any (counting it)."""
        with self.lock:
            self.requests += 1
            if not is_write(method, path):
                return None
            self.writes += 1
            now = time.monotonic()
            if now < self._not_before:
                self.early += 1
            self._not_before = 0.0
            return self._next(method, path, now)

    def _next(self, method: str, path: str, now: float) -> str | None:
        if self._denying:
            return "401"
        if self._gap or not self._pending:
            self._gap = False
            return None
        fault = self._pending[0]
        if fault == "bulk" and not is_bulk(path):
            return None
        self._pending.pop(0)
        self._gap = True
        if fault == "429":
            self._not_before = now + RETRY_AFTER_S - 0.05
        self.fired.append(f"{fault} ({method} {urllib.parse.urlsplit(path).path})")
        return fault


class HttpFaultProxy:
    """http://127.0.0.1:<port> forwards to `upstream` (scheme://host[:port]), failing as `faults` says."""

    def __init__(self, upstream: str, faults: Faults | None = None):
        parts = urllib.parse.urlsplit(upstream)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {upstream!r}")
        self.scheme, self.host = parts.scheme, parts.hostname
        self.upstream_port = parts.port or (443 if parts.scheme == "https" else 80)
        # A loopback target (a local S3 or search server) gets the Host the client sent, which a request signed over
        # it (AWS SigV4) needs; a remote one gets its own name, which virtual hosting and CDNs route by.
        self.loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
        self.faults = faults or Faults()
        self.lock = threading.Lock()
        self.clients: set = set()  # open client connections, hung up on close()
        handler = type("Handler", (_Handler,), {"proxy": self})
        self.server = _Server(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True, name="http-fault-proxy").start()

    def url_for(self, url: str) -> str:
        """url pointed at this proxy: plain http, its user, path and query kept."""
        parts = urllib.parse.urlsplit(url)
        user = parts.netloc.rpartition("@")[0]
        netloc = f"{user}@127.0.0.1:{self.port}" if user else f"127.0.0.1:{self.port}"
        return urllib.parse.urlunsplit(parts._replace(scheme="http", netloc=netloc))

    def connect(self) -> http.client.HTTPConnection:
        if self.scheme == "https":  # the system's CAs (SSL_CERT_FILE when set), the target's name checked
            return http.client.HTTPSConnection(
                self.host, self.upstream_port, timeout=UPSTREAM_TIMEOUT_S, context=ssl.create_default_context()
            )
        return http.client.HTTPConnection(self.host, self.upstream_port, timeout=UPSTREAM_TIMEOUT_S)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        with self.lock:
            clients, self.clients = self.clients, set()
        for client in clients:  # a pooled keep-alive connection must not outlive the proxy
            try:
                client.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        pass  # a dropped answer is the point, not news


class _Handler(BaseHTTPRequestHandler):
    proxy: HttpFaultProxy  # set on the subclass each proxy serves with
    protocol_version = "HTTP/1.1"  # keep-alive, as clients' connection pools expect

    def log_message(self, *args) -> None:
        pass

    def handle(self) -> None:
        try:
            first = self.request.recv(1, socket.MSG_PEEK)
        except OSError:
            return
        if first and first[0] == TLS_HANDSHAKE:
            self.proxy.faults.encrypted = True
            return
        with self.proxy.lock:
            self.proxy.clients.add(self.connection)
        try:
            super().handle()
        finally:
            with self.proxy.lock:
                self.proxy.clients.discard(self.connection)

    def __getattr__(self, name: str):
        if name.startswith("do_"):  # every method, WebDAV's and vendors' included
            return self._serve
        raise AttributeError(name)

    def _serve(self) -> None:
        body = self._body()
        fault = self.proxy.faults.decide(self.command, self.path)
        if fault in ("401", "429", "503"):
            headers = {"Retry-After": str(RETRY_AFTER_S)} if fault == "429" else {}
            payload = {"error": {"type": "injected", "reason": f"{fault} injected by bizon-forge's fault proxy"}}
            self._answer(int(fault), json.dumps(payload).encode(), {**headers, "Content-Type": "application/json"})
            return
        if fault == "bulk" and self._bulk(body):
            return
        answer = self._forward(body)
        if answer is None:
            return
        status, headers, data = answer
        if fault == "drop":  # the target did the work; its answer never reaches the client
            self._hang_up()
            return
        if fault == "cut":
            self._answer(status, data, headers, cut=True)
            return
        self._answer(status, data, headers)

    def _body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _forward(self, body: bytes, headers: dict | None = None) -> tuple | None:
        """(status, headers, body) of the upstream's answer; None once a 502 was answered for it."""
        if headers is None:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        if self.proxy.loopback and self.headers.get("Host"):
            headers["Host"] = self.headers["Host"]
        connection = self.proxy.connect()
        try:
            connection.request(self.command, self.path, body or None, headers)
            response = connection.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as error:
            text = f"bizon-forge's fault proxy could not reach {self.proxy.host}: {error}"
            self._answer(502, json.dumps({"error": text}).encode(), {"Content-Type": "application/json"})
            return None
        finally:
            connection.close()
        kept = [(k, v) for k, v in response.getheaders() if k.lower() not in HOP_BY_HOP]
        if self.command == "HEAD" and response.getheader("Content-Length"):
            kept.append(("Content-Length", response.getheader("Content-Length")))
        return response.status, kept, data

    def _answer(self, status: int, data: bytes, headers, cut: bool = False) -> None:
        self.send_response_only(status)
        items = headers.items() if isinstance(headers, dict) else headers
        for name, value in items:
            self.send_header(name, value)
        if self.command != "HEAD" and status not in (204, 304):
            self.send_header("Content-Length", str(len(data)))
            if cut:
                self.end_headers()
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                self._hang_up()
                return
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _hang_up(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _bulk(self, body: bytes) -> bool:
        """Reject every other item of a _bulk request with a per-item 429 and forward the rest; False when the
        body is no bulk request this understands (then it is forwarded untouched)."""
        encoded = "gzip" in (self.headers.get("Content-Encoding") or "").lower()
        items = bulk_items(gzip.decompress(body) if encoded else body)
        if not items:
            return False
        index = bulk_index(self.path)
        rejected = set(range(0, len(items), 2))
        kept = [item for i, item in enumerate(items) if i not in rejected]
        answers: list = []
        if kept:
            headers = {
                k: v
                for k, v in self.headers.items()
                if k.lower() not in HOP_BY_HOP and k.lower() not in ("content-encoding", "accept-encoding")
            }
            answer = self._forward(b"".join(line for item in kept for line in item[2]), headers)
            if answer is None:
                return True
            answers = _bulk_answers(answer, len(kept))
            if answers is None:  # not a bulk answer: pass it on as it is
                self._answer(answer[0], answer[2], answer[1])
                return True
        merged, forwarded = [], iter(answers)
        for i, (action, meta, _) in enumerate(items):
            merged.append(_rejection(action, meta, index) if i in rejected else next(forwarded))
        payload = {"took": 1, "errors": True, "items": merged}
        self._answer(200, json.dumps(payload).encode(), {"Content-Type": "application/json"})
        return True


def bulk_items(body: bytes) -> list:
    """[(action, metadata, [its lines])] of an NDJSON _bulk body; [] when it is not one."""
    lines = [line + b"\n" for line in body.split(b"\n") if line.strip()]
    items, i = [], 0
    try:
        while i < len(lines):
            head = json.loads(lines[i])
            ((action, meta),) = head.items()
            size = 1 if action == "delete" else 2
            if action not in ("index", "create", "update", "delete") or i + size > len(lines):
                return []
            items.append((action, meta if isinstance(meta, dict) else {}, lines[i : i + size]))
            i += size
    except (ValueError, AttributeError):  # not JSON, not one action per line
        return []
    return items


def bulk_index(path: str) -> str | None:
    """The index a /{index}/_bulk path names (None for /_bulk)."""
    parts = [p for p in urllib.parse.urlsplit(path).path.split("/") if p]
    return urllib.parse.unquote(parts[-2]) if len(parts) >= 2 else None


def _bulk_answers(answer: tuple, count: int) -> list | None:
    status, headers, data = answer
    try:
        items = json.loads(data)["items"] if status == 200 else None
    except (ValueError, KeyError, TypeError):
        return None
    return items if isinstance(items, list) and len(items) == count else None


def _rejection(action: str, meta: dict, index: str | None) -> dict:
    answer = {
        "_index": meta.get("_index", index),
        "status": 429,
        "error": {
            "type": "es_rejected_execution_exception",
            "reason": "rejected execution (injected by bizon-forge's fault proxy): retry this item",
        },
    }
    if "_id" in meta:
        answer["_id"] = meta["_id"]
    return {action: answer}
