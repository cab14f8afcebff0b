"""dalib's own checkpoint file: safetensors weights + the model's config as JSON metadata.

The file format only: :func:`save_checkpoint` writes any model with a ``config`` (``to_json``)
under its ``checkpoint_format`` name, :func:`read_checkpoint` gives back (metadata, weights)
with clear errors, :func:`checkpoint_metadata` the metadata alone. Building a model from a
file is the model's business: ``dalib.model.load_checkpoint`` (a DepthAnything) and
``dalib.segmentation.load_segmenter``. Writes are atomic (temporary file + ``os.replace``), so
a killed job never leaves a half-written file under the final name. Released ``.pth`` files
load with ``dalib.model.load_official`` instead.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from dalib.io import atomic_write

CHECKPOINT_FORMAT = "dalib.DepthAnything/1"


def save_checkpoint(
    model: nn.Module, path: str | os.PathLike, extra_metadata: Mapping[str, str] | None = None
) -> Path:
    """Write the weights as safetensors with ``model.config`` (JSON) in the metadata; atomic.

    The format name is ``model.checkpoint_format`` if the model has one, else
    :data:`CHECKPOINT_FORMAT` (a DepthAnything). ``extra_metadata`` (str -> str, e.g. training
    step, dataset key) is stored alongside and read back by :func:`checkpoint_metadata`.
    Returns the path.
    """
    path = Path(path)
    kind = getattr(model, "checkpoint_format", CHECKPOINT_FORMAT)
    metadata = {"format": kind, "config": model.config.to_json()}
    for key, value in (extra_metadata or {}).items():
        if key in metadata or not isinstance(key, str) or not isinstance(value, str):
            raise ValueError(
                f"extra_metadata must map str to str and avoid {sorted(metadata)}; "
                f"got {key!r}: {value!r}"
            )
        metadata[key] = value
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    with atomic_write(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return path


def checkpoint_metadata(path: str | os.PathLike, kind: str = CHECKPOINT_FORMAT) -> dict[str, str]:
    """The metadata of a dalib checkpoint of format ``kind`` (``format``, ``config``, extras)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as err:
        raise ValueError(f"{path} is not a readable safetensors checkpoint: {err}") from err
    if metadata.get("format") != kind or "config" not in metadata:
        found = metadata.get("format", "no dalib format")
        raise ValueError(
            f"{path} is not a {kind} checkpoint ({found} in its metadata; official .pth "
            "files load with load_official_checkpoint)"
        )
    return dict(metadata)


def read_checkpoint(
    path: str | os.PathLike, kind: str = CHECKPOINT_FORMAT, map_location: str | torch.device = "cpu"
) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """(metadata, weights) of a dalib checkpoint of format ``kind``; clear errors otherwise."""
    path = Path(path)
    metadata = checkpoint_metadata(path, kind)
    try:
        with safe_open(str(path), framework="pt", device=str(map_location)) as f:
            state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (not a dict)
    except (SafetensorError, OSError) as err:
        raise ValueError(f"could not read the weights of {path}: {err}") from err
    return metadata, state


__all__ = [
    "CHECKPOINT_FORMAT",
    "checkpoint_metadata",
    "read_checkpoint",
    "save_checkpoint",
]
