"""Broken destinations, one per finding id: each case is the good ndjson destination (tests/broken/good/) with
the edits that make exactly that check fail. test_validate_corpus.py applies them to a real bizon tree."""

from dataclasses import dataclass

# Where each edit lands, relative to the workspace.
FILES = {
    "config": "bizon/connectors/destinations/ndjson/src/config.py",
    "destination": "bizon/connectors/destinations/ndjson/src/destination.py",
    "init": "bizon/connectors/destinations/ndjson/src/__init__.py",
    "example": "bizon/connectors/destinations/ndjson/config/ndjson.example.yml",
    "check": "bizon/connectors/destinations/ndjson/config/ndjson.check.yml",
    "tests": "tests/connectors/destinations/ndjson/test_ndjson_destination.py",
    "enum": "bizon/destination/config.py",
    "models": "bizon/common/models.py",
    "factory": "bizon/destination/destination.py",
}


@dataclass(frozen=True)
class Case:
    why: str  # the mistake, as an agent would make it
    edits: tuple  # ("replace", file, old, new) exactly once | ("regex", file, pattern, new) | ("delete", file)
    level: str = "fast"
    status: str = "fail"
    also: tuple = ()  # ids that rightly fail too: the destination's own tests check the same behaviour


def replace(file: str, old: str, new: str) -> tuple:
    return ("replace", file, old, new)


