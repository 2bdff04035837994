"""Fetch Google's public Quick, Draw! files by word, and its published sketch-rnn models by name:
resumable, checked, cached.

Google serves one file per word and format from a public Cloud Storage bucket
(https://github.com/googlecreativelab/quickdraw-dataset, "Get the data"):

    {base}/full/raw/{word}.ndjson          raw strokes [x, y, t]
    {base}/full/simplified/{word}.ndjson   simplified strokes [x, y], 255 px, RDP 2.0
    {base}/full/binary/{word}.bin          the simplified drawings, binary
    {base}/sketchrnn/{word}.npz            sketch-rnn stroke-3, 70000/2500/2500

with base = https://storage.googleapis.com/quickdraw_dataset and the word URL-quoted (`hot%20dog`).
The sketch-rnn models magenta.js documents (its `sketch/README.md`, "Pre-trained models") are at

    {base}/models/{name}.gen.json          decoder-only, 512 LSTM units
    {base}/large_models/{name}.gen.json    the main set (some models larger)

with base = https://storage.googleapis.com/quickdraw-models/sketchRNN.
A file is fetched into the cache folder as `NAME.part` (resumed with an HTTP Range request when a
previous try was cut off), checked against the size the server announced and, when the server sends one
(`x-goog-hash: md5=...`, as Cloud Storage does), its MD5, renamed into place, and then linked or copied
into the output folder. A file already complete in the cache is not fetched again.

What a server cannot make it do: answer with something that is not HTTP (a header line over 64 KiB, over
100 headers, a bad status line) and get more than one error line; announce a size that is not a plain
number of at most 19 digits; make it write a file larger than `MAX_FILE_BYTES` ($SKETCHPREP_DOWNLOAD_MAX_MB)
or larger than the free space of the cache's disk (both checked before the first byte is written); send
more bytes than it announced (the rest is never written). Nothing is written through a symbolic link
or into a FIFO planted in the cache (`outputs.open_for_writing`).

Hand-written on urllib (no registry library): the job is a plain GET with Range and two headers.
"""
from __future__ import annotations

import base64
import difflib
import hashlib
import http.client
import json
import os
import shutil
import stat
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from . import files
from .errors import OptionError, SketchprepError
from .outputs import atomic_output, open_for_writing

BASE_URL = "https://storage.googleapis.com/quickdraw_dataset"
BASE_URL_ENV = "SKETCHPREP_QUICKDRAW_URL"
CACHE_ENV = "SKETCHPREP_CACHE"

# format -> (folder under the base URL, file extension)
FORMATS = {
    "raw": ("full/raw", ".ndjson"),
    "simplified": ("full/simplified", ".ndjson"),
    "binary": ("full/binary", ".bin"),
    "npz": ("sketchrnn", ".npz"),
}

MODELS_BASE_URL = "https://storage.googleapis.com/quickdraw-models/sketchRNN"
MODELS_BASE_URL_ENV = "SKETCHPREP_SKETCHRNN_URL"
MODEL_FOLDERS = {False: "models", True: "large_models"}   # --large
MODEL_EXT = ".gen.json"

CHUNK = 1 << 20
USER_AGENT = "sketchprep-download"
MAX_FILE_MB_ENV = "SKETCHPREP_DOWNLOAD_MAX_MB"
MAX_FILE_BYTES = 64 * 2**30   # the largest file accepted (a Quick, Draw! file is far smaller)


class DownloadError(SketchprepError):
    """A file that could not be fetched or did not arrive whole."""


@dataclass
class Fetched:
    """One word's file: where it is, where it came from, and how it got there."""

    word: str
    path: Path
    url: str
    size: int
    how: str                 # "downloaded", "resumed" (a .part was continued) or "cached"
    md5_checked: bool        # the server sent an MD5 and the file matches it
    size_checked: bool = True  # the server announced the size and the file has it

    @property
    def checks(self) -> str:
        done = [name for name, ok in (("size", self.size_checked), ("MD5", self.md5_checked)) if ok]
        return " and ".join(done) + " checked" if done else "not checked (the server sent no size and no MD5)"


