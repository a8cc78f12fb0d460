"""Recipes: which templates render a destination, and the fields each family of targets needs."""

from dataclasses import dataclass, field

from bizon_forge.spec import FieldSpec


@dataclass(frozen=True)
class Recipe:
    name: str
    destination_template: str
    fields: tuple[FieldSpec, ...] = ()  # added to a spec that does not declare them
    test_template: str | None = None
    sample: dict = field(default_factory=dict)  # example-YAML values that make a run work offline

    def templates(self, name: str) -> list[tuple[str, str]]:
        base = f"bizon/connectors/destinations/{name}/src"
        out = [(f"{base}/config.py", "config.py.j2"), (f"{base}/destination.py", self.destination_template)]
        if self.test_template:
            out.append((f"tests/connectors/destinations/{name}/test_{name}_destination.py", self.test_template))
        return out


RECIPES = {
    "custom": Recipe("custom", "custom/destination.py.j2"),
}


def get(name: str) -> Recipe:
    return RECIPES[name]
