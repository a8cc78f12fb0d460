"""Hostile input through ONE real server process over stdio.

Every refusal answers a specific finding (not a crash), writes nothing anywhere (the case's tree is
byte-identical, the arena's other folders untouched), and every hostile string an agent may legally send
comes out of the generated Python and YAML as exactly that string, as data.
"""

import ast
import json
import os
import stat
import subprocess
import sys
from dataclasses import dataclass, field

import pytest
import yaml

from bizon_forge import describe, render, workspace
from bizon_forge.spec import destination as spec
from tests.conftest import snapshot, stdio_client
from tests.hostile import (
    BAD_FIELDS,
    BAD_NAMES,
    BAD_SPEC_ARGS,
    STRINGS,
    TAKEN_NAMES,
    build_arena,
    restore_modes,
)

pytestmark = pytest.mark.anyio
CACHE = workspace.cache_dir() / "pycache"


@pytest.fixture(scope="module")
def anyio_backend():
    return "asyncio"


def describe_and_render(tree, name, render_it=True, **spec_args):
    ws = workspace.resolve(str(tree), workspace.Settings.from_paths([str(tree)]))
    answer = describe.describe_target(ws, spec.DestinationSpec(name=name, **spec_args))
    assert answer.ok, answer.findings
    if render_it:
        assert render.render_destination(ws, name).ok


@pytest.fixture(scope="module")
def arena(pristine, tmp_path_factory):
    a = build_arena(
        tmp_path_factory.mktemp("arena"),
        pristine,
        lambda tree, name, render=True: describe_and_render(tree, name, render),
    )
    a.initial = {key: snapshot_with_dirs(tree) for key, tree in a.trees.items()}
    a.fingerprint = arena_stat(a)
    yield a
    restore_modes(a)


@pytest.fixture(scope="module")
async def server(arena):
    async with stdio_client(arena.roots) as client:
        yield client


def snapshot_with_dirs(root) -> dict[str, bytes]:
    """Files by content, plus folders and symlinks, so a created folder or a replaced link shows up too."""
    found = dict(snapshot(root))
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, root)
            if ".git" in rel.split(os.sep) or "__pycache__" in rel:
                continue
            if os.path.islink(p):
                found[rel] = b"-> " + os.readlink(p).encode()
            elif stat.S_ISFIFO(os.lstat(p).st_mode):
                found[rel] = b"<fifo>"
            elif os.path.isdir(p):
                found[rel + "/"] = b"<dir>"
    return found


def arena_stat(a) -> dict[str, tuple]:
    """Fingerprint of every entry in the arena but the strings tree: inode, size, mtime and mode.

    Any write (new inode by rename, or new mtime in place), new entry or chmod shows; the byte-for-byte
    comparison of every tree runs once at the end.
    """
    out = {}
    stack = [a.base]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                if entry.path == str(a.strings):
                    continue
                st = entry.stat(follow_symlinks=False)
                out[entry.path] = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_mode)
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
    return out


# -- the rejection corpus ------------------------------------------------------------------------------


@dataclass
class Case:
    id: str
    tool: str
    args: dict
    expect: str  # the finding id that must come back failed
    tree: str | None = "main"  # the arena tree the case aims at (every tree is compared at the end)
    extra: dict = field(default_factory=dict)


def _name_cases() -> list[Case]:
    cases = []
    for key, (name, expect) in BAD_NAMES.items():
        cases.append(Case(f"name-{key}-describe", "describe_target", {"name": name}, expect))
    # Every tool that takes a name checks it before it touches the disk.
    for key in (
        "empty",
        "traversal",
        "traversal_deep",
        "slash",
        "absolute",
        "nul",
        "long_10000",
        "dunder_init",
        "kw_class",
        "builtin_list",
        "lookalike_cyrillic_i",
        "upper",
        "leading_digit",
        "backslash",
    ):
        name, expect = BAD_NAMES[key]
        for tool in ("render_destination", "apply_registrations", "remove_destination"):
            cases.append(Case(f"name-{key}-{tool}", tool, {"name": name}, expect))
    for key, (name, expect) in TAKEN_NAMES.items():
        for tree in ("main", "old"):
            cases.append(
                Case(
                    f"taken-{key}-{tree}",
                    "describe_target",
                    {"name": name, "workspace": f"@{tree}"},
                    expect,
                    tree,
                )
            )
    for name in ("file", "logger", "bigquery"):
        cases.append(
            Case(
                f"foreign-{name}-remove",
                "remove_destination",
                {"name": name, "delete_files": True},
                "remove.not_ours",
            )
        )
        cases.append(Case(f"foreign-{name}-render", "render_destination", {"name": name}, "spec.not_found"))
        cases.append(Case(f"foreign-{name}-apply", "apply_registrations", {"name": name}, "spec.not_found"))
    return cases


