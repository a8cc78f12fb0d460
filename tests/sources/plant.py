"""The hand-written good source of validate_source's tests, put into a bizon tree with its spec, and the bugs
planted in it: each a text replacement of the good source (one `old` each, found once)."""

import shutil
from pathlib import Path

from bizon_forge import workspace
from bizon_forge.spec import source as source_spec
from bizon_forge.spec.source import SourceSpec

HERE = Path(__file__).parent
NAME = "forge_api"
SPEC = SourceSpec.model_validate(
    {
        "name": NAME,
        "base_url": "https://api.example.com",
        "auth": "bearer",
        "streams": [
            {
                "name": "items",
                "endpoint": "/items",
                "records_path": "data",
                "id_field": "id",
                "pagination": {"pattern": "cursor", "page_size": 5, "cursor_param": "cursor"},
            }
        ],
    }
)
SOURCE = f"bizon/connectors/sources/{NAME}/src/source.py"

# bug -> [(old, new)], planted in SOURCE
BUGS = {
    "pagination_never_ends": [
        ('next_pagination={"cursor": cursor} if cursor else {}', 'next_pagination={"cursor": cursor}'),
    ],
    # stops on a "short" page, but the API caps the page size below what the source asks: the later pages are lost
    "last_page_lost": [
        ("if cursor else {})", "if cursor and len(records) == self.config.page_size else {})"),
    ],
    "duplicate_id_across_pages": [
        ('SourceRecord(id=str(row["id"]), data=row) for row in', "SourceRecord(id=str(n), data=row) for n, row in"),
        ('for n, row in body["data"]]', 'for n, row in enumerate(body["data"])]'),
    ],
    # the guide's Step 2 template: a plain requests.Session (bizon's raise-for-status hook gone) with retries on
    # https:// only, and a lenient parse: over http the 429's body is read as an empty last page
    "swallowed_http_error": [
        ("        response.raise_for_status()\n", ""),
        (
            '        for scheme in ("http://", "https://"):\n'
            "            self.session.mount(scheme, HTTPAdapter(max_retries=retries))\n",
            "",
        ),
        (
            "    @staticmethod\n    def streams()",
            "    def get_session(self):\n"
            "        import requests\n\n"
            "        session = requests.Session()\n"
            '        session.mount("https://", HTTPAdapter(max_retries=Retry(total=3, status_forcelist=[429])))\n'
            "        return session\n\n"
            "    @staticmethod\n    def streams()",
        ),
        ('body["data"]]', 'body.get("data", [])]'),
    ],
    "no_retry_on_429": [
        ('for scheme in ("http://", "https://"):', 'for scheme in ("https://",):'),
    ],
    # the last page's records dropped: unseen while the API ends on an empty page (the default mock's)
    "last_page_records_dropped": [
        ("SourceIteration(records=records, next", "SourceIteration(records=records if cursor else [], next"),
    ],
    # a page shorter than the API's usual 5 taken for the last: unseen while only the last page is short
    "short_page_taken_for_last": [
        ("if cursor else {})", 'if cursor and len(body["data"]) >= 5 else {})'),
    ],
    # a 5xx that outlasts the retries read as the end of the stream: unseen while every 503 is retried away
    "outage_ends_the_stream": [
        (
            "        response = self.session.get(",
            "        try:\n            response = self.session.get(",
        ),
        (
            "params=params, timeout=30)\n",
            "params=params, timeout=30)\n"
            "        except HTTPError as error:\n"
            "            if error.response is not None and error.response.status_code >= 500:\n"
            "                return SourceIteration(records=[], next_pagination={})\n"
            "            raise\n",
        ),
        (
            "from requests.auth import AuthBase\n",
            "from requests.auth import AuthBase\nfrom requests.exceptions import HTTPError\n",
        ),
    ],
}


def install(root: Path) -> workspace.Workspace:
    """The good source, its test and its spec in the tree at `root`."""
    src = root / f"bizon/connectors/sources/{NAME}/src"
    shutil.copytree(HERE / "good" / "src", src, dirs_exist_ok=True)
    shutil.copytree(HERE / "good" / "tests", root / f"tests/connectors/sources/{NAME}", dirs_exist_ok=True)
    ws = workspace.resolve(None, workspace.Settings.from_paths([str(root)]))
    source_spec.save(ws, SPEC)
    return ws


def plant(root: Path, bug: str) -> str:
    """Plant `bug` in the installed good source; returns the good text, to put back."""
    path = root / SOURCE
    good = path.read_text()
    text = good
    for old, new in BUGS[bug]:
        assert text.count(old) == 1, (bug, old)
        text = text.replace(old, new)
    path.write_text(text)
    return good
