"""Robust file I/O: images in any common PIL mode, 16-bit depth PNGs (also normalised
disparity, :func:`write_disparity`), PNG images, atomic writes.

Every reader fully decodes the file, so a truncated or corrupt file fails here with an error
naming it, not later inside a DataLoader worker. ``dalib.data`` re-exports these names.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, PngImagePlugin

from dalib.depth import normalize_disparity

DEPTH_SCALE_KEY = "dalib_depth_scale"
MAX_DEPTH_CODE = 65535  # largest value of a 16-bit PNG
MAX_PIXELS = 50_000_000  # default cap on width x height: larger files are refused, not decoded


class ImageReadError(ValueError):
    """A file exists but is not a readable image (empty, corrupt, truncated, unsupported)."""


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success move it onto ``path`` atomically.

    Readers never see a half-written file: the data goes to a temporary file in the same
    folder (so ``os.replace`` is a rename on one file system), which is deleted on error.
    Creates the parent folder if needed. Raises an ``OSError`` of the original kind
    (``PermissionError``, ``NotADirectoryError``, ...) naming the file and the folder when the
    folder cannot be created or written.
    """
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temp_name = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=".tmp", dir=target.parent
        )
    except OSError as err:
        raise type(err)(
            f"cannot write {target}: the folder {target.parent} cannot be created or written "
            f"({err.strerror or err})"
        ) from err
    os.close(handle)
    temp = Path(temp_name)
    try:
        yield temp
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)


def _check_size(
    file: Path, what: str, size: tuple[int, int], min_side: int, max_pixels: int
) -> None:
    width, height = size
    if width * height > max_pixels:
        raise ImageReadError(
            f"cannot read {what} {file}: {width}x{height} = {width * height / 1e6:.1f} MP exceeds "
            f"the limit of {max_pixels / 1e6:g} MP (max_pixels); downscale it or raise max_pixels"
        )
    if min(width, height) < min_side:
        raise ImageReadError(
            f"{what} {file} is {width}x{height}, smaller than min_side={min_side} px on a side"
        )


