"""sketchprep.outputs and --by-word file names, called directly."""
import os
import signal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sketchprep import outputs
from sketchprep.convert import word_filenames
from sketchprep.errors import OutputError, Terminated


@pytest.mark.parametrize("anonymous", [True, False], ids=["O_TMPFILE", "named temporary file"])
def test_atomic_output_replaces_on_success_and_leaves_nothing_on_error(tmp_path, monkeypatch, anonymous):
    if not anonymous:
        monkeypatch.setattr(outputs, "_open_anonymous", lambda folder: None)
    out = tmp_path / "out.npz"
    out.write_bytes(b"old")
    with pytest.raises(RuntimeError), outputs.atomic_output(out) as f:
        f.write(b"half")
        assert len(os.listdir(tmp_path)) == (1 if anonymous else 2)  # an O_TMPFILE file has no name
        raise RuntimeError("disk on fire")
    assert os.listdir(tmp_path) == ["out.npz"] and out.read_bytes() == b"old"
    with outputs.atomic_output(out, "w") as f:
        f.write("new")
    assert os.listdir(tmp_path) == ["out.npz"] and out.read_text() == "new"
    assert out.stat().st_mode & 0o777 == 0o666 & ~outputs._umask()


def test_atomic_output_under_a_long_name(tmp_path):
    """The temporary name stays within NAME_MAX even when the output's own name nearly fills it."""
    out = tmp_path / ("n" * 250 + ".npz")
    with outputs.atomic_output(out) as f:
        f.write(b"x")
    assert out.read_bytes() == b"x"


def test_atomic_folder_new_existing_and_failed(tmp_path):
    target = tmp_path / "per"
    with outputs.atomic_folder(target) as tmp:
        (tmp / "a.npz").write_bytes(b"a1")
    assert sorted(os.listdir(tmp_path)) == ["per"] and os.listdir(target) == ["a.npz"]
    (target / "keep.npz").write_bytes(b"k")
    with outputs.atomic_folder(target) as tmp:
        (tmp / "a.npz").write_bytes(b"a2")
        (tmp / "b.npz").write_bytes(b"b2")
    assert sorted(os.listdir(target)) == ["a.npz", "b.npz", "keep.npz"] and (target / "a.npz").read_bytes() == b"a2"
    with pytest.raises(KeyboardInterrupt), outputs.atomic_folder(target) as tmp:
        (tmp / "a.npz").write_bytes(b"a3")
        raise KeyboardInterrupt
    assert sorted(os.listdir(tmp_path)) == ["per"] and (target / "a.npz").read_bytes() == b"a2"


def test_sigterm_raises_terminated_and_is_restored(tmp_path):
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Terminated) as caught, outputs.sigterm_raises():
        os.kill(os.getpid(), signal.SIGTERM)
        signal.sigtimedwait([], 0.5) if hasattr(signal, "sigtimedwait") else None
    assert caught.value.exit_code == 143 and "SIGTERM" in str(caught.value)
    assert signal.getsignal(signal.SIGTERM) == before


def test_check_output_accepts_a_new_file_and_an_existing_one(tmp_path):
    (tmp_path / "in.ndjson").write_text("")
    (tmp_path / "old.npz").write_bytes(b"x")
    outputs.check_output(tmp_path / "new.npz", [str(tmp_path / "in.ndjson")])
    outputs.check_output(tmp_path / "old.npz", [str(tmp_path / "in.ndjson")])
    outputs.check_output(tmp_path / "dir", [], folder=True)
    with pytest.raises(OutputError, match="is also an input"):
        outputs.check_output(tmp_path / "in.ndjson", [str(tmp_path / "*.ndjson")])
    assert sorted(os.listdir(tmp_path)) == ["in.ndjson", "old.npz"]  # the probe is gone


WORDS = ["cat", "a/b", "a_b", "a\\b", "", ".", "..", "unnamed", "Cat", "CAT", "w" * 300, "con", "Con.txt", "日本",
         " x ", "x", "a_b-c14cddc0"]


def test_word_filenames_are_unique_safe_and_stable():
    names = word_filenames(WORDS)
    assert len({n.casefold() for n in names.values()}) == len(WORDS)
    # of words equal but for case, the first in sorted order keeps its name
    assert names["CAT"] == "CAT.npz" and names["Cat"] != "Cat.npz" and names["cat"] != "cat.npz"
    assert names["a_b"] == "a_b.npz" and names["日本"] == "日本.npz" and names["x"] == "x.npz"
    assert names["a/b"].startswith("a_b-") and names[""].startswith("unnamed-") and names["."].startswith("unnamed-")
    assert names["con"] != "con.npz" and names["Con.txt"] != "Con.txt.npz"
    assert word_filenames(list(reversed(WORDS))) == names  # independent of order
    assert names["a/b"] == "a_b-c14cddc033f6.npz"  # longer: another word is literally "a_b-c14cddc0"
    assert word_filenames(["a/b", "cat"])["a/b"] == "a_b-c14cddc0.npz"


@given(st.lists(st.text(max_size=300), max_size=30, unique=True))
def test_word_filenames_property(words):
    names = word_filenames(words)
    assert set(names) == set(words)
    assert len({n.casefold() for n in names.values()}) == len(words)
    for name in names.values():
        assert name.endswith(".npz") and not name.startswith(".") and "/" not in name and "\\" not in name
        assert "\x00" not in name and len(name.encode("utf-8", "surrogatepass")) <= 200


# ---------------------------------------------------------------------------------------------------
# Writing only what is ours


