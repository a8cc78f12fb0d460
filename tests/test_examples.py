"""examples/: each spec `generate`d at level fast through the CLI, in a fresh bizon tree."""

import subprocess
import sys

import pytest

from tests.conftest import REPO

EXAMPLES = REPO / "examples"
# What each example's validation may still fail on: what no spec can give (the http endpoint, the custom
# recipe's code, which the agent writes). Every other example passes.
LEFT_TO_THE_USER = {
    "http_destination.yml": {"live.example_values"},
    "custom_destination.yml": {
        "agent.todo_left",
        "agent.not_implemented",
        "live.check_config",
        "live.check_references",
        "live.example_values",
    },
}


def test_there_is_one_destination_example_per_recipe_and_a_source():
    from bizon_forge.spec.destination import RECIPES

    assert sorted(p.name for p in EXAMPLES.glob("*.yml")) == sorted(
        [f"{r}_destination.yml" for r in RECIPES] + ["rest_source.yml"]
    )


@pytest.mark.slow
@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.glob("*.yml")))
def test_each_example_generates(example, make_tree):
    tree = make_tree()
    argv = [sys.executable, "-m", "bizon_forge", "generate", str(EXAMPLES / example), "--workspace", str(tree)]
    done = subprocess.run([*argv, "--python", sys.executable], capture_output=True, text=True, timeout=600)
    failed = {line.split()[1] for line in done.stdout.splitlines() if line.startswith("FAIL ")}
    allowed = LEFT_TO_THE_USER.get(example, set())
    assert failed <= allowed and done.returncode == (1 if allowed else 0), done.stdout + done.stderr[-2000:]
    if not allowed:
        assert "validate ok" in done.stdout
