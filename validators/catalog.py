"""Every check with its stable id, collected from the declarations beside the functions that answer them.

The checklist an agent reads (the resource, README's section) is generated from those: they cannot drift.
Adding a check is one function with its declaration, in one of MODULES.
"""

import ast
import importlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

from bizon_forge import pyast
from bizon_forge.findings import Finding, failed, passed, skipped, warned

# The modules that declare checks, in the checklist's order.
MODULES = tuple(
    f"bizon_forge.validators.{m}"
    for m in ("destination_syntax", "checklist", "registered", "traps", "agent_todo", "formatting", "live", "runtime")
)
# The modules that declare the checks of a source (validate_source), in its checklist's order.
SOURCE_MODULES = tuple(
    f"bizon_forge.validators.{m}" for m in ("source_code", "source_validation", "source_cases", "source_live")
)

# The relations between checks (what explains a failure) are declared with the checks: runtime.py's
# IMPORT_BLOCKERS, BUILD_BLOCKERS, ... are built from the declarations they name.


@dataclass(frozen=True)
class Check:
    id: str
    group: str
    what: str  # the checklist line: what must hold
    why: str
    fix: str  # the default hint of a failure
    limits: str = ""  # what the check does not judge, so a pass claims no more than was checked
    level: str = "fast"  # fast | full (full runs fast's checks too)
    origin: str = "guide"  # guide (its Validation Checklist) | facts (a trap the guide misses) | forge
    explained_by: tuple[str, ...] = ()  # a failure here after one of these failed is reported as a skip
    needs_finished_code: bool = False  # not run while agent.* checks fail: running unfinished code teaches nothing
    # Its skip means "does not apply here" (no secret field, no variable of its own), not a limit of what was
    # proven: the summary counts it, the answer does not list it unless verbose.
    skip_is_not_applicable: bool = False
    kind: str = "destination"  # destination (validate_destination) | source (validate_source)
    # Checks that must pass before this one can answer: while one did not, the engine answers this one as a skip
    # naming it (blocked_by), and a unit need not run it.
    requires: tuple[str, ...] = ()

    # A check reports through its declaration: its id once, its fix the default hint of a failure or a warning.

    def fail(
        self,
        message: str,
        hint: str | None = None,
        file: str | None = None,
        line: int | None = None,
        output: str | None = None,
        log: str | None = None,
    ) -> Finding:
        return failed(self.id, message, hint or self.fix, file, line, output=output, log=log)

    def warn(self, message: str, hint: str | None = None, file: str | None = None, line: int | None = None) -> Finding:
        return warned(self.id, message, hint or self.fix, file, line)

    def passed(self, message: str = "ok") -> Finding:
        return passed(self.id, message)

    def skip(self, message: str, blocked_by: str | None = None) -> Finding:
        return skipped(self.id, message, blocked_by)

    def unmet(self, found: dict[str, Finding], where: str = "") -> Finding | None:
        """The skip this check is answered with while a check it requires did not pass (None: it may run)."""
        first = next((r for r in self.requires if r not in found or found[r].status != "pass"), None)
        return None if first is None else self.skip(f"Not run: {first} did not pass{where}.", first)


StaticCheck = Callable[[Any], Finding]  # a DestinationCode (or a SourceCode for a source)
F = TypeVar("F", bound=Callable)
_DECLARED = "declared_checks"  # the attribute a declaration puts on its function
_STATIC = "is_static_check"


def static(declared: Check) -> Callable[[StaticCheck], StaticCheck]:
    """Declare a check of the code: the function reads the DestinationCode and answers this one finding.

    validate_destination runs every static check it finds in MODULES; nothing else lists it."""

    def declare(fn: StaticCheck) -> StaticCheck:
        setattr(fn, _DECLARED, (declared,))
        setattr(fn, _STATIC, True)
        return fn

    return declare


def answers(*declared: Check) -> Callable[[F], F]:
    """Declare the checks a function answers in one run (a subprocess, a probe): one finding per check, in this
    order, which is the order the checklist lists them in."""

    def declare(fn: F) -> F:
        setattr(fn, _DECLARED, declared)
        return fn

    return declare


def declared(fn: object) -> tuple[Check, ...]:
    """The checks a function declares (none for any other object)."""
    return getattr(fn, _DECLARED, ())


def declared_ids(fn: object) -> list[str]:
    """The ids of the checks a function answers, in its declaration's order."""
    return [c.id for c in declared(fn)]


@dataclass(frozen=True)
class Catalog:
    checks: tuple[Check, ...]  # the checklist's order: MODULES', then each module's functions in source order
    static: tuple[StaticCheck, ...]  # in the same order
    by_id: dict[str, Check]
    order: dict[str, int]


