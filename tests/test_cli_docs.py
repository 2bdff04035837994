"""Every command (including ones added later) has --help with an example and is documented in README.md."""
from __future__ import annotations

import re

import click
import pytest
from click.testing import CliRunner

from sketchprep.cli import main

from conftest import REPO

INSPECT_COMMANDS = ("validate", "stats", "render")


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


def _commands_section() -> str:
    text = (REPO / "README.md").read_text()
    match = re.search(r"^## Commands\n(.*?)^## ", text, re.S | re.M)
    assert match, "README.md has no '## Commands' section followed by another '## ' section"
    return match.group(1)


def _section_of(command: str) -> str:
    """The README subsection whose heading names `sketchprep COMMAND`."""
    parts = re.split(r"^### ", _commands_section(), flags=re.M)
    for part in parts[1:]:
        heading = part.splitlines()[0]
        if re.search(rf"`sketchprep {re.escape(command)}\b", heading):
            return part
    raise AssertionError(f"no '### `sketchprep {command} ...`' subsection in README.md's Commands section")


def test_the_group_lists_commands():
    assert {"convert", *INSPECT_COMMANDS} <= set(IDS)


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS], ids=IDS)
def test_help_has_an_example(path):
    result = CliRunner().invoke(main, [*path, "--help"])
    assert result.exit_code == 0, result.output
    heading = re.search(r"^\s*Examples?\b.*:$", result.output, re.M)
    assert heading, f"`sketchprep {' '.join(path)} --help` has no 'Example:' paragraph"
    after = result.output[heading.end():].split("Options:")[0]
    assert f"sketchprep {' '.join(path)} " in after, f"the example does not run `sketchprep {' '.join(path)}`"


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS], ids=IDS)
def test_command_appears_in_the_readme(path):
    assert f"sketchprep {' '.join(path)}" in _commands_section(), \
        f"README.md's Commands section never mentions `sketchprep {' '.join(path)}`"


@pytest.mark.parametrize("name", INSPECT_COMMANDS)
def test_every_inspect_option_is_documented_in_its_section(name):
    section = _section_of(name)
    for param in main.commands[name].params:
        if isinstance(param, click.Option) and "--help" not in param.opts:
            long = max(param.opts, key=len)
            assert long in section, f"README's `sketchprep {name}` section does not document {long}"
    assert "```bash\nsketchprep " + name in section  # a worked example
