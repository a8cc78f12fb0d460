"""describe_target: check what the agent knows about the target system and store it as the destination's spec.

Both describe tools answer in the same steps (their input parsed by spec.common.parse first): the kind's checks, a
clash with what the tree holds, then the spec stored under the workspace lock with what existed just before it;
`stored` (and common's `fix_next`) are those steps for either kind (describe_source is source_describe's)."""

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from bizon_forge import dependencies, recipes, registry
from bizon_forge.atomic import workspace_lock
from bizon_forge.findings import Result, has_failures
from bizon_forge.spec import destination as spec
from bizon_forge.spec.common import Kind, fix_next
from bizon_forge.spec.destination import DestinationSpec, Names
from bizon_forge.workspace import Workspace


class Existing(BaseModel):
    spec: bool = False
    files: list[str] = []
    registered: dict[str, bool] = {}


class DescribeResult(Result):
    names: Names | None = None
    existing: Existing | None = None
    spec_file: str | None = None


def stored(ws: Workspace, kind: Kind, s: Any, existed: Callable[[], BaseModel]) -> dict[str, Any]:
    """Save the spec under the workspace lock; the answer's fields: what existed just before, where it is stored and
    what to call next."""
    with workspace_lock(ws.state_dir):
        before = existed()
        kind.save(ws, s)
    return {
        "existing": before,
        "spec_file": str(kind.spec_path(ws, s.name).relative_to(ws.root)),
        "next": f"render_{kind.name}(name={s.name!r})",
    }


def existing(ws: Workspace, s: DestinationSpec, reg: registry.Registry) -> Existing:
    folder = ws.destination_dir(s.name)
    files = sorted(str(p.relative_to(ws.root)) for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []
    return Existing(
        spec=spec.spec_path(ws, s.name).exists(),
        files=[f for f in files if "__pycache__" not in f],
        registered=reg.registered(s.name),
    )


def describe_target(ws: Workspace, s: DestinationSpec) -> DescribeResult:
    s, findings = recipes.apply(s)  # a recipe's own fields and retry defaults, unless the agent declared them
    requirements, found = dependencies.resolve(s.dependencies, s.recipe)  # a sql URL names its driver
    findings += found + dependencies.sql_driver_note(s, requirements)
    s = s.model_copy(update={"dependencies": requirements})
    findings += spec.check_spec(s)
    if has_failures(findings):
        return DescribeResult(ok=False, findings=findings, next=fix_next(spec.KIND))
    reg = registry.read(ws)
    findings += spec.check_against_workspace(s, ws, reg)
    if has_failures(findings):
        return DescribeResult(ok=False, findings=findings, next="Pick another name or remove the old destination.")
    return DescribeResult(findings=findings, names=s.names, **stored(ws, spec.KIND, s, lambda: existing(ws, s, reg)))
