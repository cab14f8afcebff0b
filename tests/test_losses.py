"""Tests of dalib.losses against hand-computed values and independent per-image loops."""

from __future__ import annotations

import math

import pytest
import torch

from dalib.losses import (
    SCALE_EPS,
    affine_invariant_loss,
    cutmix_loss,
    feature_alignment_loss,
    gradient_matching_loss,
    normalize_scale_shift,
    ssi_mse_loss,
)

MAP_LOSSES = [affine_invariant_loss, gradient_matching_loss, ssi_mse_loss]


def random_maps(batch=4, height=12, width=10, dtype=torch.float32, seed=0, density=0.7):
    g = torch.Generator().manual_seed(seed)
    pred = torch.rand(batch, height, width, generator=g, dtype=dtype)
    target = torch.rand(batch, height, width, generator=g, dtype=dtype)
    mask = torch.rand(batch, height, width, generator=g) < density
    return pred, target, mask


# ---------------------------------------------------------------- independent references


def reference_normalize(values: torch.Tensor) -> torch.Tensor:
    """Eq. (2) on a 1-D tensor of one image's valid pixels."""
    median = torch.median(values)
    scale = (values - median).abs().mean()
    return (values - median) / torch.clamp(scale, min=SCALE_EPS)


def reference_affine(pred, target, mask):
    losses = []
    for p, t, m in zip(pred, target, mask):
        if m.sum() == 0:
            continue
        losses.append((reference_normalize(p[m]) - reference_normalize(t[m])).abs().mean())
    return torch.stack(losses).mean() if losses else torch.zeros((), dtype=pred.dtype)


def reference_gradient_matching(pred, target, mask, scales):
    losses = []
    for p, t, m in zip(pred, target, mask):
        if m.sum() == 0:
            continue
        diff = torch.zeros_like(p)
        diff[m] = reference_normalize(p[m]) - reference_normalize(t[m])
        total = 0.0
        for k in range(scales):
            d, mk = diff[:: 2**k, :: 2**k], m[:: 2**k, :: 2**k]
            pairs = 0.0
            for i in range(d.shape[0]):
                for j in range(d.shape[1]):
                    if j + 1 < d.shape[1] and mk[i, j] and mk[i, j + 1]:
                        pairs = pairs + (d[i, j + 1] - d[i, j]).abs()
                    if i + 1 < d.shape[0] and mk[i, j] and mk[i + 1, j]:
                        pairs = pairs + (d[i + 1, j] - d[i, j]).abs()
            total = total + pairs / mk.sum()
        losses.append(total)
    return torch.stack(losses).mean()


def reference_ssi_mse(pred, target, mask):
    losses = []
    for p, t, m in zip(pred, target, mask):
        if m.sum() == 0:
            continue
        design = torch.stack([p[m], torch.ones_like(p[m])], 1)
        solution = torch.linalg.lstsq(design, t[m].unsqueeze(1)).solution
        losses.append(((design @ solution).squeeze(1) - t[m]).pow(2).mean())
    return torch.stack(losses).mean()


# ---------------------------------------------------------------- normalisation


def test_normalize_hand_computed_even_count_takes_lower_median():
    depth = torch.tensor([[[1.0, 2.0, 3.0, 10.0, 99.0]]])
    mask = torch.tensor([[[True, True, True, True, False]]])
    # lower median of (1, 2, 3, 10) is 2; s = (1 + 0 + 1 + 8) / 4 = 2.5
    expected = torch.tensor([[[-0.4, 0.0, 0.4, 3.2, 0.0]]])
    torch.testing.assert_close(normalize_scale_shift(depth, mask), expected)


def test_normalize_constant_map_is_zero_and_finite():
    depth = torch.full((2, 5, 5), 3.0, requires_grad=True)
    out = normalize_scale_shift(depth)
    assert torch.equal(out, torch.zeros_like(out))
    out.sum().backward()
    assert torch.isfinite(depth.grad).all()


# ---------------------------------------------------------------- affine-invariant loss


@pytest.mark.parametrize("density", [0.3, 0.7, 1.0])
def test_affine_matches_reference_loop_value_and_gradient(density):
    pred, target, mask = random_maps(batch=5, dtype=torch.float64, seed=1, density=density)
    mask[2] = False  # an image without valid pixels is left out of the average
    mask[3] = False
    mask[3, 0, :4] = True  # an even count of valid pixels
    pred_a = pred.clone().requires_grad_()
    pred_b = pred.clone().requires_grad_()
    ours = affine_invariant_loss(pred_a, target, mask)
    ref = reference_affine(pred_b, target, mask)
    torch.testing.assert_close(ours, ref)
    ours.backward()
    ref.backward()
    torch.testing.assert_close(pred_a.grad, pred_b.grad)


