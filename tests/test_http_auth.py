"""`serve --http` with credentials (issue 15), over real HTTP with the official client.

One server process for the module: static tokens minted with `bizon-forge token add` (one that may write in
tree A, one read-only) and JWTs signed by a local issuer whose JWKS a small HTTP server in this module serves.
The last test reads everything the others produced (the server's log, every answer, the audit files), so run
the module whole.
"""

import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from contextlib import asynccontextmanager

import httpx2
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.conftest import REPO, snapshot
from tests.http_server import free_port

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

ISSUER = "https://issuer.test"
AUDIENCE = "https://forge.test/mcp"
KID = "test-key"
WRITING_TOOLS = {
    "describe_target",
    "render_destination",
    "apply_registrations",
    "install_dependencies",
    "validate_destination",
    "remove_destination",
    "describe_source",
    "render_source",
    "validate_source",
}


@pytest.fixture(scope="module")
def anyio_backend():
    return "asyncio"


class Served:
    def __init__(self, base, url, trees, secrets, signing_key, log):
        self.base, self.url, self.trees, self.secrets, self.key, self.log = base, url, trees, secrets, signing_key, log
        self.answers: list[str] = []  # the text of every answer any test received
        self.jwts: list[str] = []  # every JWT any test sent

    def jwt(self, roots=("a",), scope="bizon-forge:write", audience=AUDIENCE, expires_in=300, sub="carol") -> str:
        now = int(time.time())
        claims = {"iss": ISSUER, "aud": audience, "sub": sub, "iat": now, "exp": now + expires_in, "scope": scope}
        claims["bizon_forge_roots"] = [str(self.trees[r]) for r in roots]
        token = jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": KID})
        self.jwts.append(token)
        return token

    def audit(self, tree: str) -> list[dict]:
        path = self.trees[tree] / ".bizon-forge" / "audit.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    @asynccontextmanager
    async def client(self, token: str | None, statuses: list[int] | None = None):
        """The official client, sending `Authorization: Bearer <token>`; `statuses` collects HTTP statuses."""

        async def seen(response):
            if statuses is not None:
                statuses.append((response.status_code, response.headers.get("www-authenticate", "")))

        headers = {"Authorization": f"Bearer {token}"} if token else {}
        timeout = httpx2.Timeout(30, read=300)
        async with httpx2.AsyncClient(headers=headers, timeout=timeout, event_hooks={"response": [seen]}) as http:
            async with Client(streamable_http_client(self.url, http_client=http)) as client:
                yield Recording(client, self.answers)


class Recording:
    """The client, keeping every answer's text for the test that greps them for secrets."""

    def __init__(self, client, answers):
        self.client, self.answers = client, answers

    async def call(self, tool: str, args: dict, **kw) -> dict:
        result = await self.client.call_tool(tool, args, **kw)
        self.answers.append(result.content[0].text)
        # a refusal is a tool error (isError) that still carries its findings; any other answer here is ok
        assert result.structured_content is not None and result.is_error is (not result.structured_content["ok"])
        return result.structured_content

    async def list_tools(self):
        return (await self.client.list_tools()).tools


def mint(tokens, id: str, root, *flags) -> str:
    """A secret from the real CLI; the file keeps its hash only."""
    cmd = [sys.executable, "-m", "bizon_forge", "token", "add", "--file", str(tokens), "--id", id]
    done = subprocess.run([*cmd, "--root", str(root), *flags], capture_output=True, text=True, cwd=REPO, check=True)
    secret = done.stdout.strip()
    assert secret.startswith("bzf_") and secret not in tokens.read_text() and secret not in done.stderr
    return secret


def serve_jwks(public_key) -> tuple[http.server.HTTPServer, str]:
    jwk = {**jwt.algorithms.RSAAlgorithm.to_jwk(public_key, as_dict=True), "kid": KID, "use": "sig", "alg": "RS256"}
    body = json.dumps({"keys": [jwk]}).encode()

    class Keys(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Keys)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/jwks.json"


