"""Writing outputs so that nothing is lost.

- `check_output` refuses, before any input is read, an output that is one of the inputs (or a file an
  input folder would read next time), anything inside a run folder that is an input, an existing
  folder, a name too long for its file system, or a place that cannot be written (missing folder, a
  file where a folder should be, read-only, no permission).
- `check_ours` refuses to write a set of files into a folder that holds any of them unless the folder's
  first file carries this tool's marker (`export --html DIR` never replaces a user's own `index.html`).
- `open_for_writing` opens a file for writing without following a symbolic link at its name, and refuses
  one that is not a regular file (a FIFO, a device): a planted link in a cache cannot redirect a write.
- `folder_lock` holds an exclusive lock on a folder (a run folder, a pipeline's output folder) for as
  long as a process writes into it; the kernel releases it when the process dies, however it dies.
- `atomic_output` writes a file to an anonymous temporary file in the output's folder (Linux
  `O_TMPFILE`: it has no name, so even `kill -9` leaves nothing behind), then links it under a
  temporary name and renames it over the output. Where `O_TMPFILE` is not supported the temporary file
  has a name from the start. Temporary names are `.<name>.<pid>.<random>.sketchprep-tmp`; a later write
  of the same output removes those whose process is gone (what a `kill -9` in the last instant leaves).
- `atomic_folder` does the same for a set of files (`convert --by-word`): a temporary folder beside
  the destination, renamed into place (or its files moved in, with signals held back) at the end.
- `scratch_file` opens a temporary working file beside an output (unnamed where `O_TMPFILE` works, so
  that even `kill -9` leaves nothing; otherwise named like the temporary files above and removed at the end).
- `sigterm_raises` turns SIGTERM into `Terminated` (a KeyboardInterrupt) so that cleanup runs;
  `die_with_parent` makes a child process end when the process that started it ends (even by kill -9).
"""
from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import signal
import stat
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from .errors import OutputError, Terminated
from .files import glob_paths

TMP_SUFFIX = ".sketchprep-tmp"
_NAME_IN_TMP = 60  # characters of the output's name kept in its temporary name (bounded: NAME_MAX)


def _nearest_existing(path: Path) -> Path:
    p = path
    while not os.path.lexists(p) and p != p.parent:
        p = p.parent
    return p


def _name_max(folder: Path) -> int:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):
        return 255


def _inputs_holding(path: Path, inputs: Iterable[str], read_suffixes: tuple[str, ...]) -> str | None:
    """The input that `path` is (same file), or the input folder that would read it; None if none."""
    real = os.path.realpath(path)
    for item in inputs:
        if item == "-":
            continue
        hits = glob_paths(item) if any(c in item for c in "*?[") and not os.path.exists(item) else [item]
        for hit in hits:
            if os.path.isdir(hit):
                folder = os.path.realpath(hit)
                if real.startswith(folder.rstrip(os.sep) + os.sep) and real.lower().endswith(read_suffixes):
                    return hit
            elif os.path.exists(path) and os.path.exists(hit):
                if os.path.samefile(path, hit):
                    return hit
            elif os.path.realpath(hit) == real:
                return hit
    return None


# Files that make a folder a run: what `train` and `import` write, and a Magenta model's files.
RUN_FILES = ("latest.pt", "best.pt", "hparams.json", "metrics.jsonl", "model_config.json")


def run_folder(path: str | os.PathLike) -> str | None:
    """The run folder an input names (real path): the folder itself, or the folder of a checkpoint file
    when that folder holds a run's files; None for a file elsewhere (a checkpoint in a downloads folder)."""
    if os.path.isdir(path):
        return os.path.realpath(path)
    parent = os.path.dirname(os.path.realpath(path))
    if os.path.exists(path) and any(os.path.lexists(os.path.join(parent, n)) for n in RUN_FILES):
        return parent
    return None


