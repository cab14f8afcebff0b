"""KITTI, Eigen test split with the improved ground truth, in dalib's RGB-D layout.

    python data_scripts/kitti.py --out data/kitti [--dry-run] [--annotated DIR] [--raw DIR]

Sources (KITTI terms of use apply: register at https://www.cvlibs.net/datasets/kitti/):

- The split: ``splits/eigen_benchmark/test_files.txt`` of monodepth2 (Godard et al., pinned to
  commit bd03a9e), 652 lines ``<date>/<drive>_sync <frame> <l|r>``: the frames of Eigen et
  al.'s 697-image test split that have improved ground truth.
- ``data_depth_annotated.zip`` (14 GB; Uhrig et al., 3DV 2017):
  ``{train,val}/<drive>_sync/proj_depth/groundtruth/image_0{2,3}/<frame:010d>.png``, uint16,
  depth in metres = value / 256, 0 = no measurement.
- The raw drives ``raw_data/<drive>/<drive>_sync.zip``:
  ``<date>/<drive>_sync/image_0{2,3}/data/<frame:010d>.png`` (left = image_02).

Only the needed members are extracted from the archives. Output: ``images/test/<key>.png``
(the raw PNG, copied) and ``depths/test/<key>.png`` (same uint16 codes, scale 256 stored),
key = ``<drive>_sync_<frame:010d>_<l|r>``; ``test.txt``; ``dataset.json``. None of these
files has a published checksum; the split list is fetched from a fixed commit.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

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
from dalib.io import read_depth, write_depth

SPLIT_URL = (
    "https://raw.githubusercontent.com/nianticlabs/monodepth2/"
    "bd03a9ec1305082e80199bc2753ef5adb252e405/splits/eigen_benchmark/test_files.txt"
)
AVG = "https://s3.eu-central-1.amazonaws.com/avg-kitti"
ANNOTATED_URL = f"{AVG}/data_depth_annotated.zip"
SCALE = 256.0  # KITTI stores depth * 256
CAMERA = {"l": "image_02", "r": "image_03"}


@dataclass(frozen=True)
class Frame:
    date: str  # 2011_09_26
    drive: str  # 2011_09_26_drive_0002_sync
    frame: int
    side: str  # "l" or "r"

    @property
    def key(self) -> str:
        return f"{self.drive}_{self.frame:010d}_{self.side}"

    @property
    def raw_member(self) -> str:
        return f"{self.date}/{self.drive}/{CAMERA[self.side]}/data/{self.frame:010d}.png"

    @property
    def depth_member(self) -> str:
        """Path under ``train/`` or ``val/`` of the annotated archive."""
        return f"{self.drive}/proj_depth/groundtruth/{CAMERA[self.side]}/{self.frame:010d}.png"

    @property
    def raw_url(self) -> str:
        name = self.drive.removesuffix("_sync")
        return f"{AVG}/raw_data/{name}/{self.drive}.zip"


def read_split(path: str | os.PathLike) -> list[Frame]:
    """Parse a monodepth2-style split file; ValueError naming the file and line if malformed."""
    frames = []
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        folder = parts[0].split("/") if parts else []
        if len(parts) != 3 or len(folder) != 2 or not parts[1].isdigit() or parts[2] not in CAMERA:
            raise ValueError(
                f"{path} line {number}: expected '<date>/<drive> <frame> <l|r>', got {line!r}"
            )
        frames.append(Frame(folder[0], folder[1], int(parts[1]), parts[2]))
    if not frames:
        raise ValueError(f"split file {path} lists no frames")
    return frames


def convert(
    frames: Sequence[Frame], annotated: Path, raw: Path, out: Path, progress: bool = True
) -> int:
    """Write every frame's image and depth to ``out`` (split ``test``); return the count.

    Raises FileNotFoundError naming the first missing files, ValueError naming both files
    when an image and its depth differ in size.
    """
    sources = []
    for f in frames:
        depth = next(
            (
                annotated / s / f.depth_member
                for s in ("val", "train")
                if (annotated / s / f.depth_member).is_file()
            ),
            None,
        )
        sources.append((f, raw / f.raw_member, depth))
    missing = [str(img) for _, img, _ in sources if not img.is_file()]
    missing += [
        f"depth of {f.key} under {annotated}/{{train,val}}/{f.depth_member}"
        for f, _, depth in sources
        if depth is None
    ]
    if missing:
        raise FileNotFoundError(f"{len(missing)} KITTI file(s) missing, e.g. {missing[:3]}")
    for f, image, depth in tqdm(sources, desc="KITTI", disable=not progress):
        with Image.open(image) as im:
            size = im.size[::-1]
        values = read_depth(depth, scale=SCALE)
        if values.shape != size:
            raise ValueError(f"image {image} is {size} but depth {depth} is {values.shape}")
        image_out, depth_out = pair_paths(out, "test", f.key)
        copy_file(image, image_out)
        write_depth(depth_out, values, scale=SCALE)
    write_split(out, "test", [f.key for f in frames])
    write_info(
        out,
        {
            "name": "kitti_eigen_benchmark",
            "sources": [SPLIT_URL, ANNOTATED_URL],
            "depth_scale": SCALE,
            "counts": {"test": len(frames)},
        },
    )
    return len(frames)


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser(__doc__.splitlines()[0])
    parser.add_argument("--split", type=Path, help="a local split file (default: monodepth2's)")
    parser.add_argument("--annotated", type=Path, help="extracted data_depth_annotated folder")
    parser.add_argument("--raw", type=Path, help="extracted raw data folder (<date>/<drive>/...)")
    args = parser.parse_args(argv)
    progress, dl = not args.quiet, downloads_dir(args.out)
    split = args.split or fetch(
        SPLIT_URL, dl / "eigen_benchmark_test_files.txt", None, args.dry_run, progress
    )
    if args.dry_run and not split.is_file():
        print("[dry-run] the split list names the frames, hence the raw drive archives to fetch")
    frames = read_split(split) if split.is_file() else []
    annotated, raw = args.annotated or dl / "annotated", args.raw or dl / "raw"
    if args.annotated is None:
        archive = fetch(
            ANNOTATED_URL, dl / "data_depth_annotated.zip", None, args.dry_run, progress
        )
        wanted = {f.depth_member for f in frames}
        if not args.dry_run:
            safe_extract(archive, annotated, lambda name: name.partition("/")[2] in wanted)
    if args.raw is None:
        for url in sorted({f.raw_url for f in frames}):
            archive = fetch(url, dl / url.rsplit("/", 1)[-1], None, args.dry_run, progress)
            wanted = {f.raw_member for f in frames}
            if not args.dry_run:
                safe_extract(archive, raw, wanted.__contains__)
    if args.dry_run:
        print(
            f"[dry-run] would write {len(frames) or 652} test pairs to {args.out / 'images/test'} "
            f"and {args.out / 'depths/test'} (scale {SCALE:g}), and {args.out / 'test.txt'}"
        )
        return 0
    print(f"wrote {convert(frames, annotated, raw, args.out, progress)} test pairs to {args.out}")
    return 0


if __name__ == "__main__":
    run(main)