@cache
def collect(modules: tuple[str, ...]) -> Catalog:
    """Every check declared in `modules`: a function's declarations, in the order the functions are defined."""
    checks: list[Check] = []
    runs: list[StaticCheck] = []
    for name in modules:
        for value in vars(importlib.import_module(name)).values():
            if getattr(value, "__module__", None) != name:
                continue  # imported from another module, which declares it
            checks += declared(value)
            if getattr(value, _STATIC, False):
                runs.append(value)
    twice = sorted(id for id, n in Counter(c.id for c in checks).items() if n > 1)
    if twice:
        raise ValueError(f"Checks declared twice: {', '.join(twice)}")
    return Catalog(tuple(checks), tuple(runs), {c.id: c for c in checks}, {c.id: i for i, c in enumerate(checks)})


SUITE_PROBE = Path(__file__).parent / "probes" / "suite_probe.py"


@cache
def data_suite() -> tuple[dict[str, Any], ...]:
    """The data suite's cases as suite_probe.py declares them (id, run, what, why, fix, limits, origin, after), in
    the order it runs them. Read, not imported: the probe runs in the workspace's interpreter and imports bizon."""
    for node in pyast.parse(SUITE_PROBE.read_text()).body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["CASES"]:
            return tuple(ast.literal_eval(node.value))
    raise LookupError(f"{SUITE_PROBE} declares no CASES")


# Collected on first use, not here: the checks' modules import the blocker relations above from this module.
CHECKS: tuple[Check, ...]
BY_ID: dict[str, Check]
ORDER: dict[str, int]
STATIC: tuple[StaticCheck, ...]
DATA: tuple[str, ...]  # the data suite's check ids, in the probe's order


SOURCES: Catalog  # the checks of a source (kind "source"), collected from SOURCE_MODULES


def find(id: str) -> Check:
    """A check of either kind by its id (a destination's first)."""
    return collect(MODULES).by_id.get(id) or collect(SOURCE_MODULES).by_id[id]


def __getattr__(name: str) -> object:
    if name == "SOURCES":
        return collect(SOURCE_MODULES)
    if name == "DATA":
        return tuple(case["id"] for case in data_suite())
    fields = {"CHECKS": "checks", "BY_ID": "by_id", "ORDER": "order", "STATIC": "static"}
    if name not in fields:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(collect(MODULES), fields[name])


def _items(checks: tuple[Check, ...], level: str = "###") -> list[str]:
    lines: list[str] = []
    group = None
    for c in checks:
        if c.group != group:
            group = c.group
            lines += ["", f"{level} {group}", ""]
        full = f" ({c.level})" if c.level != "fast" else ""  # full, or a source's live read
        missed = " *A trap bizon's guide misses.*" if c.origin == "facts" else ""
        lines.append(f"- [ ] `{c.id}`{full}: {c.what}{missed}")
        if c.limits:
            lines.append(f"  *Limits:* {c.limits}")
        lines.append(f"  *Why:* {c.why} *Fix:* {c.fix}")
    return lines


def checklist_markdown(heading: bool = True) -> str:
    """The checklist as markdown: the bizon-forge://checklist resource, or (no heading) README's section."""
    lines = ["# Validation checklist", ""] if heading else []
    lines += [
        "Generated from the validators: each item is one check of `validate_destination`, answered as",
        "one finding with this id. `fast` runs the static, format, import and contract checks (what an",
        "agent calls after each edit); `full` adds the destination's tests, part of bizon's suite, the",
        "data suite and two real `bizon run`s, each read back. Every check that writes records writes",
        "them to the check config's scratch target, never to the example's.",
    ]
    lines += _items(collect(MODULES).checks)
    lines += [
        "",
        "## Sources" if heading else "### Sources",
        "",
        "Each item is one check of `validate_source`. `fast` runs the static checks, discovery and a contract",
        "run of get() against a local mock API served from the source's spec (or the agent's recorded pages);",
        "`full` adds the source's own tests, a real `bizon run` from the mock into a scratch file",
        "destination, read back, and the source against each of the mock's misbehaviour cases. None of these",
        "reaches the real API; `live` (after a green `full`) reads a few pages of it, nothing written.",
    ]
    lines += _items(collect(SOURCE_MODULES).checks, "###" if heading else "####")
    return "\n".join(lines) + "\n"


def write_readme_section(readme: Path) -> bool:
    """Put the generated checklist between README's markers; True if the file changed."""
    text = readme.read_text()
    start, end = "<!-- checklist:start -->\n", "<!-- checklist:end -->"
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    new = head + start + checklist_markdown(heading=False) + end + tail
    if new != text:
        readme.write_text(new)
    return new != text


if __name__ == "__main__":  # python -m bizon_forge.validators.catalog README.md
    import sys

    write_readme_section(Path(sys.argv[1]))
