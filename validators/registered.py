"""The checks of the three registrations (enum, models Union, factory) and of the lines they added."""

import ast
from typing import cast

import yaml

from bizon_forge.findings import Finding
from bizon_forge.registry import union_node
from bizon_forge.validators.catalog import Check, static
from bizon_forge.validators.code import DestinationCode
from bizon_forge.validators.destination_syntax import SOURCE_SYNTAX
from bizon_forge.workspace import ENUM_FILE, FACTORY_FILE, MODELS_FILE


def _unparsable(code: DestinationCode, rel: str) -> bool:
    return code.registration[rel].tree is None


REGISTRATION_ENUM = Check(
    "registration.enum",
    "Registration",
    "`DestinationTypes` in `bizon/destination/config.py` has a member whose value is the destination's name.",
    "Without it `bizon.common.models` raises AttributeError on import: even `bizon --help` dies.",
    'Call apply_registrations, or add `NAME = "name"` to DestinationTypes.',
    explained_by=(SOURCE_SYNTAX.id,),
)


@static(REGISTRATION_ENUM)
def enum(code: DestinationCode) -> Finding:
    if _unparsable(code, ENUM_FILE):
        return REGISTRATION_ENUM.skip(f"{ENUM_FILE} does not parse (see source.syntax).", SOURCE_SYNTAX.id)
    if code.member:
        return REGISTRATION_ENUM.passed()
    return REGISTRATION_ENUM.fail(
        f"DestinationTypes has no member with the value {code.name!r}.",
        file=ENUM_FILE,
        hint=f'Call apply_registrations(name={code.name!r}), or add `{code.name.upper()} = "{code.name}"`.',
    )


REGISTRATION_UNION = Check(
    "registration.union",
    "Registration",
    "`bizon/common/models.py` imports the main config class from the destination's `src.config` and "
    "lists "
    "it in `BizonConfig.destination`'s Union.",
    "Without it config validation fails: \"Input tag 'x' found using 'name' does not match any of the expected tags\".",
    "Call apply_registrations, or add the import and the Union member by hand.",
    explained_by=(SOURCE_SYNTAX.id,),
)


@static(REGISTRATION_UNION)
def union(code: DestinationCode) -> Finding:
    if _unparsable(code, MODELS_FILE):
        return REGISTRATION_UNION.skip(f"{MODELS_FILE} does not parse (see source.syntax).", SOURCE_SYNTAX.id)
    reg = code.reg
    if reg.registered(code.name)["union"]:
        return REGISTRATION_UNION.passed()
    ours = [cls for cls, mod in reg.imports.items() if mod == code.config_module]
    main = code.main_config.name if code.main_config else f"{code.pascal}Config"
    if main in reg.union:
        return REGISTRATION_UNION.fail(
            f"{main} is in BizonConfig.destination's Union but not imported from {code.config_module}.",
            file=MODELS_FILE,
            hint=f"Add `from {code.config_module} import {main}` among the connector imports.",
        )
    what = f"{', '.join(ours)} is imported but not in" if ours else f"{main} is neither imported nor in"
    return REGISTRATION_UNION.fail(
        f"{what} BizonConfig.destination's Union.",
        file=MODELS_FILE,
        hint=f"Call apply_registrations(name={code.name!r}), or add the import and the Union member {main}.",
    )


REGISTRATION_FACTORY = Check(
    "registration.factory",
    "Registration",
    "`DestinationFactory.get_destination()` has a branch that imports and returns the destination class.",
    'Without it the config validates but every run fails with "Destination ... not found".',
    "Call apply_registrations, or add an `elif` before the final `raise`, its import inside the branch.",
    explained_by=(SOURCE_SYNTAX.id,),
)


@static(REGISTRATION_FACTORY)
def factory(code: DestinationCode) -> Finding:
    if _unparsable(code, FACTORY_FILE):
        return REGISTRATION_FACTORY.skip(f"{FACTORY_FILE} does not parse (see source.syntax).", SOURCE_SYNTAX.id)
    if code.reg.registered(code.name)["factory"]:
        return REGISTRATION_FACTORY.passed()
    return REGISTRATION_FACTORY.fail(
        f"DestinationFactory.get_destination() has no branch importing {code.destination_module}.",
        file=FACTORY_FILE,
        hint=f"Call apply_registrations(name={code.name!r}), or add an `elif` before the final raise.",
    )


def _example_name(code: DestinationCode) -> str | None:
    f = code.files.get(code.example_rel)
    if f is None:
        return None
    try:
        data = yaml.safe_load(f.text)
    except yaml.YAMLError:
        return None
    dest = data.get("destination") if isinstance(data, dict) else None
    return dest.get("name") if isinstance(dest, dict) else None


