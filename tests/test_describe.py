"""describe_target: each rejection has its own finding and writes nothing; accepted strings render as data."""

import json
import shutil
import subprocess

import pytest
import yaml

from bizon_forge import workspace
from bizon_forge.describe import describe_target
from bizon_forge.registrations import apply_registrations
from bizon_forge.render import render_destination
from bizon_forge.spec import destination as spec
from bizon_forge.spec import source as source_spec
from bizon_forge.spec.destination import DestinationSpec, FieldSpec
from tests.conftest import snapshot


@pytest.fixture(scope="module")
def shared(pristine, tmp_path_factory) -> workspace.Workspace:
    """One tree for the rejections: each test proves it wrote nothing, so they cannot disturb each other."""
    root = tmp_path_factory.mktemp("describe") / "bizon"
    shutil.copytree(pristine("0.6.4"), root, symlinks=True)
    return workspace.resolve(None, workspace.Settings.from_paths([str(root)]))


def field(name="token", **kw) -> FieldSpec:
    return FieldSpec(**{"name": name, "description": "what it is", **kw})


REJECTED = {
    "not an identifier": ("spec.name.not_identifier", {"name": "acme-corp"}),
    "starts with a digit": ("spec.name.not_identifier", {"name": "9lives"}),
    "upper case": ("spec.name.not_snake_case", {"name": "AcmeCorp"}),
    "keyword": ("spec.name.keyword", {"name": "class"}),
    "soft keyword": ("spec.name.keyword", {"name": "match"}),
    "builtin": ("spec.name.builtin", {"name": "print"}),
    "name taken by bizon's file destination": ("spec.name.taken", {"name": "file"}),
    "name taken by bizon's logger destination": ("spec.name.taken", {"name": "logger"}),
    "class name taken (big_query -> BigQueryConfig)": ("spec.name.class_taken", {"name": "big_query"}),
    "field shadows buffer_size": ("spec.field.shadows_base", {"fields": [field("buffer_size", type="int")]}),
    "field shadows destination_id": ("spec.field.shadows_base", {"fields": [field("destination_id")]}),
    "field shadows a pydantic attribute": ("spec.field.reserved", {"fields": [field("model_config")]}),
    "duplicate fields": ("spec.field.duplicate", {"fields": [field("host"), field("host")]}),
    "required without description": (
        "spec.field.missing_description",
        {"fields": [FieldSpec(name="host", required=True, description="  ")]},
    ),
    "default of the wrong type": (
        "spec.field.default_type",
        {"fields": [field("port", type="int", default="5432")]},
    ),
    "bool default for an int": (
        "spec.field.default_type",
        {"fields": [field("port", type="int", default=True)]},
    ),
    "list default of non-strings": (
        "spec.field.default_type",
        {"fields": [field("t", type="list[str]", default=[1])]},
    ),
    "unknown field type": ("spec.field.unknown_type", {"fields": [field("when", type="datetime")]}),
    "field name not an identifier": ("spec.field.not_identifier", {"fields": [field("api-key")]}),
    "secret with a default": (
        "spec.field.secret_default",
        {"fields": [field("token", secret=True, default="s3cr3t")]},
    ),
    "lone surrogate": ("spec.text.not_unicode", {"fields": [field("note", description="bad \udc80 text")]}),
}


@pytest.mark.parametrize("case", REJECTED, ids=list(REJECTED))
def test_each_rejection_has_its_finding_and_writes_nothing(shared, case):
    finding, kw = REJECTED[case]
    kw = {"name": "acme", **kw}
    before = snapshot(shared.root)
    result = describe_target(shared, DestinationSpec(**kw))
    assert snapshot(shared.root) == before
    assert not result.ok
    assert finding in [f.id for f in result.findings if f.status == "fail"], result.findings
    assert all(f.message for f in result.findings)


