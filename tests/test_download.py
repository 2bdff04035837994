"""`sketchprep download quickdraw` against a local HTTP server that serves Google's bucket layout."""
from __future__ import annotations

import base64
import hashlib
import http.server
import threading
import time

import pytest
from click.testing import CliRunner
from conftest import SAMPLE

from sketchprep.cli import main
from sketchprep.download import (
    BASE_URL,
    MODELS_BASE_URL,
    DownloadError,
    download_models,
    download_quickdraw,
    model_url,
    quickdraw_words,
    resolve_models,
    resolve_words,
    sketchrnn_models,
    url_for,
)
from sketchprep.errors import OptionError


class Bucket(http.server.ThreadingHTTPServer):
    """Serves files[path] = bytes like Cloud Storage: Content-Length, ETag, x-goog-hash md5, Range -> 206.

    Faults for the tests: cut[path] = n closes the connection after n bytes (once); bad_md5 = {path};
    no_range = {path} answers 200 to a Range request; etag[path] overrides the ETag; raw[path] = bytes is
    sent as the whole answer, status line and headers included (answers that are not HTTP)."""

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.files: dict[str, bytes] = {}
        self.cut: dict[str, int] = {}
        self.bad_md5: set[str] = set()
        self.no_range: set[str] = set()
        self.etag: dict[str, str] = {}
        self.bare: set[str] = set()                   # no Content-Length, no ETag, no hash: ends at close
        self.stall: dict[str, int] = {}               # sends n bytes, then nothing for 3 s (once)
        self.raw: dict[str, bytes] = {}
        self.short: dict[str, int] = {}               # announces the size plus n bytes, sends the file, closes
        self.log: list[tuple[str, str | None]] = []   # (path, Range header)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        s: Bucket = self.server
        s.log.append((self.path, self.headers.get("Range")))
        if self.path in s.raw:
            self.wfile.write(s.raw[self.path])
            self.wfile.flush()
            self.close_connection = True
            return
        body = s.files.get(self.path)
        if body is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path in s.bare:
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
            self.close_connection = True
            return
        etag = s.etag.get(self.path, '"' + hashlib.md5(body).hexdigest() + '"')
        md5 = base64.b64encode(hashlib.md5(b"x" + body if self.path in s.bad_md5 else body).digest()).decode()
        start = 0
        wanted = self.headers.get("Range")
        if_range = self.headers.get("If-Range")
        if wanted and self.path not in s.no_range and (if_range is None or if_range == etag):
            start = int(wanted.split("=")[1].split("-")[0])
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start + s.short.get(self.path, 0)))
        self.send_header("ETag", etag)
        self.send_header("x-goog-hash", "crc32c=AAAAAA==")
        self.send_header("x-goog-hash", f"md5={md5}")
        self.end_headers()
        stall = s.stall.pop(self.path, None)
        if stall is not None:
            self.wfile.write(body[start:start + stall])
            self.wfile.flush()
            time.sleep(3)
            self.close_connection = True
            return
        if self.path in s.short:
            self.wfile.write(body[start:])
            self.wfile.flush()
            self.close_connection = True
            return
        cut = s.cut.pop(self.path, None)
        if cut is not None:
            self.wfile.write(body[start:start + cut])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body[start:])


@pytest.fixture
def bucket():
    server = Bucket()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _payload(n: int, seed: int, head: bytes = b'{"key_id": "') -> bytes:
    """n bytes that start as the format's files do and are not all alike, so a misplaced resume shows up."""
    out = bytearray(head)
    block = str(seed).encode()
    while len(out) < n:
        block = hashlib.sha256(block).digest()
        out += block
    return bytes(out[:n])


def _serve(bucket: Bucket, word: str, folder: str, ext: str, body: bytes) -> str:
    path = url_for(word, "simplified", "")  # "/full/simplified/<quoted word>.ndjson"
    path = path.replace("/full/simplified/", f"/{folder}/").rsplit(".", 1)[0] + ext
    bucket.files[path] = body
    return path


def test_word_list_is_googles():
    words = quickdraw_words()
    assert len(words) == 345 == len(set(words))
    assert {"cat", "hot dog", "The Eiffel Tower", "teddy-bear", "t-shirt", "zigzag"} <= set(words)
    # every word of the bundled sample is one of them
    assert {p.name.split(".")[0] for p in SAMPLE.glob("*.ndjson.gz")} <= set(words)


