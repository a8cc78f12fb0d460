"""Hostile inputs shared by the safety tests, and the arena of workspaces they are thrown at.

The arena is one root the server may touch, holding bizon trees that are each broken in one way, and an
`outside/` folder next to it that no call may ever change.
"""

import json
import os
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path

# Strings an agent may put in a description, a default or an alias. Each must reach the generated
# Python and YAML as data: byte for byte the same value, never code, never a template.
STRINGS = {
    "triple_double": 'a """ b',
    "only_triple_double": '"""',
    "triple_single": "a ''' b",
    "quotes": "he said \"hi\" and 'bye'",
    "backslash_end": "ends with a backslash \\",
    "escapes_as_text": "C:\\new\\table \\x00 \\N{BULLET} \\u0041",
    "newline": "line one\nline two",
    "crlf": "one\r\ntwo\rthree",
    "nul": "nul\x00byte",
    "jinja_expr": "{{ n.pascal }} {{ 7*7 }}",
    "jinja_stmt": "{% if true %}x{% endif %}{# c #}{% raw %}",
    "dollar": "${HOME} $(id) `id`",
    "code_break": '"); import os; os.system("id") #',
    "docstring_break": '"""\nimport os\nos.system("id")\n"""',
    "format_specs": "%s %(x)s {0} {x!r} f'{x}'",
    "unicode": "ünïcødé ✓ \u2028 sep \u200b zw \U0001f600",
    "controls": "tab\tbell\x07esc\x1b[31m del\x7f",
    "yaml_syntax": "key: value\n- item\n&a *a !!python/object/apply:os.system ['id']",
}

# Destination names and the finding describe_target (and every tool that takes a name) must answer.
BAD_NAMES = {
    "empty": ("", "spec.name.empty"),
    "kw_class": ("class", "spec.name.keyword"),
    "kw_def": ("def", "spec.name.keyword"),
    "kw_lambda": ("lambda", "spec.name.keyword"),
    "kw_import": ("import", "spec.name.keyword"),
    "softkw_match": ("match", "spec.name.keyword"),
    "softkw_case": ("case", "spec.name.keyword"),
    "kw_None": ("None", "spec.name.not_snake_case"),
    "builtin_list": ("list", "spec.name.builtin"),
    "builtin_print": ("print", "spec.name.builtin"),
    "builtin_open": ("open", "spec.name.builtin"),
    "builtin_id": ("id", "spec.name.builtin"),
    "builtin_type": ("type", "spec.name.builtin"),
    "builtin_object": ("object", "spec.name.builtin"),
    "builtin_input": ("input", "spec.name.builtin"),
    "lookalike_cyrillic_i": ("f\u0456le", "spec.name.not_identifier"),
    "lookalike_cyrillic_o": ("l\u043egger", "spec.name.not_identifier"),
    "lookalike_ligature": ("\ufb01le", "spec.name.not_identifier"),
    "lookalike_fullwidth": ("\uff46\uff49\uff4c\uff45", "spec.name.not_identifier"),
    "zero_width_space": ("file\u200b", "spec.name.not_identifier"),
    "dotted_i": ("f\u0131le", "spec.name.not_identifier"),
    "traversal": ("../x", "spec.name.not_identifier"),
    "traversal_deep": ("../../../../etc/cron.d/x", "spec.name.not_identifier"),
    "dotdot": ("..", "spec.name.not_identifier"),
    "dot": (".", "spec.name.not_identifier"),
    "slash": ("a/b", "spec.name.not_identifier"),
    "backslash": ("a\\b", "spec.name.not_identifier"),
    "absolute": ("/etc/passwd", "spec.name.not_identifier"),
    "absolute_tmp": ("/tmp/x", "spec.name.not_identifier"),
    "home": ("~/x", "spec.name.not_identifier"),
    "nul": ("ac\x00me", "spec.name.not_identifier"),
    "newline": ("acme\nimport os", "spec.name.not_identifier"),
    "space": ("my dest", "spec.name.not_identifier"),
    "leading_space": (" acme", "spec.name.not_identifier"),
    "hyphen": ("my-dest", "spec.name.not_identifier"),
    "dot_suffix": ("acme.py", "spec.name.not_identifier"),
    "quote": ("acme'", "spec.name.not_identifier"),
    "jinja": ("{{acme}}", "spec.name.not_identifier"),
    "dollar": ("${acme}", "spec.name.not_identifier"),
    "long_10000": ("x" * 10_000, "spec.name.too_long"),
    "long_49": ("a" * 49, "spec.name.too_long"),
    "leading_digit": ("1acme", "spec.name.not_identifier"),
    "only_digits": ("42", "spec.name.not_identifier"),
    "hex": ("0x10", "spec.name.not_identifier"),
    "dunder_init": ("__init__", "spec.name.private"),
    "dunder_class": ("__class__", "spec.name.private"),
    "dunder_import": ("__import__", "spec.name.private"),
    "private": ("_acme", "spec.name.private"),
    "upper": ("ACME", "spec.name.not_snake_case"),
    "pascal": ("Acme", "spec.name.not_snake_case"),
    "camel": ("acmeDb", "spec.name.not_snake_case"),
}

