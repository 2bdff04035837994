"""Every relative link in README.md and docs/*.md resolves (files and #anchors), and the pages speak to users."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import REPO

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
IDS = [str(p.relative_to(REPO)) for p in PAGES]

LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.DOTALL | re.MULTILINE)
CODE = re.compile(r"`[^`\n]*`")


def _prose(text: str) -> str:
    """The page without fenced code blocks and inline code, where `[x](y)` is not a link."""
    return CODE.sub("", FENCE.sub("", text))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped (but - and _), spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip())  # a link in a heading keeps its text
    text = text.lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every anchor GitHub makes for the headings of a markdown page (repeats get -1, -2, ...)."""
    seen: dict[str, int] = {}
    out = set()
    for line in FENCE.sub("", path.read_text()).splitlines():
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        base = slug(m.group(1))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def links(path: Path) -> list[str]:
    return [m.group(1) for m in LINK.finditer(_prose(path.read_text()))]


def test_slug_matches_github():
    assert slug("`sketchprep validate DATA.npz`") == "sketchprep-validate-datanpz"
    assert slug("What a run folder holds; resume; several processes") == "what-a-run-folder-holds-resume-several-processes"
    assert slug("`sketchprep train DATA.npz... --out RUN`") == "sketchprep-train-datanpz---out-run"
    assert slug("RDP: `line` or `segment`") == "rdp-line-or-segment"


def test_there_are_pages_with_links():
    assert len(PAGES) >= 8
    assert sum(len(links(p)) for p in PAGES) > 30


@pytest.mark.parametrize("page", PAGES, ids=IDS)
def test_relative_links_resolve(page):
    broken = []
    for target in links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        dest = (page.parent / file_part).resolve() if file_part else page
        if not dest.exists():
            broken.append(f"{target}: no file {dest}")
            continue
        if not dest.resolve().is_relative_to(REPO):
            broken.append(f"{target}: points outside the repository")
            continue
        if anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target}: no heading with anchor #{anchor} in {dest.relative_to(REPO)}")
    assert not broken, f"{page.relative_to(REPO)}: broken links:\n" + "\n".join(broken)


# Words that belong to how the project is built, not to how the tool is used.
INTERNAL = [
    r"\.\./shared", r"/work/", r"\bthe issue'?s?\b", r"\bissue \d+", r"\bengineers?\b", r"\bthe team\b",
    r"\bgoal\b", r"\bnot reached\b", r"\bTODO\b", r"\bFIXME\b", r"\bthis project's\b",
]


@pytest.mark.parametrize("page", PAGES, ids=IDS)
def test_pages_speak_to_users(page):
    text = page.read_text()
    found = []
    for i, line in enumerate(text.splitlines(), 1):
        for word in INTERNAL:
            if re.search(word, line, re.IGNORECASE):
                found.append(f"{page.relative_to(REPO)}:{i}: {word!r}: {line.strip()[:100]}")
    assert not found, "text about files outside the repository or the project's own process:\n" + "\n".join(found)


def test_readme_is_a_landing_page():
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines; move reference material into docs/"
    readme_links = {t.split("#")[0] for t in links(REPO / "README.md")}
    missing = [p.name for p in PAGES[1:] if f"docs/{p.name}" not in readme_links]
    assert not missing, f"README.md does not link these docs pages: {missing}"