def _open_fully(
    path: str | os.PathLike, what: str, min_side: int = 1, max_pixels: int = MAX_PIXELS
) -> Image.Image:
    """Open and decode ``path`` completely; errors name the file and the cause.

    The size is checked from the header, before decoding; PIL's decompression-bomb warning
    (more than ``Image.MAX_IMAGE_PIXELS`` pixels) is raised as an error too.
    """
    file = Path(path)
    if not file.exists():
        raise FileNotFoundError(f"{what} file not found: {file}")
    if not file.is_file():
        raise ImageReadError(f"cannot read {what} {file}: not a regular file")
    if file.stat().st_size == 0:
        raise ImageReadError(f"cannot read {what} {file}: the file is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(file) as image:
                _check_size(file, what, image.size, min_side, max_pixels)
                image.load()
                return ImageOps.exif_transpose(image)
    except ImageReadError:
        raise
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as err:
        raise ImageReadError(
            f"cannot read {what} {file}: possible decompression bomb, more pixels than PIL's "
            f"limit Image.MAX_IMAGE_PIXELS = {Image.MAX_IMAGE_PIXELS} ({err})"
        ) from err
    except Exception as err:  # any decoder failure means the file is unusable
        cause = f"{type(err).__name__}: {err}"
        raise ImageReadError(f"cannot read {what} {file}: {cause}") from err


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info


def read_image(
    path: str | os.PathLike, min_side: int = 1, max_pixels: int = MAX_PIXELS
) -> np.ndarray:
    """Read an image file as uint8 RGB, shape (H, W, 3).

    Handles every mode PIL decodes: grayscale (``L``, ``1``) is repeated over the channels;
    palette images are expanded; transparent images (``RGBA``, ``LA``, palettes with a
    transparent colour) are composited over **black** (colour × alpha), so transparent
    regions carry no stray colour; 16-bit grayscale (``I;16``, ``I``) is scaled from
    0..65535 to 0..255 (rounded); CMYK / YCbCr are converted. The EXIF orientation tag is
    applied, so the array is upright as a photo viewer shows it.

    Args:
        path: the image file.
        min_side: smallest accepted height and width in pixels (datasets pass 14, one ViT
            patch: smaller images are refused rather than upscaled from almost nothing).
        max_pixels: largest accepted ``width * height`` (default :data:`MAX_PIXELS`, 50 MP),
            checked from the header before any decoding. Files above PIL's own
            ``Image.MAX_IMAGE_PIXELS`` (89 MP) are refused as possible decompression bombs
            whatever ``max_pixels`` says; raise that PIL setting to read such files.

    Raises:
        FileNotFoundError: no file at ``path`` (the message names it).
        ImageReadError: the file is empty, truncated, corrupt, not an image, a float
            (mode ``F``) image, or outside the size limits; the message names the file
            and the cause.
    """
    image = _open_fully(path, "image", min_side, max_pixels)
    if image.mode.startswith("I"):
        values = np.asarray(image, dtype=np.float64)
        gray = np.rint(np.clip(values, 0, MAX_DEPTH_CODE) * (255.0 / MAX_DEPTH_CODE)).astype(
            np.uint8
        )
        return np.ascontiguousarray(np.repeat(gray[..., None], 3, axis=-1))
    if image.mode == "F":
        raise ImageReadError(f"cannot read image {path}: float (mode F) images have no fixed range")
    if _has_alpha(image):
        rgba = np.asarray(image.convert("RGBA"), dtype=np.uint16)
        composited = (rgba[..., :3] * rgba[..., 3:] + 127) // 255
        return np.ascontiguousarray(composited.astype(np.uint8))
    return np.array(image.convert("RGB"), dtype=np.uint8)  # a writable copy


def write_depth(
    path: str | os.PathLike, depth: np.ndarray | torch.Tensor, scale: float = 256.0
) -> None:
    """Write a depth map (metres) as a 16-bit grayscale PNG, atomically.

    Each pixel stores ``round(depth * scale)``; invalid pixels (NaN, ±inf, <= 0, including
    sky) store 0. ``scale`` is saved in the PNG text chunk ``dalib_depth_scale`` so that
    :func:`read_depth` needs no argument. The quantisation step is ``1 / scale`` metres
    (256 → 3.9 mm, as KITTI; 1000 → millimetres, as NYU); depths up to ``65535 / scale``
    fit (256 → 255.996 m).

    Raises:
        ValueError: ``depth`` is not (H, W); ``scale`` is not a positive number; a valid depth
            is too large for 16 bits or so small it would round to 0 (= invalid). The message
            names the file and the representable range; nothing is clipped silently.
    """
    values = depth.detach().cpu().numpy() if isinstance(depth, torch.Tensor) else np.asarray(depth)
    if values.ndim != 2:
        raise ValueError(f"depth for {path} must have shape (H, W), got {values.shape}")
    if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale for {path} must be a positive finite number, got {scale!r}")
    values = values.astype(np.float64)
    valid = np.isfinite(values) & (values > 0)
    codes = np.zeros(values.shape, dtype=np.float64)
    codes[valid] = np.rint(values[valid] * scale)
    if valid.any() and codes[valid].max() > MAX_DEPTH_CODE:
        raise ValueError(
            f"cannot write depth {path}: max depth {values[valid].max():.6g} m exceeds the largest "
            f"representable depth {MAX_DEPTH_CODE / scale:.6g} m at scale {scale:g}; "
            "use a smaller scale"
        )
    if valid.any() and codes[valid].min() < 1:
        raise ValueError(
            f"cannot write depth {path}: min depth {values[valid].min():.6g} m would round to 0 "
            f"(= invalid); the smallest representable depth at scale {scale:g} is "
            f"{0.5 / scale:.6g} m"
        )
    info = PngImagePlugin.PngInfo()
    info.add_text(DEPTH_SCALE_KEY, repr(float(scale)))
    with atomic_write(path) as temp:
        Image.fromarray(codes.astype(np.uint16)).save(temp, format="PNG", pnginfo=info)


def read_depth(
    path: str | os.PathLike, scale: float | None = None, max_pixels: int = MAX_PIXELS
) -> np.ndarray:
    """Read a 16-bit depth PNG as float32 metres (H, W), 0 where invalid.

    Args:
        path: a single-channel 16-bit PNG (as written by :func:`write_depth`, KITTI, NYU, ...).
        scale: stored value per metre. ``None`` reads it from the ``dalib_depth_scale`` text
            chunk; an explicit value overrides the chunk (needed for other data sets).
        max_pixels: largest accepted ``width * height``, as in :func:`read_image`.

    Raises:
        FileNotFoundError: no file at ``path``.
        ImageReadError: unreadable, or not a single-channel 16-bit image.
        ValueError: ``scale`` is None and the file stores none, or the stored one is invalid.
    """
    image = _open_fully(path, "depth", max_pixels=max_pixels)
    if not image.mode.startswith("I"):
        raise ImageReadError(
            f"cannot read depth {path}: expected a single-channel 16-bit PNG, "
            f"got PIL mode {image.mode}"
        )
    if scale is None:
        stored = image.info.get(DEPTH_SCALE_KEY)
        if stored is None:
            raise ValueError(
                f"depth file {path} does not store its scale "
                f"(no '{DEPTH_SCALE_KEY}' PNG text chunk); "
                "pass scale= (stored value per metre, e.g. 256 for KITTI, 1000 for NYU)"
            )
        try:
            scale = float(stored)
        except ValueError as err:
            raise ValueError(f"depth file {path} stores an unreadable scale {stored!r}") from err
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale for depth file {path} must be positive and finite, got {scale!r}")
    codes = np.asarray(image, dtype=np.float64)
    return np.where(codes > 0, codes / scale, 0.0).astype(np.float32)


LABEL_SCALE = 65535  # 16-bit code per unit of normalised disparity: 0..1 -> 0..65535


def write_png(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write a uint8 (H, W, 3) or (H, W) array as PNG, atomically."""
    with atomic_write(path) as temp:
        Image.fromarray(image).save(temp, format="PNG")


def write_disparity(path: str | os.PathLike, disparity: np.ndarray | torch.Tensor) -> None:
    """Write a (H, W) disparity map normalised to 0..1 as a 16-bit PNG (scale LABEL_SCALE).

    The map is min-max normalised (:func:`dalib.depth.normalize_disparity`) and quantised to
    1/65535 steps, so ``read_depth(path)`` returns it in [0, 1] (0 = farthest); atomic.
    """
    normalised = normalize_disparity(torch.as_tensor(disparity, dtype=torch.float64))
    codes = (normalised * LABEL_SCALE).round() / LABEL_SCALE  # exact 16-bit values; 0 stays 0
    write_depth(path, codes, scale=LABEL_SCALE)
