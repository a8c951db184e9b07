"""The documentation's code runs: every ```python block of every page in docs/.

The blocks of one page run in order, in one shared module namespace, so a later block can use
the names an earlier one defined (as a reader would, following the page from the top). A block
that must not run is marked with the HTML comment ``<!-- no-run -->`` on the line just before its
opening fence; use that for code that cannot run offline, never for an example that could.

Async examples call ``anyio.run(...)`` themselves, so a block is plain Python. Any warning an
example does not catch itself fails the page: the docs must not emit warnings by accident.
"""

from __future__ import annotations

import re
import sys
import textwrap
import types
from dataclasses import dataclass
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
NO_RUN = "<!-- no-run -->"

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`\n]*)$")


@dataclass(frozen=True)
class Block:
    """One fenced code block of a page."""

    language: str
    code: str
    line: int
    """The line of the opening fence (1-based), for error messages."""
    run: bool


def fenced_blocks(text: str) -> list[Block]:
    """Every fenced code block of a Markdown page, indented ones (in tabs, admonitions) too."""
    blocks: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        indent, fence = opening["indent"], opening["fence"]
        words = opening["info"].strip().lstrip("{").split()
        language = words[0].lstrip(".").lower() if words else ""
        previous = lines[i - 1].strip() if i > 0 else ""
        closing = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
        body: list[str] = []
        j = i + 1
        while j < len(lines) and not closing.match(lines[j]):
            body.append(lines[j].removeprefix(indent))
            j += 1
        if j == len(lines):
            raise ValueError(f"the code block opened on line {i + 1} is never closed")
        code = textwrap.dedent("\n".join(body)) + "\n"
        blocks.append(Block(language, code, i + 1, run=previous != NO_RUN))
        i = j + 1
    return blocks


def python_blocks(page: Path) -> list[Block]:
    return [
        b
        for b in fenced_blocks(page.read_text(encoding="utf-8"))
        if b.language in ("python", "py") and b.run
    ]


PAGES = sorted(p for p in DOCS.rglob("*.md") if python_blocks(p))
# The README's quickstart is documentation too.
PAGES.append(DOCS.parent / "README.md")


@pytest.mark.skipif(not DOCS.is_dir(), reason="no docs/ here (an sdist ships none)")
def test_the_guide_pages_have_examples_that_run() -> None:
    names = {p.relative_to(DOCS.parent).as_posix() for p in PAGES}
    assert {"docs/index.md", "docs/toolsets.md", "docs/executor.md", "README.md"} <= names


def test_fences_are_found_in_tabs_and_the_no_run_marker_is_honoured() -> None:
    page = (
        "```python\na = 1\n```\n\n"
        '=== "Tab"\n\n    ```python\n    b = a + 1\n    ```\n\n'
        f"{NO_RUN}\n```python\nraise SystemExit\n```\n\n"
        "```bash\necho hi\n```\n"
    )
    blocks = fenced_blocks(page)
    assert [(b.language, b.code, b.run) for b in blocks] == [
        ("python", "a = 1\n", True),
        ("python", "b = a + 1\n", True),
        ("python", "raise SystemExit\n", False),
        ("bash", "echo hi\n", True),
    ]


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("page", PAGES, ids=[p.relative_to(DOCS.parent).as_posix() for p in PAGES])
def test_page_code_runs(page: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A real module, registered while the page runs: dataclasses, Pydantic and typing look
    # classes' modules up in sys.modules.
    name = "docs_" + re.sub(r"\W", "_", page.relative_to(DOCS.parent).with_suffix("").as_posix())
    module = types.ModuleType(name)
    monkeypatch.setitem(sys.modules, name, module)
    for block in python_blocks(page):
        # Padded so that a traceback names the page and the line of the page.
        code = compile("\n" * block.line + block.code, str(page), "exec")
        exec(code, module.__dict__)
