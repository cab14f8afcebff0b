"""Strong perturbations, CutMix and the paired flip, batched and reproducible.

Images are float tensors (B, 3, H, W) in [0, 1] on any device; maps (depth, masks) are
(B, H, W). Each image draws its own parameters from the ``torch.Generator`` passed in, which
must live on the images' device (``torch.Generator(device=images.device)``); a mismatch raises
``ValueError``. Every function draws the same amount of randomness whatever the
probabilities decide, so a seed fixes the whole result, and none modifies its input.
Perturbations take images only, so labels can never be touched by them.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor

GRAY_WEIGHTS = (0.2989, 0.587, 0.114)
"""ITU-R 601-2 luma weights of R, G, B (as torchvision and PIL use)."""


def _check_generator(generator: torch.Generator, device: torch.device | None = None) -> None:
    """Raise unless ``generator`` is a torch.Generator on ``device`` (if given)."""
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    if device is None:
        return
    gen_device = torch.device(generator.device)
    same = gen_device.type == device.type and (
        gen_device.index is None or device.index is None or gen_device.index == device.index
    )
    if not same:
        raise ValueError(
            f"generator is on {gen_device} but the data is on {device}; "
            f"create it with torch.Generator(device={str(device)!r})"
        )


def _check_images(images: Tensor, generator: torch.Generator) -> None:
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"images must have shape (B, 3, H, W), got {tuple(images.shape)}")
    if not images.is_floating_point():
        raise TypeError(f"images must be a float tensor in [0, 1], got {images.dtype}")
    _check_generator(generator, images.device)


def _uniform(generator: torch.Generator, batch: int, low: float, high: float) -> Tensor:
    """(batch,) float32 samples of U(low, high) on the generator's device."""
    u = torch.rand(batch, generator=generator, device=generator.device)
    return low + (high - low) * u


def _per_image(values: Tensor, images: Tensor) -> Tensor:
    """(B,) parameters -> (B, 1, 1, 1) in the images' dtype, for broadcasting."""
    return rearrange(values.to(images.dtype), "b -> b 1 1 1")


def _where_per_image(decision: Tensor, new: Tensor, old: Tensor) -> Tensor:
    """Per image: ``new`` where ``decision`` (B,) bool is True, else ``old``."""
    return torch.where(rearrange(decision, "b -> b 1 1 1"), new, old)


def _grayscale(images: Tensor) -> Tensor:
    """(B, 3, H, W) -> (B, 1, H, W) luma."""
    weights = torch.tensor(GRAY_WEIGHTS, dtype=images.dtype, device=images.device)
    return (images * rearrange(weights, "c -> 1 c 1 1")).sum(1, keepdim=True)


def _blend(images: Tensor, other: Tensor, factor: Tensor) -> Tensor:
    """factor·images + (1 - factor)·other, clamped to [0, 1] (torchvision's blend)."""
    return (factor * images + (1 - factor) * other).clamp(0, 1)


def _rgb_to_hsv(images: Tensor) -> Tensor:
    """(B, 3, H, W) RGB in [0, 1] -> HSV with hue in [0, 1)."""
    r, g, b = images.unbind(1)
    value, _ = images.max(1)
    chroma = value - images.min(1).values
    grey = chroma == 0
    saturation = chroma / torch.where(grey, torch.ones_like(value), value)
    safe_chroma = torch.where(grey, torch.ones_like(chroma), chroma)
    hue = torch.where(
        value == r,
        (g - b) / safe_chroma,
        torch.where(value == g, 2 + (b - r) / safe_chroma, 4 + (r - g) / safe_chroma),
    )
    hue = torch.where(grey, torch.zeros_like(hue), hue)
    return torch.stack([(hue / 6) % 1.0, saturation, value], 1)


def _hsv_to_rgb(hsv: Tensor) -> Tensor:
    """Inverse of :func:`_rgb_to_hsv`."""
    hue, saturation, value = hsv.unbind(1)
    # Channel n in (R, G, B) = (5, 3, 1): v - v·s·clamp(min(k, 4 - k), 0, 1), k = (n + 6h) mod 6
    offsets = torch.tensor([5.0, 3.0, 1.0], dtype=hsv.dtype, device=hsv.device).view(1, 3, 1, 1)
    k = (offsets + 6 * hue.unsqueeze(1)) % 6
    ramp = torch.minimum(k, 4 - k).clamp(0, 1)
    return value.unsqueeze(1) * (1 - saturation.unsqueeze(1) * ramp)


