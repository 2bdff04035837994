"""Opening the files sketchprep reads: regular files only, each read with a bound.

Every reader (drawings, `.npz` datasets and shards, recipes, presets, pipeline state, download records,
checkpoints, TensorFlow and sketch-rnn-js models, metrics) opens its file through `open_regular`. A
FIFO, a device (`/dev/zero`, `/dev/urandom`, also through a link), a socket or a folder is refused
before a byte is read, with the same words everywhere: `data.npz: not a regular file (a FIFO)`. The
file is opened with `O_NONBLOCK`, so opening a FIFO never waits for a writer, and the check is an
`fstat` of the descriptor that is then read: nothing can swap the file between the check and the read.

`read_bytes` and `read_text` read a whole file of at most `max_bytes` (the bounds are in
docs/limits.md) and refuse a file that changed size while it was read. Standard input (`-`) is a
stream, not a file: the readers that accept it bound what they take from it themselves.

`glob_paths` expands a pattern like `glob.glob(recursive=True)` but never descends into a linked
folder at `**`, as folder inputs are walked: a link cycle cannot make it enumerate for ever.
"""
from __future__ import annotations

import errno
import glob
import io
import os
import stat
from typing import BinaryIO

from .errors import InputError, shown

# Bounds on the files read whole (docs/limits.md, "Files: regular files only"): far above any real one.
SMALL_FILE_BYTES = 2**20        # a recipe, preset, pipeline state, download record, model_config.json, TF `checkpoint`
METRICS_BYTES = 256 * 2**20     # a run's metrics.jsonl (a million logged rows are about 200 MB)
TF_INDEX_BYTES = 64 * 2**20     # a TensorFlow checkpoint's .index (about 100 bytes per variable)

_KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"))


class NotRegularFileError(OSError):
    """A path that names a FIFO, a device or a socket: reading it could block or never end. An OSError, so
    every reader reports it where it reports a missing or unreadable file, with its own words around it."""


def _kind(mode: int) -> str:
    for test, name in _KINDS:
        if test(mode):
            return name
    return "not a file or folder"


def _not_regular(path, mode: int) -> NotRegularFileError:
    text = os.fspath(path)
    what = _kind(mode)
    if os.path.islink(text):
        what += f", through a link to {shown(os.path.realpath(text))}"
    return NotRegularFileError(errno.EINVAL, f"not a regular file ({what})", text)


def check_regular(path: str | os.PathLike) -> None:
    """Raise `NotRegularFileError` (or the OSError of a missing path) unless `path` is a regular file or a
    folder (followed through links). For names checked before their reader opens them."""
    mode = os.stat(path).st_mode
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise _not_regular(path, mode)


def open_regular(path: str | os.PathLike, what: str = "file", max_bytes: int | None = None) -> BinaryIO:
    """`path` opened for binary reading, if it is a regular file (and with `max_bytes`, no larger).

    Raises FileNotFoundError, PermissionError, IsADirectoryError (a folder, as `open` does),
    `NotRegularFileError` (a FIFO, device or socket) or `InputError` (over `max_bytes`, naming `what`)."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as e:  # a socket, or a device without a driver, cannot even be opened: say what it is
        if e.errno not in (errno.ENXIO, errno.ENODEV, errno.EOPNOTSUPP):
            raise
        try:
            mode = os.stat(path).st_mode
        except OSError:
            raise e from None
        raise _not_regular(path, mode) from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), os.fspath(path))
        if not stat.S_ISREG(st.st_mode):
            raise _not_regular(path, st.st_mode)
        if max_bytes is not None and st.st_size > max_bytes:
            raise _too_large(path, what, st.st_size, max_bytes)
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)  # a regular file never blocks; later readers expect a plain descriptor
        return io.open(fd, "rb", closefd=True)
    except BaseException:
        os.close(fd)
        raise


def _too_large(path, what: str, size: int | str, max_bytes: int) -> InputError:
    size_text = f"{size:,} bytes" if isinstance(size, int) else size
    return InputError(f"{size_text} is too large for {what} (at most {max_bytes:,} bytes)", path=os.fspath(path))


def read_bytes(path: str | os.PathLike, what: str, max_bytes: int) -> bytes:
    """The whole content of a regular file of at most `max_bytes` (see `open_regular`); a file that shrinks
    or grows while it is read is refused (`InputError`)."""
    with open_regular(path, what, max_bytes) as f:
        size = os.fstat(f.fileno()).st_size
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise _too_large(path, what, f"more than {max_bytes:,} bytes", max_bytes)
    if len(data) != size:
        raise changed_while_read(path, size, len(data))
    return data


def read_text(path: str | os.PathLike, what: str, max_bytes: int, encoding: str = "utf-8") -> str:
    """`read_bytes` decoded (UnicodeDecodeError, with the file's name, when it is not `encoding`)."""
    data = read_bytes(path, what, max_bytes)
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as e:
        e.filename = os.fspath(path)  # the error boundary names the file
        raise


def changed_while_read(path, before: int, after: int) -> InputError:
    """The error for a file that another program changed while sketchprep read it (sizes in bytes: when it
    was opened, and what was found after; equal when it was rewritten in place)."""
    how = (f"it had {before:,} bytes, then {after:,}" if before != after else "it was rewritten")
    return InputError(f"changed while it was read ({how}). Run again once the file is complete",
                      path=os.fspath(path))


def identity(path: str) -> tuple | None:
    """What tells that a file changed: its size, modification time and inode (None if it cannot be stat'ed)."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev


def is_regular_file(path: str | os.PathLike) -> bool:
    """A regular file (through links): what folder walks and globs pick up."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def glob_paths(pattern: str) -> list[str]:
    """The sorted paths matching `pattern` (`glob.glob` with `recursive=True`), except that `**` never
    descends into a linked folder (it still matches the link itself, and a pattern part without `**`
    follows links as glob does: that is bounded by the pattern's length)."""
    parts = pattern.split(os.sep)
    if os.altsep:
        parts = [q for p in parts for q in p.split(os.altsep)]
    if "**" not in parts:
        return sorted(glob.glob(pattern))
    at = parts.index("**")
    head, rest = os.sep.join(parts[:at]), os.sep.join(parts[at + 1:])
    if at and not head:
        head = os.sep  # an absolute pattern: /**/x
    bases = glob.glob(head) if glob.has_magic(head) else ([head] if not head or os.path.isdir(head) else [])
    found: set[str] = set()
    for base in bases:
        if base and not os.path.isdir(base):
            continue
        for folder, dirs, files in os.walk(base or os.curdir, followlinks=False):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))  # glob's `**` skips hidden names too
            rel = os.path.relpath(folder, base or os.curdir)
            here = base if rel == os.curdir else (os.path.join(base, rel) if base else rel)
            if not rest:  # `dir/**`: every folder and file under it
                if here and rel == os.curdir:
                    found.add(os.path.join(here, ""))
                found.update(os.path.join(here, n) for n in (*dirs, *files) if not n.startswith("."))
                continue
            found.update(glob_paths(os.path.join(glob.escape(here), rest)) if here else glob_paths(rest))
    return sorted(found)
