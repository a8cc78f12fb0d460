import os
import shutil
from pathlib import Path
from typing import Optional, Tuple, Union

import orjson
import polars as pl
from loguru import logger

from bizon.common.models import SyncMetadata
from bizon.destination.destination import AbstractDestination
from bizon.engine.backend.backend import AbstractBackend
from bizon.engine.backend.models import JobStatus
from bizon.monitoring.monitor import AbstractMonitor
from bizon.source.callback import AbstractSourceCallback
from bizon.source.config import SourceSyncModes

from .config import NdjsonDestinationConfig

CONTRACT = ("bizon_id", "bizon_extracted_at", "bizon_loaded_at", "source_record_id", "source_timestamp", "source_data")


class NdjsonDestination(AbstractDestination):
    """One JSON object per line in {directory}/{destination_id}.jsonl.

    full_refresh and incremental write to a staging file that finalize() publishes, replacing or appending
    to the target; stream appends to the target directly (bizon never calls finalize() there).
    """

    def __init__(
        self,
        sync_metadata: SyncMetadata,
        config: NdjsonDestinationConfig,
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
        self.config: NdjsonDestinationConfig = config
        self.folder = Path(config.directory)
        self._failed: Optional[str] = None
        self._prepare_folder()

    @property
    def target(self) -> Path:
        return self.folder / f"{self.destination_id or self.sync_metadata.stream_name}.jsonl"

    @property
    def staging(self) -> Path:
        return self.target.with_name(self.target.stem + ".staging.jsonl")

    @property
    def stages(self) -> bool:
        return self.sync_metadata.sync_mode != SourceSyncModes.STREAM

    def _prepare_folder(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        # A full refresh starts over: a staging file left by a failed run must not be published.
        if self.sync_metadata.sync_mode == SourceSyncModes.FULL_REFRESH:
            self.staging.unlink(missing_ok=True)

    def check_connection(self) -> bool:
        return os.access(self.folder, os.W_OK)

    def write_records(self, df_destination_records: pl.DataFrame) -> Tuple[bool, Union[str, None]]:
        path = self.staging if self.stages else self.target
        try:
            missing = [c for c in CONTRACT if c not in df_destination_records.columns]
            if missing:
                raise ValueError(f"the frame lacks {missing}")
            lines = []
            for record in df_destination_records.iter_rows(named=True):
                record["source_data"] = orjson.loads(record["source_data"])
                lines.append(orjson.dumps(record))
            with path.open("ab") as handle:
                handle.write(b"".join(line + b"\n" for line in lines))
        except Exception as error:
            message = f"ndjson: writing {df_destination_records.height} records to {path} failed: {error}"
            self._failed = message
            logger.error(message)
            return False, message
        return True, None

    def _publish(self, replace: bool) -> None:
        if not self.staging.exists():
            return
        if replace:
            os.replace(self.staging, self.target)
        else:
            # The target and the staging into a new file, then one rename: a failure (a full disk) leaves the
            # target whole and the staging where the next run's finalize() publishes it.
            fresh = self.target.with_name(self.target.name + ".next")
            with fresh.open("wb") as out:
                for part in (self.target, self.staging):
                    if part.exists():
                        with part.open("rb") as handle:
                            shutil.copyfileobj(handle, out)
            os.replace(fresh, self.target)
            self.staging.unlink()
        logger.info(f"ndjson: published {self.target}")

    def read_back(self) -> pl.DataFrame:
        if not self.target.exists():
            return pl.DataFrame()
        rows = [orjson.loads(line) for line in self.target.read_bytes().splitlines() if line]
        for row in rows:
            row["source_data"] = orjson.dumps(row["source_data"]).decode()
        return pl.DataFrame(rows) if rows else pl.DataFrame()

    def write_or_buffer_records(
        self, df_destination_records, iteration, last_iteration=False, session=None, pagination=None, **kwargs
    ):
        # bizon returns before finalize() when the buffer is empty at the last iteration (buffer_size: 0).
        skipped_end = last_iteration and self.buffer.is_empty and self.buffer.df_destination_records.height == 0
        status = super().write_or_buffer_records(
            df_destination_records=df_destination_records,
            iteration=iteration,
            last_iteration=last_iteration,
            session=session,
            pagination=pagination,
            **kwargs,
        )
        if skipped_end and kwargs.get("publish", True) and self.stages:
            self.finalize()
            self.backend.update_stream_job_status(
                job_id=self.sync_metadata.job_id, job_status=JobStatus.SUCCEEDED, session=session
            )
        return status

    def finalize(self) -> bool:
        if self._failed:  # bizon 0.5 calls finalize() after a failed flush: publishing would lose data
            raise RuntimeError(f"ndjson: not publishing, a flush failed: {self._failed}")
        if self.sync_metadata.sync_mode == SourceSyncModes.FULL_REFRESH:
            self._publish(replace=True)
        elif self.sync_metadata.sync_mode == SourceSyncModes.INCREMENTAL:
            self._publish(replace=False)
        return True
