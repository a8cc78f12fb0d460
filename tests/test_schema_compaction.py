"""server/schemas.py: smaller tool schemas that still describe and validate what the tools exchange."""

import json

import pytest
from jsonschema import Draft202012Validator
from mcp import Client
from pydantic import BaseModel

from bizon_forge.server.app import build_server
from bizon_forge.server.schemas import compact
from bizon_forge.workspace import Settings

pytestmark = pytest.mark.anyio


class Inner(BaseModel):
    size: int = 1


class Answer(BaseModel):
    ok: bool = True
    next: str | None = None
    inner: Inner | None = None
    maybe: int | None  # required but nullable: null must stay allowed


def test_titles_nullable_optionals_and_refs_go():
    before = Answer.model_json_schema()
    assert "$defs" in before and "title" in json.dumps(before)
    assert compact(before) == {
        "properties": {
            "ok": {"default": True, "type": "boolean"},
            "next": {"type": "string"},
            "inner": {"properties": {"size": {"default": 1, "type": "integer"}}, "type": "object"},
            "maybe": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
        },
        "required": ["maybe"],
        "type": "object",
    }


def test_output_schemas_also_lose_defaults_descriptions_and_the_finding_shape():
    class Finding(BaseModel):
        id: str
        hint: str | None = None

    class Result(BaseModel):
        """Docs for people, not for agents."""

        ok: bool = True
        findings: list[Finding] = []

    assert compact(Result.model_json_schema(), output=True) == {
        "properties": {
            "ok": {"type": "boolean"},
            "findings": {"items": {"type": "object", "required": ["id"]}, "type": "array"},
        },
        "type": "object",
    }


def test_a_recursive_model_keeps_its_ref():
    class Node(BaseModel):
        children: list["Node"] = []

    out = compact(Node.model_json_schema())
    assert out["$defs"]["Node"]["properties"]["children"]["items"] == {"$ref": "#/$defs/Node"}
    Draft202012Validator.check_schema(out)
    Draft202012Validator(out).validate({"children": [{"children": []}]})


def test_compact_does_not_modify_its_input():
    before = Answer.model_json_schema()
    copy = json.loads(json.dumps(before))
    compact(before, output=True)
    assert before == copy


async def test_every_published_schema_is_valid_and_compact():
    async with Client(build_server(Settings())) as client:
        tools = (await client.list_tools()).tools
    for tool in tools:
        assert tool.output_schema is not None, f"{tool.name} lost its outputSchema"
        for schema in (tool.input_schema, tool.output_schema):
            Draft202012Validator.check_schema(schema)
            text = json.dumps(schema)
            assert '"title"' not in text and "$defs" not in text and '{"type": "null"}' not in text, tool.name


async def test_the_client_still_validates_structured_answers(make_tree):
    tree = make_tree("0.6.4")
    async with Client(build_server(Settings.from_paths([str(tree)]))) as client:
        result = await client.call_tool("inspect_workspace", {})  # the SDK checks it against outputSchema
        schema = next(t.output_schema for t in (await client.list_tools()).tools if t.name == "inspect_workspace")
    assert result.structured_content["ok"] is True
    Draft202012Validator(schema).validate(result.structured_content)
    assert not Draft202012Validator(schema).is_valid({**result.structured_content, "ok": "yes"})
    assert not Draft202012Validator(schema).is_valid({"findings": [{"id": "x"}]})  # status, message required
