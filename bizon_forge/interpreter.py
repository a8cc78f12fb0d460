"""The workspace's interpreter: the Python that runs its bizon (the checks and every sync), what it can import,
and how to make one (DIR/.venv with the tree installed in editable mode).

bizon-forge's own environment does not need bizon's runtime dependencies: the workspace's interpreter has them.
"""

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, cast

from pydantic import BaseModel

from bizon_forge.findings import Finding, Refused, failed
from bizon_forge.workspace import Workspace, foreign_imports, forge_made, needed_extras, read_regular

VENV = ".venv"
PROBE_TIMEOUT_S = 60
INSTALL_TIMEOUT_S = 900

# What an installer needs from the server's environment to reach the user's index (a proxy, a mirror,
# a certificate, pip's and uv's config files and credentials); nothing else of the server's environment reaches a
# package's build.
INSTALLER_ENV = re.compile(
    r"(PIP|UV)_\w+|(HTTPS?|NO|ALL)_PROXY|SSL_CERT_\w+|REQUESTS_CA_BUNDLE|CURL_CA_BUNDLE|PYTHONHTTPSVERIFY|NETRC|"
    r"XDG_(CONFIG|CACHE)_HOME",
    re.I,
)
# The variables a TLS or network failure's hint names: MCP hosts start a server with a minimal environment (often
# PATH and HOME alone), so the CA bundle, the proxy and the mirror the user's shell sets never reach the installer.
NETWORK_VARS = (
    "SSL_CERT_FILE",
    "REQUESTS_CA_BUNDLE",
    "PIP_CERT",
    "UV_SYSTEM_CERTS",
    "UV_NATIVE_TLS",
    "HTTPS_PROXY",
    "HTTP_PROXY",
    "NO_PROXY",
    "PIP_INDEX_URL",
    "UV_INDEX_URL",
)

Progress = Callable[[str], None]

# Printed by the interpreter under test: its version, the bizon it imports and the version of each distribution.
_PROBE = """
import importlib, importlib.metadata as m, importlib.util, json, sys
found = {}
for name in json.loads(sys.argv[1]):
    try:
        found[name] = m.version(name)
    except m.PackageNotFoundError:
        found[name] = None
spec = importlib.util.find_spec("bizon")  # a namespace package: where its parts are
where = sorted(set(spec.submodule_search_locations or [spec.origin])) if spec else []
def findable(dotted):  # on sys.path, found without running any package's __init__ (sqlalchemy's costs 0.3 s)
    from importlib.machinery import PathFinder
    spec = None
    for part in dotted.split("."):
        if spec is None:
            spec = PathFinder.find_spec(part)
        elif spec.origin in (None, "namespace") or not spec.submodule_search_locations:
            return None  # in a namespace package PathFinder needs the parent imported: confirmed() does that
        else:
            spec = PathFinder.find_spec(spec.name + "." + part, spec.submodule_search_locations)
        if spec is None:
            return None
    return spec
def confirmed(module, name):  # what PathFinder misses is imported for real (a package may extend its __path__)
    try:
        imported = importlib.import_module(module)
        return not name or hasattr(imported, name) or importlib.util.find_spec(module + "." + name) is not None
    except Exception:
        return False
def importable(module, name):
    spec = findable(module)
    if spec is None:
        return confirmed(module, name)
    if not name or spec.origin not in (None, "namespace"):  # a regular package or module may define `name`
        return True
    return findable(module + "." + name) is not None or confirmed(module, name)
unimportable = [mod + ("." + n if n else "") for mod, n in json.loads(sys.argv[2]) if not importable(mod, n)]
print(json.dumps({"python": sys.version.split()[0], "bizon": where, "dists": found, "unimportable": unimportable}))
"""


class Interpreter(BaseModel):
    python: str
    chosen_by: str  # --python | the workspace's .venv | bizon-forge's own (the tree has no .venv)
    usable: bool
    problem: str | None = None  # why it cannot run this workspace's bizon
    version: str | None = None  # of Python
    libraries: dict[str, str] = {}  # client library asked about -> its installed version
    missing: list[str] = []  # client libraries asked about and not installed


