"""A destination's client libraries: declared, recorded as the tree's extra and in its import guard exactly and
reversibly (with the three registrations), on real bizon trees."""

import tomllib

import pytest

from bizon_forge import dependencies
from bizon_forge.dependencies import IMPORT_GUARD, PYPROJECT, guard_modules
from bizon_forge.describe import describe_target
from bizon_forge.inspection import inspect_workspace
from bizon_forge.registrations import apply_registrations, remove_destination
from bizon_forge.render import render_destination
from bizon_forge.spec.destination import DestinationSpec
from tests.conftest import snapshot, stdio_client


def records(root) -> dict[str, bytes]:
    return {rel: (root / rel).read_bytes() for rel in (PYPROJECT, IMPORT_GUARD)}


def extras(root) -> dict:
    return tomllib.loads((root / PYPROJECT).read_text())["project"]["optional-dependencies"]


def described(ws, name: str, deps: list[str], recipe: str = "sql"):
    result = describe_target(ws, DestinationSpec(name=name, recipe=recipe, dependencies=deps))
    assert result.ok, result.findings
    return result


@pytest.mark.parametrize(
    ("entry", "recipe", "expected"),
    [
        ("mysql+pymysql://user:pw@db:3306/shop", "sql", ["pymysql>=1.1"]),
        ("mariadb+pymysql://", "sql", ["pymysql>=1.1"]),
        ("postgresql://u@h/db", "sql", ["psycopg2-binary>=2.9.9"]),
        ("duckdb:///x.duckdb", "sql", ["duckdb-engine>=0.13"]),
        ("sqlite:///out.db", "sql", []),  # Python has its driver
        ("redis>=5", "custom", ["redis>=5"]),
        ("psycopg[binary]>=3.1,<4", "custom", ["psycopg[binary]>=3.1,<4"]),
    ],
)
def test_a_dependency_is_a_requirement_or_under_sql_a_url_naming_its_driver(entry, recipe, expected):
    assert dependencies.resolve([entry], recipe) == (expected, [])


@pytest.mark.parametrize(
    ("entry", "recipe", "finding"),
    [
        ("mysql+pymysql://", "http", "spec.dependency.url"),
        ("postgresql+asyncpg://", "sql", "spec.dependency.unknown_scheme"),
        ("nosuchdb://h", "sql", "spec.dependency.unknown_scheme"),
        ("--index-url=http://evil/simple", "custom", "spec.dependency.invalid"),
        ("redis; os.system('x')", "custom", "spec.dependency.invalid"),
        ("./local/path", "custom", "spec.dependency.invalid"),
        ("pkg @ https://example.com/x.whl", "custom", "spec.dependency.invalid"),
    ],
)
def test_what_is_not_a_requirement_gets_a_named_finding_and_nothing_is_stored(ws, entry, recipe, finding):
    result = describe_target(ws, DestinationSpec(name="acme", recipe=recipe, dependencies=[entry]))
    assert not result.ok and finding in [f.id for f in result.findings if f.status == "fail"]
    assert not (ws.state_dir / "specs" / "acme.json").exists()


def test_the_driver_is_recorded_as_an_extra_and_in_the_import_guard_and_removal_gives_back_the_bytes(ws):
    before = records(ws.root)
    described(ws, "maria", ["mysql+pymysql://"])
    assert render_destination(ws, "maria").ok
    first = apply_registrations(ws, "maria")
    assert first.ok, first.findings
    assert first.registrations["extra"] == "added" and first.registrations["import_guard"] == "added"
    assert first.next == "validate_destination(name='maria')"  # pymysql is in this interpreter already
    assert extras(ws.root)["maria"] == ["pymysql>=1.1"]
    assert "pymysql" in guard_modules((ws.root / IMPORT_GUARD).read_text())
    diffs = {e.path: e.diff for e in first.edits}
    assert '+maria = ["pymysql>=1.1"]\n' in diffs[PYPROJECT] and '+    "pymysql",\n' in diffs[IMPORT_GUARD]

    again = apply_registrations(ws, "maria")
    assert again.ok and not again.edits and again.registrations["extra"] == "already_present"

    # The agent changes its mind: the extra follows; psycopg2 was listed by bizon already and stays listed.
    described(ws, "maria", ["postgresql://", "redis>=5"])
    changed = apply_registrations(ws, "maria")
    assert changed.ok and changed.registrations["extra"] == "updated"
    assert extras(ws.root)["maria"] == ["psycopg2-binary>=2.9.9", "redis>=5"]
    listed = guard_modules((ws.root / IMPORT_GUARD).read_text())
    assert "pymysql" not in listed and "redis" in listed and listed.count("psycopg2") == 1

    removed = remove_destination(ws, "maria", delete_files=True)
    assert {"extra", "import_guard"} <= set(removed.removed)
    assert records(ws.root) == before


def test_removing_a_name_bizon_forge_did_not_make_leaves_bizons_extra_alone(ws):
    before = snapshot(ws.root)
    assert "datadog" in extras(ws.root)
    result = remove_destination(ws, "datadog")
    assert result.ok and "extra" not in result.removed
    assert snapshot(ws.root) == before


def test_a_dry_run_shows_the_record_edits_and_writes_nothing(ws):
    described(ws, "maria", ["pymysql>=1.1"], recipe="custom")
    assert render_destination(ws, "maria").ok
    before = snapshot(ws.root)
    dry = apply_registrations(ws, "maria", dry_run=True)
    assert dry.ok and {PYPROJECT, IMPORT_GUARD} <= {e.path for e in dry.edits}
    assert snapshot(ws.root) == before


