"""Nothing real is touched: someone's data sits in the target each example config names, `full` runs on every
recipe and on a hand-written custom destination, and that data is byte-identical afterwards. Without a check
config nothing is written at all. The command the last answer prints runs as printed."""

import shutil
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from bizon_forge import workspace
from bizon_forge.validators.validation import validate_destination
from tests.broken.install import install_good
from tests.recipe_runs import forged_tree


class Production(BaseHTTPRequestHandler):
    """Someone's real ingest endpoint: it counts every request it gets."""

    requests: list = []

    def log_message(self, *args):
        pass

    def _any(self):
        Production.requests.append((self.command, self.path))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    do_GET = do_POST = do_HEAD = do_PUT = _any


@pytest.fixture
def production_endpoint():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Production)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Production.requests = []
    yield f"http://127.0.0.1:{server.server_address[1]}/ingest"
    server.shutdown()
    server.server_close()


def resolve(tree: Path) -> workspace.Workspace:
    return workspace.resolve(None, workspace.Settings.from_paths([str(tree)]))


def point_example(tree: Path, name: str, **details) -> None:
    path = tree / f"bizon/connectors/destinations/{name}/config/{name}.example.yml"
    config = yaml.safe_load(path.read_text())
    config["destination"]["config"].update(details)
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def someones_data(folder: Path) -> Path:
    """A folder holding records that are not ours to touch, including files named as our checks would."""
    folder.mkdir(parents=True)
    for name in ("creatures.jsonl", "land_file_creatures.jsonl", "warehouse_creatures.jsonl", "real.db"):
        (folder / name).write_bytes(b'{"id": 1, "owner": "someone else"}\n')
    return folder


@pytest.mark.parametrize("recipe", ["sql", "file", "http", "custom"])
def test_full_never_writes_to_the_target_the_example_names(
    recipe, pristine, tmp_path_factory, tmp_path, production_endpoint
):
    real = someones_data(tmp_path / "production")
    if recipe == "custom":
        tree = tmp_path_factory.mktemp("custom") / "tree"
        shutil.copytree(pristine("0.6.4"), tree, symlinks=True)
        ws, name = resolve(tree), "ndjson"
        install_good(ws)
        point_example(tree, name, directory=str(real), destination_id="creatures")
    else:
        name = f"real_{recipe}"
        how = {"full_refresh": "delete_first"} if recipe == "http" else {}
        tree = forged_tree(pristine, tmp_path_factory, name, recipe, **how)
        ws = resolve(tree)
        point_example(
            tree,
            name,
            **{
                "sql": {"url": f"sqlite:///{real / 'real.db'}"},
                "file": {"directory": str(real), "destination_id": "land_file_creatures"},
                "http": {"endpoint": production_endpoint},
            }[recipe],
        )
    before = files(real)
    result = validate_destination(ws, name, level="full", verbose=True, use_cache=False)
    assert result.ok, [(f.id, f.message) for f in result.findings if f.status != "pass"]
    assert files(real) == before
    assert Production.requests == []
    assert result.wrote_to and "check.yml" in result.wrote_to and str(real) not in result.wrote_to


def test_without_a_check_config_nothing_is_written_and_full_says_why(pristine, tmp_path_factory, tmp_path):
    tree = tmp_path_factory.mktemp("custom") / "tree"
    shutil.copytree(pristine("0.6.4"), tree, symlinks=True)
    ws = resolve(tree)
    install_good(ws)
    real = someones_data(tmp_path / "production")
    point_example(tree, "ndjson", directory=str(real))
    (tree / "bizon/connectors/destinations/ndjson/config/ndjson.check.yml").unlink()
    before = files(real)

    result = validate_destination(ws, "ndjson", level="full", verbose=True, use_cache=False)
    found = {f.id: f for f in result.findings}
    assert not result.ok and found["live.check_config"].status == "fail"
    assert "no check config" in found["live.check_config"].message
    writers = [i for i in found if i.startswith(("contract.", "data.", "smoke."))]
    assert writers and all(found[i].status == "skip" and found[i].blocked_by == "live.check_config" for i in writers)
    assert found["import.config_validate"].status == "pass"  # the example is still validated; it is not run
    assert result.wrote_to is None
    assert files(real) == before


