"""apply_registrations / remove_destination: the three registrations as exact, atomic, reversible edits.

`plan_add` and `plan_remove` are pure (texts in, texts out); the two tools add the lock, the conflict
checks, the all-or-nothing write and the import check around them.
"""

import ast
import difflib
import shutil
import subprocess
import tomllib
from collections.abc import Sequence

from pydantic import BaseModel

from bizon_forge import dependencies, interpreter, pyast, registry
from bizon_forge.atomic import WriteFailed, workspace_lock, write_all
from bizon_forge.connector import Connector
from bizon_forge.findings import Finding, Refused, Result, failed, warned
from bizon_forge.render import record_path
from bizon_forge.spec import destination as spec
from bizon_forge.spec.destination import DestinationSpec, Names
from bizon_forge.workspace import ENUM_FILE, FACTORY_FILE, MODELS_FILE, Workspace, read_regular, tied_to_server

IMPORT_CHECK_TIMEOUT_S = 60


class FileEdit(BaseModel):
    path: str
    diff: str


class RegistrationResult(Result):
    # enum | import | union | factory (| extra | import_guard, with client libraries) -> added | already_present
    # | updated | removed | conflict
    registrations: dict[str, str] = {}
    edits: list[FileEdit] = []


class RemovalResult(Result):
    removed: list[str] = []
    edits: list[FileEdit] = []
    deleted: list[str] = []


def _diff(rel: str, old: str, new: str) -> str:
    return "".join(difflib.unified_diff(old.splitlines(True), new.splitlines(True), f"a/{rel}", f"b/{rel}", n=1))


def _line_length(ws: Workspace) -> int:
    try:
        conf = tomllib.loads(read_regular(ws.path("pyproject.toml")).decode())
    except (OSError, ValueError):  # TOMLDecodeError and UnicodeDecodeError are ValueErrors
        return 88
    value = conf.get("tool", {}).get("ruff", {}).get("line-length", 88)
    return value if isinstance(value, int) and value > 0 else 88


def _modules(name: str) -> tuple[str, str]:
    c = Connector(name)
    return c.config_module, c.code_module


# -- pure planning ---------------------------------------------------------------------------------


def plan_add(texts: dict[str, str], name: str, n: Names, line_length: int = 88):
    """(new texts, {registration: added | already_present}) for the three files' texts.

    Adds only what is missing, so a half-done manual registration is completed and a second call
    changes nothing. Raises codemods.EditPointMissing for a file whose structure it does not know.
    """
    from bizon_forge import codemods  # libcst: kept off the server's start-up path

    reg = registry.from_texts(texts)
    config_module, destination_module = _modules(name)
    cfg_cls = f"{n.pascal}Config"
    texts, status = dict(texts), {}
    if reg.enum.get(n.upper) == name:
        status["enum"] = "already_present"
    else:
        texts[ENUM_FILE] = codemods.add_enum_member(texts[ENUM_FILE], n.upper, name)
        status["enum"] = "added"
    if reg.imports.get(cfg_cls) == config_module:
        status["import"] = "already_present"
    else:
        texts[MODELS_FILE] = codemods.add_import(texts[MODELS_FILE], config_module, cfg_cls, line_length)
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
            texts[FACTORY_FILE], n.upper, destination_module, f"{n.pascal}Destination"
        )
        status["factory"] = "added"
    return texts, status


def plan_remove(texts: dict[str, str], name: str, n: Names):
    """(new texts, registrations removed): takes away only what points at this destination's modules."""
    from bizon_forge import codemods  # libcst: kept off the server's start-up path

    reg = registry.from_texts(texts)
    config_module, destination_module = _modules(name)
    cfg_cls = f"{n.pascal}Config"
    texts, removed = dict(texts), []
    if reg.enum.get(n.upper) == name:
        texts[ENUM_FILE] = codemods.remove_enum_member(texts[ENUM_FILE], n.upper)
        removed.append("enum")
    if reg.imports.get(cfg_cls) == config_module:
        texts[MODELS_FILE] = codemods.remove_import(texts[MODELS_FILE], config_module, cfg_cls)
        removed.append("import")
    # A Union member of that class name imported from another connector belongs to that connector.
    if cfg_cls in reg.union and reg.imports.get(cfg_cls, config_module) == config_module:
        texts[MODELS_FILE] = codemods.remove_union_member(texts[MODELS_FILE], cfg_cls)
        removed.append("union")
    if reg.factory.get(n.upper) == destination_module:
        texts[FACTORY_FILE] = codemods.remove_factory_branch(texts[FACTORY_FILE], n.upper)
        removed.append("factory")
    return texts, removed


