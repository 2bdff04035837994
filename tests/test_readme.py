"""The README opens with exactly two set-up commands (CI runs the second verbatim), and every
`sketchprep` line in the README and docs/ is a real command with real options."""
import re
import shlex

import click
import pytest
from conftest import REPO

from sketchprep.cli import main


def setup_commands():
    text = (REPO / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", text, re.DOTALL).group(1)
    return [ln for ln in block.splitlines() if ln.strip() and not ln.startswith("#")]


def test_readme_opens_with_two_commands():
    commands = setup_commands()
    assert len(commands) == 2
    main_job, tests = commands
    assert "pip install -q -e '.[train]'" in main_job and "sketchprep pipeline run pipelines/quickstart.toml" in main_job
    assert "pytest" in tests


def test_ci_runs_the_readme_test_command():
    ci = (REPO / ".ci" / "run").read_text()
    assert setup_commands()[1] in ci.splitlines()


# Every `sketchprep ...` line in a code block of README.md or docs/*.md names a real command and only
# options that command has, so the examples cannot drift from the CLI.
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SHELL_OPS = {"|", "||", "&", "&&", ";", ">", ">>", "<", "2>", "2>&1"}


def command_lines(page):
    """(line number, tokens after `sketchprep`) for each sketchprep call in the page's bash blocks."""
    text = page.read_text()
    out = []
    for block in re.finditer(r"```(?:bash|sh|console)?\n(.*?)```", text, re.DOTALL):
        number = text[:block.start(1)].count("\n")
        pending, start = "", None
        for line in block.group(1).splitlines():
            number += 1
            start = start or number
            if line.endswith("\\"):  # a continued line: join it with the next
                pending += line[:-1] + " "
                continue
            line, pending = pending + line, ""
            if line.lstrip().startswith("$ "):
                line = line.lstrip()[2:]
            try:
                tokens = shlex.split(line, comments=True)
            except ValueError:
                tokens = []
            for at, token in enumerate(tokens):
                if token == "sketchprep" and (at == 0 or tokens[at - 1] in SHELL_OPS | {"-m", "do", "then"}):
                    rest = tokens[at + 1:]
                    end = next((k for k, t in enumerate(rest) if t in SHELL_OPS), len(rest))
                    out.append((start, rest[:end]))
            start = None
    return out


def check(tokens):
    """None when the call is valid as far as names go, else what is wrong."""
    cmd, path = main, []
    while isinstance(cmd, click.Group):
        if not tokens or tokens[0].startswith("-"):
            return None if not tokens or tokens[0] in ("--help", "-h", "--version") else f"no command after {path}"
        name, tokens = tokens[0], tokens[1:]
        if name not in cmd.commands:
            return f"no command `sketchprep {' '.join(path + [name])}`"
        cmd, path = cmd.commands[name], path + [name]
    known = {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)} | {"--help", "-h"}
    for token in tokens:
        if token.startswith("-") and token != "-" and not re.match(r"^-\d", token):
            name = token.split("=")[0]
            if name not in known:
                return f"`sketchprep {' '.join(path)}` has no option {name}"
    return None


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_documented_command_lines_use_real_commands_and_options(page):
    calls = command_lines(page)
    wrong = [f"{page.name}:{n}: {why}" for n, tokens in calls if (why := check(tokens))]
    assert not wrong, "\n".join(wrong)


def test_the_check_catches_a_wrong_line():
    assert check(["convert", "a", "b.npz", "--epsilon", "2"]) is None
    assert check(["convert", "a", "b.npz", "--no-such-option"]) is not None
    assert check(["no-such-command"]) is not None
    assert sum(len(command_lines(p)) for p in PAGES) > 40
