"""Recipes as describe_target and render_destination see them: the fields and retry defaults a recipe adds,
the specs it refuses (nothing written), and rendered code that is clean under the tree's own ruff config."""

import json
import subprocess

import pytest
from ruff.__main__ import find_ruff_bin

from bizon_forge import recipes, render, workspace
from bizon_forge.describe import describe_target
from bizon_forge.spec import destination as spec
from bizon_forge.spec.destination import DestinationSpec, FieldSpec
from tests.conftest import snapshot


@pytest.fixture
def ws64(make_tree) -> workspace.Workspace:
    return workspace.resolve(None, workspace.Settings.from_paths([str(make_tree("0.6.4"))]))


def test_a_recipe_adds_its_fields_and_retry_defaults(ws64):
    result = describe_target(ws64, DestinationSpec(name="warehouse", recipe="sql"))
    assert result.ok, result.findings
    added, writes_to, no_driver = result.findings
    assert (added.id, added.status, writes_to.id, writes_to.status) == (
        "recipe.fields_added",
        "pass",
        "recipe.writes_to",
        "pass",
    )
    # no driver named: the answer says the sql recipe then reaches SQLite only, and how to name one
    assert no_driver.id == "spec.dependency.no_driver" and "mysql+pymysql://" in no_driver.hint
    assert added.message == (
        "The sql recipe reads url, db_schema, lock_timeout_seconds; it added: url, db_schema, lock_timeout_seconds."
    )
    assert writes_to.message.startswith("The sql recipe writes to the database of its `url`")
    stored = spec.load(ws64, "warehouse")
    url = next(f for f in stored.fields if f.name == "url")
    assert (url.required, url.secret, url.type) == (True, True, "str")  # a URL may hold a password
    assert stored.error_handling.transient == ["OperationalError"]


def test_fields_the_agent_declared_are_kept_and_not_duplicated(ws64):
    mine = FieldSpec(name="endpoint", default="http://127.0.0.1:1/in", description="Ingest URL.")
    result = describe_target(
        ws64, DestinationSpec(name="hook", recipe="http", full_refresh="replace_flag", fields=[mine])
    )
    assert result.ok, result.findings
    stored = spec.load(ws64, "hook")
    assert [f for f in stored.fields if f.name == "endpoint"] == [mine]
    assert stored.write_method == "streaming"  # the tool's default batch_insert gives way to the recipe's
    assert stored.error_handling.transient == ["429", "5xx", "ConnectionError", "Timeout"]


def test_fields_the_recipe_does_not_read_are_a_warning_that_says_why(ws64):
    mine = [FieldSpec(name=n, description=n) for n in ("host", "port", "url")]
    mine[-1] = FieldSpec(name="url", required=True, secret=True, description="where")
    result = describe_target(ws64, DestinationSpec(name="warehouse", recipe="sql", fields=mine))
    assert result.ok, result.findings
    (ignored,) = [f for f in result.findings if f.id == "recipe.fields_ignored"]
    assert ignored.status == "warn"
    assert "host, port are rendered into the config class" in ignored.message
    assert "inside `url` (e.g. mysql+pymysql://user:password@host:3306/db)" in ignored.message
    assert "recipe='custom'" in ignored.hint
    added = next(f for f in result.findings if f.id == "recipe.fields_added")
    assert added.message == (
        "The sql recipe reads url, db_schema, lock_timeout_seconds; it added: db_schema, lock_timeout_seconds."
    )
    # Still rendered: the agent may read them in destination.py itself.
    assert {"host", "port"} <= {f.name for f in spec.load(ws64, "warehouse").fields}


@pytest.mark.parametrize(
    ("recipe", "where"),
    [("sql", "SQLAlchemy URL"), ("file", "not S3, GCS or any object store"), ("http", "`endpoint`, as JSON POSTs")],
)
def test_each_recipe_says_what_it_writes_to(ws64, recipe, where):
    how = "replace_flag" if recipe == "http" else None
    result = describe_target(ws64, DestinationSpec(name=f"my_{recipe}", recipe=recipe, full_refresh=how))
    (writes_to,) = [f for f in result.findings if f.id == "recipe.writes_to"]
    assert writes_to.status == "pass" and where in writes_to.message
    assert "recipe.fields_ignored" not in [f.id for f in result.findings]


def test_a_custom_recipe_reads_whatever_the_agent_writes_so_nothing_is_ignored(ws64):
    result = describe_target(ws64, DestinationSpec(name="acme", fields=[FieldSpec(name="host", description="h")]))
    assert result.ok and not [f for f in result.findings if f.id.startswith("recipe.")]


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
    assert plan["exceptions"] == [
        "requests.exceptions.ConnectionError",
        "requests.exceptions.ChunkedEncodingError",  # an answer cut off mid-body: a dropped connection too
        "requests.exceptions.Timeout",
    ]
    assert plan["ignored"] == ["Deadlock"]
    assert recipes.get("sql").retry_plan(["5xx"])["ignored"] == ["5xx"]  # statuses mean nothing to a database


