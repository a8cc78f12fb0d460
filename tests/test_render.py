"""render_destination: dry runs write nothing, edits are never clobbered silently, output is ruff-clean."""

import subprocess

from ruff.__main__ import find_ruff_bin

from bizon_forge import workspace
from bizon_forge.describe import describe_target
from bizon_forge.render import render_destination
from bizon_forge.spec.destination import DestinationSpec, FieldSpec
from tests.conftest import snapshot

SRC = "bizon/connectors/destinations/acme/src"
FIELDS = [
    FieldSpec(name="host", required=True, description="Server host"),
    FieldSpec(name="port", type="int", default=5432, description="Server port"),
    FieldSpec(name="password", required=True, description="Password", secret=True),
    FieldSpec(name="tables", type="list[str]", default=["a", "b"]),
    FieldSpec(name="options", type="dict"),
]


def described(root) -> workspace.Workspace:
    ws = workspace.resolve(None, workspace.Settings.from_paths([str(root)]))
    assert describe_target(ws, DestinationSpec(name="acme", fields=FIELDS)).ok
    return ws


def test_dry_run_returns_the_files_and_writes_nothing(make_tree):
    root = make_tree("0.6.4")
    ws = described(root)
    before = snapshot(root)
    result = render_destination(ws, "acme", dry_run=True, content=True)
    assert snapshot(root) == before
    assert result.ok
    files = {f.path: f for f in result.files}
    assert {f"{SRC}/config.py", f"{SRC}/destination.py", f"{SRC}/__init__.py"} <= set(files)
    assert {f.action for f in result.files} == {"would_create"}
    assert "name: Literal[DestinationTypes.ACME]" in files[f"{SRC}/config.py"].content


def test_an_edited_file_is_refused_unless_overwrite_and_then_the_answer_has_a_diff(make_tree):
    root = make_tree("0.6.4")
    ws = described(root)
    assert render_destination(ws, "acme").ok
    assert {f.action for f in render_destination(ws, "acme").files} == {"unchanged"}

    destination = root / SRC / "destination.py"
    destination.write_text(destination.read_text() + "\n# the agent's own work\n")
    before = snapshot(root)
    refused = render_destination(ws, "acme")
    assert snapshot(root) == before
    assert not refused.ok and [f.id for f in refused.findings] == ["render.would_overwrite"]
    assert [f.path for f in refused.files if f.action == "refused"] == [f"{SRC}/destination.py"]

    replaced = render_destination(ws, "acme", overwrite=True)
    assert replaced.ok
    (entry,) = [f for f in replaced.files if f.path == f"{SRC}/destination.py"]
    assert entry.action == "updated" and "-# the agent's own work" in entry.diff
    assert "the agent's own work" not in destination.read_text()


def test_a_file_the_agent_wrote_before_rendering_is_not_clobbered(make_tree):
    root = make_tree("0.6.4")
    ws = described(root)
    (root / SRC).mkdir(parents=True)
    (root / SRC / "config.py").write_text("# written by hand\n")
    before = snapshot(root)
    result = render_destination(ws, "acme")
    assert snapshot(root) == before
    assert [f.id for f in result.findings] == ["render.would_overwrite"]


def test_rendered_files_are_ruff_clean_under_the_workspaces_config(tree):
    ws = described(tree)
    result = render_destination(ws, "acme")
    py = [f.path for f in result.files if f.path.endswith(".py")]
    assert len(py) >= 3
    for cmd in (["check", "--no-cache"], ["format", "--check", "--no-cache"]):
        done = subprocess.run([find_ruff_bin(), *cmd, *py], cwd=tree, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr


def test_a_dry_run_answers_a_summary_and_content_true_the_files_a_real_render_writes(make_tree):
    root = make_tree("0.6.4")
    ws = workspace.resolve(None, workspace.Settings.from_paths([str(root)]))
    assert describe_target(ws, DestinationSpec(name="warehouse", recipe="sql")).ok
    before = snapshot(root)
    summary = render_destination(ws, "warehouse", dry_run=True)
    assert len(summary.model_dump_json(exclude_none=True)) < 6_000  # the whole files ran to ~49 KB
    assert all(f.content is None and f.diff is None and f.action == "would_create" for f in summary.files)
    assert all(f.lines is not None for f in summary.files)
    whole = render_destination(ws, "warehouse", dry_run=True, content=True)
    assert snapshot(root) == before
    assert render_destination(ws, "warehouse").ok
    for f in whole.files:
        assert f.content == (root / f.path).read_text(), f.path
        assert f.lines == len(f.content.splitlines())


def test_a_dry_run_over_rendered_files_answers_a_diff_of_what_would_change(make_tree):
    root = make_tree("0.6.4")
    ws = described(root)
    assert render_destination(ws, "acme").ok
    more = [*FIELDS, FieldSpec(name="region", default="eu", description="Region")]
    assert describe_target(ws, DestinationSpec(name="acme", fields=more)).ok
    result = render_destination(ws, "acme", dry_run=True)
    files = {f.path: f for f in result.files}
    config = files[f"{SRC}/config.py"]
    assert config.action == "would_update" and config.content is None
    assert "+" in config.diff and "region" in config.diff and config.diff.startswith(f"--- a/{SRC}/config.py")
    assert files[f"{SRC}/__init__.py"].action == "unchanged" and files[f"{SRC}/__init__.py"].diff is None
