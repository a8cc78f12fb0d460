"""A check is one function with its declaration: the catalog, README's checklist, the checklist resource and
validate_destination all follow from it; the checks a probe answers in another interpreter are declared in
the probe's order."""

import ast
import textwrap

import pytest

from bizon_forge.findings import EXCERPT_CHARS, passed
from bizon_forge.server.app import build_server
from bizon_forge.validators import catalog, formatting, live, runtime
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


def test_the_data_suite_declares_the_suite_probes_cases_in_its_order():
    """suite_probe.py runs in the workspace's Python and imports nothing of bizon_forge: its CASES name the ids."""
    cases = next(
        n.value
        for n in _probe_source("suite_probe.py").body
        if isinstance(n, ast.AnnAssign) and getattr(n.target, "id", None) == "CASES"
    )
    assert isinstance(cases, ast.Tuple)
    probe_ids = [ast.literal_eval(case.elts[0]) for case in cases.elts if isinstance(case, ast.Tuple)]
    assert probe_ids == _ids(runtime.suite) == list(catalog.DATA)


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
