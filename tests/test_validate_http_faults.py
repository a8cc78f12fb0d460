"""data.unreliable_target judges a target reached over HTTP by a client of its own: an Elasticsearch-style stand-in
(`_bulk`, `_search`, DELETE of an index) this test writes, a custom destination for it written with `requests`,
and the HTTP fault proxy (validators/fakes/http_fault_proxy.py) put in the check config's `hosts`. The correct
destination passes; each bug a trial's agent planted or met fails it with a finding that names it."""

import gzip
import http.client
import itertools
import json
import shutil
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

from bizon_forge import workspace
from bizon_forge.describe import describe_target
from bizon_forge.registrations import apply_registrations
from bizon_forge.render import render_destination
from bizon_forge.spec.destination import DestinationSpec, FieldSpec
from bizon_forge.validators.fakes.http_fault_proxy import Faults, HttpFaultProxy
from bizon_forge.validators.runtime import SUITE_SCRIPT

NAME = "esbulk"


# -- the stand-in: indices of documents, written by _bulk, read by _search ---------------------------------------


class Elastic(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        self.indices: dict[str, dict[str, dict]] = {}
        self.lock = threading.Lock()
        self.ids = itertools.count()
        super().__init__(("127.0.0.1", 0), _Elastic)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def bulk(self, index: str | None, body: bytes) -> dict:
        lines, items = [json.loads(line) for line in body.splitlines() if line.strip()], []
        with self.lock:
            for action, source in zip(lines[::2], lines[1::2], strict=True):
                (kind, meta), *_ = action.items()
                name, id = meta.get("_index", index), str(meta.get("_id") or f"auto-{next(self.ids)}")
                self.indices.setdefault(name, {})[id] = source  # an explicit _id overwrites: idempotent
                items.append({kind: {"_index": name, "_id": id, "status": 201, "result": "created"}})
        return {"took": 1, "errors": False, "items": items}


class _Elastic(BaseHTTPRequestHandler):
    server: Elastic
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _answer(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _route(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        parts = [p for p in urlsplit(self.path).path.split("/") if p]
        if parts[-1:] == ["_bulk"]:
            self._answer(200, self.server.bulk(parts[0] if len(parts) == 2 else None, body))
        elif parts[-1:] == ["_search"] and len(parts) == 2:
            docs = self.server.indices.get(parts[0])
            if docs is None:
                self._answer(404, {"error": {"type": "index_not_found_exception"}, "status": 404})
                return
            hits = [{"_index": parts[0], "_id": id, "_source": doc} for id, doc in docs.items()]
            self._answer(200, {"hits": {"total": {"value": len(hits)}, "hits": hits}})
        elif self.command == "DELETE" and len(parts) == 1:
            with self.server.lock:
                gone = self.server.indices.pop(parts[0], None)
            self._answer(200 if gone is not None else 404, {"acknowledged": gone is not None})
        else:
            self._answer(400, {"error": f"the stand-in does not serve {self.command} {self.path}"})

    do_GET = do_POST = do_DELETE = _route


# -- the destination an agent writes for it ------------------------------------------------------------------------

CONFIG = """
from typing import List, Literal

from pydantic import Field

from bizon.destination.config import AbstractDestinationConfig, AbstractDestinationDetailsConfig, DestinationTypes


class EsbulkDestinationConfig(AbstractDestinationDetailsConfig):
    hosts: List[str] = Field(..., description="Base URLs of the cluster's nodes; the first is used.")


class EsbulkConfig(AbstractDestinationConfig):
    name: Literal[DestinationTypes.ESBULK]
    alias: str = "esbulk"
    config: EsbulkDestinationConfig
"""

DESTINATION = '''
import time
from typing import List, Optional, Tuple, Union

import orjson
import polars as pl
import requests
from loguru import logger

from bizon.common.models import SyncMetadata
from bizon.destination.destination import AbstractDestination
from bizon.engine.backend.backend import AbstractBackend
from bizon.monitoring.monitor import AbstractMonitor
from bizon.source.callback import AbstractSourceCallback
from bizon.source.config import SourceSyncModes

from .config import EsbulkDestinationConfig

TRIES = 4
TRANSIENT = frozenset([429, 502, 503, 504])
LOST = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)


def retry_after(response: requests.Response) -> Optional[float]:
    try:
        return min(float(response.headers.get("Retry-After", "")), 30.0)
    except ValueError:
        return None


class EsbulkDestination(AbstractDestination):
    """Documents in an index named after destination_id, written by _bulk with bizon_id as each one's _id (a
    retried request overwrites, never duplicates). Writes in place: a full refresh deletes the index first."""

    def __init__(
        self,
        sync_metadata: SyncMetadata,
        config: EsbulkDestinationConfig,
        backend: AbstractBackend,
        source_callback: AbstractSourceCallback,
        monitor: AbstractMonitor,
    ):
        super().__init__(sync_metadata, config, backend, source_callback, monitor)
        self.config: EsbulkDestinationConfig = config
        self.session = requests.Session()
        self._failed: Optional[str] = None
        self._emptied: set = set()

    @property
    def base(self) -> str:
        return self.config.hosts[0].rstrip("/")

    @property
    def index(self) -> str:
        return self.destination_id or self.sync_metadata.stream_name

    def check_connection(self) -> bool:
        return True

    def request(self, method: str, path: str, allowed=(), **kwargs) -> requests.Response:
        """One request, retried on what may pass later: a 429 after its Retry-After, a 5xx, a lost answer."""
        delay = 0.2
        for _ in range(TRIES):
            try:
                response = self.session.request(method, self.base + path, timeout=10, **kwargs)
            except LOST as error:
                logger.warning(f"esbulk: {method} {path}: {error}; retrying")
                wait = delay
            else:
                if response.status_code < 400 or response.status_code in allowed:
                    return response
                if response.status_code not in TRANSIENT:
                    raise RuntimeError(f"{method} {path} answered {response.status_code}: {response.text[:200]}")
                wait = retry_after(response) or delay
            time.sleep(wait)
            delay *= 2
        raise RuntimeError(f"{method} {path} still failed after {TRIES} tries")

    def bulk(self, rows: List[dict]) -> None:
        pending = rows
        for attempt in range(TRIES):
            body = b"".join(
                orjson.dumps({"index": {"_index": self.index, "_id": row["bizon_id"]}}) + b"\\n"
                + orjson.dumps(row) + b"\\n"
                for row in pending
            )
            answer = self.request("POST", "/_bulk", data=body, headers={"Content-Type": "application/x-ndjson"}).json()
            if not answer.get("errors"):
                return
            retry = []
            for row, item in zip(pending, answer["items"]):
                result = next(iter(item.values()))
                if result.get("status", 500) in TRANSIENT:
                    retry.append(row)
                elif result.get("status", 500) >= 300:
                    raise RuntimeError(f"document {row['bizon_id']} rejected: {result.get('error')}")
            pending = retry
            if not pending:
                return
            time.sleep(0.2 * 2**attempt)
        raise RuntimeError(f"{len(pending)} documents still rejected after {TRIES} tries")

    def write_records(self, df_destination_records: pl.DataFrame) -> Tuple[bool, Union[str, None]]:
        try:
            if self.sync_metadata.sync_mode == SourceSyncModes.FULL_REFRESH and self.index not in self._emptied:
                self.request("DELETE", f"/{self.index}", allowed=(404,))
                self._emptied.add(self.index)
            if df_destination_records.height:
                self.bulk(df_destination_records.to_dicts())
        except Exception as error:
            self._failed = f"esbulk: writing {df_destination_records.height} records failed: {error}"
            logger.error(self._failed)
            return False, self._failed
        return True, None

    def finalize(self) -> bool:
        if self._failed:
            raise RuntimeError(f"esbulk: a flush failed: {self._failed}")
        return True

    def read_back(self) -> pl.DataFrame:
        response = self.session.get(f"{self.base}/{self.index}/_search", params={"size": 10000}, timeout=10)
        if response.status_code == 404:
            return pl.DataFrame()
        response.raise_for_status()
        rows = [hit["_source"] for hit in response.json()["hits"]["hits"]]
        return pl.DataFrame(rows) if rows else pl.DataFrame()
'''

CHECK = """
name: check_esbulk
source:
  name: dummy
  stream: creatures
  authentication:
    type: api_key
    params:
      token: dummy_key
destination:
  name: esbulk
  config:
    destination_id: forge_check
    hosts: ["{url}"]
"""

# bug -> (old, new) in the destination, and what the finding must say
BUGS = {
    "per_item_rejections_ignored": (
        'if not answer.get("errors"):',
        "if True:",
        "sent 15 record(s), read back 13; record ",
    ),
    "retry_after_ignored": ("wait = retry_after(response) or delay", "wait = delay", "sooner than the Retry-After"),
    "retry_duplicates": (
        '{"index": {"_index": self.index, "_id": row["bizon_id"]}}',
        '{"index": {"_index": self.index}}',
        "read back 21",
    ),
}

# The case, run the way suite_probe.py runs it: in the workspace's interpreter, bizon imported from the tree.
DRIVER = """
import json, sys
probes, root, name, check, run_id = sys.argv[1:6]
sys.path.insert(0, probes)
import suite_probe as suite
suite.probe.forget_bytecode(root, name)
suite.probe.import_bizon(root, name)
try:
    answer = {"status": "pass", "message": suite.case_unreliable_target(suite.Target(name, check, run_id))}
except suite.CaseFailed as error:
    answer = {"status": "fail", "message": str(error), "hint": error.hint}
except suite.CaseSkipped as error:
    answer = {"status": "skip", "message": str(error)}
print("ANSWER " + json.dumps(answer))
"""


@pytest.fixture(scope="module")
def elastic():
    server = Elastic()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def esbulk(pristine, tmp_path_factory, elastic):
    """One tree for the module, the destination installed as an agent would: describe, render, finish, register."""
    tree = tmp_path_factory.mktemp("esbulk") / "tree"
    shutil.copytree(pristine("0.6.4"), tree, symlinks=True)
    ws = workspace.resolve(None, workspace.Settings.from_paths([str(tree)]))
    hosts = FieldSpec(name="hosts", type="list[str]", required=True, description="Base URLs of the nodes")
    assert describe_target(ws, DestinationSpec(name=NAME, fields=[hosts])).ok
    assert render_destination(ws, NAME).ok
    folder = tree / f"bizon/connectors/destinations/{NAME}"
    (folder / "src/config.py").write_text(CONFIG.lstrip())
    (folder / "src/destination.py").write_text(DESTINATION.lstrip())
    (folder / f"config/{NAME}.check.yml").write_text(CHECK.format(url=elastic.url).lstrip())
    assert apply_registrations(ws, NAME).ok
    return ws, folder


RUNS = itertools.count()


def unreliable_target(ws: workspace.Workspace, folder, tmp_path) -> dict:
    check = folder / f"config/{NAME}.check.yml"
    args = [str(SUITE_SCRIPT.parent), str(ws.root), NAME, str(check), f"httpfaults{next(RUNS)}"]
    done = subprocess.run(
        [ws.python(), "-c", DRIVER, *args], cwd=tmp_path, env=ws.env(), capture_output=True, text=True, timeout=200
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("ANSWER ")]
    assert lines, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(lines[-1][len("ANSWER ") :])


@pytest.mark.slow
def test_the_correct_destination_passes_and_each_planted_bug_fails(esbulk, tmp_path):
    ws, folder = esbulk
    started = time.perf_counter()
    answer = unreliable_target(ws, folder, tmp_path)
    print(f"correct: {time.perf_counter() - started:.1f} s", answer)
    assert answer["status"] == "pass", answer
    for fault in ("429 (DELETE", "503 (POST /_bulk)", "drop (POST /_bulk)", "cut (POST /_bulk)", "bulk (POST /_bulk)"):
        assert fault in answer["message"], answer["message"]
    assert "not injected" not in answer["message"]
    assert "a 401 on every write failed the flush after 1 write request(s)" in answer["message"]

    source = folder / "src/destination.py"
    original = source.read_text()
    for bug, (old, new, said) in BUGS.items():
        assert original.count(old) == 1, bug
        source.write_text(original.replace(old, new))
        started = time.perf_counter()
        try:
            answer = unreliable_target(ws, folder, tmp_path)
        finally:
            source.write_text(original)
        print(f"{bug}: {time.perf_counter() - started:.1f} s", answer)
        assert answer["status"] == "fail", (bug, answer)
        assert said in answer["message"], (bug, answer)


@pytest.mark.slow
def test_a_client_that_insists_on_tls_to_the_proxy_skips_with_the_reason(esbulk, tmp_path):
    ws, folder = esbulk
    source = folder / "src/destination.py"
    original = source.read_text()
    old = 'return self.config.hosts[0].rstrip("/")'
    source.write_text(original.replace(old, old + '.replace("http://", "https://")'))
    try:
        answer = unreliable_target(ws, folder, tmp_path)
    finally:
        source.write_text(original)
    assert answer["status"] == "skip", answer
    assert "spoke TLS to the fault proxy put in `hosts`" in answer["message"], answer


# -- the proxy itself, in this process ------------------------------------------------------------------------


def post(url: str, body: bytes, headers: dict | None = None):
    request = urllib.request.Request(url, data=body, method="POST", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def bulk_body(index: str, ids: list[str]) -> bytes:
    return b"".join(
        json.dumps({"index": {"_index": index, "_id": i}}).encode() + b"\n" + json.dumps({"n": i}).encode() + b"\n"
        for i in ids
    )


def test_the_proxy_fails_every_other_write_and_forwards_the_rest(elastic):
    faults = Faults()
    proxy = HttpFaultProxy(elastic.url, faults)
    base = proxy.url_for(elastic.url + "/")
    try:
        faults.start()
        status, headers, _ = post(base + "p1/_bulk", bulk_body("p1", ["a"]))
        assert (status, headers.get("Retry-After")) == (429, "2") and "p1" not in elastic.indices
        assert post(base + "p1/_search", b"{}")[0] == 404 and faults.early == 0  # a read, forwarded and not counted
        assert post(base + "p1/_bulk", bulk_body("p1", ["a"]))[0] == 200 and faults.early == 1  # sooner than 2 s
        assert post(base + "p1/_bulk", bulk_body("p1", ["b"]))[0] == 503 and "b" not in elastic.indices["p1"]
        assert post(base + "p1/_bulk", bulk_body("p1", ["b"]))[0] == 200
        with pytest.raises(OSError):  # dropped after the target stored it
            post(base + "p1/_bulk", bulk_body("p1", ["c"]))
        assert "c" in elastic.indices["p1"]
        assert post(base + "p1/_bulk", bulk_body("p1", ["d"]))[0] == 200  # the gap after a fault
        with pytest.raises(http.client.IncompleteRead):  # the answer cut off half-way
            post(base + "p1/_bulk", bulk_body("p1", ["e"]))
        assert "e" in elastic.indices["p1"]
        assert post(base + "p1/_bulk", bulk_body("p1", ["f"]))[0] == 200
        zipped = gzip.compress(bulk_body("p1", ["g", "h", "i"]))
        status, _, data = post(base + "p1/_bulk", zipped, {"Content-Encoding": "gzip"})
        answer = json.loads(data)
        assert status == 200 and answer["errors"] is True
        assert [next(iter(i.values()))["status"] for i in answer["items"]] == [429, 201, 429]
        assert [next(iter(i.values()))["_id"] for i in answer["items"]] == ["g", "h", "i"]
        assert {"g", "i"}.isdisjoint(elastic.indices["p1"]) and "h" in elastic.indices["p1"]
        assert faults.left == [] and [f.split(" ")[0] for f in faults.fired] == ["429", "503", "drop", "cut", "bulk"]

        faults.deny()
        assert post(base + "p1/_bulk", bulk_body("p1", ["j"]))[0] == 401 and faults.writes == 1
        faults.stop()
        assert post(base + "p1/_bulk", bulk_body("p1", ["j"]))[0] == 200 and "j" in elastic.indices["p1"]
    finally:
        proxy.close()


HTTPS = textwrap.dedent(
    """
    import http.server, ssl, sys
    class Hello(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            answer = b"over tls: " + self.headers["Host"].encode() + b" " + body
            self.send_response(200)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)
    server = http.server.HTTPServer(("127.0.0.1", 0), Hello)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(sys.argv[1], sys.argv[2])
    server.socket = context.wrap_socket(server.socket, server_side=True)
    print(server.server_address[1], flush=True)
    server.serve_forever()
    """
)


def test_the_proxy_speaks_plain_http_to_the_client_and_tls_to_an_https_target(tmp_path, monkeypatch):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    server = subprocess.Popen([sys.executable, "-c", HTTPS, str(cert), str(key)], stdout=subprocess.PIPE, text=True)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the proxy checks the target against the system's CAs
    try:
        port = int(server.stdout.readline())
        proxy = HttpFaultProxy(f"https://localhost:{port}")
        try:
            url = proxy.url_for(f"https://user:secret@localhost:{port}/ingest?x=1")
            assert url == f"http://user:secret@127.0.0.1:{proxy.port}/ingest?x=1"
            status, _, body = post(url.replace("user:secret@", ""), b"hello")
            # a loopback target gets the Host the client sent (a signature over it stays valid)
            assert (status, body) == (200, f"over tls: 127.0.0.1:{proxy.port} hello".encode())
        finally:
            proxy.close()
    finally:
        server.kill()
        server.wait()
