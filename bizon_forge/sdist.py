"""bizon's source distribution: fetched from the package index's simple API with its sha256 checked, unpacked safely.

No pip: environments made by uv (`uvx`, `uv tool install`, pipx's uv backend) have none. The index is read through
its simple API (PEP 691's JSON, or PEP 503's HTML from an older mirror), which every index serves, by urllib, which
honours HTTPS_PROXY / NO_PROXY; the CA bundle is the one named by SSL_CERT_FILE, REQUESTS_CA_BUNDLE or PIP_CERT,
else the system's, else certifi's.
"""

import hashlib
import json
import os
import ssl
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path, PurePosixPath

from packaging.utils import InvalidSdistFilename, parse_sdist_filename
from packaging.version import InvalidVersion, Version

from bizon_forge.findings import Refused, failed

# BIZON_FORGE_INDEX_URL points at a mirror's simple API (e.g. https://mirror.example/simple) or a test's server.
PYPI_SIMPLE = "https://pypi.org/simple"
SIMPLE_ACCEPT = "application/vnd.pypi.simple.v1+json, text/html;q=0.1"
TIMEOUT_S = 60
PROGRESS_EVERY_S = 5.0

Progress = Callable[[str], None]


def index_url() -> str:
    return os.environ.get("BIZON_FORGE_INDEX_URL", PYPI_SIMPLE).rstrip("/")


def parse_version(version: str) -> Version:
    """`version` as a PEP 440 version, or a refusal (it goes into a file name)."""
    try:
        parsed = Version(version)
    except InvalidVersion:
        parsed = None
    if parsed is None or parsed.local is not None:
        raise Refused(failed("workspace.bad_version", f"{version!r} is not a bizon version.", "Use e.g. 0.6.4."))
    return parsed


def ssl_context() -> ssl.SSLContext:
    """HTTPS with the CA bundle the environment names (as OpenSSL, requests and pip read it), else the system's."""
    bundle = os.environ.get("SSL_CERT_FILE") or os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("PIP_CERT")
    if bundle:
        return ssl.create_default_context(cafile=bundle)
    context = ssl.create_default_context()
    if not context.cert_store_stats().get("x509_ca"):  # e.g. python.org's macOS build before its cert step
        try:
            import certifi  # httpx's dependency, so mcp's: present where bizon-forge is
        except ImportError:
            return context
        context.load_verify_locations(certifi.where())
    return context


def _open(url: str, accept: str = "*/*"):
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=ssl_context()))  # + ProxyHandler
    request = urllib.request.Request(url, headers={"User-Agent": "bizon-forge", "Accept": accept})
    return opener.open(request, timeout=TIMEOUT_S)


def _unreachable(url: str, error: object) -> Refused:
    return Refused(
        failed(
            "workspace.index_unreachable",
            f"Could not fetch {url}: {error}",
            "Check the network, the proxy (HTTPS_PROXY, NO_PROXY) and the CA bundle (SSL_CERT_FILE) of this "
            "machine, or point BIZON_FORGE_INDEX_URL at a mirror's simple API, then run it again.",
        )
    )


class _Anchors(HTMLParser):
    """PEP 503's page: one <a href="URL#sha256=DIGEST">FILENAME</a> per file."""

    def __init__(self) -> None:
        super().__init__()
        self.files: list[dict] = []
        self._href: str | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self._href = dict(attrs).get("href")

    def handle_data(self, data):
        if self._href is not None and data.strip():
            url, _, fragment = self._href.partition("#")
            algo, _, digest = fragment.partition("=")
            self.files.append({"filename": data.strip(), "url": url, "hashes": {algo: digest} if digest else {}})
            self._href = None


def project_files(name: str) -> list[dict] | None:
    """The project's files on the index (filename, url made absolute, hashes), or None when it has no such project."""
    page = f"{index_url()}/{name}/"
    try:
        with _open(page, SIMPLE_ACCEPT) as answer:
            kind, body = answer.headers.get_content_type(), answer.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return None
        raise _unreachable(page, error) from None
    except (urllib.error.URLError, OSError) as error:
        raise _unreachable(page, error) from None
    if kind.endswith("json"):
        try:
            files = json.loads(body)["files"]
        except (ValueError, KeyError, TypeError) as error:
            raise _unreachable(page, f"not a simple API answer ({error})") from None
    else:
        parser = _Anchors()
        parser.feed(body)
        files = parser.files
    return [{**f, "url": urllib.parse.urljoin(page, f["url"])} for f in files if f.get("filename") and f.get("url")]


def released_versions(files: list[dict]) -> dict[Version, dict]:
    """Each version's sdist among `files` (wheels and unparsable names skipped)."""
    found = {}
    for f in files:
        try:
            _, version = parse_sdist_filename(f["filename"])
        except (InvalidSdistFilename, InvalidVersion):
            continue
        if f["filename"].endswith(".tar.gz"):
            found[version] = f
    return found


def nearest_versions(wanted: Version, available: list[Version], count: int = 3) -> list[str]:
    """The `count` released versions closest to `wanted`: the ones just below it, then the ones just above."""
    below = sorted((v for v in available if v < wanted), reverse=True)[:count]
    above = sorted(v for v in available if v > wanted)[:count]
    return [str(v) for v in sorted(below + above)]


