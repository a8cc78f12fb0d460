"""The http recipe end to end against a real local HTTP server that fails a set number of times, then accepts.

The server routes by path, as many ingest APIs do (POST /ingest/<destination_id>?stream=<stream>, GET
/records/<destination_id>), and answers 404 elsewhere: the spec's path templates reach it with no code edit,
and validation at level full passes through the same templates (the receiver routes by them).

Through bizon: a full refresh posts in finalize(), retries the transient failures, and its records land
exactly once; a second run replaces them; a permanent failure fails the run loudly, without retry.
Through the destination itself (stream mode, as bizon's consumer calls it): write_records returns
(True, None) after transient failures and (False, message) on a permanent one.
"""

import json
import os
import re
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson
import pytest
import yaml

from bizon_forge import recipes, workspace
from bizon_forge.connector import RECEIVER_PORT
from bizon_forge.spec.destination import DestinationSpec, FieldSpec
from bizon_forge.validators.fakes.receiver import Receiver as CheckReceiver
from bizon_forge.validators.fakes.receiver import routes_from
from bizon_forge.validators.validation import validate_destination
from tests.http_server import free_port
from tests.recipe_runs import CONTRACT_COLUMNS, CREATURE_IDS, bizon_run, forged_tree, run_ok, write_run_config

TOKEN = "tok-3f9a1c7e5b"


class Receiver(ThreadingHTTPServer):
    """Answers the first `failures` POSTs with `status`, then keeps each destination_id's records."""

    daemon_threads = True  # closing never waits on a client's idle keep-alive connection

    def __init__(self, failures: int, status: int):
        super().__init__(("127.0.0.1", 0), Handler)
        self.failures, self.status = failures, status
        self.lock = threading.Lock()
        self.posts = 0
        self.auth: set[str] = set()
        self.keys: list[str] = []
        self.stored: dict[str, list[dict]] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


