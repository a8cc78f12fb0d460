"""Findings that tell the truth (issue 23, item 7): over a real stdio server, the progress a validation reports and
its answer say the same (a failure another explains is folded in both, by name); an answer that could not do what
was asked sets isError, with its structured answer still there, and a validation that found failures does not;
the installer gets the server's CA, proxy and index variables, and a TLS failure's hint names them; a disk case
never blames a full disk for what a target off this disk did."""

import datetime
import http.server
import ipaddress
import os
import re
import shutil
import ssl
import sys
import threading
from pathlib import Path

import pytest

from bizon_forge import interpreter
from bizon_forge.describe import describe_target
from bizon_forge.registrations import apply_registrations
from bizon_forge.render import render_destination
from bizon_forge.spec.destination import DestinationSpec
from bizon_forge.validators import runtime
from tests.sources.plant import NAME as SOURCE_NAME
from tests.sources.plant import install, plant

ABSENT = "bizon-forge-test-absent>=1"
PROBES = runtime.SUITE_SCRIPT.parent  # suite_probe.py runs in the workspace's Python: imported from its folder


class NoPackages(http.server.BaseHTTPRequestHandler):
    """A package index that has nothing: every project page is a 404."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()


def _certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A CA of its own and a certificate it signed for 127.0.0.1, as a company proxy or mirror has."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)

    def signed(subject: str, key, issuer: str, issuer_key, ca: bool, *extensions):
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
        builder = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        for extension in extensions:
            builder = builder.add_extension(extension, critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = signed("forge test CA", ca_key, "forge test CA", ca_key, True)
    leaf = signed(
        "127.0.0.1",
        key,
        "forge test CA",
        ca_key,
        False,
        x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
        x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
    )
    paths = folder / "ca.pem", folder / "leaf.pem", folder / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    private = serialization.PrivateFormat.PKCS8
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, private, serialization.NoEncryption()))
    return paths


@pytest.fixture(scope="module")
def tls_index(tmp_path_factory):
    """(index URL, CA bundle): an empty index over HTTPS whose certificate only that CA vouches for."""
    ca, leaf, key = _certificates(tmp_path_factory.mktemp("tls"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NoPackages)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(leaf, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"https://127.0.0.1:{server.server_address[1]}/simple", ca
    server.shutdown()
    server.server_close()


def _index_env(monkeypatch, url: str) -> None:
    """The server's environment as an MCP host's minimal one leaves it: the index named, no CA bundle."""
    for var in interpreter.NETWORK_VARS:
        monkeypatch.delenv(var, raising=False)
        monkeypatch.delenv(var.lower(), raising=False)
    for var in ("PIP_EXTRA_INDEX_URL", "UV_EXTRA_INDEX_URL", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PIP_INDEX_URL", url)
    monkeypatch.setenv("UV_INDEX_URL", url)
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")


def test_the_installer_gets_the_servers_ca_and_a_tls_failure_names_the_variables(tls_index, monkeypatch):
    """The same install twice: without a CA bundle in the server's environment it fails on TLS, and the hint names
    what is missing and where to set it; with SSL_CERT_FILE there, TLS passes (the index then has no such name)."""
    if interpreter.uv() is None:
        pytest.fail("uv is in the test extra: `make setup` installs it")
    url, ca = tls_index
    _index_env(monkeypatch, url)
    command = interpreter.install_command(sys.executable, [ABSENT])
    with pytest.raises(interpreter.InstallFailed) as untrusted:
        interpreter.run_installer(command)
    finding = interpreter.install_failure(untrusted.value, ABSENT)
    assert finding.id == "install.tls_failed", finding
    hint = finding.hint or ""
    assert "none of SSL_CERT_FILE" in hint and "MCP config" in hint and "UV_INDEX_URL" in hint, hint
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    assert "SSL_CERT_FILE" in interpreter.installer_env()
    with pytest.raises(interpreter.InstallFailed) as trusted:
        interpreter.run_installer(command)
    assert interpreter.install_failure(trusted.value, ABSENT).id == "install.not_found", trusted.value.output


def test_a_disk_case_never_blames_the_disk_for_a_target_off_this_disk(monkeypatch):
    """The trials' server target appended on a full refresh: the run written with no room on this disk landed,
    beside the previous run's records. The case skips, naming what the read-back shows and who judges it; a flush
    the disk did stop is still the disk's to judge."""
    monkeypatch.syspath_prepend(str(PROBES))
    import suite_probe as suite

    kept, first, second = suite.plain("disk_kept", 3), suite.plain("disk_a", 2), suite.plain("disk_b", 2)
    appended = suite.normalized(kept + first + second)
    with pytest.raises(suite.CaseSkipped) as skipped:
        suite.off_this_disk(second, appended, first + second, "a flush written with no room left")
    said = str(skipped.value)
    assert "not on this machine's disk" in said and "data.full_refresh_twice" in said, said
    assert "sent 4 record(s), read back 7" in said and "did not send, e.g. 'disk_kept-0'" in said, said
    assert "a full refresh must replace, not append" in said, said  # the real cause, named
    with pytest.raises(suite.CaseSkipped) as exact:  # landed exactly: a skip with nothing else to say
        suite.off_this_disk(second, suite.normalized(first + second), first + second, "a flush")
    assert "differs" not in str(exact.value)
    suite.off_this_disk(second, suite.normalized(kept + first), first + second, "a flush")  # the disk stopped it
    cases = {case["id"]: case for case in suite.CASES}
    assert "data.full_refresh_twice" in cases["data.full_disk"]["after"]  # an appending refresh folds it
    assert "data.incremental" in cases["data.failed_publish"]["after"]


