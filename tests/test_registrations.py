"""apply_registrations and remove_destination on real bizon trees: exact, idempotent, atomic, reversible."""

import difflib
import json
import os
import subprocess

import pytest
from ruff.__main__ import find_ruff_bin

from bizon_forge import atomic, registrations, workspace
from bizon_forge.describe import describe_target
from bizon_forge.findings import Refused
from bizon_forge.registrations import apply_registrations, remove_destination
from bizon_forge.render import render_destination
from bizon_forge.spec.destination import DestinationSpec, FieldSpec
from bizon_forge.workspace import ENUM_FILE, FACTORY_FILE, MODELS_FILE, REGISTRATION_FILES
from tests.conftest import snapshot

ALL_ADDED = dict.fromkeys(("enum", "import", "union", "factory"), "added")


def open_ws(root) -> workspace.Workspace:
    return workspace.resolve(None, workspace.Settings.from_paths([str(root)]))


def rendered(ws: workspace.Workspace, name: str, **spec) -> workspace.Workspace:
    """`name` described and rendered (not registered), as an agent leaves it before apply_registrations."""
    fields = spec.pop("fields", [FieldSpec(name="token", required=True, description="API token", secret=True)])
    described = describe_target(ws, DestinationSpec(name=name, fields=fields, **spec))
    assert described.ok, described.findings
    assert render_destination(ws, name).ok
    return ws


def registration_files(root) -> dict[str, bytes]:
    return {rel: (root / rel).read_bytes() for rel in REGISTRATION_FILES}


def edit(root, rel: str, old: str, new: str) -> None:
    """A hand edit, as a user makes one."""
    path = root / rel
    text = path.read_text()
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new))


def ids(result) -> list[str]:
    return [f.id for f in result.findings if f.status == "fail"]


def test_apply_adds_each_registration_once_with_a_diff_per_file(tree):
    ws = rendered(open_ws(tree), "acme")
    first = apply_registrations(ws, "acme")
    assert first.ok and first.registrations == ALL_ADDED
    diffs = {e.path: e.diff for e in first.edits}
    assert set(diffs) == set(REGISTRATION_FILES)
    assert '+    ACME = "acme"\n' in diffs[ENUM_FILE]
    assert "+from bizon.connectors.destinations.acme.src.config import AcmeConfig\n" in diffs[MODELS_FILE]
    assert "+        AcmeConfig,\n" in diffs[MODELS_FILE]
    assert "+        elif config.name == DestinationTypes.ACME:\n" in diffs[FACTORY_FILE]
    # Only added lines: nothing the tool did not mean to change was touched.
    for diff in diffs.values():
        body = [line for line in diff.splitlines() if not line.startswith(("---", "+++", "@@"))]
        assert not [line for line in body if line.startswith("-")], diff

    before = snapshot(tree)
    second = apply_registrations(ws, "acme")
    assert snapshot(tree) == before
    assert second.ok and second.edits == []
    assert second.registrations == dict.fromkeys(ALL_ADDED, "already_present")
    assert [f.id for f in second.findings] == ["registration.unchanged"]


def test_dry_run_returns_the_diffs_and_writes_nothing(make_tree):
    root = make_tree("0.6.4")
    ws = rendered(open_ws(root), "acme")
    before = snapshot(root)
    result = apply_registrations(ws, "acme", dry_run=True)
    assert snapshot(root) == before
    assert result.ok and result.registrations == ALL_ADDED and len(result.edits) == 3


def test_a_half_done_manual_registration_is_completed_not_duplicated(make_tree):
    root = make_tree("0.6.4")
    ws = rendered(open_ws(root), "acme")
    edit(root, ENUM_FILE, '    FILE = "file"\n', '    FILE = "file"\n    ACME = "acme"\n')  # enum only, by hand
    result = apply_registrations(ws, "acme")
    assert result.registrations == {**ALL_ADDED, "enum": "already_present"}
    assert [e.path for e in result.edits] == [MODELS_FILE, FACTORY_FILE]
    assert (root / ENUM_FILE).read_text().count("ACME") == 1
    assert (root / FACTORY_FILE).read_text().count("DestinationTypes.ACME") == 1