@pytest.mark.parametrize("scale, shift", [(0.01, 0.0), (3.0, -2.0), (250.0, 7.0)])
def test_affine_invariant_to_scale_and_shift(scale, shift):
    pred, target, mask = random_maps(seed=2)
    base = affine_invariant_loss(pred, target, mask)
    assert base > 0.1
    torch.testing.assert_close(
        affine_invariant_loss(scale * pred + shift, target, mask), base, atol=1e-5, rtol=0
    )
    torch.testing.assert_close(
        affine_invariant_loss(pred, scale * target + shift, mask), base, atol=1e-5, rtol=0
    )


@pytest.mark.parametrize("loss_fn", MAP_LOSSES)
def test_masked_out_values_do_not_matter(loss_fn):
    pred, target, mask = random_maps(seed=3)
    base = loss_fn(pred, target, mask)
    # swap the masked-out pixels of pred and target, then poison them with inf / nan
    swapped_pred = torch.where(mask, pred, target)
    swapped_target = torch.where(mask, target, pred)
    torch.testing.assert_close(loss_fn(swapped_pred, swapped_target, mask), base)
    poisoned = torch.where(mask, pred, torch.tensor(float("nan"))).requires_grad_()
    value = loss_fn(poisoned, torch.where(mask, target, torch.tensor(float("inf"))), mask)
    torch.testing.assert_close(value, base)
    value.backward()
    assert torch.isfinite(poisoned.grad).all()
    assert torch.equal(poisoned.grad[~mask], torch.zeros_like(poisoned.grad[~mask]))


def test_affine_robust_to_outliers_unlike_least_squares():
    g = torch.Generator().manual_seed(4)
    target = torch.rand(2, 40, 40, generator=g)
    pred = 2.0 * target + 1.0 + 0.02 * torch.randn(2, 40, 40, generator=g)
    noisy = target.clone()
    outliers = torch.rand(2, 40, 40, generator=g) < 0.05
    noisy[outliers] = 100.0  # 5% wild pseudo labels
    affine_ratio = affine_invariant_loss(pred, noisy) / affine_invariant_loss(pred, target)
    lsq_ratio = ssi_mse_loss(pred, noisy) / ssi_mse_loss(pred, target)
    assert affine_ratio < 100
    assert lsq_ratio > 100 * affine_ratio


# ---------------------------------------------------------------- empty / tiny masks, dtypes


def _all_losses(pred, target, mask):
    box = torch.zeros_like(mask)
    box[:, :2, :2] = True
    return {
        "affine": affine_invariant_loss(pred, target, mask),
        "gradient": gradient_matching_loss(pred, target, mask),
        "ssi_mse": ssi_mse_loss(pred, target, mask),
        "cutmix": cutmix_loss(pred, target, target.flip(-1), box, mask, mask),
    }


@pytest.mark.parametrize("n_valid", [0, 1])
def test_empty_and_single_pixel_masks_are_finite_with_zero_gradient(n_valid):
    pred, target, _ = random_maps(seed=5)
    mask = torch.zeros_like(pred, dtype=torch.bool)
    mask.view(-1)[:n_valid] = True
    pred.requires_grad_()
    for name, value in _all_losses(pred, target, mask).items():
        (grad,) = torch.autograd.grad(value, pred)
        assert value.item() == 0.0, name
        assert torch.equal(grad, torch.zeros_like(grad)), name


def test_constant_prediction_is_finite():
    _, target, mask = random_maps(seed=6)
    pred = torch.full_like(target, 0.5, requires_grad=True)
    for name, value in _all_losses(pred, target, mask).items():
        value.backward()
        assert torch.isfinite(value), name
        assert torch.isfinite(pred.grad).all(), name


@pytest.mark.parametrize("loss_fn", MAP_LOSSES)
def test_gradcheck_float64(loss_fn):
    pred, target, mask = random_maps(batch=2, height=5, width=6, dtype=torch.float64, seed=7)
    pred.requires_grad_()
    assert torch.autograd.gradcheck(lambda p: loss_fn(p, target, mask), (pred,))


def test_gradcheck_cutmix_and_feature_alignment():
    pred, target, mask = random_maps(batch=2, height=5, width=6, dtype=torch.float64, seed=8)
    box = torch.zeros_like(mask)
    box[:, 1:4, 2:5] = True
    pred.requires_grad_()
    assert torch.autograd.gradcheck(
        lambda p: cutmix_loss(p, target, target.flip(1), box, mask, None), (pred,)
    )
    g = torch.Generator().manual_seed(9)
    f = torch.randn(2, 4, 3, 3, generator=g, dtype=torch.float64, requires_grad=True)
    frozen = torch.randn(2, 4, 3, 3, generator=g, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: feature_alignment_loss(x, frozen, margin=1.0), (f,))


