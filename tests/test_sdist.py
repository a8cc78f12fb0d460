"""bizon's sdist without pip: fetched from a JSON index (a local one here) with its digest checked, unpacked safely."""

import hashlib
import io
import json
import shutil
import subprocess
import sys
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bizon_forge import sdist, workspace
from bizon_forge.findings import Refused
from tests.conftest import REPO
from tests.http_server import free_port


def tarball(members: list[tuple[str, bytes | None, str | None]]) -> bytes:
    """A .tar.gz of (name, content, symlink target): content None and no target makes a folder."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, content, link in members:
            info = tarfile.TarInfo(name)
            if link is not None:
                info.type, info.linkname = tarfile.SYMTYPE, link
                tar.addfile(info)
            elif content is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    return out.getvalue()


GOOD = tarball([("fakepkg-1.0.0/", None, None), ("fakepkg-1.0.0/README", b"hello\n", None)])
GOOD_SHA = hashlib.sha256(GOOD).hexdigest()
# What the index lists: 1.0.0 right (by a relative URL, as some mirrors write them), 1.1.0 with a wrong digest,
# 1.0.5 only as a wheel, and two further sdists.
FILES = [
    ("fakepkg-0.9.0.tar.gz", "/files/fakepkg-0.9.0.tar.gz", GOOD_SHA),
    ("fakepkg-1.0.0.tar.gz", "../../files/fakepkg-1.0.0.tar.gz", GOOD_SHA),
    ("fakepkg-1.0.5-py3-none-any.whl", "/files/fakepkg-1.0.5-py3-none-any.whl", GOOD_SHA),
    ("fakepkg-1.1.0.tar.gz", "/files/fakepkg-1.0.0.tar.gz", "0" * 64),
    ("fakepkg-2.0.0.tar.gz", "/files/fakepkg-2.0.0.tar.gz", GOOD_SHA),
]


def simple_page(style: str) -> tuple[str, bytes]:
    """The project's page in PEP 691's JSON or PEP 503's HTML."""
    if style == "json":
        files = [{"filename": f, "url": u, "hashes": {"sha256": h}} for f, u, h in FILES]
        return "application/vnd.pypi.simple.v1+json", json.dumps({"name": "fakepkg", "files": files}).encode()
    links = "".join(f'<a href="{u}#sha256={h}" data-requires-python="&gt;=3.9">{f}</a><br/>' for f, u, h in FILES)
    return "text/html", f"<html><body><h1>fakepkg</h1>{links}</body></html>".encode()


@pytest.fixture(params=["json", "html"])
def index(request, monkeypatch):
    """A local simple index for `fakepkg`, in either style; yields the paths it was asked for."""
    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            hits.append(self.path)
            if self.path == "/simple/fakepkg/":
                kind, body = simple_page(request.param)
            elif self.path == "/files/fakepkg-1.0.0.tar.gz":
                kind, body = "application/octet-stream", GOOD
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("BIZON_FORGE_INDEX_URL", f"http://127.0.0.1:{server.server_address[1]}/simple")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")  # a proxy the machine names must not take the local index's calls
    yield hits
    server.shutdown()
    server.server_close()


def finding(call) -> tuple[str, str, str]:
    with pytest.raises(Refused) as caught:
        call()
    (f,) = caught.value.findings
    return f.id, f.message, f.hint or ""


def test_a_release_is_fetched_once_and_its_bytes_are_the_indexs(index, tmp_path):
    got = sdist.fetch("fakepkg", "1.0.0", tmp_path / "cache")
    assert got == tmp_path / "cache" / "fakepkg-1.0.0.tar.gz" and got.read_bytes() == GOOD
    assert sdist.fetch("fakepkg", "1.0.0", tmp_path / "cache") == got
    assert index.count("/files/fakepkg-1.0.0.tar.gz") == 1  # the second came from the cache
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["fakepkg-1.0.0.tar.gz"]


def test_a_wrong_digest_is_refused_and_nothing_is_cached(index, tmp_path):
    kind, message, _ = finding(lambda: sdist.fetch("fakepkg", "1.1.0", tmp_path / "cache"))
    assert kind == "workspace.digest_mismatch" and "0" * 64 in message and GOOD_SHA in message
    assert list((tmp_path / "cache").iterdir()) == []  # not even the partial file


def test_a_missing_version_answers_the_nearest_ones(index, tmp_path):
    kind, message, hint = finding(lambda: sdist.fetch("fakepkg", "1.0.5", tmp_path / "cache"))
    assert kind == "workspace.version_not_found"
    assert "nearest versions that do: 0.9.0, 1.0.0, 1.1.0, 2.0.0." in message and "--bizon-version" in hint
    versions = [sdist.Version(str(n)) for n in range(10)]
    assert sdist.nearest_versions(sdist.Version("1.5"), versions, count=2) == ["0", "1", "2", "3"]
    kind, message, _ = finding(lambda: sdist.fetch("nosuchpkg", "1.0.0", tmp_path / "cache"))
    assert kind == "workspace.version_not_found" and "no project 'nosuchpkg'" in message