def test_a_transient_name_the_recipe_cannot_map_is_a_warning_and_a_comment(ws64):
    errors = {"transient": ["503", "Deadlock"]}
    result = describe_target(
        ws64, DestinationSpec(name="hook", recipe="http", full_refresh="replace_flag", error_handling=errors)
    )
    assert result.ok
    assert "recipe.transient_unknown" in [f.id for f in result.findings if f.status == "warn"]
    code = render.planned_files(ws64, spec.load(ws64, "hook"))["bizon/connectors/destinations/hook/src/destination.py"]
    assert "TRANSIENT_STATUSES = frozenset([503])" in code
    assert "Not retried (this recipe cannot map them to a failure it sees): ['Deadlock']." in code


@pytest.mark.parametrize("version", ["0.6.4", "0.5.2"])
def test_rendered_code_is_clean_under_the_trees_ruff_config(make_tree, version):
    ws = workspace.resolve(None, workspace.Settings.from_paths([str(make_tree(version))]))
    written = []
    for recipe, how in (("sql", None), ("file", None), ("http", "replace_flag"), ("http", "delete_first")):
        name = f"my_{recipe}_{how}" if how else f"my_{recipe}"
        assert describe_target(ws, DestinationSpec(name=name, recipe=recipe, full_refresh=how)).ok
        result = render.render_destination(ws, name)
        assert result.ok and not result.findings, result  # no FORGE-TODO left: a recipe is complete
        written += [f.path for f in result.files if f.path.endswith(".py")]
    assert any("/tests/" in p or p.startswith("tests/") for p in written)
    for args in (["check", "--no-cache"], ["format", "--check", "--no-cache"]):
        done = subprocess.run([find_ruff_bin(), *args, *written], cwd=ws.root, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr


def test_a_write_method_the_recipe_does_not_use_is_said_not_silently_changed(ws64):
    asked = describe_target(
        ws64, DestinationSpec(name="hook", recipe="http", full_refresh="replace_flag", write_method="batch_insert")
    )
    assert asked.ok
    (changed,) = [f for f in asked.findings if f.id == "recipe.write_method_changed"]
    assert changed.status == "warn" and "streaming, not batch_insert" in changed.message
    quiet = describe_target(
        ws64, DestinationSpec(name="hook2", recipe="http", full_refresh="replace_flag")
    )  # named none: the recipe's own
    assert "recipe.write_method_changed" not in [f.id for f in quiet.findings]
    assert json.loads((ws64.state_dir / "specs" / "hook2.json").read_text())["write_method"] == "streaming"


@pytest.mark.parametrize(("transient", "named"), [(["401", "429"], "401"), (["4xx"], "4xx"), (["403", "5xx"], "403")])
def test_a_transient_status_that_is_permanent_by_nature_is_said(ws64, transient, named):
    s = DestinationSpec(
        name="hook", recipe="http", full_refresh="replace_flag", error_handling={"transient": transient}
    )
    result = describe_target(ws64, s)
    assert result.ok
    (said,) = [f for f in result.findings if f.id == "recipe.transient_permanent"]
    assert said.status == "warn" and named in said.message


def test_the_default_transient_statuses_say_nothing_permanent(ws64):
    result = describe_target(ws64, DestinationSpec(name="hook", recipe="http", full_refresh="replace_flag"))
    assert "recipe.transient_permanent" not in [f.id for f in result.findings]


def test_http_needs_the_full_refresh_choice_and_nothing_is_written_without_it(ws64):
    before = snapshot(ws64.root)
    result = describe_target(ws64, DestinationSpec(name="hook", recipe="http"))
    assert not result.ok
    (unchosen,) = [f for f in result.findings if f.status == "fail"]
    assert unchosen.id == "recipe.full_refresh_unchosen"
    assert "replace_flag" in unchosen.hint and "delete_first" in unchosen.hint
    assert snapshot(ws64.root) == before


@pytest.mark.parametrize("recipe", ["sql", "file", "custom"])
def test_a_full_refresh_choice_other_recipes_ignore_is_said_and_not_kept(ws64, recipe):
    result = describe_target(ws64, DestinationSpec(name="dest", recipe=recipe, full_refresh="delete_first"))
    assert result.ok
    (ignored,) = [f for f in result.findings if f.id == "recipe.full_refresh_ignored"]
    assert ignored.status == "warn"
    assert spec.load(ws64, "dest").full_refresh is None


def test_each_full_refresh_choice_renders_its_own_publication(ws64):
    code = {}
    for how in ("replace_flag", "delete_first"):
        assert describe_target(ws64, DestinationSpec(name=f"hook_{how}", recipe="http", full_refresh=how)).ok
        files = render.planned_files(ws64, spec.load(ws64, f"hook_{how}"))
        code[how] = files[f"bizon/connectors/destinations/hook_{how}/src/destination.py"]
        tests = files[f"tests/connectors/destinations/hook_{how}/test_hook_{how}_destination.py"]
        assert f"HONOURS_REPLACE = {how == 'replace_flag'}" in tests
    assert "self.delete_all()" in code["delete_first"] and '"replace"' not in code["delete_first"]
    assert "self.session.delete(" in code["delete_first"]
    assert "replace=index == 0" in code["replace_flag"] and "session.delete" not in code["replace_flag"]
