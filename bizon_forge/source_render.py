"""render_source: a source's files from its spec (recipe rest or custom), formatted with the workspace's ruff config.

It writes bizon/connectors/sources/NAME/src/{__init__,source}.py, config/NAME.example.yml (the user's real sync,
secrets as env:// references), config/NAME.check.yml (the local mock API of the checks) and the source's own tests
under tests/connectors/sources/NAME/. A source needs no registration: bizon discovers its folder.
"""

from typing import Any

from bizon_forge.connector import Connector
from bizon_forge.findings import warned
from bizon_forge.interpreter import forge_command
from bizon_forge.render import (
    TODO,
    RenderResult,
    field_annotation,
    field_default,
    field_sample,
    jinja_environment,
    ruff_format,
    todo_tasks,
    write_planned,
)
from bizon_forge.spec import source as source_spec
from bizon_forge.spec.source import SourceSpec

# The mock API's made-up credentials, which it accepts: the check config carries them (no secret).
from bizon_forge.validators.fakes.mock_api import CREDENTIALS as MOCK_CREDENTIALS
from bizon_forge.workspace import STATE_DIR, Workspace

# The check config's base URL (and OAuth token endpoint): validate_source serves the mock API and sets these.
MOCK_URL_VAR = "BIZON_FORGE_MOCK_API_URL"
MOCK_TOKEN_URL_VAR = "BIZON_FORGE_MOCK_API_TOKEN_URL"
# The port the check config's printed recipe serves the mock on, so that its two commands run as printed.
# bizon's authentication.type of each auth kind (the rest recipe's api_key sends its own header, and its
# client_credentials keeps its own token from bizon's oauth params: see source.py.j2).
BIZON_AUTH = {
    "api_key": "api_key",
    "bearer": "bearer",
    "basic": "basic",
    "oauth": "oauth",
    "client_credentials": "oauth",
}


def auth_params(s: SourceSpec, check: bool) -> dict[str, Any]:
    """The YAML's authentication.params: env:// references in the example, the mock's values in the check."""
    up = s.name.upper()
    c = MOCK_CREDENTIALS
    if s.auth in ("api_key", "bearer"):
        key = "api_key" if s.auth == "api_key" else "token"
        return {"token": c[key] if check else f"env://{up}_{'API_KEY' if s.auth == 'api_key' else 'TOKEN'}"}
    if s.auth == "basic":
        if check:
            return {"username": c["username"], "password": c["password"]}
        return {"username": f"env://{up}_USERNAME", "password": f"env://{up}_PASSWORD"}
    if s.auth == "oauth":
        if check:
            return {
                "token_refresh_endpoint": f"env://{MOCK_TOKEN_URL_VAR}",
                "client_id": c["client_id"],
                "client_secret": c["client_secret"],
                "refresh_token": c["refresh_token"],
            }
        return {
            "token_refresh_endpoint": s.token_url or "<TOKEN_REFRESH_ENDPOINT>",
            "client_id": f"env://{up}_CLIENT_ID",
            "client_secret": f"env://{up}_CLIENT_SECRET",
            "refresh_token": f"env://{up}_REFRESH_TOKEN",
        }
    if s.auth == "client_credentials":
        # bizon's oauth params (its config validates them); the source fetches and renews the token itself.
        out: dict[str, Any] = {
            "token_refresh_endpoint": f"env://{MOCK_TOKEN_URL_VAR}" if check else s.token_url or "<TOKEN_URL>",
            "client_id": c["client_id"] if check else f"env://{up}_CLIENT_ID",
            "client_secret": c["client_secret"] if check else f"env://{up}_CLIENT_SECRET",
            "grant_type": "client_credentials",
        }
        return out | ({"scopes": list(s.scopes)} if s.scopes else {})
    return {}


def _stream_settings(s: SourceSpec) -> dict:
    """STREAMS in source.py: per stream, only what its pattern reads."""
    out = {}
    for st in s.streams:
        p = st.pagination
        graphql = p.pattern == "graphql"
        d: dict[str, Any] = {
            "endpoint": st.endpoint,
            "method": "POST" if p.pattern in source_spec.POST_PATTERNS else "GET",
            "pattern": p.pattern,
            "records_path": f"{st.connection_path}.edges" if graphql else st.records_path,
            "id_field": st.id_field,
            "page_size": p.page_size,
            "page_size_param": p.page_size_param,
            "cursor_field": st.cursor_field,
            "updated_after_param": st.updated_after_param,
            "total_path": p.total_path if p.pattern == "offset" else None,
        }
        if p.pattern in ("cursor", "post_query"):
            d |= {
                "cursor_param": p.cursor_param,
                "next_cursor_path": p.next_cursor_path,
                "has_more_path": p.has_more_path,
            }
        if graphql:  # a Relay connection: the end and the next cursor are in its pageInfo
            d |= {
                "cursor_param": p.cursor_param,
                "next_cursor_path": f"{st.connection_path}.pageInfo.endCursor",
                "has_more_path": f"{st.connection_path}.pageInfo.hasNextPage",
                "land": st.land,
            }
        if p.pattern == "next_url":
            d["next_url_path"] = p.next_url_path
        if p.pattern == "offset":
            d["offset_param"] = p.offset_param
        if p.pattern in source_spec.POST_PATTERNS:
            d["body"] = st.body
        out[st.name] = d
    return out


