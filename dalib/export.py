"""A DepthAnything for deployment: exported to ONNX, or with int8 linear layers on the CPU.

:func:`to_onnx` writes one self-contained ``.onnx`` file (weights inside) whose input
``image`` is (B, 3, H, W) float32 in [0, 1], RGB, and whose output ``disparity`` is
(B, H, W): the ImageNet normalisation is part of the graph (:class:`dalib.model.DepthNet`), so
a caller only resizes to the exported sides (multiples of the patch, 14) and divides by 255.
The batch is dynamic; the sides are the ones exported. It uses torch's own exporter
(``torch.onnx.export(..., dynamo=True)``, which needs ``onnx`` and ``onnxscript``:
``pip install "dalib-edu[onnx]"``); :func:`onnx_session` runs the file with ONNX Runtime.

:func:`quantize_int8` is the opt-in int8 CPU path: a copy of the model whose linear layers
(attention projections and MLPs, most of a ViT's time) compute in int8 with activations
quantised on the fly, through torchao (``quantize_`` with
``Int8DynamicActivationInt8WeightConfig``; ``pip install "dalib-edu[int8]"``), PyTorch's
maintained quantisation library (``torch.ao.quantization`` is deprecated). The DPT head's
convolutions stay fp32.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import torch
from torch import Tensor, nn

from dalib.model import DepthNet
from dalib.sample import as_size


class _Exported(nn.Module):
    """[0, 1] images -> disparity: the part of DepthNet that is exported."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.net = DepthNet(model)

    def forward(self, image: Tensor) -> Tensor:
        return self.net(image)[0]


def to_onnx(
    model: nn.Module, path: str | os.PathLike, size: int | tuple[int, int] | None = None
) -> Path:
    """Write ``model`` (a DepthAnything) as ONNX to ``path``; return the path.

    ``size``: the input side or (H, W) in pixels, multiples of the model's patch (default its
    ``config.input_size``). The batch dimension stays dynamic."""
    try:
        import onnxscript  # noqa: F401  (torch's exporter needs it; fail here with the fix)
    except ImportError as err:
        raise ImportError(
            'ONNX export needs onnx and onnxscript: pip install "dalib-edu[onnx]"'
        ) from err
    h, w = as_size(size if size is not None else model.config.input_size, "size")
    patch = model.config.patch_size
    if h % patch or w % patch:
        raise ValueError(f"size must be multiples of the patch {patch}, got {(h, w)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wrapper = _Exported(model).eval()
    example = torch.rand(2, 3, h, w, device=next(model.parameters()).device)  # 2: not 0/1
    batch = torch.export.Dim("batch", min=1, max=4096)
    with torch.no_grad():
        torch.onnx.export(
            wrapper,
            (example,),
            path,
            input_names=["image"],
            output_names=["disparity"],
            dynamic_shapes={"image": {0: batch}},
            dynamo=True,
            external_data=False,
        )
    return path


def onnx_session(path: str | os.PathLike, threads: int | None = None):
    """An ``onnxruntime.InferenceSession`` on the CPU for an exported file; ``threads``:
    intra-op threads (default: ONNX Runtime's choice). ``session.run(None, {"image": x})``
    with x (B, 3, H, W) float32 in [0, 1] gives ``[disparity (B, H, W)]``."""
    try:
        import onnxruntime
    except ImportError as err:
        raise ImportError('running ONNX needs onnxruntime: pip install "dalib-edu[onnx]"') from err
    options = onnxruntime.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    return onnxruntime.InferenceSession(
        str(path), options, providers=["CPUExecutionProvider"]
    )


def quantize_int8(model: nn.Module) -> nn.Module:
    """A copy of ``model`` (on the CPU, eval mode) with dynamic int8 linear layers."""
    try:
        from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_
    except ImportError as err:
        raise ImportError('the int8 path needs torchao: pip install "dalib-edu[int8]"') from err
    quantized = copy.deepcopy(model).cpu().eval()
    quantize_(quantized, Int8DynamicActivationInt8WeightConfig())
    return quantized


__all__ = ["onnx_session", "quantize_int8", "to_onnx"]
