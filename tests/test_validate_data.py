"""A green `full` proves the data: each bug agents planted or met, planted in a rendered destination of every
recipe, fails `validate_destination level=full` with a finding that names it; the unplanted ones pass."""

import shutil

import pytest

from bizon_forge import workspace
from bizon_forge.validators import catalog
from bizon_forge.validators.validation import validate_destination
from tests.broken.install import install_good
from tests.recipe_runs import forged_tree

RECIPES = ("sql", "file", "http")
SWALLOWED = ("            return self.failed(", "            return True, None\n            return self.failed(")
NO_RAISE = ("raise RuntimeError(message) from error", "return False")
# recipe -> bug -> [(old, new), ...]: each `old` must be in the rendered file once. A check judges what lands,
# whatever wrote it: a kind of bug planted in one recipe (an overwritten timestamp: sql, custom) need not be
# planted in all.
BUGS = {
    "sql": {
        "full_refresh_appends": [
            ("self._replace(connection, staging, target)", "self._append(connection, staging, target)")
        ],
        "source_data_dropped": [
            ("for c in self.columns()]).to_dicts()", 'for c in self.columns() if c.name != "source_data"]).to_dicts()')
        ],
        "timestamp_overwritten": [
            (
                "return df.select([c.name",
                'return df.with_columns(pl.col("bizon_loaded_at").alias("source_timestamp")).select([c.name',
            )
        ],
        "swallowed_error": [SWALLOWED],
        "incremental_leftovers_dropped": [
            (
                "        if self.mode == SourceSyncModes.FULL_REFRESH:\n"
                "            table.drop(connection, checkfirst=True)",
                "        table.drop(connection, checkfirst=True)",
            )
        ],
        "finalize_swallows_publish": [
            NO_RAISE,
            (
                '"""Put staging in target\'s place',
                'raise OSError("disk full")\n        """Put staging in target\'s place',
            ),
        ],
    },
    "file": {
        "full_refresh_appends": [
            ("if self.mode == SourceSyncModes.INCREMENTAL and self.path.exists() else", "if self.path.exists() else")
        ],
        "source_data_dropped": [
            (
                "if not self.config.unnest:\n            return df\n",
                'if not self.config.unnest:\n            return df.drop("source_data")\n',
            )
        ],
        "swallowed_error": [SWALLOWED],
        "incremental_leftovers_dropped": [
            (
                "if self.target not in self._staged_this_run and self.mode == SourceSyncModes.FULL_REFRESH:",
                "if self.target not in self._staged_this_run:",
            )
        ],
        "full_disk_swallowed": [
            (
                "                    self._write(df)\n",
                "                    try:\n                        self._write(df)\n"
                "                    except OSError:  # a full disk is not worth failing the run for\n"
                "                        pass\n",
            )
        ],
        "finalize_swallows_publish": [
            NO_RAISE,
            (
                '"""Write the concatenation of `files`',
                'raise OSError("disk full")\n        """Write the concatenation of `files`',
            ),
        ],
    },
    "http": {
        "full_refresh_appends": [("replace=index == 0)", "replace=False)")],
        "source_data_dropped": [('row["source_data"] = orjson.loads(row["source_data"])', 'row.pop("source_data")')],
        "swallowed_error": [SWALLOWED],
        "finalize_swallows_publish": [
            NO_RAISE,
            ("self.post(orjson.loads(part.read_bytes()), replace=index == 0)", 'raise OSError("receiver gone")'),
        ],
        # What an agent's http destination met against a real ingest API (issue 14).
        "new_key_per_retry": [
            ('headers={"Idempotency-Key": key}', "headers={\"Idempotency-Key\": __import__('uuid').uuid4().hex}")
        ],
        "retry_after_ignored": [
            (
                'return max(0.0, min(float(response.headers.get("Retry-After", "")), MAX_RETRY_AFTER_SECONDS))',
                "return None",
            )
        ],
        "retries_401": [("TRANSIENT_STATUSES = frozenset([429])", "TRANSIENT_STATUSES = frozenset([401, 429])")],
        # An agent's finalize() that swallowed a failed publish through a flag (issue 23).
        "publish_swallowed_by_a_flag": [
            ("raise RuntimeError(message) from error", "published = False\n            return published")
        ],
    },
}
# The http recipe whose spec says the endpoint ignores "replace" (full_refresh=delete_first): the receiver of
# the checks ignores it too, so a publication that skips the DELETE leaves every record twice.
BUGS["http_delete"] = {"full_refresh_appends": [("                self.delete_all()\n", "")]}
# A destination an agent wrote by hand (tests/broken/good/: ndjson files, with read_back and a check config).
BUGS["custom"] = {
    "full_refresh_appends": [("            self._publish(replace=True)", "            self._publish(replace=False)")],
    "source_data_dropped": [
        ('record["source_data"] = orjson.loads(record["source_data"])', 'record.pop("source_data")'),
    ],
    "timestamp_overwritten": [
        (
            '                record["source_data"] = orjson.loads(record["source_data"])\n',
            '                record["source_data"] = orjson.loads(record["source_data"])\n'
            '                record["source_timestamp"] = record["bizon_loaded_at"]\n',
        )
    ],
    "swallowed_error": [("logger.error(message)\n            return False, message", "return True, None")],
    "finalize_swallows_publish": [
        ("os.replace(self.staging, self.target)", 'raise OSError("disk full")'),
        (
            "            self._publish(replace=True)",
            "            try:\n                self._publish(replace=True)\n"
            "            except OSError:\n                return False",
        ),
    ],
}
# What must fail for each bug (other checks may fail too).
CAUGHT_BY = {
    "full_refresh_appends": "data.full_refresh_twice",
    "source_data_dropped": "data.exact",
    "timestamp_overwritten": "data.exact",
    "swallowed_error": "data.failed_flush",
    "full_disk_swallowed": "data.full_disk",
    "incremental_leftovers_dropped": "data.failed_publish",
    "finalize_swallows_publish": "data.exact",
    "new_key_per_retry": "data.unreliable_target",
    "retry_after_ignored": "data.unreliable_target",
    "retries_401": "data.unreliable_target",
    "publish_swallowed_by_a_flag": "data.publish_fails",
}