def quickdraw_words() -> list[str]:
    """The 345 Quick, Draw! words, as Google spells them (categories.txt of quickdraw-dataset)."""
    text = resources.files("sketchprep").joinpath("data", "quickdraw_categories.txt").read_text(encoding="utf-8")
    return [w for w in text.splitlines() if w]


def resolve_words(requested: list[str]) -> list[str]:
    """Google's spelling of each requested word (case, `_` for a space and surrounding spaces forgiven).

    An unknown word is an OptionError naming the closest words (difflib) and how to list them all."""
    words = quickdraw_words()
    by_key = {_key(w): w for w in words}
    out = []
    for raw in requested:
        word = by_key.get(_key(raw))
        if word is None:
            close = difflib.get_close_matches(_key(raw), list(by_key), n=3, cutoff=0.6)
            names = [repr(by_key[c]) for c in close]
            hint = f"did you mean {' or '.join([', '.join(names[:-1]), names[-1]] if len(names) > 1 else names)}? " \
                if close else ""
            raise OptionError(f"{raw!r} is not one of the 345 Quick, Draw! words; {hint}"
                              "`sketchprep download quickdraw --list` prints them all")
        if word not in out:
            out.append(word)
    return out


def _key(word: str) -> str:
    return " ".join(word.replace("_", " ").split()).lower()


def sketchrnn_models() -> list[str]:
    """The names of Google's published sketch-rnn models, as magenta.js's sketch/README.md lists them."""
    text = resources.files("sketchprep").joinpath("data", "sketchrnn_models.txt").read_text(encoding="utf-8")
    return [w for w in text.splitlines() if w]


def resolve_models(requested: list[str]) -> list[str]:
    """The published spelling of each requested model name (case, spaces for `_` and a trailing
    `.gen.json` forgiven); an unknown name is an OptionError naming the closest ones."""
    names = sketchrnn_models()
    by_key = {_key(n): n for n in names}
    out = []
    for raw in requested:
        name = by_key.get(_key(raw.removesuffix(MODEL_EXT)))
        if name is None:
            close = difflib.get_close_matches(_key(raw), list(by_key), n=3, cutoff=0.6)
            hint = f"did you mean {' or '.join(repr(by_key[c]) for c in close)}? " if close else ""
            raise OptionError(f"{raw!r} is not one of the {len(names)} published sketch-rnn models; {hint}"
                              "`sketchprep download model --list` prints them all")
        if name not in out:
            out.append(name)
    return out


def model_url(name: str, base: str, large: bool = False) -> str:
    return f"{base}/{MODEL_FOLDERS[large]}/{urllib.parse.quote(name)}{MODEL_EXT}"


def download_models(names: list[str], out_dir: str | Path, *, large: bool = False, base: str | None = None,
                    cache_dir: str | Path | None = None, use_cache: bool = True, retries: int = 3,
                    timeout: float = 60.0, progress: Progress | None = None) -> list[Fetched]:
    """Fetch each named sketch-rnn model (`NAME.gen.json`, from `models/`, or `large_models/` with
    `large`) into `out_dir`, cached in `cache_dir/sketchrnn/<folder>/`, resumed and checked as
    `download_quickdraw` does."""
    names = resolve_models(names)
    base = base_url(base, MODELS_BASE_URL_ENV, MODELS_BASE_URL)
    items = [(name, model_url(name, base, large), name + MODEL_EXT) for name in names]
    return _download_all(items, "model", out_dir, ("sketchrnn", MODEL_FOLDERS[large]), cache_dir=cache_dir,
                         use_cache=use_cache, retries=retries, timeout=timeout, progress=progress,
                         missing_hint="Check the name (--list) and --large, or the mirror given by --base-url / $"
                                      + MODELS_BASE_URL_ENV)


def default_cache_dir() -> Path:
    """$SKETCHPREP_CACHE, else $XDG_CACHE_HOME/sketchprep, else ~/.cache/sketchprep."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "sketchprep"


def base_url(given: str | None = None, env: str = BASE_URL_ENV, default: str = BASE_URL) -> str:
    """The base URL: `given`, else $`env` ($SKETCHPREP_QUICKDRAW_URL), else `default` (Google's bucket)."""
    url = (given or os.environ.get(env) or default).rstrip("/")
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError for a port that is not a number from 0 to 65535)
    except ValueError as e:
        raise OptionError(f"base URL {url[:200]!r} cannot be read as a URL ({e})") from None
    if parts.scheme not in ("http", "https", "file"):
        raise OptionError(f"base URL {url[:200]!r} is not an http://, https:// or file:// URL")
    return url