@pytest.fixture(scope="module")
def served(pristine, tmp_path_factory):
    base = tmp_path_factory.mktemp("auth")
    roots = base / "roots"
    trees = {name: roots / name for name in ("a", "b")}
    for tree in trees.values():
        shutil.copytree(pristine("0.6.4"), tree, symlinks=True)
    tokens = base / "tokens.json"
    secrets = {
        "writer": mint(tokens, "writer", trees["a"]),
        "reader": mint(tokens, "reader", trees["a"], "--read-only"),
    }
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwks, jwks_url = serve_jwks(key.public_key())
    port = free_port()
    log = base / "server.log"
    cmd = [sys.executable, "-m", "bizon_forge", "serve", "--http", "--stateless", "--port", str(port)]
    cmd += ["--workspace", str(trees["b"]), "--workspace", str(roots), "--tokens", str(tokens)]  # B: the default
    cmd += ["--jwt-issuer", ISSUER, "--jwt-audience", AUDIENCE, "--jwt-jwks-url", jwks_url]
    with log.open("wb") as out:
        server = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=dict(os.environ), cwd=REPO)
    deadline = time.monotonic() + 30
    while True:
        assert server.poll() is None, log.read_text()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            assert time.monotonic() < deadline, "the server never listened"
            time.sleep(0.05)
    yield Served(base, f"http://127.0.0.1:{port}/mcp", trees, secrets, key, log)
    server.terminate()
    server.wait(timeout=10)
    jwks.shutdown()


async def test_no_token_a_wrong_token_an_expired_jwt_and_one_for_another_audience_get_401_and_change_nothing(served):
    before = {name: snapshot(tree) for name, tree in served.trees.items()}
    bad = {
        "no token": None,
        "a wrong token": "bzf_" + "x" * 43,
        "an expired JWT": served.jwt(expires_in=-3600),
        "a JWT for another audience": served.jwt(audience="https://elsewhere.test/mcp"),
    }
    for label, token in bad.items():
        statuses = []
        with pytest.raises(Exception):  # noqa: B017 - the client fails its first request; the status says why
            async with served.client(token, statuses) as client:
                await client.call("describe_target", {"name": "intruder", "workspace": str(served.trees["a"])})
        assert statuses and all(code == 401 and how.startswith("Bearer ") for code, how in statuses), (label, statuses)
    assert {name: snapshot(tree) for name, tree in served.trees.items()} == before


async def test_a_token_scoped_to_root_a_is_refused_on_root_b(served):
    before = snapshot(served.trees["b"])
    elsewhere = {"workspace": str(served.trees["b"])}
    async with served.client(served.secrets["writer"]) as client:
        for tool, args in (("inspect_workspace", {}), ("describe_target", {"name": "stray"})):
            answer = await client.call(tool, {**args, **elsewhere})
            assert answer["ok"] is False and [f["id"] for f in answer["findings"]] == ["auth.outside_roots"], answer
        # a path that climbs out of A is judged where it lands
        climbing = {"name": "stray", "workspace": str(served.trees["a"] / ".." / "b")}
        answer = await client.call("describe_target", climbing)
        assert [f["id"] for f in answer["findings"]] == ["auth.outside_roots"], answer
        # so is the server's default workspace (B), for the tools and for the resources that read it
        answer = await client.call("describe_target", {"name": "stray"})
        assert [f["id"] for f in answer["findings"]] == ["auth.outside_roots"], answer
        with pytest.raises(Exception, match="reference/logger"):  # the SDK withholds a resource's error message
            await client.client.read_resource("bizon-forge://reference/logger")
    async with served.client(served.jwt(roots=("a",))) as client:  # a JWT's roots claim, the same way
        answer = await client.call("describe_target", {"name": "stray", **elsewhere})
        assert [f["id"] for f in answer["findings"]] == ["auth.outside_roots"], answer
    async with served.client(served.jwt(roots=("a", "b"), scope="")) as client:  # B in its roots: B is readable
        assert "class" in (await client.client.read_resource("bizon-forge://reference/logger")).contents[0].text
    assert snapshot(served.trees["b"]) == before


