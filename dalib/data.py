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

import hashlib
import importlib
import json
import os
import types
import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from dalib.config import cpu_count, get_profile
from dalib.io import ImageReadError, atomic_write, read_depth, read_image, write_depth
from dalib.sample import (
    as_size,
    center_crop_sample,
    depth_fields,
    fit_sample,
    image_to_tensor,
    resize_sample,
)
from dalib.workers import parallel_map

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

# Seed offsets that keep the scenes of different splits apart: scene i of a split with offset
# o is rendered with seed o + i, so splits stay disjoint while they hold < 1,000,000 scenes.
SPLIT_SEEDS = {"train": 0, "val": 1_000_000, "test": 2_000_000}

# Smallest image side the folder datasets accept: one ViT patch (dalib.sizes.PATCH).
MIN_SIDE = 14

# Bump when the cache layout written by SynthDepthDataset changes.
_CACHE_FORMAT = 1


# ---------------------------------------------------------------- synthetic scenes


def synth_cache_key(
    domain: str, n: int, size: tuple[int, int], seed: int, renderer_version: str
) -> str:
    """Hex digest naming a rendered set: changes with any setting or with the renderer."""
    settings = {
        "domain": domain,
        "n": n,
        "size": list(size),
        "seed": seed,
        "renderer": renderer_version,
        "format": _CACHE_FORMAT,
    }
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def render_device(device: str | None = "auto") -> str | None:
    """Where :class:`SynthDepthDataset` renders: ``None`` for the NumPy renderer (CPU worker
    processes) or a torch device for :mod:`dalib.render_torch`; ``"auto"`` picks ``"cuda"``
    when a CUDA GPU is available, else ``None``."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else None
    return None if device is None else str(torch.device(device))


def _render_chunk(job: tuple[str, list[int], tuple[int, int], str | None]) -> list:
    domain, seeds, size, device = job
    synth = importlib.import_module("dalib.synth")
    return synth.render_many(domain, seeds, size=size, device=device)


def _save_arrays(handle, arrays: dict[str, np.ndarray]) -> None:
    """An ``.npz`` (read by ``np.load``) that stores images and depth as they are (they shrink
    by only 20-40 % under zlib, at 15 ms a 256 px scene) and deflates the rest."""
    with zipfile.ZipFile(handle, "w", allowZip64=True) as archive:
        for name, array in arrays.items():
            packed = name not in ("image", "depth")
            info = zipfile.ZipInfo(f"{name}.npy", (1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED if packed else zipfile.ZIP_STORED
            with archive.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)


class SynthDepthDataset(Dataset):
    """Scenes from :mod:`dalib.synth`, rendered once and cached on disk.

    Scene ``i`` of each domain is ``synth.render(domain, seed=seed + i, size=render_size)``:
    ``seed`` is the split's offset, so give each split a disjoint range (see
    :data:`SPLIT_SEEDS`: train 0, val 1,000,000, test 2,000,000). Items are ordered domain by
    domain, ``index = domain_position * n_per_domain + i``.

    Args:
        domains: a domain name or names (keys of ``synth.DOMAINS``).
        n_per_domain: scenes per domain.
        size: output side or (H, W); samples are fitted to it (:func:`fit_sample`).
        root: cache folder. Each domain is stored as ``<domain>-<key>.npz``, where the key
            (:func:`synth_cache_key`) hashes domain, n, render size, seed and
            ``synth.render_version(device)`` (which changes with the renderer's code); a later
            construction with equal settings loads it without rendering. ``None`` renders in
            memory and caches nothing.
        seed: seed offset of this split (see above).
        render_size: size rendered and cached (default ``size``); render larger and fit down
            for antialiased images.
        progress: tqdm progress bar while rendering; ``None`` follows the active profile.
        workers: processes that render (default: the CPUs this process may use; 1 renders
            in this process). Scenes are deterministic per (domain, seed, size), so the
            images are the same whatever the number of workers.
        device: where to render (:func:`render_device`): ``"auto"`` (the default) renders on
            a CUDA GPU with :mod:`dalib.render_torch` when there is one, else with NumPy; the
            two agree to rounding, not bit for bit, so the cache key tells them apart.

    Samples follow the module contract, plus ``"seed"`` (int, the scene's render seed).
    """

    def __init__(
        self,
        domains: str | Sequence[str],
        n_per_domain: int,
        size: int | Sequence[int],
        root: str | os.PathLike | None = None,
        seed: int = 0,
        render_size: int | Sequence[int] | None = None,
        progress: bool | None = None,
        workers: int | None = None,
        device: str | None = "auto",
    ) -> None:
        synth = importlib.import_module("dalib.synth")  # not kept: datasets must pickle
        self.domains = (domains,) if isinstance(domains, str) else tuple(domains)
        unknown = [d for d in self.domains if d not in synth.DOMAINS]
        if not self.domains or unknown:
            raise ValueError(
                f"unknown domains {unknown or '(none given)'}; choose from {sorted(synth.DOMAINS)}"
            )
        if not isinstance(n_per_domain, int) or n_per_domain < 1:
            raise ValueError(f"n_per_domain must be a positive int, got {n_per_domain!r}")
        self.n_per_domain = n_per_domain
        self.size = as_size(size)
        self.render_size = (
            as_size(render_size, "render_size") if render_size is not None else self.size
        )
        self.seed = seed
        self.root = Path(root) if root is not None else None
        self.progress = get_profile().progress if progress is None else progress
        self.workers = cpu_count() if workers is None else int(workers)
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers!r}")
        self.device = render_device(device)
        self.render_version = synth.render_version(self.device)
        self._scenes = [self._load_or_render(synth, domain) for domain in self.domains]

    def cache_path(self, domain: str) -> Path | None:
        """Where ``domain``'s rendered scenes are (or would be) cached; None without a root."""
        if self.root is None:
            return None
        key = synth_cache_key(
            domain, self.n_per_domain, self.render_size, self.seed, self.render_version
        )
        return self.root / f"{domain}-{key}.npz"

    def _seeds(self) -> list[int]:
        return [self.seed + i for i in range(self.n_per_domain)]

    def _load_or_render(self, synth: types.ModuleType, domain: str) -> dict[str, np.ndarray]:
        path = self.cache_path(domain)
        if path is not None and path.exists():
            try:
                with np.load(path) as cached:
                    arrays = {
                        name: cached[name]
                        for name in ("image", "depth", "sky", "semantic", "seeds")
                    }
                if np.array_equal(arrays["seeds"], self._seeds()):
                    return arrays
                warnings.warn(f"cache {path} holds other scenes; re-rendering", stacklevel=3)
            except (OSError, ValueError, KeyError, EOFError) as err:
                warnings.warn(f"unreadable cache {path} ({err}); re-rendering", stacklevel=3)
        arrays = self._render(synth, domain)
        if path is not None:
            with atomic_write(path) as temp, open(temp, "wb") as handle:
                _save_arrays(handle, arrays)
        return arrays

    def _render(
        self, synth: types.ModuleType, domain: str, chunk: int = 16
    ) -> dict[str, np.ndarray]:
        seeds = self._seeds()
        chunks = [seeds[i : i + chunk] for i in range(0, len(seeds), chunk)]
        jobs = [(domain, c, self.render_size, self.device) for c in chunks]
        scenes = []
        with tqdm(total=len(seeds), desc=f"render {domain}", disable=not self.progress) as bar:
            # torch renders in fresh processes: a forked one cannot use CUDA
            spawn = self.device is not None
            for batch in parallel_map(_render_chunk, jobs, self.workers, spawn=spawn):
                scenes.extend(batch)
                bar.update(len(batch))
        expected = self.render_size
        for scene in scenes:
            if scene.image.shape != (*expected, 3) or scene.depth.shape != expected:
                raise ValueError(
                    f"synth.render_many({domain!r}) returned image {scene.image.shape} / depth "
                    f"{scene.depth.shape}, expected {(*expected, 3)} / {expected}"
                )
        semantic = np.stack([s.semantic for s in scenes])
        return {
            "image": np.stack([s.image for s in scenes]).astype(np.uint8),
            "depth": np.stack([s.depth for s in scenes]).astype(np.float32),
            "sky": np.stack([s.sky for s in scenes]).astype(bool),
            "semantic": semantic.astype(np.min_scalar_type(max(int(semantic.max()), 0))),
            "seeds": np.asarray(seeds, dtype=np.int64),
        }

    def __len__(self) -> int:
        return len(self.domains) * self.n_per_domain

    def __getitem__(self, index: int) -> dict:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        index %= len(self)
        which, i = divmod(index, self.n_per_domain)
        arrays = self._scenes[which]
        sample = {
            "image": image_to_tensor(arrays["image"][i]),
            **depth_fields(arrays["depth"][i], arrays["sky"][i]),
            "semantic": torch.from_numpy(arrays["semantic"][i].astype(np.int64)),
            "domain": self.domains[which],
            "index": index,
            "seed": int(arrays["seeds"][i]),
        }
        return fit_sample(sample, self.size)


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
