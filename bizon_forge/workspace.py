"""A workspace is a bizon source tree; this module finds it, confines it to the allowed roots and runs its Python."""

import ast
import errno
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from bizon_forge import connector, pyast
from bizon_forge.findings import Refused, failed

if TYPE_CHECKING:  # the module itself is imported where it fetches (urllib, ssl: not at start-up)
    from bizon_forge.sdist import Progress

ENUM_FILE = "bizon/destination/config.py"
MODELS_FILE = "bizon/common/models.py"
FACTORY_FILE = "bizon/destination/destination.py"
REGISTRATION_FILES = (ENUM_FILE, MODELS_FILE, FACTORY_FILE)
DESTINATIONS_DIR = connector.folder("destination")
STATE_DIR = ".bizon-forge"  # specs and render records live here, inside the workspace

# Only these variables reach code the agent wrote; the server's own secrets stay behind.
PASSED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "SYSTEMROOT", "PGHOST", "PGPORT")


@dataclass(frozen=True)
class Settings:
    """How a server was started: the roots it may touch, its default workspace and the Python to run bizon."""

    roots: tuple[Path, ...] = ()
    default_workspace: Path | None = None
    python: str | None = None  # None: the workspace's .venv if it has one, else this interpreter
    extra_env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_paths(cls, workspaces: list[str], python: str | None = None) -> "Settings":
        roots = tuple(Path(p).expanduser().resolve() for p in workspaces)
        return cls(roots=roots, default_workspace=roots[0] if roots else None, python=python)


@dataclass(frozen=True)
class Workspace:
    root: Path
    settings: Settings

    def path(self, rel: str) -> Path:
        return self.root / rel

    def destination_dir(self, name: str) -> Path:
        return self.root / connector.Connector(name).dir

    @property
    def state_dir(self) -> Path:
        return self.root / STATE_DIR

    @property
    def audit_file(self) -> Path:
        """The audit trail: a line per call that wrote or ran code (bizon_forge/audit.py writes it)."""
        return self.state_dir / "audit.jsonl"

    @property
    def bizon_version(self) -> str | None:
        for meta in ("PKG-INFO", "pyproject.toml"):
            p = self.root / meta
            if p.is_file():
                m = re.search(r'^(?:Version: |version = ")([^"\s]+)', p.read_text(errors="replace"), re.M)
                if m:
                    return m.group(1)
        return None

    def destinations(self) -> list[str]:
        base = self.root / DESTINATIONS_DIR
        return sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith(("_", ".")))

    # -- running the workspace's own code ---------------------------------------------------------

    def python(self) -> str:
        if self.settings.python:
            return self.settings.python
        venv = self.root / ".venv" / "bin" / "python"
        return str(venv) if venv.exists() else sys.executable

    def bizon_command(self, *args: str, env: str = "", through: str = "") -> str:
        """A shell command that runs `bizon ARGS` with this workspace's bizon, as printed, from any folder.
        `env`: shell assignments put before the command (written as given, e.g. `X=$(mktemp -d)`).
        `through`: a command that runs it (written as given), e.g. `bizon-forge mock-api SPEC --run --`."""
        root = shlex.quote(str(self.root))
        tail = " ".join(shlex.quote(a) for a in args)
        before = f"{env} " if env else ""
        runner = f"{through} " if through else ""
        entry = self.root / ".venv" / "bin" / "bizon"
        if not self.settings.python and entry.exists():
            return f"cd {root} && {before}{runner}.venv/bin/bizon {tail}"
        # The tree first on PYTHONPATH, as the checks run it: `bizon` itself is not on PATH.
        python = shlex.quote(self.python())
        return f"cd {root} && {before}PYTHONPATH={root} {runner}{python} -m bizon.cli.main {tail}"

    def env(self) -> dict[str, str]:
        """A scrubbed environment with the workspace first on PYTHONPATH, so its bizon is the one imported."""
        env = {k: os.environ[k] for k in PASSED_ENV if k in os.environ}
        env.update(self.settings.extra_env)
        env["PYTHONPATH"] = str(self.root)
        # Bytecode goes to our cache, not into the user's tree (an uncompiled bizon import costs ~1 s).
        env["PYTHONPYCACHEPREFIX"] = str(cache_dir() / "pycache")
        env["PYTHONUNBUFFERED"] = "1"
        return env


