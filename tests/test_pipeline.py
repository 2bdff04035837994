import json
import os
import time

import pytest
from click.testing import CliRunner

from conftest import REPO, SAMPLE
from sketchprep.cli import main
from sketchprep.errors import OptionError
from sketchprep.pipeline import PipelineError, load_recipe, plan

from test_convert import many_lines


def write_recipe(tmp_path, body):
    path = tmp_path / "recipe.toml"
    path.write_text(body)
    return path


def run_pipeline(*args):
    return CliRunner().invoke(main, ["pipeline", "run", *map(str, args)], catch_exceptions=False)


def test_steps_run_then_skip_then_rerun_on_change(tmp_path):
    data = tmp_path / "in.ndjson"
    data.write_text("\n".join(many_lines(250)))
    recipe = write_recipe(tmp_path, f'description = "test"\n[convert]\ninputs = ["{data.name}"]\nmultiple = 10\n')
    out = tmp_path / "out"
    first = run_pipeline(recipe, "--out", out)
    assert first.exit_code == 0, first.output
    assert "convert   ran" in first.output
    summary = (out / "convert.txt").read_text()
    assert "wrote" in summary and "train 230, valid 10, test 10" in summary
    report = (out / "report.md").read_text()
    assert "| convert | ran |" in report and "train 230" in report
    second = run_pipeline(recipe, "--out", out)
    assert "convert   skipped" in second.output
    assert "| convert | skipped |" in (out / "report.md").read_text()
    time.sleep(0.01)
    data.write_text("\n".join(many_lines(300)))  # the input changed: the step runs again
    third = run_pipeline(recipe, "--out", out)
    assert "convert   ran" in third.output and "train 280" in (out / "convert.txt").read_text()
    changed = run_pipeline(recipe, "--out", out, "--set", "convert.epsilon=3")  # an option changed
    assert "convert   ran" in changed.output
    assert "convert   ran" in run_pipeline(recipe, "--out", out, "--set", "convert.epsilon=3", "--force").output


def test_failing_step_stops_with_its_message(tmp_path):
    data = tmp_path / "in.ndjson"
    data.write_text("\n".join(many_lines(50)))
    recipe = write_recipe(tmp_path, f'[convert]\ninputs = ["{data.name}"]\nsplit = "70000/2500/2500"\n')
    result = CliRunner().invoke(main, ["pipeline", "run", str(recipe), "--out", str(tmp_path / "o")])
    assert result.exit_code == 1
    assert "Error: step 'convert' failed: " in result.output and "asks for 2500 valid + 2500 test" in result.output
    assert "**Error:**" in (tmp_path / "o" / "report.md").read_text()
    state = json.loads((tmp_path / "o" / ".pipeline-state.json").read_text())
    assert "convert" not in state  # no fingerprint: the step runs again next time
    assert state["made"] == ["convert.txt", "dataset.npz", "report.md"]  # what this run may replace later


def test_recipe_errors(tmp_path):
    with pytest.raises(PipelineError, match="not valid TOML"):
        load_recipe(write_recipe(tmp_path, "[convert\n"))
    with pytest.raises(PipelineError, match="unknown table"):
        load_recipe(write_recipe(tmp_path, '[convrt]\ninputs = ["x"]\n'))
    with pytest.raises(PipelineError, match="needs \\[convert\\]"):
        load_recipe(write_recipe(tmp_path, "[validate]\n"))
    with pytest.raises(OptionError, match="STEP.OPTION=VALUE"):
        load_recipe(write_recipe(tmp_path, '[convert]\ninputs = ["x"]\n'), sets=["epsilon=3"])


def test_options_and_input_override_become_command_lines(tmp_path):
    recipe = load_recipe(write_recipe(tmp_path, '[convert]\ninputs = ["a"]\nfit = true\nword = ["cat", "dog"]\n'
                                                 'recognized_only = false\nby_word = true\n[validate]\n'),
                         sets=["convert.max_len=200"], inputs=[str(SAMPLE)])
    steps = plan(recipe, tmp_path / "o")
    convert = steps[0].commands[0]
    assert convert[:2] == ["convert", str(SAMPLE)]
    assert convert[2:] == ["--by-word", str(tmp_path / "o" / "datasets"), "--fit", "--word", "cat", "--word", "dog",
                           "--max-len", "200"]
    assert steps[1].commands == [["validate", "{each}"]]
    assert steps[1].each == str(tmp_path / "o" / "datasets" / "*.npz")


@pytest.mark.parametrize("recipe", sorted((REPO / "pipelines").glob("*.toml")), ids=lambda p: p.stem)
def test_shipped_recipes_load(recipe):
    loaded = load_recipe(recipe)
    steps = plan(loaded, REPO / "out" / "x")
    assert steps[0].name == "convert"
    for p in steps[0].inputs:
        assert os.path.isabs(p)
