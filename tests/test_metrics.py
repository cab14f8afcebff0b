"""dalib.metrics against cases worked out by hand (and least squares against torch.linalg)."""

import math

import pytest
import torch

from dalib.metrics import (
    align_scale_shift,
    confusion_matrix,
    iou_from_confusion,
    metric_depth_metrics,
    miou,
    relative_depth_metrics,
)


def row(*values):
    """A (1, 1, W) batch from a list of numbers."""
    return torch.tensor([[list(values)]], dtype=torch.float32)


def test_align_exact_affine_fit_ignores_masked_outlier():
    pred = row(0.0, 1.0, 2.0, 3.0, 4.0)
    target = row(1.0, 3.0, 5.0, 7.0, 1000.0)  # 2 * pred + 1, except the masked last pixel
    mask = torch.tensor([[[True, True, True, True, False]]])
    aligned, scale, shift = align_scale_shift(pred, target, mask)
    torch.testing.assert_close(scale, torch.tensor([2.0]))
    torch.testing.assert_close(shift, torch.tensor([1.0]))
    torch.testing.assert_close(aligned, row(1.0, 3.0, 5.0, 7.0, 9.0))


def test_align_least_squares_by_hand_batched():
    # image 0: p = [0, 1, 2], y = [0, 2, 1]: mean p = mean y = 1, cov = 1, var = 2
    #          -> s = 1/2, t = 1 - 1/2 = 1/2, aligned = [.5, 1, 1.5]
    # image 1: p = [1, 2, 3], y = [1, 2, 4]: mean p = 2, mean y = 7/3, cov = 3, var = 2
    #          -> s = 3/2, t = 7/3 - 3 = -2/3
    pred = torch.tensor([[[0.0, 1.0, 2.0]], [[1.0, 2.0, 3.0]]])
    target = torch.tensor([[[0.0, 2.0, 1.0]], [[1.0, 2.0, 4.0]]])
    aligned, scale, shift = align_scale_shift(pred, target, torch.ones_like(pred, dtype=torch.bool))
    torch.testing.assert_close(scale, torch.tensor([0.5, 1.5]))
    torch.testing.assert_close(shift, torch.tensor([0.5, -2 / 3]))
    torch.testing.assert_close(aligned[0], torch.tensor([[0.5, 1.0, 1.5]]))


def test_align_matches_linalg_lstsq():
    gen = torch.Generator().manual_seed(0)
    pred = torch.rand(3, 6, 7, generator=gen, dtype=torch.float64)
    target = 0.3 * pred - 2 + 0.1 * torch.randn(3, 6, 7, generator=gen, dtype=torch.float64)
    mask = torch.rand(3, 6, 7, generator=gen) > 0.3
    _, scale, shift = align_scale_shift(pred, target, mask)
    for b in range(3):
        design = torch.stack(
            [pred[b][mask[b]], torch.ones(int(mask[b].sum()), dtype=torch.float64)], dim=1
        )
        solution = torch.linalg.lstsq(design, target[b][mask[b]][:, None]).solution.squeeze(1)
        torch.testing.assert_close(torch.stack([scale[b], shift[b]]), solution)


def test_align_degenerate_cases_documented_fallbacks():
    pred = torch.stack([torch.full((2, 2), 3.0), torch.tensor([[1.0, 2.0], [3.0, 4.0]])])
    target = torch.stack([torch.tensor([[1.0, 2.0], [3.0, 6.0]]), torch.ones(2, 2)])
    mask = torch.ones(2, 2, 2, dtype=torch.bool)
    mask[1] = False  # empty mask -> scale 1, shift 0
    aligned, scale, shift = align_scale_shift(pred, target, mask)
    # constant prediction: scale 1, shift = mean(target - pred) = mean([-2, -1, 0, 3]) = 0
    torch.testing.assert_close(scale, torch.tensor([1.0, 1.0]))
    torch.testing.assert_close(shift, torch.tensor([0.0, 0.0]))
    torch.testing.assert_close(aligned, pred)
    assert torch.isfinite(aligned).all()


def test_align_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="shapes differ"):
        align_scale_shift(
            torch.ones(1, 2, 2), torch.ones(1, 2, 3), torch.ones(1, 2, 2, dtype=torch.bool)
        )


