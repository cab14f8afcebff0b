"""The unlabeled pool the teacher labels: a folder of PNG images written once and cached.

:func:`build_pool` writes the profile's image size of: the unlabeled synthetic domains (their
hidden ground truth kept alongside in ``<domain>/ground_truth.npz``, never shown to the
student, only to score the labels), random crops of the photographs bundled with scikit-image
(``dalib.world.textures.PHOTOS``), and the images of any folders the user adds; then
``pool.json``, the index :func:`dalib.pseudo.pseudo_label` reads.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dalib import synth
from dalib.config import Profile, resolve, stable_seed
from dalib.data import SPLIT_SEEDS, ImageFolder, SynthDepthDataset, render_device
from dalib.io import ImageReadError, atomic_write, write_png
from dalib.sample import fit_sample, image_to_tensor, to_uint8
from dalib.world import textures

POOL_FORMAT = 1


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
    on_error: str = "fail",
) -> Path:
    """Write (once) the unlabeled pool; return its index file ``<pool>/pool.json``.

    The pool folder ``<root>/pool/<key>`` is named by a hash of every setting (sizes, counts,
    seed, renderer version, the added folders), and ``pool.json``, written last, lists the
    items: ``{"image": relative path, "domain", "ground_truth": npz or null, "gt_index"}``.
    A pool whose ``pool.json`` exists is reused as is. ``on_error``: an unreadable file in
    ``image_folders`` stops the build naming it ("fail"), or is left out, listed under
    ``"skipped"`` (path -> reason) in ``pool.json`` ("skip").
    """
    if on_error not in ("fail", "skip"):
        raise ValueError(f"on_error must be 'fail' or 'skip', got {on_error!r}")
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
    skipped: dict[str, str] = {}
    for k, folder in enumerate(folders):
        images = ImageFolder(folder, size=profile.image_size)
        name, i = f"folder{k}-{folder.name}", 0
        for j in range(len(images)):
            try:
                sample = images[j]
            except (ImageReadError, FileNotFoundError) as err:
                if on_error == "fail":
                    raise
                skipped[str(images.files[j])] = str(err)
                continue
            write_png(pool / name / f"{i:05d}.png", to_uint8(sample["image"]))
            items.append(
                {
                    "image": f"{name}/{i:05d}.png",
                    "domain": name,
                    "ground_truth": None,
                    "gt_index": None,
                }
            )
            i += 1
    with atomic_write(index) as temp:
        record = {"settings": settings, "items": items, "skipped": skipped}
        temp.write_text(json.dumps(record, indent=1))
    return index


__all__ = ["POOL_FORMAT", "build_pool", "pool_size"]