# Execs the command after asking the kernel to SIGKILL it when the thread that started it ends (the server
# killed by its host, say): an agent's endless loop must not outlive the server that ran it.
_TIED = (
    "import ctypes, os, signal, sys\n"
    "ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG\n"
    "if os.getppid() != int(sys.argv[1]):\n"
    "    os._exit(137)  # the server was gone before the prctl\n"
    "os.execvp(sys.argv[2], sys.argv[2:])\n"
)


def tied_to_server(cmd: list[str]) -> list[str]:
    """`cmd`, killed by the kernel if this process dies first (Linux; elsewhere `cmd` as it is)."""
    if not sys.platform.startswith("linux"):
        return cmd
    return [sys.executable, "-I", "-S", "-c", _TIED, str(os.getpid()), *cmd]


def resolve(path: str | None, settings: Settings, within: tuple[Path, ...] | None = None) -> Workspace:
    """The workspace at `path` (relative paths are taken from the default workspace), or a refusal.

    `within`: the roots the caller's credential names (None: no credential, the server's roots only); a path
    outside them is refused before anything of it is looked at, so a caller learns nothing of other trees.
    It only reads: a write interrupted by a dead process is rolled back by `atomic.roll_back_interrupted`,
    the step every tool takes next.
    """
    candidate = _candidate(path, settings)
    real = Path(os.path.realpath(candidate))
    if settings.roots and not any(real == r or r in real.parents for r in settings.roots):
        raise Refused(
            failed(
                "workspace.outside_roots",
                f"{path or candidate} resolves outside the roots this server may touch.",
                "Use a workspace under: " + ", ".join(str(r) for r in settings.roots),
            )
        )
    if within is not None and not any(real == r or r in real.parents for r in within):
        raise Refused(
            failed(
                "auth.outside_roots",
                f"{path or candidate} resolves outside the roots your credential may use.",
                "Use a workspace under: " + ", ".join(str(r) for r in within),
            )
        )
    _require_bizon_tree(real, candidate)
    return Workspace(root=real, settings=settings)


def _candidate(path: str | None, settings: Settings) -> Path:
    """The path asked for, relative paths taken from the default workspace; none asked: the default."""
    if path is None or path == "":
        if settings.default_workspace is None:
            raise Refused(
                failed(
                    "workspace.unset",
                    "No workspace given and the server has no default.",
                    "Pass `workspace`, or start the server with --workspace DIR.",
                )
            )
        return settings.default_workspace
    if "\x00" in path:
        raise Refused(failed("workspace.invalid", "The workspace path holds a NUL byte.", "Pass a plain path."))
    candidate = Path(path).expanduser()
    if not candidate.is_absolute():
        candidate = (settings.default_workspace or Path.cwd()) / candidate
    return candidate


def _require_bizon_tree(real: Path, candidate: Path) -> None:
    """Refuse a folder that is missing, not a folder, not a bizon tree, or holds a symlink bizon-forge would edit."""
    if not real.exists():
        raise Refused(
            failed(
                "workspace.missing",
                f"No such directory: {candidate}.",
                "Create one with `bizon-forge workspace init DIR`.",
            )
        )
    if not real.is_dir():
        raise Refused(failed("workspace.not_a_directory", f"{candidate} is a file, not a directory."))
    # Regular files only: reading a FIFO planted at a registration path would hang the call under the lock.
    missing = [rel for rel in REGISTRATION_FILES if not (real / rel).is_file()]
    missing += [] if (real / DESTINATIONS_DIR).is_dir() else [DESTINATIONS_DIR]
    if missing:
        raise Refused(
            failed(
                "workspace.not_bizon",
                f"{candidate} is not a bizon source tree (missing {', '.join(missing)}).",
                "Point at a bizon checkout or sdist; `bizon-forge workspace init DIR` makes one.",
            )
        )
    link = _symlink_in(real)
    if link:
        raise Refused(
            failed(
                "workspace.symlink",
                f"{link} in the tree is a symlink; bizon-forge edits only real paths inside the tree.",
                "Replace it with a real file or folder (or point at the tree it leads to).",
                file=link,
            )
        )