def _adjust_hue(images: Tensor, shift: Tensor) -> Tensor:
    """Rotate hue by ``shift`` (B, 1, 1, 1) turns (torchvision: hue_factor in [-0.5, 0.5])."""
    hsv = _rgb_to_hsv(images)
    hue = (hsv[:, :1] + shift) % 1.0
    return _hsv_to_rgb(torch.cat([hue, hsv[:, 1:]], 1)).clamp(0, 1)


def color_jitter(
    images: Tensor,
    generator: torch.Generator,
    brightness: float = 0.5,
    contrast: float = 0.5,
    saturation: float = 0.5,
    hue: float = 0.25,
    p: float = 0.8,
) -> Tensor:
    """torchvision's ColorJitter wrapped in RandomApply(p), with parameters drawn per image.

    Each image is jittered with probability ``p``; then brightness, contrast and saturation
    factors ~ U(max(0, 1 - x), 1 + x) and a hue shift ~ U(-hue, hue) (in turns of the colour
    wheel) are applied in this fixed order (torchvision shuffles the order per call; a fixed
    order keeps the batch to one pass per operation). Semantics follow torchvision: brightness
    scales, contrast blends with the image's mean luma, saturation blends with the per-pixel
    luma, hue rotates H in HSV; each step clamps to [0, 1].

    Args:
        images: (B, 3, H, W) float in [0, 1].
        generator: torch.Generator on the images' device.
        brightness, contrast, saturation: jitter strengths x >= 0.
        hue: maximal hue shift, in [0, 0.5].
        p: probability that an image is jittered at all.

    Returns:
        (B, 3, H, W) jittered images, same dtype and device.
    """
    _check_images(images, generator)
    for name, value in (
        ("brightness", brightness),
        ("contrast", contrast),
        ("saturation", saturation),
    ):
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")
    if not 0 <= hue <= 0.5:
        raise ValueError(f"hue must be in [0, 0.5], got {hue}")
    batch = images.shape[0]
    apply = torch.rand(batch, generator=generator, device=generator.device) < p
    factors = [
        _uniform(generator, batch, max(0.0, 1 - x), 1 + x)
        for x in (brightness, contrast, saturation)
    ]
    shift = _uniform(generator, batch, -hue, hue)
    b, c, s, h = (_per_image(v, images) for v in (*factors, shift))
    out = (images * b).clamp(0, 1)
    out = _blend(out, _grayscale(out).mean((2, 3), keepdim=True), c)
    out = _blend(out, _grayscale(out), s)
    out = _adjust_hue(out, h)
    return _where_per_image(apply, out, images)


def random_grayscale(images: Tensor, generator: torch.Generator, p: float = 0.2) -> Tensor:
    """Replace each image, with probability ``p``, by its luma repeated on 3 channels.

    Args:
        images: (B, 3, H, W) float in [0, 1].
        generator: torch.Generator on the images' device.

    Returns:
        (B, 3, H, W) images, same dtype and device.
    """
    _check_images(images, generator)
    apply = torch.rand(images.shape[0], generator=generator, device=generator.device) < p
    return _where_per_image(apply, _grayscale(images).expand_as(images), images)


def gaussian_blur(
    images: Tensor,
    generator: torch.Generator,
    p: float = 0.5,
    sigma: tuple[float, float] = (0.1, 2.0),
) -> Tensor:
    """Gaussian blur with probability ``p`` and a per-image sigma ~ U(sigma) in pixels.

    One separable kernel per image, applied with a grouped convolution (rows, then columns)
    and reflect padding. All kernels share the radius ceil(3·max(sigma)) (capped at the
    image side - 1, which reflect padding needs), so small sigmas get zero-weight tails.

    Args:
        images: (B, 3, H, W) float in [0, 1].
        generator: torch.Generator on the images' device.
        p: probability that an image is blurred.
        sigma: (low, high) range of the standard deviation, 0 < low <= high.

    Returns:
        (B, 3, H, W) images, same dtype and device.
    """
    _check_images(images, generator)
    low, high = sigma
    if not 0 < low <= high:
        raise ValueError(f"sigma must be (low, high) with 0 < low <= high, got {sigma}")
    batch, channels, height, width = images.shape
    apply = torch.rand(batch, generator=generator, device=generator.device) < p
    sigmas = _uniform(generator, batch, low, high)
    radius = min(math.ceil(3 * high), height - 1, width - 1)
    offsets = torch.arange(-radius, radius + 1, device=images.device, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (offsets / sigmas[:, None]) ** 2)  # (B, K)
    kernel = (kernel / kernel.sum(1, keepdim=True)).to(images.dtype)
    kernel = kernel.repeat_interleave(channels, 0)  # (B*C, K): one kernel per channel group
    x = rearrange(images, "b c h w -> 1 (b c) h w")
    x = F.pad(x, (radius, radius, radius, radius), mode="reflect")
    x = F.conv2d(x, rearrange(kernel, "g k -> g 1 1 k"), groups=batch * channels)
    x = F.conv2d(x, rearrange(kernel, "g k -> g 1 k 1"), groups=batch * channels)
    blurred = rearrange(x, "1 (b c) h w -> b c h w", b=batch).clamp(0, 1)
    return _where_per_image(apply, blurred, images)