def distribution(requirement: str) -> str:
    """The distribution a PEP 508 requirement names, normalised (PEP 503): 'PyMySQL>=1.1' -> 'pymysql'."""
    name = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    return re.sub(r"[-_.]+", "-", name.group(1)).lower() if name else requirement


def _requirements(root: Path, *keys: str) -> list[str]:
    """The strings at pyproject.toml's `keys` path in the tree ([] if it cannot be read; include-group tables
    and other non-strings are skipped)."""
    try:
        found = tomllib.loads(read_regular(root / "pyproject.toml").decode())
    except (OSError, ValueError, Refused):
        return []
    for key in keys:
        found = found.get(key, {}) if isinstance(found, dict) else {}
    return [r for r in found if isinstance(r, str)] if isinstance(found, list) else []


def runtime_requirements(root: Path) -> list[str]:
    """bizon's own runtime dependencies, as the tree's pyproject.toml declares them."""
    return _requirements(root, "project", "dependencies")


def test_requirements(root: Path) -> list[str]:
    """The tree's `test` dependency group (bizon's own tests need it)."""
    return _requirements(root, "dependency-groups", "test")


def chosen_by(ws: Workspace) -> str:
    if ws.settings.python:
        return "--python"
    return f"the workspace's {VENV}" if (ws.root / VENV / "bin" / "python").exists() else "bizon-forge's own"


_PROBED: dict[tuple, Interpreter] = {}  # this process's answers, keyed on what an install or an edit changes


def _probe_key(ws: Workspace, libraries: list[str]) -> tuple | None:
    """What the answer depends on: the interpreter, the tree's pyproject and the site-packages folders (an install
    or uninstall adds or removes a *.dist-info there, which changes the folder's mtime). None: do not cache."""
    python = Path(ws.python())
    try:
        prefix = python.parent.parent if python.parent.parent.joinpath("pyvenv.cfg").exists() else None
        folders = sorted(prefix.glob("lib/python3*/site-packages")) if prefix else []
        stamps = [(str(f), f.stat().st_mtime_ns) for f in folders]
        project = (ws.root / "pyproject.toml").stat()
    except OSError:
        return None
    if not stamps:  # not a venv layout we know: ask every time
        return None
    return (
        str(python),
        python.stat().st_mtime_ns,
        tuple(stamps),
        project.st_mtime_ns,
        project.st_size,
        str(ws.root),
        tuple(libraries),
        chosen_by(ws),
    )


def probe(ws: Workspace, libraries: Sequence[str] = ()) -> Interpreter:
    """What the workspace's interpreter can do: run at all, import this tree's bizon, find bizon's runtime
    dependencies and the given client libraries. One short subprocess (no bizon import: ~50 ms), answered from
    memory while neither the interpreter's site-packages nor the tree's pyproject changed."""
    key = _probe_key(ws, list(libraries))
    if key is not None and key in _PROBED:
        return _PROBED[key]
    state = _probe(ws, libraries)
    if key is not None and state.usable:  # an unusable one is asked again: its fix may come from anywhere
        _PROBED[key] = state
    return state