def max_file_bytes() -> int:
    """The largest file `download` writes: $SKETCHPREP_DOWNLOAD_MAX_MB MiB, else MAX_FILE_BYTES."""
    text = os.environ.get(MAX_FILE_MB_ENV, "").strip()
    if not text:
        return MAX_FILE_BYTES
    if not (text.isascii() and text.isdigit() and 0 < len(text) <= 12 and int(text) > 0):
        raise OptionError(f"${MAX_FILE_MB_ENV} must be a whole number of MiB >= 1, not {text[:40]!r}")
    return int(text) * 2**20


def url_for(word: str, fmt: str, base: str) -> str:
    folder, ext = FORMATS[fmt]
    return f"{base}/{folder}/{urllib.parse.quote(word)}{ext}"


def file_name(word: str, fmt: str) -> str:
    """Google's file name: the word as spelled, with its format's extension (`hot dog.ndjson`)."""
    return word + FORMATS[fmt][1]


Progress = Callable[..., object]  # progress(total=..., initial=..., desc=...) -> object with update(n), close()


def download_quickdraw(words: list[str], fmt: str, out_dir: str | Path, *, base: str | None = None,
                       cache_dir: str | Path | None = None, use_cache: bool = True, retries: int = 3,
                       timeout: float = 60.0, progress: Progress | None = None) -> list[Fetched]:
    """Fetch each word's file in format `fmt` into `out_dir`; see the module docstring.

    With `use_cache` the file lands in `cache_dir/quickdraw/<fmt>/` first and is hard-linked (else copied)
    into `out_dir`; without it, straight into `out_dir`. A download cut off mid-way is retried `retries`
    times from where it stopped, and a later call resumes it too."""
    if fmt not in FORMATS:
        raise OptionError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    words = resolve_words(words)
    base = base_url(base)
    items = [(word, url_for(word, fmt, base), file_name(word, fmt)) for word in words]
    return _download_all(items, fmt, out_dir, ("quickdraw", fmt), cache_dir=cache_dir, use_cache=use_cache,
                         retries=retries, timeout=timeout, progress=progress)


def _download_all(items: list[tuple[str, str, str]], fmt: str, out_dir: str | Path, cache_folder: tuple[str, ...], *,
                  cache_dir, use_cache: bool, retries: int, timeout: float, progress,
                  missing_hint: str | None = None) -> list[Fetched]:
    """Each (name, url, file name) of `items` into `out_dir`, through `cache_dir/<cache_folder>/` with
    `use_cache`; `fmt` says what the files must start with (_MAGIC)."""
    out_dir = Path(out_dir)
    _make_dir(out_dir)
    store = (Path(cache_dir) if cache_dir is not None else default_cache_dir()).joinpath(*cache_folder)
    if use_cache:
        _make_dir(store)
    results = []
    for word, url, name in items:
        target = (store if use_cache else out_dir) / name
        fetched = _cached(word, url, target)
        if fetched is None:
            fetched = _fetch(word, url, target, fmt, retries=retries, timeout=timeout, progress=progress,
                             record=use_cache, missing_hint=missing_hint)
        if use_cache:
            _place(target, out_dir / name)
            fetched.path = out_dir / name
        results.append(fetched)
    return results


def _make_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise DownloadError("exists and is not a folder. Give a folder with -o", str(path)) from None


def _meta_path(target: Path) -> Path:
    return target.with_name(target.name + ".json")


_RECORD_FIELDS = {"url": (str,), "size": (int, type(None)), "md5": (str, type(None)), "etag": (str, type(None)),
                  "size_checked": (bool,)}


