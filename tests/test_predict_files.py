"""Prediction at scale (folders, globs, resume, unreadable files) and clean command-line errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dalib.__main__ import main
from dalib.io import ImageReadError, read_depth, read_image, write_png
from dalib.model import DepthAnything, save_checkpoint
from dalib.predict_files import collect_images, outputs_of, predict_files


def _images(root, names, shape=(28, 42, 3)):
    rng = np.random.default_rng(0)
    for name in names:
        write_png(root / name, rng.integers(0, 256, shape, dtype=np.uint8))


@pytest.fixture
def model():
    torch.manual_seed(0)
    return DepthAnything("micro").eval()


def test_collect_images_names_outputs_relative_to_what_was_given(tmp_path):
    _images(tmp_path, ["a.png", "sub/b.png", "sub/deep/c.jpg", ".hidden/d.png"])
    (tmp_path / "notes.txt").write_text("not an image")
    assert collect_images([tmp_path]) == [
        (tmp_path / name, Path(name)) for name in ("a.png", "sub/b.png", "sub/deep/c.jpg")
    ]
    by_glob = collect_images([str(tmp_path / "sub" / "**" / "*.*")])
    assert sorted(str(n) for _, n in by_glob) == ["b.png", "deep/c.jpg"]
    assert collect_images([tmp_path / "sub" / "b.png"])[0][1].as_posix() == "b.png"
    with pytest.raises(FileNotFoundError, match="missing.png: no such file or folder"):
        collect_images([tmp_path / "missing.png"])
    with pytest.raises(FileNotFoundError, match=r"\*.tif: no file matches"):
        collect_images([str(tmp_path / "*.tif")])
    write_png(tmp_path / "other" / "b.png", np.zeros((20, 20, 3), np.uint8))
    with pytest.raises(ValueError, match="would both write b.png"):
        collect_images([tmp_path / "sub" / "b.png", tmp_path / "other" / "b.png"])


def test_predict_files_mirrors_folders_batches_and_resumes(tmp_path, model):
    _images(tmp_path / "in", ["a.png", "b.png", "sub/c.png"])
    _images(tmp_path / "in", ["wide.png"], shape=(28, 84, 3))  # another network size
    report = predict_files(model, [tmp_path / "in"], tmp_path / "out", 28, 2, progress=False)
    assert report.written == 4 and report.kept == 0 and not report.skipped
    assert report.images_per_s > 0
    for name, shape in (("a.png", (28, 42)), ("sub/c.png", (28, 42)), ("wide.png", (28, 84))):
        disparity, preview = outputs_of(tmp_path / "out", Path(name))
        assert read_depth(disparity).shape == shape and read_image(preview).shape == (*shape, 3)
    # one forward per image alone gives the same maps, to float rounding (one 16-bit step)
    alone = predict_files(model, [tmp_path / "in" / "a.png"], tmp_path / "one", 28, 1, progress=False)
    assert alone.written == 1
    np.testing.assert_allclose(
        read_depth(tmp_path / "one" / "a.disparity.png"),
        read_depth(tmp_path / "out" / "a.disparity.png"),
        rtol=0,
        atol=1.01 / 65535,
    )
    again = predict_files(model, [tmp_path / "in"], tmp_path / "out", 28, 2, progress=False)
    assert again.written == 0 and again.kept == 4


def test_unreadable_files_fail_by_name_or_are_counted(tmp_path, model):
    _images(tmp_path / "in", ["a.png", "c.png"])
    (tmp_path / "in" / "b.png").write_bytes(b"not a png")
    with pytest.raises(ImageReadError, match="b.png"):
        predict_files(model, [tmp_path / "in"], tmp_path / "out", 28, progress=False)
    report = predict_files(
        model, [tmp_path / "in"], tmp_path / "out", 28, on_error="skip", progress=False
    )
    assert report.written == 2 and list(report.skipped) == [str(tmp_path / "in" / "b.png")]
    with pytest.raises(ValueError, match="on_error"):
        predict_files(model, [tmp_path / "in"], tmp_path / "out", on_error="ignore")


def test_command_line_errors_are_one_line_naming_the_file(tmp_path, model, capsys):
    checkpoint = save_checkpoint(model, tmp_path / "model.safetensors")
    _images(tmp_path / "in", ["a.png"])
    (tmp_path / "in" / "b.png").write_bytes(b"broken")
    args = ["predict", str(tmp_path / "in"), "--checkpoint", str(checkpoint), "--out",
            str(tmp_path / "out"), "--input-size", "28"]
    with pytest.raises(SystemExit, match=r"^dalib predict: error: .*b\.png") as failed:
        main(args)
    assert "\n" not in str(failed.value)
    with pytest.raises(ImageReadError, match="b.png"):
        main(["--debug", *args])
    assert main([*args, "--on-error", "skip"]) == 0
    captured = capsys.readouterr()
    assert "1 images ->" in captured.out and "skipped 1 unreadable" in captured.err
    assert str(tmp_path / "in" / "b.png") in captured.err
    missing = ["predict", str(tmp_path / "nope.png"), "--checkpoint", str(checkpoint)]
    with pytest.raises(SystemExit, match="nope.png: no such file or folder"):
        main(missing)
    with pytest.raises(SystemExit, match=r"checkpoint .*absent\.safetensors does not exist"):
        main(["predict", str(tmp_path / "in" / "a.png"), "--checkpoint", str(tmp_path / "absent.safetensors")])