def _probe(ws: Workspace, libraries: Sequence[str]) -> Interpreter:
    python, how = ws.python(), chosen_by(ws)
    runtime = runtime_requirements(ws.root)
    names = sorted({distribution(r) for r in [*runtime, *libraries]})
    try:
        done = subprocess.run(
            [python, "-c", _PROBE, json.dumps(names), json.dumps(foreign_imports(ws.root, skip=forge_made(ws.root)))],
            cwd=ws.root,
            env=ws.env(),
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT_S,
        )
        got = json.loads(done.stdout) if done.returncode == 0 else None
        error = None if got else (done.stderr.strip().splitlines() or ["exited " + str(done.returncode)])[-1]
    except (OSError, subprocess.TimeoutExpired, ValueError) as exc:
        got, error = None, f"{type(exc).__name__}: {exc}"
    if got is None:
        return Interpreter(python=python, chosen_by=how, usable=False, problem=f"does not run ({error})")
    dists = got["dists"]
    libs = {r: dists[distribution(r)] for r in libraries if dists.get(distribution(r))}
    missing = [r for r in runtime if dists.get(distribution(r)) is None]
    problem = None
    # bizon is a namespace package: an installed copy elsewhere would merge its modules into this tree's.
    elsewhere = [p for p in got["bizon"] if not Path(p).resolve().is_relative_to(ws.root)]
    if not got["bizon"] or elsewhere:
        problem = f"imports bizon from {elsewhere[0]} too, not only this tree" if elsewhere else "cannot find bizon"
    elif missing:
        shown = ", ".join(distribution(r) for r in missing[:6]) + (", …" if len(missing) > 6 else "")
        problem = f"lacks {len(missing)} of bizon's runtime dependencies ({shown})"
    elif got.get("unimportable"):
        gaps = got["unimportable"]
        shown = ", ".join(gaps[:4]) + (", …" if len(gaps) > 4 else "")
        problem = f"cannot import {shown}, which bizon's registration modules import (an extra of the tree it lacks)"
    return Interpreter(
        python=python,
        chosen_by=how,
        usable=problem is None,
        problem=problem,
        version=got["python"],
        libraries=libs,
        missing=[r for r in libraries if r not in libs],
    )


def forge_command(*args: str) -> str:
    """`bizon-forge ARGS` as a shell command that runs as printed from any folder: the console script beside this
    Python, else `python -m bizon_forge` (which, run inside a bizon-forge checkout, would import its source folder);
    under uvx, `uvx --from SOURCE bizon-forge ARGS`, since uvx's environment is a cache entry that may be gone."""
    source = uvx_source()
    if source:
        return shlex.join(["uvx", "--from", source, "bizon-forge", *args])
    script = Path(sys.executable).with_name("bizon-forge")
    head = [str(script)] if script.is_file() else [sys.executable, "-m", "bizon_forge"]
    on_path = shutil.which("bizon-forge")
    if on_path and script.is_file() and os.path.realpath(on_path) == os.path.realpath(script):
        head = ["bizon-forge"]  # `uv tool install` / pipx: the shim on PATH, not the path into the tool's venv
    return shlex.join([*head, *args])


def uvx_source(prefix: str = sys.prefix) -> str | None:
    """What `uvx --from` installed this bizon-forge from, when it runs in uvx's throwaway environment (uv's cache,
    archive-vN/HASH): a folder, a VCS URL, or bizon-forge==VERSION from an index. None elsewhere."""
    if not Path(prefix).parent.name.startswith("archive-v"):
        return None
    import sysconfig
    from importlib.metadata import distributions

    site = sysconfig.get_paths(vars={"base": prefix, "platbase": prefix})["purelib"]
    found = list(distributions(name="bizon-forge", path=[site]))  # this environment's, not a source folder's
    if not found:
        return None
    dist = found[0]
    try:
        direct = json.loads(dist.read_text("direct_url.json") or "null")
    except ValueError:
        direct = None
    if not isinstance(direct, dict) or not direct.get("url"):
        return f"bizon-forge=={dist.version}"
    url = str(direct["url"])
    if url.startswith("file://"):
        from urllib.parse import unquote, urlsplit

        return unquote(urlsplit(url).path)
    vcs = (direct.get("vcs_info") or {}).get("vcs")
    return f"{vcs}+{url}" if vcs and not url.startswith(f"{vcs}+") else url


def fix_command(ws: Workspace) -> str:
    """The one command that gives this workspace a working interpreter, runnable as printed."""
    if ws.settings.python:  # the server was told which Python to use: complete that one
        return shlex.join(install_command(ws.settings.python, runtime_requirements(ws.root)))
    return forge_command("workspace", "venv", str(ws.root))


def no_interpreter(ws: Workspace, state: Interpreter) -> Finding:
    return failed(
        "workspace.no_interpreter",
        f"The interpreter that runs this workspace's bizon, {state.python} ({state.chosen_by}), {state.problem}. "
        "Checks, registrations and syncs all run bizon with it.",
        f"Run: {fix_command(ws)}",
    )


