"""Tests of dalib.augment: torchvision references, distributions, determinism, pairing."""

from __future__ import annotations

import inspect
import math

import pytest
import torch
import torchvision.transforms.functional as TF

from dalib.augment import (
    _adjust_hue,
    apply_cutmix,
    color_jitter,
    cutmix_box,
    gaussian_blur,
    hflip,
    random_grayscale,
    sample_boxes,
    strong_perturbation,
)

PERTURBATIONS = [color_jitter, random_grayscale, gaussian_blur, strong_perturbation]


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def random_images(batch=8, height=20, width=24, seed=0) -> torch.Tensor:
    images = torch.rand(batch, 3, height, width, generator=gen(seed))
    images[:, :, 0, :] = 0.0  # exact extremes must survive every operation
    images[:, :, -1, :] = 1.0
    return images


def identical_images(batch: int, seed=1) -> torch.Tensor:
    return random_images(1, seed=seed).expand(batch, -1, -1, -1).contiguous()


def sharpness(images: torch.Tensor) -> torch.Tensor:
    """(B,) mean absolute horizontal difference of each image."""
    return (images[..., 1:] - images[..., :-1]).abs().mean((1, 2, 3))


def ks_uniform(samples: torch.Tensor, low: float, high: float) -> float:
    """Kolmogorov-Smirnov distance between ``samples`` and U(low, high)."""
    x = ((samples.double().sort().values - low) / (high - low)).clamp(0, 1)
    n = x.numel()
    upper = torch.arange(1, n + 1, dtype=torch.float64) / n
    return max((upper - x).max().item(), (x - (upper - 1 / n)).max().item())


# ---------------------------------------------------------------- shared properties


@pytest.mark.parametrize("perturb", PERTURBATIONS)
def test_values_stay_in_unit_range_and_input_untouched(perturb):
    images = random_images(batch=32)
    before = images.clone()
    out = perturb(images, gen(2))
    assert out.shape == images.shape and out.dtype == images.dtype
    assert out.min() >= 0 and out.max() <= 1
    assert torch.equal(images, before)


@pytest.mark.parametrize("perturb", PERTURBATIONS)
def test_same_seed_same_result_other_seed_differs(perturb):
    images = random_images(batch=16)
    first, again = perturb(images, gen(3)), perturb(images, gen(3))
    assert torch.equal(first, again)
    assert not torch.equal(first, perturb(images, gen(4)))


def test_perturbations_take_images_only():
    for perturb in PERTURBATIONS:
        params = list(inspect.signature(perturb).parameters)
        assert params[:2] == ["images", "generator"], perturb.__name__
        assert not {"depth", "target", "mask", "label"} & set(params), perturb.__name__


def test_generator_on_another_device_is_refused():
    images = torch.empty(2, 3, 8, 8, device="meta")
    with pytest.raises(ValueError, match="generator is on cpu"):
        color_jitter(images, gen(0))


def test_bad_images_are_refused():
    with pytest.raises(ValueError, match="images"):
        random_grayscale(torch.rand(2, 1, 8, 8), gen(0))
    with pytest.raises(TypeError, match="images"):
        gaussian_blur(torch.zeros(2, 3, 8, 8, dtype=torch.uint8), gen(0))


# ---------------------------------------------------------------- colour jitter


def test_brightness_factor_per_image_uniform_in_range():
    images = identical_images(400) * 0.6  # < 1/1.5: no clamping
    out = color_jitter(images, gen(5), brightness=0.5, contrast=0, saturation=0, hue=0, p=1.0)
    ratio = out / images.clamp_min(1e-3)
    bright = images > 0.05
    factors = torch.stack([r[b].median() for r, b in zip(ratio, bright)])
    for r, b, factor in zip(ratio[:10], bright[:10], factors[:10]):  # one factor per image
        torch.testing.assert_close(r[b], torch.full_like(r[b], factor.item()), rtol=1e-4, atol=1e-4)
    assert factors.min() >= 0.5 and factors.max() <= 1.5
    assert ks_uniform(factors, 0.5, 1.5) < 0.1
    assert factors.unique().numel() == 400  # every image drew its own factor