def test_words_forgive_case_underscores_and_suggest_on_typos():
    assert resolve_words(["Cat", "hot_dog", "the eiffel tower", "cat"]) == ["cat", "hot dog", "The Eiffel Tower"]
    with pytest.raises(OptionError, match=r"'caat' is not one of the 345 .* did you mean 'cat'"):
        resolve_words(["caat"])
    with pytest.raises(OptionError, match="--list"):
        resolve_words(["qwertyuiop"])


def test_urls_are_googles_layout():
    assert url_for("hot dog", "simplified", BASE_URL) == \
        "https://storage.googleapis.com/quickdraw_dataset/full/simplified/hot%20dog.ndjson"
    assert url_for("cat", "raw", BASE_URL).endswith("/quickdraw_dataset/full/raw/cat.ndjson")
    assert url_for("cat", "binary", BASE_URL).endswith("/quickdraw_dataset/full/binary/cat.bin")
    assert url_for("cat", "npz", BASE_URL).endswith("/quickdraw_dataset/sketchrnn/cat.npz")


def test_cli_downloads_words_checks_md5_and_converts(bucket, tmp_path):
    cat = (SAMPLE / "clock.ndjson.gz").read_bytes()
    import gzip

    body = gzip.decompress(cat)
    _serve(bucket, "clock", "full/simplified", ".ndjson", body)
    _serve(bucket, "light bulb", "full/simplified", ".ndjson", body[: len(body) // 2])
    out = tmp_path / "qd"
    result = CliRunner().invoke(main, ["download", "quickdraw", "clock", "light bulb", "-o", str(out),
                                       "--base-url", bucket.url, "--cache-dir", str(tmp_path / "cache")])
    assert result.exit_code == 0, result.output
    assert (out / "clock.ndjson").read_bytes() == body
    assert (out / "light bulb.ndjson").read_bytes() == body[: len(body) // 2]
    assert result.output.count("downloaded, size and MD5 checked") == 2
    assert ("/full/simplified/light%20bulb.ndjson", None) in bucket.log
    assert sorted(p.name for p in out.iterdir()) == ["clock.ndjson", "light bulb.ndjson"]  # no .part, no record
    # what was fetched is what convert reads
    converted = CliRunner().invoke(main, ["convert", str(out / "clock.ndjson"), str(tmp_path / "c.npz"),
                                          "--split", "1/0/0", "--multiple", "1", "-q"])
    assert converted.exit_code == 0, converted.output
    assert (tmp_path / "c.npz").exists()


@pytest.mark.parametrize("flag,folder,ext", [("--raw", "full/raw", ".ndjson"), ("--binary", "full/binary", ".bin"),
                                             ("--npz", "sketchrnn", ".npz"), ("--simplified", "full/simplified",
                                                                              ".ndjson")])
def test_each_format_comes_from_its_folder(bucket, tmp_path, flag, folder, ext):
    body = _payload(5000, 1, b"PK\x03\x04" if ext == ".npz" else b"{")
    _serve(bucket, "sheep", folder, ext, body)
    result = CliRunner().invoke(main, ["download", "quickdraw", "sheep", flag, "-o", str(tmp_path / "o"),
                                       "--base-url", bucket.url, "--no-cache"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "o" / f"sheep{ext}").read_bytes() == body
    assert [p.name for p in (tmp_path / "o").iterdir()] == [f"sheep{ext}"]  # no record without the cache
    assert bucket.log == [(f"/{folder}/sheep{ext}", None)]


def test_interrupted_download_is_resumed_by_the_next_run(bucket, tmp_path):
    body = _payload(3 * 2**20 + 123, 2)
    path = _serve(bucket, "cat", "full/simplified", ".ndjson", body)
    bucket.cut[path] = 1_000_000
    cache = tmp_path / "cache"
    with pytest.raises(DownloadError, match=r"cut off after 1,000,000 bytes.*run the same command again to resume"):
        download_quickdraw(["cat"], "simplified", tmp_path / "out", base=bucket.url, cache_dir=cache, retries=0)
    part = cache / "quickdraw" / "simplified" / "cat.ndjson.part"
    assert part.stat().st_size == 1_000_000 and not (tmp_path / "out" / "cat.ndjson").exists()

    [fetched] = download_quickdraw(["cat"], "simplified", tmp_path / "out", base=bucket.url, cache_dir=cache)
    assert bucket.log[-1] == (path, "bytes=1000000-")       # only the rest was asked for
    assert fetched.how == "resumed" and fetched.md5_checked and fetched.size == len(body)
    assert (tmp_path / "out" / "cat.ndjson").read_bytes() == body
    assert not part.exists()


def test_a_cut_connection_is_resumed_within_the_run(bucket, tmp_path):
    body = _payload(2**20, 3)
    path = _serve(bucket, "cat", "full/raw", ".ndjson", body)
    bucket.cut[path] = 4096
    result = CliRunner().invoke(main, ["download", "quickdraw", "cat", "--raw", "-o", str(tmp_path),
                                       "--base-url", bucket.url, "--cache-dir", str(tmp_path / "cache")])
    assert result.exit_code == 0, result.output
    assert "resumed, size and MD5 checked" in result.output
    assert [r for _, r in bucket.log] == [None, "bytes=4096-"]
    assert (tmp_path / "cat.ndjson").read_bytes() == body


def test_a_resume_the_server_ignores_or_a_changed_file_starts_over(bucket, tmp_path):
    body = _payload(50_000, 4)
    path = _serve(bucket, "cat", "full/simplified", ".ndjson", body)
    bucket.cut[path] = 10_000
    cache = tmp_path / "cache"
    with pytest.raises(DownloadError):
        download_quickdraw(["cat"], "simplified", tmp_path, base=bucket.url, cache_dir=cache, retries=0)
    bucket.no_range.add(path)                                  # answers 200 with the whole file
    [fetched] = download_quickdraw(["cat"], "simplified", tmp_path, base=bucket.url, cache_dir=cache)
    assert (tmp_path / "cat.ndjson").read_bytes() == body and fetched.how == "downloaded"

    new = _payload(60_000, 5)                                  # the file changes on the server mid-way
    path = _serve(bucket, "dog", "full/simplified", ".ndjson", body)
    bucket.cut[path] = 10_000
    with pytest.raises(DownloadError):
        download_quickdraw(["dog"], "simplified", tmp_path, base=bucket.url, cache_dir=cache, retries=0)
    bucket.files[path] = new
    download_quickdraw(["dog"], "simplified", tmp_path, base=bucket.url, cache_dir=cache)
    assert bucket.log[-1][1] == "bytes=10000-"                 # If-Range with the old ETag: the server sent all
    assert (tmp_path / "dog.ndjson").read_bytes() == new


def test_a_damaged_file_is_refused_and_deleted(bucket, tmp_path):
    path = _serve(bucket, "cat", "full/simplified", ".ndjson", _payload(20_000, 6))
    bucket.bad_md5.add(path)
    result = CliRunner().invoke(main, ["download", "quickdraw", "cat", "-o", str(tmp_path / "out"),
                                       "--base-url", bucket.url, "--cache-dir", str(tmp_path / "cache")])
    assert result.exit_code == 1
    [line] = [ln for ln in result.output.splitlines() if ln.startswith("Error:")]
    assert "/full/simplified/cat.ndjson: MD5" in line and "does not match" in line and "run the same command" in line
    assert list((tmp_path / "out").iterdir()) == []
    assert list((tmp_path / "cache" / "quickdraw" / "simplified").iterdir()) == []


def test_the_cache_serves_a_second_download_without_the_network(bucket, tmp_path):
    body = _payload(30_000, 7)
    _serve(bucket, "cat", "full/simplified", ".ndjson", body)
    args = ["download", "quickdraw", "cat", "--base-url", bucket.url, "--cache-dir", str(tmp_path / "cache")]
    assert CliRunner().invoke(main, [*args, "-o", str(tmp_path / "a")]).exit_code == 0
    result = CliRunner().invoke(main, [*args, "-o", str(tmp_path / "b")])
    assert result.exit_code == 0, result.output
    assert "cached, size and MD5 checked" in result.output
    assert len(bucket.log) == 1
    assert (tmp_path / "b" / "cat.ndjson").read_bytes() == body
    # a damaged cache entry (wrong size) is fetched again
    cached = tmp_path / "cache" / "quickdraw" / "simplified" / "cat.ndjson"
    cached.unlink()
    cached.write_bytes(body[:100])
    assert CliRunner().invoke(main, [*args, "-o", str(tmp_path / "c")]).exit_code == 0
    assert len(bucket.log) == 2 and (tmp_path / "c" / "cat.ndjson").read_bytes() == body


def test_mirror_from_the_environment_and_errors_name_the_url(bucket, tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["download", "quickdraw", "cat", "-o", str(tmp_path), "--no-cache"],
                           env={"SKETCHPREP_QUICKDRAW_URL": bucket.url})
    assert result.exit_code == 1
    assert f"Error: {bucket.url}/full/simplified/cat.ndjson: not found on the server (404)" in result.output
    assert bucket.log == [("/full/simplified/cat.ndjson", None)]
    result = runner.invoke(main, ["download", "quickdraw", "cat", "-o", str(tmp_path), "--no-cache",
                                  "--base-url", "http://127.0.0.1:9"])
    assert result.exit_code == 1 and "cannot reach the server" in result.output
    assert list(tmp_path.iterdir()) == []


def test_usage_errors(tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["download", "quickdraw", "caat", "-o", str(tmp_path)])
    assert result.exit_code == 2 and "did you mean 'cat'" in result.output
    result = runner.invoke(main, ["download", "quickdraw", "-o", str(tmp_path)])
    assert result.exit_code == 2 and "--list" in result.output
    result = runner.invoke(main, ["download", "quickdraw", "--list"])
    assert result.exit_code == 0 and len(result.output.splitlines()) == 345
    assert list(tmp_path.iterdir()) == []


def test_a_plain_mirror_without_size_or_md5_and_a_file_url(bucket, tmp_path):
    body = _payload(40_000, 8)
    path = _serve(bucket, "cat", "full/simplified", ".ndjson", body)
    bucket.bare.add(path)
    result = CliRunner().invoke(main, ["download", "quickdraw", "cat", "-o", str(tmp_path / "a"), "--no-cache",
                                       "--base-url", bucket.url])
    assert result.exit_code == 0, result.output
    assert "downloaded, not checked (the server sent no size and no MD5)" in result.output
    assert (tmp_path / "a" / "cat.ndjson").read_bytes() == body

    mirror = tmp_path / "mirror" / "sketchrnn"
    mirror.mkdir(parents=True)
    body = _payload(40_000, 9, b"PK\x03\x04")
    (mirror / "hot dog.npz").write_bytes(body)
    result = CliRunner().invoke(main, ["download", "quickdraw", "hot dog", "--npz", "-o", str(tmp_path / "b"),
                                       "--base-url", (tmp_path / "mirror").as_uri(),
                                       "--cache-dir", str(tmp_path / "cache")])
    assert result.exit_code == 0, result.output
    assert "downloaded, size checked" in result.output
    assert (tmp_path / "b" / "hot dog.npz").read_bytes() == body


@pytest.mark.parametrize("fmt,folder,ext", [("simplified", "full/simplified", ".ndjson"), ("npz", "sketchrnn", ".npz")])
def test_an_html_page_instead_of_the_file_is_refused(bucket, tmp_path, fmt, folder, ext):
    page = b"<!DOCTYPE html><html><body>Sign in to the Wi-Fi</body></html>"
    _serve(bucket, "cat", folder, ext, page)
    bucket.bare.add(f"/{folder}/cat{ext}")            # a portal sends no size and no MD5 either
    with pytest.raises(DownloadError, match=r"not (ndjson|a .npz \(zip\) file) \(it starts with b'<!DOCTYPE"):
        download_quickdraw(["cat"], fmt, tmp_path / "out", base=bucket.url, cache_dir=tmp_path / "cache")
    assert list((tmp_path / "out").iterdir()) == []
    assert list((tmp_path / "cache" / "quickdraw" / fmt).iterdir()) == []


# --- sketch-rnn models -------------------------------------------------------------------------------------

def _model_body(n: int, seed: int) -> bytes:
    return _payload(n, seed, b'[{"mode": 2, "version": 6, "max_seq_len": 130, "name": "x", "scale_factor": 82.2}, ')


def test_model_names_are_the_ones_magenta_js_lists():
    names = sketchrnn_models()
    assert len(names) == 114 == len(set(names))
    assert {"cat", "owl", "flamingo", "the_mona_lisa", "crabrabbitfacepig", "everything", "yogabicycle"} <= set(names)
    assert resolve_models(["Cat", "the mona lisa", "owl.gen.json", "cat"]) == ["cat", "the_mona_lisa", "owl"]
    with pytest.raises(OptionError, match=r"'caat' is not one of the 114 published sketch-rnn models; did you mean "
                                          r"'cat'.*--list"):
        resolve_models(["caat"])
    assert model_url("cat", MODELS_BASE_URL) == \
        "https://storage.googleapis.com/quickdraw-models/sketchRNN/models/cat.gen.json"
    assert model_url("the_mona_lisa", MODELS_BASE_URL, large=True) == \
        "https://storage.googleapis.com/quickdraw-models/sketchRNN/large_models/the_mona_lisa.gen.json"


def test_download_model_by_name_large_and_cached(bucket, tmp_path):
    small, large = _model_body(30_000, 11), _model_body(50_000, 12)
    bucket.files["/models/cat.gen.json"] = small
    bucket.files["/large_models/cat.gen.json"] = large
    bucket.files["/models/the_mona_lisa.gen.json"] = _model_body(20_000, 13)
    args = ["download", "model", "--base-url", bucket.url, "--cache-dir", str(tmp_path / "cache")]
    r = CliRunner().invoke(main, [*args, "cat", "The Mona Lisa", "-o", str(tmp_path / "a")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "a" / "cat.gen.json").read_bytes() == small
    assert (tmp_path / "a" / "the_mona_lisa.gen.json").exists()
    assert r.output.count("downloaded, size and MD5 checked") == 2
    r = CliRunner().invoke(main, [*args, "cat", "--large", "-o", str(tmp_path / "b")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "b" / "cat.gen.json").read_bytes() == large
    assert [p for p, _ in bucket.log] == ["/models/cat.gen.json", "/models/the_mona_lisa.gen.json",
                                          "/large_models/cat.gen.json"]
    r = CliRunner().invoke(main, [*args, "cat", "-o", str(tmp_path / "c")])     # from the cache, no request
    assert r.exit_code == 0 and "cached, size and MD5 checked" in r.output, r.output
    assert len(bucket.log) == 3 and (tmp_path / "c" / "cat.gen.json").read_bytes() == small
    assert (tmp_path / "cache" / "sketchrnn" / "models" / "cat.gen.json").exists()
    assert (tmp_path / "cache" / "sketchrnn" / "large_models" / "cat.gen.json").exists()


def test_download_model_resumes_and_refuses_a_wrong_size(bucket, tmp_path):
    body = _model_body(2**20 + 77, 14)
    bucket.files["/models/owl.gen.json"] = body
    bucket.cut["/models/owl.gen.json"] = 300_000
    cache = tmp_path / "cache"
    with pytest.raises(DownloadError, match=r"cut off after 300,000 bytes.*run the same command again to resume"):
        download_models(["owl"], tmp_path / "out", base=bucket.url, cache_dir=cache, retries=0)
    [fetched] = download_models(["owl"], tmp_path / "out", base=bucket.url, cache_dir=cache)
    assert bucket.log[-1] == ("/models/owl.gen.json", "bytes=300000-") and fetched.how == "resumed"
    assert (tmp_path / "out" / "owl.gen.json").read_bytes() == body
    # a server that announces more bytes than it sends: refused, nothing in the output folder
    bucket.files["/models/dog.gen.json"] = _model_body(40_000, 15)
    bucket.short["/models/dog.gen.json"] = 1000
    r = CliRunner().invoke(main, ["download", "model", "dog", "-o", str(tmp_path / "d"), "--base-url", bucket.url,
                                  "--cache-dir", str(cache)])
    assert r.exit_code == 1
    [line] = [ln for ln in r.output.splitlines() if ln.startswith("Error:")]
    assert "/models/dog.gen.json: download cut off after" in line and "run the same command again" in line
    assert list((tmp_path / "d").iterdir()) == []
    assert not (cache / "sketchrnn" / "models" / "dog.gen.json").exists()


def test_download_model_errors(bucket, tmp_path):
    runner = CliRunner()
    r = runner.invoke(main, ["download", "model", "cat", "-o", str(tmp_path), "--no-cache"],
                      env={"SKETCHPREP_SKETCHRNN_URL": bucket.url})
    assert r.exit_code == 1
    assert (f"Error: {bucket.url}/models/cat.gen.json: not found on the server (404). Check the name (--list) and "
            "--large") in r.output
    bucket.files["/models/cat.gen.json"] = b"<!DOCTYPE html><html>Sign in</html>"
    bucket.bare.add("/models/cat.gen.json")
    r = runner.invoke(main, ["download", "model", "cat", "-o", str(tmp_path), "--no-cache", "--base-url", bucket.url])
    assert r.exit_code == 1 and "not a .gen.json model (a JSON array)" in r.output
    r = runner.invoke(main, ["download", "model", "caat", "-o", str(tmp_path)])
    assert r.exit_code == 2 and "did you mean 'cat'" in r.output
    r = runner.invoke(main, ["download", "model", "-o", str(tmp_path)])
    assert r.exit_code == 2 and "--list" in r.output
    r = runner.invoke(main, ["download", "model", "--list"])
    assert r.exit_code == 0 and r.output.splitlines() == sketchrnn_models()
    assert list(tmp_path.iterdir()) == []
