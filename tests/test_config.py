import random

import numpy as np
import pytest
import torch

from dalib import config, synth
from dalib.pool import pool_size
from dalib.report import build_report, markdown_table, write_section


def test_profile_switch_by_environment(monkeypatch):
    monkeypatch.setenv("DALIB_PROFILE", "full")
    assert config.get_profile().name == "full"
    monkeypatch.setenv("DALIB_PROFILE", "FAST ")
    assert config.get_profile().name == "fast"
    monkeypatch.delenv("DALIB_PROFILE")
    assert config.get_profile().name == "full"  # the documented default


def test_explicit_name_beats_environment(monkeypatch):
    monkeypatch.setenv("DALIB_PROFILE", "full")
    assert config.get_profile("fast").name == "fast"


def test_unknown_profile_error_names_source(monkeypatch):
    monkeypatch.setenv("DALIB_PROFILE", "huge")
    with pytest.raises(ValueError, match=r"huge.*DALIB_PROFILE"):
        config.get_profile()
    with pytest.raises(ValueError, match="argument"):
        config.get_profile("tiny")


def test_profiles_are_consistent():
    fast, full = config.PROFILES["fast"], config.PROFILES["full"]
    for prof in config.PROFILES.values():
        assert prof.image_size % 14 == 0, prof.name
        assert prof.render_size >= prof.image_size
    assert fast.teacher_steps < full.teacher_steps and fast.n_labeled < full.n_labeled
    assert not fast.progress  # stable nbval output
    assert fast.replace(teacher_steps=7).teacher_steps == 7 and fast.teacher_steps != 7


def test_seed_everything_reproduces():
    g1 = config.seed_everything(3)
    a = (random.random(), np.random.rand(), torch.rand(2), torch.rand(2, generator=g1))
    g2 = config.seed_everything(3)
    b = (random.random(), np.random.rand(), torch.rand(2), torch.rand(2, generator=g2))
    assert a[0] == b[0] and a[1] == b[1]
    assert torch.equal(a[2], b[2]) and torch.equal(a[3], b[3])


def test_device_choice(monkeypatch):
    monkeypatch.delenv("DALIB_DEVICE", raising=False)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert config.get_device().type == expected
    assert config.get_device("cpu").type == "cpu"
    monkeypatch.setenv("DALIB_DEVICE", "cpu")
    assert config.get_device().type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA"):
            config.get_device("cuda")
    if not torch.backends.mps.is_available():
        with pytest.raises(RuntimeError, match="MPS"):
            config.get_device("mps")


def test_threads():
    before = torch.get_num_threads()
    try:
        assert config.set_threads(1) == 1 and torch.get_num_threads() == 1
        assert config.set_threads() >= 1
        with pytest.raises(ValueError):
            config.set_threads(0)
    finally:
        torch.set_num_threads(before)


def test_artifact_root_per_profile(tmp_path, monkeypatch):
    monkeypatch.setenv("DALIB_HOME", str(tmp_path / "home"))
    assert config.artifact_root("fast") == tmp_path / "home" / "fast"
    assert config.artifact_root(config.PROFILES["full"]).is_dir()


def test_artifact_root_unwritable(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("DALIB_HOME", str(blocker))
    with pytest.raises(OSError, match="artifact folder"):
        config.artifact_root("fast")


def test_report_sections_joined_in_key_order():
    write_section("20_b", "Second", "two")
    write_section("10_a", "First", markdown_table(["x", "y"], [[1, 0.5]]))
    text = build_report("fast").read_text()
    assert text.index("## First") < text.index("## Second")
    assert "| 1 | 0.500 |" in text and "torch" in text
    with pytest.raises(ValueError):
        write_section("../evil", "x", "y")
    with pytest.raises(ValueError, match="cells"):
        markdown_table(["a"], [[1, 2]])


@pytest.mark.parametrize("name", ["full", "colab"])
def test_profile_mirrors_the_papers_regime(name):
    prof = config.PROFILES[name]
    labeled = len(synth.LABELED) * prof.n_labeled
    pool = pool_size(prof)
    assert pool >= 10 * labeled  # the paper: 62M unlabeled vs 1.5M labeled
    passes = prof.student_steps * 2 * prof.batch_size / pool
    assert 0.8 <= passes <= 1.25  # the student sees each unlabeled image about once, at 1:2
    assert prof.student_steps >= prof.teacher_steps  # equal budgets: labeled images seen


def test_pretrained_encoders_of_the_profiles():
    full = config.PROFILES["full"]
    assert config.PROFILES["colab"].pretrained_encoder == "dinov2"  # online, like gpu
    assert full.pretrained_encoder == "synthetic" and config.PROFILES["fast"].pretrained_encoder