@pytest.mark.parametrize("which", ["contrast", "saturation"])
def test_contrast_and_saturation_follow_torchvision(which):
    images = random_images(batch=6)
    settings = {"brightness": 0.0, "contrast": 0.0, "saturation": 0.0, "hue": 0.0, "p": 1.0}
    settings[which] = 0.9
    out = color_jitter(images, gen(6), **settings)
    reference_fn = TF.adjust_contrast if which == "contrast" else TF.adjust_saturation
    for image, result in zip(images, out):
        # recover the factor from an unclamped pixel range, then compare with torchvision
        candidates = torch.linspace(0.1, 1.9, 1801)
        errors = torch.stack(
            [(reference_fn(image, c.item()) - result).abs().max() for c in candidates]
        )
        assert errors.min() < 2e-3


@pytest.mark.parametrize("shift", [-0.25, -0.1, 0.05, 0.25])
def test_hue_rotation_matches_torchvision(shift):
    images = random_images(batch=2)
    ours = _adjust_hue(images, torch.full((2, 1, 1, 1), shift))
    reference = torch.stack([TF.adjust_hue(image, shift) for image in images])
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=0)


def test_jitter_probability_and_identity_when_not_applied():
    images = identical_images(500)
    out = color_jitter(images, gen(7), p=0.8)
    untouched = (out == images).flatten(1).all(1)
    assert abs(untouched.float().mean().item() - 0.2) < 0.06
    changed = out[~untouched]
    assert torch.unique(changed.flatten(1), dim=0).shape[0] == len(changed)  # own parameters each


# ---------------------------------------------------------------- grayscale and blur


def test_random_grayscale_matches_torchvision_with_probability_p():
    images = identical_images(1000)
    out = random_grayscale(images, gen(8), p=0.2)
    gray = (out[:, 0] == out[:, 1]).flatten(1).all(1) & (out[:, 1] == out[:, 2]).flatten(1).all(1)
    assert abs(gray.float().mean().item() - 0.2) < 0.04
    reference = TF.rgb_to_grayscale(images[0], num_output_channels=3)
    torch.testing.assert_close(out[gray][0], reference, atol=1e-6, rtol=0)
    assert torch.equal(out[~gray], images[~gray])


@pytest.mark.parametrize("sigma", [0.4, 1.3, 2.0])
def test_blur_matches_torchvision_for_a_fixed_sigma(sigma):
    images = random_images(batch=3, height=24, width=30)
    ours = gaussian_blur(images, gen(9), p=1.0, sigma=(sigma, sigma))
    size = 2 * math.ceil(3 * sigma) + 1
    reference = TF.gaussian_blur(images, kernel_size=[size, size], sigma=[sigma, sigma])
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=0)


def test_blur_sigma_differs_per_image_and_probability():
    images = identical_images(300)
    out = gaussian_blur(images, gen(10), p=0.5)
    untouched = (out == images).flatten(1).all(1)
    assert abs(untouched.float().mean().item() - 0.5) < 0.1
    blurred = out[~untouched]
    assert torch.unique(blurred.flatten(1), dim=0).shape[0] == len(blurred)  # own sigma each
    least = sharpness(gaussian_blur(images[:1], gen(0), p=1.0, sigma=(2.0, 2.0)))
    most = sharpness(gaussian_blur(images[:1], gen(0), p=1.0, sigma=(0.1, 0.1)))
    assert (sharpness(blurred) >= least - 1e-6).all() and (sharpness(blurred) <= most + 1e-6).all()


def test_blur_keeps_constant_images():
    images = torch.full((2, 3, 9, 9), 0.3)
    torch.testing.assert_close(gaussian_blur(images, gen(11), p=1.0), images)


# ---------------------------------------------------------------- CutMix boxes


def test_box_area_and_aspect_ratio_distribution():
    size = 1024
    boxes = sample_boxes(10_000, size, size, gen(12), p=1.0)
    top, left, height, width = boxes.double().unbind(1)
    assert (height >= 1).all() and (width >= 1).all()
    assert (top >= 0).all() and (left >= 0).all()
    assert (top + height <= size).all() and (left + width <= size).all()
    fraction = height * width / size**2
    slack = (0.5 * (height + width) + 0.25) / size**2  # rounding each side to whole pixels
    assert ((fraction >= 0.02 - slack) & (fraction <= 0.4 + slack)).all()
    assert ks_uniform(fraction, 0.02, 0.4) < 0.02  # ~ 1% critical value at n = 10k: 0.016
    aspect = height / width
    aspect_slack = 2 / width  # rounding
    assert ((aspect >= 0.3 - aspect_slack) & (aspect <= 1 / 0.3 + aspect_slack)).all()
    small = fraction < 0.29  # here all of the aspect range fits the square image
    assert ks_uniform(aspect[small], 0.3, 1 / 0.3) < 0.025
    assert aspect.max() > 3.2 and aspect.min() < 0.32


