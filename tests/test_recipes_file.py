"""The file recipe end to end: rendered over stdio, registered, then `bizon run` of the dummy source into JSON
Lines, CSV and Parquet files; each file read back; a second full refresh still leaves one copy."""

import polars as pl
import pytest

from tests.recipe_runs import CONTRACT_COLUMNS, CREATURE_IDS, forged_tree, run_ok, write_run_config

READERS = {"jsonl": pl.read_ndjson, "csv": pl.read_csv, "parquet": pl.read_parquet}


@pytest.fixture(scope="module")
def lake(pristine, tmp_path_factory):
    return forged_tree(pristine, tmp_path_factory, "lake", "file", validate=True)


@pytest.mark.parametrize("file_format", ["jsonl", "csv", "parquet"])
def test_two_full_refreshes_leave_one_file(lake, tmp_path, file_format):
    config = write_run_config(lake, "lake", tmp_path, format=file_format)  # the example's directory: output
    for _ in range(2):
        run_ok(lake, config)
        files = sorted(p.name for p in (tmp_path / "output").iterdir())
        assert files == [f"lake_creatures.{file_format}"]  # one file per destination_id, no staging left
        df = READERS[file_format](tmp_path / "output" / files[0])
        assert df.columns == CONTRACT_COLUMNS
        assert sorted(df["source_record_id"].cast(pl.String)) == CREATURE_IDS
