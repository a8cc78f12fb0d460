"""The bench table: each measure beside its floor from the same run, its budget and whether it is met."""

import re
from dataclasses import dataclass
from pathlib import Path

TOKEN_BYTES = 4  # tokens are estimated as bytes/4: no tokenizer works offline without a download


@dataclass
class Row:
    measure: str
    value: str
    floor: str = ""
    ratio: str = ""
    budget: str = ""
    status: str = ""  # met | missed by ... | pending | failed | info


def seconds(s: float | None) -> str:
    if s is None:
        return "—"
    return f"{s * 1000:.0f} ms" if s < 1 else f"{s:.2f} s"


def tokens(n_bytes: int) -> int:
    return round(n_bytes / TOKEN_BYTES)


def size(n_bytes: int) -> str:
    return f"{n_bytes:,} B ≈ {tokens(n_bytes):,} tok"


def ratio(value: float, floor: float) -> str:
    return f"{value / floor:.2f}×" if floor else "—"


def verdict(value: float, limit: float, show=seconds) -> str:
    """'met', or by how much (absolute and relative) the value is over its limit."""
    if value <= limit:
        return "met"
    return f"missed by {show(value - limit)} (+{(value / limit - 1) * 100:.0f}%)"


def table(rows: list[Row]) -> str:
    lines = ["| measure | median | floor (same run) | ratio | budget | status |", "|---|---|---|---|---|---|"]
    lines += [f"| {r.measure} | {r.value} | {r.floor} | {r.ratio} | {r.budget} | {r.status} |" for r in rows]
    return "\n".join(lines) + "\n"


def write_readme_section(readme: Path, body: str) -> None:
    """Replace only what lies between the bench markers; other sections belong to other generators."""
    text = readme.read_text()
    pattern = re.compile(r"(<!-- bench:start -->\n).*?(<!-- bench:end -->)", re.S)
    if not pattern.search(text):
        raise SystemExit(f"{readme} has no <!-- bench:start --> / <!-- bench:end --> markers")
    readme.write_text(pattern.sub(lambda m: m.group(1) + body + m.group(2), text, count=1))
