"""Pseudo-labelling (paper pipeline step 2): the teacher labels an unlabeled pool.

The pool (:func:`build_pool`) is a folder of PNG images of the profile's image size, written
once and cached: the unlabeled synthetic domains (their hidden ground truth kept alongside in
``<domain>/ground_truth.npz``, never shown to the student), random crops of the photographs
bundled with scikit-image (``dalib.world.textures.PHOTOS``), and the images of any folders the user
adds. :func:`pseudo_label` runs the teacher on clean pool images in batches and writes one
16-bit PNG of disparity, normalised to 0..1 per map (``write_depth`` with scale 65535), per
image, plus ``manifest.json`` (image and label paths, the teacher's sha256, the settings and,
where ground truth exists, label quality AbsRel / δ1 per domain).

Robust at any scale: every file is written atomically (temporary file + ``os.replace``); a
rerun labels only what is missing or unreadable; under ``torchrun`` rank r labels items
``r::world_size`` and rank 0 writes the manifest once all are done.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from dalib import synth
from dalib.config import Profile, resolve, stable_seed
from dalib.data import (
    SPLIT_SEEDS,
    ImageFolder,
    SynthDepthDataset,
    read_depth,
    read_image,
    render_device,
)
from dalib.depth import normalize_disparity
from dalib.distributed import DistInfo, barrier, init_distributed, shard
from dalib.download import sha256_of
from dalib.inference import predict_batch
from dalib.io import ImageReadError, atomic_write, write_depth
from dalib.metrics import relative_depth_metrics
from dalib.model import load_checkpoint
from dalib.sample import fit_sample, image_to_tensor, to_uint8
from dalib.world import textures

LABEL_SCALE = 65535  # stored code per unit of normalised disparity: 0..1 -> 0..65535
POOL_FORMAT = 1

__all__ = [
    "LABEL_SCALE",
    "PseudoLabels",
    "build_pool",
    "label_quality",
    "pool_size",
    "pseudo_label",
    "to_uint8",
    "write_disparity",
    "write_png",
]


def write_png(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write a uint8 (H, W, 3) or (H, W) array as PNG, atomically."""
    with atomic_write(path) as temp:
        Image.fromarray(image).save(temp, format="PNG")


