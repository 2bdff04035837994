"""Outputs that must not be written, and runs that must not write: nothing is lost.

Every case runs `python -m sketchprep` in a subprocess (tests/hostile.py): one `Error:` line, the exit code,
bounded time and memory, no file changed but those the case may write, and nothing left behind.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from hostile import ROOT, run_case, run_sketchprep

from sketchprep.dataset import load_dataset

SVG = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10"><path d="M1 1 L9 9 L1 9" stroke="black"/></svg>'
PREVIOUS = b"a good dataset from an earlier run"


def _lines(n: int, word: str = "cat", start: int = 0) -> list[str]:
    return [json.dumps({"word": word, "key_id": f"{word}-{i}", "recognized": True,
                        "drawing": [[[0, 10 + i, 20 + i % 7], [0, 5, 10 + i % 3]]]}) for i in range(start, start + n)]


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "cat.ndjson").write_text("\n".join(_lines(25)) + "\n")
    (tmp_path / "x.svg").write_text(SVG)
    (tmp_path / "out.npz").write_bytes(PREVIOUS)
    return tmp_path


# ---------------------------------------------------------------------------------------------------
# OUT refused before anything is read


def test_convert_out_that_is_an_input_hard_link(folder):
    os.link(folder / "cat.ndjson", folder / "cat-link.npz")
    run_case(folder, ["convert", "cat.ndjson", "cat-link.npz", "--multiple", "1"], message="is also an input")


def test_convert_out_that_is_an_input_through_a_symlink(folder):
    (folder / "alias.npz").symlink_to(folder / "cat.ndjson")
    run_case(folder, ["convert", "cat.ndjson", "alias.npz", "--multiple", "1"], message="would destroy that input")


def test_convert_out_that_is_an_existing_folder(folder):
    (folder / "d.npz").mkdir()
    (folder / "d.npz" / "keep.txt").write_text("keep")
    run_case(folder, ["convert", "cat.ndjson", "d.npz", "--multiple", "1"], message="is a folder")


def test_convert_out_under_a_regular_file(folder):
    run_case(folder, ["convert", "cat.ndjson", "cat.ndjson/out.npz", "--multiple", "1"], message="not a folder")


def test_convert_out_in_a_missing_folder(folder):
    run_case(folder, ["convert", "cat.ndjson", "no/such/folder/out.npz", "--multiple", "1"],
             message="does not exist. Create it first")


def test_convert_out_name_too_long(folder):
    run_case(folder, ["convert", "cat.ndjson", "a" * 300 + ".npz", "--multiple", "1"], message="Use a shorter file name")


def test_convert_out_where_nothing_can_be_created(folder):
    run_case(folder, ["convert", "cat.ndjson", "/proc/out.npz", "--multiple", "1"], message="cannot write in /proc")


def test_convert_out_in_a_read_only_folder(folder):
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders; the ENOTDIR, /proc and /sys cases cover refusal as root")
    ro = folder / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        run_case(folder, ["convert", "cat.ndjson", "ro/out.npz", "--multiple", "1"], message="cannot write in")
    finally:
        ro.chmod(0o755)


def test_convert_out_in_a_folder_root_cannot_write(folder):
    if not os.path.isdir("/sys/kernel"):
        pytest.skip("no /sys")
    run_case(folder, ["convert", "cat.ndjson", "/sys/kernel/out.npz", "--multiple", "1"], message="cannot write in")


def test_convert_by_word_dir_that_is_a_file(folder):
    run_case(folder, ["convert", "cat.ndjson", "--by-word", "out.npz", "--multiple", "1"], rc=2, message="is a file")


def test_convert_by_word_dir_in_a_missing_folder(folder):
    run_case(folder, ["convert", "cat.ndjson", "--by-word", "a/b/c", "--multiple", "1"], message="does not exist")


def test_render_over_its_own_input(folder):
    run_case(folder, ["render", "x.svg", "-o", "x.svg"], message="is also an input")


def test_stats_plot_over_its_own_input(folder):
    run_case(folder, ["stats", "x.svg", "--plot", "x.svg"], message="would destroy that input")


def test_render_into_the_folder_it_reads(folder):
    (folder / "svgs").mkdir()
    (folder / "svgs" / "a.svg").write_text(SVG)
    run_case(folder, ["render", "svgs", "-o", "svgs/grid.svg"], message="would read it as a drawing next time")


def test_render_to_a_missing_folder(folder):
    run_case(folder, ["render", "x.svg", "-o", "missing/grid.png"], message="does not exist")


def test_render_name_too_long(folder):
    run_case(folder, ["render", "x.svg", "-o", "g" * 260 + ".svg"], message="shorter file name")


def test_sample_to_a_missing_folder_is_refused_before_the_model_loads(folder):
    (folder / "run").mkdir()  # not even a run: the output is checked first
    run_case(folder, ["sample", "run", "-o", "nofolder/s.png"], message="does not exist")


def test_interpolate_over_one_of_its_drawings(folder):
    (folder / "run").mkdir()
    run_case(folder, ["interpolate", "run", "x.svg", "x.svg", "-o", "x.svg"], message="is also an input")


def test_merge_out_that_is_one_of_its_shards(folder):
    for i in range(2):
        run_case(folder, ["convert", "cat.ndjson", f"s-{i}.npz", "--shard", f"{i}/2", "-q", "--multiple", "1"], rc=0,
                 creates=(f"s-{i}.npz",))
    run_case(folder, ["merge", "s-0.npz", "s-1.npz", "s-1.npz"], message="is also an input")


def test_merge_out_that_is_a_folder(folder):
    run_case(folder, ["convert", "cat.ndjson", "s.npz", "--shard", "0/1", "-q", "--multiple", "1"], rc=0,
             creates=("s.npz",))
    (folder / "m.npz").mkdir()
    run_case(folder, ["merge", "s.npz", "m.npz"], message="is a folder")


# ---------------------------------------------------------------------------------------------------
# Runs that keep nothing, or too little for the split: exit 1, OUT as it was


@pytest.mark.parametrize("name,content", [
    ("utf16.ndjson", "\n".join(_lines(5)).encode("utf-16")),
    ("garbage.ndjson", bytes(range(256)) * 64),
    ("empty.ndjson", b""),
    ("bad.ndjson", b'{\n[1, 2]\n{"drawing": 5}\n{"drawing": [[[1], [2, 3]]]}\n'),
    ("blank.svg", b'<svg xmlns="http://www.w3.org/2000/svg"><text>hi</text></svg>'),
])
def test_nothing_usable_leaves_out_intact(folder, name, content):
    (folder / name).write_bytes(content)
    outcome = run_case(folder, ["convert", name, "out.npz", "--multiple", "1"], message="nothing was written")
    assert any(w in outcome.stderr for w in ("kept none", "could not read 1 file", "found no drawings"))
    assert (folder / "out.npz").read_bytes() == PREVIOUS


def test_every_drawing_too_long_names_max_len(folder):
    run_case(folder, ["convert", "cat.ndjson", "out.npz", "--max-len", "1", "--multiple", "1"],
             message="Raise --max-len")


def test_every_drawing_of_another_word(folder):
    run_case(folder, ["convert", "cat.ndjson", "out.npz", "--word", "dog", "--multiple", "1"],
             message="Check --word")


def test_empty_stdin(folder):
    run_case(folder, ["convert", "-", "out.npz"], stdin=b"", message="found no drawings")


def test_25_drawings_with_the_defaults_exit_1_and_name_the_fix(folder):
    outcome = run_case(folder, ["convert", "cat.ndjson", "new.npz"], message="--multiple 1 (keeps all 25")
    assert "25 drawings kept" in outcome.stderr and "2000 in all" in outcome.stderr
    assert not (folder / "new.npz").exists()
    run_case(folder, ["convert", "cat.ndjson", "new.npz", "--multiple", "1"], rc=0, creates=("new.npz",))
    data = load_dataset(folder / "new.npz")
    assert [len(data.splits[s]) for s in ("train", "valid", "test")] == [23, 1, 1]


def test_counts_that_ask_for_more_than_there_is(folder):
    outcome = run_case(folder, ["convert", "cat.ndjson", "out.npz", "--split", "70000/2500/2500"],
                       message="asks for 2500 valid + 2500 test drawings")
    assert "--split 23/1/1 --multiple 1" in outcome.stderr or "--multiple 1" in outcome.stderr


def test_counts_that_are_not_multiples_are_a_usage_error_before_reading(folder):
    run_case(folder, ["convert", "missing.ndjson", "out.npz", "--split", "7050/250/250"], rc=2,
             message="must be multiples of --multiple 100")


def test_too_few_drawings_for_one_word_writes_no_word(folder):
    (folder / "two.ndjson").write_text("\n".join(_lines(40, "cat") + _lines(3, "dog")) + "\n")
    (folder / "per").mkdir()
    (folder / "per" / "cat.npz").write_bytes(PREVIOUS)
    run_case(folder, ["convert", "two.ndjson", "--by-word", "per", "--split", "0.8/0.1/0.1", "--multiple", "2"],
             message="of word 'dog'")
    assert (folder / "per" / "cat.npz").read_bytes() == PREVIOUS


# ---------------------------------------------------------------------------------------------------
# --by-word: every word gets its own file


COLLIDING = ["a/b", "a_b", "a\\b", "", ".", "..", "unnamed", "Cat", "cat", "w" * 300, "con", "日本", "a_b-x"]


def test_by_word_names_that_collide_all_survive(folder):
    lines = [line for k, w in enumerate(COLLIDING) for line in _lines(3, w, start=10 * k)]
    (folder / "words.ndjson").write_text("\n".join(lines) + "\n")
    outcome = run_case(folder, ["convert", "words.ndjson", "--by-word", "per", "--split", "1/0/0", "--multiple", "1"],
                       rc=0, creates=tuple(f"per/{n}" for n in _names(COLLIDING)))
    files = sorted(os.listdir(folder / "per"))
    assert len(files) == len(COLLIDING) == len({f.casefold() for f in files})
    assert all(len(f.encode()) < 200 and not f.startswith(".") for f in files)
    words = {}
    for f in files:
        meta = load_dataset(folder / "per" / f).meta
        assert meta["file"] == f
        words[meta["word"]] = f
        assert len(load_dataset(folder / "per" / f).splits["train"]) == 3
    assert sorted(words) == sorted(COLLIDING)
    assert words["cat"] != words["Cat"] and words["a/b"] != words["a_b"] != words["a\\b"]
    renamed = load_dataset(folder / "per" / words["a/b"]).meta["renamed_words"]
    assert renamed["a/b"] == words["a/b"] and "a_b" not in renamed
    assert "'a/b' -> " + words["a/b"] in outcome.stdout


def _names(words):
    from sketchprep.convert import word_filenames

    return word_filenames(words).values()


def test_by_word_into_an_existing_folder_keeps_other_files(folder):
    (folder / "per").mkdir()
    (folder / "per" / "other.npz").write_bytes(PREVIOUS)
    (folder / "per" / "cat.npz").write_bytes(PREVIOUS)
    run_case(folder, ["convert", "cat.ndjson", "--by-word", "per", "--multiple", "1", "-q"], rc=0,
             creates=("per/cat.npz",))
    assert (folder / "per" / "other.npz").read_bytes() == PREVIOUS
    assert len(load_dataset(folder / "per" / "cat.npz").splits["train"]) == 23


def test_by_word_write_that_fails_half_way_leaves_the_folder_as_it_was(tmp_path, monkeypatch):
    """The third word's file fails to write: no word is written, the temporary folder is gone."""
    from sketchprep.convert import ConvertOptions, collect, write_outputs
    from sketchprep.convert import write as write_module

    src = tmp_path / "in.ndjson"
    src.write_text("\n".join(_lines(5, "ant") + _lines(5, "bee") + _lines(5, "cow")) + "\n")
    per = tmp_path / "per"
    per.mkdir()
    (per / "ant.npz").write_bytes(PREVIOUS)
    real_write, calls = write_module.write_file, []

    def failing_write(f, *args, **kwargs):
        calls.append(f)
        if len(calls) == 3:
            raise OSError(28, "No space left on device", f.name)
        return real_write(f, *args, **kwargs)

    monkeypatch.setattr(write_module, "write_file", failing_write)
    opts = ConvertOptions(split=(1, 0, 0), multiple=1)  # one worker: the words are written in this process
    with pytest.raises(OSError):
        write_outputs(collect([str(src)], opts), opts, by_word=str(per))
    assert len(calls) == 3
    assert sorted(os.listdir(tmp_path)) == ["in.ndjson", "per"]
    assert sorted(os.listdir(per)) == ["ant.npz"] and (per / "ant.npz").read_bytes() == PREVIOUS


