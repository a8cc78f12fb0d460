"""The real server over stdio, on both bizon layouts: describe, render, register, and the tree still imports."""

import json
import subprocess
import sys

import pytest

from tests.conftest import stdio_client

pytestmark = pytest.mark.anyio


async def test_describe_render_register_over_stdio(tree):
    async with stdio_client(tree) as client:
        r = await client.call_tool(
            "describe_target",
            {
                "name": "acme",
                "fields": [{"name": "token", "required": True, "description": "API token", "secret": True}],
            },
        )
        assert json.loads(r.content[0].text)["ok"], r.content[0].text
        r = await client.call_tool("render_destination", {"name": "acme"})
        assert r.structured_content["ok"], r.structured_content
        r = await client.call_tool("apply_registrations", {"name": "acme"})
        assert r.structured_content["registrations"] == dict.fromkeys(("enum", "import", "union", "factory"), "added")
    env = {"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", "import bizon.common.models"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