NOT_REGULAR = {
    stat.S_IFIFO: "a named pipe (FIFO)",
    stat.S_IFDIR: "a folder",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a device",
    stat.S_IFBLK: "a device",
}  # what read_regular names in its refusal


def _not_a_file(path: Path, mode: int) -> Refused:
    return Refused(
        failed(
            "workspace.not_a_file",
            f"{path} is {NOT_REGULAR.get(stat.S_IFMT(mode), 'a special file')}, not a regular file: "
            "bizon-forge will not read it (a pipe can block a read forever).",
            f"Replace {path.name} with a regular file, or remove it, and call again.",
            file=str(path),
        )
    )


def read_regular(path: Path) -> bytes:
    """The bytes of `path`, or a refusal if it is not a regular file.

    Opened non-blocking and checked on the open descriptor: a plain open() of a FIFO waits for a writer
    forever, while the caller holds the workspace lock, and a check before the open could be raced.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as error:
        if error.errno == errno.ENXIO:  # a socket cannot be opened at all
            raise _not_a_file(path, os.stat(path).st_mode) from None
        raise
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise _not_a_file(path, mode)
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


# Paths bizon-forge writes or deletes under: a symlink anywhere on them would carry an edit out of the tree.
GUARDED = (
    *REGISTRATION_FILES,
    DESTINATIONS_DIR,
    connector.tests_folder("destination"),
    f"{STATE_DIR}/specs",
    f"{STATE_DIR}/rendered",
)


def _symlink_in(root: Path) -> str | None:
    """The first symlink on the way from `root` to any guarded path, as a relative path, or None."""
    for rel in GUARDED:
        probe = root
        for part in Path(rel).parts:
            probe = probe / part
            if probe.is_symlink():
                return str(probe.relative_to(root))
            if not probe.exists():
                break
    return None


# -- making a workspace from PyPI -------------------------------------------------------------------


def cache_dir() -> Path:
    return Path(os.environ.get("BIZON_FORGE_CACHE", Path.home() / ".cache" / "bizon-forge"))


def sdist(version: str, progress: "Progress | None" = None) -> Path:
    """bizon's sdist from PyPI (it holds the whole repo: bizon/, tests/, docs/), cached once per version."""
    from bizon_forge import sdist as pypi  # urllib.request, ssl, email: off the MCP server's start-up path

    return pypi.fetch("bizon", version, cache_dir() / "sdists", progress)


# bizon's .gitignore ignores every connector config but the examples, so a commit would silently drop the check
# configs validation runs (config/NAME.check.yml) and validation would fail on the next checkout.
BIZON_CONFIG_RULE = connector.BIZON_CONFIG_IGNORE
TRACK_CHECK_CONFIGS = f"!{connector.CHECK_CONFIGS}"


def tracking_check_configs(gitignore: str) -> str | None:
    """`gitignore` (a tree's .gitignore) with the check configs let back in after bizon's rule, or None when it needs
    no change: bizon's rule is absent, or already followed by the negation (git's last matching line wins)."""
    lines = [line.strip() for line in gitignore.splitlines()]
    if BIZON_CONFIG_RULE not in lines:
        return None
    last_rule = len(lines) - 1 - lines[::-1].index(BIZON_CONFIG_RULE)
    if TRACK_CHECK_CONFIGS in lines[last_rule:]:
        return None
    block = f"# bizon-forge: the check configs validation runs belong to their connector\n{TRACK_CHECK_CONFIGS}\n"
    return gitignore + ("" if not gitignore or gitignore.endswith("\n") else "\n") + block


