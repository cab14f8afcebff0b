"""Datasets: rendered synthetic RGB-D scenes, image folders, RGB-D folders, a real stereo pair.

Every dataset returns a sample dict (the contract shared by all of dalib):

- ``"image"``: float32 tensor (3, H, W) in [0, 1]
- ``"depth"``: float32 (H, W) metres; ``inf`` at sky, ``0`` where unknown (labeled sets only)
- ``"valid"``: bool (H, W) = finite and > 0 depth;  ``"sky"``: bool (H, W)
- ``"semantic"``: int64 (H, W) class ids, when known (synthetic scenes)
- ``"domain"``: str;  ``"index"``: int position in the dataset; folders add ``"path"`` (str)

``size`` arguments are an int (square side) or ``(H, W)``; samples are then resized to cover
that size, keeping the aspect ratio, and centre-cropped (:func:`fit_sample`): the image
bilinearly with antialiasing, every per-pixel label (depth, masks, classes) with nearest
neighbour, so invalid or sky pixels never blend into valid depth.

File I/O lives in :mod:`dalib.io` and sample resizing in :mod:`dalib.sample`; their public
names are re-exported here.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from dalib.io import ImageReadError, atomic_write, read_depth, read_image, write_depth
from dalib.sample import (
    as_size,
    center_crop_sample,
    depth_fields,
    fit_sample,
    image_to_tensor,
    resize_sample,
)
from dalib.synth_dataset import SPLIT_SEEDS, SynthDepthDataset, render_device, synth_cache_key

__all__ = [
    "IMAGE_EXTENSIONS",
    "MIN_SIDE",
    "MOTORCYCLE_CALIBRATION",
    "SPLIT_SEEDS",
    "ImageFolder",
    "ImageReadError",
    "PseudoLabeled",
    "RGBDFolder",
    "SynthDepthDataset",
    "atomic_write",
    "center_crop_sample",
    "fit_sample",
    "middlebury_motorcycle",
    "read_depth",
    "read_image",
    "render_device",
    "resize_sample",
    "synth_cache_key",
    "write_depth",
]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif")

# Smallest image side the folder datasets accept: one ViT patch (dalib.sizes.PATCH).
MIN_SIDE = 14

# ---------------------------------------------------------------- folders of files


def _list_files(
    root: str | os.PathLike, extensions: Sequence[str], what: str
) -> tuple[Path, list[Path]]:
    """Files under ``root`` (recursive, sorted) with one of ``extensions``; hidden ones skipped."""
    folder = Path(root)
    if not folder.exists():
        raise FileNotFoundError(f"{what} folder not found: {folder}")
    if not folder.is_dir():
        raise NotADirectoryError(f"{what} path is not a folder: {folder}")
    wanted = {e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions}
    files = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file()
        and p.suffix.lower() in wanted
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )
    if not files:
        raise ValueError(f"no {what} files with extensions {sorted(wanted)} under {folder}")
    return folder, files


class ImageFolder(Dataset):
    """Unlabeled images found recursively under ``root``, in sorted path order.

    Files and folders whose names start with ``.`` are skipped. Samples are
    ``{"image", "path", "index"}``; with ``size=None`` images keep their own size (batch
    them only if they all share it).

    Args:
        root: the folder; size: output side or (H, W) (see :func:`fit_sample`);
        extensions: file name endings listed.
        min_side: images with a side under this many pixels are refused (default
            :data:`MIN_SIDE`, one 14 px ViT patch) rather than upscaled from a few pixels.
        on_error: ``"raise"`` (default): an unreadable, too small or too large file raises
            :class:`ImageReadError` naming it. ``"skip"``: the file is skipped and the next
            readable file (sorted order, wrapping around) is returned instead; each skip is
            announced by a warning naming the file and the cause, and recorded in
            ``skipped`` (path -> reason). DataLoader workers each record their own skips;
            the warnings show them all. If no file is readable, ImageReadError.

    Raises:
        FileNotFoundError / NotADirectoryError for a bad ``root``; ValueError naming ``root``
        if it holds no image or for a bad ``on_error``; :class:`ImageReadError` as above.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        size: int | Sequence[int] | None = None,
        extensions: Sequence[str] = IMAGE_EXTENSIONS,
        min_side: int = MIN_SIDE,
        on_error: str = "raise",
    ) -> None:
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        self.root, self.files = _list_files(root, extensions, "image")
        self.size = as_size(size) if size is not None else None
        self.min_side = min_side
        self.on_error = on_error
        self.skipped: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict:
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for {n} images")
        for offset in range(n):
            position = (index + offset) % n
            path = self.files[position]
            if str(path) in self.skipped:
                continue
            try:
                image = read_image(path, min_side=self.min_side)
            except (ImageReadError, FileNotFoundError) as err:
                if self.on_error == "raise":
                    raise
                self.skipped[str(path)] = str(err)
                warnings.warn(
                    f"ImageFolder skipped an image ({len(self.skipped)} so far): {err}",
                    stacklevel=2,
                )
                continue
            sample = {"image": image_to_tensor(image), "path": str(path), "index": position}
            return fit_sample(sample, self.size) if self.size is not None else sample
        raise ImageReadError(f"no readable image under {self.root}: all {n} files were skipped")


