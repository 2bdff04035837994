"""`sketchprep download quickdraw` against servers and arguments that misbehave: one Error line, bounded time,
nothing written but what may be resumed."""
from __future__ import annotations

import os
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


# ---------------------------------------------------------------------------------------------------
# Answers that are not HTTP, and sizes no file has: one Error line, nothing written

CAT = "/full/simplified/cat.ndjson"
_OK = b"HTTP/1.1 200 OK\r\nConnection: close\r\n"


def _chunked(body: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 4096]), body[i:i + 4096]) for i in range(0, len(body), 4096)) \
        + b"0\r\n\r\n"


@pytest.mark.parametrize("answer,message", [
    pytest.param(_OK + b"X-Long: " + b"a" * 70_000 + b"\r\n\r\n{}", "not valid HTTP (LineTooLong", id="70000-byte-header"),
    pytest.param(_OK + b"".join(b"X-H%d: v\r\n" % i for i in range(150)) + b"\r\n{}",
                 "not valid HTTP (HTTPException: got more than 100 headers", id="150-headers"),
    pytest.param(b"HTTP/1.1 abc OK\r\n\r\n{}", "not valid HTTP (BadStatusLine", id="bad-status-line"),
    pytest.param(b"SSH-2.0-OpenSSH_9.6\r\n", "not valid HTTP (BadStatusLine", id="ssh-not-http"),
    pytest.param(b"\x00\xff" * 40_000, "not valid HTTP", id="binary-not-http"),
    pytest.param(_OK + b"Content-Length: " + b"9" * 5000 + b"\r\n\r\n{}", "unreadable Content-Length ('99999",
                 id="5000-digit-length"),
    pytest.param(_OK + b"Content-Length: -5\r\n\r\n{}", "unreadable Content-Length ('-5')", id="negative-length"),
    pytest.param(_OK + "Content-Length: \u00b2\r\n\r\n{}".encode("latin-1"), "unreadable Content-Length",
                 id="unicode-digit-length"),
    pytest.param(_OK + b"Content-Length: 1000000000000000\r\n\r\n{" + b"x" * 100_000,
                 "announces 1,000,000,000,000,000 bytes, more than the", id="length-1e15"),
    pytest.param(b"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-9/" + b"7" * 5000 + b"\r\n\r\n{}",
                 "without a readable Content-Range", id="5000-digit-range"),
    pytest.param(_OK + b"Content-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n" + _chunked(b"{" * 10_000),
                 "sent more than the 100 bytes it announced", id="more-than-announced"),
])
def test_answers_that_are_not_http_or_announce_no_real_size(tmp_path, bucket, answer, message):  # noqa: F811
    bucket.raw[CAT] = answer
    run_case(tmp_path, _args(tmp_path, "cat", "--base-url", bucket.url), message=message)
    assert not list((tmp_path / "cache").rglob("*.part")), "a refused answer left a file in the cache"


def test_a_file_without_a_size_stops_at_the_bound(tmp_path, bucket):  # noqa: F811
    bucket.files[CAT] = _payload(3 * 2**20, 3)
    bucket.bare.add(CAT)  # no Content-Length: only the bound stops it
    run_case(tmp_path, _args(tmp_path, "cat", "--base-url", bucket.url), message="larger than 2,097,152 bytes",
             env={"SKETCHPREP_DOWNLOAD_MAX_MB": "2"})


def test_a_size_over_the_free_disk_space_is_refused_before_writing(tmp_path, bucket, monkeypatch):  # noqa: F811
    import shutil
    from collections import namedtuple

    from sketchprep import download
    from sketchprep.download import DownloadError, download_quickdraw

    bucket.files[CAT] = _payload(50_000, 4)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(download.shutil, "disk_usage", lambda p: usage(10**6, 10**6 - 30_000, 30_000))
    with pytest.raises(DownloadError, match=r"50,000 more do not fit: 30,000 bytes are free"):
        download_quickdraw(["cat"], "simplified", tmp_path / "out", base=bucket.url, cache_dir=tmp_path / "cache")
    assert shutil.disk_usage is not None and not list((tmp_path / "cache").rglob("cat.ndjson*"))


@pytest.mark.parametrize("url", ["http://127.0.0.1:99999", "http://[::1", "http://127.0.0.1:port"])
def test_a_base_url_with_a_bad_port_or_host(tmp_path, url):
    run_case(tmp_path, _args(tmp_path, "cat", "--base-url", url), rc=2, message="cannot be read as a URL")


# ---------------------------------------------------------------------------------------------------
# Nothing is written through a link or into a FIFO planted in the cache or the output folder

VICTIM = b"a file of the user's that no download may touch"


def _cache_dir(tmp_path):
    folder = tmp_path / "cache" / "quickdraw" / "simplified"
    folder.mkdir(parents=True)
    return folder