def _field_cases() -> list[Case]:
    cases = [
        Case(f"field-{key}", "describe_target", {"name": "fielded", "fields": fields}, expect)
        for key, (fields, expect) in BAD_FIELDS.items()
    ]
    cases += [
        Case(f"spec-{key}", "describe_target", {"name": "argued", **args}, expect)
        for key, (args, expect) in BAD_SPEC_ARGS.items()
    ]
    return cases


ALL_TOOLS = {
    "inspect_workspace": {},
    "describe_target": {"name": "acme"},
    "render_destination": {"name": "acme"},
    "apply_registrations": {"name": "acme"},
    "remove_destination": {"name": "acme", "delete_files": True},
}


def _workspace_cases() -> list[Case]:
    kinds = {
        "missing": ("@nope", "workspace.missing", None),
        "a_file": ("@afile.txt", "workspace.not_a_directory", None),
        "not_bizon": ("@notbizon", "workspace.not_bizon", None),
        "partial_tree": ("@partial", "workspace.not_bizon", None),
        "default_not_bizon": (None, "workspace.not_bizon", None),
        "outside_abs": ("@@outside/tree", "workspace.outside_roots", "outside_tree"),
        "outside_relative": ("../outside/tree", "workspace.outside_roots", "outside_tree"),
        "outside_dotdot_in_root": ("@main/../../outside/tree", "workspace.outside_roots", "outside_tree"),
        "outside_etc": ("/etc", "workspace.outside_roots", None),
        "outside_slash": ("/", "workspace.outside_roots", None),
        "outside_home": ("~", "workspace.outside_roots", None),
        "symlink_out_of_root": ("@escape", "workspace.outside_roots", "outside_tree"),
        "nul_in_path": ("@main\x00/etc", "workspace.invalid", "main"),
        "linked_connectors_dir": ("@linked_base", "workspace.symlink", "linked_base"),
        "linked_state_dir": ("@linked_state", "workspace.symlink", "linked_state"),
        "linked_specs_dir": ("@linked_specs", "workspace.symlink", "linked_specs"),
        "linked_enum_file": ("@linked_enum", "workspace.symlink", "linked_enum"),
        "linked_registration_dir": ("@linked_factory_dir", "workspace.symlink", "linked_factory_dir"),
        "linked_tests_dir": ("@linked_tests", "workspace.symlink", "linked_tests"),
        "fifo_registration_file": ("@fifo_models", "workspace.not_bizon", "fifo_models"),
        "folder_as_registration_file": ("@dir_enum", "workspace.not_bizon", "dir_enum"),
    }
    cases = []
    # Every tool for the ways out of the roots or the tree; a read-only and a writing tool for the rest.
    everywhere = {
        "outside_abs",
        "outside_relative",
        "symlink_out_of_root",
        "linked_connectors_dir",
        "linked_state_dir",
        "linked_registration_dir",
        "missing",
    }
    for kind, (where, expect, tree) in kinds.items():
        for tool, args in ALL_TOOLS.items():
            if kind not in everywhere and tool not in ("inspect_workspace", "describe_target"):
                continue
            call = dict(args) if where is None else {**args, "workspace": where}
            cases.append(Case(f"workspace-{kind}-{tool}", tool, call, expect, tree))
    # One broken corner of an otherwise fine tree.
    ws = {
        "linked": "@linked",
        "readonly": "@readonly",
        "readonly_dir": "@readonly_dir",
        "readonly_folder": "@readonly_folder",
        "readonly_rendered": "@readonly_rendered",
        "tampered": "@tampered",
    }
    cases.append(
        Case(
            "connector_file_is_a_fifo-render",
            "render_destination",
            {"name": "piped", "overwrite": True, "workspace": "@fifo_connector"},
            "render.unsafe_path",
            "fifo_connector",
        )
    )
    cases += [
        Case(
            "connector_symlink_out-render",
            "render_destination",
            {"name": "evil", "workspace": ws["linked"]},
            "render.unsafe_path",
            "linked",
        ),
        Case(
            "connector_symlink_out-render_overwrite",
            "render_destination",
            {"name": "evil", "overwrite": True, "workspace": ws["linked"]},
            "render.unsafe_path",
            "linked",
        ),
        Case(
            "read_only_registration-apply",
            "apply_registrations",
            {"name": "guarded", "workspace": ws["readonly"]},
            "workspace.read_only",
            "readonly",
        ),
        Case(
            "read_only_registration_folder-apply",
            "apply_registrations",
            {"name": "guarded", "workspace": ws["readonly_folder"]},
            "workspace.read_only",
            "readonly_folder",
        ),
        Case(
            "read_only_connectors_dir-render",
            "render_destination",
            {"name": "guarded", "workspace": ws["readonly_dir"]},
            "workspace.read_only",
            "readonly_dir",
        ),
        Case(
            "read_only_edited_file-render_overwrite",
            "render_destination",
            {"name": "guarded", "overwrite": True, "workspace": ws["readonly_rendered"]},
            "workspace.read_only",
            "readonly_rendered",
        ),
        Case(
            "edited_file-render",
            "render_destination",
            {"name": "guarded", "workspace": ws["readonly_rendered"]},
            "render.would_overwrite",
            "readonly_rendered",
        ),
    ]
    for spec_name in ("broken", "renamed", "weird", "binary", "listed", "piped", "folder"):
        for tool in ("render_destination", "apply_registrations"):
            cases.append(
                Case(
                    f"tampered_spec_{spec_name}-{tool}",
                    tool,
                    {"name": spec_name, "workspace": ws["tampered"]},
                    "spec.unreadable",
                    "tampered",
                )
            )
    cases.append(
        Case(
            "torn_render_record-render",
            "render_destination",
            {"name": "decoy", "workspace": ws["tampered"]},
            "render.would_overwrite",
            "tampered",
        )
    )
    return cases


