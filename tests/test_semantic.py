"""Feature alignment with a frozen encoder, the aux-decoder option, segmentation transfer."""

import json

import pytest
import torch
import torch.nn.functional as F

from dalib import augment, losses, synth
from dalib.__main__ import main
from dalib.config import get_profile, run_paths, stable_seed
from dalib.model import (
    DepthAnything,
    DepthNet,
    checkpoint_metadata,
    load_checkpoint,
    save_checkpoint,
)
from dalib.objectives import StepContext, student_step
from dalib.optim import lr_factor
from dalib.pseudo import pseudo_label
from dalib.runlog import read_log
from dalib.segmentation import (
    SEGMENTER_FORMAT,
    SegmentationHead,
    Segmenter,
    evaluate_segmenter,
    load_segmenter,
    segment,
    train_segmenter,
)
from dalib.semantic import AuxSegmentation, FeatureAlignment, match_grid, train_semantic_encoder
from dalib.train import train_student

PROFILE = get_profile("fast").replace(n_unlabeled=3, n_photo_crops=3, n_labeled=4, batch_size=2)
K = len(synth.SEMANTIC_CLASSES)


def _context(labeled=2, unlabeled=4, width=128, grid=(4, 4), seed=0):
    g = torch.Generator().manual_seed(seed)
    side = grid[0] * 14
    feats = [torch.randn(unlabeled, width, *grid, generator=g, requires_grad=True)]
    lab = [torch.randn(labeled, width, *grid, generator=g, requires_grad=True)]
    return StepContext(
        model=None,
        batch={},
        images=torch.rand(unlabeled, 3, side, side, generator=g),
        features=feats,
        generator=g,
        step=0,
        labeled_images=torch.rand(labeled, 3, side, side, generator=g),
        labeled_features=lab,
    )


class _Fixed(torch.nn.Module):
    """A 'frozen encoder' returning given features (any grid), for exact checks."""

    def __init__(self, features):
        super().__init__()
        self.value = features
        self.embed_dim = features.shape[1]
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.seen = []

    def features(self, images):
        self.seen.append(images)
        return self.value


def test_feature_alignment_is_the_margin_loss_on_the_last_readout():
    ctx = _context()
    target = torch.randn(4, 128, 4, 4)
    loss = FeatureAlignment(_Fixed(target), margin=0.85)(ctx)
    expected = losses.feature_alignment_loss(ctx.features[-1], target, 0.85)
    torch.testing.assert_close(loss, expected)


def test_margin_exclusion_gives_zero_gradient_there():
    ctx = _context(unlabeled=1, grid=(2, 2))
    target = torch.randn(1, 128, 2, 2)
    with torch.no_grad():  # make location (0, 0) nearly parallel to the target: cos > 0.85
        ctx.features[-1][0, :, 0, 0] = 3 * target[0, :, 0, 0] + 0.01 * torch.randn(128)
    FeatureAlignment(_Fixed(target), margin=0.85)(ctx).backward()
    grad = ctx.features[-1].grad[0]
    assert torch.all(grad[:, 0, 0] == 0)
    assert grad[:, 1:, :].abs().sum() > 0 and grad[:, 0, 1].abs().sum() > 0
    ctx2 = _context(unlabeled=1, grid=(2, 2))
    ctx2.features[-1].data.copy_(ctx.features[-1].data)
    FeatureAlignment(_Fixed(target), margin=1.0)(ctx2).backward()  # α = 1 keeps every location
    assert ctx2.features[-1].grad[0, :, 0, 0].abs().sum() > 0


def test_token_grid_matching():
    x = torch.randn(2, 8, 3, 5)
    assert match_grid(x, (3, 5)) is x
    y = match_grid(x, (6, 10))
    torch.testing.assert_close(
        y, F.interpolate(x, size=(6, 10), mode="bilinear", align_corners=False)
    )
    ctx = _context(grid=(4, 4))  # student 4x4 tokens, frozen encoder gives 8x8
    fine = torch.randn(4, 128, 8, 8)
    loss = FeatureAlignment(_Fixed(fine), margin=1.0)(ctx)
    expected = losses.feature_alignment_loss(ctx.features[-1], match_grid(fine, (4, 4)), 1.0)
    torch.testing.assert_close(loss, expected)


