"""NYU Depth v2 (the 1449 labeled frames) in dalib's RGB-D layout, with the official splits.

    python data_scripts/nyuv2.py --out data/nyuv2 [--dry-run] [--raw-depth]

Sources (Silberman et al., ECCV 2012; https://cs.nyu.edu/~silberman/datasets/nyu_depth_v2.html):

- ``nyu_depth_v2_labeled.mat`` (2.8 GB), a MATLAB v7.3 file, i.e. HDF5, read with h5py.
  h5py sees MATLAB's column-major arrays with their axes reversed:
  ``images`` (1449, 3, 640, 480) uint8 -> frame i is ``images[i].transpose(2, 1, 0)``, (480, 640, 3);
  ``depths`` (1449, 640, 480) float32 metres, holes filled by the authors' colourisation ->
  ``depths[i].T``, (480, 640); ``rawDepths``: the same layout, 0 where the Kinect saw nothing.
- ``splits.mat`` (MATLAB v5, read with scipy): ``trainNdxs`` (795) and ``testNdxs`` (654),
  1-based frame numbers. The 654 test frames are the test split of Eigen et al. (2014) that
  NYU depth benchmarks report on (usually inside the crop rows 45:471, cols 41:601).

Output: ``images/{train,test}/NNNN.png`` and ``depths/{train,test}/NNNN.png`` (NNNN = the
0-based frame index in the .mat), depth scale 1000 (millimetres; NYU depths are < 10 m),
``train.txt``, ``test.txt``, ``dataset.json``. Neither file has a published checksum.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np
import scipy.io
from _common import (
    downloads_dir,
    fetch,
    make_parser,
    pair_paths,
    run,
    save_image_array,
    write_info,
    write_split,
)
from tqdm.auto import tqdm

from dalib.io import write_depth

MAT_URL = "http://horatio.cs.nyu.edu/mit/silberman/nyu_depth_v2/nyu_depth_v2_labeled.mat"
SPLITS_URL = "http://horatio.cs.nyu.edu/mit/silberman/indoor_seg_sup/splits.mat"
SCALE = 1000.0  # stored value per metre
SPLIT_KEYS = {"train": "trainNdxs", "test": "testNdxs"}
EXPECTED_COUNTS = {"train": 795, "test": 654}


def read_splits(path: str | os.PathLike, n_frames: int) -> dict[str, np.ndarray]:
    """0-based frame indices per split from ``splits.mat``; ValueError naming the file if the
    indices are missing, out of ``1..n_frames`` or shared by both splits."""
    mat = scipy.io.loadmat(path)
    splits = {}
    for split, key in SPLIT_KEYS.items():
        if key not in mat:
            raise ValueError(f"{path} has no {key!r} array (keys: {sorted(mat)})")
        numbers = np.asarray(mat[key]).astype(np.int64).ravel()
        if numbers.size == 0 or numbers.min() < 1 or numbers.max() > n_frames:
            raise ValueError(f"{path}: {key} must hold frame numbers in 1..{n_frames}")
        splits[split] = numbers - 1
    if np.intersect1d(splits["train"], splits["test"]).size:
        raise ValueError(f"{path}: trainNdxs and testNdxs share frames")
    return splits


def convert(
    mat_path: str | os.PathLike,
    splits_path: str | os.PathLike,
    out: Path,
    depth_key: str = "depths",
    progress: bool = True,
) -> dict[str, int]:
    """Write every frame of both splits; return the number of pairs per split."""
    with h5py.File(mat_path, "r") as mat:
        missing = [k for k in ("images", depth_key) if k not in mat]
        if missing:
            raise ValueError(f"{mat_path} has no {missing} dataset(s); keys: {sorted(mat)}")
        images, depths = mat["images"], mat[depth_key]
        n, channels, width, height = images.shape if images.ndim == 4 else (0, 0, 0, 0)
        if channels != 3 or depths.shape != (n, width, height):
            raise ValueError(
                f"{mat_path} does not have the NYU Depth v2 layout: images {images.shape} "
                f"(expected (N, 3, W, H)), {depth_key} {depths.shape} (expected (N, W, H))"
            )
        splits = read_splits(splits_path, n)
        counts = {}
        for split, frames in splits.items():
            keys = [f"{i:04d}" for i in frames]
            for i, key in zip(tqdm(frames, desc=f"NYUv2 {split}", disable=not progress), keys):
                image_path, depth_path = pair_paths(out, split, key)
                save_image_array(
                    image_path, np.asarray(images[i], dtype=np.uint8).transpose(2, 1, 0)
                )
                write_depth(depth_path, np.asarray(depths[i], dtype=np.float32).T, scale=SCALE)
            write_split(out, split, keys)
            counts[split] = len(keys)
    write_info(
        out,
        {
            "name": "nyuv2",
            "sources": [MAT_URL, SPLITS_URL],
            "depth": depth_key,
            "depth_scale": SCALE,
            "counts": counts,
        },
    )
    return counts


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser(__doc__.splitlines()[0])
    parser.add_argument("--mat", type=Path, help="an already downloaded nyu_depth_v2_labeled.mat")
    parser.add_argument("--splits", type=Path, help="an already downloaded splits.mat")
    parser.add_argument(
        "--raw-depth", action="store_true", help="use rawDepths (holes = 0) instead of depths"
    )
    args = parser.parse_args(argv)
    progress = not args.quiet
    mat = args.mat or fetch(
        MAT_URL, downloads_dir(args.out) / "nyu_depth_v2_labeled.mat", None, args.dry_run, progress
    )
    splits = args.splits or fetch(
        SPLITS_URL, downloads_dir(args.out) / "splits.mat", None, args.dry_run, progress
    )
    depth_key = "rawDepths" if args.raw_depth else "depths"
    if args.dry_run:
        for split, count in EXPECTED_COUNTS.items():
            print(
                f"[dry-run] would write {count} {split} pairs from {mat} ({depth_key}) to "
                f"{args.out / 'images' / split} and {args.out / 'depths' / split} "
                f"(scale {SCALE:g}), and {args.out / f'{split}.txt'}"
            )
        return 0
    counts = convert(mat, splits, args.out, depth_key, progress)
    print(f"wrote {counts} pairs to {args.out}")
    return 0


if __name__ == "__main__":
    run(main)
