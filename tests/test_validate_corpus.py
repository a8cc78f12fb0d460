"""The corpus: the good ndjson destination broken one way per finding id, each caught by exactly that id.

One bizon 0.6.4 tree serves the whole module: each case edits it, validates, and puts the files back.
"""

import shutil

import pytest
from bizon_forge.validators import validate_destination
from bizon_forge.validators.catalog import BY_ID
from bizon_forge.validators.report import EXCERPT_CHARS

from bizon_forge import workspace
from tests.broken.corpus import CASES
from tests.broken.install import NAME, break_it, install_good, restore


@pytest.fixture(scope="module")
def good(pristine, tmp_path_factory) -> workspace.Workspace:
    root = tmp_path_factory.mktemp("corpus") / "ws"
    shutil.copytree(pristine("0.6.4"), root, symlinks=True)
    ws = workspace.resolve(None, workspace.Settings.from_paths([str(root)]))
    install_good(ws)
    return ws


def test_every_check_has_a_broken_destination():
    assert set(CASES) == set(BY_ID)


def test_good_destination_passes_everything(good):
    """Also fills the cache for the checks a case leaves untouched (bizon's own tests, mostly)."""
    result = validate_destination(good, NAME, level="full", verbose=True)
    assert result.ok, result.summary
    assert {f.id for f in result.findings} == set(BY_ID)
    assert all(f.status == "pass" for f in result.findings), [
        f for f in result.findings if f.status != "pass"
    ]


@pytest.mark.parametrize("id", list(CASES))
def test_broken_destination_is_caught_by_exactly_its_id(good, id):
    case = CASES[id]
    originals = break_it(good, case)
    try:
        result = validate_destination(good, NAME, level=case.level)
    finally:
        restore(originals)
    flagged = {f.id: f for f in result.findings if f.status in ("fail", "warn")}
    assert set(flagged) == {id}, f"{case.why}: {result.summary}\n" + "\n".join(
        f"{f.id}: {f.message}" for f in flagged.values()
    )
    finding = flagged[id]
    assert finding.status == case.status
    assert finding.hint and finding.message
    assert result.ok is (case.status != "fail")
    assert finding.excerpt is None or len(finding.excerpt) <= EXCERPT_CHARS
    if finding.file:
        assert not finding.file.startswith("/"), "paths are workspace-relative"