# The path templates the spec declares (the API's routes under endpoint).
PATHS = {"write_path": "/ingest/{destination_id}?stream={stream}", "read_path": "/records/{destination_id}"}
ROUTE = re.compile(r"/v1/ingest/(?P<id>[^/?]+)\?stream=creatures")


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        server: Receiver = self.server
        routed = ROUTE.fullmatch(self.path)
        if not routed:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        with server.lock:
            server.posts += 1
            server.auth.add(self.headers.get("Authorization", ""))
            server.keys.append(self.headers.get("Idempotency-Key", ""))
            failed = server.posts <= server.failures
            if not failed:
                payload = orjson.loads(body)
                stored = server.stored.setdefault(routed["id"], [])
                if payload["replace"]:
                    stored.clear()
                stored.extend(payload["records"])
        self.send_response(server.status if failed else 200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def start(failures: int = 0, status: int = 503) -> Receiver:
    server = Receiver(failures, status)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def stop(server: Receiver) -> None:
    server.shutdown()
    server.server_close()


@pytest.fixture
def serve():
    servers: list[Receiver] = []

    def serve(failures: int = 0, status: int = 503) -> Receiver:
        servers.append(start(failures, status))
        return servers[-1]

    yield serve
    for server in servers:
        stop(server)


@pytest.fixture(scope="module")
def hook(pristine, tmp_path_factory):
    """Forged and validated at level full; its example YAML points at a receiver the checks must not touch."""
    receiver = start()
    spec = {
        # The agent's own endpoint default goes into the example YAML: the user's real target; its path templates
        # go into both configs.
        "fields": [
            {"name": "endpoint", "default": receiver.url, "description": "Ingest URL."},
            *({"name": k, "default": v, "description": "route"} for k, v in PATHS.items()),
        ],
        "full_refresh": "replace_flag",
        # Short backoff keeps the retries quick; 3 retries cover the 2 failures below.
        "error_handling": {
            "transient": ["429", "5xx", "ConnectionError"],
            "max_retries": 3,
            "backoff_seconds": 0.05,
        },
    }
    try:
        tree = forged_tree(pristine, tmp_path_factory, "hook", "http", **spec)
        ws = workspace.resolve(None, workspace.Settings.from_paths([str(tree)]))
        result = validate_destination(ws, "hook", "full", verbose=True)
    finally:
        stop(receiver)
    assert result.ok, [(f.id, f.message) for f in result.findings if f.status == "fail"]
    # The suite's receiver routed by the templates: its faults reached this destination, none was skipped.
    assert [f.status for f in result.findings if f.id in ("data.publish_fails", "data.unreliable_target")] == [
        "pass",
        "pass",
    ], [(f.id, f.status, f.message) for f in result.findings if f.id.startswith("data.")]
    assert not receiver.stored and receiver.posts == 0, "validation wrote to the endpoint the example names"
    config = tree / "bizon/connectors/destinations/hook/config"
    for rel in ("hook.example.yml", "hook.check.yml"):  # the checks exercised the example's templates
        details = yaml.safe_load((config / rel).read_text())["destination"]["config"]
        assert {k: details[k] for k in PATHS} == PATHS, rel
    return tree


def test_transient_failures_are_retried_and_records_land_once(hook, tmp_path, serve):
    server = serve(failures=2, status=503)
    config = write_run_config(hook, "hook", tmp_path, endpoint=server.url, auth_token=TOKEN)
    output = run_ok(hook, config)
    assert server.posts == 3
    assert server.auth == {f"Bearer {TOKEN}"}
    assert len(set(server.keys)) == 1  # the same batch, retried under one idempotency key
    records = server.stored["hook_creatures"]
    assert sorted(r["source_record_id"] for r in records) == CREATURE_IDS
    assert list(records[0]) == CONTRACT_COLUMNS
    assert records[0]["source_data"]["name"]  # a JSON object, not a string
    assert TOKEN not in output

    run_ok(hook, config)  # a second full refresh replaces what the receiver holds
    assert sorted(r["source_record_id"] for r in server.stored["hook_creatures"]) == CREATURE_IDS


def test_a_permanent_failure_fails_the_run_without_retry(hook, tmp_path, serve):
    server = serve(failures=1000, status=400)
    # the example's own auth_token, a reference (env://HOOK_AUTH_TOKEN), resolved by bizon from the environment
    config = write_run_config(hook, "hook", tmp_path, endpoint=server.url)
    done = bizon_run(hook, config, env={"HOOK_AUTH_TOKEN": TOKEN})
    output = done.stdout + done.stderr
    assert done.returncode != 0, output[-2000:]
    assert "HTTP 400" in output
    assert server.posts == 1
    assert not server.stored


DRIVER = """
import json, sys
from datetime import datetime, timezone

import orjson
import polars as pl

from bizon.common.models import SyncMetadata
from bizon.connectors.destinations.hook.src.config import HookDestinationConfig
from bizon.connectors.destinations.hook.src.destination import HookDestination
from bizon.destination.models import destination_record_schema
from bizon.monitoring.noop.monitor import NoOpMonitor
from bizon.source.callback import NoOpSourceCallback

meta = SyncMetadata(job_id="j", name="j", source_name="dummy", stream_name="creatures",
                    destination_name="hook", destination_alias="hook", sync_mode="stream")
now = datetime.now(tz=timezone.utc)
ids = [9898, 88787, 98, 3333, 56565]
columns = {"bizon_id": [f"{i:032x}" for i in ids], "bizon_extracted_at": [now] * 5,
           "bizon_loaded_at": [now] * 5, "source_record_id": [str(i) for i in ids],
           "source_timestamp": [now] * 5, "source_data": [orjson.dumps({"id": i}).decode() for i in ids]}
df = pl.DataFrame(columns, schema=destination_record_schema)
results = []
for endpoint in sys.argv[1:]:
    config = HookDestinationConfig(endpoint=endpoint, destination_id="creatures")
    destination = HookDestination(sync_metadata=meta, config=config, backend=None,
                                  source_callback=NoOpSourceCallback(config={}),
                                  monitor=NoOpMonitor(sync_metadata=meta, monitoring_config=None))
    results.append(destination.write_records(df))
print(json.dumps(results))
"""


def test_write_records_retries_transient_failures_and_returns_permanent_ones(hook, serve):
    flaky, broken = serve(failures=2, status=429), serve(failures=1000, status=422)
    env = workspace.resolve(None, workspace.Settings.from_paths([str(hook)])).env()
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, flaky.url, broken.url],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (ok, message), (failed, reason) = json.loads(done.stdout.splitlines()[-1])
    assert (ok, message) == (True, None)
    assert flaky.posts == 3
    assert sorted(r["source_record_id"] for r in flaky.stored["creatures"]) == CREATURE_IDS
    assert failed is False
    assert "HTTP 422" in reason
    assert broken.posts == 1