def test_the_command_the_last_answer_prints_runs_as_printed(pristine, tmp_path_factory, tmp_path):
    tree = forged_tree(pristine, tmp_path_factory, "printed", "sql")
    ws = resolve(tree)
    result = validate_destination(ws, "printed", level="full")
    assert result.ok, result.summary
    command = result.next.split("run it with: ", 1)[1]
    done = subprocess.run(["bash", "-c", command], cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, (command, done.stdout[-2000:], done.stderr[-2000:])
    assert (tree / "output/bizon_records.db").is_file()  # the example's relative SQLite path, from the tree
    # The commands the rendered configs carry in their comments run as written too.
    for config in ("printed.example.yml", "printed.check.yml"):
        text = (tree / "bizon/connectors/destinations/printed/config" / config).read_text()
        command = text.split("with:\n#   ", 1)[1].split("\n", 1)[0]
        done = subprocess.run(["bash", "-c", command], cwd=tmp_path, capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, (config, command, done.stderr[-2000:])


def test_a_config_keeps_its_secret_in_the_environment(pristine, tmp_path_factory, tmp_path, monkeypatch):
    """env://NAME in the example or check config reaches the checks from the server's environment; exactly the
    names referenced, never the server's own BIZON_FORGE_* settings. Unset, it gets a finding that says where."""
    tree = tmp_path_factory.mktemp("custom") / "tree"
    shutil.copytree(pristine("0.6.4"), tree, symlinks=True)
    ws = resolve(tree)
    install_good(ws)
    point_example(tree, "ndjson", directory="env://FORGE_TEST_REAL_DIR")
    check = tree / "bizon/connectors/destinations/ndjson/config/ndjson.check.yml"
    check.write_text(check.read_text().replace("${env://BIZON_FORGE_SCRATCH}/ndjson", "${env://FORGE_TEST_SUBDIR}"))
    monkeypatch.delenv("FORGE_TEST_REAL_DIR", raising=False)
    monkeypatch.setenv("FORGE_TEST_SUBDIR", str(tmp_path / "scratch-target"))

    # Only the example references FORGE_TEST_REAL_DIR: it is validated with a stand-in, never run, never written.
    standin = validate_destination(ws, "ndjson", use_cache=False)
    assert standin.ok, [(f.id, f.message) for f in standin.findings if f.status != "pass"]
    assert "stand-ins for FORGE_TEST_REAL_DIR" in standin.wrote_to

    # The check config's own variable, unset: one finding that names it and says where to set it.
    monkeypatch.delenv("FORGE_TEST_SUBDIR")
    unset = validate_destination(ws, "ndjson", use_cache=False)
    failing = [f for f in unset.findings if f.status == "fail"]
    assert [f.id for f in failing] == ["live.check_references"], failing
    assert "FORGE_TEST_SUBDIR" in failing[0].message and "FORGE_TEST_SUBDIR" in failing[0].hint
    assert "mcp" in failing[0].hint.lower() and ".env" in failing[0].hint

    monkeypatch.setenv("FORGE_TEST_SUBDIR", str(tmp_path / "scratch-target"))
    monkeypatch.setenv("FORGE_TEST_REAL_DIR", str(tmp_path / "real"))
    result = validate_destination(ws, "ndjson", use_cache=False)
    assert result.ok, [(f.id, f.message) for f in result.findings if f.status != "pass"]
    # the example's own variable, though set, never reaches the checks: only the check config's do
    assert (
        "stand-ins for FORGE_TEST_REAL_DIR" in result.wrote_to
        and "FORGE_TEST_SUBDIR (from the environment)" in result.wrote_to
    )
    assert (tmp_path / "scratch-target").is_dir() and not (tmp_path / "real").exists()


def test_the_hint_says_the_records_never_arrived_when_nothing_reads_back(pristine, tmp_path_factory):
    tree = tmp_path_factory.mktemp("custom") / "tree"
    shutil.copytree(pristine("0.6.4"), tree, symlinks=True)
    ws = resolve(tree)
    install_good(ws)
    destination = tree / "bizon/connectors/destinations/ndjson/src/destination.py"
    text = destination.read_text()
    # A publish that renames into the wrong place and says nothing: the run looks fine, the target stays empty.
    destination.write_text(
        text.replace(
            "os.replace(self.staging, self.target)", "os.replace(self.staging, self.target.with_suffix('.old'))"
        )
    )
    result = validate_destination(ws, "ndjson", level="full", use_cache=False)
    exact = next(f for f in result.findings if f.id == "data.exact")
    assert exact.status == "fail" and "finalize() publishes" in exact.hint, exact
