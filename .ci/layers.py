"""lint-imports (import-linter) over bizon_forge as it ships: server/ and validators/ as its sub-packages.

pyproject's [tool.setuptools.package-dir] maps top-level folders into the package, and the editable install serves
them through an import hook; grimp, which builds import-linter's graph, walks the folder of `bizon_forge` alone and
would not see them. This lays the shipped tree out in a temporary folder (a link to each .py file, so reports name
the real lines) and runs lint-imports there, with the contracts of pyproject's [tool.importlinter].
"""

import os
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def lay_out(into: Path) -> int:
    """Link every .py file of each mapped package under `into`, at the path its module name gives; the count."""
    package_dir = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    linked = 0
    for package, folder in package_dir.items():
        source = ROOT / folder
        for path in source.rglob("*.py"):
            if "__pycache__" in path.parts:
                continue
            target = into / package.replace(".", "/") / path.relative_to(source)
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.exists():
                target.symlink_to(path)
                linked += 1
    return linked


def main() -> int:
    lint_imports = Path(sys.executable).with_name("lint-imports")
    with tempfile.TemporaryDirectory(prefix="bizon-forge-layers-") as tmp:
        lay_out(Path(tmp))
        (Path(tmp) / "pyproject.toml").symlink_to(ROOT / "pyproject.toml")  # lint-imports reads its cwd's
        # PYTHONPATH: the laid-out package is the one found, ahead of the editable install's hook.
        env = {**os.environ, "PYTHONPATH": tmp}
        return subprocess.run([str(lint_imports), "--no-cache", *sys.argv[1:]], cwd=tmp, env=env).returncode


if __name__ == "__main__":
    sys.exit(main())
