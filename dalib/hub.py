"""Released Depth Anything V1 checkpoints: addresses, checksums, verified downloads (the model
is built from them by ``dalib.model.load_official``).

The files live in the authors' Hugging Face Space (``LiheYoung/Depth-Anything``, folder
``checkpoints/``, uploaded by LiheYoung in commit 843bd97, January 2024). The sha256 values
are the Git LFS object ids shown on the Hub for those files (identical in the official
Space and in its duplicates).

Downloads go through ``huggingface_hub.hf_hub_download``, the mechanism and cache timm uses
for DINOv2 (``$HF_HOME``, by default ``~/.cache/huggingface``; resumable, written atomically),
after a 3-second reachability check so that an offline machine fails at once with a clear
error. Every file is sha256-verified before it is used, wherever it came from. A copy fetched
by hand can instead be put at ``$DALIB_HOME/hub/<file name>`` (``~/.cache/dalib`` when
``DALIB_HOME`` is unset), which is looked at first.
"""

from __future__ import annotations

import os
import socket
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from dalib.config import HOME_ENV
from dalib.download import download, sha256_of

SPACE_REPO = "LiheYoung/Depth-Anything"  # a Hugging Face *Space* (repo_type "space")
SPACE_URL = f"https://huggingface.co/spaces/{SPACE_REPO}/resolve/main/checkpoints"


@dataclass(frozen=True)
class OfficialCheckpoint:
    """One released file: its encoder size, address and published sha256."""

    encoder: str
    url: str
    sha256: str
    size_bytes: int | None = None

    @property
    def filename(self) -> str:
        """The file's path inside the Space, as ``hf_hub_download`` takes it."""
        return "checkpoints/" + self.url.rsplit("/", 1)[-1]


OFFICIAL_CHECKPOINTS: dict[str, OfficialCheckpoint] = {
    "vits": OfficialCheckpoint(
        "vits",
        f"{SPACE_URL}/depth_anything_vits14.pth",
        "59afe57cfd9f4284deaf5b753d954723d7136ae842fba3e068ba03537ca1e60e",
    ),  # 99.2 MB
    "vitb": OfficialCheckpoint(
        "vitb",
        f"{SPACE_URL}/depth_anything_vitb14.pth",
        "64ae214ae4e27424b644c49464c0aa243016f6f753d95097c8eb9ad0b9cb2d9b",
    ),  # 390 MB
    "vitl": OfficialCheckpoint(
        "vitl",
        f"{SPACE_URL}/depth_anything_vitl14.pth",
        "6c6a383e33e51c5fdfbf31e7ebcda943973a9e6a1cbef1564afe58d7f2e8fe63",
        1_341_401_882,
    ),
}


def hub_dir() -> Path:
    """Where downloaded weights are cached: ``$DALIB_HOME/hub`` or ``~/.cache/dalib``."""
    home = os.environ.get(HOME_ENV)
    return Path(home).expanduser() / "hub" if home else Path.home() / ".cache" / "dalib"


def _reachable(url: str, timeout: float = 3.0) -> bool:
    """True if a TCP connection to the URL's host opens within ``timeout`` seconds."""
    parts = urllib.parse.urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def dinov2_weights_file(timm_name: str) -> Path:
    """Local file of timm's DINOv2 weights ``timm_name`` (Hugging Face repo ``timm/<name>``).

    Uses the huggingface_hub cache when it has the file; otherwise downloads it, after a
    3-second reachability check so that an offline machine gets a clear ``ConnectionError``
    at once instead of minutes of retries.
    """
    from huggingface_hub import constants, hf_hub_download, try_to_load_from_cache

    repo = f"timm/{timm_name}"
    for filename in ("model.safetensors", "pytorch_model.bin"):
        cached = try_to_load_from_cache(repo, filename)
        if isinstance(cached, str):
            return Path(cached)
    if not _reachable(constants.ENDPOINT):
        raise ConnectionError(
            f"could not download the DINOv2 weights {repo} (offline? "
            f"{constants.ENDPOINT} is unreachable); run once with internet so "
            "huggingface_hub caches them, or pass the path of a DINOv2 state dict"
        )
    return Path(hf_hub_download(repo, "model.safetensors"))


def official_checkpoint_path(encoder: str, progress: bool = True) -> Path:
    """Local path of the released ``depth_anything_{encoder}14.pth``, downloaded if missing.

    Looks for a verified copy at ``hub_dir()/<file>``, then in the huggingface_hub cache,
    then downloads it with ``hf_hub_download``. Raises ``ConnectionError`` naming the URL and
    where a hand-fetched copy may go when offline, ``ValueError`` on a sha256 mismatch."""
    if encoder not in OFFICIAL_CHECKPOINTS:
        raise ValueError(
            f"no released checkpoint for encoder {encoder!r}; "
            f"choose one of {sorted(OFFICIAL_CHECKPOINTS)}"
        )
    from huggingface_hub import constants, errors, hf_hub_download, try_to_load_from_cache
    from huggingface_hub.utils import (
        are_progress_bars_disabled,
        disable_progress_bars,
        enable_progress_bars,
    )

    entry = OFFICIAL_CHECKPOINTS[encoder]
    manual = hub_dir() / Path(entry.filename).name
    if manual.is_file():
        return _verified(manual, entry)
    cached = try_to_load_from_cache(SPACE_REPO, entry.filename, repo_type="space")
    if isinstance(cached, str):
        return _verified(Path(cached), entry)
    if not _reachable(constants.ENDPOINT):
        raise ConnectionError(
            f"could not download {entry.url} (offline?) ({constants.ENDPOINT} is unreachable); "
            f"or download it elsewhere and put it at {manual}"
        )
    silence = not progress and not are_progress_bars_disabled()  # restore what the user had
    if silence:
        disable_progress_bars()
    try:
        path = Path(hf_hub_download(SPACE_REPO, entry.filename, repo_type="space"))
    except (OSError, errors.EntryNotFoundError) as err:  # HTTP and connection errors: OSErrors
        raise ConnectionError(
            f"could not download {entry.url} ({err}); or download it elsewhere and put it at {manual}"
        ) from err
    finally:
        if silence:
            enable_progress_bars()
    return _verified(path, entry)


def _verified(path: Path, entry: OfficialCheckpoint) -> Path:
    """``path`` if its sha256 is the published one; else a ValueError saying what to delete."""
    actual = sha256_of(path)
    if actual != entry.sha256:
        raise ValueError(
            f"sha256 mismatch for {path} ({entry.url}): expected {entry.sha256}, got {actual}; "
            "delete the file (in the huggingface cache: `huggingface-cli delete-cache`) and retry"
        )
    return path


__all__ = [
    "OFFICIAL_CHECKPOINTS",
    "OfficialCheckpoint",
    "dinov2_weights_file",
    "download",
    "hub_dir",
    "official_checkpoint_path",
    "sha256_of",
]
