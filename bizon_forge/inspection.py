"""inspect_workspace: where an agent starts and a pipeline checks a tree."""

from pydantic import BaseModel

from bizon_forge import connector, interpreter, registry
from bizon_forge.findings import Refused, Result, failed, warned
from bizon_forge.interpreter import Interpreter
from bizon_forge.spec import destination as spec
from bizon_forge.spec import source as source_spec
from bizon_forge.workspace import ENUM_FILE, FACTORY_FILE, MODELS_FILE, Workspace

FILES = {"enum": ENUM_FILE, "union": MODELS_FILE, "factory": FACTORY_FILE}


class DestinationState(BaseModel):
    name: str
    registered: list[str] = []  # of enum, union, factory
    missing: list[str] = []
    rendered: bool = True  # src/config.py and src/destination.py exist
    spec: bool = False


class SourceState(BaseModel):
    name: str
    files: list[str] = []  # src/*.py, relative to the source's folder (bizon discovers these)
    spec: bool = False  # described with describe_source (stored apart from destination specs)


class InspectResult(Result):
    root: str | None = None
    bizon_version: str | None = None
    # The interpreter that runs the workspace's bizon (checks and syncs): client libraries go into it.
    interpreter: Interpreter | None = None
    run: str | None = None  # the shell command that runs a sync config, as printed (FILE: its path)
    layout: dict[str, str] = {}  # enum | union | factory -> "file:line" of the edit point, found by structure
    destinations: list[DestinationState] = []
    sources: list[SourceState] = []
    audit: str | None = None  # the audit trail: a line per call that wrote or ran code (workspace-relative)


def inspect_workspace(ws: Workspace) -> InspectResult:
    reg = registry.read(ws)
    stored = set(spec.stored_names(ws))
    findings = [failed("registry.unparsable", e, "Fix the syntax error first.") for e in reg.errors]
    libraries = sorted({r for name in stored for r in _declared(ws, name)})
    runner = interpreter.probe(ws, libraries)
    if not runner.usable:
        findings.append(interpreter.no_interpreter(ws, runner))
    states = []
    # A registration in a file that does not parse is neither there nor missing: it is unknown.
    unknown = {k for k, rel in FILES.items() if any(e.startswith(f"{rel}:") for e in reg.errors)}
    for name in sorted(set(ws.destinations()) | stored | set(reg.enum.values()) - {None}):
        have = {k: v for k, v in reg.registered(name).items() if k not in unknown}
        src = ws.destination_dir(name) / "src"
        state = DestinationState(
            name=name,
            registered=[k for k, v in have.items() if v],
            missing=[k for k, v in have.items() if not v],
            rendered=(src / "config.py").exists() and (src / "destination.py").exists(),
            spec=name in stored,
        )
        if state.spec and not state.rendered:
            findings.append(
                warned(
                    "inspect.not_rendered",
                    f"{name} has a stored spec but no rendered src/config.py and src/destination.py.",
                    f"render_destination(name={name!r}) writes them.",
                )
            )
        elif state.missing and (state.registered or state.spec) and not unknown:
            findings.append(
                warned(
                    "registry.incomplete",
                    f"{name} lacks registrations: {', '.join(state.missing)}.",
                    f"apply_registrations(name={name!r}) completes them.",
                )
            )
        states.append(state)
    missing = set(runner.missing)
    for name in sorted(stored):
        needs = [r for r in _declared(ws, name) if r in missing]
        if needs and runner.usable:
            findings.append(
                warned(
                    "install.missing",
                    f"{name} needs {', '.join(needs)}, not installed in {runner.python}.",
                    f"install_dependencies(name={name!r}) installs it.",
                )
            )
    return InspectResult(
        sources=_sources(ws, findings),
        ok=not reg.errors and runner.usable,
        root=str(ws.root),
        bizon_version=ws.bizon_version,
        interpreter=runner,
        run=ws.bizon_command("run", "FILE") if runner.usable else None,  # it would not run: the finding says why
        layout={key: f"{FILES[key]}:{line}" for key, line in reg.edit_points.items()},
        destinations=states,
        audit=str(ws.audit_file.relative_to(ws.root)),
        findings=findings,
        next=None
        if not runner.usable
        else "describe_target(name=..., recipe=...) adds a destination; describe_source(spec=...) a source",
    )


def _declared(ws: Workspace, name: str) -> list[str]:
    """The client libraries a stored spec declares ([] for a spec that does not load: describe says why)."""
    try:
        return spec.load(ws, name).dependencies
    except Refused:
        return []


def _sources(ws: Workspace, findings: list) -> list[SourceState]:
    """Every source folder bizon discovers, and every described one; a described source not rendered is noted."""
    base = ws.root / connector.folder("source")
    folders = {p.name for p in base.iterdir() if p.is_dir() and (p / "src").is_dir()} if base.is_dir() else set()
    described = set(source_spec.stored_names(ws))
    states = []
    for name in sorted(folders | described):
        src = base / name / "src"
        files = sorted(str(p.relative_to(base / name)) for p in src.glob("*.py")) if src.is_dir() else []
        if name in described and "src/source.py" not in files:
            findings.append(
                warned(
                    "inspect.source_not_rendered",
                    f"Source {name} has a stored spec but no rendered src/source.py.",
                    f"render_source(name={name!r}) writes it.",
                )
            )
        states.append(SourceState(name=name, files=files, spec=name in described))
    return states
