"""Property: whatever an agent sends to describe_target and render_destination, the answer is a result or
a refusal with findings (never another exception), and nothing is written outside the destination's own
places: its connector folder, its test folder and the .bizon-forge store. Never the files only
apply_registrations edits (the three registration files, pyproject.toml, bizon's import guard test).
"""

import os
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bizon_forge import dependencies, describe, render, workspace
from bizon_forge.findings import Refused
from bizon_forge.spec import common
from bizon_forge.spec import destination as spec
from bizon_forge.workspace import REGISTRATION_FILES, STATE_DIR
from tests.hostile import BAD_NAMES, STRINGS, TAKEN_NAMES, copy_tree

IDENT = st.from_regex(r"[a-z][a-z0-9_]{0,12}", fullmatch=True)
TEXT = st.one_of(st.text(max_size=40), st.sampled_from(list(STRINGS.values())))
HOSTILE_NAMES = st.one_of(
    st.sampled_from([n for n, _ in BAD_NAMES.values()] + [n for n, _ in TAKEN_NAMES.values()]),
    st.text(alphabet=string.printable + "ıіо\u200b/\\.\x00", max_size=20),
)
DEFAULTS = st.one_of(
    st.none(),
    TEXT,
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.lists(TEXT, max_size=3),
    st.dictionaries(TEXT, st.one_of(TEXT, st.integers(), st.lists(TEXT, max_size=2)), max_size=3),
)
FIELD = st.fixed_dictionaries(
    {
        "name": st.one_of(IDENT, st.sampled_from(sorted(spec.BASE_FIELDS) + ["class", "model_dump", ""]), TEXT),
        "type": st.one_of(st.sampled_from(common.FIELD_TYPES), TEXT),
        "required": st.booleans(),
        "default": DEFAULTS,
        "description": TEXT,
        "secret": st.booleans(),
    }
)


def _value_of(type_):
    return {
        "str": TEXT,
        "int": st.integers(-(10**18), 10**18),
        "float": st.floats(allow_nan=False, allow_infinity=False),
        "bool": st.booleans(),
        "list[str]": st.lists(TEXT, max_size=3),
        "dict": st.dictionaries(TEXT, st.one_of(TEXT, st.integers(), st.lists(TEXT, max_size=2)), max_size=3),
    }[type_]


# A field that passes the checks but still carries hostile text in its default and description.
GOOD_FIELD = st.sampled_from(common.FIELD_TYPES).flatmap(
    lambda t: st.fixed_dictionaries(
        {
            "name": IDENT.filter(lambda n: n not in spec.BASE_FIELDS and not n.startswith("model_")),
            "type": st.just(t),
            "default": st.one_of(st.none(), _value_of(t)),
            "description": TEXT,
        }
    )
)


def _specs(names, fields, backoff, retries, buffer, threads, alias):
    return st.fixed_dictionaries(
        {
            "name": names,
            "recipe": st.sampled_from(spec.RECIPES),
            "write_method": st.sampled_from(spec.WRITE_METHODS),
            "fields": st.lists(fields, max_size=4, unique_by=lambda f: f["name"]),
            "alias": alias,
            "description": TEXT,
            "error_handling": st.fixed_dictionaries(
                {
                    "transient": st.lists(
                        st.one_of(TEXT, st.sampled_from(["429", "5xx", "ConnectionError"])), max_size=4
                    ),
                    "max_retries": retries,
                    "backoff_seconds": backoff,
                }
            ),
            "batching": st.fixed_dictionaries(
                {
                    "buffer_size_mb": buffer,
                    "flush_timeout_s": st.integers(0, 10_000),
                    "max_concurrent_threads": threads,
                }
            ),
        }
    )


# A third of the examples are specs that pass describe_target (with hostile text inside) and go on to
# render; the rest may be hostile anywhere.
GOOD_SPECS = _specs(
    st.one_of(IDENT, st.sampled_from(["acme", "shared_name"])),
    GOOD_FIELD,
    st.floats(0.001, 600),
    st.integers(0, 20),
    st.integers(0, 10_000),
    st.integers(1, 256),
    st.one_of(st.none(), TEXT.filter(lambda a: a.strip() and len(a) <= 100)),
)
HOSTILE_SPECS = _specs(
    st.one_of(IDENT, HOSTILE_NAMES),
    st.one_of(GOOD_FIELD, FIELD),
    st.floats(),
    st.integers(-3, 30),
    st.integers(-5, 20_000),
    st.integers(-1, 300),
    st.one_of(st.none(), TEXT),
)
SPECS = st.one_of(GOOD_SPECS, HOSTILE_SPECS, HOSTILE_SPECS)


def fingerprint(base) -> dict[str, tuple]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(base):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            s = os.lstat(p)
            out[os.path.relpath(p, base)] = (s.st_ino, s.st_size, s.st_mtime_ns, s.st_mode)
    return out


# apply_registrations edits these; describe_target and render_destination never touch them.
ONLY_REGISTRATIONS_EDIT = (*REGISTRATION_FILES, dependencies.PYPROJECT, dependencies.IMPORT_GUARD)


def allowed(rel: str, name: str) -> bool:
    """May a call about destination `name` write `rel` (relative to the arena base)?"""
    if rel == "roots/ws":  # the tree folder itself changes when .bizon-forge first appears in it
        return True
    if not rel.startswith("roots/ws/"):
        return False
    rel = rel[len("roots/ws/") :]
    if rel in ONLY_REGISTRATIONS_EDIT:
        return False
    places = (f"bizon/connectors/destinations/{name}", f"tests/connectors/destinations/{name}", STATE_DIR)
    # The parents of an allowed place change too when a new entry appears in them.
    parents = {
        "bizon",
        "bizon/connectors",
        "bizon/connectors/destinations",
        "tests",
        "tests/connectors",
        "tests/connectors/destinations",
    }
    return rel in parents or any(rel == p or rel.startswith(p + "/") for p in places)


@pytest.mark.parametrize("version", ["0.6.4"])
def test_describe_and_render_never_crash_nor_write_elsewhere(version, pristine, tmp_path):
    base = tmp_path / "arena"
    tree = copy_tree(pristine(version), base / "roots" / "ws")
    (base / "outside").mkdir()
    (base / "outside" / "keep.txt").write_text("keep\n")
    ws = workspace.resolve(str(tree), workspace.Settings.from_paths([str(base / "roots")]))
    outcomes = {"schema": 0, "refused": 0, "described": 0, "rendered": 0}

    @settings(
        max_examples=100,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(data=SPECS)
    def check(data):
        try:
            s = spec.DestinationSpec.model_validate(data)
        except ValueError:  # the schema layer: over MCP this is a validation error before any tool runs
            outcomes["schema"] += 1
            return
        before = fingerprint(base)
        try:
            answer = describe.describe_target(ws, s)
            if answer.ok:
                outcomes["described"] += 1
                rendered = render.render_destination(ws, s.name)
                outcomes["rendered"] += rendered.ok
        except Refused as refused:
            assert refused.findings and all(f.status == "fail" for f in refused.findings)
            outcomes["refused"] += 1
        after = fingerprint(base)
        changed = {rel for rel in set(before) | set(after) if before.get(rel) != after.get(rel)}
        stray = sorted(rel for rel in changed if not allowed(rel, s.name))
        assert not stray, f"{s.name!r} wrote outside its places: {stray[:5]}"

    check()
    assert (base / "outside" / "keep.txt").read_text() == "keep\n"
    # The strategies reach both sides: refusals and real renders.
    assert outcomes["rendered"] > 0 and outcomes["described"] > 0, outcomes
