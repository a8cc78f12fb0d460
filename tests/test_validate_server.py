"""validate_destination through the real server over stdio: a full validation reports progress as it goes,
and the checklist resource is the one generated from the validators."""

import pytest

from bizon_forge import workspace
from bizon_forge.validators.catalog import CHECKS, checklist_markdown
from tests.broken.install import NAME, NOTHING_TO_JUDGE, install_good
from tests.conftest import stdio_client

pytestmark = pytest.mark.anyio


@pytest.mark.slow
async def test_full_validation_over_stdio_reports_progress(make_tree):
    tree = make_tree("0.6.4")
    install_good(workspace.resolve(None, workspace.Settings.from_paths([str(tree)])))
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    async with stdio_client(tree) as client:
        result = await client.call_tool(
            "validate_destination", {"name": NAME, "level": "full"}, progress_callback=on_progress
        )
        checklist = await client.read_resource("bizon-forge://checklist")

    data = result.structured_content
    assert not result.is_error and data["ok"], data
    skips = len(NOTHING_TO_JUDGE)
    assert data["level"] == "full" and data["summary"].startswith(
        f"full: {len(CHECKS) - skips} passed, {skips} skipped"
    )
    assert len(seen) >= 4, seen  # static, then one per check as it finishes
    progress = [p for p, _, _ in seen]
    assert progress == sorted(progress) and seen[-1][0] == seen[-1][1], seen
    assert any("smoke" in (m or "") for _, _, m in seen)
    assert checklist.contents[0].text == checklist_markdown()