def context(ws: Workspace, s: SourceSpec) -> dict:
    c = Connector(s.name, "source")
    fields = [
        {
            "name": f.name,
            "annotation": field_annotation(f),
            "default": field_default(f),
            "f": f,
            "sample": field_sample(f),
        }
        for f in s.fields
    ]
    incremental = [st.name for st in s.streams if st.cursor_field]
    patterns = {st.pagination.pattern for st in s.streams}
    errors = s.errors_in_body
    example = auth_params(s, check=False)
    secret_vars = sorted(v[len("env://") :] for v in example.values() if isinstance(v, str) and v.startswith("env://"))
    secret_vars += [f"{s.name.upper()}_{f.name.upper()}" for f in s.fields if f.secret]
    return {
        "spec": s,
        "n": s.names,
        "e": s.error_handling,
        "custom": s.recipe == "custom",
        "TODO": TODO,
        "patterns": sorted(patterns),
        # POST patterns build a JSON body; graphql lands an edge or its node
        "posts": bool(patterns & set(source_spec.POST_PATTERNS)),
        "body_errors": errors.model_dump() if errors else None,
        "token_auth": s.auth in source_spec.TOKEN_AUTHS,
        "streams": _stream_settings(s),
        "incremental": incremental,
        "fields": fields,
        "secrets": [f.name for f in s.fields if f.secret],
        "bizon_auth": BIZON_AUTH.get(s.auth, ""),
        "example_params": example,
        "check_params": auth_params(s, check=True),
        "secret_vars": secret_vars,
        "mock_url_var": MOCK_URL_VAR,
        "first": s.streams[0],
        "run_example": ws.bizon_command("run", c.example_rel),
        # one command: the mock on a free port for the run's length, its URLs in the run's environment
        "run_check": ws.bizon_command(
            "run", c.check_rel, through=forge_command("mock-api", str(source_spec.spec_path(ws, s.name)), "--run", "--")
        ),
        "check_output": check_output(s.name),
        "module": c.code_module,
    }


def check_output(name: str) -> str:
    """The check config's file destination_id, relative to the tree's root where bizon runs: in our state folder,
    which the workspace's .gitignore ignores, not at the tree's root."""
    return f"{STATE_DIR}/forge_check_{name}"


def planned_files(ws: Workspace, s: SourceSpec) -> dict[str, str]:
    """Workspace-relative path -> rendered text, formatted."""
    env = jinja_environment()
    ctx = context(ws, s)
    c = Connector(s.name, "source")
    out = {c.init_rel: ""}
    for rel, template in ((c.code_rel, "source/source.py.j2"), (c.test_rel, "source/test.py.j2")):
        out[rel] = ruff_format(ws, rel, env.get_template(template).render(**ctx))
    out[c.example_rel] = env.get_template("source/example.yml.j2").render(**ctx)
    out[c.check_rel] = env.get_template("source/check.yml.j2").render(**ctx)
    return out


def record_path(ws: Workspace, name: str):
    return ws.state_dir / "rendered-sources" / f"{name}.json"


def render_source(
    ws: Workspace, name: str, dry_run: bool = False, overwrite: bool = False, content: bool = False
) -> RenderResult:
    """Write (or with dry_run, plan) the source's files; files the agent edited are kept unless overwrite."""
    s = source_spec.load(ws, name)
    planned = planned_files(ws, s)
    folder = ws.root / Connector(name, "source").dir
    result = write_planned(ws, planned, record_path(ws, name), folder, dry_run, overwrite, content)
    if not result.ok:
        return result
    tasks = [task for text in planned.values() for _, task in todo_tasks(text)]
    if tasks:
        named = ", ".join(t for t in tasks if not t.startswith("@"))
        result.findings.append(
            warned(
                "render.todo_left",
                f"{len(tasks)} task(s) marked {TODO} are left in source.py: {named}.",
                f"Fill each {TODO}, then call validate_source.",
            )
        )
    result.next = None if dry_run else f"validate_source(name={name!r}, level='fast')"
    return RenderResult(files=result.files, findings=result.findings, next=result.next)
