"""describe_target: check what the agent knows about the target system and store it as the destination's spec."""

from pydantic import BaseModel

from bizon_forge import dependencies, recipes, registry
from bizon_forge.atomic import workspace_lock
from bizon_forge.findings import Result, has_failures
from bizon_forge.spec import destination as spec
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
        return DescribeResult(
            ok=False, findings=findings, next="Fix the failed findings and call describe_target again."
        )
    reg = registry.read(ws)
    findings += spec.check_against_workspace(s, ws, reg)
    if has_failures(findings):
        return DescribeResult(ok=False, findings=findings, next="Pick another name or remove the old destination.")
    with workspace_lock(ws.state_dir):
        spec.save(ws, s)
    return DescribeResult(
        findings=findings,
        names=s.names,
        existing=existing(ws, s, reg),
        spec_file=str(spec.spec_path(ws, s.name).relative_to(ws.root)),
        next=f"render_destination(name={s.name!r})",
    )