def _read_record(path: Path) -> dict:
    """A download record (`X.json` beside a download or its `.part`), or {} when it is missing, unreadable
    or damaged (not an object, or a field of the wrong type): the download then starts over."""
    try:
        record = json.loads(files.read_bytes(path, "a download record", files.SMALL_FILE_BYTES))
    except (OSError, ValueError, SketchprepError):
        return {}
    if not isinstance(record, dict) or not all(_typed(record[key], types) for key, types in _RECORD_FIELDS.items()
                                               if key in record):
        return {}
    return record


def _typed(value, types: tuple) -> bool:
    return isinstance(value, types) and (bool in types or not isinstance(value, bool))  # True is an int too


def _cached(word: str, url: str, target: Path) -> Fetched | None:
    """A complete earlier download of the same URL (its record says so and the size agrees), else None."""
    meta = _read_record(_meta_path(target))
    try:
        st = target.lstat()
    except OSError:
        return None
    if not meta or not stat.S_ISREG(st.st_mode):  # a link planted in the cache is not a file
        return None
    size = st.st_size
    if meta.get("url") != url or meta.get("size") != size:
        return None
    return Fetched(word, target, url, size, "cached", bool(meta.get("md5")), bool(meta.get("size_checked", True)))


def _fetch(word: str, url: str, target: Path, fmt: str, *, retries: int, timeout: float, progress,
           record: bool, missing_hint: str | None = None) -> Fetched:
    """Download `url` to `target` through `target.part`; `record` keeps a `target.json` for the cache."""
    part = target.with_name(target.name + ".part")
    part_meta = _meta_path(part)
    for path in (part, target):
        if os.path.lexists(path) and not stat.S_ISREG(os.lstat(path).st_mode):
            raise DownloadError(f"is {_kind(path)}, not a regular file; the download never writes through one. "
                                "Remove it and run the same command again", str(path))
    resumed = False
    for attempt in range(retries + 1):
        try:
            info = _get(url, part, part_meta, timeout=timeout, progress=progress, desc=target.name,
                        missing_hint=missing_hint)
            resumed = resumed or info["resumed"]
            break
        except _Retry as e:
            if attempt == retries:
                raise DownloadError(f"download cut off after {part.stat().st_size if part.exists() else 0:,} "
                                    f"bytes ({e}); {part.name} is kept: run the same command again to resume",
                                    url) from None
            resumed = True
            time.sleep(0.25 * 2 ** attempt)
    size = part.stat().st_size
    if info["size"] is not None and size != info["size"]:
        raise DownloadError(f"got {size:,} bytes where the server announced {info['size']:,}; "
                            f"{part.name} is kept: run the same command again to resume", url)
    _check_content(part, part_meta, fmt, url)
    md5_checked = False
    if info["md5"]:
        digest = base64.b64encode(_md5(part)).decode()
        if digest != info["md5"]:
            part.unlink()
            part_meta.unlink(missing_ok=True)
            raise DownloadError(f"MD5 {digest} does not match the server's {info['md5']}: the file was "
                                "damaged on the way and is deleted; run the same command again", url)
        md5_checked = True
    _meta_path(target).unlink(missing_ok=True)
    os.replace(part, target)
    size_checked = info["size"] is not None
    if record:
        _write_json(_meta_path(target), {"url": url, "size": size, "md5": info["md5"], "etag": info["etag"],
                                         "size_checked": size_checked})
    part_meta.unlink(missing_ok=True)
    return Fetched(word, target, url, size, "resumed" if resumed else "downloaded", md5_checked, size_checked)


class _Retry(Exception):
    """A transfer that stopped early; the .part file holds what arrived."""