def init(directory: str, version: str = "0.6.4", progress: "Progress | None" = None) -> Path:
    """Unpack bizon's sdist into `directory` (which must be absent or empty) and commit it to a new git repo."""
    dest = Path(directory).expanduser().resolve()
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise Refused(_not_empty(dest))
    archive = sdist(version, progress)
    if progress:
        progress(f"unpacking {archive.name} into {dest}")
    dest.mkdir(parents=True, exist_ok=True)
    # Made whole beside `dest`, then renamed in (one filesystem): an interrupted init leaves `dest` empty or whole.
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
        from bizon_forge import sdist as pypi  # as above: only init unpacks

        pypi.unpack(archive, Path(tmp))
        (top,) = Path(tmp).iterdir()
        _prepare(top, version, progress)
        for item in top.iterdir():
            shutil.move(str(item), dest / item.name)
    return dest


def _prepare(top: Path, version: str, progress: "Progress | None") -> None:
    """The unpacked tree with our lines in its .gitignore, committed to a new git repository."""
    # Not the tree's: our state (specs, render records, logs, the check cache, the audit trail) and what the
    # rendered example syncs write offline (a SQLite file, JSON Lines) under output/. bizon ignores .env itself.
    ignore = top / ".gitignore"
    text = ignore.read_text() if ignore.is_file() else ""
    text = tracking_check_configs(text) or text
    ignore.write_text(text + ("" if not text or text.endswith("\n") else "\n") + f"{STATE_DIR}/\noutput/\n")
    if progress:
        progress("committing the tree to a new git repository")
    git = ["git", "-c", "user.name=bizon-forge", "-c", "user.email=forge@localhost", "-c", "init.defaultBranch=main"]
    subprocess.run([*git, "init", "-q", str(top)], check=True, capture_output=True)
    subprocess.run([*git, "-C", str(top), "add", "-A"], check=True, capture_output=True)
    subprocess.run(
        [*git, "-C", str(top), "commit", "-q", "-m", f"bizon {version} from PyPI"], check=True, capture_output=True
    )


def _not_empty(dest: Path):
    """The refusal for an occupied target; a bizon tree there is most likely an init stopped before its venv."""
    if (dest / MODELS_FILE).is_file():
        where = shlex.quote(str(dest))
        if (dest / ".venv" / "bin" / "bizon").exists():  # the venv's last step installs bizon's own command
            return failed(
                "workspace.not_empty",
                f"{dest} already holds a bizon workspace with its .venv.",
                f"Use it as it is (`bizon-forge serve --workspace {where}`), or pick a new path.",
            )
        return failed(
            "workspace.not_empty",
            f"{dest} already holds a bizon tree whose .venv is missing or unfinished (an init stopped, it seems).",
            f"Finish it with `bizon-forge workspace venv {where}`, or pick a new path.",
        )
    return failed("workspace.not_empty", f"{dest} exists and is not an empty directory.", "Pick a new path.")


# -- what the tree imports beyond its declared dependencies ---------------------------------------------------------

# The modules the tools import in the workspace's interpreter (registration's import check, the checks, every sync).
CORE_FILES = REGISTRATION_FILES
CONFTESTS = "tests/**/conftest.py"  # what `pytest` imports before any test of the tree