# Names that are fine as identifiers but taken in every supported bizon tree.
TAKEN_NAMES = {
    "existing_file": ("file", "spec.name.taken"),
    "existing_logger": ("logger", "spec.name.taken"),
    "existing_bigquery": ("bigquery", "spec.name.taken"),
    "existing_bigquery_streaming_v2": ("bigquery_streaming_v2", "spec.name.taken"),
    "class_of_bigquery": ("big_query", "spec.name.class_taken"),  # BigQueryConfig is bigquery's
    "class_of_file": ("file_destination", "spec.name.class_taken"),  # FileDestinationConfig is file's
}


def fld(name, type="str", **kw) -> dict:
    return {"name": name, "type": type, **kw}


BAD_FIELDS = {
    **{
        f"shadows_{n}": ([fld(n)], "spec.field.shadows_base")
        for n in (
            "buffer_size",
            "buffer_flush_timeout",
            "max_concurrent_threads",
            "record_schemas",
            "unnest",
            "authentication",
            "destination_id",
        )
    },
    **{
        f"reserved_{n}": ([fld(n)], "spec.field.reserved")
        for n in ("model_config", "model_dump", "model_fields", "model_x", "schema", "json", "dict", "copy")
    },
    "duplicate": ([fld("host"), fld("host")], "spec.field.duplicate"),
    "duplicate_other_type": ([fld("port", "int"), fld("port")], "spec.field.duplicate"),
    **{f"keyword_{n}": ([fld(n)], "spec.field.keyword") for n in ("class", "def", "import", "match", "case")},
    "keyword_True": ([fld("True")], "spec.field.not_identifier"),
    "empty_name": ([fld("")], "spec.field.not_identifier"),
    "upper_name": ([fld("Host")], "spec.field.not_identifier"),
    "hyphen_name": ([fld("api-key")], "spec.field.not_identifier"),
    "digit_name": ([fld("1st")], "spec.field.not_identifier"),
    "space_name": ([fld("a b")], "spec.field.not_identifier"),
    "unicode_name": ([fld("h\u043est")], "spec.field.not_identifier"),
    "code_name": ([fld("x=1;import os")], "spec.field.not_identifier"),
    "long_name": ([fld("x" * 65)], "spec.field.not_identifier"),
    "dunder_name": ([fld("__class__")], "spec.field.private"),
    "private_name": ([fld("_host")], "spec.field.private"),
    **{
        f"type_{i}": ([fld("x", t)], "spec.field.unknown_type")
        for i, t in enumerate(
            (
                "string",
                "List[str]",
                "Optional[str]",
                "any",
                "__import__('os').system('id')",
                "int; import os",
                "str\n",
                "",
                "list[int]",
                "bytes",
            )
        )
    },
    "int_default_str": ([fld("x", "int", default="3")], "spec.field.default_type"),
    "int_default_float": ([fld("x", "int", default=1.5)], "spec.field.default_type"),
    "int_default_bool": ([fld("x", "int", default=True)], "spec.field.default_type"),
    "float_default_str": ([fld("x", "float", default="1.0")], "spec.field.default_type"),
    "float_default_bool": ([fld("x", "float", default=False)], "spec.field.default_type"),
    "bool_default_int": ([fld("x", "bool", default=1)], "spec.field.default_type"),
    "bool_default_str": ([fld("x", "bool", default="true")], "spec.field.default_type"),
    "str_default_int": ([fld("x", default=5)], "spec.field.default_type"),
    "str_default_list": ([fld("x", default=["a"])], "spec.field.default_type"),
    "str_default_dict": ([fld("x", default={"a": 1})], "spec.field.default_type"),
    "list_default_ints": ([fld("x", "list[str]", default=[1, 2])], "spec.field.default_type"),
    "list_default_str": ([fld("x", "list[str]", default="a")], "spec.field.default_type"),
    "dict_default_list": ([fld("x", "dict", default=[1])], "spec.field.default_type"),
    "dict_default_str": ([fld("x", "dict", default="{}")], "spec.field.default_type"),
    "required_with_default": (
        [fld("x", required=True, default="a", description="d")],
        "spec.field.required_with_default",
    ),
    "required_no_description": ([fld("x", required=True)], "spec.field.missing_description"),
    "required_blank_description": (
        [fld("x", required=True, description=" \n\t")],
        "spec.field.missing_description",
    ),
    "secret_int": ([fld("x", "int", secret=True)], "spec.field.secret_type"),
    "secret_default": ([fld("x", secret=True, default="hunter2")], "spec.field.secret_default"),
    "description_2001": ([fld("x", description="d" * 2001)], "spec.field.description_too_long"),
}