def test_relative_metrics_perfect_up_to_affine():
    gt_depth = row(1.0, 2.0, 4.0, 5.0)  # disparity [1, .5, .25, .2]
    pred = 2 * (1 / gt_depth) + 3
    out = relative_depth_metrics(pred, gt_depth)
    assert out["abs_rel"].item() == pytest.approx(0.0, abs=1e-6)
    assert out["delta1"].item() == 1.0
    assert out["scale_per_image"].item() == pytest.approx(0.5)
    assert out["shift_per_image"].item() == pytest.approx(-1.5)


def test_relative_metrics_by_hand():
    # gt depth [1, 1/2, 1/4] -> disparity y = [1, 2, 4]; pred p = [1, 2, 3]
    # fit (see above): s = 3/2, t = -2/3 -> aligned [5/6, 7/3, 23/6] -> depth [6/5, 3/7, 6/23]
    # AbsRel = mean(1/5, (1/14)/(1/2) = 1/7, (1/92)/(1/4) = 1/23); ratios 6/5, 7/6, 24/23 < 1.25
    gt_depth = row(1.0, 0.5, 0.25, 7.0)
    pred = row(1.0, 2.0, 3.0, 99.0)
    mask = torch.tensor([[[True, True, True, False]]])
    out = relative_depth_metrics(pred, gt_depth, mask)
    assert out["abs_rel"].item() == pytest.approx((1 / 5 + 1 / 7 + 1 / 23) / 3, rel=1e-5)
    assert out["delta1"].item() == 1.0


def test_relative_metrics_clamp_and_image_mean():
    # p = [0, 1, 2, 3], y = 1/gt = [.1, .1, .1, 1]: mean p 1.5, mean y .325, cov 1.35, var 5
    # -> s = .27, t = -.08, aligned [-.08, .19, .46, .73]; the first is clamped to 1/max_depth
    gt = torch.tensor([[[10.0, 10.0, 10.0, 1.0]], [[2.0, 2.0, 2.0, 2.0]]])
    pred = torch.tensor([[[0.0, 1.0, 2.0, 3.0]], [[5.0, 5.0, 5.0, 5.0]]])
    capped = relative_depth_metrics(pred, gt, max_depth=20.0)
    image0 = [
        abs(20 - 10) / 10,
        abs(1 / 0.19 - 10) / 10,
        abs(1 / 0.46 - 10) / 10,
        abs(1 / 0.73 - 1),
    ]
    assert capped["abs_rel_per_image"][0].item() == pytest.approx(sum(image0) / 4, rel=1e-4)
    assert capped["delta1_per_image"][0].item() == 0.0  # ratios 2, 1.9, 4.6, 1.37
    # image 1: constant pred -> s = 1, t = .5 - 5 -> exact; so AbsRel 0, delta1 1
    assert capped["abs_rel_per_image"][1].item() == pytest.approx(0.0, abs=1e-6)
    assert capped["abs_rel"].item() == pytest.approx(sum(image0) / 8, rel=1e-4)
    assert capped["delta1"].item() == 0.5
    uncapped = relative_depth_metrics(pred, gt)  # clamp at eps = 1e-6 -> depth 1e6
    assert uncapped["abs_rel_per_image"][0].item() == pytest.approx(
        (1e5 - 1 + sum(image0[1:])) / 4, rel=1e-4
    )


def test_relative_metrics_skip_images_without_valid_pixels():
    gt = torch.tensor([[[math.inf, 0.0]], [[1.0, 2.0]]])
    pred = torch.tensor([[[1.0, 2.0]], [[1.0, 0.5]]])
    out = relative_depth_metrics(pred, gt)
    assert math.isnan(out["abs_rel_per_image"][0].item())
    assert out["abs_rel"].item() == pytest.approx(0.0, abs=1e-6)
    assert out["delta1"].item() == 1.0