# A level the schema does not list is taken as a string and answered as a finding naming the allowed ones.
LEVEL_CASES = [
    Case(f"level_unknown-{tool}", tool, {"name": "acme", "level": "paranoid"}, "validate.bad_level")
    for tool in ("validate_destination", "validate_source")
]
REJECTIONS = _name_cases() + _field_cases() + _workspace_cases() + LEVEL_CASES


def _default_workspace(case: Case) -> dict:
    args = dict(case.args)
    if "workspace" not in args and not case.id.startswith("workspace-default"):
        args["workspace"] = "@main"
    return args


@pytest.mark.parametrize("case", REJECTIONS, ids=lambda c: c.id)
async def test_rejected_with_finding_and_nothing_written(case, server, arena):
    args = {k: (arena.expand(v) if k == "workspace" else v) for k, v in _default_workspace(case).items()}

    r = await server.call_tool(case.tool, args)

    # a tool error (isError) answered with its findings; a crash would carry no structured answer
    assert r.is_error and r.structured_content, f"a crash, not a finding: {r.content[0].text[:500]}"
    answer = r.structured_content
    failed = [f["id"] for f in answer["findings"] if f["status"] == "fail"]
    assert answer["ok"] is False and case.expect in failed, answer
    # No call may change the arena's trees: nothing written is "every entry as when the arena was built".
    assert arena_stat(arena) == arena.fingerprint, "something in the arena changed"


# -- malformed calls: the SDK rejects them, the server lives on ----------------------------------------

# describe_target's wrong values are findings now (spec.invalid, like describe_source's): SPEC_VALUES below.
MALFORMED = {
    "workspace_not_a_string": ("inspect_workspace", {"workspace": ["/etc"]}),
    "dry_run_not_bool": ("render_destination", {"name": "acme", "dry_run": "maybe"}),
}


SPEC_VALUES = {
    "name_not_a_string": {"name": 123},
    "name_missing": {},
    "fields_not_a_list": {"name": "acme", "fields": "host"},
    "field_not_an_object": {"name": "acme", "fields": ["host"]},
    "recipe_unknown": {"name": "acme", "recipe": "rm -rf"},
    "write_method_unknown": {"name": "acme", "write_method": "teleport"},
    "batching_not_numbers": {"name": "acme", "batching": {"buffer_size_mb": "lots"}},
}


@pytest.mark.parametrize("key", SPEC_VALUES)
async def test_a_wrong_spec_value_is_a_finding_and_writes_nothing(key, server, arena):
    r = await server.call_tool("describe_target", {**SPEC_VALUES[key], "workspace": arena.expand("@main")})
    assert r.is_error and r.structured_content, r.content[0].text[:500]  # a bad argument: its findings
    assert r.structured_content["ok"] is False
    assert {f["id"] for f in r.structured_content["findings"]} == {"spec.invalid"}, r.structured_content
    assert arena_stat(arena) == arena.fingerprint


