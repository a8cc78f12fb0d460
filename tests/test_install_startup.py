"""What `bizon-forge serve` imports before it answers: none of the local stand-ins (the mock API, the receiver,
http.server) nor the source renderer that names them; the CLI's help names the mock's variables as they are."""

import json
import subprocess
import sys

from bizon_forge import cli, source_render

# serve's path up to its first answer: the CLI parsed, then the server built
STARTUP = """
import json, sys
import bizon_forge.cli as cli
cli._parser().parse_args(["serve"])
from bizon_forge.server.app import build_server
from bizon_forge.workspace import Settings
build_server(Settings())
print(json.dumps(sorted(sys.modules)))
"""
OFF_THE_PATH = (
    "bizon_forge.validators.fakes.mock_api",
    "bizon_forge.validators.fakes.receiver",
    "bizon_forge.source_render",
    "http.server",
    "libcst",
    "jinja2",
    "polars",
    "tomlkit",
)


def test_serve_imports_no_fake_nor_renderer_and_the_help_names_the_mock_variables():
    done = subprocess.run([sys.executable, "-c", STARTUP], capture_output=True, text=True, timeout=120, cwd="/")
    assert done.returncode == 0, done.stderr[-2000:]
    loaded = set(json.loads(done.stdout))
    assert [m for m in OFF_THE_PATH if m in loaded] == []
    assert cli.MOCK_VARS == (source_render.MOCK_URL_VAR, source_render.MOCK_TOKEN_URL_VAR)
