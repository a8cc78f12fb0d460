"""Recipes as describe_target and render_destination see them: the fields and retry defaults a recipe adds,
the specs it refuses (nothing written), and rendered code that is clean under the tree's own ruff config."""

import subprocess

import pytest
from ruff.__main__ import find_ruff_bin

from bizon_forge import recipes, render, spec, workspace
from bizon_forge.describe import describe_target
from bizon_forge.spec import DestinationSpec, FieldSpec
from tests.conftest import snapshot


@pytest.fixture
def ws64(make_tree) -> workspace.Workspace:
    return workspace.resolve(None, workspace.Settings.from_paths([str(make_tree("0.6.4"))]))


def test_a_recipe_adds_its_fields_and_retry_defaults(ws64):
    result = describe_target(ws64, DestinationSpec(name="warehouse", recipe="sql"))
    assert result.ok, result.findings
    assert [f.id for f in result.findings] == ["recipe.fields_added"]
    stored = spec.load(ws64, "warehouse")
    url = next(f for f in stored.fields if f.name == "url")
    assert (url.required, url.secret, url.type) == (True, True, "str")  # a URL may hold a password
    assert stored.error_handling.transient == ["OperationalError"]


def test_fields_the_agent_declared_are_kept_and_not_duplicated(ws64):
    mine = FieldSpec(name="endpoint", default="http://127.0.0.1:1/in", description="Ingest URL.")
    result = describe_target(ws64, DestinationSpec(name="hook", recipe="http", fields=[mine]))
    assert result.ok, result.findings
    stored = spec.load(ws64, "hook")
    assert [f for f in stored.fields if f.name == "endpoint"] == [mine]
    assert stored.write_method == "streaming"  # the tool's default batch_insert gives way to the recipe's
    assert stored.error_handling.transient == ["429", "5xx", "ConnectionError", "Timeout"]


@pytest.mark.parametrize(
    ("field", "finding"),
    [
        ({"name": "url", "type": "int"}, "recipe.field_conflict"),
        ({"name": "url", "description": "where", "required": True}, "recipe.field_not_secret"),
        ({"name": "batch_size", "type": "str"}, "recipe.field_conflict"),
    ],
)
def test_a_field_the_recipe_cannot_read_is_refused_and_nothing_written(ws64, field, finding):
    recipe = "http" if field["name"] == "batch_size" else "sql"
    before = snapshot(ws64.root)
    result = describe_target(ws64, DestinationSpec(name="dest", recipe=recipe, fields=[FieldSpec(**field)]))
    assert not result.ok
    assert finding in [f.id for f in result.findings if f.status == "fail"]
    assert snapshot(ws64.root) == before


def test_retry_plan_reads_statuses_classes_and_exception_names():
    plan = recipes.get("http").retry_plan(["429", "5XX", "503", "connectionerror", "Timeout", "Deadlock"])
    assert plan["statuses"] == [429, 503]
    assert plan["status_classes"] == [5]
    assert plan["exceptions"] == ["requests.exceptions.ConnectionError", "requests.exceptions.Timeout"]
    assert plan["ignored"] == ["Deadlock"]
    assert recipes.get("sql").retry_plan(["5xx"])["ignored"] == ["5xx"]  # statuses mean nothing to a database


def test_a_transient_name_the_recipe_cannot_map_is_a_warning_and_a_comment(ws64):
    errors = {"transient": ["503", "Deadlock"]}
    result = describe_target(ws64, DestinationSpec(name="hook", recipe="http", error_handling=errors))
    assert result.ok
    assert "recipe.transient_unknown" in [f.id for f in result.findings if f.status == "warn"]
    code = render.planned_files(ws64, spec.load(ws64, "hook"))["bizon/connectors/destinations/hook/src/destination.py"]
    assert "TRANSIENT_STATUSES = frozenset([503])" in code
    assert "Not retried (this recipe cannot map them to a failure it sees): ['Deadlock']." in code


@pytest.mark.parametrize("version", ["0.6.4", "0.5.2"])
def test_rendered_code_is_clean_under_the_trees_ruff_config(make_tree, version):
    ws = workspace.resolve(None, workspace.Settings.from_paths([str(make_tree(version))]))
    written = []
    for recipe in ("sql", "file", "http"):
        assert describe_target(ws, DestinationSpec(name=f"my_{recipe}", recipe=recipe)).ok
        result = render.render_destination(ws, f"my_{recipe}")
        assert result.ok and not result.findings, result  # no FORGE-TODO left: a recipe is complete
        written += [f.path for f in result.files if f.path.endswith(".py")]
    assert any("/tests/" in p or p.startswith("tests/") for p in written)
    for args in (["check", "--no-cache"], ["format", "--check", "--no-cache"]):
        done = subprocess.run([find_ruff_bin(), *args, *written], cwd=ws.root, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
