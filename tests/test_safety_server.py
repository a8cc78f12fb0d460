"""The server keeps serving after failures, and HTTP mode is closed to the network and to DNS rebinding.

HTTP mode binds 127.0.0.1 unless told otherwise, and keeps the SDK's DNS-rebinding protection: a request
whose Host (or Origin) is not loopback is turned away before it reaches a tool.
"""

import http.client
import json
import shutil
import socket

import pytest

from tests.http_server import http_server

pytestmark = pytest.mark.anyio

INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "rebinding-probe", "version": "0"},
    },
}


@pytest.fixture(scope="module")
def anyio_backend():
    return "asyncio"


@pytest.fixture(scope="module")
def served(pristine, tmp_path_factory):
    base = tmp_path_factory.mktemp("http")
    tree = base / "tree"
    shutil.copytree(pristine("0.6.4"), tree, symlinks=True, ignore=shutil.ignore_patterns(".git"))
    with http_server(tree, log=base / "server.log") as (port, proc):
        yield tree, port, proc


def listening(port: int) -> list[str]:
    """Local addresses listening on `port`, from /proc/net/tcp{,6} (hex, as the kernel writes them)."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.rsplit(":", 1)
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.append(address)
    return found


def post(port: int, host: str, origin: str | None = None) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {
        "Host": host,
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
    }
    if origin:
        headers["Origin"] = origin
    conn.request("POST", "/mcp", body=json.dumps(INIT), headers=headers)
    response = conn.getresponse()
    body = response.read().decode(errors="replace")
    conn.close()
    return response.status, body


def test_http_binds_loopback_only_by_default(served):
    _, port, _ = served
    assert listening(port) == ["0100007F"]  # 127.0.0.1 and nothing else, no 0.0.0.0, no ::
    address = outward_address()
    if address is None:
        pytest.skip("this machine has no address besides loopback")
    with pytest.raises(OSError):  # the machine's own network address finds nobody listening
        socket.create_connection((address, port), timeout=5).close()


def outward_address() -> str | None:
    """The address this machine would send from (a UDP connect sends nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.254", 9))
        except OSError:
            return None
        address = s.getsockname()[0]
    return None if address.startswith("127.") else address


@pytest.mark.parametrize(
    ("host", "origin", "status"),
    [
        ("evil.example", None, 421),
        ("evil.example:80", None, 421),
        ("attacker.127.0.0.1.nip.io", None, 421),
        ("127.0.0.1.evil.example", None, 421),
        ("{loopback}", "http://evil.example", 403),
        ("{loopback}", "null", 403),
    ],
)
def test_http_rejects_a_foreign_host_or_origin(served, host, origin, status):
    _, port, _ = served
    got, body = post(port, host.replace("{loopback}", f"127.0.0.1:{port}"), origin)
    assert got == status, body


def test_http_accepts_loopback_hosts(served):
    _, port, _ = served
    for host in (f"127.0.0.1:{port}", f"localhost:{port}"):
        status, body = post(port, host, f"http://{host}")
        assert status == 200, body


async def test_the_server_keeps_serving_after_every_kind_of_failure(served):
    """Refusals, schema errors, unknown tools, failing resources and prompts: the next call still works."""
    from mcp import Client

    tree, port, proc = served
    where = {"workspace": str(tree)}
    async with Client(f"http://127.0.0.1:{port}/mcp") as client:
        failures = [
            await client.call_tool("describe_target", {"name": "../x", **where}),
            await client.call_tool("render_destination", {"name": "nope", **where}),
            await client.call_tool("inspect_workspace", {"workspace": "/etc"}),
            await client.call_tool("describe_target", {"name": 7}),
            await client.call_tool("no_such_tool", {}),
            await client.call_tool("validate_destination", {"name": "nope", **where}),
        ]
        assert all(r.is_error or r.structured_content["ok"] is False for r in failures)
        for uri in ("bizon-forge://reference/..%2F..%2Fetc%2Fpasswd", "bizon-forge://reference/nope"):
            with pytest.raises(Exception):  # noqa: B017 - any error answer will do; the point is what follows
                await client.read_resource(uri)
        with pytest.raises(Exception):  # noqa: B017
            await client.get_prompt("no_such_prompt", {})
        r = await client.call_tool("inspect_workspace", where)
        assert r.structured_content["ok"] and r.structured_content["root"] == str(tree)
    assert proc.poll() is None
