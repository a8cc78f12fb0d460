"""validate_source proves a source: a hand-written good one passes `full` on both bizon trees, and each Step 4
mistake planted in it fails with a finding that names it (tests/sources/plant.py). The static checks each have a
planted case that fails them alone."""

import json
import re
import socket
import subprocess
import sys

import pytest

from bizon_forge.findings import Refused
from bizon_forge.validators import catalog
from bizon_forge.validators.fakes import mock_api
from bizon_forge.validators.source_code import SourceCode
from bizon_forge.validators.source_validation import validate_source
from tests.conftest import REPO, VERSIONS
from tests.sources.plant import BUGS, NAME, SOURCE, SPEC, install, plant

# bug -> the check whose failure names it (the finding's message says it in words too)
NAMED = {
    "pagination_never_ends": ("pull.pagination_ends", "pagination never ends"),
    "last_page_lost": ("pull.pagination_ends", "the last page(s) are lost"),
    "duplicate_id_across_pages": ("pull.ids_unique", "duplicate ids"),
    "swallowed_http_error": ("pull.http_errors_raise", "swallowed HTTP error"),
    "no_retry_on_429": ("pull.retry_429", "no retry on 429"),
    # the contract's well-behaved API passes these; only a case of the mock shows them
    "last_page_records_dropped": ("api.last_page_with_records", "the last page's records are lost"),
    "short_page_taken_for_last": ("api.short_pages", "the last pages are lost"),
    "outage_ends_the_stream": ("api.outage", "ended green"),
}

GET_CALL = 'response = self.session.get(f"{self.config.base_url}/items", params=params, timeout=30)'
# static check -> [(old, new)] in SOURCE; "" as old: the text appended
STATIC = {
    "src.syntax": [("", "\ndef broken(:\n")],
    "src.config_base": [("class ForgeApiSourceConfig(SourceConfig):", "class ForgeApiSourceConfig:")],
    "src.source_base": [("class ForgeApiSource(AbstractSource):", "class ForgeApiSource:")],
    "src.methods": [("def get_total_records_count(self)", "def total_count(self)")],
    "src.first_page": [
        ("        if pagination:\n", "        if pagination is None:\n            pass\n        else:\n"),
    ],
    "src.pagination_dict": [("if cursor else {})", "if cursor else None)")],
    "src.data_dict": [("data=row)", "data=str(row))")],
    "src.errors_raised": [
        (
            f"        {GET_CALL}\n",
            f"        try:\n            {GET_CALL}\n        except Exception:\n"
            "            return SourceIteration(records=[], next_pagination={})\n",
        )
    ],
    "src.retries_http": [
        (
            '        for scheme in ("http://", "https://"):\n            self.session.mount(scheme,',
            '        if True:\n            self.session.mount("https://",',
        )
    ],
    "src.timeout": [(", params=params, timeout=30)", ", params=params)")],
    "src.secrets_not_logged": [
        ("        params = {", '        print(f"auth: {self.config.authentication}")\n        params = {')
    ],
}


@pytest.fixture(scope="module")
def trees(tmp_path_factory, pristine):
    import shutil

    made = {}
    for version in VERSIONS:
        root = tmp_path_factory.mktemp("source") / f"ws-{version}"
        shutil.copytree(pristine(version), root, symlinks=True)
        made[version] = root
    return made


def _static(ws) -> dict:
    code = SourceCode.load(ws, NAME)
    return {f.id: f for f in (check(code) for check in catalog.SOURCES.static)}


def test_source_ids_are_their_own(tmp_path):
    dest = {c.id for c in catalog.CHECKS}
    src = [c.id for c in catalog.SOURCES.checks]
    assert len(src) == len(set(src)) and not dest & set(src)
    assert all(c.kind == "source" for c in catalog.SOURCES.checks)
    text = catalog.checklist_markdown()
    assert "`pull.every_record_once`" in text and "`src.retries_http`" in text and "`source.syntax`" in text