def _hold_lock_in_child(folder):
    """A second process that takes the lock of `folder` and waits; returns it once it holds the lock."""
    import subprocess
    import sys

    code = ("import sys, time\nfrom sketchprep.outputs import folder_lock\n"
            "with folder_lock(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(120)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(folder)], stdout=subprocess.PIPE)
    assert proc.stdout.readline() == b"held\n"
    return proc


def test_folder_lock_refuses_a_second_process_naming_its_pid_and_dies_with_it(tmp_path):
    run = tmp_path / "run"
    holder = _hold_lock_in_child(run)
    try:
        with pytest.raises(OutputError, match=rf"run: this run folder is in use by another sketchprep process "
                                              rf"\(PID {holder.pid}\)"):
            with outputs.folder_lock(run, "run folder"):
                pass
    finally:
        holder.kill()  # SIGKILL: no cleanup runs in the holder; the kernel drops its lock
        holder.wait()
    assert os.path.exists(run / outputs.LOCK_NAME)  # the file stays, but nothing holds it
    with outputs.folder_lock(run, "run folder"):
        assert (run / outputs.LOCK_NAME).read_text() == f"{os.getpid()}\n"
    assert os.listdir(run) == []  # released: the lock file is removed


def test_folder_lock_is_reentrant_makes_and_removes_an_unused_folder(tmp_path):
    run = tmp_path / "a" / "b" / "run"
    with outputs.folder_lock(run):
        with outputs.folder_lock(tmp_path / "a" / "b" / ".." / "b" / "run"):  # the same folder, held already
            assert run.is_dir()
        assert (run / outputs.LOCK_NAME).exists()  # still held by the outer block
    assert os.listdir(tmp_path) == []  # nothing was written: the folders made for the lock are gone
    with outputs.folder_lock(run):
        (run / "latest.pt").write_bytes(b"x")
    assert os.listdir(run) == ["latest.pt"]


@pytest.mark.parametrize("kind", ["symlink", "fifo", "folder"])
def test_folder_lock_never_uses_a_planted_lock_file(tmp_path, kind):
    run = tmp_path / "run"
    run.mkdir()
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep")
    lock = run / outputs.LOCK_NAME
    {"symlink": lambda: lock.symlink_to(victim), "fifo": lambda: os.mkfifo(lock), "folder": lock.mkdir}[kind]()
    with pytest.raises((OutputError, OSError)):
        with outputs.folder_lock(run):
            pass
    assert victim.read_bytes() == b"keep"


def test_folder_lock_on_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputError, match="is a file, not a folder; the folder must be a folder"):
        with outputs.folder_lock(tmp_path / "f"):
            pass


def test_open_for_writing_never_follows_a_link_and_refuses_fifos(tmp_path):
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep")
    (tmp_path / "link").symlink_to(victim)
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    os.mkfifo(tmp_path / "fifo")
    for name, what in (("link", "a symbolic link"), ("dangling", "a symbolic link"), ("fifo", "a FIFO")):
        for mode in ("wb", "ab"):
            with pytest.raises(OutputError, match=f"is {what}, not a regular file"):
                outputs.open_for_writing(tmp_path / name, mode)
    assert victim.read_bytes() == b"keep" and not (tmp_path / "nowhere").exists()
    with outputs.open_for_writing(tmp_path / "new", "wb") as f:
        f.write(b"abc")
    with outputs.open_for_writing(tmp_path / "new", "ab") as f:
        f.write(b"d")
    assert (tmp_path / "new").read_bytes() == b"abcd"
    with outputs.open_for_writing(tmp_path / "new", "wb") as f:
        f.write(b"e")
    assert (tmp_path / "new").read_bytes() == b"e"


def test_check_ours_replaces_only_a_marked_folder(tmp_path):
    names, marker = ["index.html", "app.js"], b"<!-- ours -->"
    outputs.check_ours(tmp_path / "missing", names, marker)      # nothing there: fine
    page = tmp_path / "page"
    page.mkdir()
    (page / "notes.txt").write_text("other files do not matter")
    outputs.check_ours(page, names, marker)
    (page / "app.js").write_text("the user's own script")
    with pytest.raises(OutputError, match="already holds app.js, and this tool did not write it"):
        outputs.check_ours(page, names, marker)
    (page / "index.html").write_text("<html>the user's own page</html>")
    with pytest.raises(OutputError, match="already holds index.html"):
        outputs.check_ours(page, names, marker)
    (page / "index.html").write_text("<html><!-- ours --></html>")
    outputs.check_ours(page, names, marker)                      # a page this tool wrote
    (page / "index.html").unlink()
    (page / "index.html").symlink_to(tmp_path / "elsewhere.html")
    (tmp_path / "elsewhere.html").write_text("<!-- ours -->")
    with pytest.raises(OutputError):                            # a link is never ours
        outputs.check_ours(page, names, marker)


def test_check_output_refuses_anything_inside_an_input_run(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "latest.pt").write_bytes(b"x")
    (tmp_path / "loose.pt").write_bytes(b"x")
    for out, given in [(run / "hparams.json", run), (run / "new.png", run), (run / "sub" / "x.svg", run),
                       (run / "x.svg", run / "latest.pt"), (tmp_path / "link" / "x.svg", run)]:
        if out.parent.name == "link" and not out.parent.exists():
            out.parent.symlink_to(run)
        with pytest.raises(OutputError, match="is inside the run folder"):
            outputs.check_output(out, runs=[given])
    outputs.check_output(tmp_path / "beside.svg", runs=[run])
    outputs.check_output(tmp_path / "next.svg", runs=[tmp_path / "loose.pt"])  # a .pt outside any run folder
    with pytest.raises(OutputError, match="is inside the run folder"):
        outputs.check_output(run, folder=True, runs=[run])