class RGBDFolder(Dataset):
    """Labeled pairs: images in ``images_dir`` and 16-bit depth PNGs in ``depths_dir``.

    Files pair by their path relative to each folder without the extension (the file stem
    for flat folders): ``images/0001.jpg`` <-> ``depths/0001.png``. Depth is read with
    :func:`read_depth` (``depth_scale=None`` uses the scale stored in each file); ``0``
    marks invalid pixels. Sky is unknown in such files, so ``"sky"`` is all False.
    Samples carry ``"path"`` (the image) and ``"domain"``. Images with a side under
    ``min_side`` (default :data:`MIN_SIDE` = 14) raise :class:`ImageReadError`.

    Raises:
        ValueError naming the files when an image has no depth or a depth no image, when two
        images share a stem, or (at load) when an image and its depth differ in size.
    """

    def __init__(
        self,
        images_dir: str | os.PathLike,
        depths_dir: str | os.PathLike,
        depth_scale: float | None = None,
        size: int | Sequence[int] | None = None,
        domain: str = "rgbd",
        min_side: int = MIN_SIDE,
    ) -> None:
        images_root, images = _list_files(images_dir, IMAGE_EXTENSIONS, "image")
        depths_root, depths = _list_files(depths_dir, (".png",), "depth")
        image_by_key = self._by_key(images_root, images)
        depth_by_key = self._by_key(depths_root, depths)
        lonely = [str(image_by_key[k]) for k in sorted(image_by_key.keys() - depth_by_key.keys())]
        lonely += [str(depth_by_key[k]) for k in sorted(depth_by_key.keys() - image_by_key.keys())]
        if lonely:
            shown = ", ".join(lonely[:5]) + (
                f" and {len(lonely) - 5} more" if len(lonely) > 5 else ""
            )
            raise ValueError(
                f"{len(lonely)} unpaired file(s) between {images_root} and {depths_root}: {shown}"
            )
        self.pairs = [(image_by_key[k], depth_by_key[k]) for k in sorted(image_by_key)]
        self.depth_scale = depth_scale
        self.size = as_size(size) if size is not None else None
        self.domain = domain
        self.min_side = min_side

    @staticmethod
    def _by_key(root: Path, files: list[Path]) -> dict[str, Path]:
        by_key: dict[str, Path] = {}
        for path in files:
            key = path.relative_to(root).with_suffix("").as_posix()
            if key in by_key:
                raise ValueError(f"two files share the name {key!r}: {by_key[key]} and {path}")
            by_key[key] = path
        return by_key

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict:
        image_path, depth_path = self.pairs[index]
        image = read_image(image_path, min_side=self.min_side)
        depth = read_depth(depth_path, self.depth_scale)
        if image.shape[:2] != depth.shape:
            raise ValueError(
                f"image {image_path} is {image.shape[:2]} but depth {depth_path} is {depth.shape}"
            )
        sample = {
            "image": image_to_tensor(image),
            **depth_fields(depth),
            "domain": self.domain,
            "index": index % len(self),
            "path": str(image_path),
        }
        return fit_sample(sample, self.size) if self.size is not None else sample


