"""Secrets the bizon way: configs reference them as env://NAME, the checks get exactly the variables the check
config references (from the server's environment or the workspace's .env) and nothing else of the server's
environment, an unset one is one finding naming it, and a plain-text secret in a committed config is a finding.

The good ndjson destination of the corpus gets a secret `api_token` that its code verifies before writing to a
check's destination_id, and a planted refusal to run when a sentinel variable of the server's environment leaks.
"""

import pytest

from bizon_forge import workspace
from bizon_forge.validators import traps, validate_destination
from bizon_forge.validators.code import DestinationCode
from tests.broken.corpus import FILES
from tests.broken.install import NAME, install_good

pytestmark = pytest.mark.slow

TOKEN = "tok-42-\u00e9"  # non-ASCII: .env parsing and the environment must hand it over unchanged
LEAK = "FORGE_LEAK_SENTINEL"
LIVE = ("contract.build", "contract.write_records", "contract.finalize")


def _edit(ws: workspace.Workspace, key: str, old: str, new: str) -> None:
    path = ws.root / FILES[key]
    text = path.read_text()
    assert text.count(old) == 1, (key, old)
    path.write_text(text.replace(old, new))


@pytest.fixture
def secret_ws(make_tree, request) -> workspace.Workspace:
    root = make_tree(request.param)
    ws = workspace.resolve(None, workspace.Settings.from_paths([str(root)]))
    install_good(ws)
    _edit(ws, "config", "from pydantic import Field\n", "from pydantic import Field, SecretStr\n")
    _edit(
        ws,
        "config",
        "    directory: str = Field(",
        '    api_token: SecretStr | None = Field(None, description="Token of the folder service.")\n'
        "    directory: str = Field(",
    )
    anchor = "            missing = [c for c in CONTRACT if c not in df_destination_records.columns]\n"
    planted = (
        "            # planted: a check's run must get the token, and nothing else of the server's environment\n"
        '            if str(self.destination_id or "").startswith("forge_"):\n'
        f'                if os.environ.get("{LEAK}"):\n'
        '                    raise RuntimeError("the server\'s environment reached the check")\n'
        "                token = self.config.api_token\n"
        f'                if token is None or token.get_secret_value() != "{TOKEN}":\n'
        '                    raise ValueError("wrong api_token")\n'
    )
    _edit(ws, "destination", anchor, planted + anchor)
    for key in ("example", "check"):
        _edit(ws, key, "    directory:", "    api_token: env://NDJSON_API_TOKEN\n    directory:")
    return ws


@pytest.mark.parametrize("secret_ws", ["0.6.4", "0.5.2"], indirect=True)
def test_an_unset_reference_is_one_finding_naming_it_and_nothing_runs(secret_ws, monkeypatch):
    monkeypatch.delenv("NDJSON_API_TOKEN", raising=False)
    result = validate_destination(secret_ws, NAME, level="fast", verbose=True)
    found = {f.id: f for f in result.findings}
    assert not result.ok
    assert [f.id for f in result.findings if f.status == "fail"] == ["live.check_references"]
    assert "env://NDJSON_API_TOKEN" in found["live.check_references"].message
    assert ".env" in found["live.check_references"].hint
    assert all(found[i].status == "skip" and found[i].blocked_by == "live.check_references" for i in LIVE)
    assert found["trap.plaintext_secret"].status == "pass"


@pytest.mark.parametrize("secret_ws", ["0.6.4"], indirect=True)
def test_a_reference_set_in_dotenv_passes_full_and_the_server_environment_stays_out(secret_ws, monkeypatch):
    monkeypatch.delenv("NDJSON_API_TOKEN", raising=False)
    monkeypatch.setenv(LEAK, "1")
    (secret_ws.root / ".env").write_text(f'NDJSON_API_TOKEN="{TOKEN}"\nUNRELATED=1\n', encoding="utf-8")
    result = validate_destination(secret_ws, NAME, level="full", verbose=True)
    found = {f.id: f for f in result.findings}
    assert result.ok, [f for f in result.findings if f.status == "fail"]
    # the planted code raised unless it got the token: the records read back prove it did
    assert all(found[i].status == "pass" for i in (*LIVE, "data.exact", "smoke.bizon_run")), result.summary
    assert "NDJSON_API_TOKEN (from the .env)" in found["live.check_references"].message
    assert found["live.bizon_secrets_check"].status == "pass", found["live.bizon_secrets_check"]
    assert "NDJSON_API_TOKEN (from the .env)" in result.wrote_to
    assert "no other variable of the server's environment" in result.wrote_to
    everything = result.model_dump_json()
    assert TOKEN not in everything and TOKEN.encode("unicode_escape").decode() not in everything


@pytest.mark.parametrize("secret_ws", ["0.5.2"], indirect=True)
def test_the_environment_wins_over_dotenv_as_in_bizon_run(secret_ws, monkeypatch):
    monkeypatch.setenv("NDJSON_API_TOKEN", TOKEN)
    (secret_ws.root / ".env").write_text("NDJSON_API_TOKEN=stale\n")
    result = validate_destination(secret_ws, NAME, level="fast", verbose=True)
    found = {f.id: f for f in result.findings}
    assert result.ok, [f for f in result.findings if f.status == "fail"]
    assert "NDJSON_API_TOKEN (from the environment)" in found["live.check_references"].message
    assert found["contract.write_records"].status == "pass"


@pytest.mark.parametrize("secret_ws", ["0.6.4"], indirect=True)
def test_a_plain_text_secret_in_a_committed_config_is_a_finding(secret_ws):
    def verdict():
        return traps.plaintext_secret(DestinationCode.load(secret_ws, NAME))

    assert verdict().status == "pass"
    for value, verdict_is in (
        (TOKEN, "fail"),
        ("postgresql://forge:hunter2@db.internal/app", "fail"),
        ("postgresql://forge:${env://PG_PASSWORD}@db.internal/app", "pass"),
        ("sqlite:///output/records.db", "pass"),
        (None, "pass"),
    ):
        written = "null" if value is None else repr(value)  # a single-quoted YAML string
        _edit(secret_ws, "check", "api_token: env://NDJSON_API_TOKEN", f"api_token: {written}")
        found = verdict()
        assert found.status == verdict_is, (value, found)
        if verdict_is == "fail":
            assert "api_token" in found.message and found.file == FILES["check"]
            assert value not in found.model_dump_json()  # the finding names the field, never the value
        _edit(secret_ws, "check", f"api_token: {written}", "api_token: env://NDJSON_API_TOKEN")
