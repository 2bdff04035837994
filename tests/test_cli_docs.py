"""Every command (including ones added later) has --help with an example that fits 80 columns, and every
option is documented in docs/commands.md or the docs page that section points to."""
from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from conftest import REPO

from sketchprep.cli import main

DOCS = REPO / "docs"
COMMANDS_PAGE = DOCS / "commands.md"
FENCE = re.compile(r"^(```|~~~).*?^\1", re.DOTALL | re.MULTILINE)
LINK = re.compile(r"\]\(([^)#\s]+\.md)(?:#[^)\s]*)?\)")


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], click.Command]]:
    """(path, command) for every leaf command under `group`, e.g. (("pipeline", "run"), cmd)."""
    out = []
    for name, cmd in sorted(group.commands.items()):
        if isinstance(cmd, click.Group):
            out += _commands(cmd, prefix + (name,))
        else:
            out.append((prefix + (name,), cmd))
    return out


COMMANDS = _commands(main)
IDS = [" ".join(path) for path, _ in COMMANDS]
GROUPS = [()] + [p for p, c in [((n,), c) for n, c in main.commands.items()] if isinstance(c, click.Group)]


def _sections(page: Path) -> list[tuple[str, str]]:
    """(heading, text up to the next heading of the same or a higher level) for every heading of a page."""
    text = page.read_text()
    code_free = FENCE.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)  # '#' lines in code are not headings
    heads = [(m.start(), len(m.group(1)), m.group(2)) for m in re.finditer(r"^(#{1,6})\s+(.*)$", code_free, re.MULTILINE)]
    out = []
    for i, (start, level, heading) in enumerate(heads):
        end = next((s for s, lv, _ in heads[i + 1:] if lv <= level), len(text))
        out.append((heading, text[start:end]))
    return out


def documentation_of(path: tuple[str, ...]) -> tuple[Path, str] | None:
    """Where `sketchprep PATH` is documented: its section of docs/commands.md (else the first docs page with
    one), and the text of every docs section whose heading names the command, plus the docs pages those
    sections link to."""
    name = re.escape("sketchprep " + " ".join(path))
    pages = [COMMANDS_PAGE] + sorted(p for p in DOCS.glob("*.md") if p != COMMANDS_PAGE)
    found, text = None, ""
    for page in pages:
        for heading, section in _sections(page):
            if re.search(rf"`{name}(?=[\s`])", heading):
                found = found or page
                linked = {(page.parent / t).resolve() for t in LINK.findall(section)}
                text += section + "".join(p.read_text() for p in sorted(linked) if p.exists() and p.parent == DOCS)
    return (found, text) if found else None


def test_the_group_lists_commands():
    assert {"convert", "validate", "stats", "render", "train", "sample"} <= set(IDS)


def test_documentation_of_finds_sections():
    page, text = documentation_of(("validate",))
    assert page == COMMANDS_PAGE and "--batch-size" in text and "--epsilon E" not in text.split("## `sketchprep stats")[0]
    assert documentation_of(("no-such-command",)) is None


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS], ids=IDS)
def test_help_has_an_example(path):
    result = CliRunner().invoke(main, [*path, "--help"])
    assert result.exit_code == 0, result.output
    heading = re.search(r"^\s*Examples?\b.*:$", result.output, re.MULTILINE)
    assert heading, f"`sketchprep {' '.join(path)} --help` has no 'Example:' paragraph"
    after = result.output[heading.end():].split("Options:")[0]
    assert f"sketchprep {' '.join(path)} " in after, f"the example does not run `sketchprep {' '.join(path)}`"


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS] + GROUPS,
                         ids=IDS + [" ".join(p) or "sketchprep" for p in GROUPS])
def test_help_fits_80_columns(path):
    result = CliRunner().invoke(main, [*path, "--help"], env={"COLUMNS": "80"}, terminal_width=80)
    assert result.exit_code == 0, result.output
    wide = [f"{len(line)}: {line}" for line in result.output.splitlines() if len(line) > 80]
    assert not wide, f"`sketchprep {' '.join(path)} --help` has lines over 80 columns:\n" + "\n".join(wide)


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS], ids=IDS)
def test_every_option_is_documented(path):
    where = documentation_of(path)
    assert where, (f"`sketchprep {' '.join(path)}` has no section in docs/commands.md: add a heading "
                   f"'## `sketchprep {' '.join(path)} ...`' that documents every option (or links the page that does)")
    page, text = where
    cmd = dict(COMMANDS)[path]
    missing = [max(p.opts, key=len) for p in cmd.params
               if isinstance(p, click.Option) and "--help" not in p.opts and not p.hidden
               and max(p.opts, key=len) not in text]
    assert not missing, (f"the `sketchprep {' '.join(path)}` section of {page.relative_to(REPO)} "
                         f"(and the pages it links) does not mention {', '.join(missing)}")
    assert re.search(rf"```(bash)?\n(.*\n)*?\s*sketchprep {re.escape(' '.join(path))}\b", text), \
        f"the `sketchprep {' '.join(path)}` section has no worked example in a code block"
