"""generate: describe -> render -> register -> install -> validate from one spec, for pipelines without MCP."""

from collections.abc import Callable

from pydantic import BaseModel

from bizon_forge.findings import Finding, Refused, Result
from bizon_forge.spec import destination, source
from bizon_forge.spec.common import parse_or_refuse
from bizon_forge.spec.destination import DestinationSpec
from bizon_forge.workspace import Workspace


class Step(BaseModel):
    step: str  # describe | render | register | install | validate
    ok: bool


class GenerateResult(Result):
    steps: list[Step] = []
    summary: str = ""
    log_dir: str | None = None


def parse_spec(args: object) -> DestinationSpec:
    """A spec file's content as describe_target's arguments, or a refusal naming each wrong key and value."""
    try:
        return parse_or_refuse(destination.KIND, args)
    except Refused as refused:
        # The one key a spec file may hold by mistake that is no spec's: the command line says where to work.
        refused.findings = [
            f.model_copy(update={"hint": "Pass the workspace with --workspace."})
            if f.id == "spec.unknown_key" and f.message.startswith("workspace:")
            else f
            for f in refused.findings
        ]
        raise


def generate(ws: Workspace, args: dict, level: str = "fast") -> GenerateResult:
    from bizon_forge.dependencies import install_dependencies
    from bizon_forge.describe import describe_target
    from bizon_forge.registrations import apply_registrations
    from bizon_forge.render import render_destination
    from bizon_forge.validators import validate_destination

    spec = parse_spec(args)
    return run_steps(
        [
            ("describe", lambda: describe_target(ws, spec)),
            ("render", lambda: render_destination(ws, spec.name)),
            ("register", lambda: apply_registrations(ws, spec.name)),
            ("install", lambda: install_dependencies(ws, spec.name)),
            ("validate", lambda: validate_destination(ws, spec.name, level=level)),
        ]
    )


def run_steps(steps: list[tuple[str, Callable[[], Result]]]) -> GenerateResult:
    """Each step in turn until one fails: every step's findings but passes, and the last step's summary and next."""
    done: list[Step] = []
    findings: list[Finding] = []
    result = Result()
    for step, run in steps:
        try:
            result = run()
        except Refused as refused:
            result = Result(ok=False, findings=refused.findings, next=refused.next)
        done.append(Step(step=step, ok=result.ok))
        findings += [f for f in result.findings if f.status != "pass"]  # with the validator's excerpts and logs
        if not result.ok:
            stopped = "" if step == steps[-1][0] else f" Stopped at {step}; later steps did not run."
            return GenerateResult(
                ok=False,
                steps=done,
                findings=findings,
                summary=getattr(result, "summary", "") or f"{step} failed.{stopped}",
                log_dir=getattr(result, "log_dir", None),
                next=result.next,
            )
    return GenerateResult(
        steps=done,
        findings=findings,
        summary=getattr(result, "summary", ""),
        log_dir=getattr(result, "log_dir", None),
        next=result.next,
    )


def is_source_spec(args) -> bool:
    """A spec file that describes a source (it has streams or a base_url) rather than a destination."""
    return isinstance(args, dict) and ("streams" in args or "base_url" in args)


def generate_source(ws: Workspace, args: dict, level: str = "fast") -> GenerateResult:
    """describe_source -> render_source -> install_dependencies -> validate_source: a source needs no registration;
    its spec's libraries (none for the rest recipe) are installed as a destination's are."""
    from bizon_forge.dependencies import install_dependencies
    from bizon_forge.source_describe import describe_source
    from bizon_forge.source_render import render_source

    spec = parse_or_refuse(source.KIND, args)

    def validate() -> Result:
        from bizon_forge.validators.source_validation import validate_source

        return validate_source(ws, spec.name, level=level)

    return run_steps(
        [
            ("describe", lambda: describe_source(ws, spec)),
            ("render", lambda: render_source(ws, spec.name)),
            ("install", lambda: install_dependencies(ws, spec.name, kind="source")),
            ("validate", validate),
        ]
    )