def _inside(real: str, folder: str) -> bool:
    return real == folder or real.startswith(folder.rstrip(os.sep) + os.sep)


def check_outside_runs(path: str | os.PathLike, runs: Iterable[str | os.PathLike], *, option: str = "the output") -> None:
    """Refuse an output (file or folder) at or inside the folder of one of `runs` (see `run_folder`)."""
    real = os.path.realpath(path)
    for run in runs:
        held = run_folder(run)
        if held is not None and _inside(real, held):
            shown = run if os.path.isdir(run) else os.path.dirname(os.fspath(run)) or "."
            raise OutputError(f"is inside the run folder {shown}, an input of this command; writing there could "
                              f"replace the run's own files. Write {option} outside the run folder", path=os.fspath(path))


def check_output(path: str | os.PathLike, inputs: Iterable[str] = (), *, folder: bool = False,
                 read_suffixes: tuple[str, ...] = (), runs: Iterable[str | os.PathLike] = (),
                 option: str = "the output") -> None:
    """Refuse an output that cannot or must not be written; raises `OutputError` naming the fix.

    folder: the output is a folder of files (`--by-word DIR`) rather than one file.
    read_suffixes: file endings an input folder reads; an output inside such a folder with such an
    ending would be read as an input next time.
    runs: inputs that are runs (a run folder or a checkpoint in one); nothing may be written inside
    their folder, whatever its name (a run's files belong to the run, and `train` may be writing them).
    """
    p = Path(os.fspath(path))
    text = os.fspath(path)
    if not text:
        raise OutputError(f"{option} is an empty name. Give a file name")
    check_outside_runs(path, runs, option=option)
    if folder:
        if os.path.exists(p) and not os.path.isdir(p):
            raise OutputError("exists and is a file, not a folder. Give a folder name", path=text)
    else:
        if os.path.isdir(p) or text.endswith(os.sep):
            raise OutputError(f"is a folder; {option} must be a file. Give a file name inside it, "
                              f"e.g. {os.path.join(text, 'out' + (p.suffix or '.npz'))}", path=text)
        same = _inputs_holding(p, inputs, read_suffixes)
        if same is not None:
            if os.path.isdir(same):
                raise OutputError(f"is inside the input folder {same}, which would read it as a drawing next time. "
                                  f"Write {option} outside that folder", path=text)
            raise OutputError(f"is also an input ({same}); writing it would destroy that input. "
                              f"Choose another name for {option}", path=text)
    parent = p.parent if str(p.parent) else Path(".")
    existing = _nearest_existing(parent)
    name_max = _name_max(existing if existing.is_dir() else Path("."))
    for part in p.parts:
        if len(os.fsencode(part)) > name_max:
            raise OutputError(f"a name in the path is {len(os.fsencode(part))} bytes long; this file system allows "
                              f"{name_max}. Use a shorter file name", path=text[:80] + "...")
    if not os.path.lexists(parent):
        if existing.exists() and not existing.is_dir():
            raise OutputError(f"{existing} is a file, not a folder. Check the path", path=text)
        raise OutputError(f"folder {parent} does not exist. Create it first (mkdir -p {parent}) or check the path",
                          path=text)
    if not parent.is_dir():
        raise OutputError(f"{parent} is not a folder. Check the path", path=text)
    try:  # the real test: permissions, read-only file systems, ACLs and root all answer here
        fd, probe = tempfile.mkstemp(prefix=".sketchprep-probe-", suffix=TMP_SUFFIX, dir=parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        fix = ("Write it to a writable folder" if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM)
               else "Free some space or write it elsewhere" if e.errno in (errno.ENOSPC, errno.EDQUOT)
               else "Check the path")
        raise OutputError(f"cannot write in {parent}: {e.strerror or e}. {fix}", path=text) from None