def test_an_unreachable_index_and_a_bad_version_say_so(monkeypatch, tmp_path):
    monkeypatch.setenv("BIZON_FORGE_INDEX_URL", f"http://127.0.0.1:{free_port()}/simple")  # nothing listens
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    kind, message, hint = finding(lambda: sdist.fetch("fakepkg", "1.0.0", tmp_path / "cache"))
    assert kind == "workspace.index_unreachable" and "HTTPS_PROXY" in hint and "BIZON_FORGE_INDEX_URL" in hint
    for bad in ("latest; rm -rf /", "1.0+local", "../1.0"):
        assert finding(lambda bad=bad: sdist.fetch("fakepkg", bad, tmp_path / "cache"))[0] == "workspace.bad_version"
    assert not (tmp_path / "cache").exists()


def test_the_ca_bundle_the_environment_names_is_the_one_used(monkeypatch, tmp_path):
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "absent.pem"))
    with pytest.raises(FileNotFoundError):
        sdist.ssl_context()
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    assert sdist.ssl_context().cert_store_stats()["x509_ca"] > 0


HOSTILE = {
    "a ../ path": [("pkg/", None, None), ("pkg/../../escaped", b"x", None)],
    "an absolute path": [("/tmp/escaped-by-sdist-test", b"x", None)],
    "a symlink out": [("pkg/", None, None), ("pkg/out", None, "../../..")],
    "an absolute symlink": [("pkg/", None, None), ("pkg/etc", None, "/etc")],
    "a path through a symlink": [("pkg/", None, None), ("pkg/up", None, "."), ("pkg/up/x", b"x", None)],
}


@pytest.mark.parametrize("case", HOSTILE)
@pytest.mark.parametrize("with_filter", [True, False], ids=["filter", "python-3.11.0-3.11.3"])
def test_a_hostile_archive_is_refused_whole(case, with_filter, tmp_path, monkeypatch):
    if not with_filter:  # as on Python 3.11.0-3.11.3, which lack extractall's filter
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
    archive = tmp_path / "hostile.tar.gz"
    archive.write_bytes(tarball(HOSTILE[case]))
    into = tmp_path / "a" / "b" / "into"
    into.mkdir(parents=True)
    kind, message, hint = finding(lambda: sdist.unpack(archive, into))
    assert kind == "workspace.unsafe_archive" and "BIZON_FORGE_CACHE" in hint
    assert list(into.iterdir()) == [] and not Path("/tmp/escaped-by-sdist-test").exists()
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a", "b", "hostile.tar.gz", "into"]


@pytest.mark.parametrize("with_filter", [True, False], ids=["filter", "python-3.11.0-3.11.3"])
def test_a_sound_archive_with_a_link_inside_unpacks(with_filter, tmp_path, monkeypatch):
    if not with_filter:
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
    archive = tmp_path / "ok.tar.gz"
    archive.write_bytes(
        tarball(
            [
                ("pkg/", None, None),
                ("pkg/a/", None, None),
                ("pkg/a/f", b"f", None),
                *[
                    ("pkg/link", None, "a/f"),
                ],
            ]
        )
    )
    sdist.unpack(archive, tmp_path / "into")
    assert (tmp_path / "into" / "pkg" / "link").read_bytes() == b"f"


def test_an_interrupted_init_is_pointed_at_workspace_venv(tmp_path):
    left = tmp_path / "left"
    (left / "bizon" / "common").mkdir(parents=True)
    (left / workspace.MODELS_FILE).write_text("")
    kind, message, hint = finding(lambda: workspace.init(str(left)))
    assert kind == "workspace.not_empty" and f"bizon-forge workspace venv {left}" in hint


def test_the_cached_real_sdist_unpacks_with_the_checks(tmp_path):
    """bizon's own sdist passes the member checks (one real download if the cache is empty)."""
    archive = workspace.sdist("0.6.4")
    sdist.unpack(archive, tmp_path)
    assert (tmp_path / "bizon-0.6.4" / workspace.MODELS_FILE).is_file()


def _old_python() -> str | None:
    """An interpreter older than 3.11.4 (no extractall filter), e.g. Debian 12's 3.11.2, if this machine has one."""
    for candidate in ("/usr/bin/python3", shutil.which("python3.11")):
        if candidate and Path(candidate).exists():
            code = "import sys; print(*sys.version_info[:3])"
            said = subprocess.run([candidate, "-c", code], capture_output=True, text=True)
            if said.returncode == 0 and (3, 11) <= tuple(map(int, said.stdout.split())) < (3, 11, 4):
                return candidate
    return None


@pytest.mark.slow
def test_workspace_init_runs_under_the_lowest_python_claimed(tmp_path):
    """requires-python >= 3.11: init under 3.11.0-3.11.3 through uvx (the cached sdist, no venv)."""
    old, uvx = _old_python(), Path(sys.executable).with_name("uvx")
    if old is None or not uvx.exists():
        pytest.skip("no Python 3.11.0-3.11.3 or no uvx on this machine")
    argv = [str(uvx), "-q", "--python", old, "--from", str(REPO), "bizon-forge", "workspace", "init"]
    done = subprocess.run([*argv, str(tmp_path / "ws"), "--no-venv"], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "ws" / workspace.MODELS_FILE).is_file() and "workspace ready" in done.stdout
