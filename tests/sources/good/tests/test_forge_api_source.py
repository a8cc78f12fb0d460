# ruff: noqa  (bizon code written as the guide writes it, for bizon 0.5.2 and 0.6.4 alike)
"""The good source's own test: two pages served by requests-mock, every record once."""

import requests_mock

from bizon.connectors.sources.forge_api.src.source import ForgeApiSource, ForgeApiSourceConfig


def test_two_pages():
    config = ForgeApiSourceConfig(name="forge_api", stream="items", base_url="http://api.test")
    source = ForgeApiSource(config)
    with requests_mock.Mocker() as m:
        m.get(
            "http://api.test/items",
            [
                {"json": {"data": [{"id": 1}, {"id": 2}], "next_cursor": "c2"}},
                {"json": {"data": [{"id": 3}], "next_cursor": None}},
            ],
        )
        first = source.get({})
        second = source.get(first.next_pagination)
    assert [r.id for r in first.records + second.records] == ["1", "2", "3"]
    assert second.next_pagination == {}
