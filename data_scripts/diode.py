"""DIODE validation set (indoor and outdoor) in dalib's RGB-D layout.

    python data_scripts/diode.py --out data/diode [--dry-run] [--source DIR]

Source (Vasiljevic et al. 2019, https://diode-dataset.org, devkit README on GitHub:
diode-dataset/diode-devkit): ``val.tar.gz`` (2.6 GB, MD5 5c895d09201b88973c8fe4552a67dd85
as published there; no sha256 is published). It holds
``val/{indoors,outdoors}/scene_*/scan_*/<name>.png`` (768 x 1024 RGB) with
``<name>_depth.npy`` (768, 1024, 1) float32 metres and ``<name>_depth_mask.npy`` (768, 1024),
1 = valid sensor return.

Depth is kept where the mask is 1 and the value is finite and > 0, else written as 0
(invalid). Output keeps the folder tree: ``images/val/<indoors|outdoors>/.../<name>.png``,
``depths/val/...``, with scale 1000 indoors (mm; DIODE indoor range <= 50 m) and 100 outdoors
(cm; range <= 350 m, the format holds 655 m); each PNG stores its scale. Split files:
``val.txt`` (all), ``val_indoors.txt``, ``val_outdoors.txt``; ``dataset.json``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from _common import (
    copy_file,
    downloads_dir,
    fetch,
    make_parser,
    pair_paths,
    run,
    write_info,
    write_split,
)
from PIL import Image
from tqdm.auto import tqdm

from dalib.download import safe_extract
from dalib.io import write_depth

VAL_URL = "http://diode-dataset.s3.amazonaws.com/val.tar.gz"
VAL_MD5 = "md5:5c895d09201b88973c8fe4552a67dd85"
SCALES = {"indoors": 1000.0, "outdoors": 100.0}
DEPTH_SUFFIX, MASK_SUFFIX = "_depth.npy", "_depth_mask.npy"


def load_depth(depth_path: Path, mask_path: Path) -> np.ndarray:
    """(H, W) float32 metres, 0 where the mask is 0 or the value is not finite and > 0."""
    depth = np.load(depth_path, allow_pickle=False)
    mask = np.load(mask_path, allow_pickle=False)
    depth = depth[..., 0] if depth.ndim == 3 and depth.shape[-1] == 1 else depth
    if depth.ndim != 2 or mask.shape != depth.shape:
        raise ValueError(
            f"depth {depth_path} {depth.shape} and mask {mask_path} {mask.shape} must be "
            "(H, W) [or (H, W, 1)] of one size"
        )
    valid = (mask > 0) & np.isfinite(depth) & (depth > 0)
    return np.where(valid, depth, 0).astype(np.float32)


def convert(source: Path, out: Path, progress: bool = True) -> dict[str, int]:
    """Convert every ``*_depth.npy`` under ``source`` (the extracted ``val`` folder)."""
    depth_files = sorted(source.rglob(f"*{DEPTH_SUFFIX}"))
    if not depth_files:
        raise FileNotFoundError(f"no *{DEPTH_SUFFIX} files under {source}")
    keys: dict[str, list[str]] = {kind: [] for kind in SCALES}
    for depth_path in tqdm(depth_files, desc="DIODE val", disable=not progress):
        stem = depth_path.name.removesuffix(DEPTH_SUFFIX)
        image_path = depth_path.with_name(stem + ".png")
        mask_path = depth_path.with_name(stem + MASK_SUFFIX)
        relative = depth_path.parent.relative_to(source)
        kind = relative.parts[0] if relative.parts else ""
        if kind not in SCALES:
            raise ValueError(f"{depth_path} is not under {source}/indoors or {source}/outdoors")
        for needed in (image_path, mask_path):
            if not needed.is_file():
                raise FileNotFoundError(f"{needed} (the partner of {depth_path}) is missing")
        depth = load_depth(depth_path, mask_path)
        with Image.open(image_path) as image:
            size = image.size[::-1]
        if size != depth.shape:
            raise ValueError(
                f"image {image_path} is {size} but depth {depth_path} is {depth.shape}"
            )
        key = (relative / stem).as_posix()
        image_out, depth_out = pair_paths(out, "val", key)
        copy_file(image_path, image_out)
        write_depth(depth_out, depth, scale=SCALES[kind])
        keys[kind].append(key)
    for kind, subset in keys.items():
        write_split(out, "val", subset, name=f"val_{kind}")
    write_split(out, "val", [k for subset in keys.values() for k in subset])
    counts = {f"val_{kind}": len(subset) for kind, subset in keys.items()}
    write_info(
        out, {"name": "diode_val", "sources": [VAL_URL], "depth_scale": SCALES, "counts": counts}
    )
    return counts


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser(__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, help="an already extracted DIODE 'val' folder")
    args = parser.parse_args(argv)
    progress, dl = not args.quiet, downloads_dir(args.out)
    source = args.source
    if source is None:
        archive = fetch(VAL_URL, dl / "val.tar.gz", VAL_MD5, args.dry_run, progress)
        if not args.dry_run:
            safe_extract(archive, dl / "diode")
        source = dl / "diode" / "val"
    if args.dry_run:
        print(
            f"[dry-run] would convert {source} (771 pairs: 325 indoors, 446 outdoors) to "
            f"{args.out / 'images/val'} and {args.out / 'depths/val'} (scale "
            f"{SCALES['indoors']:g} indoors, {SCALES['outdoors']:g} outdoors), and split files"
        )
        return 0
    print(f"wrote {convert(source, args.out, progress)} pairs to {args.out}")
    return 0


if __name__ == "__main__":
    run(main)
