# ruff: noqa  (bizon code written as the guide writes it, for bizon 0.5.2 and 0.6.4 alike)
"""A hand-written good source for validate_source's tests: pattern A (cursor), bearer auth, retries on 429/5xx
mounted on both schemes of bizon's own session, every HTTP error raised, an answer cut mid-body asked again."""

from enum import Enum
from typing import Any, List, Optional, Tuple

from requests.adapters import HTTPAdapter, Retry
from requests.exceptions import ChunkedEncodingError
from requests.auth import AuthBase

from bizon.source.auth.builder import AuthBuilder
from bizon.source.config import SourceConfig
from bizon.source.models import SourceIteration, SourceRecord
from bizon.source.source import AbstractSource


class ForgeApiStreams(str, Enum):
    ITEMS = "items"


class ForgeApiSourceConfig(SourceConfig):
    stream: ForgeApiStreams
    base_url: str = "https://api.example.com"
    page_size: int = 10  # the API serves at most 5 a page


class ForgeApiSource(AbstractSource):
    def __init__(self, config: ForgeApiSourceConfig):
        super().__init__(config)
        self.config: ForgeApiSourceConfig = config
        retries = Retry(
            total=5,
            backoff_factor=0.1,
            status_forcelist=[429, 500, 502, 503, 504],
            allowed_methods=["GET", "POST"],
            respect_retry_after_header=True,
            raise_on_status=False,
        )
        for scheme in ("http://", "https://"):
            self.session.mount(scheme, HTTPAdapter(max_retries=retries))

    @staticmethod
    def streams() -> List[str]:
        return [s.value for s in ForgeApiStreams]

    @staticmethod
    def get_config_class() -> SourceConfig:
        return ForgeApiSourceConfig

    def get_authenticator(self) -> Optional[AuthBase]:
        if self.config.authentication is None:
            return None
        return AuthBuilder.token(params=self.config.authentication.params)

    def check_connection(self) -> Tuple[bool, Optional[Any]]:
        return True, None

    def get_total_records_count(self) -> Optional[int]:
        return None

    def get(self, pagination: dict = None) -> SourceIteration:
        for attempt in range(3):  # a body cut short is read after the adapter's retries, which never see it
            try:
                return self._page(pagination)
            except ChunkedEncodingError:
                if attempt == 2:
                    raise

    def _page(self, pagination: dict = None) -> SourceIteration:
        params = {"limit": self.config.page_size}
        if pagination:
            params["cursor"] = pagination["cursor"]
        response = self.session.get(f"{self.config.base_url}/items", params=params, timeout=30)
        response.raise_for_status()
        body = response.json()
        records = [SourceRecord(id=str(row["id"]), data=row) for row in body["data"]]
        cursor = body.get("next_cursor")
        return SourceIteration(records=records, next_pagination={"cursor": cursor} if cursor else {})