def _get(url: str, part: Path, part_meta: Path, *, timeout: float, progress, desc: str,
         missing_hint: str | None = None) -> dict:
    """Continue `part` from its current size (or start it) and return what the server said about the file."""
    have = part.stat().st_size if part.exists() else 0
    known = _read_record(part_meta) if have else {}
    if have and known.get("url") != url:
        have, known = 0, {}  # a .part of something else: start over
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
        if known.get("etag"):
            headers["If-Range"] = known["etag"]  # the server sends the whole file if it changed since
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except http.client.HTTPException as e:  # not HTTP: a header line over 64 KiB, > 100 headers, a bad status line
        raise DownloadError(f"the server's answer is not valid HTTP ({_describe(e)}). Check --base-url, or try "
                            "again later", url) from None
    except urllib.error.HTTPError as e:
        if e.code == 416 and have and known.get("size") == have:  # already complete
            return {"size": have, "md5": known.get("md5"), "etag": known.get("etag"), "resumed": True}
        if e.code == 416:
            part.unlink()
            raise _Retry("the server refused the resume; starting over") from None
        if e.code == 404:
            raise DownloadError("not found on the server (404). " + (missing_hint or "Check the word and the format, "
                                "or the mirror given by --base-url / $" + BASE_URL_ENV), url) from None
        raise DownloadError(f"the server answered HTTP {e.code} {e.reason}. Try again later, or use a mirror "
                            f"with --base-url", url) from None
    except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as e:
        reason = getattr(e, "reason", None) or e
        raise DownloadError(f"cannot reach the server ({reason}). Check the network, or use a mirror with "
                            f"--base-url", url) from None
    with response:
        status = getattr(response, "status", 200)
        etag = response.headers.get("ETag")
        md5 = _md5_header(response.headers.get_all("x-goog-hash") or [])
        if status == 206:
            start, total = _content_range(response.headers.get("Content-Range"), url)
            if start != have:
                part.unlink()
                raise _Retry(f"the server resumed at byte {start}, not {have}; starting over")
            resumed = True
        else:
            total = _size_header(response.headers.get("Content-Length"), "Content-Length", url)
            have, resumed = 0, False
        limit = max_file_bytes()
        _check_room(total, have, limit, part, url)
        md5 = md5 or (known.get("md5") if resumed else None)
        if resumed and known.get("size") is not None and total is not None and known["size"] != total:
            part.unlink()
            raise _Retry("the file changed on the server since the first try; starting over")
        _write_json(part_meta, {"url": url, "size": total, "md5": md5, "etag": etag or known.get("etag")})
        bar = progress(total=total, initial=have, desc=desc) if progress else None
        try:
            # read1 returns what has arrived, so a stall loses nothing that came before it
            read = getattr(response, "read1", response.read)
            got = have
            with open_for_writing(part, "ab" if resumed else "wb") as f:
                while True:
                    try:
                        chunk = read(CHUNK)
                    except (OSError, TimeoutError, ConnectionError, urllib.error.URLError) as e:
                        raise _Retry(str(e) or type(e).__name__) from None
                    except http.client.HTTPException as e:  # IncompleteRead and friends
                        raise _Retry(type(e).__name__) from None
                    if not chunk:
                        break
                    if got + len(chunk) > (total if total is not None else limit):  # never written
                        f.close()
                        part.unlink()
                        part_meta.unlink(missing_ok=True)
                        raise DownloadError(
                            f"the server sent more than the {total:,} bytes it announced; the download is deleted"
                            if total is not None else
                            f"the file is larger than {limit:,} bytes, the most a download may be (raise it with "
                            f"${MAX_FILE_MB_ENV}=<MiB>); the download is deleted", url)
                    f.write(chunk)
                    got += len(chunk)
                    if bar is not None:
                        bar.update(len(chunk))
        finally:
            if bar is not None:
                bar.close()
    got = part.stat().st_size
    if total is not None and got < total:
        raise _Retry(f"the connection closed at {got:,} of {total:,} bytes")
    return {"size": total, "md5": md5, "etag": etag, "resumed": resumed}


# What each format's files start with: a server that answers with something else (an HTML error page,
# a login portal) is caught even when it sends no MD5.
_MAGIC = {"raw": (b"{",), "simplified": (b"{",), "npz": (b"PK\x03\x04", b"PK\x05\x06"), "model": (b"[",)}


def _check_content(part: Path, part_meta: Path, fmt: str, url: str) -> None:
    with files.open_regular(part, "a download") as f:
        head = f.read(64)
    expected = _MAGIC.get(fmt)
    if expected is None or head.lstrip().startswith(expected):
        return
    part.unlink()
    part_meta.unlink(missing_ok=True)
    kind = {"npz": "a .npz (zip) file", "model": "a .gen.json model (a JSON array)"}.get(fmt, "ndjson")
    raise DownloadError(f"the server sent something that is not {kind} (it starts with {head[:24]!r}); "
                        "check --base-url, or the network's login page", url)


