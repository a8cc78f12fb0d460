"""The registration codemods, as before/after pairs: on bizon's real files (0.6.4 and 0.5.2) and on the
variants a user's tree may have. Each transform's inverse gives back the original byte for byte.
"""

import subprocess
import textwrap

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from ruff.__main__ import find_ruff_bin

from bizon_forge import codemods, registry
from bizon_forge.registrations import plan_add, plan_remove
from bizon_forge.spec import destination as spec
from bizon_forge.workspace import ENUM_FILE, FACTORY_FILE, MODELS_FILE, REGISTRATION_FILES
from tests.conftest import VERSIONS

CONNECTORS = "bizon.connectors.destinations"


def dedent(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def names(name: str) -> spec.Names:
    return spec.DestinationSpec(name=name).names


@pytest.fixture(scope="module", params=VERSIONS)
def real(request, pristine) -> dict[str, str]:
    """bizon's own three registration files, plus its pyproject (for ruff), as they ship on PyPI."""
    root = pristine(request.param)
    return {rel: (root / rel).read_text() for rel in (*REGISTRATION_FILES, "pyproject.toml")}


def once(text: str, old: str, new: str) -> str:
    """`text` with its one occurrence of `old` replaced: the edit is exactly there and nowhere else."""
    assert text.count(old) == 1, f"anchor not unique: {old!r}"
    return text.replace(old, new)


def ruff_problems(tmp_path, texts: dict[str, str]) -> str:
    """What ruff (check + format --check, with the tree's own config) says about the files; '' if clean."""
    for rel, text in texts.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    rels = [rel for rel in texts if rel.endswith(".py")]
    out = []
    for cmd in (["check", "--no-cache", "-q"], ["format", "--check", "--no-cache", "-q"]):
        done = subprocess.run([find_ruff_bin(), *cmd, *rels], cwd=tmp_path, capture_output=True, text=True)
        out.append(done.stdout + done.stderr if done.returncode else "")
    return "".join(out)


# -- on bizon's real files -----------------------------------------------------------------------------


def test_enum_member_goes_after_the_last_member(real):
    before = real[ENUM_FILE]
    after = codemods.add_enum_member(before, "ACME", "acme")
    assert after == once(before, '    FILE = "file"\n', '    FILE = "file"\n    ACME = "acme"\n')
    assert codemods.remove_enum_member(after, "ACME") == before


@pytest.mark.parametrize(
    "name, goes_before",
    [
        ("acme", "from bizon.connectors.destinations.bigquery.src.config import ("),
        ("bigquery2", "from bizon.connectors.destinations.bigquery_streaming.src.config import ("),
        ("file_v2", "from bizon.connectors.destinations.logger.src.config import LoggerConfig"),
        ("zendesk", "from bizon.destination.config import DestinationTypes"),
    ],
)
def test_config_import_goes_where_isort_puts_it(real, name, goes_before):
    before = real[MODELS_FILE]
    cls = f"{names(name).pascal}Config"
    after = codemods.add_import(before, f"{CONNECTORS}.{name}.src.config", cls, 120)
    line = f"from bizon.connectors.destinations.{name}.src.config import {cls}\n"
    assert after == once(before, goes_before, line + goes_before)
    assert codemods.remove_import(after, f"{CONNECTORS}.{name}.src.config", cls) == before


def test_union_member_goes_last(real):
    before = real[MODELS_FILE]
    after = codemods.add_union_member(before, "AcmeConfig")
    anchor = "        FileDestinationConfig,\n    ] = Field("
    assert after == once(before, anchor, "        FileDestinationConfig,\n        AcmeConfig,\n    ] = Field(")
    assert codemods.remove_union_member(after, "AcmeConfig") == before


NEW_BRANCH = """
        elif config.name == DestinationTypes.ACME:
            from bizon.connectors.destinations.acme.src.destination import (
                AcmeDestination,
            )

            return AcmeDestination(
                sync_metadata=sync_metadata,
                config=config.config,
                backend=backend,
                source_callback=source_callback,
                monitor=monitor,
            )
"""


def test_factory_branch_goes_before_the_raise_with_its_import_inside(real):
    before = real[FACTORY_FILE]
    after = codemods.add_factory_branch(before, "ACME", f"{CONNECTORS}.acme.src.destination", "AcmeDestination")
    raise_line = '\n        raise ValueError(f"Destination {config.name}with params {config} not found")\n'
    assert after == once(before, raise_line, NEW_BRANCH + raise_line)
    assert codemods.remove_factory_branch(after, "ACME") == before


def test_registered_files_stay_ruff_clean_under_the_trees_config(real, tmp_path):
    texts, status = plan_add(real, "dest_10", names("dest_10"), 120)
    texts, _ = plan_add(texts, "dest_9", names("dest_9"), 120)  # natural order: dest_9 sorts before dest_10
    long_name = "a_destination_whose_name_is_long_enough_to_wrap"
    texts, _ = plan_add(texts, long_name, names(long_name), 120)
    assert set(status.values()) == {"added"}
    assert ruff_problems(tmp_path, {**texts, "pyproject.toml": real["pyproject.toml"]}) == ""
    wrapped = f"from {CONNECTORS}.{long_name}.src.config import (\n    {names(long_name).pascal}Config,\n)\n"
    assert wrapped in texts[MODELS_FILE]


# -- on the variants a user's tree may have --------------------------------------------------------


ADD_UNION = (
    lambda t: codemods.add_union_member(t, "AcmeConfig"),
    lambda t: codemods.remove_union_member(t, "AcmeConfig"),
)
ADD_IMPORT = (
    lambda t: codemods.add_import(t, f"{CONNECTORS}.acme.src.config", "AcmeConfig", 120),
    lambda t: codemods.remove_import(t, f"{CONNECTORS}.acme.src.config", "AcmeConfig"),
)
ADD_ENUM = (
    lambda t: codemods.add_enum_member(t, "ACME", "acme"),
    lambda t: codemods.remove_enum_member(t, "ACME"),
)
ADD_BRANCH = (
    lambda t: codemods.add_factory_branch(t, "ACME", f"{CONNECTORS}.acme.src.destination", "AcmeDestination"),
    lambda t: codemods.remove_factory_branch(t, "ACME"),
)

VARIANTS = {
    "union on one line": (
        ADD_UNION,
        """
        class BizonConfig(BaseModel):
            destination: Union[LoggerConfig, FileDestinationConfig] = Field(discriminator="name")
        """,
        """
        class BizonConfig(BaseModel):
            destination: Union[LoggerConfig, FileDestinationConfig, AcmeConfig] = Field(discriminator="name")
        """,
    ),
    "union without trailing comma": (
        ADD_UNION,
        """
        class BizonConfig(BaseModel):
            destination: Union[
                LoggerConfig,
                FileDestinationConfig
            ] = Field(discriminator="name")
        """,
        """
        class BizonConfig(BaseModel):
            destination: Union[
                LoggerConfig,
                FileDestinationConfig,
                AcmeConfig
            ] = Field(discriminator="name")
        """,
    ),
    "union with a comment between members and after the last": (
        ADD_UNION,
        """
        class BizonConfig(BaseModel):
            destination: Union[
                LoggerConfig,
                # files on local disk
                FileDestinationConfig,  # keep last?
                # new destinations go above
            ] = Field(discriminator="name")
        """,
        """
        class BizonConfig(BaseModel):
            destination: Union[
                LoggerConfig,
                # files on local disk
                FileDestinationConfig,  # keep last?
                AcmeConfig,
                # new destinations go above
            ] = Field(discriminator="name")
        """,
    ),
    "union aligned under the bracket": (
        ADD_UNION,
        """
        class BizonConfig(BaseModel):
            destination: Union[LoggerConfig,
                               FileDestinationConfig] = Field(discriminator="name")
        """,
        """
        class BizonConfig(BaseModel):
            destination: Union[LoggerConfig,
                               FileDestinationConfig,
                               AcmeConfig] = Field(discriminator="name")
        """,
    ),
    "another class's destination Union is left alone": (
        ADD_UNION,
        """
        class Legacy(BaseModel):
            destination: Union[LoggerConfig]


        class BizonConfig(BaseModel):
            destination: Union[LoggerConfig]
        """,
        """
        class Legacy(BaseModel):
            destination: Union[LoggerConfig]


        class BizonConfig(BaseModel):
            destination: Union[LoggerConfig, AcmeConfig]
        """,
    ),
    "imports not sorted: before the first connector import that sorts after it": (
        ADD_IMPORT,
        """
        from pydantic import BaseModel

        from bizon.connectors.destinations.logger.src.config import LoggerConfig
        from bizon.connectors.destinations.file.src.config import FileDestinationConfig
        from bizon.destination.config import DestinationTypes
        """,
        """
        from pydantic import BaseModel

        from bizon.connectors.destinations.acme.src.config import AcmeConfig
        from bizon.connectors.destinations.logger.src.config import LoggerConfig
        from bizon.connectors.destinations.file.src.config import FileDestinationConfig
        from bizon.destination.config import DestinationTypes
        """,
    ),
    "import: a comment above the next import stays with it": (
        ADD_IMPORT,
        """
        from bizon.alerting.models import AlertingConfig

        # destinations
        from bizon.connectors.destinations.file.src.config import FileDestinationConfig
        """,
        """
        from bizon.alerting.models import AlertingConfig

        # destinations
        from bizon.connectors.destinations.acme.src.config import AcmeConfig
        from bizon.connectors.destinations.file.src.config import FileDestinationConfig
        """,
    ),
    "enum: a trailing comment and a method after the members": (
        ADD_ENUM,
        """
        class DestinationTypes(str, Enum):
            LOGGER = "logger"
            FILE = "file"  # local disk

            def label(self):
                return self.value
        """,
        """
        class DestinationTypes(str, Enum):
            LOGGER = "logger"
            FILE = "file"  # local disk
            ACME = "acme"

            def label(self):
                return self.value
        """,
    ),
    "factory chain ending in else": (
        ADD_BRANCH,
        """
        class DestinationFactory:
            @staticmethod
            def get_destination(sync_metadata, config, backend, source_callback, monitor):
                if config.name == DestinationTypes.LOGGER:
                    from bizon.connectors.destinations.logger.src.destination import LoggerDestination

                    return LoggerDestination(config=config.config)
                elif config.name == DestinationTypes.FILE:
                    from bizon.connectors.destinations.file.src.destination import FileDestination

                    return FileDestination(config=config.config)
                else:
                    raise ValueError(f"Destination {config.name} not found")
        """,
        """
        class DestinationFactory:
            @staticmethod
            def get_destination(sync_metadata, config, backend, source_callback, monitor):
                if config.name == DestinationTypes.LOGGER:
                    from bizon.connectors.destinations.logger.src.destination import LoggerDestination

                    return LoggerDestination(config=config.config)
                elif config.name == DestinationTypes.FILE:
                    from bizon.connectors.destinations.file.src.destination import FileDestination

                    return FileDestination(config=config.config)
                elif config.name == DestinationTypes.ACME:
                    from bizon.connectors.destinations.acme.src.destination import (
                        AcmeDestination,
                    )

                    return AcmeDestination(
                        sync_metadata=sync_metadata,
                        config=config.config,
                        backend=backend,
                        source_callback=source_callback,
                        monitor=monitor,
                    )
                else:
                    raise ValueError(f"Destination {config.name} not found")
        """,
    ),
    "factory: the comment above the last branch is not copied": (
        ADD_BRANCH,
        """
        class DestinationFactory:
            def get_destination(sync_metadata, config, backend, source_callback, monitor):
                if config.name == DestinationTypes.LOGGER:
                    return LoggerDestination(config=config.config)

                # local files
                elif config.name == DestinationTypes.FILE:
                    return FileDestination(config=config.config)

                raise ValueError(config.name)
        """,
        """
        class DestinationFactory:
            def get_destination(sync_metadata, config, backend, source_callback, monitor):
                if config.name == DestinationTypes.LOGGER:
                    return LoggerDestination(config=config.config)

                # local files
                elif config.name == DestinationTypes.FILE:
                    return FileDestination(config=config.config)

                elif config.name == DestinationTypes.ACME:
                    from bizon.connectors.destinations.acme.src.destination import (
                        AcmeDestination,
                    )

                    return AcmeDestination(
                        sync_metadata=sync_metadata,
                        config=config.config,
                        backend=backend,
                        source_callback=source_callback,
                        monitor=monitor,
                    )

                raise ValueError(config.name)
        """,
    ),
}


@pytest.mark.parametrize("case", VARIANTS, ids=list(VARIANTS))
def test_variant(case):
    (add, remove), before, after = VARIANTS[case]
    before, after = dedent(before), dedent(after)
    assert add(before) == after
    assert remove(after) == before


@pytest.mark.parametrize(
    "transform, source",
    [
        (ADD_ENUM[0], "class Other(str, Enum):\n    A = 'a'\n"),
        (ADD_UNION[0], "class BizonConfig(BaseModel):\n    destination: LoggerConfig\n"),
        (ADD_BRANCH[0], "class DestinationFactory:\n    def get_destination(config):\n        return None\n"),
        (ADD_IMPORT[0], "x = 1\n"),
    ],
    ids=["enum", "union", "factory", "import"],
)
def test_a_file_without_the_edit_point_is_refused(transform, source):
    with pytest.raises(codemods.EditPointMissing):
        transform(source)


# -- at the registrations level: idempotent, completing, reversible -----------------------------------


def three(texts):
    return {rel: texts[rel] for rel in REGISTRATION_FILES}


def test_registering_twice_changes_nothing_the_second_time(real):
    once_, status = plan_add(three(real), "acme", names("acme"), 120)
    twice, again = plan_add(once_, "acme", names("acme"), 120)
    assert set(status.values()) == {"added"} and set(again.values()) == {"already_present"}
    assert twice == once_


def test_a_half_done_registration_is_completed_not_duplicated(real):
    texts = three(real)
    by_hand = dict(texts, **{ENUM_FILE: codemods.add_enum_member(texts[ENUM_FILE], "ACME", "acme")})
    done, status = plan_add(by_hand, "acme", names("acme"), 120)
    assert status == {"enum": "already_present", "import": "added", "union": "added", "factory": "added"}
    assert done == plan_add(texts, "acme", names("acme"), 120)[0]
    assert done[ENUM_FILE].count('ACME = "acme"') == 1


def test_removal_leaves_a_connector_of_the_same_class_name_alone(real):
    """`big_query` derives BigQueryConfig, which is bizon's own: removing big_query must not touch it."""
    texts = three(real)
    assert plan_remove(texts, "big_query", names("big_query")) == (texts, [])


NAME = st.from_regex(r"[a-z][a-z0-9_]{0,24}", fullmatch=True).filter(lambda name: not spec.check_name(name))


@settings(max_examples=8, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=st.lists(NAME, min_size=1, max_size=3, unique_by=lambda n: names(n).pascal), shuffle=st.randoms())
def test_property_register_then_remove_in_any_order_gives_back_the_same_bytes(pristine, batch, shuffle):
    root = pristine("0.6.4")
    original = {rel: (root / rel).read_text() for rel in REGISTRATION_FILES}
    taken = registry.from_texts(original)
    for name in batch:  # bizon's own names are not new destinations (describe_target refuses them)
        n = names(name)
        assume(n.upper not in taken.enum and f"{n.pascal}Config" not in taken.imports)
    texts = original
    for name in batch:
        texts, status = plan_add(texts, name, names(name), 120)
        assert set(status.values()) == {"added"}
    assert plan_add(texts, batch[0], names(batch[0]), 120)[0] == texts  # twice == once
    order = list(batch)
    shuffle.shuffle(order)
    for name in order:
        texts, removed = plan_remove(texts, name, names(name))
        assert removed == ["enum", "import", "union", "factory"]
    assert texts == original