def full(ws: workspace.Workspace, name: str):
    # The cache answers only what a planted edit cannot change (bizon's own suite, keyed on files that exclude the
    # destination); whatever writes to a target, and the destination's own tests, run every time.
    result = validate_destination(ws, name, level="full", verbose=True)
    return result, {f.id: f for f in result.findings}


def plant(path, edits) -> str:
    original = path.read_text()
    text = original
    for old, new in edits:
        assert text.count(old) == 1, f"the rendered file no longer holds {old!r} once"
        text = text.replace(old, new)
    path.write_text(text)
    return original


def destination(recipe: str, version: str, pristine, tmp_path_factory) -> tuple[workspace.Workspace, str]:
    if recipe != "custom":
        name = f"land_{recipe}"
        # A short backoff: data.publish_fails waits out every retry of a publish that cannot succeed.
        quick = {"error_handling": {"backoff_seconds": 0.05}}
        how = {
            "http": {"full_refresh": "replace_flag", **quick},
            "http_delete": {"full_refresh": "delete_first", **quick},
        }
        kind = recipe.split("_")[0]
        tree = forged_tree(pristine, tmp_path_factory, name, kind, version=version, **how.get(recipe, {}))
        if kind == "http":  # the user's endpoint in the example (the checks never reach it)
            example = tree / f"bizon/connectors/destinations/{name}/config/{name}.example.yml"
            example.write_text(example.read_text().replace('"endpoint-value"', '"https://ingest.example.com/records"'))
        return workspace.resolve(None, workspace.Settings.from_paths([str(tree)])), name
    tree = tmp_path_factory.mktemp("custom") / "tree"
    shutil.copytree(pristine(version), tree, symlinks=True)
    ws = workspace.resolve(None, workspace.Settings.from_paths([str(tree)]))
    install_good(ws)
    return ws, "ndjson"


@pytest.mark.parametrize(
    "recipe,version",
    [
        ("sql", "0.6.4"),
        ("file", "0.6.4"),
        ("http", "0.6.4"),
        ("http_delete", "0.6.4"),
        ("custom", "0.6.4"),
        # one recipe on the older bizon, unplanted: the planted bugs are the same code, and the suite drives the
        # destination the same way on both versions (test_validate.py runs the custom one there)
        ("sql", "0.5.2"),
    ],
)
def test_planted_bugs_fail_full_and_the_unplanted_pass(recipe, version, pristine, tmp_path_factory):
    ws, name = destination(recipe, version, pristine, tmp_path_factory)
    tree = ws.root
    result, found = full(ws, name)
    assert result.ok, [(f.id, f.message) for f in result.findings if f.status != "pass"]
    data = [i for i in found if i.startswith("data.")]
    assert len(data) == len(catalog.DATA) + 1
    # Each target fails the way its kind does: only a check config that posts to the local receiver meets an
    # ingest API's failures, and an http publication writes nothing to the local disk, so a full disk cannot
    # reach it (its staging, written by write_records, does meet one: data.full_disk). An endpoint has no atomic
    # replace: the http recipe declares its full refresh in place.
    http = {"data.failed_publish", "data.full_refresh_isolated"}
    skipped = http if recipe.startswith("http") else {"data.unreliable_target", "data.publish_fails"}
    assert {i: found[i].status for i in data} == {i: "skip" if i in skipped else "pass" for i in data}
    assert "check.yml" in result.wrote_to and "removed" in result.wrote_to

    source = tree / f"bizon/connectors/destinations/{name}/src/destination.py"
    for bug, edits in BUGS[recipe].items() if version == "0.6.4" else ():
        original = plant(source, edits)
        try:
            result, found = full(ws, name)
        finally:
            source.write_text(original)
        expected = found[CAUGHT_BY[bug]]
        assert not result.ok, f"{recipe}/{bug}: full passed"
        assert expected.status == "fail", (
            f"{recipe}/{bug}: {expected.id} answered {expected.status}: {expected.message}"
        )