def test_bf16_autocast_on_cpu_gives_finite_float32_close_to_float32():
    pred, target, mask = random_maps(batch=3, height=16, width=16, seed=10)
    exact = _all_losses(pred, target, mask)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        half = _all_losses(pred.bfloat16(), target.bfloat16(), mask)
        f = torch.randn(2, 8, 4, 4).bfloat16()
        feat = feature_alignment_loss(f, f + 0.5 * torch.randn(2, 8, 4, 4).bfloat16(), margin=1.0)
    assert feat.dtype == torch.float32 and torch.isfinite(feat)
    for name, value in half.items():
        assert value.dtype == torch.float32, name
        assert torch.isfinite(value), name
        torch.testing.assert_close(value, exact[name], rtol=0.05, atol=0.02)


def test_bad_inputs_name_the_argument():
    pred, target, mask = random_maps()
    with pytest.raises(ValueError, match="target"):
        affine_invariant_loss(pred, target[:, :-1])
    with pytest.raises(TypeError, match="mask"):
        affine_invariant_loss(pred, target, mask.float())
    with pytest.raises(ValueError, match="pred"):
        ssi_mse_loss(pred[0], target[0])
    with pytest.raises(ValueError, match="scales"):
        gradient_matching_loss(pred, target, scales=0)
    with pytest.raises(TypeError, match="box"):
        cutmix_loss(pred, target, target, mask.float())
    with pytest.raises(ValueError, match="f_frozen"):
        feature_alignment_loss(torch.rand(1, 2, 3, 3), torch.rand(1, 3, 3, 3))


# ---------------------------------------------------------------- gradient matching, ssi-MSE


def test_gradient_matching_matches_reference_loop():
    pred, target, mask = random_maps(batch=3, height=9, width=7, dtype=torch.float64, seed=11)
    mask[1] = False
    torch.testing.assert_close(
        gradient_matching_loss(pred, target, mask, scales=3),
        reference_gradient_matching(pred, target, mask, 3),
    )


def test_gradient_matching_zero_for_identical_and_invariant_to_scale_shift():
    pred, target, mask = random_maps(seed=12)
    assert gradient_matching_loss(pred, pred, mask) == 0
    assert gradient_matching_loss(pred, 4.0 * pred - 1.0, mask) < 1e-5
    base = gradient_matching_loss(pred, target, mask)
    assert base > 0.1
    torch.testing.assert_close(
        gradient_matching_loss(0.2 * pred + 3.0, target, mask), base, atol=1e-5, rtol=0
    )


def test_gradient_matching_more_scales_add_terms():
    pred, target, mask = random_maps(height=16, width=16, seed=13)
    losses = [gradient_matching_loss(pred, target, mask, scales=s) for s in (1, 2, 3)]
    assert losses[0] < losses[1] < losses[2]


def test_ssi_mse_matches_least_squares_reference():
    pred, target, mask = random_maps(batch=3, dtype=torch.float64, seed=14)
    mask[0] = False
    torch.testing.assert_close(
        ssi_mse_loss(pred, target, mask), reference_ssi_mse(pred, target, mask)
    )
    assert ssi_mse_loss(pred, 3.0 * pred - 2.0, mask) < 1e-20


# ---------------------------------------------------------------- CutMix loss


def test_cutmix_loss_is_area_weighted_sum_of_region_losses():
    pred, target_a, mask_a = random_maps(batch=3, height=10, width=12, dtype=torch.float64, seed=15)
    _, target_b, mask_b = random_maps(batch=3, height=10, width=12, dtype=torch.float64, seed=16)
    box = torch.zeros_like(mask_a)
    box[0, 2:6, 3:9] = True  # 24 of 120 pixels
    box[1, :, :7] = True  # 70 of 120
    # image 2: no CutMix, all False
    expected = []
    for i in range(3):
        w_in = box[i].double().mean()
        one = slice(i, i + 1)
        inside = affine_invariant_loss(pred[one], target_a[one], (box & mask_a)[one])
        outside = affine_invariant_loss(pred[one], target_b[one], (~box & mask_b)[one])
        expected.append(w_in * inside + (1 - w_in) * outside)
    torch.testing.assert_close(
        cutmix_loss(pred, target_a, target_b, box, mask_a, mask_b), torch.stack(expected).mean()
    )
    # no box: plain affine-invariant loss against target_b
    torch.testing.assert_close(
        cutmix_loss(pred[2:], target_a[2:], target_b[2:], box[2:], mask_a[2:], mask_b[2:]),
        affine_invariant_loss(pred[2:], target_b[2:], mask_b[2:]),
    )


