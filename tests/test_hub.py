"""Tests of dalib.hub with local files standing in for downloads (file:// URLs)."""

from __future__ import annotations

import hashlib
import re

import pytest

from dalib import hub

PAYLOAD = b"depth anything test payload " * 1000
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


@pytest.fixture
def source(tmp_path):
    path = tmp_path / "remote" / "weights.pth"
    path.parent.mkdir()
    path.write_bytes(PAYLOAD)
    return path


def leftovers(folder):
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


def test_download_with_correct_hash(source, tmp_path):
    dest = tmp_path / "cache" / "weights.pth"
    assert hub.download(source.as_uri(), dest, PAYLOAD_SHA, progress=False) == dest
    assert dest.read_bytes() == PAYLOAD and hub.sha256_of(dest) == PAYLOAD_SHA
    assert leftovers(dest.parent) == []
    source.unlink()  # a verified file is reused, not downloaded again
    assert hub.download(source.as_uri(), dest, PAYLOAD_SHA.upper(), progress=False) == dest


def test_download_with_wrong_hash_deletes_it(source, tmp_path):
    dest = tmp_path / "cache" / "weights.pth"
    with pytest.raises(ValueError, match=f"sha256 mismatch.*got {PAYLOAD_SHA}"):
        hub.download(source.as_uri(), dest, "0" * 64, progress=False)
    assert not dest.exists() and leftovers(dest.parent) == []


def test_download_replaces_a_corrupt_existing_file(source, tmp_path):
    dest = tmp_path / "weights.pth"
    dest.write_bytes(b"truncated")
    hub.download(source.as_uri(), dest, PAYLOAD_SHA, progress=False)
    assert dest.read_bytes() == PAYLOAD


def test_unreachable_source_is_a_clear_error(tmp_path):
    dest = tmp_path / "cache" / "weights.pth"
    missing = (tmp_path / "nowhere" / "weights.pth").as_uri()
    with pytest.raises(
        ConnectionError,
        match=rf"could not download {re.escape(missing)} \(offline\?\).*{dest.name}",
    ):
        hub.download(missing, dest, PAYLOAD_SHA, progress=False)
    assert not dest.exists()


def test_missing_hash_is_explicit(source, tmp_path):
    dest = hub.download(source.as_uri(), tmp_path / "w.pth", None, progress=False)
    assert dest.read_bytes() == PAYLOAD
    with pytest.raises(TypeError):
        hub.download(source.as_uri(), tmp_path / "w2.pth")  # the hash argument is required


def test_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("DALIB_HOME", str(tmp_path))
    assert hub.hub_dir() == tmp_path / "hub"
    monkeypatch.delenv("DALIB_HOME")
    assert hub.hub_dir().parts[-2:] == (".cache", "dalib")


def test_official_table():
    assert sorted(hub.OFFICIAL_CHECKPOINTS) == ["vitb", "vitl", "vits"]
    for encoder, entry in hub.OFFICIAL_CHECKPOINTS.items():
        assert entry.url.endswith(f"/depth_anything_{encoder}14.pth")
        assert re.fullmatch(r"[0-9a-f]{64}", entry.sha256)
    assert len({e.sha256 for e in hub.OFFICIAL_CHECKPOINTS.values()}) == 3


@pytest.fixture
def fake_space(monkeypatch, source, tmp_path):
    """huggingface_hub stood in by local files: an empty cache, a reachable Hub whose
    ``hf_hub_download`` returns ``source`` (and records its calls), DALIB_HOME in tmp_path."""
    import huggingface_hub

    calls = []

    def fake_download(repo_id, filename, repo_type=None, **kwargs):
        calls.append((repo_id, filename, repo_type))
        return str(source)

    monkeypatch.setenv("DALIB_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda *a, **k: None)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    monkeypatch.setattr(hub, "_reachable", lambda url, timeout=3.0: True)
    fake = hub.OfficialCheckpoint("vits", f"{hub.SPACE_URL}/depth_anything_vits14.pth", PAYLOAD_SHA)
    monkeypatch.setitem(hub.OFFICIAL_CHECKPOINTS, "vits", fake)
    return calls


def test_official_checkpoint_comes_through_hf_hub_download(fake_space, source):
    assert hub.official_checkpoint_path("vits", progress=False) == source
    assert fake_space == [(hub.SPACE_REPO, "checkpoints/depth_anything_vits14.pth", "space")]
    with pytest.raises(ValueError, match="tiny"):
        hub.official_checkpoint_path("tiny")


def test_official_checkpoint_is_verified_wherever_it_comes_from(fake_space, monkeypatch, source,
                                                                  tmp_path):
    source.write_bytes(b"tampered")
    with pytest.raises(ValueError, match=f"sha256 mismatch for {re.escape(str(source))}"):
        hub.official_checkpoint_path("vits", progress=False)
    manual = tmp_path / "home" / "hub" / "depth_anything_vits14.pth"  # a copy put there by hand
    manual.parent.mkdir(parents=True)
    manual.write_bytes(PAYLOAD)
    fake_space.clear()
    assert hub.official_checkpoint_path("vits", progress=False) == manual
    assert fake_space == []  # used without asking the Hub


def test_official_checkpoint_offline_error_names_url_and_where_to_put_it(fake_space, monkeypatch,
                                                                          tmp_path):
    monkeypatch.setattr(hub, "_reachable", lambda url, timeout=3.0: False)
    entry = hub.OFFICIAL_CHECKPOINTS["vits"]
    where = tmp_path / "home" / "hub" / "depth_anything_vits14.pth"
    with pytest.raises(ConnectionError, match=rf"could not download {re.escape(entry.url)} "
                       rf"\(offline\?\).*put it at {re.escape(str(where))}"):
        hub.official_checkpoint_path("vits", progress=False)
    assert fake_space == []


def test_dinov2_offline_fails_fast(monkeypatch):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda *a, **k: None)
    monkeypatch.setattr(hub, "_reachable", lambda url, timeout=3.0: False)
    with pytest.raises(ConnectionError, match="offline"):
        hub.dinov2_weights_file("vit_small_patch14_dinov2.lvd142m")


def test_reachable_refuses_closed_port():
    assert hub._reachable("http://127.0.0.1:9", timeout=1.0) is False
