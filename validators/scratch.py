"""The scratch target of one validation: where every live check writes, never where the example config points.

A check config (`config/NAME.check.yml`) is a complete bizon config whose destination names a scratch target.
It may refer to two places the validator makes for each run and removes afterwards:
`env://BIZON_FORGE_SCRATCH` (an empty folder) and `env://BIZON_FORGE_RECEIVER_URL` (a local HTTP receiver).
Each suite case writes under its own destination_id, `forge_<run>_<case>`, so nothing two runs write meets.
Once read back, each is dropped through the destination's drop_written() (the probes note every id they write and
what dropping it did); what stayed is kept in a ledger, and a later validation whose hook works drops it then.
"""

import hashlib
import io
import json
import os
import re
import secrets
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from bizon_forge.atomic import write_text
from bizon_forge.connector import RECEIVER_VAR, SCRATCH_VAR
from bizon_forge.validators import runtime
from bizon_forge.validators.fakes.receiver import Receiver, routes_from
from bizon_forge.validators.probes.contract_probe import DROP_BUDGET_S, DROPS_FILE
from bizon_forge.workspace import Workspace, read_regular

REFERENCE = re.compile(r"env://([A-Za-z_][A-Za-z0-9_]*)")
STANDIN = "0"  # a str, an int, a float and a bool (False) all accept it
LEDGER_CAP = 500  # destination_ids remembered per target: a destination without a hook must not grow it forever
SWEEP_TIMEOUT_S = DROP_BUDGET_S + 30  # the probe's own budget for the hooks, plus its start-up
WHY = {  # a probe's last note on a destination_id that was not dropped -> why it stayed
    "no_hook": "the destination has no drop_written()",
    "written": "the check ended before it could drop it",
}


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


@dataclass
class Cleanup:
    """What drop_written() did with the destination_ids the checks wrote to the scratch target."""

    written: int = 0  # destination_ids this validation wrote
    swept: int = 0  # destination_ids earlier validations left, dropped by this one
    stayed: dict[str, str] = field(default_factory=dict)  # destination_id -> why it is still there

    def describe(self, own_target: bool) -> str:
        if not self.stayed:
            earlier = f", and {self.swept} that earlier validations left" if self.swept else ""
            # What is judged is read_back() after the hook; staging it may leave behind is out of its sight.
            return (
                f"; drop_written() removed the {self.written} destination_id(s) they wrote{earlier} (each reads back "
                "empty after it; staging it may have left is not seen)"
            )
        shown = ", ".join(sorted(self.stayed)[:5]) + (", ..." if len(self.stayed) > 5 else "")
        reasons = sorted(set(self.stayed.values()))
        gone = " (what was in the folder or receiver made for this run went with it)" if own_target else ""
        return (
            f"; {len(self.stayed)} destination_id(s) stayed in the target{gone}: {shown}; "
            + "; ".join(reasons[:2])
            + ". A validation whose drop_written() works drops them."
        )


