"""The command line: help for every command, synth and predict runs, torchrun with 2 processes."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dalib.__main__ import main
from dalib.data import RGBDFolder, read_depth, read_image
from dalib.io import write_png
from dalib.model import DepthAnything, save_checkpoint

REPO = Path(__file__).resolve().parents[1]
COMMANDS = [
    "ablation",
    "synth",
    "train-teacher",
    "pseudo-label",
    "train-student",
    "predict",
    "evaluate",
    "report",
    "run-notebooks",
]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "--profile" in capsys.readouterr().out


def test_synth_writes_rgb_depth_semantic_and_splits(tmp_path):
    out = tmp_path / "dataset"
    assert (
        main(
            [
                "synth",
                "--profile",
                "fast",
                "--out",
                str(out),
                "--domains",
                "indoor_rooms",
                "gallery",
                "atrium",
                "--n",
                "2",
            ]
        )
        == 0
    )
    assert (out / "validation.txt").read_text().split() == [
        f"atrium/images/{i:05d}.png" for i in range(2)
    ]
    with pytest.raises(SystemExit, match="unknown"):
        main(["synth", "--profile", "fast", "--out", str(out), "--domains", "atlantis"])
    assert (out / "labeled.txt").read_text().split() == [
        f"indoor_rooms/images/{i:05d}.png" for i in range(2)
    ]
    assert (out / "held_out.txt").read_text().split() == [
        f"gallery/images/{i:05d}.png" for i in range(2)
    ]
    assert (out / "unlabeled.txt").read_text() == ""
    pairs = RGBDFolder(out / "indoor_rooms" / "images", out / "indoor_rooms" / "depths")
    sample = pairs[0]
    assert (
        sample["image"].shape == (3, 56, 56)
        and 0 < float(sample["depth"][sample["valid"]].max()) <= 10
    )
    semantic = read_image(out / "gallery" / "semantic" / "00000.png")
    depth = read_depth(out / "gallery" / "depths" / "00000.png")
    assert semantic.shape == (56, 56, 3) and depth.shape == (56, 56)


def test_predict_writes_disparity_and_preview(tmp_path):
    torch.manual_seed(0)
    checkpoint = save_checkpoint(DepthAnything("micro"), tmp_path / "model.safetensors")
    image = np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    write_png(tmp_path / "photo.png", image)
    assert (
        main(
            [
                "predict",
                str(tmp_path / "photo.png"),
                "--checkpoint",
                str(checkpoint),
                "--out",
                str(tmp_path / "out"),
                "--input-size",
                "56",
            ]
        )
        == 0
    )
    disparity = read_depth(tmp_path / "out" / "photo.disparity.png")
    assert disparity.shape == (40, 60) and disparity.min() == 0 and disparity.max() == 1
    assert read_image(tmp_path / "out" / "photo.preview.png").shape == (40, 60, 3)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_torchrun_two_processes_train_and_write_one_checkpoint(tmp_path):
    env = {**os.environ, "DALIB_HOME": str(tmp_path / "unused"), "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        f"--master_port={_free_port()}",
        "-m",
        "dalib",
        "train-teacher",
        "--profile",
        "fast",
        "--out",
        str(tmp_path / "runs"),
        "--steps",
        "2",
    ]
    done = subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, timeout=90, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    checkpoints = tmp_path / "runs" / "checkpoints"
    assert (checkpoints / "teacher.safetensors").is_file()
    assert sorted(p.name for p in (checkpoints / "resume" / "teacher").iterdir()) == [
        "step-00000002.safetensors",
        "step-00000002.state.pt",
    ]
    log = (tmp_path / "runs" / "logs" / "teacher.jsonl").read_text().splitlines()
    assert len([line for line in log if '"loss"' in line]) == 2  # rank 0 alone logs