def test_every_check_a_source_check_cites_exists():
    """A checklist that sends the agent to a check that does not exist (pull.survives_5xx did) is a dead end."""
    known = {c.id for c in catalog.SOURCES.checks}
    for c in catalog.SOURCES.checks:
        text = " ".join((c.what, c.why, c.fix, c.limits))
        cited = set(re.findall(r"\b(?:pull|api|src|run|tests|discovery|live)\.[a-z0-9_]*[a-z0-9]", text))
        assert cited <= known, (c.id, cited - known)
        assert set(c.requires) | set(c.explained_by) <= known | {c.id for c in catalog.CHECKS}, c.id
    cases = [c.id for c in catalog.SOURCES.checks if c.id.startswith("api.")]
    assert cases == [f"api.{case}" for case in mock_api.CASES]  # one check per case of the mock, in its order
    assert {c.level for c in catalog.SOURCES.checks if c.id.startswith("live.")} == {"live"}


def test_every_static_check_has_a_case_that_fails_it_alone(trees):
    root = trees["0.6.4"]
    ws = install(root)
    good = _static(ws)
    assert [f.id for f in good.values() if f.status != "pass"] == []
    statics = {c.id for fn in catalog.SOURCES.static for c in catalog.declared(fn)}
    assert statics - set(STATIC) == {"src.layout", "src.tests_present"}  # those two below: a file removed
    path = root / SOURCE
    original = path.read_text()
    try:
        for id, edits in STATIC.items():
            text = original
            for old, new in edits:
                assert old == "" or text.count(old) == 1, (id, old)
                text = text + new if old == "" else text.replace(old, new)
            path.write_text(text)
            failing = [f.id for f in _static(ws).values() if f.status == "fail"]
            assert failing == [id], (id, failing)
        path.unlink()
        assert [f.id for f in _static(ws).values() if f.status == "fail"] == ["src.layout"]
    finally:
        path.write_text(original)
    tests = root / f"tests/connectors/sources/{NAME}/test_forge_api_source.py"
    kept = tests.read_text()
    tests.unlink()
    try:
        assert [f.id for f in _static(ws).values() if f.status == "fail"] == ["src.tests_present"]
        # a trial's placeholder: a test file that never imports the source passed, and so did four lost-record bugs
        tests.write_text("def test_placeholder():\n    assert True\n")
        assert [f.id for f in _static(ws).values() if f.status == "fail"] == ["src.tests_present"]
    finally:
        tests.write_text(kept)


def test_failing_source_tests_are_named_in_the_finding():
    """A trial's every planted bug failed tests.source, whose message named no test: which behaviour broke is what
    the agent needs."""
    from bizon_forge.validators.source_validation import _failed_tests

    out = "..F.F\nFAILED tests/x/test_s.py::test_last_page - AssertionError\nFAILED tests/x/test_s.py::test_token\n"
    assert _failed_tests(out) == ": test_last_page, test_token"
    assert _failed_tests("1 passed") == ""


@pytest.mark.slow  # real bizon runs: `make test-fast` leaves them out
@pytest.mark.parametrize("version", VERSIONS)
def test_a_good_source_passes_full_and_each_planted_mistake_fails_it_by_name(trees, version):
    """The plants on 0.6.4; 0.5.2's are planted in a rendered source (test_validate_source_rendered)."""
    assert set(NAMED) == set(BUGS)
    root = trees[version]
    ws = install(root)
    result = validate_source(ws, NAME, "full", verbose=True)
    by_id = {f.id: f for f in result.findings}
    assert result.ok, result.summary
    assert by_id["run.bizon_run"].status == "pass" and "23 records landed" in by_id["run.bizon_run"].message
    assert by_id["pull.retry_429"].status == by_id["pull.retry_5xx"].status == "pass"
    assert by_id["discovery.stream_list"].status == "pass"
    assert "level='live'" in result.next, result.next  # after a green full: the bounded read of the real API
    cases = [f for f in result.findings if f.id.startswith("api.")]
    assert cases and all(f.status == "pass" for f in cases if f.id[4:] in mock_api.cases_for(SPEC.model_dump())), cases
    for bug, (id, words) in NAMED.items() if version == "0.6.4" else ():
        good = plant(root, bug)
        try:
            result = validate_source(ws, NAME, "full")
        finally:
            (root / SOURCE).write_text(good)
        named = [f for f in result.findings if f.id == id and f.status == "fail"]
        assert not result.ok and named, (bug, result.summary)
        assert words in named[0].message, (bug, named[0].message)


