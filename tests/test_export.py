"""ONNX export: ONNX Runtime computes what torch computes (skipped when onnx is absent)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dalib.__main__ import main
from dalib.io import write_png
from dalib.model import DepthAnything, DepthNet, save_checkpoint

pytest.importorskip("onnxscript", reason="ONNX export needs the onnx extra: pip install -e '.[onnx]'")
pytest.importorskip("onnxruntime", reason="running ONNX needs the onnx extra: pip install -e '.[onnx]'")

from dalib.export import onnx_session, to_onnx


def test_onnx_runtime_equals_torch_for_any_batch(tmp_path):
    torch.manual_seed(0)
    model = DepthAnything("micro").eval()
    path = to_onnx(model, tmp_path / "micro.onnx", (42, 56))
    session = onnx_session(path, threads=1)
    for batch in (1, 3):
        images = torch.rand(batch, 3, 42, 56)
        with torch.no_grad():
            expected = DepthNet(model)(images)[0].numpy()
        (got,) = session.run(None, {"image": images.numpy()})
        assert got.shape == (batch, 42, 56)
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    with pytest.raises(ValueError, match="multiples of the patch 14"):
        to_onnx(model, tmp_path / "bad.onnx", 50)


def test_export_onnx_command(tmp_path, capsys):
    torch.manual_seed(0)
    checkpoint = save_checkpoint(DepthAnything("micro"), tmp_path / "m.safetensors")
    assert main(["export-onnx", str(checkpoint), str(tmp_path / "m.onnx"), "--size", "28"]) == 0
    assert (tmp_path / "m.onnx").stat().st_size > 1e6 and "(B, 3, 28, 28)" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="export-onnx: error: checkpoint .*nope.safetensors"):
        main(["export-onnx", str(tmp_path / "nope.safetensors"), str(tmp_path / "x.onnx")])


def test_int8_linear_layers_stay_close_to_fp32(tmp_path):
    pytest.importorskip("torchao", reason="the int8 path needs the int8 extra: pip install -e '.[int8]'")
    from dalib.export import quantize_int8

    torch.manual_seed(0)
    model = DepthAnything("micro").eval()
    quantized = quantize_int8(model)
    images = torch.rand(2, 3, 56, 56)
    with torch.no_grad():
        fp32, int8 = DepthNet(model)(images)[0], DepthNet(quantized)(images)[0]
    relative = float((int8 - fp32).abs().max() / fp32.abs().max())
    assert 0 < relative < 0.05  # changed (really int8), but close
    assert type(model.pretrained.blocks[0].mlp.fc1.weight) is torch.nn.Parameter  # a copy
    checkpoint = save_checkpoint(model, tmp_path / "m.safetensors")
    write_png(tmp_path / "in" / "a.png", np.zeros((28, 28, 3), np.uint8) + 100)
    args = ["predict", str(tmp_path / "in"), "--checkpoint", str(checkpoint), "--out",
            str(tmp_path / "out"), "--input-size", "28", "--int8"]
    assert main(args) == 0 and (tmp_path / "out" / "a.disparity.png").is_file()
