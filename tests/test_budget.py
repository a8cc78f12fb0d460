"""Resources sized for a model (issue 25): the compact resources keep to their budgets, and nothing they cut is lost:
each cut part is in a long form the compact one names, read here through the server."""

import re

import pytest
from mcp import Client

from bizon_forge.server import resources
from bizon_forge.server.app import build_server
from bizon_forge.validators import catalog
from bizon_forge.workspace import Settings

pytestmark = pytest.mark.anyio
TOKEN_BYTES = 4
LONG_FORMS = {"bizon-forge://checklist", "bizon-forge://source-guide"}
KINDS = {"destination": catalog.MODULES, "source": catalog.SOURCE_MODULES}


def tokens(text: str) -> float:
    return len(text.encode()) / TOKEN_BYTES


async def _read(client: Client, uri: str) -> str:
    return "".join(getattr(c, "text", "") for c in (await client.read_resource(uri)).contents)


async def test_compact_resources_keep_their_budgets_and_lose_nothing(make_tree):
    tree = make_tree("0.6.4")
    async with Client(build_server(Settings.from_paths([str(tree)]))) as client:
        listed = {str(r.uri) for r in (await client.list_resources()).resources}
        read = {uri: await _read(client, uri) for uri in sorted(listed)}
        pages = {
            c.id: await _read(client, f"bizon-forge://check/{c.id}")
            for modules in KINDS.values()
            for c in catalog.collect(modules).checks
        }
        prompts = [
            (await client.get_prompt("new_destination", {"target": "t"})).messages[0].content.text,
            (await client.get_prompt("new_source", {"api": "a"})).messages[0].content.text,
        ]
        unknown = await _read(client, "bizon-forge://check/data.exakt")
    assert unknown.startswith("No check 'data.exakt'; did you mean data.exact")

    # Budgets: a checklist per kind within 2k tokens, no resource over 4k unless it is a long form.
    for kind in KINDS:
        assert tokens(read[f"bizon-forge://checklist/{kind}"]) <= 2000, kind
    over = {u: round(tokens(t)) for u, t in read.items() if tokens(t) > 4000 and u not in LONG_FORMS}
    assert not over, over
    assert max(tokens(p) for p in pages.values()) <= 4000

    # Nothing cut is lost: every check has its line, and its page holds what the catalog declares, whole.
    for kind, modules in KINDS.items():
        compact = read[f"bizon-forge://checklist/{kind}"]
        for c in catalog.collect(modules).checks:
            assert f"\n- {c.id}" in compact, c.id
            page = pages[c.id]
            for part in (c.what, c.why, c.fix, c.limits, *c.requires):
                assert part in page, (c.id, part)
        assert "bizon-forge://check/ID" in compact and "bizon-forge://checklist" in compact
    assert read["bizon-forge://checklist"] == catalog.checklist_markdown()  # the long form, as before

    # The source guide: the digest names the full guide, which holds bizon's guide and every correction.
    digest, full = read["bizon-forge://source-guide/digest"], read["bizon-forge://source-guide"]
    assert "bizon-forge://source-guide" in digest and tokens(digest) <= 4000
    assert (tree / "docs/ai-connector-guide.md").read_text() in full
    corrections = digest.split("\n---\n", 1)[1]
    assert corrections.strip() and corrections in full

    # Every resource a prompt or a compact resource names resolves; the prompts name no long form to read.
    named = {u.rstrip(".,;)") for text in [*prompts, digest] for u in re.findall(r"bizon-forge://[a-z/_-]+", text)}
    for uri in named - {"bizon-forge://check/"}:
        assert uri in listed, uri
    for text in prompts:
        assert not LONG_FORMS & {u for u in re.findall(r"bizon-forge://[a-z/_-]+\b", text) if not u.endswith("/")}


def test_a_long_what_is_cut_at_a_word_and_marked():
    assert resources._clip("one two three", 9) == "one two…"
    assert resources._sentence("A `a.b` thing (aside) holds. Then more.") == "A `a.b` thing holds"
    assert resources._short_fix("Call apply_registrations, or add it by hand.") == "Call apply_registrations"
    assert resources._short_fix("x " * 40) == ""


def test_a_log_in_the_answers_log_dir_is_named_inside_it():
    """The log folder is said once per answer; a log elsewhere (a cached finding's) keeps its whole path."""
    from bizon_forge.findings import failed
    from bizon_forge.validators.report import ValidationResult

    logs = ".bizon-forge/logs/x-1"
    result = ValidationResult(
        findings=[failed("a", "m", log=f"{logs}/ruff.log"), failed("b", "m", log=".bizon-forge/logs/x-0/c.log")],
        log_dir=logs,
    )
    sent = result.model_dump(mode="json", exclude_none=True)
    assert [f["log"] for f in sent["findings"]] == ["ruff.log", ".bizon-forge/logs/x-0/c.log"]
    assert result.findings[0].log == f"{logs}/ruff.log"  # the model itself keeps the workspace-relative path
