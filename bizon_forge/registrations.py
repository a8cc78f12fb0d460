"""apply_registrations / remove_destination: the three registrations as exact, atomic, reversible edits."""

import ast
import difflib
import shutil
import subprocess
import tomllib

from pydantic import BaseModel

from bizon_forge import registry, spec
from bizon_forge.atomic import workspace_lock, write_all
from bizon_forge.findings import Finding, Refused, Result, fail
from bizon_forge.spec import DestinationSpec
from bizon_forge.workspace import ENUM_FILE, FACTORY_FILE, MODELS_FILE, Workspace

IMPORT_CHECK_TIMEOUT_S = 60


class FileEdit(BaseModel):
    path: str
    diff: str


class RegistrationResult(Result):
    registrations: dict[str, str] = {}  # enum | import | union | factory -> added | already_present | conflict
    edits: list[FileEdit] = []


class RemovalResult(Result):
    removed: list[str] = []
    edits: list[FileEdit] = []
    deleted: list[str] = []


def _diff(rel: str, old: str, new: str) -> str:
    return "".join(difflib.unified_diff(old.splitlines(True), new.splitlines(True), f"a/{rel}", f"b/{rel}", n=1))


def _line_length(ws: Workspace) -> int:
    try:
        conf = tomllib.loads(ws.path("pyproject.toml").read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return 88
    return int(conf.get("tool", {}).get("ruff", {}).get("line-length", 88))


def _literal_member(ws: Workspace, s: DestinationSpec) -> tuple[str | None, int | None]:
    """The member the new config's `name: Literal[DestinationTypes.X]` names, and its line."""
    path = ws.destination_dir(s.name) / "src" / "config.py"
    try:
        tree = ast.parse(path.read_text())
    except (OSError, SyntaxError, ValueError):
        return None, None
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and node.target.id == "name"
            and isinstance(node.annotation, ast.Subscript)
            and isinstance(node.annotation.slice, ast.Attribute)
        ):
            return node.annotation.slice.attr, node.lineno
    return None, None


def conflicts(ws: Workspace, s: DestinationSpec, reg: registry.Registry) -> list[Finding]:
    n = s.names
    cfg_cls, config_module = f"{n.pascal}Config", f"{registry.CONNECTOR_PREFIX}{s.name}.src.config"
    found = []
    if n.upper in reg.enum and reg.enum[n.upper] != s.name:
        found.append(
            fail(
                "registration.enum_conflict",
                f"DestinationTypes.{n.upper} already exists with value {reg.enum[n.upper]!r}.",
                "Pick another destination name.",
                ENUM_FILE,
                reg.enum_lines.get(n.upper),
            )
        )
    other = reg.member_for_value(s.name)
    if other and other != n.upper:
        found.append(
            fail(
                "registration.enum_conflict",
                f"DestinationTypes.{other} already has the value {s.name!r}.",
                "Pick another name.",
                ENUM_FILE,
                reg.enum_lines.get(other),
            )
        )
    if cfg_cls in reg.imports and reg.imports[cfg_cls] != config_module:
        found.append(
            fail(
                "registration.import_conflict",
                f"{cfg_cls} is already imported in {MODELS_FILE} from {reg.imports[cfg_cls]}.",
                "Pick a name whose PascalCase form is new.",
                MODELS_FILE,
            )
        )
    branch = reg.factory.get(n.upper)
    if branch and branch != f"{registry.CONNECTOR_PREFIX}{s.name}.src.destination":
        found.append(
            fail(
                "registration.factory_conflict",
                f"The factory branch for DestinationTypes.{n.upper} imports {branch or 'nothing'}.",
                "Fix or delete that branch by hand, then call again.",
                FACTORY_FILE,
            )
        )
    member, line = _literal_member(ws, s)
    rel_config = f"bizon/connectors/destinations/{s.name}/src/config.py"
    if member is None and not (ws.root / rel_config).exists():
        found.append(fail("registration.not_rendered", f"{rel_config} does not exist.", "Call render_destination."))
    elif member != n.upper:
        found.append(
            fail(
                "registration.literal_mismatch",
                f"{cfg_cls}.name is Literal[DestinationTypes.{member}], not DestinationTypes.{n.upper}; "
                "two configs on one tag break every bizon command.",
                f"Write `name: Literal[DestinationTypes.{n.upper}]`.",
                rel_config,
                line,
            )
        )
    return found


