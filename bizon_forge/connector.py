"""Where a connector lives in a bizon tree: its folder, files, modules and configs, from its name and kind.

This is the one place that knows bizon's layout; every other module asks a Connector. A destination is
`bizon/connectors/destinations/NAME/src/{config,destination}.py` plus the tests bizon keeps under
`tests/connectors/destinations/NAME/`; a source has the same shape under `sources/` (and needs no registration).
bizon-forge adds `config/NAME.example.yml` (the user's real sync) and `config/NAME.check.yml` (the scratch
target of the checks) in the connector's folder.
"""

from dataclasses import dataclass
from typing import Literal

Kind = Literal["destination", "source"]

# The line of bizon's own .gitignore that hides every connector config (the examples are let back in), and the
# glob of the check configs bizon-forge adds beside them, which must be tracked with their connector.
BIZON_CONFIG_IGNORE = "bizon/**/config/*.yml"
CHECK_CONFIGS = "bizon/**/config/*.check.yml"

# What a check config may reference: the scratch folder and the local receiver's URL that each validation makes
# and removes (validators/scratch.py), and the port `bizon-forge receiver` serves on when someone runs the config by
# hand (its comments print that command).
SCRATCH_VAR = "BIZON_FORGE_SCRATCH"
RECEIVER_VAR = "BIZON_FORGE_RECEIVER_URL"
RECEIVER_PORT = 8799


def package(kind: Kind = "destination") -> str:
    """The dotted package of every connector of a kind: `bizon.connectors.destinations`."""
    return f"bizon.connectors.{kind}s"


def folder(kind: Kind = "destination") -> str:
    """The tree-relative folder of every connector of a kind: `bizon/connectors/destinations`."""
    return f"bizon/connectors/{kind}s"


def tests_folder(kind: Kind = "destination") -> str:
    """Where bizon keeps the connectors' tests: `tests/connectors/destinations`."""
    return f"tests/connectors/{kind}s"


def is_connector_module(module: str, kind: Kind = "destination") -> bool:
    """Whether a dotted module belongs to some connector of `kind` (an import of one in bizon's own files)."""
    return module.startswith(f"{package(kind)}.")


@dataclass(frozen=True)
class Connector:
    name: str
    kind: Kind = "destination"

    # -- files, relative to the tree's root ----------------------------------------------------------
    @property
    def dir(self) -> str:
        return f"{folder(self.kind)}/{self.name}"

    @property
    def init_rel(self) -> str:
        return f"{self.dir}/src/__init__.py"

    @property
    def config_rel(self) -> str:
        return f"{self.dir}/src/config.py"

    @property
    def code_rel(self) -> str:
        """The module that holds the connector class: src/destination.py (src/source.py for a source)."""
        return f"{self.dir}/src/{self.kind}.py"

    @property
    def example_rel(self) -> str:
        return f"{self.dir}/config/{self.name}.example.yml"

    @property
    def check_rel(self) -> str:
        """The check config: where every live check writes (see validators/scratch.py)."""
        return f"{self.dir}/config/{self.name}.check.yml"

    @property
    def tests_dir(self) -> str:
        return f"{tests_folder(self.kind)}/{self.name}"

    @property
    def test_rel(self) -> str:
        return f"{self.tests_dir}/test_{self.name}_{self.kind}.py"

    # -- modules ---------------------------------------------------------------------------------------
    @property
    def module(self) -> str:
        return f"{package(self.kind)}.{self.name}"

    @property
    def src_module(self) -> str:
        return f"{self.module}.src"

    @property
    def config_module(self) -> str:
        return f"{self.src_module}.config"

    @property
    def code_module(self) -> str:
        return f"{self.src_module}.{self.kind}"

    def owns(self, module: str) -> bool:
        """Whether a dotted module is this connector's (itself or inside it), not a namesake's prefix."""
        return module == self.module or module.startswith(f"{self.module}.")
