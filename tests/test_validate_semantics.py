"""The data suite judges a destination by what it declares: WRITE_SEMANTICS (append | upsert) and
FULL_REFRESH_ISOLATION (atomic | in_place). A key-value store written here the way an Elasticsearch-style
destination is (documents keyed on source_record_id in indices, readers going through an alias) passes it; the
bugs agents met fail the case that names them: a target that deduplicates under an append declaration, and a
full refresh readers see before finalize() (an alias pointed at the new index when it is created, or the new run
written straight into the live target).

One bizon 0.6.4 tree serves the module, with the key-value destination and the file, http and sql recipes
rendered with write_semantics="upsert"; each test runs the data suite (suite_probe.py, through runtime.suite as `full`
does) once against one of them.
"""

import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest

from bizon_forge import workspace
from bizon_forge.describe import describe_target
from bizon_forge.registrations import apply_registrations
from bizon_forge.render import render_destination
from bizon_forge.spec.destination import DestinationSpec, FieldSpec
from bizon_forge.validators import catalog, runtime
from bizon_forge.validators.scratch import Scratch
from bizon_forge.validators.validation import validate_destination

KV = "kv"
DESTINATION = f"bizon/connectors/destinations/{KV}/src/destination.py"
CHECK = f"bizon/connectors/destinations/{KV}/config/{KV}.check.yml"
PLANT_AT = "                pass  # the index exists only here until finalize() points the alias at it\n"
# A key-value store the way an Elasticsearch-style destination uses one, on local files.
KV_CODE = '''import json
import os
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union
from uuid import uuid4

import polars as pl

from bizon.common.models import SyncMetadata
from bizon.destination.destination import AbstractDestination
from bizon.engine.backend.backend import AbstractBackend
from bizon.monitoring.monitor import AbstractMonitor
from bizon.source.callback import AbstractSourceCallback
from bizon.source.config import SourceSyncModes

from .config import KvDestinationConfig


class KvDestination(AbstractDestination):
    """Documents keyed on source_record_id in indices (one JSON file each), read through an alias (a JSON file
    listing indices). A full refresh fills a new index that finalize() swaps in with one alias update."""

    WRITE_SEMANTICS = "upsert"
    FULL_REFRESH_ISOLATION = "atomic"

    def __init__(
        self,
        sync_metadata: SyncMetadata,
        config: KvDestinationConfig,
        backend: AbstractBackend,
        source_callback: AbstractSourceCallback,
        monitor: AbstractMonitor,
    ):
        super().__init__(
            sync_metadata=sync_metadata,
            config=config,
            backend=backend,
            source_callback=source_callback,
            monitor=monitor,
        )
        self.folder = Path(config.directory)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._new: Dict[str, str] = {}  # alias -> the index this full refresh fills
        self._failed: Optional[str] = None

    @property
    def alias(self) -> str:
        return self.destination_id or self.sync_metadata.stream_name

    def _load(self, name: str) -> dict:
        path = self.folder / f"{name}.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def _store(self, name: str, value: dict) -> None:
        temporary = self.folder / f".{name}.{uuid4().hex[:8]}.tmp"
        try:
            temporary.write_text(json.dumps(value))
            os.replace(temporary, self.folder / f"{name}.json")
        finally:
            temporary.unlink(missing_ok=True)

    def _aliased(self) -> List[str]:
        return self._load(f"{self.alias}.alias").get("indices", [])

    def _point(self, indices: List[str]) -> None:
        self._store(f"{self.alias}.alias", {"indices": indices})

    def _drop(self, names: List[str]) -> None:
        for name in names:
            (self.folder / f"{name}.json").unlink(missing_ok=True)

    def _index_for_write(self) -> str:
        if self.sync_metadata.sync_mode == SourceSyncModes.INCREMENTAL:
            return f"{self.alias}__incremental"
        if self.sync_metadata.sync_mode == SourceSyncModes.FULL_REFRESH:
            if self.alias not in self._new:
                self._new[self.alias] = f"{self.alias}__{uuid4().hex[:8]}"
                pass  # the index exists only here until finalize() points the alias at it
            return self._new[self.alias]
        aliased = self._aliased()
        if not aliased:
            aliased = [f"{self.alias}__{uuid4().hex[:8]}"]
            self._point(aliased)
        return aliased[-1]

    def check_connection(self) -> bool:
        return os.access(self.folder, os.W_OK)

    def write_records(self, df_destination_records: pl.DataFrame) -> Tuple[bool, Union[str, None]]:
        try:
            if "source_data" not in df_destination_records.columns:
                raise ValueError("the frame has no source_data")
            name = self._index_for_write()
            documents = self._load(name)
            for row in df_destination_records.iter_rows(named=True):  # the later row of an id wins
                documents[row["source_record_id"]] = {
                    "source_record_id": row["source_record_id"],
                    "source_data": row["source_data"],
                    "source_timestamp": row["source_timestamp"].isoformat(),
                }
            self._store(name, documents)
        except Exception as error:
            self._failed = f"kv: {type(error).__name__}: {error}"
            return False, self._failed
        return True, None

    def finalize(self) -> bool:
        if self._failed:
            raise RuntimeError(f"kv: not publishing, a flush failed: {self._failed}")
        if self.sync_metadata.sync_mode == SourceSyncModes.FULL_REFRESH and self.alias in self._new:
            old = self._aliased()
            self._point([self._new.pop(self.alias)])  # one alias update: the old indices out, the new one in
            self._drop([name for name in old if name not in self._aliased()])
        elif self.sync_metadata.sync_mode == SourceSyncModes.INCREMENTAL:
            staged = self._load(f"{self.alias}__incremental")
            aliased = self._aliased() or [f"{self.alias}__{uuid4().hex[:8]}"]
            documents = self._load(aliased[-1])
            documents.update(staged)
            self._store(aliased[-1], documents)
            self._point(aliased)
            self._drop([f"{self.alias}__incremental"])
        return True

    def read_back(self) -> pl.DataFrame:
        rows = [document for name in self._aliased() for document in self._load(name).values()]
        return pl.DataFrame(rows) if rows else pl.DataFrame()
'''
KV_CHECK = f"""name: check_{KV}

source:
  name: dummy
  stream: creatures
  authentication:
    type: api_key
    params:
      token: dummy_key

destination:
  name: {KV}
  config:
    destination_id: forge_check
    directory: ${{env://BIZON_FORGE_SCRATCH}}/{KV}
"""
# What the planted bugs put where PLANT_AT is, or change in the declarations.
ALIAS_AT_CREATION = "                self._point(self._aliased() + [self._new[self.alias]])  # readers see both\n"
WRITES_IN_PLACE = (
    "                self._drop(self._aliased())  # the new run goes straight into the live target\n"
    "                self._point([self._new[self.alias]])\n"
)
NOT_UPSERT = ('    WRITE_SEMANTICS = "upsert"\n', '    WRITE_SEMANTICS = "append"\n')
IN_PLACE = ('    FULL_REFRESH_ISOLATION = "atomic"\n', '    FULL_REFRESH_ISOLATION = "in_place"\n')
NEW_CASES = ("data.upsert", "data.full_refresh_isolated")


