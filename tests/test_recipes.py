"""Every shipped recipe runs against the real data in ../shared/data, and a second run skips every step."""
import os

import pytest
from click.testing import CliRunner

from conftest import REPO, shared_data
from sketchprep.cli import main


def run(recipe, out, *args):
    result = CliRunner().invoke(main, ["pipeline", "run", str(REPO / "pipelines" / recipe), "--out", str(out), *args])
    assert result.exit_code == 0, result.output
    return result.output


def subset(tmp_path, folder, n, pattern="*.svg"):
    """A folder of links to n files of a corpus (the whole corpus is slow for a unit test)."""
    dest = tmp_path / f"{folder}_subset"
    dest.mkdir()
    for f in sorted(shared_data(folder).glob(pattern))[:n]:
        os.symlink(f, dest / f.name)
    return dest


SMALL = ["--set", "convert.multiple=1", "--set", "validate.batch_size=1"]


@pytest.mark.parametrize("recipe,make_input,extra", [
    ("svg-folder.toml", lambda t: shared_data("tabler_icons_svg"), []),
    ("kanjivg.toml", lambda t: subset(t, "kanjivg_svg", 150), ["--set", "convert.split=100/20/20", *SMALL]),
    ("quickdraw.toml", lambda t: subset(t, "quickdraw_raw_ndjson", 3, "*.ndjson"),
     ["--set", "convert.split=0.6/0.2/0.2", *SMALL]),
])
def test_recipe_runs_on_real_data_and_then_skips(tmp_path, recipe, make_input, extra):
    out = tmp_path / "out"
    inputs = ["--input", str(make_input(tmp_path))]
    first = run(recipe, out, *inputs, *extra)
    assert "failed" not in first and " ran " in first
    report = (out / "report.md").read_text()
    assert "| convert | ran |" in report and "| validate | ran |" in report
    assert "OK: 0 error(s)" in (out / "validate.txt").read_text()
    second = run(recipe, out, *inputs, *extra)
    assert " ran " not in second and second.count("skipped") == first.count(" ran ")
    pictures = list(out.rglob("*.png"))
    assert pictures and all(p.stat().st_size > 1000 for p in pictures)


def test_quickstart_recipe_runs_end_to_end_and_then_skips(tmp_path):
    """The README's main job, with a shorter training run."""
    out = tmp_path / "quickstart"
    short = ["--set", "train.max_steps=20", "--set", "sample.n=4"]
    first = run("quickstart.toml", out, *short)
    assert first.count(" ran ") == 6 and "failed" not in first
    for name in ("dataset.npz", "grid.png", "samples.png", "run/best.pt", "run/latest.pt", "report.md"):
        assert (out / name).exists(), name
    assert "| sample | ran |" in (out / "report.md").read_text()
    second = run("quickstart.toml", out, *short)
    assert second.count("skipped") == 6
    third = run("quickstart.toml", out, *short[:1], "train.max_steps=10", *short[2:])  # training changed
    assert third.count("skipped") == 4 and "train     ran" in third and "sample    ran" in third