def _module_file(root: Path, dotted: str) -> Path | None:
    """The tree's file for a dotted module (a module or a package's __init__), or None when the tree has none."""
    base = root.joinpath(*dotted.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _dotted(root: Path, file: Path) -> str:
    parts = file.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _top_level_imports(file: Path, dotted: str) -> Iterable[tuple[str, str]]:
    """(module, name) for each import at the file's top level ('' for `import x`); relative ones made absolute.
    Imports inside functions, classes, `try` and `if` blocks are left out: they are optional or run later."""
    try:
        tree = pyast.parse(file.read_bytes().decode(), str(file))
    except (OSError, SyntaxError, ValueError):  # ValueError: not UTF-8, or a NUL byte
        return
    package = dotted if file.name == "__init__.py" else dotted.rpartition(".")[0]
    for node in tree.body:
        if isinstance(node, ast.Import):
            yield from ((alias.name, "") for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            yield from ((module, alias.name) for alias in node.names if alias.name != "*")


def _parents(dotted: str) -> list[str]:
    parts = dotted.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def foreign_imports(root: Path, files: Iterable[str] = CORE_FILES, skip: Iterable[Path] = ()) -> list[tuple[str, str]]:
    """The (module, name) pairs outside the tree and the standard library that `files` (tree-relative) import at
    their top level, directly or through the tree's own modules they import (and the packages those sit in), not
    following into the folders `skip`."""
    todo = [root / rel for rel in files if (root / rel).is_file()]
    seen: set[Path] = set(f for folder in skip for f in folder.rglob("*.py"))
    found: set[tuple[str, str]] = set()
    while todo:
        file = todo.pop()
        if file in seen:
            continue
        seen.add(file)
        for module, name in _top_level_imports(file, _dotted(root, file)):
            top = module.partition(".")[0]
            if not module or top in sys.stdlib_module_names or top == "__future__":
                continue
            if (root / top).is_dir() or (root / f"{top}.py").is_file():  # the tree's own: follow it
                wanted = [*_parents(module), *([f"{module}.{name}"] if name else [])]
                todo += [f for f in (_module_file(root, m) for m in wanted) if f is not None]
            else:
                found.add((module, name))
    return sorted(found)


def forge_made(root: Path) -> list[Path]:
    """The connector folders bizon-forge rendered (a render record or a spec of theirs in our state): what their
    code imports is for validation to judge (an optional import in config.py is a trap it names), not a gap of the
    interpreter that runs bizon's own modules."""
    state = root / STATE_DIR
    names = {
        p.stem for folder in ("specs", "rendered") if (state / folder).is_dir() for p in (state / folder).iterdir()
    }
    return [root / DESTINATIONS_DIR / name for name in sorted(names) if (root / DESTINATIONS_DIR / name).is_dir()]


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _extra_of_distribution(root: Path) -> dict[str, str]:
    """Each distribution the tree's extras name (normalised) -> the first extra naming it."""
    try:
        extras = tomllib.loads(read_regular(root / "pyproject.toml").decode())["project"]["optional-dependencies"]
    except (OSError, ValueError, KeyError, TypeError, Refused):
        return {}
    found: dict[str, str] = {}
    for extra, requirements in extras.items() if isinstance(extras, dict) else ():
        for requirement in requirements if isinstance(requirements, list) else ():
            named = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", str(requirement))
            if named:
                found.setdefault(_normal(named.group(1)), extra)
    return found


def needed_extras(root: Path) -> list[str]:
    """The extras of the tree's pyproject.toml that its core modules and its tests' conftests import: bizon 0.5.x's
    bizon.common.models imports the bigquery destination (google.cloud.bigquery, behind the `bigquery` extra), and
    the destinations' conftest imports it on every version, so a venv without that extra can neither register a
    destination nor collect the tree's tests. A module matches a requirement by name ('google.cloud.bigquery' ->
    google-cloud-bigquery; 'psycopg2' -> psycopg2-binary, 'kafka' -> kafka-python)."""
    by_distribution = _extra_of_distribution(root)
    conftests = [str(p.relative_to(root)) for p in sorted(root.glob(CONFTESTS))]
    wanted = set()
    for module, name in foreign_imports(root, [*CORE_FILES, *conftests]):
        for dotted in [*([f"{module}.{name}"] if name else []), *reversed(_parents(module))]:
            base = _normal(dotted)
            hit = next(
                (by_distribution[d] for d in (base, f"{base}-binary", f"{base}-python") if d in by_distribution), None
            )
            if hit:
                wanted.add(hit)
                break
    return sorted(wanted)
