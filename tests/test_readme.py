"""The README's generated sections match what the code really offers."""

import re

import anyio

from tests.conftest import REPO


def section(name: str) -> str:
    text = (REPO / "README.md").read_text()
    found = re.search(rf"<!-- {name}:start -->\n(.*?)<!-- {name}:end -->", text, re.S)
    assert found, f"README.md has no {name} section markers"
    return found.group(1)


def test_tool_reference_matches_the_live_tool_list():
    from bizon_forge.server.reference import tool_reference

    assert section("tools") == anyio.run(tool_reference), "refresh: python -m bizon_forge.server.reference"
