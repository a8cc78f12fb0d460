"""The scratch target of one validation: where every live check writes, never where the example config points.

A check config (`config/NAME.check.yml`) is a complete bizon config whose destination names a scratch target.
It may refer to two places the validator makes for each run and removes afterwards:
`env://BIZON_FORGE_SCRATCH` (an empty folder) and `env://BIZON_FORGE_RECEIVER_URL` (a local HTTP receiver).
Each suite case writes under its own destination_id, `forge_<run>_<case>`, so nothing two runs write meets.
"""

import io
import os
import re
import secrets
import shutil
import tempfile
from pathlib import Path

from bizon_forge.connector import RECEIVER_VAR, SCRATCH_VAR
from bizon_forge.validators.fakes.receiver import Receiver, routes_from
from bizon_forge.workspace import read_regular

REFERENCE = re.compile(r"env://([A-Za-z_][A-Za-z0-9_]*)")
STANDIN = "0"  # a str, an int, a float and a bool (False) all accept it


def references(text: str | None) -> list[str]:
    """The variables a config references as env://NAME (whole value or inline ${env://NAME}), ours excluded."""
    return sorted({n for n in REFERENCE.findall(text or "") if not n.startswith("BIZON_FORGE_")})


def lookup(root: Path, names: list[str]) -> dict[str, tuple[str, str]]:
    """NAME -> (value, where it was found) for each name set in the server's environment or the workspace's
    .env. The environment wins, as in `bizon run` (its load_dotenv does not override), whose find_dotenv walks
    up from bizon's own folder to the tree's root. Nothing else of the server's environment reaches the checks;
    the smoke checks' `bizon run` reads the whole .env itself, as every bizon run does."""
    found = {n: (os.environ[n], "environment") for n in names if n in os.environ}
    dotenv = root / ".env"
    if len(found) < len(names) and dotenv.is_file():
        from dotenv import dotenv_values

        values = dotenv_values(stream=io.StringIO(read_regular(dotenv).decode(errors="replace")))
        found.update({n: (v, ".env") for n in names if n not in found and (v := values.get(n)) is not None})
    return found


def _destination_text(check_text: str | None) -> str:
    """The destination part of a check config, as text (its comments may name our variables too)."""
    import yaml

    try:
        config = yaml.safe_load(check_text or "") or {}
        return str(config.get("destination") or "") if isinstance(config, dict) else ""
    except yaml.YAMLError:
        return ""  # live.check_config reports it


class Scratch:
    def __init__(
        self,
        root: Path,
        name: str,
        check_text: str | None,
        example_text: str | None = None,
        honours_replace: bool = True,
    ):
        self.run_id = secrets.token_hex(3)
        found = lookup(root, references(check_text))
        self.passed = {n: where for n, (_, where) in found.items()}
        self.passed_env = {n: value for n, (value, _) in found.items()}
        # The example is the user's real sync: validated, never run. A variable only it references gets a stand-in
        # that every field type takes, set or not: the code under test never sees a secret of the real target. One
        # the check config references too and that is unset fails live.check_references, and nothing then runs
        # the check config; the stand-in only lets the example be validated.
        self.standins = sorted(set(references(example_text)) - set(found))
        self.passed_env.update(dict.fromkeys(self.standins, STANDIN))
        self.folder = Path(tempfile.mkdtemp(prefix=f"bizon-forge-{name}-target-"))
        details = _destination_text(check_text)
        self.uses_folder = SCRATCH_VAR in details
        # Routed by the check config's own path templates (the http recipe's), as the user's API routes them.
        self.receiver = Receiver(honours_replace, routes=routes_from(check_text)) if RECEIVER_VAR in details else None

    def env(self, unit: str) -> dict[str, str]:
        """A folder per unit: checks that run at once must not share a SQLite file (it would be locked)."""
        folder = self.folder / unit
        folder.mkdir(exist_ok=True)
        env = {**self.passed_env, SCRATCH_VAR: str(folder)}
        if self.receiver:
            env[RECEIVER_VAR] = self.receiver.url
        return env

    def describe(self, check_rel: str) -> str:
        """Where the live checks wrote, for the answer."""
        made = [f"its {SCRATCH_VAR} folder"] if self.uses_folder else []
        made += ["the local receiver"] if self.receiver else []
        verb = "were" if len(made) > 1 else "was"
        if made:
            after = f"; {' and '.join(made)} {verb} made for this run and removed"
        else:
            after = "; what they wrote there stays (that target is the check config's own, not one made per run)"
        standins = (
            f"; the example config was validated with stand-ins for {', '.join(self.standins)} (never their "
            "values: it is not run here; its sync reads them from the environment or the workspace's .env)"
            if self.standins
            else ""
        )
        passed = (
            "; the checks got "
            + ", ".join(f"{n} (from the {w})" for n, w in sorted(self.passed.items()))
            + " and no other variable of the server's environment"
            if self.passed
            else ""
        )
        return f"{check_rel}'s target, as destination_ids forge_{self.run_id}_*{after}{passed}{standins}"

    def close(self) -> None:
        if self.receiver:
            self.receiver.close()
        shutil.rmtree(self.folder, ignore_errors=True)
