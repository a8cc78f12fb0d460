"""`bizon-forge schema destination|source` prints the JSON schema of the spec files `generate` takes: every example
in examples/ validates against it, a wrong spec does not, and the source's is the resource agents read."""

import json
import subprocess
import sys

import jsonschema
import pytest
import yaml

from bizon_forge.spec import source
from tests.conftest import REPO


@pytest.fixture(scope="module")
def schemas() -> dict:
    found = {}
    for kind in ("destination", "source"):
        done = subprocess.run(
            [sys.executable, "-m", "bizon_forge", "schema", kind], capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        found[kind] = json.loads(done.stdout)
    return found


def test_every_example_validates_and_a_wrong_spec_does_not(schemas):
    examples = sorted((REPO / "examples").glob("*.yml"))
    assert {p.stem.rpartition("_")[2] for p in examples} == {"destination", "source"}
    for path in examples:
        kind = path.stem.rpartition("_")[2]
        jsonschema.validate(yaml.safe_load(path.read_text()), schemas[kind])
    with pytest.raises(jsonschema.ValidationError, match="recipe"):
        jsonschema.validate({"name": "lake", "recipe": "teleport"}, schemas["destination"])
    with pytest.raises(jsonschema.ValidationError, match="streams"):
        jsonschema.validate({"name": "crm", "base_url": "https://api.example"}, schemas["source"])
    assert schemas["source"] == json.loads(json.dumps(source.schema()))  # what bizon-forge://source-spec serves
    assert "describe_target" in schemas["destination"]["description"]


def test_an_unknown_kind_is_refused_with_the_choices():
    done = subprocess.run(
        [sys.executable, "-m", "bizon_forge", "schema", "sink"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2 and "destination" in done.stderr and "source" in done.stderr