def _photo_crops(n: int, size: int, seed: int) -> list[np.ndarray]:
    """``n`` random square crops (side 1/4 .. all of the shorter side) of the bundled photos."""
    import skimage.data  # lazily: only the pool needs the photographs

    photos = {}
    crops = []
    for i in range(n):
        name = textures.PHOTOS[i % len(textures.PHOTOS)]
        if name not in photos:
            raw = np.asarray(getattr(skimage.data, name)())
            photos[name] = np.repeat(raw[..., None], 3, -1) if raw.ndim == 2 else raw[..., :3]
        photo = photos[name]
        rng = np.random.default_rng(stable_seed("pool-photo", seed, i))
        short = min(photo.shape[:2])
        side = int(rng.integers(max(size, short // 4), short + 1))
        top = int(rng.integers(0, photo.shape[0] - side + 1))
        left = int(rng.integers(0, photo.shape[1] - side + 1))
        crop = image_to_tensor(photo[top : top + side, left : left + side].astype(np.uint8))
        crops.append(to_uint8(fit_sample({"image": crop}, size)["image"]))
    return crops


def pool_size(profile: Profile) -> int:
    """Images in ``profile``'s synthetic pool: every unlabeled domain's scenes + photo crops
    (before any image folders a caller adds)."""
    return len(synth.UNLABELED) * profile.n_unlabeled + profile.n_photo_crops


def build_pool(
    profile: Profile | str | None = None,
    root: str | os.PathLike | None = None,
    image_folders: Sequence[str | os.PathLike] = (),
    seed: int = 0,
) -> Path:
    """Write (once) the unlabeled pool; return its index file ``<pool>/pool.json``.

    The pool folder ``<root>/pool/<key>`` is named by a hash of every setting (sizes, counts,
    seed, renderer version, the added folders), and ``pool.json``, written last, lists the
    items: ``{"image": relative path, "domain", "ground_truth": npz or null, "gt_index"}``.
    A pool whose ``pool.json`` exists is reused as is.
    """
    profile, root = resolve(profile, root)
    folders = [Path(f).resolve() for f in image_folders]
    settings = {
        "format": POOL_FORMAT,
        "size": profile.image_size,
        "render_size": profile.render_size,
        "n_unlabeled": profile.n_unlabeled,
        "n_photo_crops": profile.n_photo_crops,
        "seed": seed,
        "renderer": synth.render_version(render_device()),
        "folders": [str(f) for f in folders],
    }
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
    pool = root / "pool" / key
    index = pool / "pool.json"
    if index.is_file():
        return index
    items = []
    for domain in synth.UNLABELED:
        scenes = SynthDepthDataset(
            domain,
            profile.n_unlabeled,
            profile.image_size,
            root / "data",
            seed=SPLIT_SEEDS["train"] + seed,
            render_size=profile.render_size,
            progress=profile.progress,
        )
        depths = []
        for i in range(len(scenes)):
            sample = scenes[i]
            write_png(pool / domain / f"{i:05d}.png", to_uint8(sample["image"]))
            depths.append(sample["depth"].numpy())
            items.append(
                {
                    "image": f"{domain}/{i:05d}.png",
                    "domain": domain,
                    "ground_truth": f"{domain}/ground_truth.npz",
                    "gt_index": i,
                }
            )
        with atomic_write(pool / domain / "ground_truth.npz") as temp, open(temp, "wb") as handle:
            np.savez_compressed(handle, depth=np.stack(depths))
    for i, crop in enumerate(_photo_crops(profile.n_photo_crops, profile.image_size, seed)):
        write_png(pool / "photos" / f"{i:05d}.png", crop)
        items.append(
            {
                "image": f"photos/{i:05d}.png",
                "domain": "photos",
                "ground_truth": None,
                "gt_index": None,
            }
        )
    for k, folder in enumerate(folders):
        images = ImageFolder(folder, size=profile.image_size)
        name = f"folder{k}-{folder.name}"
        for i in range(len(images)):
            write_png(pool / name / f"{i:05d}.png", to_uint8(images[i]["image"]))
            items.append(
                {
                    "image": f"{name}/{i:05d}.png",
                    "domain": name,
                    "ground_truth": None,
                    "gt_index": None,
                }
            )
    with atomic_write(index) as temp:
        temp.write_text(json.dumps({"settings": settings, "items": items}, indent=1))
    return index


def write_disparity(path: str | os.PathLike, disparity: np.ndarray | torch.Tensor) -> None:
    """Write a (H, W) disparity map normalised to 0..1 as a 16-bit PNG (scale LABEL_SCALE).

    The map is min-max normalised (:func:`dalib.depth.normalize_disparity`) and quantised to
    1/65535 steps, so ``read_depth(path)`` returns it in [0, 1] (0 = farthest); atomic.
    """
    normalised = normalize_disparity(torch.as_tensor(disparity, dtype=torch.float64))
    codes = (normalised * LABEL_SCALE).round() / LABEL_SCALE  # exact 16-bit values; 0 stays 0
    write_depth(path, codes, scale=LABEL_SCALE)


def _label_ok(path: Path, shape: tuple[int, int]) -> bool:
    """True if ``path`` is a readable label of ``shape`` (missing / corrupt / wrong: False)."""
    try:
        return read_depth(path).shape == shape
    except (FileNotFoundError, ImageReadError, ValueError):
        return False


def label_quality(items: Sequence[dict], pool: Path, labels: Path) -> dict[str, dict[str, float]]:
    """{domain: {"abs_rel", "delta1", "n"}} of the labels against hidden ground truth.

    Only items with ``"ground_truth"`` count (synthetic domains); MiDaS protocol with the
    domain's ``max_depth``, per-image values averaged per domain.
    """
    by_domain: dict[str, list[dict]] = {}
    for item in items:
        if item.get("ground_truth"):
            by_domain.setdefault(item["domain"], []).append(item)
    quality = {}
    for domain, chosen in by_domain.items():
        with np.load(pool / chosen[0]["ground_truth"]) as gt:
            depth = torch.from_numpy(gt["depth"][[it["gt_index"] for it in chosen]])
        pred = torch.stack([torch.from_numpy(read_depth(labels / it["image"])) for it in chosen])
        max_depth = synth.DOMAINS[domain].max_depth if domain in synth.DOMAINS else None
        out = relative_depth_metrics(pred.double(), depth.double(), max_depth=max_depth)
        quality[domain] = {
            "abs_rel": float(out["abs_rel"]),
            "delta1": float(out["delta1"]),
            "n": len(chosen),
        }
    return quality


@dataclass(frozen=True)
class PseudoLabels:
    """What :func:`pseudo_label` did: the manifest, labels written now / found valid, quality."""

    manifest: Path
    written: int
    reused: int
    quality: dict[str, dict[str, float]]


def pseudo_label(
    teacher: str | os.PathLike | None = None,
    profile: Profile | str | None = None,
    *,
    root: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    image_folders: Sequence[str | os.PathLike] = (),
    batch_size: int = 32,
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: bool | None = None,
) -> PseudoLabels:
    """Label the pool with the teacher checkpoint; resumable, atomic, sharded by rank.

    Args:
        teacher: a dalib checkpoint (default ``<root>/checkpoints/teacher.safetensors``).
        profile: a Profile or its name (sizes of the pool; default ``$DALIB_PROFILE``).
        root: artifact folder (default ``runs/<profile>``); the pool goes to ``<root>/pool``.
        out: where labels and ``manifest.json`` go (default ``<root>/pseudo``). Labels are
            in ``<out>/labels-<teacher sha256[:12]>/``, so another teacher never reuses them.
        image_folders: more unlabeled image folders for the pool.
        batch_size: images per teacher forward pass.

    Returns:
        :class:`PseudoLabels` (counts are this process's; quality is filled on rank 0).
    """
    profile, root = resolve(profile, root)
    out = Path(out) if out is not None else root / "pseudo"
    teacher = Path(teacher) if teacher is not None else root / "checkpoints" / "teacher.safetensors"
    if not teacher.is_file():
        raise FileNotFoundError(
            f"teacher checkpoint {teacher} not found; train it first (dalib.train.train_teacher)"
        )
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    info = init_distributed(device)
    if info.is_main:
        build_pool(profile, root, image_folders, seed)
    barrier()
    index = build_pool(profile, root, image_folders, seed)  # cached now: every rank reads it
    pool = index.parent
    items = json.loads(index.read_text())["items"]
    sha = sha256_of(teacher)
    labels = out / f"labels-{sha[:12]}"
    shape = (profile.image_size, profile.image_size)
    written, reused = _label_shard(
        teacher,
        shard(items, info),
        pool,
        labels,
        shape,
        batch_size,
        info,
        profile.progress if progress is None else progress,
    )
    barrier()
    manifest, quality = out / "manifest.json", {}
    if info.is_main:
        missing = [it["image"] for it in items if not (labels / it["image"]).is_file()]
        if missing:
            raise RuntimeError(
                f"{len(missing)} pseudo labels missing after labelling, e.g. {missing[:3]}"
            )
        quality = label_quality(items, pool, labels)
        record = {
            "teacher": str(teacher),
            "teacher_sha256": sha,
            "label_scale": LABEL_SCALE,
            "settings": {
                "image_size": profile.image_size,
                "batch_size": batch_size,
                "pool": str(pool),
                "seed": seed,
            },
            "quality": quality,
            "items": [
                {
                    "image": os.path.relpath(pool / it["image"], out),
                    "label": os.path.relpath(labels / it["image"], out),
                    "domain": it["domain"],
                }
                for it in items
            ],
        }
        with atomic_write(manifest) as temp:
            temp.write_text(json.dumps(record, indent=1))
    barrier()
    return PseudoLabels(manifest, written, reused, quality)


def _label_shard(
    teacher: Path,
    items: list[dict],
    pool: Path,
    labels: Path,
    shape: tuple[int, int],
    batch_size: int,
    info: DistInfo,
    progress: bool,
) -> tuple[int, int]:
    """Label this rank's ``items`` that lack a valid label; (written, reused)."""
    todo = [it for it in items if not _label_ok(labels / it["image"], shape)]
    if not todo:
        return 0, len(items)
    model = load_checkpoint(teacher, map_location=info.device)
    for start in tqdm(
        range(0, len(todo), batch_size), desc=f"pseudo-label rank {info.rank}", disable=not progress
    ):
        chunk = todo[start : start + batch_size]
        images = [read_image(pool / it["image"]) for it in chunk]
        disparities = predict_batch(model, images, input_size=shape[0], batch_size=batch_size)
        for item, disparity in zip(chunk, disparities, strict=True):
            write_disparity(labels / item["image"], disparity)
    return len(todo), len(items) - len(todo)
