"""validate_source full on the graphql source the rest recipe renders (tests/sources/rendered_plants.py), under bizon
0.5.2: as rendered it passes every case of the mock; each bug planted in it fails full with a finding naming it."""

import pytest

from tests.sources import rendered_plants as plants

pytestmark = pytest.mark.slow  # validate_source full: the contract against every case, a real bizon run per stream
VERSION, SPEC = "0.5.2", plants.GRAPHQL


@pytest.fixture(scope="module")
def rendered(pristine, tmp_path_factory):
    return plants.rendered_tree(pristine(VERSION), tmp_path_factory.mktemp("rendered"))


def test_the_source_as_rendered_passes_full(rendered, tmp_path):
    plants.assert_passes_full(rendered, tmp_path / "tree", SPEC)


@pytest.mark.parametrize("bug", plants.params(SPEC))
def test_each_planted_bug_fails_full_by_name(rendered, tmp_path, bug):
    plants.assert_fails_full(rendered, tmp_path / "tree", bug)