def test_a_symlinked_part_file_is_refused_and_its_target_kept(tmp_path, bucket):  # noqa: F811
    bucket.files[CAT] = _payload(20_000, 5)
    (tmp_path / "victim.txt").write_bytes(VICTIM)
    (_cache_dir(tmp_path) / "cat.ndjson.part").symlink_to(tmp_path / "victim.txt")
    run_case(tmp_path, _args(tmp_path, "cat", "--base-url", bucket.url), message="is a symbolic link, not a regular file")
    assert (tmp_path / "victim.txt").read_bytes() == VICTIM


def test_a_dangling_symlinked_part_file_creates_nothing(tmp_path, bucket):  # noqa: F811
    bucket.files[CAT] = _payload(20_000, 5)
    (_cache_dir(tmp_path) / "cat.ndjson.part").symlink_to(tmp_path / "made-by-the-link.txt")
    run_case(tmp_path, _args(tmp_path, "cat", "--base-url", bucket.url), message="symbolic link")
    assert not (tmp_path / "made-by-the-link.txt").exists()


def test_a_fifo_as_part_file_is_refused_without_hanging(tmp_path, bucket):  # noqa: F811
    bucket.files[CAT] = _payload(20_000, 5)
    os.mkfifo(_cache_dir(tmp_path) / "cat.ndjson.part")
    run_case(tmp_path, _args(tmp_path, "cat", "--base-url", bucket.url), message="is a FIFO", max_seconds=8)


def test_a_symlinked_cache_entry_is_neither_served_nor_written_through(tmp_path, bucket):  # noqa: F811
    bucket.files[CAT] = _payload(len(VICTIM), 6)
    (tmp_path / "victim.txt").write_bytes(VICTIM)
    cache = _cache_dir(tmp_path)
    (cache / "cat.ndjson").symlink_to(tmp_path / "victim.txt")  # with a record that matches its size
    (cache / "cat.ndjson.json").write_text(f'{{"url": "{bucket.url}{CAT}", "size": {len(VICTIM)}}}')
    run_case(tmp_path, _args(tmp_path, "cat", "--base-url", bucket.url), message="is a symbolic link")
    assert (tmp_path / "victim.txt").read_bytes() == VICTIM


def test_symlinked_records_and_outputs_are_replaced_not_written_through(tmp_path, bucket):  # noqa: F811
    body = _payload(20_000, 7)
    bucket.files[CAT] = body
    for name in ("victim1", "victim2"):
        (tmp_path / name).write_bytes(VICTIM)
    (_cache_dir(tmp_path) / "cat.ndjson.part.json").symlink_to(tmp_path / "victim1")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "cat.ndjson").symlink_to(tmp_path / "victim2")
    run_case(tmp_path, _args(tmp_path, "cat", "--base-url", bucket.url), rc=0,
             creates=("out/cat.ndjson", "cache/quickdraw/simplified/cat.ndjson",
                      "cache/quickdraw/simplified/cat.ndjson.json",
                      "cache/quickdraw/simplified/cat.ndjson.part.json"))  # the link itself is replaced, then removed
    assert not os.path.lexists(tmp_path / "cache/quickdraw/simplified/cat.ndjson.part.json")
    assert (tmp_path / "victim1").read_bytes() == VICTIM and (tmp_path / "victim2").read_bytes() == VICTIM
    assert not (tmp_path / "out" / "cat.ndjson").is_symlink() and (tmp_path / "out" / "cat.ndjson").read_bytes() == body


@pytest.mark.parametrize("record", ['[1, 2]', '"a string"', '{"url": ["not", "a", "url"], "size": 5}',
                                    '{"url": "URL", "size": "5"}', '{"url": "URL", "size": true}',
                                    '{"url": "URL", "size": 1000, "etag": {"a": 1}}', '{"url": "URL", "md5": 7}'])
def test_a_damaged_download_record_starts_over(tmp_path, bucket, record):  # noqa: F811
    """A record beside a cached file or a .part that is not an object of typed fields (damaged, or written by
    something else) is ignored: the file is fetched again from the start, never a traceback."""
    body = _payload(20_000, 8)
    bucket.files[CAT] = body
    cache = _cache_dir(tmp_path)
    (cache / "cat.ndjson.part").write_bytes(body[:1000])
    (cache / "cat.ndjson.part.json").write_text(record.replace("URL", bucket.url + CAT))
    (cache / "cat.ndjson").write_bytes(VICTIM)
    (cache / "cat.ndjson.json").write_text(record.replace("URL", bucket.url + CAT))
    run_case(tmp_path, _args(tmp_path, "cat", "--base-url", bucket.url), rc=0,
             creates=("out/cat.ndjson", "cache/quickdraw/simplified/cat.ndjson",
                      "cache/quickdraw/simplified/cat.ndjson.json", "cache/quickdraw/simplified/cat.ndjson.part",
                      "cache/quickdraw/simplified/cat.ndjson.part.json"))
    assert (tmp_path / "out" / "cat.ndjson").read_bytes() == body
    assert [r for p, r in bucket.log] == [None]  # from the start: the damaged .part record is not trusted
