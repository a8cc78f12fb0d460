"""Workspaces: confinement to the roots, the Python that runs them, and inspect_workspace on both layouts."""

import os
import subprocess
import sys

import pytest

from bizon_forge import workspace
from bizon_forge.describe import describe_target
from bizon_forge.findings import Refused
from bizon_forge.inspection import inspect_workspace
from bizon_forge.render import render_destination
from bizon_forge.source_describe import describe_source, parse_spec
from bizon_forge.source_render import render_source
from bizon_forge.spec.destination import DestinationSpec
from bizon_forge.workspace import ENUM_FILE, Settings

BIZONS_OWN = ["bigquery", "bigquery_streaming", "bigquery_streaming_v2", "file", "logger"]


def refused(path, settings) -> str:
    with pytest.raises(Refused) as caught:
        workspace.resolve(path, settings)
    (finding,) = caught.value.findings
    return finding.id


@pytest.fixture
def rooted(make_tree, tmp_path):
    """A server confined to tmp_path/roots, which holds one bizon tree."""
    root = make_tree("0.6.4")
    return root, Settings.from_paths([str(root.parent)])


def test_paths_outside_the_roots_are_refused(rooted, tmp_path, pristine):
    root, settings = rooted
    (tmp_path / "elsewhere").mkdir()
    assert refused(str(tmp_path / "elsewhere"), settings) == "workspace.outside_roots"
    assert refused("../elsewhere", settings) == "workspace.outside_roots"  # relative to the default root
    assert refused(str(root / ".." / ".." / "elsewhere"), settings) == "workspace.outside_roots"
    (root.parent / "escape").symlink_to(pristine("0.6.4"))  # a real bizon tree, but outside
    assert refused(str(root.parent / "escape"), settings) == "workspace.outside_roots"


def test_missing_not_bizon_and_file_paths_each_have_their_finding(rooted):
    root, settings = rooted
    (root.parent / "empty").mkdir()
    (root.parent / "notes.txt").write_text("x")
    assert refused(str(root.parent / "nope"), settings) == "workspace.missing"
    assert refused(str(root.parent / "empty"), settings) == "workspace.not_bizon"
    assert refused(str(root.parent / "notes.txt"), settings) == "workspace.not_a_directory"
    assert refused("a\x00b", settings) == "workspace.invalid"
    assert refused(None, Settings()) == "workspace.unset"
    assert workspace.resolve(root.name, settings).root == root  # relative to the default root


def test_the_workspaces_python_and_a_scrubbed_environment(rooted, monkeypatch):
    root, settings = rooted
    ws = workspace.resolve(str(root), settings)
    assert ws.python() == sys.executable
    venv = root / ".venv" / "bin"
    venv.mkdir(parents=True)
    (venv / "python").symlink_to(sys.executable)
    assert ws.python() == str(venv / "python")
    assert workspace.resolve(str(root), Settings(roots=settings.roots, python="/opt/py")).python() == "/opt/py"

    monkeypatch.setenv("FORGE_TEST_SECRET", "do-not-pass")
    env = ws.env()
    assert env["PYTHONPATH"] == str(root) and "FORGE_TEST_SECRET" not in env


