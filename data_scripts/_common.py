"""What every data script shares: the command line, dry runs, and the on-disk layout.

Every converted data set is written as::

    OUT/images/<split>/<key>.png     RGB (uint8)
    OUT/depths/<split>/<key>.png     16-bit depth PNG, metres x scale (scale in the file)
    OUT/<split>.txt                  one pair per line: "images/<split>/<key>.png depths/..."
    OUT/dataset.json                 name, source URLs, depth scale(s), counts per split

so ``dalib.data.RGBDFolder(OUT / "images" / split, OUT / "depths" / split)`` reads a split
(``depth_scale=None``: the scale is stored in each depth PNG). Downloads go to
``OUT/_downloads`` (kept, so a rerun resumes or reuses them).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from dalib.download import UnsafeArchiveError, download
from dalib.io import atomic_write


def make_parser(description: str) -> argparse.ArgumentParser:
    """A parser with the options every script takes: ``--out``, ``--dry-run``, ``--quiet``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", type=Path, required=True, help="output folder of the data set")
    parser.add_argument(
        "--dry-run", action="store_true", help="print what would be downloaded and written"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def downloads_dir(out: Path) -> Path:
    return out / "_downloads"


def fetch(url: str, dest: Path, checksum: str | None, dry_run: bool, progress: bool) -> Path:
    """:func:`dalib.download.download`, or in a dry run a line saying what it would do."""
    if dry_run:
        state = "present" if dest.is_file() else "would download"
        check = checksum or "no published checksum: unverified"
        print(f"[dry-run] {state}: {url}\n          -> {dest} ({check})")
        return dest
    return download(url, dest, checksum, progress=progress)


def save_image_array(path: Path, image: np.ndarray) -> None:
    """Write a uint8 (H, W, 3) array as PNG, atomically."""
    with atomic_write(path) as temp:
        Image.fromarray(np.ascontiguousarray(image)).save(temp, format="PNG")


def copy_file(source: Path, path: Path) -> None:
    """Copy ``source`` to ``path`` atomically (an image already in a format dalib reads)."""
    with atomic_write(path) as temp:
        shutil.copyfile(source, temp)


def pair_paths(out: Path, split: str, key: str) -> tuple[Path, Path]:
    """Where the image and depth of ``key`` in ``split`` go."""
    return out / "images" / split / f"{key}.png", out / "depths" / split / f"{key}.png"


def write_split(out: Path, split: str, keys: Sequence[str], name: str | None = None) -> Path:
    """``OUT/<name>.txt`` (default name: ``split``): the image and depth path of each key in
    ``split``, relative to ``out``."""
    lines = []
    for key in keys:
        image, depth = pair_paths(out, split, key)
        lines.append(f"{image.relative_to(out).as_posix()} {depth.relative_to(out).as_posix()}")
    path = out / f"{name or split}.txt"
    with atomic_write(path) as temp:
        temp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_info(out: Path, info: dict) -> Path:
    """``OUT/dataset.json`` describing the converted set."""
    path = out / "dataset.json"
    with atomic_write(path) as temp:
        temp.write_text(json.dumps(info, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def run(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> None:
    """Run a script's ``main``; expected failures print one clear line and exit with 1."""
    try:
        code = main(argv)
    except (ConnectionError, FileNotFoundError, UnsafeArchiveError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        code = 1
    sys.exit(code)
