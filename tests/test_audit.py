"""The audit trail holds by construction: every call of a tool not annotated read-only leaves its line, whatever the
tool, over a real stdio server; the CLI's validate, install and generate leave theirs too."""

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO, stdio_client

pytestmark = pytest.mark.anyio

SOURCE = {"name": "tickets", "base_url": "http://127.0.0.1:9/v1", "streams": [{"name": "items", "endpoint": "/items"}]}
# One successful call of each tool that is not read-only, in an order that lets each succeed.
CALLS = [
    ("describe_target", {"name": "lake", "recipe": "file"}),
    ("render_destination", {"name": "lake"}),
    ("apply_registrations", {"name": "lake"}),
    ("install_dependencies", {"name": "lake"}),
    ("validate_destination", {"name": "lake", "level": "fast"}),
    ("describe_source", {"spec": SOURCE}),
    ("render_source", {"name": "tickets"}),
    ("validate_source", {"name": "tickets", "level": "fast"}),
    ("remove_destination", {"name": "lake"}),
]


def audit(root) -> list[dict]:
    path = root / ".bizon-forge" / "audit.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


async def test_every_tool_that_is_not_read_only_leaves_an_audit_line_and_no_other_does(make_tree):
    root = make_tree("0.6.4")
    async with stdio_client(root) as client:
        tools = (await client.list_tools()).tools
        writers = {t.name for t in tools if not (t.annotations and t.annotations.read_only_hint)}
        readers = {t.name for t in tools} - writers
        assert writers == {tool for tool, _ in CALLS}, "a tool that is not read-only needs its call here"
        for tool, args in CALLS:
            for reader in sorted(readers):  # between every write, so a stray line would land out of order
                assert (await client.call_tool(reader, {})).structured_content["ok"], reader
            answer = (await client.call_tool(tool, args)).structured_content
            assert answer["ok"], (tool, answer)
        dry = await client.call_tool("render_source", {"name": "tickets", "dry_run": True})
        assert dry.structured_content["ok"]  # a dry run writes nothing and has no line
    lines = audit(root)
    assert [(line["tool"], line["name"], line["who"], line["outcome"]) for line in lines] == [
        (tool, args.get("name", SOURCE["name"]), "stdio", "ok") for tool, args in CALLS
    ]
    by_tool = {line["tool"]: line for line in lines}
    assert by_tool["describe_source"]["written"] == [".bizon-forge/source-specs/tickets.json"]
    assert any(path.endswith("tickets.check.yml") for path in by_tool["render_source"]["written"])
    assert by_tool["validate_source"]["checks"].startswith("fast: ")  # it ran the source's code


def test_the_clis_validate_install_and_generate_leave_audit_lines(make_tree, tmp_path):
    root = make_tree("0.6.4")
    spec = tmp_path / "pond.json"
    spec.write_text(json.dumps({"name": "pond", "recipe": "file"}))
    forge = [sys.executable, "-m", "bizon_forge"]
    where = ["--workspace", str(root)]
    for command in (["generate", str(spec)], ["install", "pond"], ["validate", "pond", "--level", "fast"]):
        done = subprocess.run([*forge, *command, *where], capture_output=True, text=True, cwd=REPO, timeout=600)
        assert done.returncode == 0, (command, done.stdout, done.stderr)
    lines = audit(root)
    assert [(line["tool"], line["name"], line["who"], line["outcome"]) for line in lines] == [
        ("generate", "pond", "cli", "ok"),
        ("install_dependencies", "pond", "cli", "ok"),
        ("validate_destination", "pond", "cli", "ok"),
    ]
    assert lines[0]["checks"].startswith("fast: ") and lines[2]["checks"].startswith("fast: ")
