"""Inference with a DepthAnything model: any uint8 image in, disparity at its size out.

Preprocessing follows the released ``run.py``: keep the aspect ratio, scale so that both
sides are >= ``input_size`` ("lower bound"), round each side to a multiple of 14 (up if
rounding would go below ``input_size``), bicubic resize of the [0, 1] image, ImageNet
mean/std. The (h, w) prediction is resized back to the image size bilinearly
(align_corners=False). Also ``describe``: the shapes through the network, for teaching.

The functions duck-type the model (``model.config``, ``model.pretrained``,
``model.depth_head``) so this module does not import ``dalib.model``.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dalib.config import amp_dtype
from dalib.dpt import head_parameter_counts
from dalib.encoder import normalize

_FUSION_STAGES = (
    "refinenet4",
    "refinenet3",
    "refinenet2",
    "refinenet1",
    "output_conv1",
    "output_conv2",
)
MAX_ASPECT = 8  # refuse images whose long side is more than 8x the short side


def inference_size(height: int, width: int, input_size: int, multiple: int = 14) -> tuple[int, int]:
    """(h, w) the network sees for an image of (height, width): lower-bound resize, multiples."""
    if height < 1 or width < 1:
        raise ValueError(f"image must be non-empty, got {height}x{width}")
    scale = max(input_size / height, input_size / width)
    if max(height, width) * scale > MAX_ASPECT * input_size:
        raise ValueError(
            f"image of {height}x{width} is too elongated: resizing its short side to "
            f"{input_size} px would make the long side {max(height, width) * scale:.0f} px "
            f"(more than {MAX_ASPECT} x {input_size}); crop it first"
        )

    def constrain(side: float) -> int:
        rounded = int(np.round(side / multiple)) * multiple
        return rounded if rounded >= input_size else int(np.ceil(side / multiple)) * multiple

    return constrain(scale * height), constrain(scale * width)


def _image_tensor(image: np.ndarray | Tensor, index: int) -> Tensor:
    """uint8 (H, W, 3) numpy/torch image -> float (3, H, W) in [0, 1]."""
    array = torch.as_tensor(image)
    if array.dtype != torch.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(
            f"images[{index}] must be a uint8 (H, W, 3) RGB array, got "
            f"{array.dtype} {tuple(array.shape)}"
        )
    return array.permute(2, 0, 1).float().div_(255.0)


def _autocast(device: torch.device) -> contextlib.AbstractContextManager:
    dtype = amp_dtype("auto", device)
    return torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext()


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def predict_batch(
    model: nn.Module,
    images: Sequence[np.ndarray | Tensor],
    input_size: int | None = None,
    batch_size: int = 8,
) -> list[np.ndarray]:
    """Disparity (H_i, W_i) float32 for each uint8 (H_i, W_i, 3) image, at its own size.

    Images whose resized shapes agree run together in batches of ``batch_size``. Runs under
    ``torch.inference_mode`` on the model's device (CUDA: bf16/fp16 autocast), in eval mode.
    ``input_size`` defaults to ``model.config.input_size`` (518 for the released sizes).
    """
    side = int(input_size or model.config.input_size)
    patch = model.config.patch_size
    if side < patch:
        raise ValueError(f"input_size must be >= {patch}, got {side}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    device = model.pretrained.pos_embed.device
    tensors = [_image_tensor(image, i) for i, image in enumerate(images)]
    groups: dict[tuple[int, int], list[int]] = defaultdict(list)
    for i, t in enumerate(tensors):
        groups[inference_size(t.shape[1], t.shape[2], side, patch)].append(i)
    results: list[np.ndarray | None] = [None] * len(tensors)
    with _eval_mode(model), torch.inference_mode():
        for shape, indices in groups.items():
            for start in range(0, len(indices), batch_size):
                chunk = indices[start : start + batch_size]
                batch = torch.cat(
                    [
                        F.interpolate(
                            tensors[i].to(device)[None],
                            size=shape,
                            mode="bicubic",
                            align_corners=False,
                        )
                        for i in chunk
                    ]
                )
                with _autocast(device):
                    disparity = model(normalize(batch))
                for i, disp in zip(chunk, disparity.float(), strict=True):
                    full = F.interpolate(
                        disp[None, None],
                        size=tuple(tensors[i].shape[1:]),
                        mode="bilinear",
                        align_corners=False,
                    )
                    results[i] = full[0, 0].cpu().numpy()
    return results  # type: ignore[return-value]


def predict(
    model: nn.Module, image: np.ndarray | Tensor, input_size: int | None = None
) -> np.ndarray:
    """Disparity (H, W) float32 (relative, larger = nearer) for one uint8 (H, W, 3) image."""
    return predict_batch(model, [image], input_size)[0]


def _params(module: nn.Module | nn.Parameter) -> int:
    if isinstance(module, nn.Parameter):
        return module.numel()
    return sum(p.numel() for p in module.parameters())


def describe(model: nn.Module, input_size: int | None = None) -> str:
    """A table of output shapes (batch 1, input_size^2) and parameter counts per stage."""
    side = int(input_size or model.config.input_size)
    encoder, head, layers = model.pretrained, model.depth_head, model.config.layers
    watched: dict[str, nn.Module] = {}
    for k in range(4):
        watched[f"projects[{k}]"] = head.projects[k]
        watched[f"resize_layers[{k}]"] = head.resize_layers[k]
        watched[f"scratch.layer{k + 1}_rn"] = getattr(head.scratch, f"layer{k + 1}_rn")
    for name in _FUSION_STAGES:
        watched[f"scratch.{name}"] = getattr(head.scratch, name)
    shapes: dict[str, tuple[int, ...]] = {}
    hooks = [
        m.register_forward_hook(lambda _m, _i, out, n=n: shapes.__setitem__(n, tuple(out.shape)))
        for n, m in watched.items()
    ]
    x = torch.zeros(1, 3, side, side, device=encoder.pos_embed.device)
    try:
        with _eval_mode(model), torch.inference_mode():
            tokens = encoder.tokens(x)
            readouts = encoder.readouts(x, layers)
            out = model(x)
    finally:
        for h in hooks:
            h.remove()
    rows = [
        ("input image", (1, 3, side, side), 0),
        (
            "patch embed + cls + pos",
            tuple(tokens.shape),
            _params(encoder.patch_embed) + _params(encoder.cls_token) + _params(encoder.pos_embed),
        ),
    ]
    previous = -1
    for k, index in enumerate(layers):
        blocks = encoder.blocks[previous + 1 : index + 1]
        rows.append(
            (
                f"blocks {previous + 1}..{index} -> norm, read-out {k}",
                tuple(readouts[k].shape),
                _params(blocks) + (_params(encoder.norm) if k == 0 else 0),
            )
        )
        previous = index
    for k in range(4):
        for name in (f"projects[{k}]", f"resize_layers[{k}]", f"scratch.layer{k + 1}_rn"):
            rows.append((f"head.{name}", shapes[name], _params(watched[name])))
    for name in _FUSION_STAGES:
        rows.append(
            (f"head.scratch.{name}", shapes[f"scratch.{name}"], _params(watched[f"scratch.{name}"]))
        )
    rows.append(("disparity", tuple(out.shape), 0))
    encoder_params = sum(p.numel() for p in encoder.parameters() if p.requires_grad)
    parts = ", ".join(f"{k} {v:,}" for k, v in head_parameter_counts(head).items())
    width = max(len(r[0]) for r in rows)
    lines = [f"{'stage':<{width}}  {'output shape':<22} {'params':>12}"]
    lines += [f"{name:<{width}}  {shape!s:<22} {count:>12,}" for name, shape, count in rows]
    lines.append(
        f"encoder {encoder_params:,} (trainable) | head {_params(head):,} ({parts}) | "
        f"total {encoder_params + _params(head):,}"
    )
    return "\n".join(lines)


__all__ = [
    "describe",
    "inference_size",
    "predict",
    "predict_batch",
]
