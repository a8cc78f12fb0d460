"""SourceSpec: what the agent learned from an API's docs (Step 1 of bizon's ai-connector-guide), as one checked value.

The guide's seven facts per source: base URL, authentication, and per stream the list endpoint, the pagination
pattern (A cursor, B next URL, C offset, D none, E POST query), where the records are, the record id field, and
the rate limits. describe_source checks and stores it; render_source, the mock API of the checks and the checks
themselves all read this one value, so what is rendered, served and judged cannot disagree.
"""

from typing import Literal, get_args

from pydantic import BaseModel, Field

from bizon_forge.spec import FieldSpec, Names, pascal_case

# bizon's AuthType values (bizon.source.auth.config), plus "none": a public API (get_authenticator returns None).
AuthKind = Literal["none", "api_key", "bearer", "basic", "oauth"]
AUTH_KINDS = get_args(AuthKind)
# The guide's patterns, by the letter it gives them: A cursor, B next_url, C offset, D none, E post_query.
PatternName = Literal["cursor", "next_url", "offset", "none", "post_query"]
PATTERNS = get_args(PatternName)
SourceRecipeName = Literal["rest", "custom"]
SOURCE_RECIPES = get_args(SourceRecipeName)


class Pagination(BaseModel):
    """How one stream pages. Paths are dotted keys into the JSON body (`meta.next_cursor`); only the pattern's own
    parameters matter."""

    pattern: PatternName = "none"
    page_size: int = 100
    page_size_param: str = Field("limit", description="request parameter (or POST body key) of the page size")
    # A and E: the cursor goes back as cursor_param; the next one is at next_cursor_path; the end is a missing or
    # null cursor, or has_more_path false when the API has such a flag.
    cursor_param: str = "cursor"
    next_cursor_path: str = "next_cursor"
    has_more_path: str | None = None
    # B: the next page's full URL is at next_url_path; null or missing ends.
    next_url_path: str = "next"
    # C: offset_param counts records; the end is a short or empty page, or offset >= total when total_path is set.
    offset_param: str = "offset"
    total_path: str | None = None


class StreamSpec(BaseModel):
    name: str
    endpoint: str = Field(description="path under base_url, e.g. /users")
    records_path: str = Field("data", description="dotted key of the records array; '' when the body is the array")
    id_field: str = "id"
    pagination: Pagination = Pagination()
    # Incremental (get_records_after): the record field that says when it changed, and the request parameter that
    # filters on it server-side (None: the source filters client-side).
    cursor_field: str | None = None
    updated_after_param: str | None = None


class SourceErrorHandling(BaseModel):
    """Retries of the rendered session: these statuses (and connection errors) are retried, honouring Retry-After."""

    transient_statuses: list[int] = [429, 500, 502, 503, 504]
    max_retries: int = 5
    backoff_seconds: float = 1.0
    timeout_seconds: float = 30.0


class SourceSpec(BaseModel):
    name: str
    base_url: str
    auth: AuthKind = "none"
    # api_key: the header the key goes in and its prefix ("" sends the bare key; bizon 0.5.x always sends a prefix)
    api_key_header: str = "Authorization"
    streams: list[StreamSpec]
    recipe: SourceRecipeName = "rest"
    fields: list[FieldSpec] = []  # extra source config fields (e.g. workspace_id), as for destinations
    error_handling: SourceErrorHandling = SourceErrorHandling()
    description: str = ""
    dependencies: list[str] = []

    @property
    def names(self) -> Names:
        n = self.name
        return Names(pascal=pascal_case(n), snake=n, upper=n.upper(), alias=n)