# ---------------------------------------------------------------------------------------------------
# Writing to a full disk


def test_summary_to_a_full_stdout(folder):
    """stdout on a full device (/dev/full): the dataset is written, the summary fails with one Error line."""
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    with open("/dev/full", "w") as full:
        proc = subprocess.run([sys.executable, "-m", "sketchprep", "convert", "cat.ndjson", "new.npz", "--multiple", "1"],
                              check=False, cwd=folder, stdout=full, stderr=subprocess.PIPE, timeout=30,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    err = proc.stderr.decode()
    assert proc.returncode == 1 and "Traceback" not in err, err
    assert [line for line in err.splitlines() if line.startswith("Error:")] and "No space left" in err
    assert len(load_dataset(folder / "new.npz").splits["train"]) == 23


def test_out_on_a_full_file_system(tmp_path):
    """A tiny tmpfs fills up while OUT is written: one Error line, the previous OUT intact, no temporary file."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)],
                                           check=False, capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root and mount rights)")
    try:
        (mnt / "out.npz").write_bytes(PREVIOUS)
        rng = np.random.default_rng(0)
        lines = [json.dumps({"word": "cat", "key_id": str(i), "drawing": [[rng.integers(0, 255, 60).tolist(),
                                                                             rng.integers(0, 255, 60).tolist()]]})
                 for i in range(2000)]
        (tmp_path / "in.ndjson").write_text("\n".join(lines) + "\n")
        outcome = run_sketchprep(["convert", "in.ndjson", str(mnt / "out.npz"), "--multiple", "1"], tmp_path)
        assert outcome.rc == 1 and "Traceback" not in outcome.stderr, outcome.stderr
        assert len(outcome.error_lines) == 1 and "No space left" in outcome.stderr
        assert os.listdir(mnt) == ["out.npz"] and (mnt / "out.npz").read_bytes() == PREVIOUS
    finally:
        subprocess.run(["umount", str(mnt)], check=False, capture_output=True)


# ---------------------------------------------------------------------------------------------------
# pipeline run replaces only what it made, and a recipe writes only inside its own folder


def _recipe(folder, extra: str = "", name: str = "r.toml", top: str = ""):
    (folder / name).write_text(f'{top}[convert]\ninputs = ["cat.ndjson"]\nmultiple = 1\n{extra}')
    return name


@pytest.mark.parametrize("theirs,table", [
    ("o/run/latest.pt", "[train]\nmax_steps = 1\n"),   # a run trained by hand: --overwrite would have removed it
    ("o/report.md", ""),
    ("o/dataset.npz", ""),
    ("o/convert.txt", ""),
    ("o/grid.png", "[render]\n"),
    ("o/samples.png", "[train]\nmax_steps = 1\n[sample]\n"),
])
def test_pipeline_never_replaces_what_it_did_not_make(folder, theirs, table):
    (folder / theirs).parent.mkdir(parents=True, exist_ok=True)
    (folder / theirs).write_bytes(PREVIOUS)
    named = "/".join(theirs.split("/")[:2])  # o/run: the whole run folder is the step's output
    run_case(folder, ["pipeline", "run", _recipe(folder, table), "--out", "o"],
             message=f"Error: {named} exists and this pipeline did not make it", max_seconds=20)
    assert (folder / theirs).read_bytes() == PREVIOUS


def test_pipeline_replaces_what_it_made_and_what_an_older_state_lists(folder):
    recipe = _recipe(folder, "[stats]\n")
    made = ("o/dataset.npz", "o/convert.txt", "o/stats.txt", "o/report.md", "o/.pipeline-state.json")
    run_case(folder, ["pipeline", "run", recipe, "--out", "o"], rc=0, creates=made, max_seconds=30)
    run_case(folder, ["pipeline", "run", recipe, "--out", "o", "--force"], rc=0, creates=made, max_seconds=30)
    state = json.loads((folder / "o/.pipeline-state.json").read_text())
    assert state["made"] == ["convert.txt", "dataset.npz", "report.md", "stats.txt"]
    del state["made"]  # as a state written before the list was kept: its steps' outputs are the pipeline's
    (folder / "o/.pipeline-state.json").write_text(json.dumps(state))
    run_case(folder, ["pipeline", "run", recipe, "--out", "o", "--force"], rc=0, creates=made, max_seconds=30)


@pytest.mark.parametrize("output", ["../x", "../../x", "/tmp/elsewhere", "~/x", "a/../../x", ""])
def test_a_recipe_output_outside_its_folder_is_refused(folder, output):
    (folder / "recipes").mkdir()
    name = _recipe(folder / "recipes", top=f'output = "{output}"\n')
    run_case(folder, ["pipeline", "run", f"recipes/{name}"], message="is not a folder inside the recipe's folder")


def test_a_recipe_output_inside_its_folder(folder):
    (folder / "recipes").mkdir()
    (folder / "recipes" / "cat.ndjson").write_bytes((folder / "cat.ndjson").read_bytes())
    (folder / "recipes" / "r.toml").write_text('output = "results/./cat"\n[convert]\ninputs = ["cat.ndjson"]\n'
                                               'multiple = 1\n')
    run_case(folder, ["pipeline", "run", "recipes/r.toml"], rc=0, max_seconds=30,
             creates=tuple(f"recipes/results/cat/{n}" for n in ("dataset.npz", "convert.txt", "report.md",
                                                                 ".pipeline-state.json")))


def test_two_pipelines_on_one_folder(folder):
    """A second `pipeline run` into a folder another one holds is refused, naming the holder's PID."""
    from sketchprep.outputs import folder_lock

    (folder / "o").mkdir()
    code = ("import sys, time\nfrom sketchprep.outputs import folder_lock\n"
            "with folder_lock(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(120)\n")
    holder = subprocess.Popen([sys.executable, "-c", code, str(folder / "o")], stdout=subprocess.PIPE,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert holder.stdout.readline() == b"held\n"
        run_case(folder, ["pipeline", "run", _recipe(folder), "--out", "o"],
                 message=f"o: this pipeline output folder is in use by another sketchprep process (PID {holder.pid})",
                 creates=("o/.sketchprep.lock",), max_seconds=20)
    finally:
        holder.kill()
        holder.wait()
    with folder_lock(folder / "o"):
        pass
