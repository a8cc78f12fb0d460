import os
import shutil
from pathlib import Path
from typing import Tuple, Union

import orjson
import polars as pl
from loguru import logger

from bizon.common.models import SyncMetadata
from bizon.destination.destination import AbstractDestination
from bizon.engine.backend.backend import AbstractBackend
from bizon.monitoring.monitor import AbstractMonitor
from bizon.source.callback import AbstractSourceCallback
from bizon.source.config import SourceSyncModes

from .config import NdjsonDestinationConfig


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
            lines = []
            for record in df_destination_records.iter_rows(named=True):
                record["source_data"] = orjson.loads(record["source_data"])
                lines.append(orjson.dumps(record))
            with path.open("ab") as handle:
                handle.write(b"\n".join(lines) + b"\n")
        except Exception as error:
            message = f"ndjson: writing {df_destination_records.height} records to {path} failed: {error}"
            logger.error(message)
            return False, message
        return True, None

    def _publish(self, replace: bool) -> None:
        if not self.staging.exists():
            return
        if replace:
            os.replace(self.staging, self.target)
        else:
            with self.staging.open("rb") as staged, self.target.open("ab") as target:
                shutil.copyfileobj(staged, target)
            self.staging.unlink()
        logger.info(f"ndjson: published {self.target}")

    def finalize(self) -> bool:
        if self.sync_metadata.sync_mode == SourceSyncModes.FULL_REFRESH:
            self._publish(replace=True)
        elif self.sync_metadata.sync_mode == SourceSyncModes.INCREMENTAL:
            self._publish(replace=False)
        return True