# checklist.py's check, declared here: registration.same_name below is explained by it, and checklist.py
# imports this module's declarations.
CHECKLIST_LITERAL_NAME = Check(
    "checklist.literal_name",
    "Config",
    "`name: Literal[DestinationTypes.X]` names, as an enum member (not a string), a member DestinationTypes has.",
    "An unknown member raises AttributeError when bizon imports the config, breaking every command.",
    "Write `name: Literal[DestinationTypes.<NAME>]` with the member you added to DestinationTypes.",
    limits="Whether the member is this destination's own is judged by trap.literal_other_member.",
    explained_by=(SOURCE_SYNTAX.id,),
)


REGISTRATION_SAME_NAME = Check(
    "registration.same_name",
    "Registration",
    "The factory branch that builds this destination tests the enum member whose value is its name, and the "
    "example YAML's `destination.name` is that name.",
    "One differing spelling routes a valid config to another destination or to none.",
    "Use the folder name as the enum value and its UPPER form as the member, everywhere.",
    limits="The Union member and the config's Literal are judged by registration.union, checklist.literal_name "
    "and trap.literal_other_member.",
    explained_by=(SOURCE_SYNTAX.id, REGISTRATION_ENUM.id, REGISTRATION_FACTORY.id, CHECKLIST_LITERAL_NAME.id),
)


@static(REGISTRATION_SAME_NAME)
def same_name(code: DestinationCode) -> Finding:
    member = code.member
    if member is None:
        return REGISTRATION_SAME_NAME.skip(
            "No enum member to compare with (see registration.enum).", REGISTRATION_ENUM.id
        )
    branch = next((m for m, mod in code.reg.factory.items() if mod == code.destination_module), None)
    if branch is not None and branch != member:
        return REGISTRATION_SAME_NAME.fail(
            f"The factory branch that builds this destination tests DestinationTypes.{branch}, but the "
            f"member with the value {code.name!r} is {member}.",
            file=FACTORY_FILE,
            line=_branch_line(code, branch),
            hint=f"Write `elif config.name == DestinationTypes.{member}:` for this branch.",
        )
    example = _example_name(code)
    if example is not None and example != code.name:
        return REGISTRATION_SAME_NAME.fail(
            f"The example config's destination.name is {example!r}, not {code.name!r}.",
            file=code.example_rel,
            hint=f"Set `destination: {{name: {code.name}}}` in the example YAML.",
        )
    return REGISTRATION_SAME_NAME.passed()


# -- the lines the registrations own, so format checks judge only those in bizon's files -------------------


def _branch_line(code: DestinationCode, member: str) -> int | None:
    tree = cast(ast.Module, code.registration[FACTORY_FILE].tree)  # the branch was read from it
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Compare) and node.test.comparators:
            target = node.test.comparators[0]
            if isinstance(target, ast.Attribute) and target.attr == member:
                return node.lineno
    return None


def _end(node: ast.expr | ast.stmt) -> int:
    """The last line of a parsed node (ast leaves end_lineno None only on nodes built by hand)."""
    return node.end_lineno if node.end_lineno is not None else node.lineno


def our_lines(code: DestinationCode) -> dict[str, set[int]]:
    """Per registration file, the 1-based lines that belong to this destination."""
    enum_tree = code.registration[ENUM_FILE].tree
    line = code.reg.enum_lines.get(code.member) if enum_tree is not None and code.member else None
    models = code.registration[MODELS_FILE].tree
    factory = code.registration[FACTORY_FILE].tree
    return {
        ENUM_FILE: {line} if line else set(),
        MODELS_FILE: _our_models_lines(code, models) if models is not None else set(),
        FACTORY_FILE: _our_factory_lines(code, factory) if factory is not None else set(),
    }


def _our_models_lines(code: DestinationCode, models: ast.Module) -> set[int]:
    """The import of the destination's config and its member of the Union."""
    out: set[int] = set()
    ours: set[str] = set()
    for stmt in models.body:
        if isinstance(stmt, ast.ImportFrom) and stmt.module == code.config_module:
            out.update(range(stmt.lineno, _end(stmt) + 1))
            ours.update(a.asname or a.name for a in stmt.names)
    slice_ = union_node(models)
    for elt in (slice_.elts if isinstance(slice_, ast.Tuple) else [slice_]) if slice_ is not None else []:
        if isinstance(elt, ast.Name) and elt.id in ours:
            out.update(range(elt.lineno, _end(elt) + 1))
    return out


def _our_factory_lines(code: DestinationCode, factory: ast.Module) -> set[int]:
    """The factory's branch that imports the destination, and a top-level import of the connector's."""
    out: set[int] = set()
    for node in ast.walk(factory):
        if isinstance(node, ast.If) and any(
            isinstance(s, ast.ImportFrom) and s.module == code.destination_module for s in node.body
        ):
            out.update(range(node.lineno, _end(node.body[-1]) + 1))
        if isinstance(node, (ast.Import, ast.ImportFrom)) and node in factory.body:
            mod = getattr(node, "module", None) or ""
            if code.connector.owns(mod):
                out.update(range(node.lineno, _end(node) + 1))
    return out