CONFLICTS = {
    "enum member taken": (
        ENUM_FILE,
        '    FILE = "file"\n',
        '    FILE = "file"\n    ACME = "acme_legacy"\n',
        "registration.enum_conflict",
        {"enum": "conflict"},
    ),
    "enum value taken": (
        ENUM_FILE,
        '    FILE = "file"\n',
        '    FILE = "file"\n    ACME_OLD = "acme"\n',
        "registration.enum_conflict",
        {"enum": "conflict"},
    ),
    "config class imported from elsewhere": (
        MODELS_FILE,
        "from bizon.connectors.destinations.logger.src.config import LoggerConfig\n",
        "from bizon.connectors.destinations.logger.src.config import LoggerConfig\n"
        "from bizon.connectors.destinations.logger.src.config import LoggerConfig as AcmeConfig\n",
        "registration.import_conflict",
        {"import": "conflict", "union": "conflict"},
    ),
    "Literal names another member": (
        "bizon/connectors/destinations/acme/src/config.py",
        "Literal[DestinationTypes.ACME]",
        "Literal[DestinationTypes.FILE]",
        "registration.literal_mismatch",
        {},
    ),
}


@pytest.mark.parametrize("case", CONFLICTS, ids=list(CONFLICTS))
def test_a_conflict_writes_nothing_and_explains_itself(make_tree, case):
    rel, old, new, finding, keys = CONFLICTS[case]
    root = make_tree("0.6.4")
    ws = rendered(open_ws(root), "acme")
    edit(root, rel, old, new)
    before = snapshot(root)
    result = apply_registrations(ws, "acme")
    assert snapshot(root) == before
    assert not result.ok and ids(result) == [finding]
    assert result.registrations == keys
    (found,) = [f for f in result.findings if f.id == finding]
    assert found.file == rel and found.line and found.hint
    line = (root / rel).read_text().splitlines()[found.line - 1].strip()  # the line points at the culprit
    assert line in new or new in line
    assert result.next == "Nothing was written. Fix the failed findings, then call apply_registrations again."


def test_registering_before_rendering_says_to_render_first_and_writes_nothing(make_tree):
    root = make_tree("0.6.4")
    ws = open_ws(root)
    assert describe_target(ws, DestinationSpec(name="early_bird")).ok
    before = snapshot(root)
    result = apply_registrations(ws, "early_bird")
    assert snapshot(root) == before
    assert not result.ok and ids(result) == ["registration.not_rendered"]
    assert result.next == (
        "Nothing was written. Call render_destination(name='early_bird') first, then apply_registrations."
    )


@pytest.mark.parametrize("fail_after", [1, 2], ids=["after the 1st file", "after the 2nd file"])
def test_a_failure_mid_write_leaves_the_tree_byte_identical(make_tree, monkeypatch, fail_after):
    root = make_tree("0.6.4")
    ws = rendered(open_ws(root), "acme")
    written = []

    def fault(path):
        written.append(path)
        if len(written) == fail_after:
            raise RuntimeError("disk full")  # not an OSError: any failure must be caught and undone

    write_text = atomic.write_text

    def write_then_fault(path, text):
        write_text(path, text)
        fault(path)

    monkeypatch.setattr(atomic, "write_text", write_then_fault)
    before = snapshot(root)
    result = apply_registrations(ws, "acme")
    assert snapshot(root) == before
    assert not result.ok and ids(result) == ["registration.write_failed"]
    failed_at = str(written[-1].relative_to(root))
    assert failed_at in result.findings[0].message and "disk full" in result.findings[0].message
    assert result.findings[0].file == failed_at


def test_an_import_failure_restores_the_originals(make_tree):
    root = make_tree("0.6.4")
    ws = rendered(open_ws(root), "acme")
    config = "bizon/connectors/destinations/acme/src/config.py"
    edit(
        root,
        config,
        "from pydantic import",
        "import psycopg_not_installed  # noqa: F401\nfrom pydantic import",
    )
    before = snapshot(root)
    result = apply_registrations(ws, "acme")
    assert snapshot(root) == before
    assert ids(result) == ["registration.import_failed"]
    assert "psycopg_not_installed" in result.findings[0].message


def test_remove_brings_the_three_files_back_and_can_delete_everything(tree):
    pristine = snapshot(tree)
    originals = registration_files(tree)
    ws = rendered(open_ws(tree), "acme")
    assert apply_registrations(ws, "acme").ok
    kept = remove_destination(ws, "acme")
    assert kept.removed == ["enum", "import", "union", "factory"]
    assert registration_files(tree) == originals
    assert (tree / "bizon/connectors/destinations/acme/src/config.py").exists()

    gone = remove_destination(ws, "acme", delete_files=True)
    assert gone.removed == [] and "bizon/connectors/destinations/acme" in gone.deleted
    assert ".bizon-forge/specs/acme.json" in gone.deleted
    assert {k: v for k, v in snapshot(tree).items() if not k.startswith(".bizon-forge/")} == pristine


def test_remove_refuses_bizons_own_destinations(make_tree):
    ws = open_ws(make_tree("0.6.4"))
    with pytest.raises(Refused) as refused:
        remove_destination(ws, "logger")
    assert [f.id for f in refused.value.findings] == ["remove.not_ours"]


