"""The validation engine both kinds share: a crash in a check is a finding on both, a symlinked folder is refused
on both, a slow source check reports that it still runs, and a check's `requires` answers it as a skip."""

import functools
import time

import pytest

from bizon_forge import workspace
from bizon_forge.findings import Refused, failed, passed
from bizon_forge.validators import engine, formatting, source_validation, validate_destination
from bizon_forge.validators.source_validation import SOURCE, validate_source
from tests.broken.install import NAME as DESTINATION_NAME
from tests.broken.install import install_good
from tests.sources.plant import NAME as SOURCE_NAME
from tests.sources.plant import install


def _boom(*args, **kwargs):
    raise RuntimeError("a bug of bizon-forge")


def test_a_crashing_destination_check_is_its_finding_and_the_others_still_answer(make_tree, monkeypatch):
    ws = workspace.resolve(None, workspace.Settings.from_paths([str(make_tree("0.6.4"))]))
    install_good(ws)
    monkeypatch.setattr(formatting, "_ruff", _boom)  # inside the format unit, on the pool
    result = validate_destination(ws, DESTINATION_NAME, verbose=True, use_cache=False)
    found = {f.id: f for f in result.findings}
    crashed = found["format.ruff_format"]
    assert crashed.status == "fail" and "RuntimeError: a bug of bizon-forge" in crashed.message, crashed
    assert crashed.hint  # the catalog's fix, though the crash was built without its declaration
    assert found["format.ruff_check"].status == "skip"
    assert found["format.ruff_check"].blocked_by == "format.ruff_format"
    assert found["contract.write_records"].status == "pass"  # the other units' answers are kept
    assert not result.ok and "1 failed (format.ruff_format)" in result.summary


def test_a_crashing_source_check_is_its_finding_and_the_others_still_answer(make_tree, monkeypatch):
    ws = install(make_tree("0.6.4"))
    monkeypatch.setattr(source_validation, "_probe", _boom)  # inside the stream's contract unit
    result = validate_source(ws, SOURCE_NAME, verbose=True)
    found = {f.id: f for f in result.findings}
    crashed = found["pull.build"]
    assert crashed.status == "fail" and "RuntimeError: a bug of bizon-forge" in crashed.message, crashed
    assert crashed.hint == source_validation.PULL_BUILD.fix
    assert found["pull.every_record_once"].status == "skip" and found["pull.every_record_once"].blocked_by
    assert found["discovery.source_list"].status == "pass"  # discovery ran in a unit of its own
    assert found["src.syntax"].status == "pass"
    assert not result.ok


def test_a_source_folder_that_is_a_symlink_out_of_the_tree_is_refused(make_tree, tmp_path):
    root = make_tree("0.6.4")
    ws = workspace.resolve(None, workspace.Settings.from_paths([str(root)]))
    outside = tmp_path / "outside"
    (outside / "src").mkdir(parents=True)
    (outside / "src" / "source.py").write_text("SECRET = 'do not read'\n")
    (root / "bizon/connectors/sources/evil").symlink_to(outside, target_is_directory=True)
    with pytest.raises(Refused) as refused:
        validate_source(ws, "evil")
    assert [f.id for f in refused.value.findings] == ["validate.unsafe_path"]
    assert "source's real folder" in (refused.value.findings[0].hint or "")


def test_a_slow_source_check_reports_that_it_still_runs(make_tree, monkeypatch):
    ws = install(make_tree("0.6.4"))
    probe = source_validation._probe

    @functools.wraps(probe)
    def slow(*args, **kwargs):
        time.sleep(0.6)
        return probe(*args, **kwargs)

    monkeypatch.setattr(source_validation, "_probe", slow)
    monkeypatch.setattr(engine, "HEARTBEAT_S", 0.1)
    calls: list[tuple[float, float, str]] = []
    result = validate_source(ws, SOURCE_NAME, progress=lambda *a: calls.append(a))
    assert result.ok, result.summary
    beats = [m for _, _, m in calls if m.startswith("still running: ")]
    assert beats and "stream items" in beats[0], calls
    done = [d for d, _, _ in calls]
    assert done == sorted(done) and calls[-1][0] == calls[-1][1], calls  # counts up to the total


def test_a_required_check_that_did_not_pass_makes_the_engine_answer_a_skip():
    found = {
        "pull.pagination_ends": failed("pull.pagination_ends", "pagination never ends"),
        "pull.incremental": passed("pull.incremental", "exactly the changed records"),
        "run.bizon_run": failed("run.bizon_run", "the run timed out"),
        "pull.build": passed("pull.build"),
        "pull.auth_sent": passed("pull.auth_sent"),
    }
    settled = {f.id: f for f in engine.settle(SOURCE, "full", found)}
    incremental = settled["pull.incremental"]
    assert incremental.status == "skip" and incremental.blocked_by == "pull.pagination_ends"
    assert incremental.message == "Not run: pull.pagination_ends did not pass."
    assert settled["run.bizon_run"].status == "skip" and settled["run.bizon_run"].blocked_by == "pull.pagination_ends"
    assert settled["pull.pagination_ends"].status == "fail" and settled["pull.pagination_ends"].hint  # the fix
    # and a unit asks the declaration before it runs a check whose requirement failed
    assert source_validation.PULL_INCREMENTAL.unmet({"pull.pagination_ends": passed("pull.pagination_ends")}) is None
    unmet = source_validation.RUN_BIZON_RUN.unmet(found, " for stream items")
    assert unmet is not None and unmet.message == "Not run: pull.pagination_ends did not pass for stream items."