def check_ours(folder: str | os.PathLike, names: Iterable[str], marker: bytes, *, option: str = "the output") -> None:
    """Refuse to write the files `names` into `folder` when any of them is there already and is not this
    tool's: the first name is the folder's main file (a page's `index.html`), and its first 64 KiB must
    hold `marker`. A folder that holds none of the names is always fine; so is one whose main file is ours
    (the rest of a page belongs to the page). A link or a non-regular file never counts as ours."""
    names = list(names)
    present = [n for n in names if os.path.lexists(os.path.join(folder, n))]
    if not present:
        return
    main_file = os.path.join(folder, names[0])
    if names[0] in present and _holds_marker(main_file, marker):
        return
    first = os.path.join(folder, present[0])
    raise OutputError(f"{option} {folder} already holds {present[0]}, and this tool did not write it "
                      f"(it lacks the marker {marker.decode(errors='replace')!r} in {names[0]}). Move those files "
                      f"away or choose another folder", path=first)


def _holds_marker(path: str, marker: bytes) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return False
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        return marker in os.read(fd, 65536)
    finally:
        os.close(fd)


def open_for_writing(path: str | os.PathLike, mode: str = "wb"):
    """`open(path, mode)` for writing ("wb" or "ab") that never follows a symbolic link at `path` and refuses
    a FIFO, device or folder there; raises `OutputError` naming the path."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    flags |= os.O_APPEND if mode.startswith("a") else 0
    try:
        fd = os.open(path, flags, 0o666 & ~_umask())
    except OSError as e:
        if e.errno == errno.ELOOP or (e.errno in (errno.ENXIO, errno.EISDIR) and os.path.lexists(path)):
            raise OutputError(f"is {_kind(path)}, not a regular file; sketchprep never writes through one. "
                              "Remove it and try again", path=os.fspath(path)) from None
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise OutputError(f"is {_kind(path)}, not a regular file; sketchprep never writes through one. "
                          "Remove it and try again", path=os.fspath(path))
    os.set_blocking(fd, True)
    if not mode.startswith("a"):
        os.ftruncate(fd, 0)
    return os.fdopen(fd, mode)


def _kind(path) -> str:
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return "not a regular file"
    return ("a symbolic link" if stat.S_ISLNK(mode) else "a FIFO" if stat.S_ISFIFO(mode)
            else "a folder" if stat.S_ISDIR(mode) else "a socket" if stat.S_ISSOCK(mode)
            else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a regular file")


# ---------------------------------------------------------------------------------------------------
# Temporary files


def _tmp_prefix(path: Path) -> str:
    return f".{path.name[:_NAME_IN_TMP]}."


def _tmp_name(path: Path) -> Path:
    return path.with_name(f"{_tmp_prefix(path)}{os.getpid()}.{secrets.token_hex(4)}{TMP_SUFFIX}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale(path: str | os.PathLike) -> list[str]:
    """Remove temporary files and folders of earlier writes of `path` whose process is gone (a `kill -9`);
    returns what was removed."""
    path = Path(path)
    removed = []
    try:
        candidates = [e for e in os.scandir(path.parent if str(path.parent) else ".")
                      if e.name.startswith(_tmp_prefix(path)) and e.name.endswith(TMP_SUFFIX)]
    except OSError:
        return removed
    for entry in candidates:
        fields = entry.name[len(_tmp_prefix(path)):-len(TMP_SUFFIX)].split(".")
        if len(fields) != 2 or not fields[0].isdigit() or _alive(int(fields[0])):
            continue
        with contextlib.suppress(OSError):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
            removed.append(entry.path)
    return removed


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_LINK_METHOD: dict[int, str | None] = {}  # st_dev -> how an O_TMPFILE file there is given a name (None: it cannot)


def _link_fd(fd: int, dest: Path, method: str) -> None:
    """Give the unnamed file `fd` the name `dest`."""
    if method == "proc":
        os.link(f"/proc/self/fd/{fd}", dest, follow_symlinks=True)
        return
    import ctypes  # linkat(fd, "", AT_FDCWD, dest, AT_EMPTY_PATH): where /proc cannot link (needs privilege)

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.linkat(fd, b"", -100, os.fsencode(dest), 0x1000) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), str(dest))


def _open_anonymous(folder: Path) -> tuple[int, str] | None:
    """An unnamed file in `folder` and how to link it in at the end, or None where that does not work."""
    flag = getattr(os, "O_TMPFILE", None)
    if flag is None or not os.path.isdir("/proc/self/fd"):
        return None
    try:
        dev = os.stat(folder).st_dev
        if dev not in _LINK_METHOD:  # some systems open O_TMPFILE but refuse one way of linking it (EXDEV)
            _LINK_METHOD[dev] = None
            for method in ("proc", "empty_path"):
                fd = os.open(folder, flag | os.O_RDWR, 0o600)
                probe = folder / f".sketchprep-probe-{os.getpid()}-{secrets.token_hex(4)}{TMP_SUFFIX}"
                try:
                    _link_fd(fd, probe, method)
                    os.unlink(probe)
                    _LINK_METHOD[dev] = method
                    break
                except (OSError, AttributeError):
                    pass
                finally:
                    os.close(fd)
        method = _LINK_METHOD[dev]
        if method is None:
            return None
        return os.open(folder, flag | os.O_RDWR, 0o666 & ~_umask()), method
    except OSError:  # file systems without O_TMPFILE (NFS, some FUSE) answer EOPNOTSUPP, EISDIR or EINVAL
        return None


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, mode: str = "wb"):
    """Open a temporary file for `path`; on success it replaces `path`, on any error or signal it is gone.

    Missing parent folders are created (callers that must not create them call `check_output` first).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(path)
    anonymous = _open_anonymous(path.parent)
    tmp: Path | None = None
    if anonymous is None:
        tmp = _tmp_name(path)
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666 & ~_umask())
    else:
        fd, method = anonymous
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
            if tmp is None:  # give the anonymous file a name; the rename below is the commit
                tmp = _tmp_name(path)
                _link_fd(f.fileno(), tmp, method)
        os.replace(tmp, path)
    except BaseException:
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        raise


