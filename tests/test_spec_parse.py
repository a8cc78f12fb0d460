"""One parser for both kinds of spec: every unknown key at any level and every wrong value, each a named finding with
its path, in one answer; never pydantic's own text. Any model works, so fields added later need nothing here."""

import pytest
from pydantic import BaseModel

from bizon_forge.findings import Refused
from bizon_forge.pipeline import parse_spec as generate_parse
from bizon_forge.spec import KINDS, common, destination, source
from bizon_forge.spec.common import Kind, parse

STREAM = {"name": "u", "endpoint": "/u"}
SOURCE = {"name": "acme", "base_url": "https://api.test", "streams": [STREAM]}
PYDANTIC_WORDS = ("Input should", "validation error", "errors.pydantic.dev", "type=", "input_value")


def ids_and_places(findings) -> set[tuple[str, str]]:
    return {(f.id, f.message.split(":")[0]) for f in findings}


def test_a_destination_spec_names_every_unknown_key_and_wrong_value_at_once():
    raw = {
        "name": "acme",
        "upsert_key": "id",
        "recipe": "rm -rf",
        "fields": [{"name": "host", "tpye": "str"}, {"name": "port", "required": "maybe"}],
        "batching": {"buffer_size_mb": "lots", "flush_timeout": 5},
        "alias": 3,
    }
    spec, findings = parse(destination.KIND, raw)
    assert spec is None
    assert ids_and_places(findings) == {
        ("spec.unknown_key", "upsert_key"),
        ("spec.unknown_key", "fields[0].tpye"),
        ("spec.unknown_key", "batching.flush_timeout"),
        ("spec.invalid", "recipe"),
        ("spec.invalid", "fields[1].required"),
        ("spec.invalid", "batching.buffer_size_mb"),
        ("spec.invalid", "alias"),
    }
    by_place = {f.message.split(":")[0]: f for f in findings}
    assert "Did you mean 'type'?" in by_place["fields[0].tpye"].hint
    assert "Did you mean 'flush_timeout_s'?" in by_place["batching.flush_timeout"].hint
    assert "one of 'custom', 'sql', 'file', 'http'" in by_place["recipe"].message
    assert "is not an integer" in by_place["batching.buffer_size_mb"].message
    assert "is not true or false" in by_place["fields[1].required"].message
    for f in findings:
        assert f.status == "fail" and f.hint and not any(word in f.message for word in PYDANTIC_WORDS), f


def test_a_source_spec_names_the_path_of_a_key_misspelt_deep_inside_a_stream():
    raw = {**SOURCE, "streams": [STREAM, {**STREAM, "pagination": {"pattern": "cursor", "cursor_parm": "after"}}]}
    spec, findings = parse(source.KIND, raw)
    assert spec is None
    (finding,) = findings
    assert finding.id == "spec.unknown_key" and finding.message.startswith("streams[1].pagination.cursor_parm:")
    assert finding.hint.startswith("Did you mean 'cursor_param'?") and "bizon-forge://source-spec" in finding.hint


@pytest.mark.parametrize("kind", list(KINDS))
def test_what_is_not_an_object_and_what_is_missing_are_findings_for_both_kinds(kind):
    _, findings = parse(KINDS[kind], ["name", "acme"])
    assert [f.id for f in findings] == ["spec.not_a_mapping"] and "list" in findings[0].message
    _, findings = parse(KINDS[kind], {})
    assert ("spec.invalid", "name") in ids_and_places(findings)
    assert all("missing; it is required (a string)" in f.message for f in findings if f.message.startswith("name:"))


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_good_spec_parses_with_no_finding(kind):
    spec, findings = parse(KINDS[kind], SOURCE if kind == "source" else {"name": "acme", "recipe": "file"})
    assert findings == [] and spec is not None and spec.name == "acme"


class Leaf(BaseModel):
    depth: int = 0


class Branch(BaseModel):
    leaves: list[Leaf] = []
    named: dict[str, Leaf] = {}
    maybe: Leaf | None = None


class Tree(BaseModel):
    name: str
    branches: list[Branch] = []


def test_any_model_is_walked_through_lists_dicts_and_optionals_so_new_fields_need_nothing():
    kind = Kind("source", Tree, lambda s: [], lambda n: [], "trees", "tree", "describe_tree", "the tree schema")
    raw = {
        "name": "t",
        "branches": [
            {"leaves": [{"depth": 1}, {"dpeth": 2}], "named": {"x": {"depht": 3}}, "maybe": {"deep": 4}},
            {"leaves": [{"depth": "deep"}]},
        ],
    }
    _, findings = parse(kind, raw)
    assert ids_and_places(findings) == {
        ("spec.unknown_key", "branches[0].leaves[1].dpeth"),
        ("spec.unknown_key", "branches[0].named.x.depht"),
        ("spec.unknown_key", "branches[0].maybe.deep"),
        ("spec.invalid", "branches[1].leaves[0].depth"),
    }
    assert all("Did you mean 'depth'?" in f.hint for f in findings if f.id == "spec.unknown_key")


def test_a_hostile_spec_cannot_make_the_answer_huge():
    raw = {"name": "acme", **{f"k{i}": i for i in range(500)}}
    _, findings = parse(destination.KIND, raw)
    assert len(findings) == common.MAX_PARSE_FINDINGS and "more problems not shown" in findings[-1].message


def test_generate_parses_a_spec_file_the_same_way_and_says_where_the_workspace_goes():
    with pytest.raises(Refused) as refused:
        generate_parse({"name": "acme", "workspace": "/elsewhere", "fields": [{"name": "h", "secert": True}]})
    found = {f.message.split(":")[0]: f for f in refused.value.findings}
    assert set(found) == {"workspace", "fields[0].secert"}
    assert found["workspace"].hint == "Pass the workspace with --workspace."
    assert "Did you mean 'secret'?" in found["fields[0].secert"].hint
    assert refused.value.next == "Fix the failed findings and call describe_target again."