def test_placement_picks_whose_images_are_aligned():
    ctx = _context(labeled=2, unlabeled=4)
    for on, n in (("unlabeled", 4), ("labeled", 2), ("both", 6)):
        frozen = _Fixed(torch.randn(n, 128, 4, 4))
        FeatureAlignment(frozen, on=on)(ctx)
        assert frozen.seen[0].shape[0] == n
    assert torch.equal(_seen_labeled(ctx), ctx.labeled_images)
    with pytest.raises(ValueError, match="on must be one of"):
        FeatureAlignment(_Fixed(torch.randn(1, 128, 4, 4)), on="sky")
    with pytest.raises(ValueError, match="no projector"):
        FeatureAlignment(_Fixed(torch.randn(4, 64, 4, 4)))(ctx)


def _seen_labeled(ctx):
    frozen = _Fixed(torch.randn(2, 128, 4, 4))
    FeatureAlignment(frozen, on="labeled")(ctx)
    return frozen.seen[0]


def test_frozen_encoder_is_unchanged_by_a_student_step():
    torch.manual_seed(0)
    frozen = Segmenter("micro", K, img_size=56)
    before = {k: v.clone() for k, v in frozen.state_dict().items()}
    aux = AuxSegmentation(Segmenter("micro", K, img_size=56), embed_dim=128)
    net = DepthNet(DepthAnything("micro"), {"loss_seg": aux.head}).train()
    g = torch.Generator().manual_seed(0)
    batch = {
        "image": torch.rand(2, 3, 56, 56, generator=g),
        "target": torch.rand(2, 56, 56, generator=g),
        "mask": torch.ones(2, 56, 56, dtype=torch.bool),
        "u_image": torch.rand(4, 3, 56, 56, generator=g),
        "u_target": torch.rand(4, 56, 56, generator=g),
        "u_mask": torch.ones(4, 56, 56, dtype=torch.bool),
    }
    step = student_step(0.0, True, True, [FeatureAlignment(frozen, 0.85), aux])
    optimizer = torch.optim.AdamW(list(net.parameters()) + list(frozen.parameters()), lr=1e-2)
    loss, parts = step(net, batch, g, 0)
    assert {"loss_l", "loss_u", "loss_feat", "loss_seg"} <= set(parts)
    loss.backward()
    optimizer.step()
    assert all(p.grad is None for p in frozen.parameters())
    for key, value in frozen.state_dict().items():
        assert torch.equal(value, before[key]), key  # BatchNorm statistics included
    assert not frozen.training
    assert aux.head.classify.weight.grad is not None  # the aux decoder does learn


def test_aux_head_initial_weights_come_from_its_seed_not_the_global_rng():
    segmenter = Segmenter("micro", K, img_size=56)
    torch.manual_seed(1)
    first = AuxSegmentation(segmenter, embed_dim=128).head.state_dict()
    after = torch.rand(3)
    torch.manual_seed(1)
    torch.rand(5)  # a different global state
    second = AuxSegmentation(segmenter, embed_dim=128).head.state_dict()
    other = AuxSegmentation(segmenter, embed_dim=128, seed=1).head.state_dict()
    for key, value in first.items():
        torch.testing.assert_close(second[key], value, rtol=0, atol=0)
    assert not torch.equal(other["classify.weight"], first["classify.weight"])
    torch.manual_seed(1)
    AuxSegmentation(segmenter, embed_dim=128)
    assert torch.equal(torch.rand(3), after)  # the global stream is left untouched


