"""What `workspace init` installs beyond bizon's runtime dependencies, and what the interpreter probe looks for, read
from the tree itself: the extras its registration modules and its tests' conftests import at their top level."""

import shutil

from bizon_forge import workspace


def test_the_extras_follow_the_imports_and_a_forge_made_connector_is_left_to_validation(pristine, tmp_path):
    assert workspace.needed_extras(pristine("0.5.0")) == ["bigquery"]  # models.py imports the bigquery destination
    assert workspace.needed_extras(pristine("0.6.4")) == ["bigquery"]  # the destinations' conftest does
    assert ("google.cloud", "bigquery") in workspace.foreign_imports(pristine("0.5.0"))
    assert ("google.cloud", "bigquery") not in workspace.foreign_imports(pristine("0.6.4"))  # models.py: no more

    # A destination whose config.py imports a client library (a trap validation names): followed for the extras
    # `workspace venv` installs, not for the probe once bizon-forge made it (it has a spec of ours).
    tree = tmp_path / "ws"
    shutil.copytree(pristine("0.6.4"), tree, symlinks=True)
    config = tree / workspace.DESTINATIONS_DIR / "lake" / "src" / "config.py"
    config.parent.mkdir(parents=True)
    config.write_text("import redis\n")
    models = tree / workspace.MODELS_FILE
    models.write_text("from bizon.connectors.destinations.lake.src.config import LakeConfig\n" + models.read_text())
    assert ("redis", "") in workspace.foreign_imports(tree)
    assert workspace.forge_made(tree) == []
    (tree / workspace.STATE_DIR / "specs").mkdir(parents=True)
    (tree / workspace.STATE_DIR / "specs" / "lake.json").write_text("{}")
    assert workspace.forge_made(tree) == [config.parent.parent]
    assert ("redis", "") not in workspace.foreign_imports(tree, skip=workspace.forge_made(tree))