def import_check(ws: Workspace) -> str | None:
    """None if `import bizon.common.models` works in the workspace's Python, else the error's last lines."""
    try:
        done = subprocess.run(
            [ws.python(), "-c", "import bizon.common.models"],
            cwd=ws.root,
            env=ws.env(),
            capture_output=True,
            text=True,
            timeout=IMPORT_CHECK_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        return f"import bizon.common.models took over {IMPORT_CHECK_TIMEOUT_S} s"
    if done.returncode == 0:
        return None
    return "\n".join(done.stderr.strip().splitlines()[-6:])


def _plan(ws: Workspace, s: DestinationSpec, reg: registry.Registry) -> tuple[dict[str, str], dict[str, str]]:
    """New texts of the registration files, and what happened to each registration."""
    from bizon_forge import codemods

    n = s.names
    cfg_cls, base = f"{n.pascal}Config", f"{registry.CONNECTOR_PREFIX}{s.name}.src"
    texts = {rel: ws.path(rel).read_text() for rel in (ENUM_FILE, MODELS_FILE, FACTORY_FILE)}
    status = {}
    try:
        if reg.enum.get(n.upper) == s.name:
            status["enum"] = "already_present"
        else:
            texts[ENUM_FILE] = codemods.add_enum_member(texts[ENUM_FILE], n.upper, s.name)
            status["enum"] = "added"
        if reg.imports.get(cfg_cls) == f"{base}.config":
            status["import"] = "already_present"
        else:
            texts[MODELS_FILE] = codemods.add_import(texts[MODELS_FILE], f"{base}.config", cfg_cls, _line_length(ws))
            status["import"] = "added"
        if cfg_cls in reg.union:
            status["union"] = "already_present"
        else:
            texts[MODELS_FILE] = codemods.add_union_member(texts[MODELS_FILE], cfg_cls)
            status["union"] = "added"
        if n.upper in reg.factory:
            status["factory"] = "already_present"
        else:
            texts[FACTORY_FILE] = codemods.add_factory_branch(
                texts[FACTORY_FILE], n.upper, f"{base}.destination", f"{n.pascal}Destination"
            )
            status["factory"] = "added"
    except codemods.EditPointMissing as error:
        raise Refused(fail("registration.edit_point_missing", str(error), "Is this a bizon tree of 0.5+?")) from None
    return texts, status


def apply_registrations(ws: Workspace, name: str, dry_run: bool = False) -> RegistrationResult:
    s = spec.load(ws, name)
    with workspace_lock(ws.state_dir):
        reg = registry.read(ws)
        if reg.errors:
            raise Refused(*(fail("registry.unparsable", e, "Fix the syntax error first.") for e in reg.errors))
        found = conflicts(ws, s, reg)
        if found:
            return RegistrationResult(ok=False, findings=found, next="Nothing was written. Fix the conflicts.")
        texts, status = _plan(ws, s, reg)
        originals = {rel: ws.path(rel).read_text() for rel in texts}
        changed = {rel: t for rel, t in texts.items() if t != originals[rel]}
        edits = [FileEdit(path=rel, diff=_diff(rel, originals[rel], t)) for rel, t in changed.items()]
        if dry_run or not changed:
            nxt = f"validate_destination(name={name!r})" if not changed else None
            return RegistrationResult(registrations=status, edits=edits, next=nxt)
        try:
            write_all({ws.path(rel): t for rel, t in changed.items()})
        except OSError as error:
            raise Refused(
                fail("registration.write_failed", f"Writing failed ({error}); the files were restored.")
            ) from None
        problem = import_check(ws)
        if problem:
            write_all({ws.path(rel): originals[rel] for rel in changed})
            return RegistrationResult(
                ok=False,
                registrations=status,
                findings=[
                    fail(
                        "registration.import_failed",
                        f"After registering, `import bizon.common.models` failed; the 3 files were restored. {problem}",
                        "Fix the destination's config.py (no optional imports, no bizon.common.models), then retry.",
                    )
                ],
            )
    return RegistrationResult(registrations=status, edits=edits, next=f"validate_destination(name={name!r})")


def remove_destination(ws: Workspace, name: str, delete_files: bool = False) -> RemovalResult:
    from bizon_forge import codemods

    bad = spec.check_name(name)
    if bad:
        raise Refused(*bad)
    with workspace_lock(ws.state_dir):
        ours = spec.spec_path(ws, name).exists()
        if not ours and name in ws.destinations():
            raise Refused(
                fail(
                    "remove.not_ours",
                    f"{name!r} was not created by bizon-forge in this workspace; refusing to remove it.",
                    "Remove bizon's own destinations by hand if you really mean to.",
                )
            )
        s = spec.load(ws, name) if ours else DestinationSpec(name=name)
        n = s.names
        cfg_cls, base = f"{n.pascal}Config", f"{registry.CONNECTOR_PREFIX}{name}.src"
        reg = registry.read(ws)
        originals = {rel: ws.path(rel).read_text() for rel in (ENUM_FILE, MODELS_FILE, FACTORY_FILE)}
        texts = dict(originals)
        removed = []
        if reg.enum.get(n.upper) == name:
            texts[ENUM_FILE] = codemods.remove_enum_member(texts[ENUM_FILE], n.upper)
            removed.append("enum")
        if reg.imports.get(cfg_cls) == f"{base}.config":
            texts[MODELS_FILE] = codemods.remove_import(texts[MODELS_FILE], f"{base}.config", cfg_cls)
            removed.append("import")
        if cfg_cls in reg.union:
            texts[MODELS_FILE] = codemods.remove_union_member(texts[MODELS_FILE], cfg_cls)
            removed.append("union")
        if reg.factory.get(n.upper) == f"{base}.destination":
            texts[FACTORY_FILE] = codemods.remove_factory_branch(texts[FACTORY_FILE], n.upper)
            removed.append("factory")
        changed = {rel: t for rel, t in texts.items() if t != originals[rel]}
        write_all({ws.path(rel): t for rel, t in changed.items()})
        deleted = []
        if delete_files:
            from bizon_forge.render import record_path

            for path in (
                ws.destination_dir(name),
                ws.root / "tests" / "connectors" / "destinations" / name,
                spec.spec_path(ws, name),
                record_path(ws, name),
            ):
                if path.is_symlink() or path.is_file():
                    path.unlink()
                elif path.is_dir():
                    shutil.rmtree(path)
                else:
                    continue
                deleted.append(str(path.relative_to(ws.root)))
    return RemovalResult(
        removed=removed,
        deleted=deleted,
        edits=[FileEdit(path=rel, diff=_diff(rel, originals[rel], t)) for rel, t in changed.items()],
    )
