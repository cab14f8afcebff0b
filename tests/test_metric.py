"""Metric depth: the SiLog loss, the metric head, encoder initialisation, fine-tuning."""

import pytest
import torch

from dalib import losses, metric_depth
from dalib.config import get_profile
from dalib.model import DepthAnything, load_checkpoint, save_checkpoint

PROFILE = get_profile("fast")


def _maps(seed=0, b=3):
    g = torch.Generator().manual_seed(seed)
    target = torch.rand(b, 6, 7, generator=g) * 9 + 0.5
    pred = target * torch.exp(0.2 * torch.randn(b, 6, 7, generator=g))
    return pred, target, torch.rand(b, 6, 7, generator=g) > 0.3


def test_silog_is_the_per_image_formula_and_scale_invariant_at_lambda_one():
    pred, target, mask = _maps()
    by_hand = []
    for p, t, m in zip(pred, target, mask):
        e = p[m].log() - t[m].log()
        by_hand.append(torch.sqrt((e**2).mean() - 0.85 * e.mean() ** 2))
    torch.testing.assert_close(losses.silog_loss(pred, target, mask), torch.stack(by_hand).mean())
    t64 = target.double()  # float64: no cancellation in mean e² − (mean e)²
    assert losses.silog_loss(3.0 * t64, t64, mask, variance_focus=1.0) <= 1e-6 + 1e-15  # the floor
    assert losses.silog_loss(3.0 * target, target, mask, variance_focus=0.0) == pytest.approx(
        torch.log(torch.tensor(3.0)).item(), rel=1e-5
    )


def test_silog_masks_and_empty_batches():
    pred, target, mask = _maps()
    pred = pred.clone().requires_grad_()
    noisy = target.clone()
    noisy[~mask] = float("nan")  # unknown ground truth never leaks in
    losses.silog_loss(pred, noisy, mask).backward()
    assert torch.isfinite(pred.grad).all() and (pred.grad[~mask] == 0).all()
    empty = torch.zeros_like(mask)
    pred.grad = None
    loss = losses.silog_loss(pred, target, empty)
    loss.backward()
    assert loss.item() == 0 and (pred.grad == 0).all()


def test_metric_model_copies_only_the_encoder(tmp_path):
    torch.manual_seed(1)
    source = DepthAnything("micro")
    save_checkpoint(source, tmp_path / "checkpoints" / "teacher.safetensors")
    model = metric_depth.metric_model("teacher", PROFILE, tmp_path)
    assert model.config.output == "linear"
    for key, value in source.pretrained.state_dict().items():
        assert torch.equal(model.pretrained.state_dict()[key], value), key
    assert not torch.equal(
        model.depth_head.scratch.output_conv1.weight, source.depth_head.scratch.output_conv1.weight
    )
    logits = torch.full((1, 2, 2), -50.0), torch.zeros(1, 2, 2), torch.full((1, 2, 2), 50.0)
    assert [float(metric_depth.to_metres(z, 10).mean()) for z in logits] == pytest.approx([0, 5, 10])
    with pytest.raises(FileNotFoundError, match="student.safetensors"):
        metric_depth.metric_model("student", PROFILE, tmp_path)


def test_finetune_writes_a_metric_checkpoint_and_resumes_exactly(tmp_path):
    common = {"root": tmp_path, "steps": 4, "checkpoint_every": 2}
    model, scores = metric_depth.finetune_metric("indoor", "random", PROFILE, **common)
    assert {"delta1", "delta2", "delta3", "abs_rel", "rmse", "log10", "rmse_log"} <= set(scores)
    assert 0 <= scores["delta1"] <= 1 and scores["rmse"] > 0
    path = tmp_path / "checkpoints" / "metric_indoor_random.safetensors"
    again, max_depth = metric_depth.load_metric(path)
    assert max_depth == 10.0 and again.config.output == "linear"
    for key, value in model.state_dict().items():
        assert torch.equal(again.state_dict()[key], value.cpu()), key
    first = {k: v.clone() for k, v in again.state_dict().items()}
    metric_depth.finetune_metric("indoor", "random", PROFILE, **common, stop_after=3)
    metric_depth.finetune_metric("indoor", "random", PROFILE, **common, resume=True)
    resumed, _ = metric_depth.load_metric(path)
    for key, value in resumed.state_dict().items():
        torch.testing.assert_close(value, first[key], rtol=0, atol=1e-6, msg=key)
    relative = save_checkpoint(DepthAnything("micro"), tmp_path / "relative.safetensors")
    with pytest.raises(ValueError, match="not a metric-depth checkpoint"):
        metric_depth.load_metric(relative)
    assert load_checkpoint(path).config.output == "linear"  # the config rebuilds the head


def test_semantic_initialisation_fits_the_depth_model(tmp_path):
    from dalib.semantic import train_semantic_encoder

    frozen = train_semantic_encoder(PROFILE, root=tmp_path)
    model = metric_depth.metric_model("semantic", PROFILE, tmp_path)
    for key, value in frozen.encoder.state_dict().items():
        assert torch.equal(model.pretrained.state_dict()[key], value), key
