"""The server as clients see it: a real process over stdio, its wire tool list, its start-up cost, the CLI.

The wire tool list is pinned in tests/snapshots/tools.json. After a deliberate change to a tool's name,
arguments, annotations or answer, refresh it with:

    BIZON_FORGE_UPDATE_SNAPSHOTS=1 .venv/bin/python -m pytest tests/test_server.py -k snapshot

and review the diff of tools.json like any other change: it is what every agent reads.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bizon_forge import workspace
from tests.conftest import REPO, stdio_client

pytestmark = pytest.mark.anyio

SNAPSHOT = Path(__file__).parent / "snapshots" / "tools.json"
HEAVY = ("libcst", "jinja2", "polars", "bizon")


async def test_the_wire_tool_list_matches_the_snapshot_and_every_tool_is_annotated(make_tree):
    root = make_tree("0.6.4")
    async with stdio_client(root) as client:
        tools = (await client.list_tools()).tools
    wire = sorted((t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in tools), key=lambda t: t["name"])
    for tool in wire:
        assert tool.get("description"), tool["name"]
        assert tool.get("outputSchema", {}).get("type") == "object", tool["name"]
        hints = tool.get("annotations", {})
        assert {"readOnlyHint", "destructiveHint", "idempotentHint", "openWorldHint"} <= set(hints), tool["name"]
    text = json.dumps(wire, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    if os.environ.get("BIZON_FORGE_UPDATE_SNAPSHOTS"):
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(text)
    assert SNAPSHOT.exists(), "no snapshot yet: run with BIZON_FORGE_UPDATE_SNAPSHOTS=1 (see the module docstring)"
    assert text == SNAPSHOT.read_text(), "the wire tool list changed; refresh the snapshot if that was meant"


async def test_an_unknown_level_is_a_finding_naming_the_allowed_ones_not_the_sdks_error(make_tree):
    root = make_tree("0.6.4")
    async with stdio_client(root) as client:
        listed = {t.name: t.input_schema["properties"].get("level") for t in (await client.list_tools()).tools}
        for tool in ("validate_destination", "validate_source"):
            # still published as the allowed values (a source's live read besides)
            assert listed[tool]["enum"] == ["fast", "full", *(["live"] if tool == "validate_source" else [])]
            result = await client.call_tool(tool, {"name": "acme", "level": "quick"})
            assert result.is_error and result.structured_content, (
                result.content
            )  # refused: its findings, not pydantic's
            answer = result.structured_content
            assert answer["ok"] is False and [f["id"] for f in answer["findings"]] == ["validate.bad_level"], answer
            assert "'fast'" in answer["findings"][0]["hint"] and "'full'" in answer["findings"][0]["hint"]
            assert answer.get("level") is None, answer  # refused before any check: no level ran


def test_start_up_imports_none_of_the_heavy_libraries():
    code = (
        "import sys\nfrom bizon_forge.server.app import build_server\n"
        "from bizon_forge.workspace import Settings\n"
        "build_server(Settings())\nprint(','.join(m for m in sys.argv[1:] if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code, *HEAVY], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""


async def test_workspaces_the_server_may_not_or_cannot_use_get_their_finding(make_tree, tmp_path):
    root = make_tree("0.6.4")
    roots = root.parent  # the server may touch everything under tmp_path/roots
    (roots / "plain").mkdir()
    (roots / "notes.txt").write_text("x")
    (tmp_path / "outside").mkdir()
    cases = {
        str(tmp_path / "outside"): "workspace.outside_roots",
        str(roots / "missing"): "workspace.missing",
        str(roots / "plain"): "workspace.not_bizon",
        str(roots / "notes.txt"): "workspace.not_a_directory",
    }
    async with stdio_client(roots) as client:
        for path, expected in cases.items():
            result = await client.call_tool("inspect_workspace", {"workspace": path})
            assert result.is_error and result.structured_content, result  # refused, with its finding
            answer = result.structured_content
            assert answer["ok"] is False and [f["id"] for f in answer["findings"]] == [expected], (
                path,
                answer,
            )
        found = await client.call_tool("inspect_workspace", {"workspace": str(root)})
        assert found.structured_content["ok"] and found.structured_content["bizon_version"] == "0.6.4"


@pytest.mark.slow
def test_workspace_init_cli_makes_a_0_5_2_tree(tmp_path):
    target = tmp_path / "old-bizon"
    cli = [sys.executable, "-m", "bizon_forge", "workspace", "init", str(target), "--bizon-version", "0.5.2"]
    done = subprocess.run(cli, capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
    ws = workspace.resolve(str(target), workspace.Settings.from_paths([str(target)]))
    assert ws.bizon_version == "0.5.2" and "logger" in ws.destinations()
    log = subprocess.run(["git", "-C", str(target), "log", "--oneline"], capture_output=True, text=True)
    assert log.stdout.count("\n") == 1 and "bizon 0.5.2" in log.stdout
    assert subprocess.run(["git", "-C", str(target), "status", "--porcelain"], capture_output=True).stdout == b""
    # bizon-forge's own state stays out of the user's history
    (target / ".bizon-forge" / "specs").mkdir(parents=True)
    (target / ".bizon-forge" / "specs" / "acme.json").write_text("{}")
    assert subprocess.run(["git", "-C", str(target), "status", "--porcelain"], capture_output=True).stdout == b""

    again = subprocess.run(cli, capture_output=True, text=True, cwd=REPO)
    assert again.returncode == 2 and "workspace.not_empty" in again.stderr and again.stdout == ""


async def test_every_refusal_is_a_structured_answer_over_the_wire(make_tree, tmp_path):
    """A refused call answers its tool's own result shape with the findings, never a bare tool error: the
    validator's answer carries CheckFindings, and a plain refusal must fit it too."""
    root = make_tree("0.6.4")
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    calls = [
        ("validate_destination", {"name": "nope"}, "validate.not_found"),
        ("validate_destination", {"name": "../x"}, "spec.name.not_identifier"),
        ("validate_destination", {"name": "file", "workspace": str(tmp_path)}, "workspace.outside_roots"),
        ("install_dependencies", {"name": "nope"}, "spec.not_found"),
        ("apply_registrations", {"name": "nope"}, "spec.not_found"),
        ("render_destination", {"name": "nope"}, "spec.not_found"),
        ("remove_destination", {"name": "logger"}, "remove.not_ours"),
    ]
    async with stdio_client(root) as client:
        for tool, args, expected in calls:
            result = await client.call_tool(tool, args)
            assert result.is_error, (tool, result.content)  # could not do what was asked: isError, findings kept
            answer = result.structured_content
            assert answer["ok"] is False and answer["findings"][0]["id"] == expected, (tool, answer)
    # a workspace whose interpreter cannot run bizon: validate answers the one finding, over the wire
    async with stdio_client(root, extra=("--python", str(bare / "bin" / "python"))) as client:
        result = await client.call_tool("validate_destination", {"name": "file"})
        assert result.is_error, result.content
        assert [f["id"] for f in result.structured_content["findings"]] == ["workspace.no_interpreter"]