class Ledger:
    """The destination_ids validations of one destination left in a target, by target (the check config's
    destination and the values it was given): a later validation drops them when the hook works."""

    def __init__(self, ws: Workspace, name: str, target: str):
        self.path = ws.state_dir / "scratch" / f"{name}.json"
        self.target = target
        try:
            self.all: dict[str, dict[str, str]] = json.loads(self.path.read_text()) if self.path.is_file() else {}
        except (OSError, ValueError):
            self.all = {}  # a damaged ledger only forgets; the target is not touched

    def ids(self) -> dict[str, str]:
        return dict(self.all.get(self.target) or {})

    def save(self, left: dict[str, str]) -> None:
        kept = dict(list(left.items())[-LEDGER_CAP:])
        if kept == (self.all.get(self.target) or {}):
            return
        if kept:
            self.all[self.target] = kept
        else:
            self.all.pop(self.target, None)
        write_text(self.path, json.dumps(self.all, indent=1, sort_keys=True))


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
        self.name = name
        details = _destination_text(check_text)
        self.uses_folder = SCRATCH_VAR in details
        # Routed by the check config's own path templates (the http recipe's), as the user's API routes them.
        self.receiver = Receiver(honours_replace, routes=routes_from(check_text)) if RECEIVER_VAR in details else None
        self.drops = self.folder / DROPS_FILE  # the probes' notes (contract_probe.note), beside the units' folders
        # Which target a leftover is in: the check config's destination and the values its references got.
        self.target = hashlib.sha256(f"{details}\0{sorted(self.passed_env.items())}".encode()).hexdigest()[:16]

    def env(self, unit: str) -> dict[str, str]:
        """A folder per unit: checks that run at once must not share a SQLite file (it would be locked)."""
        folder = self.folder / unit
        folder.mkdir(exist_ok=True)
        env = {**self.passed_env, SCRATCH_VAR: str(folder)}
        if self.receiver:
            env[RECEIVER_VAR] = self.receiver.url
        return env

    def outcomes(self) -> dict[str, tuple[str, str | None]]:
        """destination_id -> (the probes' last note on it, its error): `dropped`, `no_hook`, `failed` or `written`."""
        found: dict[str, tuple[str, str | None]] = {}
        text = self.drops.read_text(errors="replace") if self.drops.is_file() else ""
        for line in text.splitlines():
            try:
                note = json.loads(line)
                found[str(note["destination_id"])] = (str(note["outcome"]), note.get("error"))
            except (ValueError, KeyError, TypeError):
                continue  # a line the destination's own code wrote there is no note of ours
        return found

    def clean_up(self, ws: Workspace, check_rel: str, logs: Path) -> Cleanup:
        """After every check: what this validation's probes dropped, what earlier validations left dropped too when
        the hook works here, and the ledger updated with what stayed. Never raises, never fails a check."""
        ledger = Ledger(ws, self.name, self.target)
        mine = self.outcomes()
        earlier = {i: why for i, why in ledger.ids().items() if i not in mine}
        if earlier and any(outcome == "dropped" for outcome, _ in mine.values()):
            self._sweep(ws, check_rel, list(earlier), logs)
        now = self.outcomes()
        stayed = {i: WHY.get(o) or f"drop_written() failed: {e}" for i, (o, e) in now.items() if o != "dropped"}
        left = {i: stayed.get(i, why) for i, why in earlier.items() if now.get(i, ("",))[0] != "dropped"}
        left.update(stayed)
        try:
            ledger.save(left)
        except Exception:  # a ledger that cannot be written (read-only state folder) only forgets
            pass
        swept = sum(1 for i in earlier if now.get(i, ("",))[0] == "dropped")
        return Cleanup(written=len(mine), swept=swept, stayed=left)

    def _sweep(self, ws: Workspace, check_rel: str, ids: list[str], logs: Path) -> None:
        """drop_written() for each destination_id earlier validations left, in the workspace's interpreter."""
        cmd = [ws.python(), str(runtime.SUITE_SCRIPT), str(ws.root), self.name, str(ws.root / check_rel)]
        cmd += [ws.bizon_version or "unknown", self.run_id, "drop", *ids]
        env = self.env("sweep")
        try:
            runtime.run_logged(ws, cmd, Path(env[SCRATCH_VAR]), logs / "drop-earlier.log", SWEEP_TIMEOUT_S, env=env)
        except OSError:
            pass  # no notes: the ids stay in the ledger for the next validation

    def describe(self, check_rel: str, cleanup: Cleanup | None = None) -> str:
        """Where the live checks wrote, and what of it stayed, for the answer."""
        made = [f"its {SCRATCH_VAR} folder"] if self.uses_folder else []
        made += ["the local receiver"] if self.receiver else []
        verb = "were" if len(made) > 1 else "was"
        dropped = cleanup.describe(bool(made)) if cleanup and (cleanup.written or cleanup.stayed) else ""
        if made:
            after = f"; {' and '.join(made)} {verb} made for this run and removed"
        elif dropped:
            after = "; that target is the check config's own, not one made per run"
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
        return f"{check_rel}'s target, as destination_ids forge_{self.run_id}_*{after}{dropped}{passed}{standins}"

    def close(self) -> None:
        if self.receiver:
            self.receiver.close()
        shutil.rmtree(self.folder, ignore_errors=True)