def test_recorded_pages_are_served_instead_of_the_generated_ones(trees):
    root = trees["0.6.4"]
    ws = install(root)
    pages = root / "recorded" / "items"
    pages.mkdir(parents=True, exist_ok=True)
    for n, (ids, cursor) in enumerate([([1, 2], "p2"), ([3, 4], "p3"), ([5], None)], 1):
        body = {"data": [{"id": f"r{i}", "name": f"saved {i}"} for i in ids], "next_cursor": cursor}
        (pages / f"page-{n:03d}.json").write_text(json.dumps(body))
    result = validate_source(ws, NAME, "fast", verbose=True, recorded="recorded")
    by_id = {f.id: f for f in result.findings}
    assert result.ok, result.summary
    assert "5 records, each once" in by_id["pull.every_record_once"].message
    with pytest.raises(Refused):
        validate_source(ws, NAME, "fast", recorded="../elsewhere")


def test_the_live_level_is_the_live_read_and_an_unknown_level_names_it(trees):
    ws = install(trees["0.6.4"])
    with pytest.raises(Refused) as live:  # the hand-written source has no example config to read the API with
        validate_source(ws, NAME, "live")
    assert [f.id for f in live.value.findings] == ["live.config"], live.value
    with pytest.raises(Refused) as bad:
        validate_source(ws, NAME, "quick")
    assert [f.id for f in bad.value.findings] == ["validate.bad_level"] and "'live'" in bad.value.findings[0].hint


def test_a_source_refused_when_missing(trees):
    ws = install(trees["0.6.4"])
    with pytest.raises(Refused, match=""):
        validate_source(ws, "no_such_source", "fast")


def test_the_checks_reach_only_this_machine():
    """loopback_only: what the probe and the real run load first refuses any address but 127.0.0.1/::1."""
    code = (
        f"import sys; sys.path.insert(0, {str(REPO / 'validators' / 'probes')!r}); import loopback_only, socket\n"
        "s = socket.socket()\n"
        "try:\n    s.connect(('192.0.2.1', 443))\nexcept ConnectionRefusedError as e:\n    print('refused', e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30).stdout
    assert out.startswith("refused bizon-forge"), out
    assert socket  # the guard is per process: this one is untouched


@pytest.mark.anyio
@pytest.mark.slow  # a stdio server and a CLI subprocess, each validating
async def test_over_mcp_and_the_cli_validate_source_answers_the_same(trees):
    """The tool over MCP and `bizon-forge validate NAME` (a name only a source has) run the same checks."""
    from mcp import Client

    from bizon_forge.server.app import build_server
    from bizon_forge.workspace import Settings

    root = trees["0.6.4"]
    install(root)
    async with Client(build_server(Settings.from_paths([str(root)]))) as client:
        answer = await client.call_tool("validate_source", {"name": NAME})
    assert answer.structured_content["ok"], answer.structured_content
    counts = answer.structured_content["summary"].split(" in ")[0]
    assert counts == "fast: 25 passed, 1 skipped (pull.incremental)"
    cli = [sys.executable, "-m", "bizon_forge", "validate", NAME, "--workspace", str(root), "--json"]
    out = subprocess.run(cli, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert json.loads(out.stdout)["summary"].split(" in ")[0] == counts


@pytest.mark.anyio
async def test_a_refused_validate_source_names_the_source_tools_and_claims_no_level(trees):
    """An unknown name asked at level=full once answered `"level": "fast"`; a described, unrendered one now says to
    render it, with a `next`."""
    from mcp import Client

    from bizon_forge.server.app import build_server
    from bizon_forge.source_describe import describe_source, parse_spec
    from bizon_forge.workspace import Settings, resolve

    root = trees["0.6.4"]
    ws = resolve(None, Settings.from_paths([str(root)]))
    spec = {"name": "early_src", "base_url": "https://api.test", "streams": [{"name": "t", "endpoint": "/t"}]}
    assert describe_source(ws, parse_spec(spec)).ok
    async with Client(build_server(Settings.from_paths([str(root)]))) as client:
        unknown = (await client.call_tool("validate_source", {"name": "nope_src", "level": "full"})).structured_content
        early = (await client.call_tool("validate_source", {"name": "early_src"})).structured_content
    assert not unknown["ok"] and "level" not in unknown
    assert unknown["findings"][0]["id"] == "validate.not_found"
    assert "describe_source" in unknown["findings"][0]["hint"] and unknown["next"].startswith("describe_source(")
    assert not early["ok"] and early["next"] == "render_source(name='early_src')"
    assert "render_source" in early["findings"][0]["hint"] and "destination" not in json.dumps(early)
