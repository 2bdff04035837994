"""Shared test fixtures.

Real third-party data lives beside the repository in `../shared/data` (or where SKETCHPREP_SHARED_DATA
points). Tests that need it use `shared_data(...)`, which skips with a clear reason when it is absent.
"""
import os
import signal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# CI machines are small and shared: time limits per example would make property tests flaky.
settings.register_profile("sketchprep", deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile("sketchprep")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SKETCHPREP_SHARED_DATA", REPO.parent / "shared" / "data"))
SAMPLE = REPO / "sketchprep" / "data" / "quickdraw_sample"


def shared_fixture(*parts: str) -> Path:
    """Path under the shared fixtures folder (`fixtures/` beside the data folder: `../shared/fixtures`,
    or SKETCHPREP_SHARED_FIXTURES); skips the test when it is not there."""
    root = Path(os.environ.get("SKETCHPREP_SHARED_FIXTURES", SHARED_DATA.parent / "fixtures"))
    path = root.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"reference fixtures not found: {path} (set SKETCHPREP_SHARED_FIXTURES or SKETCHPREP_SHARED_DATA)")
    return path


def shared_data(*parts: str) -> Path:
    """Path under the shared real-data folder; skips the test when that folder is not there."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not found: {path} (set SKETCHPREP_SHARED_DATA)")
    return path


def ctrl_c_reaches_child() -> None:
    """Popen's preexec_fn for a test that sends SIGINT: the child starts with SIGINT at its default, so that
    Python turns it into KeyboardInterrupt. A test run started in the background (`pytest &` in a script)
    inherits SIGINT ignored, and Python keeps an inherited ignore: the signal would be lost."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture(scope="module")
def one_torch_thread():
    """torch on one thread for the module's tests (small batches: more threads only add overhead)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