def _content_range(value: str | None, url: str) -> tuple[int, int | None]:
    """(first byte, total size or None) of `Content-Range: bytes START-END/TOTAL`."""
    _, _, rest = (value or "").partition(" ")
    span, _, total = rest.partition("/")
    start = span.split("-")[0]
    if not _is_size(start) or not (_is_size(total) or total == "*"):
        raise DownloadError(f"the server sent a partial answer without a readable Content-Range "
                            f"({(value or '')[:80]!r}). Delete the .part file and try again", url)
    return int(start), (int(total) if total != "*" else None)


_SIZE_DIGITS = 19  # a size of up to 19 digits (below 10^19 bytes) is a number; more is not an answer


def _is_size(text: str) -> bool:
    return text.isascii() and text.isdigit() and len(text) <= _SIZE_DIGITS


def _size_header(value: str | None, name: str, url: str) -> int | None:
    """The size a header announces; None when it is absent. A value that is not a plain number of at most
    19 ASCII digits (`12e9`, `-1`, 5,000 digits, Unicode digits) is refused."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if not _is_size(text):
        raise DownloadError(f"the server announced an unreadable {name} ({text[:40]!r}"
                            f"{f', {len(text):,} characters' if len(text) > 40 else ''}). Check --base-url", url)
    return int(text)


def _check_room(total: int | None, have: int, limit: int, part: Path, url: str) -> None:
    """Refuse, before anything is written, a file over the bound or over the free space of its disk."""
    if total is None:
        return
    if total > limit:
        raise DownloadError(f"the server announces {total:,} bytes, more than the {limit:,} a download may be "
                            f"(raise it with ${MAX_FILE_MB_ENV}=<MiB>). Check --base-url", url)
    free = shutil.disk_usage(part.parent).free
    if total - have > free:
        raise DownloadError(f"the file is {total:,} bytes and {total - have:,} more do not fit: {free:,} bytes are "
                            f"free in {part.parent}. Free some space, or give --cache-dir on a larger disk", url)


def _describe(e: BaseException) -> str:
    """An exception in at most about 100 characters, on one line."""
    text = str(e)
    text = repr(text[:80])[1:-1] + ("..." if len(text) > 80 else "")
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def _kind(path: Path) -> str:
    mode = os.lstat(path).st_mode
    return ("a symbolic link" if stat.S_ISLNK(mode) else "a folder" if stat.S_ISDIR(mode)
            else "a FIFO" if stat.S_ISFIFO(mode) else "a device or socket")


def _md5_header(values: list[str]) -> str | None:
    """The base64 MD5 of `x-goog-hash: crc32c=...,md5=...` (Cloud Storage sends it for whole objects)."""
    for value in values:
        for item in value.split(","):
            name, _, digest = item.strip().partition("=")
            if name == "md5" and digest:
                return digest
    return None


def _md5(path: Path) -> bytes:
    h = hashlib.md5(usedforsecurity=False)
    with files.open_regular(path, "a download") as f:  # never a device a link points to: it could be endless
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.digest()


def _write_json(path: Path, obj: dict) -> None:
    with atomic_output(path, "w") as f:  # replaces a link at `path`, never writes through it
        f.write(json.dumps(obj))


def _place(source: Path, dest: Path) -> None:
    """Put the cached file at `dest`: a hard link when both are on one file system, else a copy (atomic)."""
    if dest.exists() and dest.samefile(source):
        return
    tmp = dest.with_name(dest.name + ".tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp, follow_symlinks=False)
    except OSError:
        size = source.stat().st_size
        free = shutil.disk_usage(dest.parent).free
        if size > free:
            raise DownloadError(f"{size:,} bytes do not fit: {free:,} bytes are free. Free some space, or give "
                                "another -o", str(dest)) from None
        with open(source, "rb") as f_in, atomic_output(dest) as f_out:
            shutil.copyfileobj(f_in, f_out, CHUNK)
        return
    os.replace(tmp, dest)
