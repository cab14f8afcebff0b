"""Shared test set-up: the fast profile, a private artifact root, few threads."""

import pytest
import torch

torch.set_num_threads(2)


@pytest.fixture(autouse=True)
def _isolated_runs(tmp_path, monkeypatch):
    """Every test writes artifacts under its own tmp folder, in the fast profile."""
    monkeypatch.setenv("DALIB_HOME", str(tmp_path / "runs"))
    monkeypatch.setenv("DALIB_PROFILE", "fast")
