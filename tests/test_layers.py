"""No module uses another's private names (issue 21): what one module needs of another has a public name.

The layers themselves are import-linter's contracts in pyproject.toml (`make lint`); this is the rule they cannot
see. It reads bizon-forge's own code (the package as it ships, bench/ and demo/); tests may reach into what they
test.
"""

import ast
import tomllib
from pathlib import Path

from tests.conftest import REPO


def _modules() -> dict[str, Path]:
    """Dotted name -> file, for the package as it ships (pyproject's package-dir) plus bench/ and demo/."""
    package_dir = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    found = {}
    for package, folder in package_dir.items():
        for path in (REPO / folder).rglob("*.py"):
            parts = path.relative_to(REPO / folder).with_suffix("").parts
            found[".".join((package, *parts)).removesuffix(".__init__")] = path
    for folder in ("bench", "demo"):
        for path in (REPO / folder).glob("*.py"):
            found[f"{folder}.{path.stem}"] = path
    return found


def _uses(tree: ast.Module, own: set[str], siblings: set[str]) -> list[tuple[int, str]]:
    """(line, name) of each private name taken from another of our modules: imported by name, or read as an
    attribute of one of our modules imported whole."""
    ours_whole: set[str] = set()  # local names bound to one of our modules
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            ours = node.module.startswith("bizon_forge") or node.module in siblings
            for alias in node.names:
                if not ours or node.module in own:
                    continue
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    found.append((node.lineno, alias.name))
                elif f"{node.module}.{alias.name}" in _MODULES:
                    ours_whole.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("bizon_forge") or alias.name in siblings:
                    ours_whole.add(alias.asname or alias.name)
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in ours_whole
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
        ):
            found.append((node.lineno, node.attr))
    return found


_MODULES = _modules()


def test_no_module_uses_another_modules_private_names():
    wrong = []
    for module, path in _MODULES.items():
        rel = str(path.relative_to(REPO))
        # The probes run as scripts in the workspace's interpreter and import each other by their file names.
        siblings = {p.stem for p in path.parent.glob("*.py")} - {path.stem} if "probes" in path.parts else set()
        for line, name in _uses(ast.parse(path.read_text()), {module}, siblings):
            wrong.append(f"{rel}:{line} uses {name}")
    assert not wrong, "give these a public name where they are defined:\n" + "\n".join(wrong)
