"""Prediction at scale: files, folders and globs of images in, disparity PNGs out, mirrored.

:func:`collect_images` turns what a user typed (image files, folders searched recursively,
glob patterns) into ``(path, relative name)`` pairs, and :func:`predict_files` writes for each
``<out>/<relative name>.disparity.png`` (16-bit, normalised disparity: ``dalib.io.
write_disparity``) and ``.preview.png`` (colour), reading images a chunk at a time so that
images of equal size run through the network together (:func:`dalib.inference.predict_batch`).
Nothing is dropped silently: an unreadable file stops the run naming it, or, with
``on_error="skip"``, is counted and listed. Outputs that already exist are kept, so an
interrupted run resumes where it stopped.
"""

from __future__ import annotations

import glob
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from torch import nn
from tqdm.auto import tqdm

from dalib.data import ImageFolder
from dalib.inference import predict_batch
from dalib.io import ImageReadError, read_image, write_disparity, write_png
from dalib.viz import colorize

ON_ERROR = ("fail", "skip")


def collect_images(inputs: Sequence[str | os.PathLike]) -> list[tuple[Path, Path]]:
    """(path, name relative to what was given) for every image that ``inputs`` names: a file
    (its own name), a folder (every image below it, recursively, by its path inside) or a glob
    pattern (each match, by its path below the pattern's fixed leading folders). Raises
    FileNotFoundError naming an input that matches nothing, ValueError naming a folder without
    images or two inputs that would write the same output name."""
    found: list[tuple[Path, Path]] = []
    for given in map(str, inputs):
        path = Path(given)
        if glob.has_magic(given):
            parts = path.parts
            fixed = parts[: next(i for i, p in enumerate(parts) if glob.has_magic(p))]
            base = Path(*fixed) if fixed else Path(".")
            matches = sorted(Path(m) for m in glob.glob(given, recursive=True) if Path(m).is_file())
            if not matches:
                raise FileNotFoundError(f"{given}: no file matches this pattern")
            found += [(m, m.relative_to(base)) for m in matches]
        elif path.is_dir():  # ImageFolder's listing: recursive, sorted, hidden names skipped
            found += [(p, p.relative_to(path)) for p in ImageFolder(path).files]
        elif path.is_file():
            found.append((path, Path(path.name)))
        else:
            raise FileNotFoundError(f"{given}: no such file or folder")
    names: dict[Path, Path] = {}
    for path, name in found:
        if name in names and names[name] != path:
            raise ValueError(f"{names[name]} and {path} would both write {name}.disparity.png")
        names[name] = path
    return found


@dataclass
class PredictReport:
    """What :func:`predict_files` did: images written, kept (outputs existed), skipped
    (unreadable, with ``on_error="skip"``: path -> reason) and the rate in images/s."""

    written: int = 0
    kept: int = 0
    skipped: dict[str, str] = field(default_factory=dict)
    images_per_s: float = 0.0


def outputs_of(out: Path, name: Path) -> tuple[Path, Path]:
    """The disparity PNG and the colour preview written for an input of relative ``name``."""
    folder = out / name.parent
    return folder / f"{name.stem}.disparity.png", folder / f"{name.stem}.preview.png"


def predict_files(
    model: nn.Module,
    inputs: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    input_size: int | None = None,
    batch_size: int = 8,
    on_error: str = "fail",
    progress: bool = True,
) -> PredictReport:
    """Predict every image that ``inputs`` names (see :func:`collect_images`) into ``out``.

    Images are read ``batch_size`` at a time; those of equal network size share a forward
    pass. ``on_error``: "fail" (an unreadable file raises ImageReadError naming it) or "skip"
    (counted and listed in the report). Inputs whose two outputs exist are kept as they are.
    """
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    out = Path(out)
    report = PredictReport()
    todo = []
    for path, name in collect_images(inputs):
        if all(p.is_file() for p in outputs_of(out, name)):
            report.kept += 1
        else:
            todo.append((path, name))
    started = time.perf_counter()
    with tqdm(total=len(todo), desc="predict", unit="img", disable=not progress) as bar:
        for start in range(0, len(todo), batch_size):
            chunk, images = [], []
            for path, name in todo[start : start + batch_size]:
                try:
                    images.append(read_image(path))
                    chunk.append(name)
                except (ImageReadError, OSError) as err:
                    if on_error == "fail":
                        raise
                    report.skipped[str(path)] = str(err)
                    bar.update()
            for name, disparity in zip(chunk, predict_batch(model, images, input_size, batch_size)):
                disparity_path, preview_path = outputs_of(out, name)
                write_disparity(disparity_path, disparity)
                write_png(preview_path, colorize(disparity))
                report.written += 1
                bar.update()
    seconds = time.perf_counter() - started
    report.images_per_s = report.written / seconds if report.written and seconds > 0 else 0.0
    return report


__all__ = ["ON_ERROR", "PredictReport", "collect_images", "outputs_of", "predict_files"]
