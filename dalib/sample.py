"""The sample dict shared by every dalib dataset: building one, resizing and cropping it.

A sample holds ``"image"``, a float32 tensor (3, H, W) in [0, 1], and per-pixel maps of the
same (H, W): ``"depth"`` (float32 metres, ``inf`` at sky, 0 where unknown), ``"valid"``
(bool, finite and > 0 depth), ``"sky"`` (bool), ``"semantic"`` (int64), plus non-spatial
entries (``"domain"``, ``"index"``, ``"path"``...) that resizing passes through unchanged.

The image is resampled bilinearly with antialiasing (as PIL does); every other (H, W) tensor
with nearest neighbour at pixel centres, so sky, invalid and class values are never blended.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange


def as_size(size: int | Sequence[int], name: str = "size") -> tuple[int, int]:
    """``(H, W)`` from an int side or a pair; ValueError naming ``name`` otherwise."""
    hw = (size, size) if isinstance(size, int) else tuple(size)
    if len(hw) != 2 or not all(isinstance(s, int) and s > 0 for s in hw):
        raise ValueError(f"{name} must be a positive int or (H, W) of positive ints, got {size!r}")
    return hw  # type: ignore[return-value]


def _spatial_keys(sample: dict) -> tuple[tuple[int, int], list[str]]:
    """The image's (H, W) and the keys of the other per-pixel (H, W) tensors."""
    height, width = sample["image"].shape[-2:]
    keys = [
        k
        for k, v in sample.items()
        if k != "image"
        and isinstance(v, torch.Tensor)
        and v.ndim == 2
        and tuple(v.shape) == (height, width)
    ]
    return (height, width), keys


def resize_sample(sample: dict, size: int | Sequence[int]) -> dict:
    """A copy of ``sample`` with ``"image"`` and every (H, W) map resized to exactly ``size``.

    The image uses bilinear interpolation with antialiasing; maps (depth, valid, sky,
    semantic, ...) use nearest neighbour (pixel centres), so their values are never mixed.
    """
    out_h, out_w = as_size(size)
    (in_h, in_w), keys = _spatial_keys(sample)
    out = dict(sample)
    image = sample["image"].unsqueeze(0)
    out["image"] = (
        F.interpolate(
            image, size=(out_h, out_w), mode="bilinear", antialias=True, align_corners=False
        )
        .squeeze(0)
        .clamp_(0, 1)
    )
    device = sample["image"].device
    rows = ((torch.arange(out_h, device=device) + 0.5) * in_h / out_h).long().clamp_max(in_h - 1)
    cols = ((torch.arange(out_w, device=device) + 0.5) * in_w / out_w).long().clamp_max(in_w - 1)
    for key in keys:
        out[key] = sample[key][rows][:, cols]
    return out


def center_crop_sample(sample: dict, size: int | Sequence[int]) -> dict:
    """A copy of ``sample`` with the image and every (H, W) map cropped to the centre ``size``."""
    out_h, out_w = as_size(size)
    (in_h, in_w), keys = _spatial_keys(sample)
    if out_h > in_h or out_w > in_w:
        raise ValueError(f"crop size {(out_h, out_w)} is larger than the sample {(in_h, in_w)}")
    top, left = (in_h - out_h) // 2, (in_w - out_w) // 2
    out = dict(sample)
    for key in ["image", *keys]:
        out[key] = sample[key][..., top : top + out_h, left : left + out_w]
    return out


def fit_sample(sample: dict, size: int | Sequence[int]) -> dict:
    """Resize ``sample`` (keeping its aspect ratio) to cover ``size``, then centre-crop to it."""
    out_h, out_w = as_size(size)
    in_h, in_w = sample["image"].shape[-2:]
    if (in_h, in_w) == (out_h, out_w):
        return dict(sample)
    factor = max(out_h / in_h, out_w / in_w)
    cover = (max(out_h, round(in_h * factor)), max(out_w, round(in_w * factor)))
    return center_crop_sample(resize_sample(sample, cover), (out_h, out_w))


def image_to_tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) -> float32 tensor (3, H, W) in [0, 1]."""
    return (
        rearrange(torch.from_numpy(np.ascontiguousarray(image)), "h w c -> c h w").float() / 255.0
    )


def tensor_to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Float images in [0, 1], any layout (e.g. (3, H, W) or (B, 3, H, W)) -> uint8, same layout."""
    return (images * 255.0).round().clamp(0, 255).to(torch.uint8)


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """(3, H, W) float tensor in [0, 1] -> (H, W, 3) uint8 array (inverse of image_to_tensor)."""
    return rearrange(tensor_to_uint8(image), "c h w -> h w c").numpy()


def depth_fields(depth: np.ndarray, sky: np.ndarray | None = None) -> dict:
    """The ``"depth"``, ``"valid"`` and ``"sky"`` entries of a sample from a (H, W) depth map in
    metres (``inf`` = sky, 0 / NaN / negative / ``-inf`` = unknown) and an optional sky mask
    (default: none). Unknown values become 0 in ``"depth"`` (the sample contract), so no NaN
    or negative depth reaches a loss even where a mask is forgotten."""
    values = np.array(depth, dtype=np.float32)
    values[np.isnan(values) | (values < 0)] = 0
    depth_t = torch.from_numpy(values)
    sky_t = (
        torch.zeros(depth_t.shape, dtype=torch.bool)
        if sky is None
        else torch.from_numpy(np.array(sky, dtype=bool))
    )
    return {"depth": depth_t, "valid": torch.isfinite(depth_t) & (depth_t > 0), "sky": sky_t}
