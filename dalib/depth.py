"""Depth and disparity: the two ways of writing how far a pixel is.

Depth ``t`` is metres along the optical axis; disparity (inverse depth) is ``d = 1 / t``, the
quantity Depth Anything predicts. Sky (``inf`` depth) and unknown pixels (``0``, ``NaN``,
negative) get disparity ``0``, so "far away" and "no information" share the value that the
affine-invariant normalisation maps to the bottom of the range.

Both functions take NumPy arrays or torch tensors of shape (H, W) or (B, H, W) (any leading
dimensions work) and return the same kind they were given.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

Array = TypeVar("Array", np.ndarray, torch.Tensor)


def _as_tensor(values: np.ndarray | torch.Tensor, name: str) -> torch.Tensor:
    if isinstance(values, torch.Tensor):
        tensor = values
    elif isinstance(values, np.ndarray):
        tensor = torch.from_numpy(np.ascontiguousarray(values))
    else:
        raise TypeError(
            f"{name} must be a numpy array or torch tensor, got {type(values).__name__}"
        )
    if tensor.ndim < 2:
        raise ValueError(f"{name} must have shape (H, W) or (B, H, W), got {tuple(tensor.shape)}")
    return tensor if tensor.is_floating_point() else tensor.float()


def _valid_mask(values: torch.Tensor, mask, name: str) -> torch.Tensor:
    """``mask`` (bool, same shape as ``values``) as a tensor on ``values``' device, or all True."""
    if mask is None:
        return torch.ones_like(values, dtype=torch.bool)
    mask_t = torch.as_tensor(np.ascontiguousarray(mask) if isinstance(mask, np.ndarray) else mask)
    if mask_t.shape != values.shape:
        raise ValueError(
            f"mask shape {tuple(mask_t.shape)} does not match {name} shape {tuple(values.shape)}"
        )
    return mask_t.to(device=values.device, dtype=torch.bool)


def _like_input(result: torch.Tensor, original: np.ndarray | torch.Tensor):
    return result.numpy() if isinstance(original, np.ndarray) else result


def depth_to_disparity(depth: Array, mask: Array | None = None, eps: float = 1e-6) -> Array:
    """Disparity ``1 / depth`` (1/metres), with 0 at sky and invalid pixels.

    Args:
        depth: (H, W) or (B, H, W) metres; ``inf`` = sky, ``0`` / negative / ``NaN`` = unknown.
        mask: optional bool of the same shape; pixels where it is False also get 0.
        eps: depths in (0, eps) are clamped to ``eps`` before inverting, so disparity never
            exceeds ``1 / eps`` (they still count as valid).

    Returns:
        Disparity of the same shape, floating point (integer depth becomes float32), same kind
        (NumPy / torch) as ``depth``. Differentiable in torch with finite gradients everywhere.
    """
    depth_t = _as_tensor(depth, "depth")
    valid = torch.isfinite(depth_t) & (depth_t > 0) & _valid_mask(depth_t, mask, "depth")
    safe = torch.where(valid, depth_t, torch.ones_like(depth_t)).clamp_min(eps)
    disparity = torch.where(valid, 1.0 / safe, torch.zeros_like(depth_t))
    return _like_input(disparity, depth)


def normalize_disparity(disp: Array, mask: Array | None = None) -> Array:
    """Rescale each map to 0..1 by its min and max over valid pixels.

    Args:
        disp: (H, W) or (B, H, W) disparity; each trailing (H, W) map is normalised on its own.
        mask: optional bool of the same shape. Valid pixels are ``mask & isfinite(disp)``; with
            no mask every finite pixel counts, including the 0 that ``depth_to_disparity``
            writes at sky, which then stays at 0 (the map is only divided by its maximum).

    Returns:
        Same shape and kind, values in [0, 1]; invalid pixels are 0, and so is every pixel of
        a map whose valid values are all equal (or that has no valid pixel). Never NaN.
    """
    disp_t = _as_tensor(disp, "disp")
    valid = torch.isfinite(disp_t) & _valid_mask(disp_t, mask, "disp")
    inf = torch.full_like(disp_t, float("inf"))
    low = torch.where(valid, disp_t, inf).amin(dim=(-2, -1), keepdim=True)
    high = torch.where(valid, disp_t, -inf).amax(dim=(-2, -1), keepdim=True)
    has_valid = torch.isfinite(low)
    low = torch.where(has_valid, low, torch.zeros_like(low))
    span = torch.where(has_valid & (high > low), high - low, torch.ones_like(low))
    scaled = (torch.where(valid, disp_t, low) - low) / span
    return _like_input(torch.where(valid, scaled, torch.zeros_like(disp_t)), disp)


def stereo_depth(
    disparity: Array,
    focal_px: float,
    baseline_m: float,
    doffs_px: float = 0.0,
    mask: Array | None = None,
) -> Array:
    """Metric depth from rectified stereo disparity: ``focal · baseline / (disparity + doffs)``.

    Args:
        disparity: (H, W) or (B, H, W) pixels between the left and right views.
        focal_px: focal length in pixels; baseline_m: camera distance in metres;
        doffs_px: x-offset of the two principal points (Middlebury's ``doffs``), pixels.
        mask: optional bool, same shape; False pixels get depth 0.

    Returns:
        Depth in metres, same shape and kind; 0 where the disparity is non-finite, where
        ``disparity + doffs <= 0`` or where ``mask`` is False.
    """
    disp_t = _as_tensor(disparity, "disparity")
    shifted = disp_t + doffs_px
    valid = torch.isfinite(shifted) & (shifted > 0) & _valid_mask(disp_t, mask, "disparity")
    safe = torch.where(valid, shifted, torch.ones_like(shifted))
    depth = torch.where(valid, focal_px * baseline_m / safe, torch.zeros_like(shifted))
    return _like_input(depth, disparity)