async def test_a_read_only_token_is_refused_by_every_tool_that_writes(served):
    before = snapshot(served.trees["a"])
    where = {"workspace": str(served.trees["a"])}
    for token in (served.secrets["reader"], served.jwt(scope="openid")):
        async with served.client(token) as client:
            tools = await client.list_tools()
            writing = {t.name for t in tools if not t.annotations.read_only_hint}
            assert writing == WRITING_TOOLS  # what the annotations say is what this test refuses
            for tool in sorted(writing):
                args = {"spec": {"name": "logger"}} if tool == "describe_source" else {"name": "logger"}
                answer = await client.call(tool, {**args, **where})
                assert answer["ok"] is False and [f["id"] for f in answer["findings"]] == ["auth.read_only"], answer
            assert (await client.call("inspect_workspace", where))["ok"]  # reading is what it is for
    assert snapshot(served.trees["a"]) == before


async def test_the_right_token_works_end_to_end_with_progress_and_each_write_has_its_audit_line(served):
    where = {"workspace": str(served.trees["a"])}
    progress = []

    async def on_progress(done, total, message):
        progress.append(message)

    async with served.client(served.secrets["writer"]) as client:
        assert (await client.call("describe_target", {"name": "lake", "recipe": "file", **where}))["ok"]
        rendered = await client.call("render_destination", {"name": "lake", **where})
        assert rendered["ok"], rendered
        assert (await client.call("apply_registrations", {"name": "lake", "dry_run": True, **where}))["ok"]
        assert (await client.call("apply_registrations", {"name": "lake", **where}))["ok"]
        args = {"name": "lake", "level": "fast", **where}
        validated = await client.call("validate_destination", args, progress_callback=on_progress)
        assert validated["ok"], validated
        inspected = await client.call("inspect_workspace", where)
    assert progress, "no progress notification reached the client"
    assert inspected["audit"] == ".bizon-forge/audit.jsonl"
    async with served.client(served.jwt(sub="carol")) as client:
        assert (await client.call("describe_target", {"name": "pond", "recipe": "file", **where}))["ok"]

    lines = served.audit("a")
    assert [(line["who"], line["tool"], line["name"], line["outcome"]) for line in lines] == [
        ("writer", "describe_target", "lake", "ok"),
        ("writer", "render_destination", "lake", "ok"),
        ("writer", "apply_registrations", "lake", "ok"),  # the dry run wrote nothing and has no line
        ("writer", "validate_destination", "lake", "ok"),
        ("carol", "describe_target", "pond", "ok"),
    ]
    assert lines[0]["written"] == [".bizon-forge/specs/lake.json"]
    assert sorted(lines[1]["written"]) == sorted(f["path"] for f in rendered["files"] if f["action"] == "created")
    assert "bizon/destination/config.py" in lines[2]["written"]
    assert lines[3]["checks"] == validated["summary"] and lines[3]["written"] == []
    assert all(set(line) >= {"time", "who", "tool", "name", "written", "outcome"} for line in lines)
    assert served.audit("b") == []


def test_serving_on_all_interfaces_without_credentials_exits_with_a_clear_message(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "BIZON_FORGE_TOKENS"}
    serve = [sys.executable, "-m", "bizon_forge", "serve", "--http", "--port", str(free_port())]
    for extra in (["--host", "0.0.0.0"], ["--host", "0.0.0.0", "--no-auth"], []):
        done = subprocess.run([*serve, *extra], capture_output=True, text=True, timeout=30, env=env, cwd=REPO)
        assert done.returncode == 2, (extra, done.stderr)
        assert "without authentication" in done.stderr and "--tokens FILE" in done.stderr, done.stderr
        assert "--no-auth" in done.stderr and done.stdout == ""


def test_no_secret_appears_in_any_log_answer_or_audit_line(served):
    """Runs last: everything the tests above made the server say or write is here."""
    secrets = [*served.secrets.values(), *served.jwts]
    assert len(served.jwts) >= 5 and len(served.answers) > 10
    texts = {"server log": served.log.read_text(), "answers": "\n".join(served.answers)}
    texts.update({f"audit of {name}": json.dumps(served.audit(name)) for name in served.trees})
    assert "refused a JWT" in texts["server log"]  # the log does speak of credentials, just never their secrets
    for where, text in texts.items():
        unwrapped = "".join(text.split())  # the log's handler wraps long lines
        for secret in secrets:
            assert secret not in unwrapped, where
            assert secret[-16:] not in unwrapped, where  # nor a tail of one