@pytest.mark.parametrize(
    ("name", "suggested"),
    [("MyTickets", "my_tickets"), ("TicketStore", "ticket_store"), ("HTTPStore", "http_store"), ("acmeDb", "acme_db")],
)
def test_a_camel_case_name_is_answered_with_its_snake_case_form(name, suggested):
    (finding,) = spec.check_name(name)
    assert finding.id == "spec.name.not_snake_case" and finding.hint and repr(suggested) in finding.hint, finding
    assert not spec.check_name(suggested)  # the suggestion itself passes
    (for_a_source,) = source_spec.check_name(name)  # sources share the rule
    assert repr(suggested) in (for_a_source.hint or "")


def test_an_accepted_spec_is_stored_with_its_names_and_may_be_described_again(shared):
    result = describe_target(shared, DestinationSpec(name="s3_lake", fields=[field("bucket", required=True)]))
    assert result.ok, result.findings
    assert result.names.model_dump() == {
        "pascal": "S3Lake",
        "snake": "s3_lake",
        "upper": "S3_LAKE",
        "alias": "s3_lake",
    }
    assert result.existing.registered == {"enum": False, "union": False, "factory": False}
    stored = json.loads((shared.root / result.spec_file).read_text())
    assert stored["name"] == "s3_lake" and stored["fields"][0]["name"] == "bucket"
    # Its own earlier spec is not a clash: the agent may correct what it described.
    again = describe_target(shared, DestinationSpec(name="s3_lake", fields=[field("bucket"), field("region")]))
    assert again.ok and again.existing.spec
    assert [f["name"] for f in json.loads((shared.root / again.spec_file).read_text())["fields"]] == [
        "bucket",
        "region",
    ]


TRICKY = (
    'q"uo\'te """tri""" \'\'\' back\\slash \\n not-a-newline\nnew line\ttab \x00nul '
    "{{ spec.name }} {% if true %}jinja{% endif %} é😀 \u2028sep"
)


def test_strings_render_as_exactly_that_string(make_tree):
    """Quotes, triple quotes, backslashes, newlines, NUL and Jinja syntax reach config.py and the example
    YAML as data: the imported pydantic fields and the loaded YAML say exactly the strings described."""
    root = make_tree("0.6.4")
    ws = workspace.resolve(None, workspace.Settings.from_paths([str(root)]))
    fields = [
        FieldSpec(name="note", description=TRICKY, default=TRICKY),
        FieldSpec(name="tags", type="list[str]", description=TRICKY[::-1], default=[TRICKY, "}}"]),
        FieldSpec(name="opts", type="dict", description="{%", default={TRICKY: [TRICKY, 1.5e300, None, True]}),
        FieldSpec(name="token", required=True, description=TRICKY, secret=True),
    ]
    assert describe_target(ws, DestinationSpec(name="acme", fields=fields, alias=TRICKY[:100])).ok
    assert render_destination(ws, "acme").ok
    registered = apply_registrations(ws, "acme")  # its import check imports the rendered config
    assert registered.ok, registered.findings

    script = (
        "import json\nfrom bizon.connectors.destinations.acme.src.config import AcmeConfig as C\n"
        "D = C.model_fields['config'].annotation\n"
        "fields = {k: [f.description, None if f.is_required() else f.default]\n"
        "          for k, f in D.model_fields.items()}\n"
        "print(json.dumps({'fields': fields, 'alias': C.model_fields['alias'].default}))\n"
    )
    done = subprocess.run([ws.python(), "-c", script], cwd=root, env=ws.env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["alias"] == TRICKY[:100]
    for f in fields:
        description, default = seen["fields"][f.name]
        assert description == f.description
        assert default == (None if f.required else f.default)

    example = yaml.safe_load((root / "bizon/connectors/destinations/acme/config/acme.example.yml").read_text())
    config = example["destination"]["config"]
    assert config["note"] == TRICKY and config["tags"] == [TRICKY, "}}"]
    assert config["opts"] == {TRICKY: [TRICKY, 1.5e300, None, True]}