def test_metric_depth_metrics_by_hand():
    # p = [1, 2, 4, 8], g = [1, 2, 4, 4]: one pixel off by a factor 2 (error 4 m)
    out = metric_depth_metrics(row(1.0, 2.0, 4.0, 8.0), row(1.0, 2.0, 4.0, 4.0))
    ln2 = math.log(2)
    expected = {
        "delta1": 0.75,
        "delta2": 0.75,
        "delta3": 0.75,  # 2 > 1.25^3 = 1.953
        "abs_rel": 1 / 4,  # (4 / 4) / 4
        "sq_rel": 1.0,  # (16 / 4) / 4
        "rmse": 2.0,  # sqrt(16 / 4)
        "rmse_log": ln2 / 2,  # sqrt(ln2^2 / 4)
        "log10": math.log10(2) / 4,
        "silog": 100 * math.sqrt(ln2**2 / 4 - (ln2 / 4) ** 2),
    }
    for name, value in expected.items():
        assert out[name].item() == pytest.approx(value, rel=1e-5), name
        assert out[f"{name}_per_image"].shape == (1,)


def test_metric_depth_range_mask_and_clamp():
    gt = row(0.0, 1.0, 2.0, 50.0, 2.0)
    pred = row(5.0, 100.0, math.inf, 1.0, 2.0)
    mask = torch.tensor([[[True, True, True, True, False]]])
    out = metric_depth_metrics(pred, gt, mask, max_depth=10.0)
    # valid: gt 1 and 2 (0 invalid, 50 > max_depth, last masked); pred clamped/filled to 10
    assert out["abs_rel"].item() == pytest.approx((9 / 1 + 8 / 2) / 2)
    assert out["rmse"].item() == pytest.approx(math.sqrt((81 + 64) / 2))


def test_metric_depth_mean_over_images_with_valid_pixels():
    gt = torch.tensor([[[1.0, 1.0]], [[math.nan, 0.0]], [[2.0, 2.0]]])
    pred = torch.tensor([[[2.0, 2.0]], [[1.0, 1.0]], [[2.0, 2.0]]])
    out = metric_depth_metrics(pred, gt)
    assert math.isnan(out["abs_rel_per_image"][1].item())
    assert out["abs_rel"].item() == pytest.approx(0.5)  # mean of 1.0 and 0.0
    assert out["delta1"].item() == pytest.approx(0.5)


def test_miou_by_hand():
    pred = torch.tensor([[0, 1, 1, 2]])
    target = torch.tensor([[0, 1, 2, 2]])
    mean, iou = miou(pred, target, num_classes=4)
    # class 0: 1/1; class 1: I 1, U 2 -> .5; class 2: I 1, U 2 -> .5; class 3 absent
    torch.testing.assert_close(iou[:3], torch.tensor([1.0, 0.5, 0.5], dtype=torch.float64))
    assert math.isnan(iou[3].item())
    assert mean == pytest.approx(2 / 3)


def test_miou_ignore_index_and_false_positive_class():
    pred = torch.tensor([[0, 3, 1, 1]])
    target = torch.tensor([[0, 255, 1, 255]])
    mean, iou = miou(pred, target, num_classes=4, ignore_index=255)
    torch.testing.assert_close(iou[:2], torch.tensor([1.0, 1.0], dtype=torch.float64))
    assert math.isnan(iou[2].item()) and math.isnan(iou[3].item())  # ignored pixels don't count
    assert mean == 1.0
    # a class only predicted (never in target) has IoU 0 and lowers the mean
    mean2, iou2 = miou(torch.tensor([2, 1]), torch.tensor([1, 1]), num_classes=3)
    assert iou2[2].item() == 0.0 and iou2[1].item() == 0.5 and mean2 == pytest.approx(0.25)


def test_confusion_accumulates_and_rejects_bad_labels():
    a = confusion_matrix(torch.tensor([0, 1]), torch.tensor([0, 0]), 2)
    b = confusion_matrix(torch.tensor([1]), torch.tensor([1]), 2)
    torch.testing.assert_close(a + b, torch.tensor([[1, 1], [0, 1]]))
    mean, _ = iou_from_confusion(a + b)
    assert mean == pytest.approx((1 / 2 + 1 / 2) / 2)
    with pytest.raises(ValueError, match="target has labels outside"):
        miou(torch.tensor([0]), torch.tensor([5]), num_classes=3)
    with pytest.raises(ValueError, match="pred has labels outside"):
        miou(torch.tensor([-1]), torch.tensor([0]), num_classes=3)
