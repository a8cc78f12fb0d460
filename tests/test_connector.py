"""One module knows where bizon keeps a connector (bizon_forge/connector.py); the others ask it."""

import ast
import re

from bizon_forge.connector import Connector, is_connector_module
from bizon_forge.validators.probes import contract_probe
from tests.conftest import REPO

# The layout, as code would spell it: a folder or package of connectors, or a config file bizon-forge names.
LAYOUT = re.compile(r"connectors[/.](destinations|sources)\b|\.(example|check)\.yml\b")
OWNER = {"bizon_forge/connector.py"}
# Runs in the workspace's interpreter, without bizon-forge: its one copy is held equal below.
COPIES = {"validators/probes/contract_probe.py"}


def _layout_strings(path):
    """(line, text) of each string in the code that spells the layout; docstrings are prose, not code."""
    tree = ast.parse(path.read_text())
    prose = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in prose:
            if LAYOUT.search(node.value) and "<name>" not in node.value:  # `<name>`: documentation, for people
                yield node.lineno, node.value


def test_the_layout_is_spelled_in_one_module():
    found = []
    for folder in ("bizon_forge", "server", "validators"):
        for path in sorted((REPO / folder).rglob("*.py")):
            rel = str(path.relative_to(REPO))
            if rel in OWNER | COPIES:
                continue
            found += [f"{rel}:{n}: {text!r}" for n, text in _layout_strings(path)]
    assert found == [], "ask bizon_forge.connector.Connector instead:\n" + "\n".join(found)


def test_the_probes_copy_agrees():
    assert contract_probe.code_module("acme") == Connector("acme").code_module


def test_a_connector_owns_its_modules_not_a_namesakes():
    c = Connector("foo")
    assert c.owns("bizon.connectors.destinations.foo") and c.owns("bizon.connectors.destinations.foo.src.config")
    assert not c.owns("bizon.connectors.destinations.foobar.src.config")
    assert is_connector_module("bizon.connectors.destinations.foobar.src")
    assert not is_connector_module("bizon.connectors.sources.foo.src")
    source = Connector("notion", "source")
    assert source.code_rel == "bizon/connectors/sources/notion/src/source.py"
    assert source.code_module == "bizon.connectors.sources.notion.src.source"