@pytest.fixture(scope="module")
def ws(pristine, tmp_path_factory) -> workspace.Workspace:
    root = tmp_path_factory.mktemp("semantics") / "tree"
    shutil.copytree(pristine("0.6.4"), root, symlinks=True)
    ws = workspace.resolve(None, workspace.Settings.from_paths([str(root)]))
    directory = FieldSpec(name="directory", required=True, description="Folder the indices are kept in")
    specs = [
        DestinationSpec(name=KV, fields=[directory], write_semantics="upsert"),
        DestinationSpec(name="keyed_file", recipe="file", write_semantics="upsert"),
        DestinationSpec(name="keyed_http", recipe="http", full_refresh="replace_flag", write_semantics="upsert"),
        DestinationSpec(name="keyed_sql", recipe="sql", write_semantics="upsert"),  # SQLite in the check config
    ]
    for spec in specs:
        assert describe_target(ws, spec).ok
        assert render_destination(ws, spec.name).ok
        assert apply_registrations(ws, spec.name).ok
    example = root / "bizon/connectors/destinations/keyed_http/config/keyed_http.example.yml"  # the user's endpoint
    example.write_text(example.read_text().replace('"endpoint-value"', '"https://ingest.example.com/records"'))
    (root / DESTINATION).write_text(KV_CODE)
    (root / CHECK).write_text(KV_CHECK)
    return ws


def data_suite(ws: workspace.Workspace, name: str, tmp_path) -> dict:
    """The data suite's findings by id, as `full` reports them, with the seconds it took."""
    check = f"bizon/connectors/destinations/{name}/config/{name}.check.yml"
    target = Scratch(ws.root, name, (ws.root / check).read_text())
    log = ws.state_dir / f"data-{name}.log"  # a failure's finding names it relative to the tree
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    try:
        found = runtime.suite(ws, name, check, target.run_id, list(catalog.DATA), tmp_path, log, target.env("data"))
    finally:
        target.close()
    print(f"data suite of {name}: {time.perf_counter() - started:.1f} s")
    return {f.id: f for f in found}