def test_segmentation_head_shapes():
    head = SegmentationHead(32, 5)
    assert head(torch.randn(3, 32, 4, 6), (56, 84)).shape == (3, 5, 56, 84)
    model = Segmenter("micro", 5, img_size=56)
    images = torch.rand(2, 3, 42, 70)
    assert model.features(images).shape == (2, 128, 3, 5)
    assert model(images).shape == (2, 5, 42, 70)
    assert segment(model, (images * 255).to(torch.uint8)).shape == (2, 42, 70)
    with pytest.raises(ValueError, match="num_classes"):
        SegmentationHead(32, 1)
    with pytest.raises(RuntimeError, match="no head"):
        Segmenter("micro", 0)(images)


class _Oracle(Segmenter):
    def __init__(self, prediction):
        super().__init__("micro", 2, img_size=28)
        self.prediction = prediction

    def forward(self, images):
        return F.one_hot(self.prediction, 2).permute(0, 3, 1, 2).float()


def test_miou_on_a_hand_made_case():
    target = torch.tensor([[[0, 0], [1, 1]]])
    prediction = torch.tensor([[[0, 1], [1, 1]]])
    value, iou = evaluate_segmenter(_Oracle(prediction), torch.zeros(1, 3, 2, 2), target)
    # class 0: TP 1, FN 1 -> 1/2; class 1: TP 2, FP 1 -> 2/3
    torch.testing.assert_close(iou, torch.tensor([0.5, 2 / 3], dtype=torch.float64))
    assert value == pytest.approx(7 / 12)


def test_probe_freezes_the_encoder_finetuning_moves_it_and_both_learn():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (16, 3, 28, 28), generator=g, dtype=torch.uint8)
    labels = (images.float().mean(1) > 127).long()  # bright pixels are class 1
    probe = Segmenter("micro", 2, img_size=28)
    encoder = {k: v.clone() for k, v in probe.encoder.state_dict().items()}
    losses_ = train_segmenter(probe, images, labels, steps=30, batch_size=8, progress=False)
    assert all(torch.equal(v, encoder[k]) for k, v in probe.encoder.state_dict().items())
    assert sum(losses_[-5:]) < sum(losses_[:5])
    tuned = Segmenter("micro", 2, img_size=28)
    train_segmenter(tuned, images, labels, steps=3, lr_encoder=1e-3, progress=False)
    assert not torch.equal(
        tuned.encoder.blocks[0].attn.qkv.weight, probe.encoder.blocks[0].attn.qkv.weight
    )
    assert not tuned.encoder.mask_token.requires_grad


def _plain_segmenter_loop(model, images, labels, steps, batch_size, lr_head, lr_encoder, seed):
    """The loop train_segmenter had before it trained on fit, kept as the reference."""
    finetune = lr_encoder > 0
    model.requires_grad_(True)
    model.encoder.requires_grad_(finetune)
    model.encoder.mask_token.requires_grad_(False)
    groups = [{"params": list(model.head.parameters()), "lr": lr_head}]
    if finetune:
        groups.append({"params": [p for p in model.encoder.parameters() if p.requires_grad]})
        groups[-1]["lr"] = lr_encoder
    optimizer = torch.optim.AdamW(groups, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, steps, 0.05))
    generator = torch.Generator().manual_seed(stable_seed("segmenter", seed))
    history = []
    model.train()
    for _ in range(steps):
        pick = torch.randint(len(images), (batch_size,), generator=generator)
        batch, target = augment.hflip(
            images[pick].float().div(255), labels[pick], generator=generator
        )
        batch = augment.strong_perturbation(batch, generator)
        loss = F.cross_entropy(model(batch), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        history.append(loss.item())
    return history


@pytest.mark.parametrize("lr_encoder", [0.0, 1e-4])
def test_train_segmenter_on_fit_equals_the_plain_loop_bit_for_bit(lr_encoder):
    g = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (12, 3, 28, 28), generator=g, dtype=torch.uint8)
    labels = torch.randint(0, 3, (12, 28, 28), generator=g)
    runs = []
    for train in (train_segmenter, _plain_segmenter_loop):
        torch.manual_seed(0)
        model = Segmenter("micro", 3, img_size=28)
        if train is train_segmenter:
            history = train(model, images, labels, 6, 4, 1e-3, lr_encoder, True, 2, False)
        else:
            history = train(model, images, labels, 6, 4, 1e-3, lr_encoder, 2)
        runs.append((history, model.state_dict()))
    (fitted, state), (plain, reference) = runs
    assert fitted == plain
    assert all(torch.equal(state[k], reference[k]) for k in reference)