def test_box_probability_and_empty_boxes():
    boxes = sample_boxes(10_000, 32, 48, gen(13), p=0.3)
    has_box = boxes[:, 2] > 0
    assert abs(has_box.float().mean().item() - 0.3) < 0.02
    assert (boxes[~has_box] == 0).all()


@pytest.mark.parametrize("height, width", [(16, 128), (128, 16), (7, 9)])
def test_boxes_fit_non_square_and_tiny_images(height, width):
    boxes = sample_boxes(2000, height, width, gen(14), p=1.0)
    top, left, box_h, box_w = boxes.unbind(1)
    assert (box_h >= 1).all() and (box_w >= 1).all()
    assert (top + box_h <= height).all() and (left + box_w <= width).all()
    assert (top == 0).any() and (left == 0).any()  # every position where the box fits is drawn
    assert (top + box_h == height).any() and (left + box_w == width).any()


def test_cutmix_box_rasterises_the_sampled_boxes():
    boxes = sample_boxes(200, 20, 30, gen(15))
    masks = cutmix_box(200, 20, 30, gen(15))
    assert masks.dtype == torch.bool and masks.shape == (200, 20, 30)
    for (top, left, h, w), mask in zip(boxes.tolist(), masks):
        expected = torch.zeros(20, 30, dtype=torch.bool)
        expected[top : top + h, left : left + w] = True
        assert torch.equal(mask, expected)
    assert not masks[boxes[:, 2] == 0].any()


def test_apply_cutmix_images_and_maps():
    a, b = random_images(batch=2, seed=16), random_images(batch=2, seed=17)
    box = torch.zeros(2, 20, 24, dtype=torch.bool)
    box[0, 5:9, 2:12] = True
    mixed = apply_cutmix(a, b, box)
    assert torch.equal(mixed[0, :, 5:9, 2:12], a[0, :, 5:9, 2:12])
    outside = ~box[0]
    assert torch.equal(mixed[0][:, outside], b[0][:, outside])
    assert torch.equal(mixed[1], b[1])
    maps = apply_cutmix(a[:, 0], b[:, 0], box)
    assert torch.equal(maps, mixed[:, 0])
    with pytest.raises(ValueError, match="box"):
        apply_cutmix(a, b, box[:, :-1])
    with pytest.raises(TypeError, match="box"):
        apply_cutmix(a, b, box.float())


# ---------------------------------------------------------------- paired flip


def test_hflip_flips_depth_and_masks_with_the_image():
    images = random_images(batch=200, height=6, width=7)
    depth = images[:, 0] * 10  # a label that is a known function of the image
    valid = images[:, 1] > 0.5
    sem = (images[:, 2] * 5).long()
    out_img, out_depth, out_valid, out_sem = hflip(images, depth, valid, sem, generator=gen(18))
    flipped = (out_img != images).flatten(1).any(1)
    assert abs(flipped.float().mean().item() - 0.5) < 0.15
    torch.testing.assert_close(out_depth, out_img[:, 0] * 10)
    assert torch.equal(out_valid, out_img[:, 1] > 0.5)
    assert torch.equal(out_sem, (out_img[:, 2] * 5).long())
    assert torch.equal(out_img[flipped], images[flipped].flip(-1))
    assert torch.equal(out_img[~flipped], images[~flipped])
    assert out_sem.dtype == torch.int64 and out_valid.dtype == torch.bool


def test_hflip_unbatched_and_deterministic():
    image, depth = random_images(batch=1)[0], torch.rand(20, 24)
    out_image, out_depth = hflip(image, depth, p=1.0)
    assert torch.equal(out_image, image.flip(-1)) and torch.equal(out_depth, depth.flip(-1))
    assert hflip(image, depth, p=0.0)[0] is not None and torch.equal(
        hflip(image, depth, p=0.0)[1], depth
    )
    images = random_images(batch=32)
    assert torch.equal(
        hflip(images, images[:, 0], generator=gen(19))[0],
        hflip(images, images[:, 0], generator=gen(19))[0],
    )
    with pytest.raises(ValueError, match="depth"):
        hflip(images, torch.rand(32, 20, 23))