def test_init_refuses_a_non_empty_directory_and_a_bad_version(tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    for call, expected in (
        (lambda: workspace.init(str(tmp_path / "full")), "workspace.not_empty"),
        (lambda: workspace.init(str(tmp_path / "new"), "latest; rm -rf /"), "workspace.bad_version"),
    ):
        with pytest.raises(Refused) as caught:
            call()
        assert [f.id for f in caught.value.findings] == [expected]
    assert not (tmp_path / "new").exists()


EDIT_POINTS = {  # found by structure; the guide's "line 108" and "line 290" are right for neither
    "0.6.4": {"enum": 8, "union": 131, "factory": 383},
    "0.5.2": {"enum": 8, "union": 116, "factory": 281},
}


def test_inspect_reports_version_layout_and_each_destinations_registrations(tree):
    ws = workspace.resolve(None, Settings.from_paths([str(tree)]))
    version = tree.name.split("-")[-1]
    fresh = inspect_workspace(ws)
    assert fresh.ok and fresh.bizon_version == version
    files = {"enum": "bizon/destination/config.py", "union": "bizon/common/models.py"}
    files["factory"] = "bizon/destination/destination.py"
    assert fresh.layout == {k: f"{files[k]}:{line}" for k, line in EDIT_POINTS[version].items()}
    assert [d.name for d in fresh.destinations] == BIZONS_OWN
    assert all(d.missing == [] and d.rendered and not d.spec for d in fresh.destinations)

    assert describe_target(ws, DestinationSpec(name="acme")).ok
    described = inspect_workspace(ws)
    acme = next(d for d in described.destinations if d.name == "acme")
    assert acme.spec and not acme.rendered and acme.registered == []
    assert [f.id for f in described.findings] == ["inspect.not_rendered"]

    assert render_destination(ws, "acme").ok
    path = tree / ENUM_FILE
    path.write_text(path.read_text().replace('    FILE = "file"\n', '    FILE = "file"\n    ACME = "acme"\n'))
    half = inspect_workspace(ws)
    acme = next(d for d in half.destinations if d.name == "acme")
    assert acme.rendered and acme.registered == ["enum"] and acme.missing == ["union", "factory"]
    assert [(f.id, f.hint) for f in half.findings] == [
        ("registry.incomplete", "apply_registrations(name='acme') completes them.")
    ]


def test_inspect_reports_an_unparsable_registration_file(make_tree):
    root = make_tree("0.6.4")
    (root / ENUM_FILE).write_text("class DestinationTypes(:\n")
    result = inspect_workspace(workspace.resolve(None, Settings.from_paths([str(root)])))
    assert not result.ok and [f.id for f in result.findings] == ["registry.unparsable"]
    assert os.fspath(ENUM_FILE) in result.findings[0].message
    logger = next(d for d in result.destinations if d.name == "logger")
    assert logger.registered == ["union", "factory"] and logger.missing == []  # the enum is unknown, not missing


# -- the check configs and git ---------------------------------------------------------------------------------

SOURCE = {"name": "tickets", "base_url": "http://127.0.0.1:9/v1", "streams": [{"name": "items", "endpoint": "/items"}]}


def git_ignores(root, rel: str) -> bool:
    """git's own verdict: `check-ignore` exits 0 when ignored, 1 when not (with -v it exits 0 on a negation too)."""
    done = subprocess.run(["git", "-C", str(root), "check-ignore", "-q", "--no-index", rel], capture_output=True)
    assert done.returncode in (0, 1), done.stderr
    return done.returncode == 0


def render_both(ws) -> tuple:
    assert describe_target(ws, DestinationSpec(name="store", recipe="file")).ok
    assert describe_source(ws, parse_spec(SOURCE)).ok
    return render_destination(ws, "store"), render_source(ws, "tickets")


def test_a_tree_from_init_tracks_both_kinds_of_check_config_and_still_ignores_other_configs(make_tree):
    root = make_tree("0.6.4")
    ws = workspace.resolve(None, Settings.from_paths([str(root)]))
    destination, source = render_both(ws)
    assert ".gitignore" not in [f.path for f in destination.files + source.files]  # init already let them in
    for kind, name in (("destinations", "store"), ("sources", "tickets")):
        config = f"bizon/connectors/{kind}/{name}/config"
        assert not git_ignores(root, f"{config}/{name}.check.yml"), kind
        assert not git_ignores(root, f"{config}/{name}.example.yml"), kind
        assert git_ignores(root, f"{config}/{name}.yml"), kind  # a user's own config, with its secrets, stays out
    status = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "-uall"], capture_output=True, text=True)
    assert "bizon/connectors/sources/tickets/config/tickets.check.yml" in status.stdout


def test_render_lets_the_check_configs_in_to_a_tree_not_made_by_init_and_says_so(make_tree):
    root = make_tree("0.6.4")
    ignore = root / ".gitignore"
    ignore.write_text(ignore.read_text().replace(workspace.TRACK_CHECK_CONFIGS + "\n", ""))  # bizon's own rules
    ws = workspace.resolve(None, Settings.from_paths([str(root)]))
    check = "bizon/connectors/destinations/store/config/store.check.yml"
    assert git_ignores(root, check)  # the trial's finding: a commit drops it

    assert describe_target(ws, DestinationSpec(name="store", recipe="file")).ok
    before = ignore.read_bytes()
    planned = render_destination(ws, "store", dry_run=True)
    assert ignore.read_bytes() == before
    assert {"path": ".gitignore", "action": "would_update"} in [f.model_dump(exclude_none=True) for f in planned.files]

    rendered = render_destination(ws, "store")
    assert [f.action for f in rendered.files if f.path == ".gitignore"] == ["updated"]
    (said,) = [f for f in rendered.findings if f.id == "render.gitignore"]
    assert workspace.TRACK_CHECK_CONFIGS in said.message and ".gitignore" in said.message
    assert ignore.read_text().startswith(before.decode()) and not git_ignores(root, check)

    assert describe_source(ws, parse_spec(SOURCE)).ok
    again = render_source(ws, "tickets")  # once is enough, for either kind
    assert ".gitignore" not in [f.path for f in again.files] and "render.gitignore" not in [
        f.id for f in again.findings
    ]
    assert not git_ignores(root, "bizon/connectors/sources/tickets/config/tickets.check.yml")
