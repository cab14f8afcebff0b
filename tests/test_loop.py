"""fit's contract for runs that bring their own module: what it steps, writes and syncs."""

import pytest
import torch
from torch import nn

from dalib import loop
from dalib.distributed import single_process
from dalib.loop import Run, fit
from dalib.optim import TrainSettings, make_optimizer
from dalib.segmentation import Segmenter

SETTINGS = TrainSettings(3, 2, clip_norm=0.0, amp="off", progress=False)


class _Regression(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(4, 1)


def _batches(step: int, device: torch.device) -> dict:
    g = torch.Generator().manual_seed(step)
    return {"x": torch.randn(2, 4, generator=g).to(device)}


def _step(net: nn.Module, batch: dict, _generator: torch.Generator, _step: int):
    return net.layer(batch["x"]).square().mean(), {}


def test_a_run_with_its_own_net_trains_it_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = _Regression()
    before = model.layer.weight.detach().clone()
    fit(Run(model, _batches, SETTINGS, single_process("cpu"), net=model), _step)
    assert not torch.equal(model.layer.weight, before)
    assert list(tmp_path.iterdir()) == []


def test_a_lone_process_joins_no_collective(monkeypatch):
    def collective(*args):
        raise AssertionError("a single-process run entered a collective")

    monkeypatch.setattr(loop, "barrier", collective)
    monkeypatch.setattr(loop, "all_reduce_mean", collective)
    model = _Regression()
    fit(Run(model, _batches, SETTINGS, single_process("cpu"), net=model), _step)


def test_a_net_with_parameters_the_optimiser_misses_is_refused(tmp_path):
    model, outside = _Regression(), _Regression()
    net = nn.ModuleDict({"model": model, "outside": outside})
    with pytest.raises(ValueError, match="outside.layer.weight"):
        fit(Run(model, _batches, SETTINGS, single_process("cpu"), net=net), _step)
    with pytest.raises(ValueError, match="resume_dir"):
        run = Run(model, _batches, SETTINGS, single_process("cpu"), resume_dir=tmp_path, net=model)
        fit(run, _step)


def test_the_encoder_group_is_the_vit_wherever_it_sits():
    model = Segmenter("micro", 3, img_size=28)
    model.encoder.mask_token.requires_grad_(False)
    encoder, decoder = make_optimizer(model, SETTINGS).param_groups
    trainable = [p for p in model.encoder.parameters() if p.requires_grad]
    assert [id(p) for p in encoder["params"]] == [id(p) for p in trainable]
    assert [id(p) for p in decoder["params"]] == [id(p) for p in model.head.parameters()]
    assert (encoder["lr"], decoder["lr"]) == (SETTINGS.lr_encoder, SETTINGS.lr_decoder)
