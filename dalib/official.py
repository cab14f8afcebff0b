"""The released Depth Anything V1 checkpoints' layout: loading them into a dalib model and
exporting a dalib model in it.

The released ``depth_anything_vit{s,b,l}14.pth`` files hold ``pretrained.*`` (the DINOv2 ViT)
and ``depth_head.*`` (the DPT head) under exactly dalib's names, plus
``depth_head.scratch.refinenet4.resConfUnit1.*``, a residual unit the forward pass never
calls (:data:`UNUSED_OFFICIAL_KEYS`): loading checks and drops it, exporting writes zeros.
Where the files are and how they are downloaded: :mod:`dalib.hub`; building the model from
them: :func:`dalib.model.load_official`.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors.torch import load_file as load_safetensors
from torch import Tensor

from dalib.sizes import SIZES

if TYPE_CHECKING:  # for the annotations only: dalib.model imports this module
    from dalib.model import DepthAnything

UNUSED_OFFICIAL_KEYS = tuple(
    f"depth_head.scratch.refinenet4.resConfUnit1.{conv}.{p}"
    for conv in ("conv1", "conv2")
    for p in ("weight", "bias")
)


def read_state_dict(path: Path) -> dict[str, Tensor]:
    """A flat state dict from a ``.pth`` (``weights_only``) or ``.safetensors`` file, on CPU."""
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file {path} does not exist")
    try:
        if path.suffix == ".safetensors":
            state = load_safetensors(path, device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(
            f"could not read {path}: refused, it holds pickled objects other than tensors, "
            f"which weights_only=True does not load (they could run code) [{first}]"
        ) from err
    except Exception as err:
        raise ValueError(f"could not read {path} as a PyTorch state dict: {err}") from err
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(f"{path} does not hold a flat state dict of tensors")
    return dict(state)


def official_key_shapes(model: DepthAnything) -> dict[str, tuple[int, ...]]:
    """Key -> shape of the released ``depth_anything_vit*14.pth`` layout for this model."""
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    f = model.config.features
    for key in UNUSED_OFFICIAL_KEYS:
        shapes[key] = (f, f, 3, 3) if key.endswith("weight") else (f,)
    return shapes


def _guess_encoder(state: Mapping[str, Tensor]) -> str | None:
    pos = state.get("pretrained.pos_embed")
    if pos is None or pos.ndim != 3:
        return None
    depth = len({k.split(".")[2] for k in state if k.startswith("pretrained.blocks.")})
    return next(
        (n for n, s in SIZES.items() if (s.embed_dim, s.depth) == (pos.shape[-1], depth)), None
    )


def load_official_checkpoint(
    model: DepthAnything, path_or_state_dict: str | os.PathLike | Mapping[str, Tensor]
) -> DepthAnything:
    """Load a released ``depth_anything_vit{s,b,l}14.pth`` (or its state dict) strictly.

    Every key and shape must match (``pretrained.*``, ``depth_head.*``); the released files'
    ``depth_head.scratch.refinenet4.resConfUnit1.*`` are shape-checked and dropped (the
    forward pass never uses them). Raises ValueError naming missing/unexpected keys and
    shape mismatches, and the size the file looks like. Returns ``model``.
    """
    if isinstance(path_or_state_dict, Mapping):
        state, source = dict(path_or_state_dict), "state dict"
    else:
        state, source = read_state_dict(Path(path_or_state_dict)), str(path_or_state_dict)
    expected = official_key_shapes(model)
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [
        f"{k}: file {tuple(state[k].shape)} vs model {expected[k]}"
        for k in expected
        if k in state and tuple(state[k].shape) != expected[k]
    ]
    if missing or unexpected or wrong:
        problems = [
            f"{label} ({len(items)}): {items[:6]}{' ...' if len(items) > 6 else ''}"
            for label, items in (
                ("missing keys", missing),
                ("unexpected keys", unexpected),
                ("shape mismatches", wrong),
            )
            if items
        ]
        guess = _guess_encoder(state)
        hint = (
            f"; this looks like a {guess} checkpoint, model is {model.config.encoder}"
            if guess and guess != model.config.encoder
            else ""
        )
        raise ValueError(
            f"{source} does not match DepthAnything({model.config.encoder!r}): "
            + "; ".join(problems)
            + hint
        )
    model.load_state_dict(
        {k: v for k, v in state.items() if k not in UNUSED_OFFICIAL_KEYS}, strict=True
    )
    return model


def export_official_state_dict(model: DepthAnything) -> dict[str, Tensor]:
    """The model's weights in the released layout (loadable by the official ``DepthAnything``).

    The never-used ``refinenet4.resConfUnit1.*`` tensors are written as zeros (a zero
    residual unit; the official forward does not call it either). Tensors are contiguous CPU
    copies.
    """
    state = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}
    shapes = official_key_shapes(model)
    dtype = model.pretrained.pos_embed.dtype
    state.update({k: torch.zeros(shapes[k], dtype=dtype) for k in UNUSED_OFFICIAL_KEYS})
    return state


__all__ = [
    "UNUSED_OFFICIAL_KEYS",
    "export_official_state_dict",
    "load_official_checkpoint",
    "official_key_shapes",
    "read_state_dict",
]
