"""dalib's own checkpoints: safetensors weights + the ModelConfig as JSON metadata.

A checkpoint alone rebuilds the model: ``load_checkpoint(path)`` reads the config from the
metadata, builds ``DepthAnything(config=...)`` and loads the weights strictly. Writes are
atomic (temporary file + ``os.replace``), so a killed job never leaves a half-written file
under the final name. Released ``.pth`` files load with
``dalib.model.load_official_checkpoint`` instead.
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
    """Write the weights as safetensors with the ModelConfig (JSON) in the metadata; atomic.

    ``extra_metadata`` (str -> str, e.g. training step, dataset key) is stored alongside and
    read back by :func:`checkpoint_metadata`. Returns the path.
    """
    path = Path(path)
    metadata = {"format": CHECKPOINT_FORMAT, "config": model.config.to_json()}
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


def checkpoint_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The metadata of a dalib checkpoint (``format``, ``config`` and any extra entries)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as err:
        raise ValueError(f"{path} is not a readable safetensors checkpoint: {err}") from err
    if metadata.get("format") != CHECKPOINT_FORMAT or "config" not in metadata:
        raise ValueError(
            f"{path} is not a dalib model checkpoint (no {CHECKPOINT_FORMAT} config "
            "in its metadata; official .pth files load with load_official_checkpoint)"
        )
    return dict(metadata)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the ``DepthAnything`` saved by :func:`save_checkpoint`, in eval mode."""
    from dalib.model import DepthAnything, ModelConfig  # here: dalib.model re-exports this module

    path = Path(path)
    config = ModelConfig.from_json(checkpoint_metadata(path)["config"])
    model = DepthAnything(config=config)
    try:
        with safe_open(str(path), framework="pt", device=str(map_location)) as f:
            state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (not a dict)
        model.load_state_dict(state, strict=True)
    except (SafetensorError, OSError, RuntimeError) as err:
        raise ValueError(f"could not load the weights of {path}: {err}") from err
    return model.to(map_location).eval()


__all__ = ["CHECKPOINT_FORMAT", "checkpoint_metadata", "load_checkpoint", "save_checkpoint"]