@contextmanager
def planted(ws: workspace.Workspace, *edits: tuple[str, str]):
    path = ws.root / DESTINATION
    original = path.read_text()
    text = original
    for old, new in edits:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    path.write_text(text)
    try:
        yield
    finally:
        path.write_text(original)


def statuses(found: dict) -> dict:
    return {id: f.status for id, f in found.items()}


def test_every_recipe_renders_the_declarations_and_the_http_one_says_it_writes_in_place(ws):
    rendered = {
        name: (ws.root / f"bizon/connectors/destinations/{name}/src/destination.py").read_text()
        for name in ("keyed_file", "keyed_http")
    }
    assert 'WRITE_SEMANTICS = "upsert"' in rendered["keyed_file"]
    assert 'FULL_REFRESH_ISOLATION = "atomic"' in rendered["keyed_file"]
    # no atomic replace over an endpoint: the recipe declares what it does, whatever the spec said
    assert 'FULL_REFRESH_ISOLATION = "in_place"' in rendered["keyed_http"]
    assert 'row["key"] = row["source_record_id"]' in rendered["keyed_http"]
    for name in rendered:  # the upsert branches of the templates are code an agent starts from: clean, complete
        result = validate_destination(ws, name, level="fast")
        assert result.ok and not [f for f in result.findings if f.status == "warn"], [
            (f.id, f.message) for f in result.findings if f.status != "pass"
        ]
    for recipe in ("custom", "sql"):
        spec = DestinationSpec(name=f"declared_{recipe}", recipe=recipe, full_refresh_isolation="in_place")
        assert describe_target(ws, spec).ok
        files = render_destination(ws, spec.name, dry_run=True, content=True).files
        code = next(f.content for f in files if f.path.endswith("src/destination.py"))
        assert 'WRITE_SEMANTICS = "append"' in code
        # the custom skeleton says what the agent declared; the sql recipe swaps atomically whatever was declared
        assert f'FULL_REFRESH_ISOLATION = "{"in_place" if recipe == "custom" else "atomic"}"' in code


def test_a_key_value_upsert_destination_passes_the_data_suite(ws, tmp_path):
    found = data_suite(ws, KV, tmp_path)
    # a folder of files: no receiver or server to make misbehave
    unjudged = {"data.unreliable_target", "data.publish_fails"}
    assert statuses(found) == {id: "skip" if id in unjudged else "pass" for id in catalog.DATA}
    assert "upsert" in found["data.upsert"].message and "later record" in found["data.hostile"].message


@pytest.mark.parametrize(
    "bug,declared",
    [(ALIAS_AT_CREATION, NOT_UPSERT), (WRITES_IN_PLACE, None)],
    ids=["alias_at_creation+dedup_under_append", "writes_in_place"],
)
def test_planted_bugs_fail_the_case_that_names_them(ws, tmp_path, bug, declared):
    """Two bugs of the trials at once where they are judged by different cases: one suite run judges both."""
    with planted(ws, (PLANT_AT, bug), *[declared] if declared else []):
        found = data_suite(ws, KV, tmp_path)
    isolated = found["data.full_refresh_isolated"]
    assert isolated.status == "fail", isolated.message
    assert "of the run in progress" in isolated.message and "before finalize()" in isolated.message
    assert "FULL_REFRESH_ISOLATION" in isolated.hint
    assert found["data.full_refresh_twice"].status == "pass"  # every end state is right: only reads mid-run tell
    for id in ("data.hostile", "data.upsert") if declared else ():  # the key-value store keeps one record per id
        assert found[id].status == "fail", (id, found[id].message)
        assert "deduplicates" in found[id].message and "append" in found[id].message, found[id].message
        assert 'WRITE_SEMANTICS = "upsert"' in found[id].hint


def test_the_recipes_upsert_when_the_spec_says_so(ws, tmp_path_factory):
    names = ("keyed_file", "keyed_http", "keyed_sql")
    with ThreadPoolExecutor(max_workers=3) as pool:  # three destinations, three subprocesses: one wait
        runs = pool.map(lambda name: data_suite(ws, name, tmp_path_factory.mktemp(name)), names)
        found = dict(zip(names, runs, strict=True))
    for name in names:
        assert {id: f.message for id, f in found[name].items() if f.status == "fail"} == {}, name
        assert "upsert" in found[name]["data.upsert"].message, name
    # no atomic replace over an endpoint: the http recipe declares it writes in place
    skipped = found["keyed_http"]["data.full_refresh_isolated"]
    assert skipped.status == "skip" and "declares FULL_REFRESH_ISOLATION = 'in_place'" in skipped.message
    assert found["keyed_file"]["data.full_refresh_isolated"].status == "pass"
    assert found["keyed_sql"]["data.full_refresh_isolated"].status == "pass"
