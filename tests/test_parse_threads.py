"""Every parse of Python source goes through bizon_forge.pyast: tool calls run on threads at the same time."""

import re

from tests.conftest import REPO


def test_no_bare_ast_parse_outside_pyast():
    bare = re.compile(r"\bast\.parse\(")
    offenders = [
        str(path.relative_to(REPO))
        for folder in ("bizon_forge", "server", "validators")
        for path in (REPO / folder).rglob("*.py")
        if path.name != "pyast.py" and bare.search(path.read_text())
    ]
    assert not offenders, f"use bizon_forge.pyast.parse (CPython 3.11, gh-106905): {offenders}"
