"""render_destination: the connector's files from Jinja2 templates, formatted with the workspace's own ruff config."""

import difflib
import hashlib
import json
import os
import re
import subprocess
from functools import cache
from importlib import resources
from pathlib import Path

from pydantic import BaseModel

from bizon_forge import dependencies, interpreter, recipes
from bizon_forge.atomic import WriteFailed, workspace_lock, write_all
from bizon_forge.connector import RECEIVER_PORT, RECEIVER_VAR, SCRATCH_VAR, Connector
from bizon_forge.findings import Finding, Refused, Result, failed, warned
from bizon_forge.spec import destination as spec
from bizon_forge.spec.destination import Batching, DestinationSpec, FieldSpec
from bizon_forge.workspace import TRACK_CHECK_CONFIGS, Workspace, read_regular, tracking_check_configs

TODO = "FORGE-TODO"  # marks every place the agent must write code; validate_destination reports what is left
TODO_MARK = re.compile(rf"{TODO}(?:\((\w+)\))?")


def todo_tasks(text: str) -> list[tuple[int, str]]:
    """(offset, task) of each task left in `text`, in order: FORGE-TODO(write) in a comment and in the raise under
    it is one task; an untagged marker is one of its own."""
    seen: dict[str, int] = {}
    for match in TODO_MARK.finditer(text):
        seen.setdefault(match.group(1) or f"@{match.start()}", match.start())
    return [(offset, task) for task, offset in seen.items()]


class RenderedFile(BaseModel):
    path: str
    action: str  # created | updated | unchanged | would_create | would_update | refused
    lines: int | None = None  # only with dry_run
    content: str | None = None  # only with dry_run and content
    diff: str | None = None  # when overwriting a file the agent edited, or (dry_run) changing an existing file


class RenderResult(Result):
    files: list[RenderedFile] = []


@cache
def jinja_environment():
    import jinja2  # kept off the server's start-up path

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(resources.files("bizon_forge.templates"))),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    # Every spec string reaches Python through repr() and YAML as an escaped flow scalar: data, never code.
    env.filters["py"] = repr
    env.filters["yaml"] = yaml_value
    return env


