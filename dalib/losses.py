"""Depth Anything's training losses, batched and masked.

Every loss takes depth-like maps ``pred`` and ``target`` of shape (B, H, W) (disparity in the
paper; any unit, since the losses are scale-and-shift invariant) and an optional bool ``mask``
(B, H, W) of valid pixels (``None``: every pixel is valid). Pixels outside the mask never
influence the value, and receive exactly zero gradient, whatever they hold (inf and NaN
included). Images without a valid pixel are left out of the batch average; if no image has
one, the loss is 0 and its gradient is zero (``backward()`` still works).

Statistics are computed in float32 (float64 inputs stay float64, for ``gradcheck``), so the
losses are safe on half-precision model outputs under ``torch.autocast``; they return a 0-dim
tensor of that dtype. There are no Python loops over images: per-image statistics are
reductions over the flattened pixel axis: each image's valid pixels are first packed to the
front of its row, then the masked median is ``torch.nanmedian`` with the rest set to NaN.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import Tensor

SCALE_EPS = 1e-6
"""Floor of the per-image scale s(d) = mean|d - median|, so constant maps stay finite (they
normalise to all zeros). Disparities in dalib are O(1), so real maps are far above it."""

VARIANCE_EPS = 1e-12
"""Floor of the per-pixel prediction variance in the least-squares fit of ``ssi_mse_loss``."""


def _check_maps(
    pred: Tensor,
    target: Tensor,
    mask: Tensor | None,
    names: tuple[str, str, str] = ("pred", "target", "mask"),
) -> Tensor:
    """Validate (B,H,W) maps and return the mask (all True when ``mask`` is None)."""
    if pred.dim() != 3:
        raise ValueError(f"{names[0]} must have shape (B, H, W), got {tuple(pred.shape)}")
    if target.shape != pred.shape:
        raise ValueError(
            f"{names[1]} shape {tuple(target.shape)} must equal "
            f"{names[0]} shape {tuple(pred.shape)}"
        )
    if mask is None:
        return torch.ones(pred.shape, dtype=torch.bool, device=pred.device)
    if mask.dtype != torch.bool:
        raise TypeError(f"{names[2]} must be a bool tensor, got {mask.dtype}")
    if mask.shape != pred.shape:
        raise ValueError(
            f"{names[2]} shape {tuple(mask.shape)} must equal {names[0]} shape {tuple(pred.shape)}"
        )
    return mask


def _flat(x: Tensor) -> Tensor:
    """(B, H, W) -> (B, H*W)."""
    return rearrange(x, "b h w -> b (h w)")


def _stat_dtype(x: Tensor) -> torch.dtype:
    """float32 for half/bfloat16/float32 inputs, float64 for float64."""
    return torch.promote_types(x.dtype, torch.float32)


def _batch_mean(per_image: Tensor, has_valid: Tensor) -> Tensor:
    """Mean of ``per_image`` (B,) over images where ``has_valid`` (B,); 0 if there are none."""
    total = torch.where(has_valid, per_image, torch.zeros_like(per_image)).sum()
    return total / has_valid.sum().clamp_min(1)


def normalize_scale_shift(depth: Tensor, mask: Tensor | None = None) -> Tensor:
    """Paper eq. (2): d̂ = (d - t(d)) / s(d), per image over its valid pixels.

    t(d) is the median of the valid pixels (the lower median for an even count, as
    ``torch.median`` returns) and s(d) = mean |d - t(d)| over them, floored at ``SCALE_EPS``.
    Gradients flow through t and s as well.

    Args:
        depth: (B, H, W) maps, any float dtype.
        mask: (B, H, W) bool valid pixels, or None for all.

    Returns:
        (B, H, W) normalised maps in float32 (float64 for float64 input), 0 outside the mask.
    """
    mask = _check_maps(depth, depth, mask, names=("depth", "depth", "mask"))
    return _normalize_flat(_flat(depth), _flat(mask)).view_as(depth)


def _normalize_flat(d: Tensor, mask: Tensor) -> Tensor:
    """``normalize_scale_shift`` on flattened (B, N) maps and mask."""
    d = d.to(_stat_dtype(d))
    count = mask.sum(1, keepdim=True)
    # Lower median of the valid pixels (NaN for an image without any; never used then).
    median = torch.nanmedian(torch.where(mask, d, torch.nan), dim=1, keepdim=True).values
    centred = torch.where(mask, d - median, torch.zeros_like(d))
    scale = centred.abs().sum(1, keepdim=True) / count.clamp_min(1)
    return centred / scale.clamp_min(SCALE_EPS)


def _pack(mask: Tensor, *rows: Tensor) -> tuple[Tensor, ...]:
    """Move the valid entries of each row to its front: (B, N) -> (B, W), W = most valid.

    Returns the packed mask (a prefix of each row) and the packed ``rows`` (0 past the
    prefix). Invalid entries are written to a spare column that is dropped, so they get
    exactly zero gradient. Per-image statistics on packed rows touch only about the valid
    entries, which makes a small region (a CutMix box) cheap; the price is one host sync
    (reading W) on GPU.
    """
    count = mask.sum(1, keepdim=True)
    width = max(int(count.max()), 1)
    slot = torch.cumsum(mask, 1) * mask  # 1..count for valid entries, 0 (the spare) otherwise
    packed = [row.new_zeros(row.shape[0], width + 1).scatter(1, slot, row)[:, 1:] for row in rows]
    return torch.arange(width, device=mask.device) < count, *packed


def _affine_invariant_per_image(
    pred: Tensor, target: Tensor, mask: Tensor, trim: float = 0.0
) -> tuple[Tensor, Tensor]:
    """Per-image eq. (1) on flattened (B, N) inputs: (loss (B,), valid count (B,)).

    ``trim`` > 0 averages only the smallest ceil((1 - trim) · count) residuals of each image
    (the normalisation still uses every valid pixel)."""
    mask, pred, target = _pack(mask, pred, target)
    count = mask.sum(1)
    residual = (_normalize_flat(pred, mask) - _normalize_flat(target, mask)).abs()
    if trim <= 0:
        return residual.sum(1) / count.clamp_min(1), count
    kept = torch.ceil((1 - trim) * count)  # (B,)
    ordered = torch.where(mask, residual, torch.inf).sort(1).values
    keep = torch.arange(ordered.shape[1], device=ordered.device) < kept[:, None]
    total = torch.where(keep, ordered, torch.zeros_like(ordered)).sum(1)
    return total / kept.clamp_min(1), count


def _check_trim(trim: float) -> None:
    if not 0.0 <= trim < 1.0:
        raise ValueError(f"trim is the fraction of pixels left out, in [0, 1), got {trim}")


def affine_invariant_loss(
    pred: Tensor, target: Tensor, mask: Tensor | None = None, trim: float = 0.0
) -> Tensor:
    """The scale-and-shift invariant L1 loss of MiDaS / Depth Anything (paper eq. 1-2).

    Per image: mean over valid pixels of |d̂* - d̂|, with d̂ from :func:`normalize_scale_shift`
    for prediction and target separately; then the mean over images with a valid pixel.

    Args:
        pred: (B, H, W) predicted disparity.
        target: (B, H, W) target disparity (ground truth or teacher pseudo label).
        mask: (B, H, W) bool valid pixels, or None for all.
        trim: fraction of each image's valid pixels with the largest residuals left out of
            the mean (0: none; MiDaS's trimmed loss uses 0.2; the Depth Anything V2 authors
            drop the 10% largest-loss pixels of each pseudo label).

    Returns:
        0-dim loss (float32, or float64 for float64 input); 0 if no pixel is valid.
    """
    mask = _check_maps(pred, target, mask)
    _check_trim(trim)
    per_image, count = _affine_invariant_per_image(_flat(pred), _flat(target), _flat(mask), trim)
    return _batch_mean(per_image, count > 0)


def gradient_matching_loss(
    pred: Tensor, target: Tensor, mask: Tensor | None = None, scales: int = 4
) -> Tensor:
    """Multi-scale gradient matching (MiDaS), on the median/MAD-normalised maps.

    Both maps are first normalised per image at full resolution with
    :func:`normalize_scale_shift` (so the loss is invariant to scale and shift of either), and
    R = d̂* - d̂ (0 outside the mask). Scale k = 0..scales-1 keeps every 2^k-th row and column
    of R and of the mask (nearest subsampling, as MiDaS does). At each scale the loss is
    (Σ |∂x R| + Σ |∂y R|) / (number of valid pixels at that scale), where a forward
    difference counts only if both of its pixels are valid. Per image the scales are summed;
    the result is averaged over images with a valid pixel.

    Args:
        pred, target: (B, H, W) disparity maps.
        mask: (B, H, W) bool valid pixels, or None for all.
        scales: number of scales, >= 1.

    Returns:
        0-dim loss (float32, or float64 for float64 input); 0 if no pixel is valid.
    """
    mask = _check_maps(pred, target, mask)
    if not isinstance(scales, int) or scales < 1:
        raise ValueError(f"scales must be an int >= 1, got {scales!r}")
    residual = normalize_scale_shift(pred, mask) - normalize_scale_shift(target, mask)
    per_image = residual.new_zeros(pred.shape[0])
    for k in range(scales):
        step = 2**k
        r, m = residual[:, ::step, ::step], mask[:, ::step, ::step]
        grad_x = (r[:, :, 1:] - r[:, :, :-1]).abs() * (m[:, :, 1:] & m[:, :, :-1])
        grad_y = (r[:, 1:, :] - r[:, :-1, :]).abs() * (m[:, 1:, :] & m[:, :-1, :])
        valid = m.sum((1, 2)).clamp_min(1)
        per_image = per_image + (grad_x.sum((1, 2)) + grad_y.sum((1, 2))) / valid
    return _batch_mean(per_image, mask.flatten(1).any(1))


def ssi_mse_loss(pred: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
    """Least-squares scale-and-shift aligned MSE (MiDaS's ssi-MSE), for comparison.

    Per image, (s, t) = argmin Σ_valid (s·pred + t - target)², solved in closed form on
    centred values; the loss is the mean squared residual over valid pixels (in target
    units squared; MiDaS's extra factor 1/2 is not applied), averaged over images with a
    valid pixel. A prediction with no variance gets s = 0 (its residual is target - mean).

    Args:
        pred, target: (B, H, W) disparity maps.
        mask: (B, H, W) bool valid pixels, or None for all.

    Returns:
        0-dim loss (float32, or float64 for float64 input); 0 if no pixel is valid.
    """
    mask = _check_maps(pred, target, mask)
    dtype = _stat_dtype(pred)
    p, t, m = _flat(pred.to(dtype)), _flat(target.to(dtype)), _flat(mask)
    count = m.sum(1, keepdim=True)
    zeros = torch.zeros_like(p)
    p = torch.where(m, p, zeros)
    t = torch.where(m, t, zeros)
    p_c = torch.where(m, p - p.sum(1, keepdim=True) / count.clamp_min(1), zeros)
    t_c = torch.where(m, t - t.sum(1, keepdim=True) / count.clamp_min(1), zeros)
    variance = (p_c * p_c).sum(1, keepdim=True)
    scale = (p_c * t_c).sum(1, keepdim=True) / variance.clamp_min(VARIANCE_EPS * count.clamp_min(1))
    residual = scale * p_c - t_c  # the shift cancels on centred values
    per_image = (residual * residual).sum(1) / count.squeeze(1).clamp_min(1)
    return _batch_mean(per_image, count.squeeze(1) > 0)


def silog_loss(
    pred: Tensor, target: Tensor, mask: Tensor | None = None, variance_focus: float = 0.85
) -> Tensor:
    """Scale-invariant log loss for metric depth (Eigen et al.; as in AdaBins / ZoeDepth).

    Per image, with e = ln pred − ln target over valid pixels:
    ``sqrt(mean e² − λ · (mean e)²)``, λ = ``variance_focus`` (1: fully scale-invariant, 0:
    RMSE of the log); averaged over images with a valid pixel. The term under the root is
    floored at 1e-12 (a perfect prediction scores 1e-6) so the gradient stays finite.

    Args:
        pred, target: (B, H, W) depth in metres, > 0 where valid.
        mask: (B, H, W) bool valid pixels (also required: target finite and > 0).

    Returns:
        0-dim loss; 0 with zero gradient if no pixel is valid.
    """
    mask = _check_maps(pred, target, mask)
    dtype = _stat_dtype(pred)
    m = _flat(mask & torch.isfinite(target) & (target > 0))
    ones = torch.ones_like(_flat(pred), dtype=dtype)
    p = torch.where(m, _flat(pred.to(dtype)), ones).clamp_min(1e-6)
    t = torch.where(m, _flat(target.to(dtype)), ones)
    e = torch.where(m, p.log() - t.log(), torch.zeros_like(p))
    count = m.sum(1).clamp_min(1)
    mean, mean_sq = e.sum(1) / count, (e * e).sum(1) / count
    per_image = (mean_sq - variance_focus * mean * mean).clamp_min(1e-12).sqrt()
    return _batch_mean(per_image, m.any(1))


def cutmix_loss(
    pred_mixed: Tensor,
    target_a: Tensor,
    target_b: Tensor,
    box: Tensor,
    mask_a: Tensor | None = None,
    mask_b: Tensor | None = None,
    trim: float = 0.0,
) -> Tensor:
    """The paper's CutMix loss L_u on a mixed image u_ab = u_a ⊙ M + u_b ⊙ (1 - M).

    Per image, L = (ΣM / HW) · ρ(pred, target_a | M ∧ mask_a)
                 + (Σ(1-M) / HW) · ρ(pred, target_b | ¬M ∧ mask_b),
    where ρ is the affine-invariant loss with each region normalised (median, scale) on its
    own valid pixels, and a region without valid pixels contributes 0. The weights use the
    box area, not the valid area, as in the paper. The result is the mean over images with
    a valid pixel in either region. An all-False box gives ``affine_invariant_loss`` against
    target_b.

    Args:
        pred_mixed: (B, H, W) student prediction on the mixed images.
        target_a: (B, H, W) teacher prediction on u_a (used inside the box).
        target_b: (B, H, W) teacher prediction on u_b (used outside the box).
        box: (B, H, W) bool CutMix mask M (True = pixel taken from u_a).
        mask_a, mask_b: (B, H, W) bool valid pixels of target_a / target_b, or None.
        trim: per region, the fraction of largest residuals left out (see
            :func:`affine_invariant_loss`).

    Returns:
        0-dim loss (float32, or float64 for float64 input); 0 if no pixel is valid.
    """
    mask_a = _check_maps(pred_mixed, target_a, mask_a, names=("pred_mixed", "target_a", "mask_a"))
    mask_b = _check_maps(pred_mixed, target_b, mask_b, names=("pred_mixed", "target_b", "mask_b"))
    box = _check_maps(pred_mixed, pred_mixed, box, names=("pred_mixed", "pred_mixed", "box"))
    _check_trim(trim)
    pred, box = _flat(pred_mixed), _flat(box)
    loss_in, count_in = _affine_invariant_per_image(
        pred, _flat(target_a), box & _flat(mask_a), trim
    )
    loss_out, count_out = _affine_invariant_per_image(
        pred, _flat(target_b), ~box & _flat(mask_b), trim
    )
    weight_in = box.to(loss_in.dtype).mean(1)
    per_image = weight_in * loss_in + (1 - weight_in) * loss_out
    return _batch_mean(per_image, (count_in + count_out) > 0)


def feature_alignment_loss(f: Tensor, f_frozen: Tensor, margin: float = 0.85) -> Tensor:
    """Semantic feature alignment with a tolerance margin (paper's L_feat, α = ``margin``).

    cos_i is the cosine similarity between the channel vectors of ``f`` and ``f_frozen`` at
    location i (clamped to [-1, 1]). Locations with cos_i > margin are left out; the loss is
    mean(1 - cos_i) over the remaining locations of the whole batch, 0 if none remain. Left-out
    locations get exactly zero gradient; ``f_frozen`` is detached (it is the frozen encoder's).
    margin = 1.0 keeps every location.

    Args:
        f: (B, C, h, w) features of the depth encoder.
        f_frozen: (B, C, h, w) features of the frozen semantic encoder (e.g. DINOv2).
        margin: α; cos above it is tolerated (not penalised).

    Returns:
        0-dim loss (float32, or float64 for float64 input).
    """
    if f.dim() != 4:
        raise ValueError(f"f must have shape (B, C, h, w), got {tuple(f.shape)}")
    if f_frozen.shape != f.shape:
        raise ValueError(
            f"f_frozen shape {tuple(f_frozen.shape)} must equal f shape {tuple(f.shape)}"
        )
    f, f_frozen = f.to(_stat_dtype(f)), f_frozen.detach().to(_stat_dtype(f))
    # cos = <f, f'> / max(|f| |f'|, 1e-8), as F.cosine_similarity but about 2x faster
    squared_norms = (f * f).sum(1) * (f_frozen * f_frozen).sum(1)
    cos = ((f * f_frozen).sum(1) * torch.rsqrt(squared_norms.clamp_min(1e-16))).clamp(-1.0, 1.0)
    keep = cos <= margin
    total = torch.where(keep, 1 - cos, torch.zeros_like(cos)).sum()
    return total / keep.sum().clamp_min(1)