CASES: dict[str, Case] = {
    "source.syntax": Case(
        "a colon lost in an edit",
        (replace("destination", "def check_connection(self) -> bool:", "def check_connection(self) -> bool"),),
    ),
    "checklist.init_file": Case("src/__init__.py deleted", (("delete", "init"),)),
    "checklist.details_base": Case(
        "the details config derives from pydantic's BaseModel",
        (
            replace("config", "from pydantic import Field", "from pydantic import BaseModel, Field"),
            replace("config", "    AbstractDestinationDetailsConfig,\n", ""),
            replace(
                "config",
                "class NdjsonDestinationConfig(AbstractDestinationDetailsConfig):",
                "class NdjsonDestinationConfig(BaseModel):",
            ),
        ),
    ),
    "checklist.config_base": Case(
        "the main config derives from pydantic's BaseModel",
        (
            replace("config", "from pydantic import Field", "from pydantic import BaseModel, Field"),
            replace("config", "    AbstractDestinationConfig,\n", ""),
            replace("config", "class NdjsonConfig(AbstractDestinationConfig):", "class NdjsonConfig(BaseModel):"),
        ),
    ),
    "checklist.literal_name": Case(
        "a typo in the Literal's member",
        (replace("config", "Literal[DestinationTypes.NDJSON]", "Literal[DestinationTypes.NDJSN]"),),
    ),
    "checklist.field_descriptions": Case(
        "a required field declared without Field(description=...)",
        (
            replace(
                "config",
                '    directory: str = Field(..., description="Folder the .jsonl files are written to; '
                'created if missing.")',
                "    directory: str",
            ),
            replace("config", "from pydantic import Field\n\n", ""),
        ),
    ),
    "checklist.destination_base": Case(
        "the destination class forgot its base",
        (
            replace("destination", "class NdjsonDestination(AbstractDestination):", "class NdjsonDestination:"),
            replace("destination", "from bizon.destination.destination import AbstractDestination\n", ""),
        ),
    ),
    "checklist.check_connection_bool": Case(
        "check_connection falls off its end",
        (
            replace(
                "destination",
                "    def check_connection(self) -> bool:\n        return os.access(self.folder, os.W_OK)",
                "    def check_connection(self) -> bool:\n        if os.access(self.folder, os.W_OK):\n"
                "            return True",
            ),
        ),
    ),
    "checklist.write_records_returns": Case(
        "write_records returns a bare True",
        (replace("destination", "        return True, None\n", "        return True\n"),),
    ),
    "checklist.errors_logged": Case(
        "the except block returns the error without logging it",
        (replace("destination", "            logger.error(message)\n", ""),),
        status="warn",
    ),
    "registration.enum": Case(
        "the enum member was never added",
        (replace("enum", '    NDJSON = "ndjson"\n', ""),),
    ),
    "registration.union": Case(
        "models.py was never touched",
        (
            replace("models", "from bizon.connectors.destinations.ndjson.src.config import NdjsonConfig\n", ""),
            replace("models", "        NdjsonConfig,\n", ""),
        ),
    ),
    "registration.factory": Case(
        "the factory branch was never added",
        (
            (
                "regex",
                "factory",
                r"        elif config\.name == DestinationTypes\.NDJSON:.*?\n            \)\n\n",
                "",
            ),
        ),
    ),
    "registration.same_name": Case(
        "the factory branch tests another member",
        (
            replace(
                "factory",
                "elif config.name == DestinationTypes.NDJSON:",
                "elif config.name == DestinationTypes.LOGGER:",
            ),
        ),
    ),
    "trap.literal_other_member": Case(
        "the Literal copy-pasted from the file destination",
        (replace("config", "Literal[DestinationTypes.NDJSON]", "Literal[DestinationTypes.FILE]"),),
    ),
    "trap.optional_import_in_config": Case(
        "a driver imported in config.py",
        (
            replace(
                "config",
                "from pydantic import Field",
                "import duckdb  # noqa: F401\nfrom pydantic import Field",
            ),
        ),
    ),
    "trap.models_import_in_config": Case(
        "SyncMetadata imported in config.py",
        (
            replace(
                "config",
                "from bizon.destination.config import (",
                "from bizon.common.models import SyncMetadata  # noqa: F401\nfrom bizon.destination.config import (",
            ),
        ),
    ),
    "trap.factory_top_level_import": Case(
        "the destination module imported at the top of the factory file",
        (
            replace(
                "factory",
                "from bizon.common.models import SyncMetadata\n",
                "import bizon.connectors.destinations.ndjson.src.destination  # noqa: F401\n"
                "from bizon.common.models import SyncMetadata\n",
            ),
        ),
    ),
    "trap.setup_in_check_connection": Case(
        "the folder is prepared only in check_connection",
        (
            replace("destination", "        self._prepare_folder()\n", ""),
            replace(
                "destination",
                "    def check_connection(self) -> bool:\n",
                "    def check_connection(self) -> bool:\n        self._prepare_folder()\n",
            ),
        ),
    ),
    "trap.write_records_raises": Case(
        "write_records re-raises after logging",
        (
            replace(
                "destination",
                "            logger.error(message)\n            return False, message",
                "            logger.error(message)\n            raise",
            ),
        ),
    ),
    "trap.write_records_signature": Case(
        "write_records takes `df`",
        (
            replace(
                "destination",
                "def write_records(self, df_destination_records: pl.DataFrame)",
                "def write_records(self, df: pl.DataFrame)",
            ),
            replace("destination", "for record in df_destination_records.iter_rows", "for record in df.iter_rows"),
            replace("destination", "c not in df_destination_records.columns", "c not in df.columns"),
            replace(
                "destination",
                "writing {df_destination_records.height} records",
                "writing {df.height} records",
            ),
        ),
    ),
    "trap.staging_without_finalize": Case(
        "finalize() deleted: staged records never published",
        (("regex", "destination", r"\n    def finalize\(self\) -> bool:.*\Z", ""),),
    ),
    "trap.finalize_returns_false": Case(
        "a failed publish answered with False, which bizon ignores",
        (
            replace(
                "destination",
                "            self._publish(replace=True)",
                "            try:\n                self._publish(replace=True)\n"
                "            except OSError:\n                return False",
            ),
        ),
    ),
    "trap.secret_logged": Case(
        "the whole config logged at start-up",
        (
            replace(
                "destination",
                "        self._prepare_folder()\n",
                '        self._prepare_folder()\n        logger.info(f"ndjson: {self.config}")\n',
            ),
        ),
    ),
    "trap.plaintext_secret": Case(
        "an API token written into the example config",
        (
            replace("config", "from pydantic import Field\n", "from pydantic import Field, SecretStr\n"),
            replace(
                "config",
                "    directory: str = Field(",
                '    api_token: SecretStr | None = Field(None, description="Token of the folder service.")\n'
                "    directory: str = Field(",
            ),
            replace("example", "    directory: ndjson-out", "    directory: ndjson-out\n    api_token: tk-5f2e9a"),
        ),
    ),
    "agent.todo_left": Case(
        "a FORGE-TODO marker left in a comment",
        (
            replace(
                "destination",
                "    def check_connection",
                "    # FORGE-TODO(rotate): rotate files over 1 GB.\n    def check_connection",
            ),
        ),
    ),
    "agent.pass_body": Case(
        "a stub method left from the guide's skeleton",
        (
            replace(
                "destination",
                "    def check_connection",
                "    def close(self) -> None:\n        pass\n\n    def check_connection",
            ),
        ),
    ),
    "agent.not_implemented": Case(
        "a method left raising NotImplementedError",
        (
            replace(
                "destination",
                "    def check_connection",
                '    def delete_table(self) -> bool:\n        raise NotImplementedError("delete_table")\n\n'
                "    def check_connection",
            ),
        ),
    ),
    "agent.placeholder": Case(
        "a placeholder from the guide's YAML template",
        (replace("example", "directory: ndjson-out", 'directory: "{{connection_value}}"'),),
    ),
    "format.ruff_format": Case(
        "spaces inside a call",
        (replace("destination", "Path(config.directory)", "Path( config.directory )"),),
    ),
    "format.ruff_check": Case(
        "an unused import",
        (replace("destination", "import os\n", "import os\nimport sys\n"),),
    ),
    "import.models": Case(
        "config.py imports a bizon module that does not exist",
        (
            replace(
                "config",
                "from bizon.destination.config import (",
                "import bizon.destination.kinds  # noqa: F401\nfrom bizon.destination.config import (",
            ),
        ),
    ),
    "import.config_validate": Case(
        "the example YAML lacks a required field",
        (replace("example", "    directory: ndjson-out\n", ""),),
    ),
    "contract.build": Case(
        "the folder cannot be created",
        (replace("check", "directory: ${env://BIZON_FORGE_SCRATCH}/ndjson", "directory: /proc/ndjson-out"),),
    ),
    "contract.write_records": Case(
        "the target path points into a folder nobody creates",
        (
            replace(
                "destination",
                'return self.folder / f"{self.destination_id or self.sync_metadata.stream_name}.jsonl"',
                'return self.folder / "missing" / f"{self.destination_id or self.sync_metadata.stream_name}.jsonl"',
            ),
        ),
    ),
    "contract.finalize": Case(
        "publishing renames into a folder that does not exist",
        (
            replace(
                "destination",
                "os.replace(self.staging, self.target)",
                'os.replace(self.staging, self.folder / "gone" / "x")',
            ),
        ),
    ),
    "tests.destination": Case(
        "the destination's own test expects the wrong rows",
        (replace("tests", "assert read(again) == [3, 4]", "assert read(again) == [1, 2, 3, 4]"),),
        level="full",
    ),
    "tests.bizon_suite": Case(
        "config.py pulls in an optional driver at import time, by a route static checks cannot see",
        (
            replace("config", "from typing import Literal\n", "import importlib\nfrom typing import Literal\n"),
            replace(
                "config",
                "\n\nclass NdjsonDestinationConfig",
                '\nimportlib.import_module("psycopg2")\n\n\nclass NdjsonDestinationConfig',
            ),
        ),
        level="full",
    ),
    "live.check_config": Case(
        "the check config copied from the example: the checks would write into the real target",
        (replace("check", "directory: ${env://BIZON_FORGE_SCRATCH}/ndjson", "directory: ndjson-out"),),
    ),
    "live.check_references": Case(
        "the check config references a variable set neither in the environment nor in the tree's .env",
        (
            replace(
                "check",
                "directory: ${env://BIZON_FORGE_SCRATCH}/ndjson",
                "directory: ${env://NDJSON_SCRATCH_ROOT}/ndjson",
            ),
        ),
    ),
    "live.bizon_secrets_check": Case(
        "the check config's folder named by a Google Secret Manager secret this machine cannot read",
        (
            replace(
                "check",
                "directory: ${env://BIZON_FORGE_SCRATCH}/ndjson",
                "directory: ${env://BIZON_FORGE_SCRATCH}/${gsm://forge-scratch-subdir}",
            ),
        ),
        level="full",
    ),
    "live.example_values": Case(
        "the example config left with the placeholder render_destination wrote",
        (replace("example", "directory: ndjson-out", "directory: directory-value"),),
    ),
    "data.read_back": Case(
        "no read_back(): nothing can prove what landed",
        (replace("destination", "    def read_back(self)", "    def read_everything(self)"),),
        level="full",
    ),
    "data.exact": Case(
        "source_timestamp overwritten with bizon_loaded_at",
        (
            replace(
                "destination",
                '                record["source_data"] = orjson.loads(record["source_data"])\n',
                '                record["source_data"] = orjson.loads(record["source_data"])\n'
                '                record["source_timestamp"] = record["bizon_loaded_at"]\n',
            ),
        ),
        level="full",
    ),
    "data.several_flushes": Case(
        "each flush truncates the staging file: only the last flush of a run survives",
        (
            replace(
                "destination",
                'with path.open("ab") as handle:',
                'with path.open("wb" if self.stages else "ab") as handle:',
            ),
        ),
        level="full",
        also=("data.failed_publish",),  # its incremental runs flush too
    ),
    "data.hostile": Case(
        "source_data cut at 64 KB, as a MySQL TEXT column does",
        (
            replace(
                "destination",
                'orjson.loads(record["source_data"])\n',
                'orjson.loads(record["source_data"][:65535])\n',
            ),
        ),
        level="full",
    ),
    "data.empty_batch": Case(
        "an empty flush is treated as an error",
        (
            replace(
                "destination",
                "            missing = [c for c in CONTRACT",
                "            if df_destination_records.height == 0:\n"
                '                raise ValueError("nothing to write")\n'
                "            missing = [c for c in CONTRACT",
            ),
        ),
        level="full",
    ),
    "data.full_refresh_twice": Case(
        "full_refresh appends instead of replacing",
        (
            replace(
                "destination", "            self._publish(replace=True)", "            self._publish(replace=False)"
            ),
        ),
        level="full",
        also=("tests.destination",),  # data.full_disk fails too, folded into this (its last run is a full refresh)
    ),
    "data.incremental": Case(
        "incremental replaces instead of appending",
        (
            replace(
                "destination", "            self._publish(replace=False)", "            self._publish(replace=True)"
            ),
        ),
        level="full",
        also=("tests.destination",),  # data.failed_publish fails too, folded into this (it runs incrementally)
    ),
    "data.stream": Case(
        "stream mode stages too, and bizon never calls finalize() there",
        (
            replace(
                "destination",
                "        return self.sync_metadata.sync_mode != SourceSyncModes.STREAM",
                "        return True",
            ),
        ),
        level="full",
    ),
    "data.stream_routing": Case(
        "the target file is fixed from the first destination_id",
        (
            replace(
                "destination",
                "        self._failed: Optional[str] = None\n",
                "        self._failed: Optional[str] = None\n"
                "        self._first = self.destination_id or self.sync_metadata.stream_name\n",
            ),
            replace(
                "destination",
                'f"{self.destination_id or self.sync_metadata.stream_name}.jsonl"',
                'f"{self._first}.jsonl"',
            ),
        ),
        level="full",
    ),
    "data.failed_flush": Case(
        "write_records swallows its error and answers (True, None)",
        (
            replace(
                "destination",
                "            logger.error(message)\n            return False, message",
                "            logger.error(message)\n            return True, None",
            ),
        ),
        level="full",
        also=("tests.destination", "data.full_disk"),  # a flush failed by a full disk is a failed flush
    ),
    "data.full_disk": Case(
        "a write that failed for want of disk space taken for one that landed",
        (
            replace(
                "destination",
                '            with path.open("ab") as handle:\n'
                '                handle.write(b"".join(line + b"\\n" for line in lines))\n',
                "            try:\n"
                '                with path.open("ab") as handle:\n'
                '                    handle.write(b"".join(line + b"\\n" for line in lines))\n'
                "            except OSError:  # a full disk is not worth failing the run for\n"
                "                pass\n",
            ),
        ),
        level="full",
    ),
    "data.failed_publish": Case(
        "every run starts from an empty staging file, incremental ones too: what a failed publication left is "
        "dropped, though bizon marked that run succeeded and will not extract it again",
        (
            replace(
                "destination",
                "        if self.sync_metadata.sync_mode == SourceSyncModes.FULL_REFRESH:\n"
                "            self.staging.unlink(missing_ok=True)\n",
                "        self.staging.unlink(missing_ok=True)\n",
            ),
        ),
        level="full",
        # data.full_refresh_isolated's reader, a new destination object, empties the staging of the run under way
        also=("data.full_refresh_isolated",),
    ),
    "data.unreliable_target": Case(
        "the check config names the local receiver, but the destination never posts to it (it writes files into "
        "a folder named after the URL), so a receiver answering 401 to everything never stops it",
        (
            replace(
                "check",
                "directory: ${env://BIZON_FORGE_SCRATCH}/ndjson",
                "directory: ${env://BIZON_FORGE_SCRATCH}/${env://BIZON_FORGE_RECEIVER_URL}",
            ),
        ),
        level="full",
    ),
    "data.publish_fails": Case(
        "finalize() tells the ingest API the publication is done and swallows its failure (a 401, a 500, a "
        "dropped connection): the run ends green while the API never got it",
        (
            replace(
                "check",
                "directory: ${env://BIZON_FORGE_SCRATCH}/ndjson",
                "directory: ${env://BIZON_FORGE_SCRATCH}/${env://BIZON_FORGE_RECEIVER_URL}",
            ),
            replace(
                "destination",
                "            self._publish(replace=True)\n",
                "            self._publish(replace=True)\n"
                "            try:\n"
                "                import json\n"
                "                import urllib.request\n"
                "\n"
                '                url = "http" + str(self.config.directory).split("http", 1)[1]\n'
                '                body = json.dumps({"destination_id": self.destination_id, "records": []}).encode()\n'
                '                request = urllib.request.Request(url, body, {"Content-Type": "application/json"})\n'
                "                urllib.request.urlopen(request, timeout=5)\n"
                "            except Exception:\n"
                "                pass\n",
            ),
        ),
        level="full",
        also=("data.unreliable_target",),  # its write_records never posts, as in that case
    ),
    "data.upsert": Case(
        "an incremental publication replaces the records whose source_record_id it brings again (an update by "
        "key), though the destination declares append semantics (no WRITE_SEMANTICS)",
        (
            replace(
                "destination",
                "                for part in (self.target, self.staging):\n"
                "                    if part.exists():\n"
                '                        with part.open("rb") as handle:\n'
                "                            shutil.copyfileobj(handle, out)\n",
                "                lines = self.staging.read_bytes().splitlines()\n"
                '                again = {orjson.loads(line)["source_record_id"] for line in lines if line}\n'
                "                if self.target.exists():\n"
                "                    for line in self.target.read_bytes().splitlines(keepends=True):\n"
                '                        if line.strip() and orjson.loads(line)["source_record_id"] not in again:\n'
                "                            out.write(line)\n"
                '                with self.staging.open("rb") as handle:\n'
                "                    shutil.copyfileobj(handle, out)\n",
            ),
        ),
        level="full",
    ),
    "data.full_refresh_isolated": Case(
        "a full refresh empties the target at its first flush (TRUNCATE, then load), and readers see it empty "
        "until finalize() publishes",
        (
            replace(
                "destination",
                "        path = self.staging if self.stages else self.target\n",
                "        path = self.staging if self.stages else self.target\n"
                "        if self.sync_metadata.sync_mode == SourceSyncModes.FULL_REFRESH and not "
                "self.staging.exists():\n"
                "            self.target.unlink(missing_ok=True)  # the run replaces it anyway\n",
            ),
        ),
        level="full",
    ),
    "data.empty_last_buffer": Case(
        "finalize() left to bizon, which skips it when the last buffer is empty (buffer_size: 0)",
        (
            ("regex", "destination", r"\n    def write_or_buffer_records\(.*?return status\n", ""),
            replace("destination", "from bizon.engine.backend.models import JobStatus\n", ""),
        ),
        level="full",
    ),
    "smoke.bizon_run": Case(
        "publishing logs an error it then ignores (a failed clean-up)",
        (
            replace(
                "destination",
                '        logger.info(f"ndjson: published {self.target}")',
                '        logger.info(f"ndjson: published {self.target}")\n'
                '        logger.error("ndjson: could not remove the lock file")',
            ),
        ),
        level="full",
    ),
}
