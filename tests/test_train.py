"""Training: batching, schedule, the student's step, and exact resume after a real kill."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from dalib import augment, losses
from dalib.config import get_profile, run_paths
from dalib.data import write_depth
from dalib.io import write_png
from dalib.mixing import EpochBatches, MixedBatches, TensorSet, to_tensor_set
from dalib.model import DepthAnything, DepthNet
from dalib.objectives import StepContext, student_step
from dalib.optim import lr_factor
from dalib.runlog import read_log
from dalib.train import real_labeled_sets, train_teacher

REPO = Path(__file__).resolve().parents[1]


def test_lr_factor_warmup_then_linear_decay():
    # 10 steps, 20% warm-up = 2 steps: 1/2, 2/2, then (10 - s) / 8 for s = 2..9
    factors = [lr_factor(s, 10, 0.2) for s in range(10)]
    expected = [0.5, 1.0] + [(10 - s) / 8 for s in range(2, 10)]
    assert factors == pytest.approx(expected)
    assert lr_factor(0, 10, 0.0) == 1.0


def test_epoch_batches_are_a_function_of_seed_epoch_and_rank():
    ranks = [EpochBatches(10, 2, seed=3, rank=r, world_size=2) for r in range(2)]
    assert ranks[0].batches_per_epoch == 2  # 5 items per rank, drop-last
    epoch0 = [torch.cat([b.indices(s) for s in range(2)]) for b in ranks]
    assert not set(epoch0[0].tolist()) & set(epoch0[1].tolist())  # ranks never overlap
    fresh = EpochBatches(10, 2, seed=3, rank=1, world_size=2)
    assert torch.equal(fresh.indices(3), ranks[1].indices(3))  # a resumed job: same batch
    assert not torch.equal(ranks[0].epoch_order(0), ranks[0].epoch_order(1).clone())
    with pytest.raises(ValueError, match="cannot fill one batch"):
        EpochBatches(3, 2, seed=0, world_size=2)


def test_to_tensor_set_sky_is_far_and_valid_unknown_is_masked():
    depth = torch.tensor([[2.0, float("inf")], [0.0, 4.0]])
    sample = {
        "image": torch.full((3, 2, 2), 0.5),
        "depth": depth,
        "valid": torch.isfinite(depth) & (depth > 0),
        "sky": torch.isinf(depth),
    }
    data = to_tensor_set([sample])
    assert torch.equal(data.targets[0], torch.tensor([[0.5, 0.0], [0.0, 0.25]]))
    assert torch.equal(data.masks[0], torch.tensor([[True, True], [False, True]]))
    assert data.images.dtype == torch.uint8 and int(data.images[0, 0, 0, 0]) == 128


def _toy_batches(seed=0):
    g = torch.Generator().manual_seed(seed)
    n, size = 12, 28
    sets = [
        TensorSet(
            torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8),
            torch.rand(n, size, size, generator=g),
            torch.rand(n, size, size, generator=g) > 0.1,
        )
        for _ in range(2)
    ]
    return MixedBatches(*sets, batch_size=2, seed=seed)


@pytest.mark.parametrize("perturb, cutmix", [(False, False), (True, False), (True, True)])
def test_student_step_switches_and_loss_average(perturb, cutmix):
    torch.manual_seed(0)
    net = DepthNet(DepthAnything("micro")).eval()
    batch = _toy_batches().batch(0, torch.device("cpu"))
    clean = batch["u_image"].clone()
    seen = {}

    def constant(ctx: StepContext) -> torch.Tensor:
        seen["ctx"] = ctx
        return torch.tensor(7.0)

    step = student_step(0.0, perturb, cutmix, [constant])
    loss, parts = step(net, batch, torch.Generator().manual_seed(5), 0)
    parts = {k: float(v) for k, v in parts.items()}  # detached 0-dim tensors: one sync in fit
    ctx = seen["ctx"]
    assert ctx.model is net.model and ctx.images.shape == (4, 3, 28, 28)
    assert [f.shape[0] for f in ctx.features] == [4] * 4 and ctx.features[0].requires_grad
    assert torch.equal(batch["u_image"], clean)  # the batch (teacher's clean view) is untouched
    # rebuild the student's view independently with the same draws
    g = torch.Generator().manual_seed(5)
    images, target, mask = augment.hflip(
        batch["image"], batch["target"], batch["mask"], generator=g
    )
    view = augment.strong_perturbation(clean, g) if perturb else clean
    if cutmix:
        box = augment.cutmix_box(4, 28, 28, g, p=0.5)
        view = augment.apply_cutmix(view, view.roll(1, 0), box)
    assert torch.equal(ctx.images, view)
    assert (perturb or cutmix) != torch.equal(ctx.images, clean)
    with torch.no_grad():
        loss_l = losses.affine_invariant_loss(net(images)[0], target, mask)
        u_pred = net(view)[0]
        loss_u = (
            losses.cutmix_loss(
                u_pred,
                batch["u_target"],
                batch["u_target"].roll(1, 0),
                box,
                batch["u_mask"],
                batch["u_mask"].roll(1, 0),
            )
            if cutmix
            else losses.affine_invariant_loss(u_pred, batch["u_target"], batch["u_mask"])
        )
    assert parts["loss_u"] == pytest.approx(float(loss_u), rel=1e-4)
    assert parts["loss_l"] == pytest.approx(float(loss_l), rel=1e-4)  # gradient matching is off
    assert parts["constant"] == 7.0
    assert loss.item() == pytest.approx((parts["loss_l"] + parts["loss_u"] + 7.0) / 3, rel=1e-6)


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def test_killed_teacher_resumes_to_the_same_weights(tmp_path):
    """A straight run vs. a run SIGKILLed after its first checkpoint and resumed."""
    root, steps = tmp_path / "runs", 6
    profile = get_profile("fast")
    train_teacher(
        profile, root=root, steps=steps, name="straight", validate=False
    )  # eval never changes weights

    env = {**os.environ, "DALIB_HOME": str(tmp_path / "unused"), "OMP_NUM_THREADS": "1"}
    paths = run_paths(root, "killed")
    job = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dalib",
            "train-teacher",
            "--profile",
            "fast",
            "--out",
            str(root),
            "--steps",
            str(steps),
            "--name",
            "killed",
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while not list(paths["resume_dir"].glob("step-*.state.pt")):
        assert job.poll() is None, (
            f"job ended before its first checkpoint: {job.stderr.read().decode()[-2000:]}"
        )
        assert time.monotonic() < deadline, "no checkpoint within 60 s"
        time.sleep(0.005)
    job.send_signal(signal.SIGKILL)
    job.wait()
    assert not paths["final_path"].exists(), (
        "the job finished before the kill; the test proves nothing"
    )
    killed_at = read_log(paths["log_path"])[-1]["step"]
    assert killed_at < steps

    train_teacher(profile, root=root, steps=steps, name="killed", resume=True)
    a, b = _weights(run_paths(root, "straight")["final_path"]), _weights(paths["final_path"])
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=0, atol=1e-6, msg=key)
    log = [r["step"] for r in read_log(paths["log_path"]) if "loss" in r]
    assert log == list(range(1, steps + 1))  # steps after the checkpoint were not logged twice
    evals = [r for r in read_log(paths["log_path"]) if "eval" in r]
    assert evals[-1]["step"] == steps and set(evals[-1]["eval"]) == {"atrium", "quarry"}
    state = torch.load(next(paths["resume_dir"].glob("step-*.state.pt")), weights_only=True)
    assert state["step"] == steps and "optimizer" in state and "rng" in state


def test_resume_refuses_changed_settings_and_fresh_runs_drop_old_checkpoints(tmp_path):
    root = tmp_path / "runs"
    train_teacher("fast", root=root, steps=2, name="t", validate=False)
    with pytest.raises(ValueError, match="settings changed.*lr_decoder"):
        train_teacher(
            "fast", root=root, steps=2, name="t", validate=False, resume=True, lr_decoder=1e-3
        )
    resume_dir = run_paths(root, "t")["resume_dir"]
    train_teacher(
        "fast", root=root, steps=3, name="t", validate=False, stop_after=1
    )  # fresh, stopped early
    assert not list(resume_dir.glob("step-*"))  # the finished run's step-2 state is gone


def test_real_labeled_sets_are_used_when_their_folders_exist(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DALIB_DATA", str(tmp_path))
    profile = get_profile("fast").replace(real_labeled=("nyuv2", "kitti"))
    folder = tmp_path / "nyuv2"
    rng = np.random.default_rng(0)
    for key in ("a", "b"):
        write_png(
            folder / "images" / "train" / f"{key}.png",
            rng.integers(0, 256, (60, 80, 3), dtype=np.uint8),
        )
        write_depth(
            folder / "depths" / "train" / f"{key}.png",
            rng.uniform(0.5, 9, (60, 80)).astype(np.float32),
        )
    found = real_labeled_sets(profile)
    assert len(found) == 1 and len(found[0]) == 2 and found[0][0]["image"].shape == (3, 56, 56)
    out = capsys.readouterr().out
    assert "'nyuv2': 2 labeled pairs" in out and "'kitti' not used" in out
    gpu = get_profile("gpu")
    assert gpu.pretrained_encoder == "dinov2" and gpu.real_labeled == ("nyuv2",)
    full = get_profile("full")
    assert full.pretrained_encoder == "synthetic" and full.student_steps >= full.teacher_steps
