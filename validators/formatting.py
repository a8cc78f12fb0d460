"""ruff format and ruff check on the destination's files and on its own lines of bizon's registration files.

Newer ruff would restyle untouched parts of bizon's files, so in the three registration files only the
lines this destination added are judged, and fix=true never rewrites anyone else's lines.
"""

import difflib
import json
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from bizon_forge.atomic import workspace_lock, write_all
from bizon_forge.findings import Finding
from bizon_forge.validators.catalog import Check, answers
from bizon_forge.validators.report import FixedFile
from bizon_forge.workspace import REGISTRATION_FILES, Workspace, read_regular

RUFF_TIMEOUT_S = 60
HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+\d+(?:,\d+)? @@")


def ruff_bin() -> str:
    from ruff.__main__ import find_ruff_bin  # kept off the server's start-up path

    return str(find_ruff_bin())


def _ruff(ws: Workspace, args: list[str], stdin: str | None = None) -> subprocess.CompletedProcess:
    """ruff in the tree, its output as text with line endings as ruff wrote them (text=True would turn a CRLF
    file's output into LF, and fix=true would then rewrite every line ending)."""
    done = subprocess.run(
        [ruff_bin(), *args],
        cwd=ws.root,
        input=None if stdin is None else stdin.encode(),
        capture_output=True,
        timeout=RUFF_TIMEOUT_S,
    )
    return subprocess.CompletedProcess(
        done.args, done.returncode, done.stdout.decode(errors="replace"), done.stderr.decode(errors="replace")
    )


@dataclass
class Hunk:
    changed: set[int] = field(default_factory=set)  # old lines removed or rewritten
    inserted_after: set[int] = field(default_factory=set)  # old line numbers after which lines are added
    text: str = ""

    def touches(self, lines: set[int]) -> bool:
        near = {n for n in self.inserted_after} | {n + 1 for n in self.inserted_after}
        return bool((self.changed | near) & lines)


def parse_diff(text: str) -> dict[str, list[Hunk]]:
    """`ruff format --diff` output -> hunks per file, with the old line numbers each one changes."""
    out: dict[str, list[Hunk]] = {}
    rel, hunk, old = None, None, 0
    for line in text.splitlines():
        if line.startswith("--- "):
            rel, hunk = line[4:].strip(), None
            out.setdefault(rel, [])
            continue
        if line.startswith("+++ ") and hunk is None:
            continue
        m = HUNK.match(line)
        if m and rel is not None:
            hunk, old = Hunk(), int(m.group(1))
            out[rel].append(hunk)
            hunk.text += line + "\n"
            continue
        if hunk is None:
            continue
        hunk.text += line + "\n"
        if line.startswith("-"):
            hunk.changed.add(old)
            old += 1
        elif line.startswith("+"):
            hunk.inserted_after.add(old - 1)
        elif line.startswith("\\"):
            continue
        else:
            old += 1
    return out


def _judged(rel: str, ours: dict[str, set[int]], first: int, last: int | None = None) -> bool:
    """Whether a problem on lines first..last counts: anywhere in the destination's files, else on ours."""
    if rel not in ours:
        return True
    return bool(set(range(first, (last or first) + 1)) & ours[rel])


FORMAT_RUFF_FORMAT = Check(
    "format.ruff_format",
    "Format",
    "`ruff format --check` passes on the destination's files and on the lines it added to the three "
    "registration files, with the workspace's ruff config.",
    "The guide's final step; bizon's CI runs the formatter.",
    "Call validate_destination with fix=true, or run `ruff format` on the listed files.",
)
FORMAT_RUFF_CHECK = Check(
    "format.ruff_check",
    "Format",
    "`ruff check` passes on the same files and lines, with the workspace's ruff config.",
    "bizon's pre-commit runs the linter (isort order, unused imports, pyupgrade).",
    "Call validate_destination with fix=true for the fixable rules; fix the rest by hand.",
)