def test_segmenter_checkpoint_round_trip_and_wrong_kind(tmp_path):
    model = Segmenter("micro", K, img_size=56).eval()
    path = save_checkpoint(model, tmp_path / "seg.safetensors")
    again = load_segmenter(path)
    images = torch.rand(1, 3, 56, 56)
    torch.testing.assert_close(again(images), model(images))
    depth = save_checkpoint(DepthAnything("micro"), tmp_path / "depth.safetensors")
    with pytest.raises(ValueError, match=r"depth\.safetensors is not a dalib\.Segmenter/1"):
        load_segmenter(depth)


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    torch.manual_seed(0)
    save_checkpoint(DepthAnything("micro"), root / "checkpoints" / "teacher.safetensors")
    pseudo_label(profile=PROFILE, root=root, batch_size=8)
    return root


def test_semantic_encoder_is_trained_once_and_cached(labelled):
    first = train_semantic_encoder(PROFILE, root=labelled)
    path = labelled / "checkpoints" / "semantic_encoder.safetensors"
    stamp = path.stat().st_mtime_ns
    second = train_semantic_encoder(PROFILE, root=labelled)
    assert path.stat().st_mtime_ns == stamp
    for (k, a), b in zip(first.state_dict().items(), second.state_dict().values()):
        assert torch.equal(a, b), k
    assert not any(p.requires_grad for p in second.parameters()) and not second.training


def test_student_with_the_aux_decoder_trains_and_resumes_exactly(labelled):
    segmenter = train_semantic_encoder(PROFILE, root=labelled)

    def run(name, seed, **kwargs):
        torch.manual_seed(seed)  # the fresh aux head's initial weights
        options = [FeatureAlignment(segmenter, 0.85), AuxSegmentation(segmenter, 128)]
        common = {"root": labelled, "steps": 4, "validate": False, "checkpoint_every": 2}
        train_student(PROFILE, name=name, extra_losses=options, **common, **kwargs)

    run("straight", 0)
    run("killed", 0, stop_after=3)
    run("killed", 123, resume=True)  # the head's init must not matter: it comes from the checkpoint
    a = load_checkpoint(run_paths(labelled, "straight")["final_path"]).state_dict()
    b = load_checkpoint(run_paths(labelled, "killed")["final_path"]).state_dict()
    assert a.keys() == DepthAnything("micro").state_dict().keys()  # no head keys in the model
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=0, atol=1e-6, msg=key)
    log = read_log(run_paths(labelled, "straight")["log_path"])
    assert all(r["loss_seg"] > 0 and 0 <= r["loss_feat"] <= 2 for r in log)
    state = torch.load(
        next(run_paths(labelled, "killed")["resume_dir"].glob("*.state.pt")), weights_only=True
    )
    assert set(state["heads"]) == {f"loss_seg.{k}" for k in SegmentationHead(128, K).state_dict()}


def test_command_line_student_with_semantic_options(labelled):
    args = ["train-student", "--profile", "fast", "--out", str(labelled), "--steps", "2"]
    args += ["--name", "cli", "--feature-alignment", "synthetic", "--margin", "0.7"]
    args += ["--aux-segmentation", "synthetic", "--align-on", "both"]
    assert main(args) == 0
    log = read_log(run_paths(labelled, "cli")["log_path"])
    assert {"loss_feat", "loss_seg"} <= set(log[0])
    saved = labelled / "checkpoints" / "semantic_encoder.safetensors"  # under --out, not runs/
    key = json.loads(checkpoint_metadata(saved, SEGMENTER_FORMAT)["key"])
    assert key[3] == get_profile("fast").n_labeled != PROFILE.n_labeled  # the CLI's profile
