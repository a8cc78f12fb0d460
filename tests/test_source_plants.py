"""Each bug of tests/sources/rendered_plants.py, planted in a source the rest recipe rendered, is a real bug, shown
without validate_source: its own get() loop against the mock's case that exercises it loses or repeats records, or
ends green where the API never recovered, or never stops asking; the source as rendered reads the same case right.
(test_source_plants_*.py prove that `validate_source full` names each one.)"""

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bizon_forge.connector import Connector
from bizon_forge.validators.fakes import mock_api
from tests.sources.rendered_plants import PLANTS, SPECS, planted_copy, probe, render, symptom

pytestmark = pytest.mark.slow  # a subprocess per loop
BACKOFF = "BACKOFF_SECONDS = 1.0\n"


@pytest.fixture(scope="module")
def rendered(pristine, tmp_path_factory):
    root = tmp_path_factory.mktemp("rendered") / "tree"
    shutil.copytree(pristine("0.6.4"), root, symlinks=True)
    render(root)
    return root


def _quick_backoff(path: Path) -> None:
    """Both copies back off 0.01 s, not 1 s, between retries: the outage's five retries take a second, not 30 s
    (a Retry-After the API sends is still honoured)."""
    text = path.read_text()
    assert text.count(BACKOFF) == 1, BACKOFF
    path.write_text(text.replace(BACKOFF, "BACKOFF_SECONDS = 0.01\n"))


def _truth(api: mock_api.MockApi, bug: str) -> tuple[list[str], tuple[str, str] | None]:
    """The ids the loop must emit, and the incremental run's (last_run, cursor_field) when it is one."""
    plant = PLANTS[bug]
    if plant.symptom == "unfiltered":  # an incremental run after 3 records changed: these, only these
        last_run = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
        return [str(i) for i in api.touch(plant.stream)], (last_run, "updated_at")
    return [str(i) for i in api.report(plant.case)["streams"][plant.stream]["ids"]], None


@pytest.mark.parametrize("bug", list(PLANTS))
def test_each_plant_loses_repeats_or_hides_what_the_rendered_source_reads_right(rendered, tmp_path, bug):
    plant = PLANTS[bug]
    good_ws = planted_copy(rendered, tmp_path / "good", None)
    bad_ws = planted_copy(rendered, tmp_path / "planted", bug)
    for ws in (good_ws, bad_ws):
        _quick_backoff(ws.root / Connector(plant.spec, "source").code_rel)
    with mock_api.start(SPECS[plant.spec]) as api:
        truth, since = _truth(api, bug)
        bad = probe(bad_ws, plant.spec, plant.stream, api, plant.case, tmp_path / "scratch", since)
        bad_report = api.report(plant.case)
        api.reset()
        good = probe(good_ws, plant.spec, plant.stream, api, plant.case, tmp_path / "scratch-good", since)
        good_report = api.report(plant.case)
    shown = symptom(bug, bad, bad_report, truth)
    assert shown, (bug, "the planted loop read the case right:", bad, bad_report["streams"][plant.stream])
    print(f"{bug} against {plant.case or 'the default API'}: {shown}")
    assert symptom(bug, good, good_report, truth) is None, (bug, good)
    if plant.case in ("error_in_200", "outage"):  # the fault never lifts: the right source fails
        assert not good["ok"] and good["error"], (bug, good)
        assert good_report["streams"][plant.stream]["capped"] == 0, good_report["streams"][plant.stream]
    else:
        assert good["ok"] and sorted(good["ids"]) == sorted(truth), (bug, good, truth)
        assert len(good["ids"]) == len(set(good["ids"])), good["ids"]
