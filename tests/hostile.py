"""Run `sketchprep` on crafted input in a subprocess and check how it fails.

A hostile case passes when the command exits with the expected code, says what went wrong in one
`Error:` line (no traceback), stays within its time and memory bound, changes no file it was not
asked to write, and leaves no temporary file behind. Test modules build their crafted files with
generators (no binaries checked in) and call `run_case`.
"""
from __future__ import annotations

import hashlib
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ADDRESS_SPACE_CAP = 8 * 2**30   # a runaway case fails inside the child instead of taking the machine


@dataclass
class Outcome:
    rc: int
    stdout: str
    stderr: str
    seconds: float            # wall-clock
    cpu_seconds: float        # user + system CPU time of the command and every process it waited for
    peak_mb: float            # largest resident set of the command or any process it waited for

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith("Error:")]


# The command runs under a small launcher that forks it and reports its peak memory and CPU time: a child
# forked from pytest itself would inherit pytest's own high-water mark (Linux keeps ru_maxrss across fork
# and exec).
_LAUNCHER = """
import os, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (int(sys.argv[1]), int(sys.argv[1])))
pid = os.fork()
if pid == 0:
    os.execv(sys.executable, [sys.executable, "-m", "sketchprep", *sys.argv[3:]])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[2], "w") as f:
    f.write(f"{usage.ru_maxrss} {usage.ru_utime + usage.ru_stime}")
code = os.waitstatus_to_exitcode(status)
sys.exit(128 - code if code < 0 else code)
"""


def run_sketchprep(args: list[str], cwd: Path, stdin: bytes | None = None, timeout: float = 10.0,
                   env: dict | None = None) -> Outcome:
    """`python -m sketchprep ARGS` in `cwd`, timed, with its peak memory (wait4's ru_maxrss of the command)."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1", **(env or {})}
    with tempfile.TemporaryDirectory(prefix="hostile-") as scratch:
        out_path, err_path, peak_path = (Path(scratch) / n for n in ("stdout", "stderr", "peak"))
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            start = time.perf_counter()
            proc = subprocess.Popen([sys.executable, "-c", _LAUNCHER, str(ADDRESS_SPACE_CAP), str(peak_path), *args],
                                    cwd=cwd, env=full_env, start_new_session=True,
                                    stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                                    stdout=out, stderr=err)
            killer = threading.Timer(timeout, lambda: os.killpg(proc.pid, signal.SIGKILL))
            killer.start()
            try:
                if stdin is not None:
                    try:
                        proc.stdin.write(stdin)
                    except BrokenPipeError:
                        pass
                    proc.stdin.close()
                proc.wait()
            finally:
                killer.cancel()
            seconds = time.perf_counter() - start
        peak_kb, cpu = map(float, peak_path.read_text().split()) if peak_path.exists() else (math.nan, math.nan)
        return Outcome(proc.returncode, out_path.read_text(errors="replace"), err_path.read_text(errors="replace"),
                       seconds, cpu, peak_kb / 1024)


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under `folder` (relative path -> sha256)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def run_case(folder: Path, args: list[str], *, rc: int = 1, message: str | None = None, creates: tuple[str, ...] = (),
             stdin: bytes | None = None, max_seconds: float = 10.0, max_mb: float = 1000.0,
             env: dict | None = None) -> Outcome:
    """Run one hostile case in `folder` and assert the guarantees; returns the outcome for extra checks.

    rc: expected exit code (1 for a refused input, 2 for a usage error, 0 when the bad part is counted
    and reported). message: a substring the stderr must contain. creates: paths (relative to `folder`)
    the command may write; every other file must be left byte for byte as it was, and nothing new may
    appear (temporary files included).
    """
    before = snapshot(folder)
    # The bound is on CPU time, which other processes on a busy machine do not stretch; the wall-clock limit,
    # far above it, only catches a command that waits for ever (a hang uses no CPU).
    outcome = run_sketchprep(args, folder, stdin=stdin, timeout=3 * max_seconds + 30, env=env)
    where = f"sketchprep {' '.join(args)}\n--- stderr ---\n{outcome.stderr[-3000:]}"
    assert "Traceback" not in outcome.stderr, f"traceback from {where}"
    assert outcome.rc == rc, f"exit {outcome.rc}, expected {rc}: {where}"
    if rc == 1:
        assert len(outcome.error_lines) == 1, f"expected exactly one 'Error:' line: {where}"
    if rc == 2:
        assert "Error:" in outcome.stderr, f"a usage error must say 'Error:': {where}"
    if message is not None:
        assert message.lower() in outcome.stderr.lower(), f"{message!r} not in the message: {where}"
    assert outcome.cpu_seconds < max_seconds, \
        f"took {outcome.cpu_seconds:.1f} s of CPU ({outcome.seconds:.1f} s wall; bound {max_seconds} s): {where}"
    assert outcome.peak_mb < max_mb, f"peak {outcome.peak_mb:.0f} MB (bound {max_mb} MB): {where}"
    after = snapshot(folder)
    changed = sorted(p for p in before if p not in creates and after.get(p) != before[p])
    appeared = sorted(p for p in after if p not in before and p not in creates)
    assert not changed, f"changed or removed {changed}: {where}"
    assert not appeared, f"left behind {appeared}: {where}"
    return outcome