@pytest.fixture(scope="module")
def truth_tree(pristine, tmp_path_factory) -> Path:
    """One tree: the good source with a swallowed HTTP error planted (one failure another explains), and a
    destination that declares a library no index has."""
    root = tmp_path_factory.mktemp("truth") / "tree"
    shutil.copytree(pristine("0.6.4"), root, symlinks=True)
    ws = install(root)
    plant(root, "swallowed_http_error")
    assert describe_target(ws, DestinationSpec(name="acme", recipe="file", dependencies=[ABSENT])).ok
    assert render_destination(ws, "acme").ok and apply_registrations(ws, "acme").ok
    return root


def _said(messages: list[str]) -> tuple[set[str], dict[str, str]]:
    """What progress lines called failed, and what they folded into what."""
    failed, folded = set(), {}
    for message in messages:
        for part in message.split(": ", 1)[-1].split("; "):
            if part.startswith("failed "):
                failed |= set(part[len("failed ") :].split(", "))
            if part.startswith("folded "):
                folded |= dict(pair.split(" into ") for pair in part[len("folded ") :].split(", "))
    return failed, folded


@pytest.mark.slow
@pytest.mark.anyio
async def test_over_stdio_progress_and_answer_agree_and_is_error_marks_what_could_not_be_done(
    truth_tree, tls_index, monkeypatch
):
    from mcp import Client, StdioServerParameters

    url, _ = tls_index
    _index_env(monkeypatch, url)
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "bizon_forge", "serve", "--workspace", str(truth_tree)],
        env=dict(os.environ),
    )
    seen: list[tuple[float, float | None, str]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message or ""))

    async with Client(params) as client:
        validated = await client.call_tool(
            "validate_source", {"name": SOURCE_NAME, "level": "fast"}, progress_callback=on_progress
        )
        installed = await client.call_tool("install_dependencies", {"name": "acme"})
        refused = await client.call_tool("validate_destination", {"name": "nope"})
        bad_spec = await client.call_tool("describe_target", {"name": 7})
        planned = await client.call_tool("render_destination", {"name": "acme", "dry_run": True})

    # A validation that ran and found failures did what was asked: no tool error.
    answer = validated.structured_content
    assert not validated.is_error and answer["ok"] is False, answer
    summary = answer["summary"]
    messages = [m for _, _, m in seen]
    assert messages[-1] == summary, messages  # the last progress line is the answer's summary, word for word
    assert [p for p, _, _ in seen] == sorted(p for p, _, _ in seen) and seen[-1][0] == seen[-1][1], seen
    progress_failed, progress_folded = _said(messages[:-1])
    answer_failed = set(re.search(r"\d+ failed \(([^)]*)\)", summary)[1].split(", "))
    answer_folded = dict(pair.split(" into ") for pair in re.search(r"\d+ folded \(([^)]*)\)", summary)[1].split(", "))
    assert answer_folded == {"pull.every_record_once": "pull.http_errors_raise"}, summary
    assert progress_folded == answer_folded, (messages, summary)  # folded in both, into the same cause
    assert progress_failed <= answer_failed and not progress_failed & set(answer_folded), (messages, summary)
    assert f"{len(answer_folded)} folded" in summary  # the answer says how many it folded

    # Could not do what was asked: isError, with the structured answer (findings, hint) still there.
    tls = installed.structured_content
    assert installed.is_error and tls["ok"] is False and tls["findings"][0]["id"] == "install.tls_failed", tls
    assert "SSL_CERT_FILE" in tls["findings"][0]["hint"] and "MCP config" in tls["findings"][0]["hint"]
    assert refused.is_error and refused.structured_content["findings"][0]["id"] == "validate.not_found"
    assert bad_spec.is_error and refused.structured_content["ok"] is False
    assert {f["id"] for f in bad_spec.structured_content["findings"]} == {"spec.invalid"}
    assert not planned.is_error and planned.structured_content["ok"], planned.structured_content  # a dry run