def test_an_extra_of_that_name_written_by_hand_over_lines_is_replaced_and_the_rest_kept(ws):
    text = (ws.root / PYPROJECT).read_text()
    hand = text.replace("[project.scripts]", 'maria = [\n    "pymysql",\n]\n\n[project.scripts]')
    (ws.root / PYPROJECT).write_text(hand)
    described(ws, "maria", ["pymysql>=1.1"], recipe="custom")
    assert render_destination(ws, "maria").ok
    assert apply_registrations(ws, "maria").ok
    # tomlkit (codemods.set_extra) puts the recorded line where the hand-written one was, every other byte kept
    want = text.replace("[project.scripts]", 'maria = ["pymysql>=1.1"]\n\n[project.scripts]')
    assert (ws.root / PYPROJECT).read_text() == want


def test_a_crlf_tree_keeps_its_line_endings_and_gets_back_its_bytes(ws):
    for rel in (PYPROJECT, IMPORT_GUARD):
        path = ws.root / rel
        path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    before = records(ws.root)
    described(ws, "maria", ["pymysql>=1.1"], recipe="custom")
    assert render_destination(ws, "maria").ok
    assert apply_registrations(ws, "maria").ok
    for rel in (PYPROJECT, IMPORT_GUARD):
        raw = (ws.root / rel).read_bytes()
        assert raw.count(b"\n") == raw.count(b"\r\n"), rel
    remove_destination(ws, "maria")
    assert records(ws.root) == before


def test_inspect_reports_the_interpreter_and_each_client_library(ws):
    described(ws, "maria", ["pymysql>=1.1", "bizon-forge-test-absent>=1"], recipe="custom")
    found = inspect_workspace(ws)
    runner = found.interpreter
    assert runner.usable and runner.chosen_by == "bizon-forge's own" and runner.version
    assert set(runner.libraries) == {"pymysql>=1.1"} and runner.missing == ["bizon-forge-test-absent>=1"]
    assert "install.missing" in [f.id for f in found.findings]
    assert found.run.endswith("-m bizon.cli.main run FILE")


@pytest.mark.slow
def test_checks_on_sqlite_for_a_server_destination_say_what_a_green_proves(ws):
    from bizon_forge.validators import validate_destination

    for name, deps in (("maria", ["mysql+pymysql://"]), ("lite", [])):
        described(ws, name, deps)
        assert render_destination(ws, name).ok and apply_registrations(ws, name).ok
    maria = {f.id: f for f in validate_destination(ws, "maria", verbose=True).findings}["live.check_config"]
    assert maria.status == "warn" and "proves the code on SQLite, not on mysql" in maria.message
    lite = {f.id: f for f in validate_destination(ws, "lite", verbose=True).findings}["live.check_config"]
    assert lite.status == "pass"


@pytest.mark.anyio
async def test_install_dependencies_takes_a_sources_name_over_the_real_tool(make_tree):
    """A source's spec declares its libraries too: the tool finds the source by a name only it has, or by kind when a
    destination shares the name, and installs into the workspace's Python (pymysql is in it already)."""
    root = make_tree("0.6.4")
    spec = {
        "name": "tickets",
        "base_url": "https://api.test",
        "streams": [{"name": "t", "endpoint": "/t"}],
        "recipe": "custom",
        "dependencies": ["pymysql>=1.1"],
    }
    async with stdio_client(root) as client:
        assert (await client.call_tool("describe_source", {"spec": spec})).structured_content["ok"]
        only_a_source = (await client.call_tool("install_dependencies", {"name": "tickets"})).structured_content
        assert (await client.call_tool("describe_target", {"name": "tickets", "recipe": "file"})).structured_content[
            "ok"
        ]
        both = (await client.call_tool("install_dependencies", {"name": "tickets"})).structured_content
        chosen = (
            await client.call_tool("install_dependencies", {"name": "tickets", "kind": "source"})
        ).structured_content
        odd = await client.call_tool("install_dependencies", {"name": "tickets", "kind": "sink"})
    assert only_a_source["ok"] and [f["id"] for f in only_a_source["findings"]] == ["install.done"], only_a_source
    assert "pymysql>=1.1 already installed" in only_a_source["findings"][0]["message"]
    assert only_a_source["next"] == "validate_source(name='tickets')"
    # A destination of that name is the default (as before sources had libraries); kind reaches the source.
    assert [f["id"] for f in both["findings"]] == ["install.nothing"] and both["next"].startswith(
        "validate_destination"
    )
    assert chosen == only_a_source
    assert odd.is_error and [f["id"] for f in odd.structured_content["findings"]] == ["install.bad_kind"]


@pytest.mark.slow  # validate_source fast runs at the end
def test_generate_installs_a_sources_libraries_before_validating(make_tree):
    from bizon_forge import workspace
    from bizon_forge.pipeline import generate_source

    ws = workspace.resolve(None, workspace.Settings.from_paths([str(make_tree("0.6.4"))]))
    spec = {
        "name": "tickets",
        "base_url": "https://api.test",
        "streams": [{"name": "t", "endpoint": "/t"}],
        "dependencies": ["pymysql>=1.1"],
    }
    result = generate_source(ws, spec)
    assert [(s.step, s.ok) for s in result.steps][:3] == [("describe", True), ("render", True), ("install", True)]
    assert [s.step for s in result.steps] == ["describe", "render", "install", "validate"]
