"""A check is one function with its declaration: the catalog, README's checklist, the checklist resource and
validate_destination all follow from it; the checks a probe answers in another interpreter are declared in
the probe's order."""

import ast
import textwrap
from fnmatch import fnmatch

import pytest

from bizon_forge.findings import EXCERPT_CHARS, passed
from bizon_forge.server.app import build_server
from bizon_forge.validators import (
    agent_todo,
    catalog,
    checklist,
    destination_syntax,
    formatting,
    live,
    registered,
    runtime,
    traps,
)
from bizon_forge.workspace import Settings
from tests.conftest import REPO

THROWAWAY = """
from bizon_forge.validators.catalog import Check, static
from bizon_forge.findings import passed


@static(
    Check(
        "trap.throwaway",
        "Traps",
        "The throwaway check of test_catalog holds.",
        "A test shows what one declaration brings.",
        "Nothing to fix.",
        limits="Judges nothing.",
        origin="facts",
    )
)
def throwaway(code):
    return passed("trap.throwaway", f"judged {code.name}")
"""


@pytest.fixture
def one_more_check(tmp_path, monkeypatch):
    """A module declaring one check, added to the catalog's modules for this test only."""
    (tmp_path / "forge_throwaway_check.py").write_text(textwrap.dedent(THROWAWAY))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(catalog, "MODULES", (*catalog.MODULES, "forge_throwaway_check"))
    return "trap.throwaway"


ITEM = (
    "- [ ] `trap.throwaway`: The throwaway check of test_catalog holds. *A trap bizon's guide misses.*\n"
    "  *Limits:* Judges nothing.\n"
    "  *Why:* A test shows what one declaration brings. *Fix:* Nothing to fix.\n"
)


def test_a_declared_function_is_in_the_catalog_and_is_run(one_more_check):
    import forge_throwaway_check

    assert catalog.CHECKS[-1] is catalog.BY_ID[one_more_check]
    assert catalog.ORDER[one_more_check] == len(catalog.CHECKS) - 1
    assert catalog.STATIC[-1] is forge_throwaway_check.throwaway  # validate_destination runs every static check
    assert catalog.BY_ID[one_more_check].limits == "Judges nothing."


