"""Put the hand-written ndjson destination (tests/broken/good/) into a bizon tree the way an agent would:
describe, render, replace the rendered files with finished code, register."""

import re
import shutil
from pathlib import Path

from bizon_forge.describe import describe_target
from bizon_forge.registrations import apply_registrations
from bizon_forge.render import render_destination
from bizon_forge.spec.destination import DestinationSpec, FieldSpec
from bizon_forge.workspace import Workspace
from tests.broken.corpus import FILES, Case

GOOD = Path(__file__).with_name("good")
NAME = "ndjson"
# What the good destination gives these checks nothing to judge with, so they skip: it writes files (no HTTP
# receiver to make misbehave), has no secret field, and its check config references no variable of its own.
# Files in a folder: no receiver or server to make fail (the corpus points the check config at the receiver
# for the two receiver cases), no secret field, no env:// reference.
NOTHING_TO_JUDGE = {
    "data.unreliable_target",
    "data.publish_fails",
    "trap.plaintext_secret",
    "live.check_references",
}


def install_good(ws: Workspace) -> None:
    field = FieldSpec(name="directory", required=True, description="Folder the .jsonl files are written to")
    assert describe_target(ws, DestinationSpec(name=NAME, fields=[field])).ok
    assert render_destination(ws, NAME).ok
    for source, key in (
        ("config.py", "config"),
        ("destination.py", "destination"),
        ("ndjson.example.yml", "example"),
        ("ndjson.check.yml", "check"),
        ("destination_tests.py", "tests"),
    ):
        target = ws.root / FILES[key]
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(GOOD / source, target)
    assert apply_registrations(ws, NAME).ok


def break_it(ws: Workspace, case: Case) -> dict[Path, bytes | None]:
    """Apply a case's edits; returns the originals for restore()."""
    originals: dict[Path, bytes | None] = {}
    for op, key, *args in case.edits:
        path = ws.root / FILES[key]
        originals.setdefault(path, path.read_bytes() if path.exists() else None)
        if op == "delete":
            path.unlink()
            continue
        text = path.read_text()
        old, new = args
        if op == "replace":
            assert text.count(old) == 1, f"{key}: {old!r} occurs {text.count(old)} times"
            text = text.replace(old, new)
        else:
            text, n = re.subn(old, new, text, count=1, flags=re.S)
            assert n == 1, f"{key}: no match for {old!r}"
        path.write_text(text)
    return originals


def restore(originals: dict[Path, bytes | None]) -> None:
    for path, data in originals.items():
        if data is None:
            path.unlink(missing_ok=True)
        else:
            path.write_bytes(data)
