"""The mock API's misbehaviour cases (the module doc of mock_api.py says what each serves): which apply to a spec,
how each bends the pages, which faults it plans on which page, and the error bodies it answers inside a 200.
Stdlib only, Python 3.9+."""

from __future__ import annotations

from typing import Any

try:
    from .api_pages import Shape, put
except ImportError:  # run as a script, or imported from this folder (validate_source's workspace interpreter)
    from api_pages import Shape, put  # type: ignore[no-redef]

CASES = (
    "last_page_with_records",
    "short_pages",
    "page_size_cap",
    "total_changes",
    "error_in_200",
    "throttled_in_200",
    "html_5xx",
    "dropped_connection",
    "outage",
    "token_expiry",
    "shared_endpoint",
)
MUST_FAIL = ("error_in_200", "outage")  # the fault never lifts: a source that ends green lost records
TOKEN_AUTHS = ("oauth", "client_credentials")
# BodyErrors' defaults (the contract's; SourceSpec.body_errors), for a spec dict written by hand.
BODY_ERRORS_DEFAULTS: dict[str, Any] = {
    "errors_path": "errors",
    "ok_path": None,
    "code_path": "extensions.code",
    "retryable_codes": ["THROTTLED", "RATE_LIMITED"],
    "reauth_codes": ["UNAUTHENTICATED"],
    "retry_after_path": "extensions.retryAfter",
}
FAILED_CODE = "INTERNAL_SERVER_ERROR"  # a non-retryable code (another one if the spec retries this one)
PERSISTENT = ("outage_503", "error_200")  # faults answered on every try
HTML_5XX = (
    "<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n<center><h1>{status} {reason}</h1>"
    "</center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)
CAP_AT_MOST = 7  # page_size_cap: the server's cap, below the spec's page size
# token_expiry: pages of at most this many records, so a token dies with pages still to read whatever page size the
# spec asks (with every record on one page there would be no request after the token died: nothing to judge)
TOKEN_EXPIRY_PAGE = 6
# token_expiry: the life its tokens announce; only the kill ends one, so a source renewing on its clock never dodges it
TOKEN_EXPIRY_TTL_S = 3600
# The cases whose fault a correct source absorbs: judged only when the fault was served (else nothing was judged)
ABSORBED = ("throttled_in_200", "html_5xx", "dropped_connection", "token_expiry")


def body_errors(spec: dict) -> dict | None:
    """The spec's errors-inside-a-200 (GraphQL's default when a graphql spec names none), defaults filled in."""
    declared = spec.get("body_errors")
    if declared is None and not any(s["pagination"]["pattern"] == "graphql" for s in spec["streams"]):
        return None
    return {**BODY_ERRORS_DEFAULTS, **(declared or {})}


def _paging(spec: dict) -> list[dict]:
    return [s for s in spec["streams"] if s["pagination"]["pattern"] != "none"]


def shared_endpoints(spec: dict) -> bool:
    seen = [(s["pagination"]["pattern"] in ("post_query", "graphql"), _path(s["endpoint"])) for s in spec["streams"]]
    return len(set(seen)) < len(seen)


def _path(endpoint: str) -> str:
    return "/" + endpoint.partition("?")[0].strip("/")


def applies(case: str, spec: dict, recorded: bool = False) -> bool:
    """Whether a case can show anything on this spec (recorded pages: only the faults, not the page shapes)."""
    errors = body_errors(spec)
    shapes = {
        "last_page_with_records": bool(_paging(spec)),
        "short_pages": any(s["pagination"]["page_size"] > 1 for s in _paging(spec)),
        "page_size_cap": any(s["pagination"]["page_size"] > 1 for s in _paging(spec)),
        "total_changes": any(
            s["pagination"]["pattern"] == "offset" and s["pagination"]["total_path"] for s in spec["streams"]
        ),
    }
    if case in shapes:
        return shapes[case] and not recorded
    faults = {
        "error_in_200": errors is not None,
        "throttled_in_200": bool(errors and errors["retryable_codes"]),
        "token_expiry": spec["auth"] in TOKEN_AUTHS,
        "shared_endpoint": shared_endpoints(spec),
    }
    return faults.get(case, case in CASES)


def cases_for(spec: dict, recorded: bool = False) -> list[str]:
    """The cases that apply to a (normalized) spec, in CASES' order."""
    return [case for case in CASES if applies(case, spec, recorded)]


def shape(case: str | None, page_size: int) -> Shape:
    if case == "last_page_with_records":
        return Shape(last_has_records=True)
    if case == "short_pages":
        return Shape(short_pages=True)
    if case == "page_size_cap":
        return Shape(size_cap=max(1, min(CAP_AT_MOST, page_size - 1)))
    if case == "total_changes":
        return Shape(low_first_total=True)
    if case == "token_expiry":
        return Shape(size_cap=TOKEN_EXPIRY_PAGE)
    return Shape()


def fault_plan(case: str | None, pages: int, record_pages: int) -> dict[int, list[str]]:
    """Faults by page index: the default's 429 then 503 (clipped to the last page), a case's on its second page
    holding records (its first when it has one)."""
    if case is None:
        plan: dict[int, list[str]] = {}
        for fault, page in (("429", 1), ("503", 2)):
            plan.setdefault(min(page, max(0, pages - 1)), []).append(fault)
        return plan
    faults = {
        "html_5xx": ["502_html", "504_html"],
        "dropped_connection": ["dropped"],
        "outage": ["outage_503"],
        "error_in_200": ["error_200"],
        "throttled_in_200": ["throttled_200"],
    }.get(case)
    return {min(1, max(0, record_pages - 1)): list(faults)} if faults else {}


def error_body(errors: dict, code: str, message: str, retry_after: float | None = None) -> dict:
    """An error inside a 200 in the spec's shape: {"errors": [{"message", "extensions": {"code"}}], "data": null}
    (errors_path names a list: its last key is plural "errors"), {"error": {"code", "message"}} (an object), and
    with ok_path the success flag false beside it; code_path '' puts the bare code string there (Slack)."""
    code_path, where = errors["code_path"], errors["errors_path"]
    error: Any = code
    if code_path:
        error = put({"message": message}, code_path, code)
        if retry_after is not None and errors["retry_after_path"]:
            put(error, errors["retry_after_path"], retry_after)
    body: dict = {}
    if where.split(".")[-1] == "errors":
        put(body, where, [error])
        body.setdefault("data", None)
    else:
        put(body, where, error)
    if errors["ok_path"]:
        put(body, errors["ok_path"], False)
    return body


def failed_code(errors: dict) -> str:
    taken = set(errors["retryable_codes"]) | set(errors["reauth_codes"])
    return next(c for c in (FAILED_CODE, "BAD_REQUEST", "FORGE_QUERY_FAILED") if c not in taken)


def html(status: int) -> str:
    reason = {502: "Bad Gateway", 503: "Service Temporarily Unavailable", 504: "Gateway Time-out"}[status]
    return HTML_5XX.format(status=status, reason=reason)
