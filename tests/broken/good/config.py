from typing import Literal

from pydantic import Field

from bizon.destination.config import (
    AbstractDestinationConfig,
    AbstractDestinationDetailsConfig,
    DestinationTypes,
)


class NdjsonDestinationConfig(AbstractDestinationDetailsConfig):
    directory: str = Field(..., description="Folder the .jsonl files are written to; created if missing.")


class NdjsonConfig(AbstractDestinationConfig):
    name: Literal[DestinationTypes.NDJSON]
    alias: str = "ndjson"
    config: NdjsonDestinationConfig
