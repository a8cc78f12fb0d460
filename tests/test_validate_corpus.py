"""The corpus: the good ndjson destination broken one way per finding id, each caught by exactly that id.

A bizon 0.6.4 tree with the good destination serves the module: fast cases run in copies of it, two at a
time; full cases edit it, validate and put the files back, so bizon's suite is answered from the cache.
"""

import shutil
from concurrent.futures import ThreadPoolExecutor

import pytest

from bizon_forge import workspace
from bizon_forge.validators import validate_destination
from bizon_forge.validators.catalog import BY_ID
from bizon_forge.validators.report import EXCERPT_CHARS
from tests.broken.corpus import CASES
from tests.broken.install import NAME, NOTHING_TO_JUDGE, break_it, install_good, restore


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
    assert all(f.status == "skip" for f in result.findings if f.id in NOTHING_TO_JUDGE)
    assert all(f.status == "pass" for f in result.findings if f.id not in NOTHING_TO_JUDGE), [
        f for f in result.findings if f.status != "pass"
    ]


@pytest.fixture(scope="module")
def fast_verdicts(good, tmp_path_factory) -> dict:
    """Every fast case, two at a time (each in its own copy of the tree): the CPU goes to bizon's imports."""

    def judge(id: str):
        root = tmp_path_factory.mktemp("case") / "ws"
        shutil.copytree(good.root, root, symlinks=True, ignore=shutil.ignore_patterns(".git"))
        ws = workspace.resolve(None, workspace.Settings.from_paths([str(root)]))
        break_it(ws, CASES[id])
        return validate_destination(ws, NAME, level="fast")

    fast = [id for id, case in CASES.items() if case.level == "fast"]
    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(fast, pool.map(judge, fast), strict=True))


@pytest.mark.parametrize("id", list(CASES))
def test_broken_destination_is_caught_by_exactly_its_id(good, fast_verdicts, id):
    case = CASES[id]
    if case.level == "fast":
        result = fast_verdicts[id]
    else:  # in the module's tree, where the good run cached what these cases leave untouched
        originals = break_it(good, case)
        try:
            result = validate_destination(good, NAME, level=case.level)
        finally:
            restore(originals)
    flagged = {f.id: f for f in result.findings if f.status in ("fail", "warn")}
    assert set(flagged) == {id, *case.also}, f"{case.why}: {result.summary}\n" + "\n".join(
        f"{f.id}: {f.message}" for f in flagged.values()
    )
    finding = flagged[id]
    assert finding.status == case.status
    assert finding.hint and finding.message
    assert result.ok is (case.status != "fail")
    assert finding.excerpt is None or len(finding.excerpt) <= EXCERPT_CHARS
    if finding.file:
        assert not finding.file.startswith("/"), "paths are workspace-relative"