@pytest.mark.parametrize("key", MALFORMED)
async def test_malformed_call_is_an_error_and_writes_nothing(key, server, arena):
    tool, args = MALFORMED[key]
    r = await server.call_tool(
        tool,
        {
            **args,
            **({"workspace": arena.expand("@main")} if "workspace" not in args and tool != "inspect_workspace" else {}),
        },
    )
    assert r.is_error
    assert arena_stat(arena) == arena.fingerprint


async def test_unknown_tool_is_an_error(server):
    r = await server.call_tool("rm_rf", {"path": "/"})
    assert r.is_error


# -- hostile strings come out as data ------------------------------------------------------------------

PLAIN = "plain text"
PLACES = (
    "field_description",
    "str_default",
    "list_default",
    "dict_default",
    "alias",
    "imported",
    "spec_store",
    "example_yaml",
    "config_ast_shape",
    "destination_ast_shape",
)
KEYS = list(STRINGS)


def _string_spec(name: str, s: str) -> dict:
    """One destination carrying `s` in every string an agent controls."""
    return {
        "name": name,
        "fields": [
            {"name": "text", "type": "str", "default": s, "description": s},
            {"name": "items", "type": "list[str]", "default": [s, "x"], "description": s},
            {"name": "mapping", "type": "dict", "default": {s: s, "k": [s]}, "description": s},
            {"name": "token", "type": "str", "secret": True, "required": True, "description": s},
        ],
        "alias": s,
        "description": s,
        "error_handling": {"transient": [s, "429"]},
    }


def _all_spec() -> dict:
    """One destination carrying every hostile string, registered so its config can be imported."""
    fields = []
    for i, s in enumerate(STRINGS.values()):
        fields += [
            {"name": f"t{i}", "type": "str", "default": s, "description": s},
            {"name": f"l{i}", "type": "list[str]", "default": [s]},
            {"name": f"m{i}", "type": "dict", "default": {s: [s]}},
        ]
    return {"name": "str_all", "fields": fields, "alias": STRINGS["code_break"]}


_IMPORT_ALL = """
import json, sys
from bizon.connectors.destinations.str_all.src.config import StrAllConfig, StrAllDestinationConfig
import bizon.common.models  # the tree as a whole still imports, with str_all registered
f = StrAllDestinationConfig.model_fields
out = [
    {"text": f[f"t{i}"].default, "description": f[f"t{i}"].description, "list": f[f"l{i}"].default,
     "dict": f[f"m{i}"].default}
    for i in range(int(sys.argv[1]))
]
json.dump({"fields": out, "alias": StrAllConfig.model_fields["alias"].default}, sys.stdout)
"""


def _literals(source: str, pascal: str) -> dict:
    """Each config field's default and description, and the alias, as Python's own parser reads them."""
    classes = {n.name: n for n in ast.parse(source).body if isinstance(n, ast.ClassDef)}
    out = {}
    for stmt in classes[f"{pascal}DestinationConfig"].body:
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.value, ast.Call):
            kw = {k.arg: k.value for k in stmt.value.keywords}
            default = stmt.value.args[0] if stmt.value.args else kw.get("default")
            out[stmt.target.id] = (ast.literal_eval(default), ast.literal_eval(kw["description"]))
    for stmt in classes[f"{pascal}Config"].body:
        if isinstance(stmt, ast.AnnAssign) and stmt.target.id == "alias":
            out["alias"] = ast.literal_eval(stmt.value)
    return out