def require(ws: Workspace, libraries: Sequence[str] = ()) -> Interpreter:
    """The workspace's interpreter if it can run this tree's bizon; otherwise a refusal naming the fix."""
    state = probe(ws, libraries)
    if not state.usable:
        raise Refused(no_interpreter(ws, state))
    return state


# -- making and filling one ------------------------------------------------------------------------


def uv() -> str | None:
    """uv next to this interpreter (installed with bizon-forge) or on PATH: it builds a venv in seconds."""
    beside = Path(sys.executable).parent / "uv"
    return str(beside) if beside.exists() else shutil.which("uv")


def installer_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if INSTALLER_ENV.fullmatch(k)}
    env.update({k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TMPDIR") if k in os.environ})
    return env


def install_command(python: str, requirements: list[str]) -> list[str]:
    """The command that installs `requirements` into `python`: uv when there is one, else that Python's pip."""
    found = uv()
    if found:
        return [found, "pip", "install", "--python", python, *requirements]
    return [python, "-m", "pip", "install", "--disable-pip-version-check", "--progress-bar", "off", *requirements]


class InstallFailed(Exception):
    def __init__(self, command: list[str], output: str):
        self.command, self.output = command, output
        super().__init__(output)


def run_installer(command: list[str], progress: Progress | None = None, cwd: Path | None = None) -> str:
    """Run an installer, passing each line it prints to `progress`; its whole output, or InstallFailed."""
    lines: list[str] = []
    try:
        with subprocess.Popen(
            command,
            cwd=cwd,
            env=installer_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        ) as proc:
            for line in cast(IO[str], proc.stdout):  # stdout=PIPE
                lines.append(line.rstrip())
                if progress and line.strip():
                    progress(line.strip()[:200])
            code = proc.wait(timeout=INSTALL_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise InstallFailed(command, f"{type(error).__name__}: {error}") from None
    output = "\n".join(lines)
    if code != 0:
        raise InstallFailed(command, output)
    return output


# An installer's output that means the index's certificate was not trusted (pip's, uv's and OpenSSL's wording); read
# before UNREACHABLE, whose words ("Max retries exceeded", "error sending request") such a failure also prints.
TLS_FAILED = re.compile(
    r"CERTIFICATE_VERIFY_FAILED|certificate verify failed|invalid peer certificate|UnknownIssuer|SSLError|"
    r"self[- ]signed certificate|unable to get local issuer|certificate is not trusted|handshake failure",
    re.I,
)
# An installer's output that means the index was never reached (pip's and uv's wording).
UNREACHABLE = re.compile(
    r"Failed to establish a new connection|Temporary failure in name resolution|Network is unreachable|"
    r"Connection refused|Max retries exceeded|Could not fetch URL|dns error|Failed to fetch|"
    r"error sending request|ConnectTimeout|timed out",
    re.I,
)
NOT_FOUND = re.compile(
    r"No matching distribution found|Could not find a version|not found in the package registry|"
    r"No solution found|no version of",
    re.I,
)


def network_env() -> str:
    """Which of NETWORK_VARS the server's environment (the installer's) sets, in words for a hint: never values."""
    present = [name for name in NETWORK_VARS if os.environ.get(name) or os.environ.get(name.lower())]
    missing = [name for name in NETWORK_VARS if name not in present]
    has = (f"sets {', '.join(present)} and " if present else "sets ") + f"none of {', '.join(missing)}"
    return (
        f"The installer gets the CA, proxy and index variables of bizon-forge's own environment, which {has}. MCP "
        "hosts start a server with a minimal environment: add what your shell sets (SSL_CERT_FILE or "
        "REQUESTS_CA_BUNDLE and PIP_CERT naming the CA bundle; UV_SYSTEM_CERTS=1, or UV_NATIVE_TLS=1 on an older "
        "uv, for uv to trust the system's store; HTTPS_PROXY, NO_PROXY; PIP_INDEX_URL or UV_INDEX_URL) to the "
        "server's `env` in the host's MCP config and "
        "restart the server"
    )


def install_failure(error: InstallFailed, what: str) -> Finding:
    """The finding for a failed install: the index's certificate not trusted, the index unreachable, a name it does
    not have, or anything else."""
    tail = "\n".join(error.output.strip().splitlines()[-4:])
    command = shlex.join(error.command)
    if TLS_FAILED.search(error.output):
        return failed(
            "install.tls_failed",
            f"Installing {what} failed: the package index's TLS certificate was not trusted (a proxy or a mirror "
            f"with a CA of its own?). {tail}",
            f"{network_env()}, then call again; or run it where those are set: {command}",
        )
    if UNREACHABLE.search(error.output):
        return failed(
            "install.index_unreachable",
            f"Installing {what} failed: the package index could not be reached. {tail}",
            f"Check the network, proxy or mirror of the machine running bizon-forge. {network_env()}, then call "
            f"again; or run: {command}",
        )
    if NOT_FOUND.search(error.output):
        return failed(
            "install.not_found",
            f"Installing {what} failed: the index has no distribution matching it. {tail}",
            "Check the name and version on the index (e.g. pypi.org/project/NAME), call describe_target again "
            "with the right one, then apply_registrations (it records the change) and install_dependencies.",
        )
    return failed(
        "install.failed", f"Installing {what} failed. {tail}", f"Read the output; to retry by hand: {command}"
    )


def _create_venv(venv: Path, found: str | None, progress: Progress | None) -> None:
    """`venv` made with uv when there is one (seconds), else with this Python's venv module (which puts pip in)."""
    if progress:
        progress(f"creating {venv}" + (" with uv" if found else ""))
    # --seed: pip inside, so the pip commands we print also work in a venv uv made
    make = [found, "venv", "--seed", "--quiet", "--python", sys.executable, str(venv)] if found else None
    try:
        if make:
            subprocess.run(make, check=True, capture_output=True, text=True, env=installer_env())
        else:
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, text=True)
    except subprocess.CalledProcessError as error:
        raise Refused(
            failed(
                "workspace.venv_failed",
                f"Could not create {venv}: {(error.stderr or error.stdout).strip()[-300:]}",
                "Check that this Python has the venv module (Debian: apt install python3-venv), or put uv on PATH "
                "(https://docs.astral.sh/uv/): it makes the venv itself.",
            )
        ) from None


def make_venv(root: Path, progress: Progress | None = None, installer_lines: bool = True) -> Path:
    """`root/.venv` with the tree installed in editable mode plus its `test` dependency group; its python.

    Reuses a venv that is already there (installing again is a no-op when nothing changed). `progress` hears
    each stage, and each line the installer prints unless `installer_lines` is false.
    """
    venv = root / VENV
    python = venv / "bin" / "python"
    found = uv()
    if not python.exists():
        _create_venv(venv, found, progress)
    elif not found and subprocess.run([str(python), "-m", "pip", "--version"], capture_output=True).returncode:
        raise Refused(
            failed(
                "workspace.no_installer",
                f"{venv} has no pip (made by `uv venv` without --seed, say) and no uv is on PATH to install into it.",
                f"Put uv on PATH (https://docs.astral.sh/uv/), or remove {venv} and run "
                f"{forge_command('workspace', 'venv', str(root))} again (python -m venv puts pip in).",
            )
        )
    extras = needed_extras(root)  # what its registration modules and its tests' conftests import (bigquery)
    requirements = ["-e", f"{root}[{','.join(extras)}]" if extras else str(root), *test_requirements(root)]
    if progress:
        with_extras = f" with its extras {', '.join(extras)}" if extras else ""
        progress(f"installing {root.name} (editable){with_extras} and its test group into {venv}")
    try:
        run_installer(install_command(str(python), requirements), progress if installer_lines else None, cwd=root)
    except InstallFailed as error:
        raise Refused(install_failure(error, f"the tree and its test group into {venv}")) from None
    return python
