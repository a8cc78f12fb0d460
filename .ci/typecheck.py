"""mypy over bizon_forge with server/ and validators/ under the module names they ship as.

pyproject's [tool.setuptools.package-dir] maps top-level folders into the package; mypy derives module
names from folders alone, so this hands it each file with its shipped name. Options come from [tool.mypy].
"""

import os
import sys
import tomllib
from pathlib import Path

from mypy import build
from mypy.errors import CompileError
from mypy.main import process_options
from mypy.modulefinder import BuildSource

ROOT = Path(__file__).resolve().parent.parent
CHECKED = ("bizon_forge", "bizon_forge.server", "bizon_forge.validators")


def sources() -> list[BuildSource]:
    package_dir = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    found = []
    for package in CHECKED:
        folder = ROOT / package_dir[package]
        for path in sorted(folder.glob("*.py")):
            module = package if path.stem == "__init__" else f"{package}.{path.stem}"
            found.append(BuildSource(str(path.relative_to(ROOT)), module))
    return found


def main() -> int:
    os.chdir(ROOT)
    _, options = process_options(["--config-file", "pyproject.toml", *sys.argv[1:]], require_targets=False)
    try:
        result = build.build(sources(), options)
    except CompileError as e:
        result_messages, blockers = e.messages, True
    else:
        result_messages, blockers = result.errors, False
    for line in result_messages:
        print(line)
    if result_messages or blockers:
        print(f"mypy: {sum(': error:' in m for m in result_messages)} errors", file=sys.stderr)
        return 1
    print(f"mypy: no issues in {len(sources())} files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