def _shape(source: str, names: tuple[str, ...]) -> str:
    """The AST with every string constant and the destination's own names blanked: code structure only."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            node.value = "<s>"
    text = ast.dump(tree)
    for n in names:
        text = text.replace(n, "<name>")
    return text


@pytest.fixture(scope="module")
async def rendered_strings(server, arena):
    """A destination per hostile string (and a plain one) rendered; str_all registered and imported."""
    where = {"workspace": str(arena.strings)}
    answers = {}
    for key, s in {"plain": PLAIN, **STRINGS}.items():
        d = await server.call_tool("describe_target", {**_string_spec(f"str_{key}", s), **where})
        r = await server.call_tool("render_destination", {"name": f"str_{key}", **where})
        answers[key] = (d, r)
    for tool, args in (
        ("describe_target", _all_spec()),
        ("render_destination", {"name": "str_all"}),
        ("apply_registrations", {"name": "str_all"}),
    ):
        r = await server.call_tool(tool, {**args, **where})
        assert not r.is_error and r.structured_content["ok"], r.content[0].text[:1500]
    env = {"PYTHONPATH": str(arena.strings), "PATH": os.environ["PATH"], "PYTHONPYCACHEPREFIX": str(CACHE)}
    done = subprocess.run(
        [sys.executable, "-c", _IMPORT_ALL, str(len(STRINGS))], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return answers, json.loads(done.stdout)


STRING_CASES = [(k, place) for k in KEYS for place in PLACES]


@pytest.mark.parametrize(("key", "place"), STRING_CASES, ids=[f"{k}-{p}" for k, p in STRING_CASES])
async def test_hostile_string_is_data(key, place, rendered_strings, arena):
    answers, imported = rendered_strings
    s, name = STRINGS[key], f"str_{key}"
    d, r = answers[key]
    assert not d.is_error and d.structured_content["ok"], d.content[0].text[:800]
    assert not r.is_error and r.structured_content["ok"], r.content[0].text[:800]
    folder = arena.strings / "bizon/connectors/destinations" / name
    names = spec.DestinationSpec(name=name).names
    config_py = (folder / "src/config.py").read_text()
    if place in ("field_description", "str_default", "list_default", "dict_default", "alias"):
        lit = _literals(config_py, names.pascal)
        got = {
            "field_description": [lit[f][1] for f in ("text", "items", "mapping", "token")],
            "str_default": lit["text"][0],
            "list_default": lit["items"][0],
            "dict_default": lit["mapping"][0],
            "alias": lit.get("alias"),
        }[place]
        want = {
            "field_description": [s, s, s, s],
            "str_default": s,
            "list_default": [s, "x"],
            "dict_default": {s: s, "k": [s]},
            "alias": s,
        }[place]
        assert got == want
    elif place == "imported":
        got = imported["fields"][KEYS.index(key)]
        assert got == {"text": s, "description": s, "list": [s], "dict": {s: [s]}}
        if key == "code_break":
            assert imported["alias"] == s
    elif place == "spec_store":
        stored = (arena.strings / ".bizon-forge/specs" / f"{name}.json").read_text()
        sent = spec.DestinationSpec(**_string_spec(name, s))
        # describe_target stores the recipe's write method when the agent named none
        filled = sent.model_copy(update={"write_method": sent.write_method or "batch_insert"})
        assert spec.DestinationSpec.model_validate_json(stored) == filled
    elif place == "example_yaml":
        loaded = yaml.safe_load((folder / "config" / f"{name}.example.yml").read_text())
        config = loaded["destination"]["config"]
        assert (config["text"], config["items"], config["mapping"]) == (s, [s, "x"], {s: s, "k": [s]})
    else:
        rel = "src/config.py" if place == "config_ast_shape" else "src/destination.py"
        plain = spec.DestinationSpec(name="str_plain").names
        baseline = arena.strings / "bizon/connectors/destinations/str_plain" / rel
        assert _shape((folder / rel).read_text(), (names.pascal, names.upper, name)) == _shape(
            baseline.read_text(), (plain.pascal, plain.upper, "str_plain")
        )


# -- afterwards ----------------------------------------------------------------------------------------


async def test_after_the_corpus_the_server_still_serves_and_every_tree_is_intact(server, arena):
    r = await server.call_tool("inspect_workspace", {"workspace": str(arena.trees["main"])})
    assert r.structured_content["ok"], r.structured_content
    for key, tree in arena.trees.items():
        assert snapshot_with_dirs(tree) == arena.initial[key], key
    assert arena_stat(arena) == arena.fingerprint
    assert (arena.outside / "evil_target" / "keep.txt").read_text() == "must survive\n"
    # Byte-identical to a pristine tree implies importable; show it anyway for both layouts, once each.
    for key in ("main", "old"):
        env = {
            "PYTHONPATH": str(arena.trees[key]),
            "PATH": os.environ["PATH"],
            "PYTHONPYCACHEPREFIX": str(CACHE),
        }
        done = subprocess.run(
            [sys.executable, "-c", "import bizon.common.models"], env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr[-2000:]


def test_the_readme_states_these_counts():
    from tests.conftest import REPO

    text = (REPO / "README.md").read_text()
    safety = text[text.index("<!-- safety:start -->") : text.index("<!-- safety:end -->")]
    for claim in (
        f"{len(REJECTIONS)} rejections",
        f"{len(STRINGS)} hostile strings",
        f"x {len(PLACES)} places = {len(STRING_CASES)} cases",
        f"{len(MALFORMED) + 1} schema-invalid or unknown calls",
    ):
        assert claim in safety, claim