@pytest.mark.slow
def test_twenty_destinations_one_after_another(make_tree, tmp_path, monkeypatch):
    """The tree still imports, `bizon config validate` accepts every example config, and the three files
    stay ruff-clean (isort order included) under the tree's own config."""
    root = make_tree("0.6.4")
    ws = open_ws(root)
    # Each apply's own import check (~1 s) is proven above; here one real import and validation at the end
    # judge the composed tree.
    checks = []
    monkeypatch.setattr(registrations, "import_check", lambda ws, edited=(): checks.append(edited))
    names = [f"dest_{i}" for i in range(1, 11)] + ["acme", "zeta", "s3_lake", "kafka2", "http_sink"]
    names += ["bq_copy", "pg", "duck_db", "a", "z_last"]
    for name in names:
        rendered(ws, name, fields=[FieldSpec(name="endpoint", required=True, description="Where records go")])
        result = apply_registrations(ws, name)
        assert result.registrations == ALL_ADDED, (name, result.findings)

    assert len(checks) == 20
    examples = [str(root / f"bizon/connectors/destinations/{n}/config/{n}.example.yml") for n in names]
    script = (
        "import json, sys\nfrom click.testing import CliRunner\nfrom bizon.cli.main import cli\n"
        "out = {}\nfor f in sys.argv[1:]:\n"
        "    r = CliRunner().invoke(cli, ['config', 'validate', f])\n"
        "    out[f] = [r.exit_code, r.output[-400:]]\nprint(json.dumps(out))\n"
    )
    done = subprocess.run(
        [ws.python(), "-c", script, *examples], cwd=tmp_path, env=ws.env(), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    verdicts = json.loads(done.stdout.splitlines()[-1])
    assert {f: v for f, v in verdicts.items() if v[0] != 0} == {}

    for cmd in (["check", "--no-cache"], ["format", "--check", "--no-cache"]):  # isort order, line length
        lint = subprocess.run([find_ruff_bin(), *cmd, *REGISTRATION_FILES], cwd=root, capture_output=True, text=True)
        assert lint.returncode == 0, lint.stdout + lint.stderr


def test_import_check_sees_an_edit_made_within_the_same_second(make_tree):
    """Byte-code is trusted on (mtime in whole seconds, size): two quick edits of equal length must not
    let a stale models.py through the import check."""
    root = make_tree("0.6.4")
    ws = open_ws(root)
    assert registrations.import_check(ws, [MODELS_FILE]) is None
    stamp = (root / MODELS_FILE).stat()
    edit(root, MODELS_FILE, "class BizonConfig(BaseModel):", "class BizonConfig(BaseMode_):")
    os.utime(root / MODELS_FILE, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))  # same second, same size
    assert "BaseMode_" in registrations.import_check(ws, [MODELS_FILE])


def test_crlf_files_keep_their_line_endings(make_tree):
    """A tree checked out on Windows: the edit adds CRLF lines and leaves every other byte alone."""
    root = make_tree("0.5.2")
    ws = rendered(open_ws(root), "acme")
    for rel in REGISTRATION_FILES:
        (root / rel).write_bytes((root / rel).read_bytes().replace(b"\n", b"\r\n"))
    before = registration_files(root)
    assert apply_registrations(ws, "acme").ok
    for rel, old in before.items():
        new = (root / rel).read_bytes()
        assert new.count(b"\n") == new.count(b"\r\n") > old.count(b"\n")  # old and new lines all end in CRLF
        lines = difflib.ndiff(old.decode().splitlines(True), new.decode().splitlines(True))
        assert [line for line in lines if line.startswith("- ")] == []
    assert remove_destination(ws, "acme").removed == ["enum", "import", "union", "factory"]
    assert registration_files(root) == before


def test_a_stray_branch_outside_get_destination_is_not_taken_for_the_registration(tree):
    """Only the if/elif chain of DestinationFactory.get_destination() registers: the codemods edit exactly that."""
    from bizon_forge import registry

    ws = rendered(open_ws(tree), "acme")
    stray = (
        "\n\ndef _elsewhere(config):\n"
        "    if config.name == DestinationTypes.ACME:\n"
        "        from bizon.connectors.destinations.acme.src.destination import AcmeDestination\n\n"
        "        return AcmeDestination\n"
    )
    path = tree / FACTORY_FILE
    path.write_text(path.read_text() + stray)
    assert "ACME" not in registry.read(ws).factory
    result = apply_registrations(ws, "acme")
    assert result.ok and result.registrations["factory"] == "added"
    assert registry.read(ws).factory["ACME"] == "bizon.connectors.destinations.acme.src.destination"
    assert path.read_text().endswith(stray)
