"""The one error boundary: every command, decorated or not, nested or not, turns what a user can cause
into one `Error:` line with the documented exit code; a real bug keeps its traceback."""
from __future__ import annotations

import errno
import os
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from hostile import ROOT
from sketchprep.cli import main
from sketchprep.cli.app import SafeGroup
from sketchprep.errors import DatasetFormatError, OptionError


def group_raising(exc: BaseException) -> click.Group:
    """A throwaway group like `main`, with an undecorated command and a nested group's command that raise."""
    @click.group(cls=SafeGroup)
    def g():
        pass

    @g.command()
    def boom():
        raise exc

    @g.group()
    def sub():
        pass

    @sub.command("deep")
    def deep():
        raise exc

    return g


CASES = [
    (OSError(errno.EROFS, "Read-only file system", "/ro/out.npz"), 1,
     "Error: /ro/out.npz: Read-only file system. Write the output to a writable folder"),
    (OSError(errno.ENOSPC, "No space left on device", "/d/.out.npz.123.ab12cd.sketchprep-tmp"), 1,
     "Error: /d/out.npz: No space left on device. Free some disk space, or write the output elsewhere"),
    (PermissionError(errno.EACCES, "Permission denied", "x.npz"), 1,
     "Error: x.npz: Permission denied. Check its permissions, or use another path"),
    (IsADirectoryError(errno.EISDIR, "Is a directory", "out"), 1, "Error: out: Is a directory. Give a file name"),
    (OSError(errno.ENAMETOOLONG, "File name too long", "a" * 300), 1,
     f"Error: {'a' * 80}...{'a' * 40}: File name too long. Use a shorter file name"),
    (FileNotFoundError(errno.ENOENT, "No such file or directory", "gone.svg"), 1,
     "Error: gone.svg: No such file or directory. Check the path"),
    (OSError(errno.EXDEV, "Invalid cross-device link", "a", None, "b"), 1, "Error: b: Invalid cross-device link"),
    (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"), 1,
     "Error: cannot decode text as utf-8 (invalid start byte at byte 0). Save the file as UTF-8"),
    (MemoryError(), 1, "Error: out of memory."),
    (KeyboardInterrupt(), 130, "Error: interrupted (Ctrl-C)"),
    (DatasetFormatError("bad", path="x.npz"), 1, "Error: x.npz: bad"),
    (OptionError("--thing must be >= 1"), 2, "Error: --thing must be >= 1"),
]


@pytest.mark.parametrize("exc,code,line", CASES, ids=[type(c[0]).__name__ + str(i) for i, c in enumerate(CASES)])
@pytest.mark.parametrize("where", [["boom"], ["sub", "deep"]])
def test_failures_a_user_causes_become_one_error_line(exc, code, line, where):
    result = CliRunner().invoke(group_raising(exc), where)
    assert result.exit_code == code, result.output
    errors = [x for x in result.output.splitlines() if x.startswith("Error:")]
    assert len(errors) == 1 and errors[0].startswith(line), result.output
    assert "Traceback" not in result.output


def test_a_unicode_error_names_its_file_when_the_library_knows_it():
    e = UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")
    e.filename = "recipe.toml"
    result = CliRunner().invoke(group_raising(e), ["boom"])
    assert "Error: recipe.toml: cannot decode text as utf-8" in result.output


def test_sigterm_unwinds_like_ctrl_c_with_its_own_code_and_words():
    from sketchprep.errors import Terminated

    result = CliRunner().invoke(group_raising(Terminated()), ["sub", "deep"])
    assert result.exit_code == 143 and result.output.startswith("Error: terminated (SIGTERM)"), result.output


def test_a_real_bug_keeps_its_traceback():
    result = CliRunner().invoke(group_raising(ZeroDivisionError("bug")), ["boom"])
    assert isinstance(result.exception, ZeroDivisionError)


def test_every_command_and_group_goes_through_the_boundary():
    assert isinstance(main, SafeGroup)
    assert isinstance(main.commands["pipeline"], click.Group)  # nested: invoked inside main's boundary


def _shell(cmd: str, cwd) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(cmd, shell=True, cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=False)


def test_stdin_closed_reads_as_empty_input(tmp_path):
    for cmd in ("render - -o g.svg", "stats - --json", "convert - out.npz"):
        proc = _shell(f"{sys.executable} -m sketchprep {cmd} <&-", tmp_path)
        assert "Traceback" not in proc.stderr, proc.stderr
        errors = [x for x in proc.stderr.splitlines() if x.startswith("Error:")]
        assert (proc.returncode, len(errors)) in ((0, 0), (1, 1), (2, 1)), proc.stderr