def strong_perturbation(images: Tensor, generator: torch.Generator) -> Tensor:
    """The student's colour distortion, with UniMatch's settings (PAPER.md).

    ColorJitter(0.5, 0.5, 0.5, 0.25) with p = 0.8, then RandomGrayscale p = 0.2, then
    Gaussian blur p = 0.5 with sigma ~ U(0.1, 2.0). Images only: labels are never touched.

    Args:
        images: (B, 3, H, W) float in [0, 1].
        generator: torch.Generator on the images' device.

    Returns:
        (B, 3, H, W) perturbed images in [0, 1].
    """
    images = color_jitter(images, generator, 0.5, 0.5, 0.5, 0.25, p=0.8)
    images = random_grayscale(images, generator, p=0.2)
    return gaussian_blur(images, generator, p=0.5, sigma=(0.1, 2.0))


def sample_boxes(
    batch: int,
    height: int,
    width: int,
    generator: torch.Generator,
    p: float = 0.5,
    area: tuple[float, float] = (0.02, 0.4),
    ratio: tuple[float, float] = (0.3, 1 / 0.3),
) -> Tensor:
    """CutMix box coordinates, one per image: (B, 4) int64 rows (top, left, box_h, box_w).

    With probability ``p`` an image gets a box, else its row is all zeros (an empty box).
    The area fraction a ~ U(area) is drawn first; the aspect ratio r = box_h / box_w (as in
    UniMatch) is then drawn uniformly from the part of ``ratio`` where a box of that area
    fits in the image, [max(r_lo, a·H/W), min(r_hi, H/(a·W))] (for a square image and the
    default ranges: all of ``ratio`` for a <= 0.3). So a is exactly uniform and no box is
    clamped or rejected (UniMatch rejects boxes that do not fit, which biases it towards
    small ones). Sides are sqrt(a·H·W·r) and sqrt(a·H·W/r) rounded to whole pixels (at
    least 1); the top-left corner is uniform over the positions where the box fits.

    Args:
        batch, height, width: number of boxes and image size in pixels.
        generator: torch.Generator; the boxes live on its device.
        p: probability that an image gets a box.
        area: (low, high) range of the box area as a fraction of H·W, within (0, 1].
        ratio: (low, high) range of the aspect ratio box_h / box_w.

    Returns:
        (B, 4) int64 on the generator's device.
    """
    _check_generator(generator)
    if batch < 0 or height < 1 or width < 1:
        raise ValueError(
            f"batch, height, width must be >= 0, >= 1, >= 1, got {batch}, {height}, {width}"
        )
    if not 0 < area[0] <= area[1] <= 1:
        raise ValueError(f"area must be (low, high) with 0 < low <= high <= 1, got {area}")
    if not 0 < ratio[0] <= ratio[1]:
        raise ValueError(f"ratio must be (low, high) with 0 < low <= high, got {ratio}")
    u = torch.rand(batch, 5, generator=generator, device=generator.device)
    apply = u[:, 0] < p
    fraction = area[0] + (area[1] - area[0]) * u[:, 1]
    fit_low, fit_high = fraction * height / width, height / (fraction * width)
    r_low = fit_low.clamp_min(ratio[0])
    r_high = fit_high.clamp_max(ratio[1])
    aspect = r_low + (r_high - r_low) * u[:, 2]
    aspect = aspect.clamp(fit_low, fit_high)  # acts only if no aspect in `ratio` fits at all
    pixels = fraction * height * width
    box_h = (pixels * aspect).sqrt().round().clamp(1, height)
    box_w = (pixels / aspect).sqrt().round().clamp(1, width)
    top = (u[:, 3] * (height - box_h + 1)).floor().clamp_max(height - box_h)
    left = (u[:, 4] * (width - box_w + 1)).floor().clamp_max(width - box_w)
    return torch.stack([top, left, box_h, box_w], 1).long() * apply.long().unsqueeze(1)


