"""Evaluation metrics: relative (affine-invariant) depth, metric depth, segmentation mIoU.

Depth metrics are computed per image over its valid pixels and then averaged over the images
that have at least one valid pixel (the MiDaS / Depth Anything convention), so every function
returns both: ``out["abs_rel"]`` is the mean (0-dim tensor) and ``out["abs_rel_per_image"]``
the (B,) values, NaN for images without valid pixels. To average over a whole data set,
concatenate the per-image values of every batch and take ``nanmean``.
"""

from __future__ import annotations

import math

import torch

from dalib.depth import depth_to_disparity


def _batched(name: str, tensor: torch.Tensor) -> torch.Tensor:
    tensor = torch.as_tensor(tensor)
    if tensor.ndim == 2:
        tensor = tensor.unsqueeze(0)
    if tensor.ndim != 3:
        raise ValueError(f"{name} must have shape (B, H, W) or (H, W), got {tuple(tensor.shape)}")
    return tensor


def _check_same_shape(**tensors: torch.Tensor) -> None:
    shapes = {name: tuple(t.shape) for name, t in tensors.items()}
    if len(set(shapes.values())) != 1:
        raise ValueError(f"shapes differ: {shapes}")


def _accumulator_dtype(tensor: torch.Tensor) -> torch.dtype:
    return torch.float32 if tensor.device.type == "mps" else torch.float64


