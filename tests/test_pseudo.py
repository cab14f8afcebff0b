"""Pseudo-labelling: labels match the teacher, reruns redo only what is missing, quality, student."""

import json

import numpy as np
import pytest
import torch

from dalib import synth
from dalib.config import get_profile
from dalib.data import PseudoLabeled, read_depth, read_image
from dalib.depth import depth_to_disparity, normalize_disparity
from dalib.distributed import DistInfo, shard
from dalib.io import ImageReadError, write_disparity, write_png
from dalib.model import DepthAnything, load_checkpoint, predict, save_checkpoint
from dalib.objectives import StepContext
from dalib.pool import build_pool
from dalib.pseudo import _label_shard, label_quality, pseudo_label
from dalib.runlog import read_log
from dalib.train import train_student

PROFILE = get_profile("fast").replace(n_unlabeled=3, n_photo_crops=3, n_labeled=4, batch_size=2)


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    torch.manual_seed(0)
    teacher = save_checkpoint(DepthAnything("micro"), root / "checkpoints" / "teacher.safetensors")
    result = pseudo_label(profile=PROFILE, root=root, batch_size=8)
    return root, teacher, result


def test_every_pool_image_gets_the_teachers_normalised_label(labelled):
    _, teacher, result = labelled
    manifest = json.loads(result.manifest.read_text())
    n_expected = len(synth.UNLABELED) * 3 + 3
    assert (
        result.written == n_expected and result.reused == 0 and len(manifest["items"]) == n_expected
    )
    assert {it["domain"] for it in manifest["items"]} == {*synth.UNLABELED, "photos"}
    assert manifest["teacher_sha256"] and manifest["label_scale"] == 65535
    model = load_checkpoint(teacher)
    for item in manifest["items"][::5]:
        image = read_image(result.manifest.parent / item["image"])
        assert image.shape == (56, 56, 3)
        label = torch.from_numpy(read_depth(result.manifest.parent / item["label"]))
        expected = normalize_disparity(torch.from_numpy(predict(model, image, input_size=56)))
        torch.testing.assert_close(label, expected, rtol=0, atol=0.51 / 65535 + 1e-6)
        assert float(label.min()) == 0.0 and float(label.max()) == 1.0


def test_rerun_relabels_only_missing_or_corrupt_files(labelled):
    root, _, first = labelled
    items = json.loads(first.manifest.read_text())["items"]
    labels = [first.manifest.parent / it["label"] for it in items]
    labels[0].unlink()
    labels[1].write_bytes(b"not a png")
    before = {p: p.stat().st_mtime_ns for p in labels[2:]}
    again = pseudo_label(profile=PROFILE, root=root, batch_size=8)
    assert (again.written, again.reused) == (2, len(items) - 2)
    assert read_depth(labels[1]).shape == (56, 56)
    assert {p: p.stat().st_mtime_ns for p in labels[2:]} == before


def test_ranks_split_the_pool_without_overlap(labelled, tmp_path):
    root, teacher, _ = labelled
    index = build_pool(PROFILE, root)  # cached
    items = json.loads(index.read_text())["items"]
    parts = [shard(items, DistInfo(r, 2, r, torch.device("cpu"))) for r in range(2)]
    assert sorted(it["image"] for p in parts for it in p) == sorted(it["image"] for it in items)
    assert not {it["image"] for it in parts[0]} & {it["image"] for it in parts[1]}
    info = DistInfo(1, 2, 1, torch.device("cpu"))
    written, _ = _label_shard(teacher, parts[1], index.parent, tmp_path, (56, 56), 8, info, False)
    assert written == len(parts[1])
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.png")) == sorted(
        it["image"] for it in parts[1]
    )


def test_quality_of_perfect_labels_is_perfect(labelled, tmp_path):
    root, _, result = labelled
    index = build_pool(PROFILE, root)
    items = [it for it in json.loads(index.read_text())["items"] if it["domain"] == "park"]
    with np.load(index.parent / "park" / "ground_truth.npz") as gt:
        depth = gt["depth"]
    for it in items:  # the true disparity as "pseudo label"
        write_disparity(tmp_path / it["image"], depth_to_disparity(depth[it["gt_index"]]))
    quality = label_quality(items, index.parent, tmp_path)
    assert quality["park"]["n"] == 3
    assert quality["park"]["abs_rel"] < 2e-3 and quality["park"]["delta1"] == 1.0
    assert result.quality["park"]["abs_rel"] > 0.05  # an untrained teacher is far from it


def test_pseudo_labeled_dataset_and_a_student_run(labelled):
    root, teacher, result = labelled
    data = PseudoLabeled(result.manifest, size=56)
    sample = data[0]
    assert sample["image"].shape == (3, 56, 56) and sample["disparity"].shape == (56, 56)
    assert (
        bool(sample["valid"].all())
        and 0 <= float(sample["disparity"].min()) <= float(sample["disparity"].max()) <= 1
    )
    calls = []

    def feature_norm(ctx: StepContext) -> torch.Tensor:
        calls.append(ctx.features[-1].shape)
        return ctx.features[-1].pow(2).mean() * 0

    student = train_student(
        PROFILE, root=root, name="student", steps=2, extra_losses=[feature_norm], validate=False
    )
    assert calls == [(4, 128, 4, 4)] * 2  # 2B unlabeled images, micro width 128, 56/14 tokens
    log = read_log(root / "logs" / "student.jsonl")
    assert [r["step"] for r in log] == [1, 2] and {"loss_l", "loss_u", "feature_norm"} <= set(
        log[0]
    )
    fresh = DepthAnything("micro").state_dict()
    assert (root / "checkpoints" / "student.safetensors").is_file()
    teacher_state = load_checkpoint(teacher).state_dict()
    assert not torch.equal(
        student.state_dict()["depth_head.scratch.output_conv2.2.weight"],
        teacher_state["depth_head.scratch.output_conv2.2.weight"],
    )
    assert fresh.keys() == student.state_dict().keys()


def test_malformed_manifest_is_named(tmp_path):
    bad = tmp_path / "manifest.json"
    bad.write_text("{}")
    with pytest.raises(ValueError, match="manifest.json"):
        PseudoLabeled(bad)


def test_a_corrupt_file_in_an_added_folder_stops_the_pool_or_is_listed(tmp_path):
    folder = tmp_path / "mine"
    for name in ("a.png", "c.png"):
        write_png(folder / name, np.full((30, 30, 3), 90, np.uint8))
    (folder / "b.png").write_bytes(b"broken")
    profile = PROFILE.replace(n_unlabeled=1, n_photo_crops=1)
    with pytest.raises(ImageReadError, match="b.png"):
        build_pool(profile, tmp_path / "runs", [folder])
    index = build_pool(profile, tmp_path / "runs", [folder], on_error="skip")
    listing = json.loads(index.read_text())
    added = [it["image"] for it in listing["items"] if it["domain"].startswith("folder0")]
    assert added == ["folder0-mine/00000.png", "folder0-mine/00001.png"]
    assert list(listing["skipped"]) == [str(folder / "b.png")]
