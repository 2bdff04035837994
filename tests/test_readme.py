"""The README opens with exactly two set-up commands, and CI runs the second one verbatim."""
import re

from conftest import REPO


def setup_commands():
    text = (REPO / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", text, re.S).group(1)
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
