"""The README and docs/ point only at things the repository holds.

A user of the repository has nothing but its tree: every markdown link and every backticked
path into a source folder must resolve, and no page may send the reader to files outside the
repository. Paths the workflow writes (tables, figures, result folders) are outputs, not
references, and are left out by pattern.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SOURCE_DIRS = (
    "implementations",
    "pipelines",
    "data_prep",
    "reports",
    "containers",
    "tests",
    "docs",
)
# what the workflow writes under a source folder: outputs, not references
OUTPUTS = re.compile(r"^reports/(table\d|fig10|parity\.csv|summary|report\.html)")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s#]+)(?:#[^)]*)?\)")
CODE = re.compile(r"`([^`\s]+)`")


def _links(text: str) -> list[str]:
    return [t for t in LINK.findall(text) if not re.match(r"^[a-z]+://", t)]


def _code_paths(text: str) -> list[str]:
    out = []
    for token in CODE.findall(text):
        token = token.rstrip(".,:;")
        head = token.split("/", 1)[0]
        if head not in SOURCE_DIRS or "/" not in token:
            continue
        if any(c in token for c in "{}*<>|$") or OUTPUTS.match(token):
            continue
        out.append(token.split("::", 1)[0])
    return out


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_link_and_source_path_resolves(page):
    text = page.read_text()
    missing = [t for t in _links(text) if not (page.parent / t).exists()]
    missing += [t for t in _code_paths(text) if not (ROOT / t).exists()]
    assert not missing, f"{page.relative_to(ROOT)} refers to paths the repository lacks: {missing}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_page_points_outside_the_repository(page):
    text = page.read_text()
    outside = re.findall(r"(?<![.\w])\.\./[\w./-]+|shared/spec[\w./-]*", text)
    assert not outside, f"{page.relative_to(ROOT)} points outside the repository: {outside}"


def test_readme_stays_short():
    lines = (ROOT / "README.md").read_text().count("\n")
    assert lines <= 200, f"README.md has {lines} lines; details belong in docs/ (limit 200)"


def test_the_checker_sees_a_missing_path(tmp_path):
    text = "see [x](nope.md) and `implementations/common/nope.py`"
    assert _links(text) == ["nope.md"]
    assert _code_paths(text) == ["implementations/common/nope.py"]