# -- checks ----------------------------------------------------------------------------------------


def _literal_members(ws: Workspace, name: str) -> list[tuple[str, int]]:
    """Every `name: Literal[DestinationTypes.X]` in the new config.py, with its line."""
    path = ws.destination_dir(name) / "src" / "config.py"
    try:
        tree = pyast.parse(read_regular(path).decode())
    except (OSError, SyntaxError, ValueError):
        return []
    found = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and node.target.id == "name"
            and isinstance(node.annotation, ast.Subscript)
            and isinstance(node.annotation.value, ast.Name)
            and node.annotation.value.id == "Literal"
            and isinstance(node.annotation.slice, ast.Attribute)
            and isinstance(node.annotation.slice.value, ast.Name)
            and node.annotation.slice.value.id == "DestinationTypes"
        ):
            found.append((node.annotation.slice.attr, node.lineno))
    return found


def conflicts(ws: Workspace, s: DestinationSpec, reg: registry.Registry) -> list[Finding]:
    n = s.names
    cfg_cls = f"{n.pascal}Config"
    config_module, destination_module = _modules(s.name)
    found = []
    if n.upper in reg.enum and reg.enum[n.upper] != s.name:
        found.append(
            failed(
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
            failed(
                "registration.enum_conflict",
                f"DestinationTypes.{other} already has the value {s.name!r}.",
                "Pick another name.",
                ENUM_FILE,
                reg.enum_lines.get(other),
            )
        )
    if cfg_cls in reg.imports and reg.imports[cfg_cls] != config_module:
        found.append(
            failed(
                "registration.import_conflict",
                f"{cfg_cls} is already imported in {MODELS_FILE} from {reg.imports[cfg_cls]}.",
                "Pick a name whose PascalCase form is new.",
                MODELS_FILE,
                reg.import_lines.get(cfg_cls),
            )
        )
    branch = reg.factory.get(n.upper)
    if branch and branch != destination_module:
        found.append(
            failed(
                "registration.factory_conflict",
                f"The factory branch for DestinationTypes.{n.upper} imports {branch}, not {destination_module}.",
                "Fix or delete that branch by hand, then call again.",
                FACTORY_FILE,
            )
        )
    rel_config = Connector(s.name).config_rel
    if not (ws.root / rel_config).exists():  # a FIFO or a folder there is refused when read
        found.append(failed("registration.not_rendered", f"{rel_config} does not exist.", "Call render_destination."))
        return found
    literals = _literal_members(ws, s.name)
    for member, line in literals:
        if member != n.upper:
            found.append(
                failed(
                    "registration.literal_mismatch",
                    f"{rel_config} declares `name: Literal[DestinationTypes.{member}]`, not "
                    f"DestinationTypes.{n.upper}; two configs on one tag break every bizon command.",
                    f"Write `name: Literal[DestinationTypes.{n.upper}]`.",
                    rel_config,
                    line,
                )
            )
    if not literals:
        found.append(
            warned(
                "registration.literal_missing",
                f"{rel_config} has no `name: Literal[DestinationTypes.{n.upper}]`; "
                "BizonConfig picks a destination by that tag.",
                f"Give {cfg_cls} the field `name: Literal[DestinationTypes.{n.upper}]`.",
                rel_config,
            )
        )
    return found


# Deletes the cached byte-code of the files just edited first: a pyc is trusted when the source's
# mtime (whole seconds) and size match, which two quick edits of equal length can both have.
_IMPORT_CHECK = """
import importlib.util, os, sys
for source in sys.argv[1:]:
    try:
        os.remove(importlib.util.cache_from_source(source))
    except OSError:
        pass
import bizon.common.models
"""


def import_check(ws: Workspace, edited: Sequence[str] = ()) -> str | None:
    """None if `import bizon.common.models` works in the workspace's Python, else the error's last lines."""
    try:
        done = subprocess.run(
            tied_to_server([ws.python(), "-c", _IMPORT_CHECK, *(str(ws.path(rel)) for rel in edited)]),
            cwd=ws.root,
            env=ws.env(),
            capture_output=True,
            text=True,
            timeout=IMPORT_CHECK_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        return f"import bizon.common.models took over {IMPORT_CHECK_TIMEOUT_S} s"
    except OSError as error:
        return f"could not run {ws.python()}: {error}"
    if done.returncode == 0:
        return None
    return "\n".join(done.stderr.strip().splitlines()[-6:])


def _write_failed(ws: Workspace, id: str, error: WriteFailed) -> list[Finding]:
    where = error.path.relative_to(ws.root) if error.path and ws.root in error.path.parents else error.path
    written = len(error.written)
    found = [
        failed(
            id,
            f"Writing {where} failed ({type(error.cause).__name__}: {error.cause}); "
            f"the {written} file(s) written before it were restored, the tree is as it was.",
            "Fix the cause (disk space, permissions) and call again.",
            str(where),
        )
    ]
    if error.unrestored:
        found.append(
            failed(
                "workspace.restore_failed",
                "Could not restore: " + ", ".join(str(p) for p in error.unrestored) + ".",
                "The next call that takes the workspace lock rolls them back from the journal.",
            )
        )
    return found


_CONFLICT_KEYS = {
    "registration.enum_conflict": ("enum",),
    "registration.import_conflict": ("import", "union"),
    "registration.factory_conflict": ("factory",),
}


def apply_registrations(ws: Workspace, name: str, dry_run: bool = False) -> RegistrationResult:
    from bizon_forge import codemods  # libcst: kept off the server's start-up path

    s = spec.load(ws, name)
    # The import check after the write runs bizon: a tree with no interpreter that can is told so first.
    state = None if dry_run else interpreter.require(ws, s.dependencies)
    missing = state.missing if state else []
    validate_next = f"install_dependencies(name={name!r})" if missing else f"validate_destination(name={name!r})"
    with workspace_lock(ws.state_dir):
        originals = _registration_texts(ws)
        found = conflicts(ws, s, registry.from_texts(originals))
        if any(f.status == "fail" for f in found):
            return _conflicting(name, found)
        try:
            texts, status = plan_add(originals, s.name, s.names, _line_length(ws))
        except codemods.EditPointMissing as error:
            raise Refused(
                failed("registration.edit_point_missing", str(error), "Is this a bizon tree of 0.5+?")
            ) from None
        originals, texts, record_status = _with_records(ws, originals, texts, s.name, s.dependencies)
        status.update(record_status)
        changed = {rel: t for rel, t in texts.items() if t != originals[rel]}
        edits = [FileEdit(path=rel, diff=_diff(rel, originals[rel], t)) for rel, t in changed.items()]
        if not changed:
            found.append(
                Finding(
                    id="registration.unchanged",
                    status="pass",
                    message=f"{name} was already registered in all three files"
                    + (" and its client libraries recorded" if record_status else "")
                    + "; nothing was written.",
                )
            )
            return RegistrationResult(registrations=status, findings=found, next=validate_next)
        if dry_run:
            return RegistrationResult(
                registrations=status, findings=found, edits=edits, next=f"apply_registrations(name={name!r})"
            )
        try:
            write_all({ws.path(rel): t for rel, t in changed.items()})
        except WriteFailed as error:
            return RegistrationResult(ok=False, findings=_write_failed(ws, "registration.write_failed", error))
        restored = _restored_unless_importable(ws, name, changed, originals)
        if restored:
            return RegistrationResult(ok=False, registrations=status, findings=restored, edits=edits)
    return RegistrationResult(registrations=status, findings=found, edits=edits, next=validate_next)


def _registration_texts(ws: Workspace) -> dict[str, str]:
    """The three registration files' texts; refused while one of them does not parse."""
    originals = registry.read_texts(ws)
    reg = registry.from_texts(originals)
    if reg.errors:
        raise Refused(*(failed("registry.unparsable", e, "Fix the syntax error first.") for e in reg.errors))
    return originals


def _conflicting(name: str, found: list[Finding]) -> RegistrationResult:
    """The answer when a registration would clash or the destination is not rendered: nothing written."""
    hit = {key: "conflict" for f in found for key in _CONFLICT_KEYS.get(f.id, ())}
    if any(f.id == "registration.not_rendered" for f in found):
        todo = f"Nothing was written. Call render_destination(name={name!r}) first, then apply_registrations."
    else:
        todo = "Nothing was written. Fix the failed findings, then call apply_registrations again."
    return RegistrationResult(ok=False, registrations=hit, findings=found, next=todo)


def _with_records(
    ws: Workspace, originals: dict[str, str], texts: dict[str, str], name: str, requirements: list[str]
) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """Originals and planned texts with the two dependency records added, and what changes in them."""
    records = dependencies.read_records(ws)
    try:
        new_records, record_status = dependencies.plan_records(records, name, requirements)
    except dependencies.RecordUnknown as error:
        raise Refused(_record_unknown(error)) from None
    return {**originals, **records}, {**texts, **new_records}, record_status


def _restored_unless_importable(
    ws: Workspace, name: str, changed: dict[str, str], originals: dict[str, str]
) -> list[Finding]:
    """Import bizon's models after the write; if that fails, restore the originals and say why (else nothing)."""
    problem = import_check(ws, [*(rel for rel in changed if rel.endswith(".py")), *_connector_files(ws, name)])
    if not problem:
        return []
    restored = [
        failed(
            "registration.import_failed",
            f"After registering, `import bizon.common.models` failed; the {len(changed)} edited files were "
            "restored. " + problem,
            "Fix the destination's config.py (no optional imports, no bizon.common.models); retry.",
        )
    ]
    try:
        write_all({ws.path(rel): originals[rel] for rel in changed})
    except WriteFailed as error:
        restored = restored[:1] + _write_failed(ws, "registration.restore_failed", error)
    return restored


def _delete_files(ws: Workspace, name: str) -> list[str]:
    """Delete the destination's folder, its tests, its spec and its render record; the tree-relative paths deleted."""
    deleted = []
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
    return deleted


def _record_unknown(error: Exception) -> Finding:
    return failed(
        "registration.record_unknown",
        f"Cannot record the client libraries: {error} Nothing was written.",
        "Fix that file by hand (or describe the destination without dependencies) and call again.",
    )


def _connector_files(ws: Workspace, name: str) -> list[str]:
    src = ws.destination_dir(name) / "src"
    return [str(p.relative_to(ws.root)) for p in sorted(src.glob("*.py"))] if src.is_dir() else []


def remove_destination(ws: Workspace, name: str, delete_files: bool = False) -> RemovalResult:
    from bizon_forge import codemods  # libcst: kept off the server's start-up path

    bad = spec.check_name(name)
    if bad:
        raise Refused(*bad)
    with workspace_lock(ws.state_dir):
        ours = spec.spec_path(ws, name).exists()
        if not ours and name in ws.destinations():
            raise Refused(
                failed(
                    "remove.not_ours",
                    f"{name!r} was not created by bizon-forge in this workspace; refusing to remove it.",
                    "Remove bizon's own destinations by hand if you really mean to.",
                )
            )
        originals = _registration_texts(ws)
        try:
            texts, removed = plan_remove(originals, name, DestinationSpec(name=name).names)
        except codemods.EditPointMissing as error:
            raise Refused(failed("registration.edit_point_missing", str(error))) from None
        if ours:  # an extra of the same name that bizon-forge did not record (bizon's `datadog`) stays
            originals, texts, record_status = _with_records(ws, originals, texts, name, [])
            removed += [key for key, how in record_status.items() if how == "removed"]
        changed = {rel: t for rel, t in texts.items() if t != originals[rel]}
        try:
            write_all({ws.path(rel): t for rel, t in changed.items()})
        except WriteFailed as error:
            return RemovalResult(ok=False, findings=_write_failed(ws, "remove.write_failed", error))
        deleted = _delete_files(ws, name) if delete_files else []
    findings = []
    if not removed and not deleted:
        findings.append(
            Finding(id="remove.nothing", status="pass", message=f"Nothing of {name!r} was registered or on disk.")
        )
    return RemovalResult(
        removed=removed,
        deleted=deleted,
        findings=findings,
        edits=[FileEdit(path=rel, diff=_diff(rel, originals[rel], t)) for rel, t in changed.items()],
    )