@answers(
    FORMAT_RUFF_FORMAT,
    FORMAT_RUFF_CHECK,
)
def check(ws: Workspace, rels: list[str], ours: dict[str, set[int]], log: Path) -> list[Finding]:
    """format.ruff_format and format.ruff_check, with their raw output written to `log`."""
    rels = [r for r in rels if (ws.root / r).is_file()]
    fmt = _ruff(ws, ["format", "--check", "--diff", "--no-cache", *rels])
    lint = _ruff(ws, ["check", "--no-cache", "--output-format", "json", "--exit-zero", *rels])
    log.write_text(
        f"$ ruff format --check --diff {' '.join(rels)}\n{fmt.stdout}{fmt.stderr}\n"
        f"$ ruff check --output-format json {' '.join(rels)}\n{lint.stdout}{lint.stderr}\n"
    )
    shown = str(log.relative_to(ws.root))
    findings = []

    if fmt.returncode not in (0, 1):
        findings.append(FORMAT_RUFF_FORMAT.fail("ruff format could not run.", output=fmt.stderr, log=shown))
    else:
        bad = {}
        for rel, hunks in parse_diff(fmt.stdout).items():
            judged = [h for h in hunks if rel not in ours or h.touches(ours[rel])]
            if judged:
                bad[rel] = judged
        if not bad:
            findings.append(FORMAT_RUFF_FORMAT.passed())
        else:
            rel, hunks = next(iter(bad.items()))
            first = min(hunks[0].changed | {n + 1 for n in hunks[0].inserted_after})
            findings.append(
                FORMAT_RUFF_FORMAT.fail(
                    f"ruff format would change {sum(len(h) for h in bad.values())} place(s) in "
                    f"{', '.join(p.rsplit('/', 1)[-1] for p in bad)}.",
                    file=rel,
                    line=first,
                    output=hunks[0].text,
                    log=shown,
                )
            )

    try:
        diagnostics = json.loads(lint.stdout or "[]")
    except json.JSONDecodeError:
        findings.append(FORMAT_RUFF_CHECK.fail("ruff check could not run.", output=lint.stderr, log=shown))
        return findings
    problems = []
    for d in diagnostics:
        rel = str(Path(d["filename"]).resolve().relative_to(ws.root)) if d.get("filename") else "?"
        row, end = d["location"]["row"], d.get("end_location", d["location"])["row"]
        if _judged(rel, ours, row, end):
            problems.append((rel, row, f"{rel}:{row}: {d.get('code') or 'syntax'} {d['message']}"))
    if not problems:
        findings.append(FORMAT_RUFF_CHECK.passed())
    else:
        rel, row, _ = problems[0]
        fixable = sum(1 for d in diagnostics if d.get("fix"))
        findings.append(
            FORMAT_RUFF_CHECK.fail(
                f"ruff check found {len(problems)} problem(s), first: {problems[0][2].split(': ', 1)[1]}.",
                file=rel,
                line=row,
                hint="Call validate_destination with fix=true."
                if fixable
                else "Fix them by hand (none is auto-fixable).",
                output="\n".join(p[2] for p in problems),
                log=shown,
            )
        )
    return findings


def _merge_ours(old: str, new: str, lines: set[int]) -> tuple[str, int]:
    """`new` where it changes only our lines (or only adds lines), `old` elsewhere; and the count left out."""
    a, b = old.splitlines(keepends=True), new.splitlines(keepends=True)
    out, left = [], 0
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag == "equal":
            out += a[i1:i2]
        elif set(range(i1 + 1, i2 + 1)) <= lines:  # replace/delete of our lines, or a pure insertion
            out += b[j1:j2]
        else:
            out += a[i1:i2]
            left += 1
    return "".join(out), left


def fix(ws: Workspace, rels: list[str], ours: dict[str, set[int]]) -> list[FixedFile]:
    """Apply ruff's safe fixes and formatting: all of the destination's files, only our lines of bizon's."""
    changes, fixed = {}, []
    with workspace_lock(ws.state_dir):
        for rel in rels:
            path = ws.root / rel
            if not path.is_file():
                continue
            old = read_regular(path).decode()  # as it is: read_text() would turn CRLF into LF
            linted = _ruff(ws, ["check", "--fix", "--exit-zero", "--no-cache", "--stdin-filename", rel, "-"], old)
            text = linted.stdout if linted.returncode == 0 and linted.stdout else old
            formatted = _ruff(ws, ["format", "--no-cache", "--stdin-filename", rel, "-"], text)
            new = formatted.stdout if formatted.returncode == 0 else text
            note = None
            if rel in REGISTRATION_FILES:
                new, left = _merge_ours(old, new, ours.get(rel, set()))
                if left:
                    note = f"ruff would also change {left} place(s) outside our lines: left alone."
            if new != old or note:
                diff = "".join(difflib.unified_diff(old.splitlines(True), new.splitlines(True), f"a/{rel}", f"b/{rel}"))
                fixed.append(FixedFile(path=rel, diff=diff[:2000], note=note))
            if new != old:
                changes[path] = new
        if changes:
            write_all(changes)
    return fixed