def sdist_entry(name: str, version: Version) -> dict:
    """The version's sdist on the index (filename, url, hashes), or a refusal saying what is missing."""
    files = project_files(name)
    if files is None:
        raise Refused(failed("workspace.version_not_found", f"The index at {index_url()} has no project {name!r}."))
    sdists = released_versions(files)
    entry = sdists.get(version)
    if entry is None:
        near = nearest_versions(version, list(sdists))
        raise Refused(
            failed(
                "workspace.version_not_found",
                f"{name} {version} has no source distribution on {index_url()}; the nearest versions that do: "
                f"{', '.join(near) or 'none'}.",
                "Pass one of them with --bizon-version.",
            )
        )
    if not entry["hashes"].get("sha256"):
        raise Refused(
            failed(
                "workspace.no_digest",
                f"The index lists {entry['filename']} without a sha256 digest: it cannot be checked.",
                "Use an index that publishes digests (PyPI does), via BIZON_FORGE_INDEX_URL.",
            )
        )
    return entry


def _download(url: str, into, progress: Progress | None) -> str:
    """Stream `url` into the open file `into`; its sha256. A progress line at most every 5 s."""
    digest = hashlib.sha256()
    done, last = 0, time.monotonic()
    try:
        with _open(url) as answer:
            size = int(answer.headers.get("Content-Length") or 0)
            while chunk := answer.read(1 << 16):
                digest.update(chunk)
                into.write(chunk)
                done += len(chunk)
                if progress and time.monotonic() - last >= PROGRESS_EVERY_S:
                    last = time.monotonic()
                    progress(f"downloaded {done >> 10} KiB" + (f" of {size >> 10} KiB" if size else ""))
    except (urllib.error.URLError, OSError) as error:
        raise _unreachable(url, error) from None
    return digest.hexdigest()


def fetch(name: str, version: str, target: Path, progress: Progress | None = None) -> Path:
    """`target/NAME-VERSION.tar.gz`, downloaded from the index unless already there, its sha256 checked first."""
    parsed = parse_version(version)
    found = target / f"{name}-{version}.tar.gz"
    if found.exists():
        return found
    entry = sdist_entry(name, parsed)
    if progress:
        progress(f"downloading {entry['filename']} from {urllib.parse.urlsplit(entry['url']).netloc}")
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=target, suffix=".part", delete=False) as part:
        try:
            got = _download(entry["url"], part, progress)
        except BaseException:
            os.unlink(part.name)
            raise
    expected = entry["hashes"]["sha256"]
    if got != expected:
        os.unlink(part.name)
        raise Refused(
            failed(
                "workspace.digest_mismatch",
                f"{entry['url']} downloaded with sha256 {got}; the index says {expected}. It was discarded.",
                "Run it again; if it repeats, a proxy or mirror is altering the download.",
            )
        )
    os.replace(part.name, found)  # only a checked file ever has the name the cache looks for
    return found


# -- unpacking --------------------------------------------------------------------------------------


def _unsafe(member: tarfile.TarInfo, links: set[PurePosixPath]) -> str | None:
    """Why `member` may not be extracted (a path or link leading out of the target, a path through a link, a
    device), or None. `links`: the symlinks seen so far, which no later member may be written through."""
    path = PurePosixPath(member.name)
    if path.is_absolute() or member.name.startswith("\\") or not _stays_inside(path):
        return f"{member.name!r} is outside the archive's folder"
    if any(parent in links for parent in path.parents):
        return f"{member.name!r} is written through a symlink"
    if member.issym() or member.islnk():
        # A symlink resolves from its own folder; a hard link names a member from the archive's top.
        start = path.parent if member.issym() else PurePosixPath()
        if PurePosixPath(member.linkname).is_absolute() or not _stays_inside(start / member.linkname):
            return f"{member.name!r} links to {member.linkname!r}, outside the archive's folder"
        if member.issym():
            links.add(path)
    elif not (member.isfile() or member.isdir()):
        return f"{member.name!r} is a device or pipe"
    return None


def _stays_inside(path: PurePosixPath) -> bool:
    """Whether `path`, relative, never climbs above its start (read lexically: `a/../b` does not, `a/../../b` does)."""
    depth = 0
    for part in path.parts:
        depth += -1 if part == ".." else 0 if part == "." else 1
        if depth < 0:
            return False
    return True


def unpack(archive: Path, into: Path) -> None:
    """Extract `archive` into `into`, refusing it whole if any member would land or point outside `into`.

    Checked here rather than with extractall's `filter="data"`, which Python 3.11.0-3.11.3 lack; where the
    filter exists it is applied too (it also drops setuid bits and the like).
    """
    with tarfile.open(archive) as tar:
        members, links = tar.getmembers(), set[PurePosixPath]()
        for member in members:
            why = _unsafe(member, links)
            if why:
                raise Refused(
                    failed(
                        "workspace.unsafe_archive",
                        f"{archive.name} was not unpacked: {why}.",
                        "Delete it from the cache (BIZON_FORGE_CACHE) and run it again; it will be fetched anew.",
                        file=str(archive),
                    )
                )
        if hasattr(tarfile, "data_filter"):
            tar.extractall(into, members=members, filter="data")
        else:
            tar.extractall(into, members=members)