def boxes_to_mask(boxes: Tensor, height: int, width: int) -> Tensor:
    """(B, 4) rows (top, left, box_h, box_w) -> (B, H, W) bool, True inside each box."""
    top, left, box_h, box_w = (rearrange(c, "b -> b 1 1") for c in boxes.unbind(1))
    rows = torch.arange(height, device=boxes.device).view(1, height, 1)
    cols = torch.arange(width, device=boxes.device).view(1, 1, width)
    return (rows >= top) & (rows < top + box_h) & (cols >= left) & (cols < left + box_w)


def cutmix_box(
    batch: int,
    height: int,
    width: int,
    generator: torch.Generator,
    p: float = 0.5,
    area: tuple[float, float] = (0.02, 0.4),
    ratio: tuple[float, float] = (0.3, 1 / 0.3),
) -> Tensor:
    """CutMix masks M: (B, H, W) bool on the generator's device, True inside the box.

    Boxes as drawn by :func:`sample_boxes` (same arguments); all False for images where the
    p-draw says no CutMix.
    """
    return boxes_to_mask(
        sample_boxes(batch, height, width, generator, p, area, ratio), height, width
    )


def apply_cutmix(images_a: Tensor, images_b: Tensor, box: Tensor) -> Tensor:
    """u_ab = u_a ⊙ M + u_b ⊙ (1 - M).

    Args:
        images_a, images_b: (B, C, H, W) images or (B, H, W) maps of the same shape.
        box: (B, H, W) bool mask M (True = take from images_a).

    Returns:
        The mixed tensor, shaped like images_a.
    """
    if images_b.shape != images_a.shape:
        raise ValueError(
            f"images_b shape {tuple(images_b.shape)} must equal "
            f"images_a shape {tuple(images_a.shape)}"
        )
    if box.dtype != torch.bool:
        raise TypeError(f"box must be a bool tensor, got {box.dtype}")
    if images_a.dim() not in (3, 4) or box.shape != (images_a.shape[0], *images_a.shape[-2:]):
        raise ValueError(
            f"box shape {tuple(box.shape)} must be (B, H, W) of "
            f"images_a shape {tuple(images_a.shape)} ((B, C, H, W) or (B, H, W))"
        )
    mask = box.unsqueeze(1) if images_a.dim() == 4 else box
    return torch.where(mask, images_a, images_b)


def hflip(
    image: Tensor,
    depth: Tensor,
    *maps: Tensor,
    generator: torch.Generator | None = None,
    p: float = 0.5,
) -> tuple[Tensor, ...]:
    """Flip labeled pairs left-right together, each sample with probability ``p``.

    ``image`` (B, C, H, W), ``depth`` (B, H, W) and any extra ``maps`` ((B, H, W) or
    (B, C, H, W): valid masks, sky, semantics) are flipped with the same per-sample
    decision; nothing else changes. Unbatched input (C, H, W) with (H, W) maps is one sample.
    ``generator`` (on the image's device) draws the decisions; None uses torch's global RNG.

    Returns:
        (image, depth, *maps), flipped where drawn.
    """
    unbatched = image.dim() == 3
    if unbatched:
        image, depth, maps = (
            image.unsqueeze(0),
            depth.unsqueeze(0),
            tuple(m.unsqueeze(0) for m in maps),
        )
    if image.dim() != 4:
        raise ValueError(
            f"image must have shape (B, C, H, W) or (C, H, W), got {tuple(image.shape)}"
        )
    spatial = (image.shape[0], *image.shape[-2:])
    for name, tensor in (("depth", depth), *((f"maps[{i}]", m) for i, m in enumerate(maps))):
        if (tensor.shape[0], *tensor.shape[-2:]) != spatial or tensor.dim() not in (3, 4):
            raise ValueError(
                f"{name} shape {tuple(tensor.shape)} does not match "
                f"image shape {tuple(image.shape)}"
            )
    if generator is not None:
        _check_generator(generator, image.device)
    flip = torch.rand(image.shape[0], generator=generator, device=image.device) < p
    out = []
    for tensor in (image, depth, *maps):
        decision = flip.view(-1, *([1] * (tensor.dim() - 1)))
        flipped = torch.where(decision, tensor.flip(-1), tensor)
        out.append(flipped.squeeze(0) if unbatched else flipped)
    return tuple(out)