class PseudoLabeled(Dataset):
    """Unlabeled images with a teacher's pseudo labels, as listed by a pseudo-label manifest.

    ``manifest`` is the JSON file written by :func:`dalib.pseudo.pseudo_label`: its
    ``"items"`` hold ``"image"`` and ``"label"`` paths relative to the manifest's folder
    (and ``"domain"``); labels are 16-bit PNGs of disparity normalised to 0..1 per map.
    Samples are ``{"image", "disparity" (H, W) float32 in [0, 1], "valid" (all True: the
    teacher labels every pixel), "domain", "index", "path"}``.

    Raises FileNotFoundError / ValueError naming the manifest when it is missing or malformed.
    """

    def __init__(
        self, manifest: str | os.PathLike, size: int | Sequence[int] | None = None
    ) -> None:
        self.manifest = Path(manifest)
        if not self.manifest.is_file():
            raise FileNotFoundError(f"pseudo-label manifest not found: {self.manifest}")
        try:
            items = json.loads(self.manifest.read_text())["items"]
            self.items = [
                (str(it["image"]), str(it["label"]), str(it.get("domain", ""))) for it in items
            ]
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise ValueError(f"malformed pseudo-label manifest {self.manifest}: {err!r}") from err
        if not self.items:
            raise ValueError(f"pseudo-label manifest {self.manifest} lists no items")
        self.size = as_size(size) if size is not None else None

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        image_rel, label_rel, domain = self.items[index]
        folder = self.manifest.parent
        image = read_image(folder / image_rel)
        disparity = torch.from_numpy(read_depth(folder / label_rel))
        if image.shape[:2] != tuple(disparity.shape):
            raise ValueError(
                f"pseudo label {folder / label_rel} is {tuple(disparity.shape)} but its image is {image.shape[:2]}"
            )
        sample = {
            "image": image_to_tensor(image),
            "disparity": disparity,
            "valid": torch.ones(disparity.shape, dtype=torch.bool),
            "domain": domain,
            "index": index % len(self),
            "path": str(folder / image_rel),
        }
        return fit_sample(sample, self.size) if self.size is not None else sample


# ---------------------------------------------------------------- a real stereo pair

# Calibration of scikit-image's 4x down-sampled Middlebury 2014 "Motorcycle" (its docstring):
# metric depth = focal_px * baseline_m / (disparity + doffs_px); see dalib.depth.stereo_depth.
MOTORCYCLE_CALIBRATION = {"focal_px": 994.978, "baseline_m": 0.193001, "doffs_px": 31.086}


def middlebury_motorcycle() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The Middlebury 2014 Motorcycle left view and its ground-truth disparity (offline).

    Read from the files scikit-image ships in its wheel; nothing is downloaded.

    Returns:
        ``(image, disparity, valid)``: uint8 (500, 741, 3); float32 (500, 741) disparity in
        pixels, 0 where invalid; bool (500, 741). Convert to metres with
        :data:`MOTORCYCLE_CALIBRATION` and :func:`dalib.depth.stereo_depth`.
    """
    import skimage.data

    folder = Path(skimage.data.__file__).parent
    needed = [folder / name for name in ("motorcycle_left.png", "motorcycle_disp.npz")]
    missing = [str(p) for p in needed if not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"scikit-image does not ship {missing}; install scikit-image >= 0.22"
        )
    image = read_image(needed[0])
    with np.load(needed[1]) as data:
        raw = data["arr_0"].astype(np.float32)
    valid = np.isfinite(raw) & (raw > 0)
    return image, np.where(valid, raw, 0).astype(np.float32), valid