# YAML reads JSON's \ud83d\ude00 as two lone surrogates and 1e+100 as a string: escape for YAML itself.
# Printable and not a line break: everything else is written as an escape.
_YAML_PLAIN = re.compile(r"[\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def yaml_value(v) -> str:
    """`v` (None, bool, int, float, str, list, dict) as a YAML flow value that PyYAML reads back equal."""
    if v is None or isinstance(v, bool):
        return {None: "null", True: "true", False: "false"}[v]
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        text = repr(v)
        return text.replace("e", ".0e", 1) if "e" in text and "." not in text else text
    if isinstance(v, list):
        return "[" + ", ".join(yaml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{yaml_value(str(k))}: {yaml_value(x)}" for k, x in v.items()) + "}"
    return '"' + "".join(_yaml_char(ch) for ch in str(v)) + '"'


def _yaml_char(ch: str) -> str:
    """One character of a double-quoted YAML scalar: itself, or its escape."""
    if ch in '"\\':
        return "\\" + ch
    if _YAML_PLAIN.fullmatch(ch):
        return ch
    if ord(ch) <= 0xFF:
        return f"\\x{ord(ch):02x}"
    if ord(ch) <= 0xFFFF:
        return f"\\u{ord(ch):04x}"
    return f"\\U{ord(ch):08x}"


def field_annotation(f: FieldSpec) -> str:
    base = "SecretStr" if f.secret else f.type
    return base if f.required or f.default is not None else f"Optional[{base}]"


def field_default(f: FieldSpec) -> str:
    return "..." if f.required else repr(f.default)


def field_sample(f: FieldSpec):
    """A value of the right type for the example YAML."""
    if f.default is not None:
        return f.default
    return {"str": f"{f.name}-value", "int": 1, "float": 1.0, "bool": False, "list[str]": [], "dict": {}}[f.type]


def context(s: DestinationSpec) -> dict:
    recipe = recipes.get(s.recipe)
    # The example is committed: a secret field references a variable (bizon resolves env://NAME, and `bizon run`
    # reads the tree's .env) rather than holding a value. Only a recipe's own sample that holds no secret stays:
    # the sql recipe's offline SQLite file, unless a server's driver is declared.
    scheme = dependencies.sql_scheme(s.dependencies) if s.recipe == "sql" else None
    fields = [
        {
            "name": f.name,
            "annotation": field_annotation(f),
            "default": field_default(f),
            "f": f,
            "sample": field_sample(f),
        }
        for f in s.fields
    ]
    secret_env = {}
    for x in fields:
        f = x["f"]
        x["example"] = recipe.example_value(f, x["sample"])
        if f.secret and (recipe.example_value(f, None) is None or scheme):
            secret_env[f.name] = f"{s.name.upper()}_{f.name.upper()}"
            x["example"] = f"env://{secret_env[f.name]}"
    typing = sorted({"Literal"} | ({"Optional"} if any("Optional[" in x["annotation"] for x in fields) else set()))
    b = s.batching
    tuned = b != Batching()  # config.py.j2 declares a setting only where it differs from bizon's default
    uses_field = bool(fields) or tuned  # an unused import would fail format.ruff_check before the agent wrote code
    pydantic = sorted(
        ({"Field"} if uses_field else set()) | ({"SecretStr"} if any(f.secret for f in s.fields) else set())
    )
    return {
        "spec": s,
        "n": s.names,
        "fields": fields,
        "secrets": [f.name for f in s.fields if f.secret],
        "typing_imports": ", ".join(typing),
        "pydantic_imports": ", ".join(pydantic),
        "TODO": TODO,
        "b": s.batching,
        "e": s.error_handling,
        "recipe": recipe,
        "retry": recipe.retry_plan(s.error_handling.transient),
        "sql_scheme": scheme,
        "secret_env": secret_env,
        "secret_note": ", ".join(
            f"{var} (a {scheme}://user:password@host:port/database URL)" if field == "url" and scheme else var
            for field, var in secret_env.items()
        ),
    }


def ruff_format(ws: Workspace, rel: str, text: str) -> str:
    from ruff.__main__ import find_ruff_bin  # kept off the server's start-up path

    done = subprocess.run(
        [find_ruff_bin(), "format", "--stdin-filename", rel, "-"],
        input=text,
        capture_output=True,
        text=True,
        cwd=ws.root,
        timeout=30,
    )
    if done.returncode != 0:
        raise Refused(failed("render.invalid_python", f"Rendered {rel} is not valid Python: {done.stderr[:300]}"))
    return done.stdout


def planned_files(ws: Workspace, s: DestinationSpec) -> dict[str, str]:
    """Workspace-relative path -> rendered text, formatted."""
    env = jinja_environment()
    ctx = context(s)
    c = Connector(s.name)
    example, check = c.example_rel, c.check_rel
    # Commands that run as written, with this workspace's interpreter (a bare `bizon` is rarely on PATH).
    ctx["run_example"] = ws.bizon_command("run", example)
    scratch, ctx["run_receiver"] = f"{SCRATCH_VAR}=$(mktemp -d)", None
    if RECEIVER_VAR in str(recipes.get(s.recipe).check):
        # It posts to the local receiver: the command that serves one comes first (bizon-forge's own Python).
        port = RECEIVER_PORT
        ignores = ["--ignore-replace"] if s.full_refresh == "delete_first" else []  # as the checks' receiver does
        ctx["run_receiver"] = interpreter.forge_command("receiver", "--port", str(port), *ignores)
        scratch += f" {RECEIVER_VAR}=http://127.0.0.1:{port}/records"
    ctx["run_check"] = ws.bizon_command("run", check, env=scratch)
    out = {c.init_rel: ""}
    for rel, template in recipes.get(s.recipe).templates(s.name):
        text = env.get_template(template).render(**ctx)
        out[rel] = ruff_format(ws, rel, text) if rel.endswith(".py") else text
    out[example] = env.get_template("example.yml.j2").render(**ctx)
    out[check] = env.get_template("check.yml.j2").render(**ctx)
    return out


def _digest(text: str | bytes) -> str:
    return hashlib.sha256(text.encode() if isinstance(text, str) else text).hexdigest()


def record_path(ws: Workspace, name: str) -> Path:
    return ws.state_dir / "rendered" / f"{name}.json"


def _record(ws: Workspace, name: str) -> dict[str, str]:
    return _record_at(record_path(ws, name))


def _record_at(path: Path) -> dict[str, str]:
    try:
        record = json.loads(read_regular(path)) if path.exists() else {}
    except (OSError, ValueError):
        record = {}  # an unreadable record makes every existing file look edited: render then refuses to clobber
    return record if isinstance(record, dict) else {}


def _guard_paths(ws: Workspace, folder: Path, rels) -> None:
    """Refuse a connector folder (or any parent) that is a symlink leading out of the tree."""
    for rel in rels:
        target = ws.root / rel
        probe = target
        while probe != ws.root:
            if probe.is_symlink():
                raise Refused(
                    failed(
                        "render.unsafe_path",
                        f"{probe.relative_to(ws.root)} is a symlink; bizon-forge writes only real paths in the tree.",
                        f"Remove the symlink {probe} and render again.",
                    )
                )
            probe = probe.parent
        real = Path(os.path.realpath(target))
        if ws.root not in real.parents:
            raise Refused(failed("render.unsafe_path", f"{rel} resolves outside the workspace."))
        if target.exists() and not target.is_file():  # a folder, or a FIFO whose read would hang
            raise Refused(failed("render.unsafe_path", f"{rel} exists and is not a regular file."))
    if folder.exists() and not folder.is_dir():
        raise Refused(failed("render.unsafe_path", f"{folder.relative_to(ws.root)} exists and is not a folder."))


def _gitignore_tracking_check_configs(ws: Workspace) -> str | None:
    """The tree's .gitignore letting git track the check configs, or None when it already does (or is not a plain
    file bizon-forge may edit): trees not made by `workspace init` carry bizon's rule alone."""
    path = ws.root / ".gitignore"
    if path.is_symlink() or not path.is_file():
        return None
    try:
        return tracking_check_configs(read_regular(path).decode())
    except (OSError, UnicodeDecodeError):
        return None


def render_destination(
    ws: Workspace, name: str, dry_run: bool = False, overwrite: bool = False, content: bool = False
) -> RenderResult:
    """Write (or with dry_run, plan) the destination's files. A dry run answers each file's line count and, for a
    file that exists, a diff; content=true adds whole files instead (a recipe's files run to tens of KB)."""
    s = spec.load(ws, name)
    planned = planned_files(ws, s)
    written = write_planned(ws, planned, record_path(ws, name), ws.destination_dir(name), dry_run, overwrite, content)
    if not written.ok:
        return written
    files, findings = written.files, written.findings
    tasks = [task for text in planned.values() for _, task in todo_tasks(text)]
    if tasks:
        named = ", ".join(t for t in tasks if not t.startswith("@"))
        findings.append(
            warned(
                "render.todo_left",
                f"{len(tasks)} task(s) marked {TODO} are left for the agent to write"
                + (f": {named}." if named else "."),
                f"Fill each {TODO} in destination.py (before or after apply_registrations, which `next` names), "
                "then call validate_destination.",
            )
        )
    nxt = None if dry_run else f"apply_registrations(name={name!r})"
    return RenderResult(files=files, findings=findings, next=nxt)


def write_planned(
    ws: Workspace,
    planned: dict[str, str],
    record_file: Path,
    folder: Path,
    dry_run: bool,
    overwrite: bool,
    content: bool,
) -> RenderResult:
    """Write (or plan) a connector's rendered files atomically, with `record_file` the digests of what bizon-forge
    wrote last: a file changed since is the agent's and is kept unless overwrite. Refuses paths outside the tree."""
    _guard_paths(ws, folder, planned)
    with workspace_lock(ws.state_dir):
        record = _record_at(record_file)
        files, changes, findings, refused = [], {}, [], []
        for rel, text in planned.items():
            entry = _planned_file(ws, rel, text, record, dry_run, overwrite, content)
            files.append(entry)
            if entry.action == "refused":
                refused.append(rel)
            elif entry.action in ("created", "updated"):
                changes[ws.root / rel] = text
        if refused:
            findings.append(
                failed(
                    "render.would_overwrite",
                    f"{len(refused)} file(s) were edited since bizon-forge rendered them: {', '.join(refused)}.",
                    "Nothing was written. Pass overwrite=true to replace them (the answer then carries a diff).",
                )
            )
            return RenderResult(ok=False, files=files, findings=findings)
        ignore = _gitignore_tracking_check_configs(ws)
        if ignore is not None:  # in the answer: the agent sees the one file it did not ask for, and why
            files.append(RenderedFile(path=".gitignore", action="would_update" if dry_run else "updated"))
            did = "Would add" if dry_run else "Added"
            message = f"{did} {TRACK_CHECK_CONFIGS!r} at the end of .gitignore: bizon's rule ignores every config"
            findings.append(Finding(id="render.gitignore", status="pass", message=message + " but the examples."))
            if not dry_run:
                changes[ws.root / ".gitignore"] = ignore
        if not dry_run and changes:
            record.update({rel: _digest(text) for rel, text in planned.items()})
            # The record rides in the same transaction: files without it would look hand-edited next time.
            changes[record_file] = json.dumps(record, indent=2, sort_keys=True) + "\n"
            try:
                write_all(changes)
            except WriteFailed as error:
                raise Refused(
                    failed("render.write_failed", f"Writing failed ({error.cause}); nothing was changed.")
                ) from None
    return RenderResult(files=files, findings=findings)


def _planned_file(
    ws: Workspace, rel: str, text: str, record: dict[str, str], dry_run: bool, overwrite: bool, content: bool
) -> RenderedFile:
    """What rendering does to one file: unchanged, created, updated, refused (edited since bizon-forge wrote it, and
    no overwrite), or with dry_run what it would do; a diff where the answer shows one."""
    path = ws.root / rel
    current = read_regular(path) if path.exists() else None
    lines = len(text.splitlines()) if dry_run else None
    if current is not None and current == text.encode():
        return RenderedFile(path=rel, action="unchanged", lines=lines)
    edited = current is not None and record.get(rel) != _digest(current)
    diff = None
    if current is not None and (edited or dry_run):
        old = current.decode(errors="replace").splitlines(keepends=True)
        diff = "".join(difflib.unified_diff(old, text.splitlines(keepends=True), f"a/{rel}", f"b/{rel}"))
    if dry_run:
        action = "would_create" if current is None else ("refused" if edited and not overwrite else "would_update")
        shown = diff if not content or (edited and overwrite) else None  # overwriting an edit always shows it
        return RenderedFile(path=rel, action=action, lines=lines, content=text if content else None, diff=shown)
    if edited and not overwrite:
        return RenderedFile(path=rel, action="refused")
    return RenderedFile(path=rel, action="created" if current is None else "updated", diff=diff if edited else None)
