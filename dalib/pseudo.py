"""Pseudo-labelling (paper pipeline step 2): the teacher labels an unlabeled pool.

The pool is :func:`dalib.pool.build_pool`'s folder of PNG images (the unlabeled synthetic
domains with their hidden ground truth, crops of the bundled photographs, any folders the
user adds). :func:`pseudo_label` runs the teacher on clean pool images in batches and writes one
16-bit PNG of disparity, normalised to 0..1 per map (``write_depth`` with scale 65535), per
image, plus ``manifest.json`` (image and label paths, the teacher's sha256, the settings and,
where ground truth exists, label quality AbsRel / δ1 per domain).

Robust at any scale: every file is written atomically (temporary file + ``os.replace``); a
rerun labels only what is missing or unreadable; under ``torchrun`` rank r labels items
``r::world_size`` and rank 0 writes the manifest once all are done.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from dalib import synth
from dalib.config import Profile, resolve
from dalib.data import (
    read_depth,
    read_image,
)
from dalib.distributed import DistInfo, barrier, init_distributed, shard
from dalib.download import sha256_of
from dalib.inference import predict_batch
from dalib.io import LABEL_SCALE, ImageReadError, atomic_write, write_disparity
from dalib.metrics import relative_depth_metrics
from dalib.model import load_checkpoint
from dalib.pool import build_pool

__all__ = ["LABEL_SCALE", "PseudoLabels", "label_quality", "pseudo_label"]


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
    """What :func:`pseudo_label` did: the manifest, labels written now / found valid, quality,
    and the pool's unreadable images left out (path -> reason; ``on_error="skip"``)."""

    manifest: Path
    written: int
    reused: int
    quality: dict[str, dict[str, float]]
    skipped: dict[str, str] = field(default_factory=dict)


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
    on_error: str = "fail",
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
        on_error: an unreadable image in ``image_folders``: "fail" (stop, naming it) or
            "skip" (left out of the pool, listed in ``PseudoLabels.skipped``).

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
        build_pool(profile, root, image_folders, seed, on_error)
    barrier()
    index = build_pool(profile, root, image_folders, seed, on_error)  # cached: every rank reads it
    pool = index.parent
    listing = json.loads(index.read_text())
    items = listing["items"]
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
    return PseudoLabels(manifest, written, reused, quality, listing.get("skipped", {}))


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