# Other describe_target arguments out of range: (arguments, finding).
BAD_SPEC_ARGS = {
    "alias_empty": ({"alias": ""}, "spec.alias.invalid"),
    "alias_blank": ({"alias": " \n"}, "spec.alias.invalid"),
    "alias_101": ({"alias": "a" * 101}, "spec.alias.invalid"),
    "description_2001": ({"description": "d" * 2001}, "spec.description_too_long"),
    "buffer_negative": ({"batching": {"buffer_size_mb": -1}}, "spec.batching.buffer_size"),
    "buffer_huge": ({"batching": {"buffer_size_mb": 10_001}}, "spec.batching.buffer_size"),
    "flush_negative": ({"batching": {"flush_timeout_s": -1}}, "spec.batching.flush_timeout"),
    "threads_zero": ({"batching": {"max_concurrent_threads": 0}}, "spec.batching.threads"),
    "threads_huge": ({"batching": {"max_concurrent_threads": 257}}, "spec.batching.threads"),
    "retries_negative": ({"error_handling": {"max_retries": -1}}, "spec.error_handling.max_retries"),
    "retries_huge": ({"error_handling": {"max_retries": 21}}, "spec.error_handling.max_retries"),
    "backoff_zero": ({"error_handling": {"backoff_seconds": 0}}, "spec.error_handling.backoff"),
    "backoff_negative": ({"error_handling": {"backoff_seconds": -1}}, "spec.error_handling.backoff"),
    "backoff_huge": ({"error_handling": {"backoff_seconds": 601}}, "spec.error_handling.backoff"),
}


# -- the arena ---------------------------------------------------------------------------------------


@dataclass
class Arena:
    base: Path
    roots: Path  # the one root the server may touch; also its default workspace (not a bizon tree)
    outside: Path
    trees: dict[str, Path] = field(default_factory=dict)  # trees no call may change
    strings: Path | None = None

    def expand(self, value: str) -> str:
        """'@name' is a folder in the root, '@@rel' a path under the arena, anything else is literal."""
        if value.startswith("@@"):
            return str(self.base / value[2:])
        if value.startswith("@"):
            return str(self.roots / value[1:])
        return value


# What bizon-forge reads in a tree it refuses or only renders into; a skeleton keeps the arena small.
SKELETON = (
    "pyproject.toml",
    "PKG-INFO",
    "bizon/destination",
    "bizon/common",
    "bizon/connectors/destinations",
    "tests/connectors/destinations",
)


def copy_tree(src: Path, dest: Path, full: bool = False) -> Path:
    """A copy of a bizon tree without its git history; `full` for one that must import and run."""
    if full:
        shutil.copytree(src, dest, symlinks=True, ignore=shutil.ignore_patterns(".git"))
        return dest
    for rel in SKELETON:
        if (src / rel).is_dir():
            shutil.copytree(src / rel, dest / rel, symlinks=True)
        elif (src / rel).exists():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src / rel, dest / rel)
    return dest


