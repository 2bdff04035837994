"""`sketchprep download quickdraw` against servers and arguments that misbehave: one Error line, bounded time,
nothing written but what may be resumed."""
from __future__ import annotations

import socket
import threading

import pytest
from hostile import run_case
from test_download import Bucket, _payload, bucket  # noqa: F401  (the fixture)


@pytest.fixture
def silent_server():
    """Accepts connections and never answers (a stalled mirror)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    held = []
    stop = threading.Event()

    def accept():
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(sock.accept()[0])
            except OSError:
                pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    sock.close()


def _args(tmp_path, *more):
    return ["download", "quickdraw", *more, "-o", "out", "--cache-dir", str(tmp_path / "cache")]


def test_a_server_that_never_answers_times_out(tmp_path, silent_server):
    run_case(tmp_path, _args(tmp_path, "cat", "--base-url", silent_server, "--timeout", "1"),
             message="cannot reach the server (timed out)", max_seconds=8)


def test_a_server_that_stalls_mid_file_is_resumed(tmp_path, bucket):  # noqa: F811
    path = "/full/simplified/cat.ndjson"
    bucket.files[path] = _payload(200_000, 1)
    bucket.stall[path] = 1000
    out = run_case(tmp_path, _args(tmp_path, "cat", "--base-url", bucket.url, "--timeout", "1"), rc=0,
                   creates=("out/cat.ndjson", "cache/quickdraw/simplified/cat.ndjson",
                            "cache/quickdraw/simplified/cat.ndjson.json"), max_seconds=8)
    assert "resumed, size and MD5 checked" in out.stdout
    assert (tmp_path / "out" / "cat.ndjson").read_bytes() == bucket.files[path]
    assert [r for p, r in bucket.log] == [None, "bytes=1000-"]


def test_a_file_that_keeps_getting_cut_stays_resumable(tmp_path, bucket):  # noqa: F811
    path = "/full/simplified/cat.ndjson"
    bucket.files[path] = _payload(200_000, 2)

    class Cuts(dict):
        def pop(self, key, default=None):  # every request is cut after 1,000 bytes
            return 1000 if key == path else default

    bucket.cut = Cuts()
    run_case(tmp_path, ["download", "quickdraw", "cat", "-o", "out", "--cache-dir", "cache",
                        "--base-url", bucket.url],
             message="cut off after 4,000 bytes", max_seconds=8,
             creates=("cache/quickdraw/simplified/cat.ndjson.part", "cache/quickdraw/simplified/cat.ndjson.part.json"))
    assert (tmp_path / "cache/quickdraw/simplified/cat.ndjson.part").stat().st_size == 4000
    assert not (tmp_path / "out" / "cat.ndjson").exists()


@pytest.mark.parametrize("word", ["../../etc/passwd", "cat/../../x", "", "c" * 10_000])
def test_words_never_become_paths(tmp_path, word):
    run_case(tmp_path, _args(tmp_path, word), rc=2, message="is not one of the 345 Quick, Draw! words")


def test_output_that_is_a_file(tmp_path):
    (tmp_path / "out").write_text("a file, not a folder")
    run_case(tmp_path, _args(tmp_path, "cat"), rc=2, message="out")


def test_a_base_url_that_is_not_a_url(tmp_path):
    run_case(tmp_path, _args(tmp_path, "cat", "--base-url", "ftp://example.invalid/x"), rc=2,
             message="is not an http://, https:// or file:// URL")