def test_cutmix_regions_are_normalised_separately():
    # inside the box the prediction equals target_a up to an affine map, outside it equals
    # target_b up to a different one: each region on its own is perfect, so the loss is 0
    _, target_a, _ = random_maps(batch=2, seed=17)
    _, target_b, _ = random_maps(batch=2, seed=18)
    box = torch.zeros_like(target_a, dtype=torch.bool)
    box[:, 3:8, 2:7] = True
    pred = torch.where(box, 5.0 * target_a + 2.0, 0.3 * target_b - 1.0)
    assert cutmix_loss(pred, target_a, target_b, box) < 1e-5
    assert affine_invariant_loss(pred, torch.where(box, target_a, target_b)) > 0.05


# ---------------------------------------------------------------- feature alignment


def _features_with_known_cosines(cosines: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 2, h, w) pairs of unit vectors whose per-location cosine is ``cosines`` (B, h, w)."""
    angle = torch.arccos(cosines)
    frozen = torch.stack([torch.ones_like(angle), torch.zeros_like(angle)], 1)
    f = torch.stack([torch.cos(angle), torch.sin(angle)], 1)
    return f, frozen


def test_feature_alignment_hand_computed_and_margin():
    cosines = torch.tensor([[[0.9, 0.5], [0.2, 1.0]]], dtype=torch.float64)
    f, frozen = _features_with_known_cosines(cosines)
    f = (3.0 * f).requires_grad_()  # cosine ignores the norm
    loss = feature_alignment_loss(f, frozen, margin=0.85)
    torch.testing.assert_close(loss, torch.tensor((0.5 + 0.8) / 2, dtype=torch.float64))
    loss.backward()
    excluded = (cosines > 0.85).unsqueeze(1).expand_as(f)
    assert torch.equal(f.grad[excluded], torch.zeros_like(f.grad[excluded]))
    assert (f.grad[~excluded].abs() > 0).any()
    everything = feature_alignment_loss(f, frozen, margin=1.0)  # counts the cos = 1 location too
    torch.testing.assert_close(
        everything, torch.tensor((0.1 + 0.5 + 0.8 + 0.0) / 4, dtype=torch.float64)
    )


def test_feature_alignment_all_excluded_is_zero_with_zero_gradient():
    g = torch.Generator().manual_seed(19)
    frozen = torch.randn(2, 6, 3, 3, generator=g)
    f = (frozen + 0.01 * torch.randn(2, 6, 3, 3, generator=g)).requires_grad_()
    loss = feature_alignment_loss(f, frozen, margin=0.85)
    loss.backward()
    assert loss.item() == 0.0
    assert torch.equal(f.grad, torch.zeros_like(f.grad))
    assert feature_alignment_loss(f, frozen, margin=1.0) > 0


def test_feature_alignment_matches_reference_and_frozen_gets_no_gradient():
    g = torch.Generator().manual_seed(20)
    f = torch.randn(3, 5, 4, 4, generator=g)
    frozen = (f + torch.randn(3, 5, 4, 4, generator=g)).requires_grad_()
    cos = (f * frozen).sum(1) / (f.norm(dim=1) * frozen.norm(dim=1))
    kept = cos[cos <= 0.6]
    assert 0 < kept.numel() < cos.numel()
    loss = feature_alignment_loss(f, frozen, margin=0.6)
    torch.testing.assert_close(loss, (1 - kept).mean().detach())
    assert not loss.requires_grad


def test_trimmed_loss_leaves_out_each_images_largest_residuals():
    g = torch.Generator().manual_seed(0)
    pred, target = torch.rand(3, 10, 10, generator=g), torch.rand(3, 10, 10, generator=g)
    mask = torch.rand(3, 10, 10, generator=g) > 0.3
    mask[2] = False  # an image without valid pixels stays out of the mean
    residual = (normalize_scale_shift(pred, mask) - normalize_scale_shift(target, mask)).abs()
    expected = []
    for b in range(2):
        r = residual[b][mask[b]].sort().values
        expected.append(r[: math.ceil(0.9 * r.numel())].mean())
    got = affine_invariant_loss(pred, target, mask, trim=0.1)
    torch.testing.assert_close(got, torch.stack(expected).mean())
    assert got < affine_invariant_loss(pred, target, mask)
    torch.testing.assert_close(
        affine_invariant_loss(pred, target, mask, trim=0.0),
        affine_invariant_loss(pred, target, mask),
    )
    box = torch.zeros(3, 10, 10, dtype=torch.bool)  # no box: CutMix loss = the loss against b
    torch.testing.assert_close(cutmix_loss(pred, target, target, box, mask, mask, trim=0.1), got)
    with pytest.raises(ValueError, match="trim"):
        affine_invariant_loss(pred, target, mask, trim=1.0)
