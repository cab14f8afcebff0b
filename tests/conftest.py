"""Shared test set-up: the fast profile, a private artifact root, one thread.

One intra-op thread: the unit tests run small steps, and on a 2-core machine two OpenMP threads
per process ran them 10-30x slower whenever another process was busy (CI runs nothing else,
but developers do).
"""

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _isolated_runs(tmp_path, monkeypatch):
    """Every test writes artifacts under its own tmp folder, in the fast profile, and leaves
    torch's thread count as it found it (the CLI sets threads; a leak would change the float
    reduction order of later tests that compare in-process with subprocess results)."""
    monkeypatch.setenv("DALIB_HOME", str(tmp_path / "runs"))
    monkeypatch.setenv("DALIB_PROFILE", "fast")
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)