@contextlib.contextmanager
def scratch_file(near: str | os.PathLike) -> Iterator[tuple[int, str]]:
    """A temporary read-write file in the folder of `near` (an output that may not exist yet): yields its
    descriptor and a path by which this process and the processes it forks can open it; it is gone after
    the block (unnamed files: as soon as the descriptor is closed, whatever ends the process)."""
    near = Path(near)
    folder = near.parent if str(near.parent) else Path(".")
    anonymous = _open_anonymous(folder) if folder.is_dir() else None
    named: Path | None = None
    if anonymous is not None:
        fd = anonymous[0]
        path = f"/proc/self/fd/{fd}"  # the same file in a forked child, which inherits the descriptor
    else:
        remove_stale(near)
        named = _tmp_name(near)
        fd = os.open(named, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        path = str(named)
    try:
        yield fd, path
    finally:
        os.close(fd)
        if named is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(named)


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside `path` to fill; on success its files land in `path` (a new folder is
    renamed into place; in an existing one each file replaces its namesake, other files stay), on error
    or signal the temporary folder is removed and `path` is as it was."""
    path = Path(path)
    remove_stale(path)
    tmp = _tmp_name(path)
    tmp.mkdir()
    try:
        yield tmp
        with _signals_held():
            if not os.path.lexists(path):
                os.rename(tmp, path)
            else:
                for entry in sorted(os.listdir(tmp)):
                    os.replace(tmp / entry, path / entry)
                tmp.rmdir()
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def _signals_held():
    """Hold SIGINT/SIGTERM back for a few renames (they arrive after)."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    held = {signal.SIGINT, signal.SIGTERM}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


# ---------------------------------------------------------------------------------------------------
# Signals


def _raise_terminated(signum, frame):
    raise Terminated()


@contextlib.contextmanager
def sigterm_raises():
    """Within the block, SIGTERM raises `Terminated` in the main thread (so `finally` and `except
    BaseException` cleanup runs: worker pools stopped, temporary files removed). No-op off the main thread."""
    try:
        old = signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def die_with_parent(sig: int = signal.SIGKILL, parent: int | None = None) -> None:
    """Ask the kernel to send `sig` to this process when its parent ends, even by kill -9 (Linux
    PR_SET_PDEATHSIG; elsewhere nothing), and end now if `parent` (its pid, taken before the fork) is
    already gone. The setting survives exec; it fires when the parent's thread that started this
    process ends, so start children from the main thread."""
    if sys.platform.startswith("linux"):
        try:
            _prctl()(1, int(sig), 0, 0, 0)  # 1: PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if parent is not None and os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


_PRCTL = []


def _prctl():
    """libc's prctl, looked up once (in the parent: the child of a fork should not load libraries)."""
    if not _PRCTL:
        import ctypes

        _PRCTL.append(ctypes.CDLL(None, use_errno=True).prctl)
    return _PRCTL[0]


def dies_with_us(sig: int = signal.SIGTERM):
    """A `preexec_fn` for subprocess.Popen: the child gets `sig` when this process ends, however it ends."""
    parent = os.getpid()
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            _prctl()
    return lambda: die_with_parent(sig, parent)


# ---------------------------------------------------------------------------------------------------
# One writer per folder

LOCK_NAME = ".sketchprep.lock"
_HELD: dict[str, list] = {}  # real path of a folder this process has locked -> [lock file descriptor, depth]


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike, what: str = "folder"):
    """Hold an exclusive lock on `folder` for the block: `fcntl.flock` on `folder/.sketchprep.lock`, which
    holds the holder's PID. A second process gets an `OutputError` naming the folder and that PID at once
    (no waiting). The kernel drops the lock when its process ends, however it ends (kill -9 too), so no
    stale lock is ever left; the file is removed on a normal exit. Re-entrant within a process. A missing
    folder is created, and removed again at the end if nothing was written into it."""
    import fcntl

    folder = Path(folder)
    key = os.path.realpath(folder)
    if key in _HELD:
        _HELD[key][1] += 1
        try:
            yield
        finally:
            _HELD[key][1] -= 1
        return
    made = []
    p = Path(key)
    while not os.path.lexists(p) and p != p.parent:
        made.append(p)
        p = p.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputError(f"is a file, not a folder; the {what} must be a folder. Choose another name",
                          path=str(folder)) from None
    lock_path = os.path.join(key, LOCK_NAME)
    fd = None
    try:
        for _ in range(100):  # a holder that is releasing removes the file: lock the file that is there now
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o644)
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise OutputError(f"{LOCK_NAME} in this {what} is not a regular file. Remove it", path=str(folder))
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 32).decode("ascii", "replace").strip()
                who = f"PID {holder}" if holder.isdigit() else "another process"
                raise OutputError(f"this {what} is in use by another sketchprep process ({who}), which holds "
                                  f"its lock. Wait for it to end, or choose another {what}",
                                  path=str(folder)) from None
            try:
                same = os.stat(lock_path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
            fd = None
        else:
            raise OutputError(f"cannot take the lock of this {what} (its lock file keeps changing)", path=str(folder))
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        _HELD[key] = [fd, 1]
        yield
    except BaseException:
        if fd is not None and key not in _HELD:
            os.close(fd)
            fd = None
        raise
    finally:
        if key in _HELD:
            del _HELD[key]
            with contextlib.suppress(OSError):
                os.unlink(lock_path)  # still locked: a process that opened it meanwhile sees it is gone
            os.close(fd)
        for d in made:  # folders made for the lock alone
            try:
                os.rmdir(d)
            except OSError:
                break