def test_a_declared_function_is_in_readmes_section(one_more_check, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# x\n\n<!-- checklist:start -->\nold\n<!-- checklist:end -->\n")
    assert catalog.write_readme_section(readme)
    assert ITEM in readme.read_text()


@pytest.mark.anyio
async def test_a_declared_function_is_in_the_checklist_resource(one_more_check):
    from mcp import Client

    async with Client(build_server(Settings())) as client:
        checklist = await client.read_resource("bizon-forge://checklist")
    assert ITEM in checklist.contents[0].text


def test_the_real_catalog_is_untouched_by_the_throwaway_check():
    assert "trap.throwaway" not in catalog.BY_ID


def test_a_check_declared_twice_is_refused(tmp_path, monkeypatch):
    (tmp_path / "forge_twice_check.py").write_text(
        textwrap.dedent(THROWAWAY).replace("trap.throwaway", "source.syntax")
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ValueError, match="declared twice: source.syntax"):
        catalog.collect((*catalog.MODULES, "forge_twice_check"))


def _probe_source(name: str) -> ast.Module:
    return ast.parse((REPO / "validators" / "probes" / name).read_text())


def _ids(fn) -> list[str]:
    return [c.id for c in catalog.declared(fn)]


def test_the_data_suite_is_declared_once_in_the_suite_probe_and_read_from_there():
    """suite_probe.py runs in the workspace's Python and imports nothing of bizon_forge: its CASES are the data
    suite's declarations, read by the catalog; each names a function of the probe that runs it."""
    cases = catalog.data_suite()
    probe_ids = [case["id"] for case in cases]
    assert probe_ids == _ids(runtime.suite) == list(catalog.DATA)
    defined = {n.name for n in _probe_source("suite_probe.py").body if isinstance(n, ast.FunctionDef)}
    assert [case["run"] for case in cases if case["run"] not in defined] == []
    for case, check in zip(cases, catalog.declared(runtime.suite), strict=True):
        assert (check.what, check.why, check.fix, check.limits) == (
            case["what"],
            case["why"],
            case["fix"],
            case.get("limits", ""),
        )


def test_the_contract_probe_declares_its_steps_in_their_order():
    steps = [
        ast.literal_eval(call.args[2])
        for call in ast.walk(_probe_source("contract_probe.py"))
        if isinstance(call, ast.Call) and getattr(call.func, "id", None) == "_step"
    ]
    assert steps == [step for step, _, _ in runtime.PROBE_STEPS]
    assert [id for _, id, _ in runtime.PROBE_STEPS] == _ids(runtime.probe) == list(runtime.RUNTIME)


def test_the_functions_answering_several_checks_declare_exactly_those():
    assert sorted(id for id, _, _ in runtime.SMOKE_RUNS) == sorted(_ids(runtime.smoke))
    assert _ids(formatting.check) == ["format.ruff_format", "format.ruff_check"]
    assert _ids(live.secrets_check) == ["live.bizon_secrets_check"]
    assert _ids(runtime.destination_tests) == ["tests.destination"]
    assert _ids(runtime.bizon_suite) == ["tests.bizon_suite"]


def test_a_check_reports_through_its_declaration_with_its_id_and_its_fix():
    check = catalog.SOURCES.by_id["tests.source"]
    failure = check.fail("the tests failed", output="x" * 1000, log="logs/tests.log")
    assert (failure.id, failure.status, failure.hint, failure.log) == (check.id, "fail", check.fix, "logs/tests.log")
    assert failure.excerpt and len(failure.excerpt) == EXCERPT_CHARS  # the tool's output, trimmed to its end
    assert check.fail("the tests failed", hint="Run them.").hint == "Run them."
    assert check.warn("slow tests").hint == check.fix
    assert check.passed() == passed(check.id, "ok")
    assert check.skip("Not run.", "src.tests_present").blocked_by == "src.tests_present"
    assert check.unmet({}) is None  # it requires nothing


# -- a check's id is typed once: in its declaration ---------------------------------------------------------

# The shipped code (pyproject's package-dir), less the scripts run in the workspace's interpreter: they cannot
# import a declaration (suite_probe.py's CASES are the data suite's declarations; the test above holds them).
SHIPPED = ("bizon_forge", "server", "validators")
NOT_JUDGED = ("validators/probes/*",)


def id_literals(source: str, ids: set[str]) -> list[tuple[int, str]]:
    """(line, id) of every string literal equal to a check id, except the first argument of a Check(...)."""
    tree = ast.parse(source)
    declaring = {
        id(node.args[0])
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Check" and node.args
    }
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and node.value in ids and id(node) not in declaring
    ]


def test_a_check_id_typed_outside_its_declaration_is_found():
    source = textwrap.dedent(
        """
        X = Check("source.syntax", "Source", "what", "why", "fix", explained_by=("checklist.init_file",))
        def f(code):
            return failed("source.syntax", "broken") if code else X.passed()
        NOTE = "source.syntax is named in a longer text, which is no id"
        """
    )
    assert id_literals(source, {"source.syntax", "checklist.init_file"}) == [
        (2, "checklist.init_file"),
        (4, "source.syntax"),
    ]


def test_no_check_id_is_a_bare_literal_outside_its_declaration():
    """A check reports through its declaration (CHECK.fail(...), CHECK.id): its id is typed once."""
    ids = {c.id for c in (*catalog.CHECKS, *catalog.SOURCES.checks)}
    found = []
    for folder in SHIPPED:
        for path in sorted((REPO / folder).rglob("*.py")):
            rel = path.relative_to(REPO).as_posix()
            if any(fnmatch(rel, pattern) for pattern in NOT_JUDGED):
                continue
            found += [f"{rel}:{line}: {id}" for line, id in id_literals(path.read_text(), ids)]
    assert found == []


def test_a_check_declared_as_a_constant_is_named_after_its_id():
    """runtime names some of the data suite's checks by the probe's order: a case moved there is caught here."""
    modules = (destination_syntax, checklist, registered, traps, agent_todo, formatting, live, runtime)
    named = {(name, value.id) for m in modules for name, value in vars(m).items() if isinstance(value, catalog.Check)}
    assert sorted(name for name, id in named if name != id.replace(".", "_").upper()) == []
    constants = {id for _, id in named}
    assert [c.id for c in catalog.CHECKS if c.id not in constants and c.id not in catalog.DATA] == []
