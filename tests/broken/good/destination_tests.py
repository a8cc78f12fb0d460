"""The ndjson destination's own tests, in bizon's pattern (sqlite backend, no services). They bring their own
fixtures: validate_destination runs them with --confcutdir at this folder, away from the bigquery conftest."""

from datetime import datetime, timezone

import orjson
import polars as pl
import pytest

from bizon.common.models import SyncMetadata
from bizon.connectors.destinations.ndjson.src.config import NdjsonDestinationConfig
from bizon.connectors.destinations.ndjson.src.destination import NdjsonDestination
from bizon.destination.models import destination_record_schema
from bizon.engine.backend.adapters.sqlalchemy.backend import SQLAlchemyBackend
from bizon.engine.backend.adapters.sqlalchemy.config import SQLiteConfigDetails
from bizon.engine.backend.config import BackendTypes
from bizon.engine.backend.models import JobStatus
from bizon.monitoring.noop.monitor import NoOpMonitor
from bizon.source.callback import NoOpSourceCallback


@pytest.fixture
def make_destination(tmp_path):
    backend = SQLAlchemyBackend(
        config=SQLiteConfigDetails(database="NOT_USED", schema="NOT_USED", syncCursorInDBEvery=2),
        type=BackendTypes.SQLITE_IN_MEMORY,
    )
    backend.create_all_tables()

    def make(sync_mode: str) -> NdjsonDestination:
        job = backend.create_stream_job(
            name="job", source_name="dummy", stream_name="creatures", sync_mode=sync_mode, job_status=JobStatus.RUNNING
        )
        metadata = SyncMetadata(
            job_id=job.id,
            name="job",
            source_name="dummy",
            stream_name="creatures",
            destination_name="ndjson",
            destination_alias="ndjson",
            sync_mode=sync_mode,
        )
        return NdjsonDestination(
            sync_metadata=metadata,
            config=NdjsonDestinationConfig(directory=str(tmp_path), destination_id="creatures"),
            backend=backend,
            source_callback=NoOpSourceCallback(config={}),
            monitor=NoOpMonitor(sync_metadata=metadata, monitoring_config=None),
        )

    return make


def records(*ids: int) -> pl.DataFrame:
    now = datetime.now(tz=timezone.utc)
    rows = [
        {
            "bizon_id": f"{i:032x}",
            "bizon_extracted_at": now,
            "bizon_loaded_at": now,
            "source_record_id": str(i),
            "source_timestamp": now,
            "source_data": orjson.dumps({"id": i}).decode(),
        }
        for i in ids
    ]
    return pl.DataFrame(rows, schema=destination_record_schema)


def read(destination: NdjsonDestination) -> list[int]:
    return [orjson.loads(line)["source_data"]["id"] for line in destination.target.read_text().splitlines()]


def test_full_refresh_replaces_and_incremental_appends(make_destination):
    first = make_destination("full_refresh")
    assert first.write_records(df_destination_records=records(1, 2)) == (True, None)
    assert not first.target.exists(), "staged records must wait for finalize()"
    first.finalize()
    again = make_destination("full_refresh")
    again.write_records(df_destination_records=records(3, 4))
    again.finalize()
    assert read(again) == [3, 4]
    more = make_destination("incremental")
    more.write_records(df_destination_records=records(5))
    more.finalize()
    assert read(more) == [3, 4, 5]


def test_bad_record_is_returned_not_raised(make_destination):
    frame = records(1).with_columns(pl.lit("not json").alias("source_data"))
    ok, message = make_destination("stream").write_records(df_destination_records=frame)
    assert ok is False and "ndjson" in message