def align_scale_shift(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-image least-squares scale ``s`` and shift ``t`` minimising Σ_mask (s·pred + t − target)².

    This is the closed-form solution of the 2x2 normal equations, written in centred form
    (s = cov(pred, target) / var(pred), t = mean(target) − s·mean(pred)) for accuracy;
    sums run in float64 (float32 on MPS).

    Degenerate images: if ``pred`` is constant over the mask (including a single valid pixel)
    the fit uses ``s = 1`` and the best shift ``t = mean(target − pred)``; with an empty mask
    ``s = 1, t = 0`` (the prediction is returned unchanged).

    Args:
        pred, target: (B, H, W) or (H, W) float; values outside the mask are ignored (may be
            non-finite).
        mask: bool of the same shape.

    Returns:
        ``(aligned, scale, shift)``: ``aligned = s·pred + t`` on every pixel, shape of ``pred``
        (batched as (B, H, W)), and the (B,) scales and shifts, in ``pred``'s dtype.
    """
    pred_b, target_b, mask_b = (
        _batched("pred", pred),
        _batched("target", target),
        _batched("mask", mask),
    )
    _check_same_shape(pred=pred_b, target=target_b, mask=mask_b)
    mask_b = mask_b.to(device=pred_b.device, dtype=torch.bool)
    acc = _accumulator_dtype(pred_b)
    weight = mask_b.to(acc)
    p = torch.where(mask_b, pred_b, torch.zeros_like(pred_b)).to(acc)
    y = torch.where(mask_b, target_b.to(pred_b.device), torch.zeros_like(pred_b)).to(acc)

    count = weight.sum(dim=(1, 2))
    denom = count.clamp_min(1.0)
    mean_p = p.sum(dim=(1, 2)) / denom
    mean_y = y.sum(dim=(1, 2)) / denom
    centred_p = (p - mean_p[:, None, None]) * weight
    centred_y = (y - mean_y[:, None, None]) * weight
    var_p = (centred_p * centred_p).sum(dim=(1, 2))
    cov = (centred_p * centred_y).sum(dim=(1, 2))

    # var_p is relative to the prediction's own magnitude: constant maps give exactly 0 up to
    # rounding, which this tolerance catches.
    scale_of_p = (p.abs() * weight).sum(dim=(1, 2)) / denom
    solvable = var_p > (1e-12 * (scale_of_p**2 + 1e-30) * count)
    scale = torch.where(
        solvable, cov / torch.where(solvable, var_p, torch.ones_like(var_p)), torch.ones_like(var_p)
    )
    shift = mean_y - scale * mean_p  # also the best shift when scale is fixed to 1; 0 if empty

    scale = scale.to(pred_b.dtype)
    shift = shift.to(pred_b.dtype)
    aligned = scale[:, None, None] * pred_b + shift[:, None, None]
    return aligned, scale, shift


def _per_image_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B,) mean of ``values`` over ``mask`` per image; NaN where the mask is empty."""
    count = mask.sum(dim=(1, 2))
    total = torch.where(mask, values, torch.zeros_like(values)).sum(dim=(1, 2))
    return torch.where(count > 0, total / count.clamp_min(1), torch.full_like(total, float("nan")))


def _with_means(per_image: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for name, values in per_image.items():
        out[name] = torch.nanmean(values)
        out[f"{name}_per_image"] = values
    return out


def _valid_depth(gt: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    valid = torch.isfinite(gt) & (gt > 0)
    if mask is not None:
        mask_b = _batched("mask", mask)
        _check_same_shape(gt_depth=gt, mask=mask_b)
        valid &= mask_b.to(device=gt.device, dtype=torch.bool)
    return valid


def relative_depth_metrics(
    pred_disp: torch.Tensor,
    gt_depth: torch.Tensor,
    mask: torch.Tensor | None = None,
    max_depth: float | None = None,
    eps: float = 1e-6,
) -> dict[str, torch.Tensor]:
    """Zero-shot relative-depth metrics, MiDaS protocol (Depth Anything Table 2).

    Per image: ground-truth depth becomes disparity; the predicted disparity is aligned to it
    by least-squares scale and shift over the valid pixels (:func:`align_scale_shift`); the
    aligned disparity is clamped to ``>= 1 / max_depth`` (``>= eps`` without ``max_depth``) and
    inverted to depth ``d*``; then over valid pixels with ground truth ``d``:
    AbsRel = mean |d* − d| / d and δ1 = fraction with max(d*/d, d/d*) < 1.25.

    Args:
        pred_disp: (B, H, W) or (H, W) predicted disparity (any scale and shift).
        gt_depth: same shape, metres; valid where finite and > 0.
        mask: optional bool, same shape, further restricting the valid pixels.
        max_depth: depth cap in metres (e.g. 10 for NYU, 80 for KITTI).

    Returns:
        ``abs_rel``, ``delta1``: 0-dim means over images with valid pixels;
        ``abs_rel_per_image``, ``delta1_per_image``: (B,), NaN for images without valid pixels;
        ``scale_per_image``, ``shift_per_image``: (B,) disparity alignment.
    """
    pred_b, gt_b = _batched("pred_disp", pred_disp), _batched("gt_depth", gt_depth)
    _check_same_shape(pred_disp=pred_b, gt_depth=gt_b)
    gt_b = gt_b.to(device=pred_b.device, dtype=pred_b.dtype)
    valid = _valid_depth(gt_b, mask)
    gt_disp = depth_to_disparity(gt_b, valid)
    aligned, scale, shift = align_scale_shift(pred_b, gt_disp, valid)
    floor = 1.0 / max_depth if max_depth is not None else eps
    pred_depth = 1.0 / aligned.clamp_min(floor)
    gt_safe = torch.where(valid, gt_b, torch.ones_like(gt_b))
    ratio = torch.maximum(pred_depth / gt_safe, gt_safe / pred_depth)
    out = _with_means(
        {
            "abs_rel": _per_image_mean((pred_depth - gt_safe).abs() / gt_safe, valid),
            "delta1": _per_image_mean((ratio < 1.25).to(pred_depth.dtype), valid),
        }
    )
    out["scale_per_image"] = scale
    out["shift_per_image"] = shift
    return out


def metric_depth_metrics(
    pred_depth: torch.Tensor,
    gt_depth: torch.Tensor,
    mask: torch.Tensor | None = None,
    min_depth: float = 1e-3,
    max_depth: float | None = None,
) -> dict[str, torch.Tensor]:
    """Metric-depth metrics (Eigen et al.; NYU / KITTI protocol as in ZoeDepth).

    Valid pixels: ground truth finite and in ``(min_depth, max_depth]`` (and ``mask``).
    Predictions are clamped to ``[min_depth, max_depth]`` (non-finite ones to ``max_depth``,
    or to ``min_depth`` when there is no cap). With p = prediction and g = ground truth:

    - ``delta1/2/3``: fraction with max(p/g, g/p) < 1.25, 1.25², 1.25³
    - ``abs_rel`` = mean |p − g| / g;  ``sq_rel`` = mean (p − g)² / g
    - ``rmse`` = sqrt(mean (p − g)²) metres;  ``rmse_log`` = sqrt(mean (ln p − ln g)²)
    - ``log10`` = mean |log10 p − log10 g|
    - ``silog`` = 100 · sqrt(mean e² − (mean e)²), e = ln p − ln g (scale-invariant log error)

    Args:
        pred_depth, gt_depth: (B, H, W) or (H, W) metres.
        mask: optional bool, same shape.

    Returns:
        Each name above as a 0-dim mean over images with valid pixels, and ``<name>_per_image``
        (B,) with NaN for images without valid pixels.
    """
    pred_b, gt_b = _batched("pred_depth", pred_depth), _batched("gt_depth", gt_depth)
    _check_same_shape(pred_depth=pred_b, gt_depth=gt_b)
    gt_b = gt_b.to(device=pred_b.device, dtype=pred_b.dtype)
    valid = _valid_depth(gt_b, mask) & (gt_b > min_depth)
    if max_depth is not None:
        valid &= gt_b <= max_depth
    upper = max_depth if max_depth is not None else math.inf
    fill = max_depth if max_depth is not None else min_depth
    p = torch.where(torch.isfinite(pred_b), pred_b, torch.full_like(pred_b, fill)).clamp(
        min_depth, upper
    )
    g = torch.where(valid, gt_b, torch.ones_like(gt_b))

    ratio = torch.maximum(p / g, g / p)
    log_err = torch.log(p) - torch.log(g)
    per_image = {
        f"delta{k}": _per_image_mean((ratio < 1.25**k).to(p.dtype), valid) for k in (1, 2, 3)
    }
    per_image["abs_rel"] = _per_image_mean((p - g).abs() / g, valid)
    per_image["sq_rel"] = _per_image_mean((p - g) ** 2 / g, valid)
    per_image["rmse"] = _per_image_mean((p - g) ** 2, valid).sqrt()
    per_image["rmse_log"] = _per_image_mean(log_err**2, valid).sqrt()
    per_image["log10"] = _per_image_mean((torch.log10(p) - torch.log10(g)).abs(), valid)
    mean_sq, mean = _per_image_mean(log_err**2, valid), _per_image_mean(log_err, valid)
    per_image["silog"] = 100.0 * (mean_sq - mean**2).clamp_min(0).sqrt()
    return _with_means(per_image)


def confusion_matrix(
    pred: torch.Tensor, target: torch.Tensor, num_classes: int, ignore_index: int | None = None
) -> torch.Tensor:
    """(num_classes, num_classes) int64 counts, rows = target class, columns = predicted class.

    Pixels whose target equals ``ignore_index`` are skipped. Any other label outside
    ``[0, num_classes)`` in ``pred`` or ``target`` raises ``ValueError``. Sum the matrices of
    several batches to score a whole data set with :func:`iou_from_confusion`.
    """
    pred, target = torch.as_tensor(pred), torch.as_tensor(target)
    _check_same_shape(pred=pred, target=target)
    keep = (
        torch.ones_like(target, dtype=torch.bool)
        if ignore_index is None
        else target != ignore_index
    )
    pred_k, target_k = pred[keep].long(), target[keep].long()
    for name, labels in (("pred", pred_k), ("target", target_k)):
        if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(
                f"{name} has labels outside [0, {num_classes}): "
                f"min {int(labels.min())}, max {int(labels.max())}"
            )
    flat = target_k * num_classes + pred_k
    return torch.bincount(flat, minlength=num_classes * num_classes).reshape(
        num_classes, num_classes
    )


def iou_from_confusion(confusion: torch.Tensor) -> tuple[float, torch.Tensor]:
    """``(mIoU, per-class IoU)`` from a confusion matrix; see :func:`miou`."""
    confusion = confusion.to(torch.float64)
    intersection = confusion.diagonal()
    union = confusion.sum(dim=0) + confusion.sum(dim=1) - intersection
    iou = torch.where(
        union > 0, intersection / union.clamp_min(1), torch.full_like(union, float("nan"))
    )
    present = ~torch.isnan(iou)
    mean = float(iou[present].mean()) if present.any() else float("nan")
    return mean, iou


def miou(
    pred: torch.Tensor, target: torch.Tensor, num_classes: int, ignore_index: int | None = None
) -> tuple[float, torch.Tensor]:
    """Mean intersection-over-union of integer class maps, pooled over every pixel given.

    Args:
        pred, target: int class maps of the same shape (any shape, e.g. (B, H, W)).
        num_classes: labels are ``0 .. num_classes - 1``.
        ignore_index: target label whose pixels are left out (e.g. 255).

    Returns:
        ``(miou, iou)``: ``iou`` is (num_classes,) float64 with IoU = TP / (TP + FP + FN) per
        class and NaN for classes absent from both maps; ``miou`` is the mean over the other
        classes (NaN if none).
    """
    return iou_from_confusion(confusion_matrix(pred, target, num_classes, ignore_index))
