"""Run folders: no command writes inside a run it reads, and `export --html` replaces only its own page."""
import shutil

import pytest

pytest.importorskip("torch")

from hostile import run_case
from test_export_js import browser_run, sample_npz  # noqa: F401  (fixtures)


@pytest.fixture
def folder(tmp_path, browser_run):  # noqa: F811  (fixture)
    shutil.copytree(browser_run, tmp_path / "run")
    return tmp_path


# ---------------------------------------------------------------------------------------------------
# Nothing is written inside a run folder that is an input


@pytest.mark.parametrize("args", [
    ["export", "run", "-o", "run/hparams.json"],                 # a file of the run: it was overwritten before
    ["export", "run", "-o", "run/model.gen.json"],               # a new name: still the run's folder
    ["export", "run/latest.pt", "-o", "run/m.gen.json"],         # the run named by its checkpoint
    ["export", "run", "--html", "run/page"],
    ["export", "run", "--html", "run"],
    ["sample", "run", "-o", "run/samples/step-000040.png"],      # train's own grid
    ["sample", "run/best.pt", "-o", "run/s.npz"],
    ["interpolate", "run", "test:0", "test:1", "-o", "run/m.svg"],
    ["complete", "run", "--prefix", "test:0", "-o", "run/c.png"],
    ["plot", "run", "-o", "run/metrics.png"],
])
def test_outputs_inside_an_input_run_are_refused(folder, args):
    run_case(folder, args, message="is inside the run folder", max_seconds=20)


def test_a_link_into_the_run_is_the_run(folder):
    (folder / "alias").symlink_to(folder / "run")
    run_case(folder, ["export", "run", "-o", "alias/hparams.json"], message="is inside the run folder", max_seconds=20)


def test_plot_still_writes_its_own_curves_into_the_run(folder):
    pytest.importorskip("matplotlib")
    run_case(folder, ["plot", "run"], rc=0, creates=("run/curves.png",), max_seconds=30)


# ---------------------------------------------------------------------------------------------------
# export --html replaces only a page it wrote


@pytest.mark.parametrize("name", ["index.html", "app.js", "model.gen.json", "sketchrnn-lite.js"])
def test_html_never_replaces_a_users_own_files(folder, name):
    (folder / "site").mkdir()
    (folder / "site" / name).write_text("the user's own file")
    run_case(folder, ["export", "run", "--html", "site"], message=f"already holds {name}, and this tool did not "
             "write it", max_seconds=20)


def test_html_replaces_its_own_page_whole(folder):
    run_case(folder, ["export", "run", "--html", "site"], rc=0, max_seconds=30,
             creates=tuple(f"site/{n}" for n in ("index.html", "app.js", "sketchrnn-lite.js", "model.gen.json")))
    (folder / "site" / "notes.txt").write_text("the user's notes beside the page")
    run_case(folder, ["export", "run", "--html", "site", "--name", "again"], rc=0, max_seconds=30,
             creates=tuple(f"site/{n}" for n in ("index.html", "model.gen.json")))
    assert "again" in (folder / "site" / "index.html").read_text()
    assert (folder / "site" / "notes.txt").read_text() == "the user's notes beside the page"
    (folder / "site" / "index.html").write_text("<html>rewritten by the user, marker gone</html>")
    run_case(folder, ["export", "run", "--html", "site"], message="already holds index.html", max_seconds=20)
