"""The user guide (docs/guide.md) runs, in order, and shows what it prints.

Every ```python block of the guide is executed in one namespace, in a fresh working
directory, against the session's archive emulator (``$ALMATOOLS_ARCHIVE_URL``, as a user
points almatools at a mirror) and the simulated data the guide makes itself.  A ```text
block right after a python block is that block's output: the test fails when a block
raises or its printed output differs from what the guide shows.  Every picture the guide
shows (``images/NAME.png``) must be written by the blocks and be committed in docs/images.

``ALMATOOLS_UPDATE_GUIDE=1 pytest tests/test_guide.py`` rewrites the shown outputs and the
pictures from a run instead (then read the diff before committing it).
"""

from __future__ import annotations

import contextlib
import difflib
import io
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "guide.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```\n", re.S | re.M)
IMAGE = re.compile(r"!\[[^\]]*\]\((images/[^)\s]+\.png)\)")


@dataclass
class Block:
    code: str
    line: int
    output: str | None = None     # the shown output, when a text block follows
    output_span: tuple | None = None


def blocks(text: str) -> list[Block]:
    """The python blocks of *text*, each with the text block right after it (only blank lines between)."""
    out: list[Block] = []
    last_end, last_was_python = None, False
    for m in FENCE.finditer(text):
        lang, body = m.group(1), m.group(2)
        line = text.count("\n", 0, m.start()) + 1
        if lang == "python":
            out.append(Block(body, line))
        elif lang == "text" and out and last_end is not None and not text[last_end:m.start()].strip() \
                and out[-1].output is None and last_was_python:
            out[-1].output, out[-1].output_span = body, m.span(2)
        last_end, last_was_python = m.end(), lang == "python"
    return out


def test_guide_blocks_are_found():
    """The guide walks the whole workflow: each step is a block with shown output."""
    found = blocks(GUIDE.read_text(encoding="utf-8"))
    assert len(found) >= 10 and sum(b.output is not None for b in found) >= 9
    text = GUIDE.read_text(encoding="utf-8")
    for task in ("almaquery", "almafetch", "calversion", "calunflag", "wtcheck", "frameconv", "tbconv", "cl2image",
                 "calflux"):
        assert f"{task}(" in text, task


def test_guide_runs_and_shows_what_it_prints(archive, tmp_path, monkeypatch):
    monkeypatch.setenv("ALMATOOLS_ARCHIVE_URL", archive.url)
    monkeypatch.chdir(tmp_path)
    text = GUIDE.read_text(encoding="utf-8")
    update = bool(os.environ.get("ALMATOOLS_UPDATE_GUIDE"))
    namespace = {"__name__": "__guide__"}
    replacements, failures = [], []
    for block in blocks(text):
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(compile(block.code, f"{GUIDE}:{block.line}", "exec"), namespace)  # noqa: S102 — the guide's own code
        got = printed.getvalue()
        if block.output is None:
            continue
        if got != block.output:
            if update:
                replacements.append((block.output_span, got))
            else:
                diff = "".join(difflib.unified_diff(block.output.splitlines(True), got.splitlines(True),
                                                    "shown in the guide", "printed now"))
                failures.append(f"docs/guide.md:{block.line}: the output differs\n{diff}")
    images = IMAGE.findall(text)
    assert images, "the guide shows no pictures"
    for rel in images:
        made = tmp_path / rel
        assert made.is_file() and made.stat().st_size > 5000, f"{rel} was not written by the guide's blocks"
        if update:
            (GUIDE.parent / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(made, GUIDE.parent / rel)
        assert (GUIDE.parent / rel).is_file(), f"docs/{rel} is not committed"
    if update and replacements:
        for (start, end), new in sorted(replacements, reverse=True):
            text = text[:start] + new + text[end:]
        GUIDE.write_text(text, encoding="utf-8")
    assert not failures, "\n\n".join(failures)


@pytest.mark.parametrize("text, expected", [
    ("```python\nprint(1)\n```\n\n```text\n1\n```\n", [("print(1)\n", "1\n")]),
    ("```python\na = 1\n```\nprose\n```text\nnot output\n```\n", [("a = 1\n", None)]),
    ("```bash\nls\n```\n```text\nx\n```\n```python\nb = 2\n```\n", [("b = 2\n", None)]),
])
def test_output_blocks_belong_to_the_python_block_right_before_them(text, expected):
    assert [(b.code, b.output) for b in blocks(text)] == expected