def test_the_check_configs_printed_commands_run_as_printed(hook):
    """Its comment prints two commands (a local receiver, then the sync): both run as printed, and land."""
    check = (hook / "bizon/connectors/destinations/hook/config/hook.check.yml").read_text()
    serve, sync = (line.removeprefix("#   ") for line in check.splitlines() if line.startswith("#   "))
    # They name the receiver's default port; this run takes a free one (other test workers run beside it).
    printed = f"127.0.0.1:{RECEIVER_PORT}/"
    assert f" --port {RECEIVER_PORT}" in serve and printed in sync, (serve, sync)
    port = free_port()
    serve, sync = (
        serve.replace(f" --port {RECEIVER_PORT}", f" --port {port}"),
        sync.replace(printed, f"127.0.0.1:{port}/"),
    )
    receiver = subprocess.Popen(serve, shell=True, stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        url = re.search(r"receiving at (\S+)", receiver.stdout.readline()).group(1)
        done = subprocess.run(
            sync,
            shell=True,
            capture_output=True,
            text=True,
            timeout=120,
            env={k: v for k, v in os.environ.items() if not k.startswith("BIZON_FORGE_")},
        )
        assert done.returncode == 0, (done.stdout + done.stderr)[-2000:]
        with urllib.request.urlopen(f"{url}?destination_id=forge_check", timeout=10) as answer:
            landed = json.load(answer)["records"]
        assert sorted(r["source_record_id"] for r in landed) == CREATURE_IDS
    finally:
        os.killpg(receiver.pid, signal.SIGTERM)
        receiver.wait(timeout=10)


def test_a_path_naming_only_the_stream_is_warned_about():
    spec = DestinationSpec(
        name="hook",
        recipe="http",
        full_refresh="replace_flag",
        fields=[FieldSpec(name="write_path", default="/ingest/{stream}", description="route")],
    )
    _, findings = recipes.apply(spec)
    assert [f.id for f in findings if f.status == "warn"] == ["recipe.path_without_destination_id"]
    _, findings = recipes.apply(spec.model_copy(update={"fields": []}))  # the defaults name {destination_id}
    assert not [f for f in findings if f.status == "warn"]


def test_the_checks_receiver_routes_by_the_check_configs_paths_and_fails_when_armed():
    check = yaml.safe_dump({"destination": {"config": {**PATHS, "delete_path": "/records/{destination_id}"}}})
    receiver = CheckReceiver(routes=routes_from(check))
    base = receiver.url.rsplit("/", 1)[0]

    def call(method: str, path: str, body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        with urllib.request.urlopen(urllib.request.Request(base + path, data, method=method), timeout=10) as answer:
            return json.load(answer)

    try:
        call("POST", "/records/ingest/d1?stream=s", {"destination_id": "ignored", "records": [{"n": 1}]})
        assert call("GET", "/records/records/d1")["records"] == [{"n": 1}]
        call("POST", "/_fault?destination_id=d1&kind=401")
        with pytest.raises(urllib.error.HTTPError, match="401"):
            call("GET", "/records/records/d1")
        call("POST", "/_fault?destination_id=d1&kind=")
        assert receiver.report("d1")["faulted"] == 1
        assert call("DELETE", "/records/records/d1") == {"deleted": 1}
        assert call("GET", "/records?destination_id=d1")["records"] == []  # no route matched: the query names it
    finally:
        receiver.close()