def build_arena(base: Path, pristine, describe_and_render) -> Arena:
    """`pristine(version)` gives a bizon tree; `describe_and_render(tree, name)` stores a spec, renders it."""
    roots, outside = base / "roots", base / "outside"
    roots.mkdir(parents=True)
    outside.mkdir()
    a = Arena(base=base, roots=roots, outside=outside)
    new, old = pristine("0.6.4"), pristine("0.5.2")
    a.trees["main"] = copy_tree(new, roots / "main", full=True)
    a.trees["old"] = copy_tree(old, roots / "old", full=True)
    a.strings = copy_tree(new, roots / "strings", full=True)  # the one tree calls may write to

    (roots / "notbizon").mkdir()
    (roots / "notbizon" / "README.md").write_text("not a bizon tree\n")
    partial = roots / "partial" / "bizon" / "destination"
    partial.mkdir(parents=True)
    shutil.copy(new / "bizon/destination/config.py", partial / "config.py")
    (roots / "afile.txt").write_text("a file, not a folder\n")

    a.trees["outside_tree"] = copy_tree(new, outside / "tree")
    os.symlink(outside / "tree", roots / "escape")  # a symlink inside the root that leads out of it
    sentinel = outside / "evil_target"
    sentinel.mkdir()
    (sentinel / "keep.txt").write_text("must survive\n")

    # A connector folder that is a symlink out of the tree, for a spec bizon-forge stored itself.
    linked = a.trees["linked"] = copy_tree(new, roots / "linked")
    describe_and_render(linked, "evil")
    shutil.rmtree(linked / "bizon/connectors/destinations/evil")
    os.symlink(sentinel, linked / "bizon/connectors/destinations/evil")

    # Guarded folders and files replaced by symlinks leading out of the tree.
    for key, rel in (
        ("linked_base", "bizon/connectors/destinations"),
        ("linked_state", ".bizon-forge"),
        ("linked_specs", ".bizon-forge/specs"),
        ("linked_enum", "bizon/destination/config.py"),
        ("linked_factory_dir", "bizon/destination"),
        ("linked_tests", "tests/connectors/destinations"),
    ):
        tree = a.trees[key] = copy_tree(new, roots / key)
        if rel.startswith(".bizon-forge"):
            describe_and_render(tree, "victim")
        target = outside / f"{key}_target"
        src = tree / rel
        if src.is_dir():
            shutil.copytree(src, target)
            shutil.rmtree(src)
        else:
            shutil.copy(src, target)
            src.unlink()
        os.symlink(target, src)

    # Registration and connector paths that are not regular files: a FIFO would hang a read forever.
    fifo = a.trees["fifo_models"] = copy_tree(new, roots / "fifo_models")
    (fifo / "bizon/common/models.py").unlink()
    os.mkfifo(fifo / "bizon/common/models.py")
    folder = a.trees["dir_enum"] = copy_tree(new, roots / "dir_enum")
    (folder / "bizon/destination/config.py").unlink()
    (folder / "bizon/destination/config.py").mkdir()
    fifo = a.trees["fifo_connector"] = copy_tree(new, roots / "fifo_connector")
    describe_and_render(fifo, "piped")
    (fifo / "bizon/connectors/destinations/piped/src/config.py").unlink()
    os.mkfifo(fifo / "bizon/connectors/destinations/piped/src/config.py")

    # Read-only: a registration file made read-only after its destination was rendered, and a read-only
    # connectors folder that render cannot add to.
    ro = a.trees["readonly"] = copy_tree(new, roots / "readonly")
    describe_and_render(ro, "guarded")
    os.chmod(ro / "bizon/destination/config.py", 0o444)
    ro_folder = a.trees["readonly_folder"] = copy_tree(new, roots / "readonly_folder")
    describe_and_render(ro_folder, "guarded")
    os.chmod(ro_folder / "bizon/common", 0o555)  # models.py stays writable; its folder does not
    ro_dir = a.trees["readonly_dir"] = copy_tree(new, roots / "readonly_dir")
    describe_and_render(ro_dir, "guarded", render=False)
    os.chmod(ro_dir / "bizon/connectors/destinations", 0o555)
    ro_file = a.trees["readonly_rendered"] = copy_tree(new, roots / "readonly_rendered")
    describe_and_render(ro_file, "guarded")
    config = ro_file / "bizon/connectors/destinations/guarded/src/config.py"
    config.write_text(config.read_text() + "# edited by the agent\n")
    os.chmod(config, 0o444)

    # A spec store edited by hand: not JSON, a spec under another (hostile) name, one failing the checks.
    tampered = a.trees["tampered"] = copy_tree(new, roots / "tampered")
    describe_and_render(tampered, "decoy")
    specs = tampered / ".bizon-forge/specs"
    good = (specs / "decoy.json").read_text()
    (specs / "broken.json").write_text("{not json")
    (specs / "renamed.json").write_text(good.replace('"decoy"', '"../../../outside/evil_target/x"'))
    weird = json.loads(good) | {"name": "weird", "fields": [{"name": "class", "type": "str"}]}
    (specs / "weird.json").write_text(json.dumps(weird))
    (specs / "binary.json").write_bytes(b"\xff\xfe\x00garbage")
    (specs / "listed.json").write_text("[1, 2, 3]")
    os.mkfifo(specs / "piped.json")
    (specs / "folder.json").mkdir()
    (tampered / ".bizon-forge/rendered/decoy.json").write_text("{torn")
    edited = tampered / "bizon/connectors/destinations/decoy/src/destination.py"
    edited.write_text(edited.read_text() + "# the agent's own code\n")
    return a


def restore_modes(a: Arena) -> None:
    """Make the read-only corners writable again so pytest can clean up."""
    for p in a.base.rglob("*"):
        if not p.is_symlink():
            os.chmod(p, p.stat().st_mode | stat.S_IWUSR)