async def test_describe_target_answers_an_unknown_argument_or_a_wrong_value_as_findings_and_stores_nothing(make_tree):
    """The SDK drops an argument its signature lacks (upsert_key was stored with ok: true) and answers a wrong type
    with pydantic's text; both describe tools answer each as a finding naming it, and store nothing."""
    root = make_tree("0.6.4")
    specs = root / workspace.STATE_DIR
    source = {"name": "acme", "base_url": "https://api.test", "streams": [{"name": "u", "endpoint": "/u"}]}
    async with stdio_client(root) as client:
        unknown = await client.call_tool("describe_target", {"name": "acme", "upsert_key": "id"})
        wrong = await client.call_tool("describe_target", {"name": 7, "recipe": "rm -rf", "fields": [{"nme": "h"}]})
        missing = await client.call_tool("describe_target", {})
        beside = await client.call_tool("describe_source", {"spec": source, "name": "acme"})
        not_a_spec = await client.call_tool("describe_source", {"spec": "acme"})
        answers = [unknown, wrong, missing, beside, not_a_spec]
        # bad arguments: tool errors (isError) answered with their findings, not the SDK's pydantic text
        assert all(r.is_error and r.structured_content for r in answers), [r.content for r in answers]
        assert not specs.exists() or not list(specs.rglob("*.json")), "a refused spec was stored"
        # A list sent as a JSON string (some clients do) is decoded as the SDK decodes it, then parsed.
        decoded = await client.call_tool(
            "describe_target", {"name": "acme", "fields": json.dumps([{"name": "host", "description": "where"}])}
        )
    found = [{(f["id"], f["message"].split(":")[0]) for f in r.structured_content["findings"]} for r in answers]
    assert all(r.structured_content["ok"] is False for r in answers)
    assert found[0] == {("spec.unknown_key", "upsert_key")}
    assert found[1] == {
        ("spec.invalid", "name"),
        ("spec.invalid", "recipe"),
        ("spec.unknown_key", "fields[0].nme"),
        ("spec.invalid", "fields[0].name"),  # missing, and its misspelling named: both in one answer
    }
    assert ("spec.invalid", "name") in found[2] and found[3] == {("spec.unknown_key", "name")}
    assert found[4] == {("spec.not_a_mapping", "The source spec is a str, not an object.")}
    hint = unknown.structured_content["findings"][0]["hint"]
    assert "describe_target's input schema" in hint and unknown.structured_content["next"].startswith("Fix the")
    texts = json.dumps([r.structured_content for r in answers])
    assert "Input should" not in texts and "validation error" not in texts
    assert decoded.structured_content["ok"], decoded.structured_content
    stored = json.loads((root / decoded.structured_content["spec_file"]).read_text())
    assert [f["name"] for f in stored["fields"]] == ["host"]
