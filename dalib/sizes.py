"""The model sizes of Depth Anything and dalib, and the config that rebuilds a model.

``dalib.model.DepthAnything(encoder)`` builds one of these sizes. "trainable" counts dalib's parameters;
"released" adds the frozen ``mask_token`` and the unused ``refinenet4.resConfUnit1`` that the
official checkpoints carry (vits/vitb/vitl match the paper's 24.8M / 97.5M / 335.3M):

    encoder  ViT dim x blocks, heads  DPT features, out_channels  img_size  trainable    released
    vits     384 x 12, 6              64,  [48, 96, 192, 384]      518     24,710,849   24,785,089
    vitb     768 x 12, 12             128, [96, 192, 384, 768]     518     97,174,849   97,470,785
    vitl     1024 x 24, 16            256, [256, 512, 1024, 1024]  518    334,134,465  335,315,649
    tiny     192 x 6, 3               32,  [24, 48, 96, 192]       98       3,461,377   -
    micro    128 x 4, 4               16,  [16, 32, 64, 128]       98       1,134,729   -
    mini     256 x 8, 4               48,  [32, 64, 128, 256]      98       7,757,945   -

``tiny``, ``micro`` and ``mini`` use patch 14 too and train on a 2-core CPU in minutes at
56-98 px (``tests/test_model.py`` checks these counts); ``tiny_p7`` and ``micro_p7`` are the
same widths with 7 px patches (four times the tokens of an image), candidates of the
model-size study (``benchmarks/study_model.py``).

Read-outs: ``layers="v1"`` takes the last four blocks (Depth Anything V1; S/B 8..11, L 20..23),
``"v2"`` the spaced blocks of V2 (S/B [2, 5, 8, 11], L [4, 11, 17, 23]; tiny sizes: spaced
evenly, ending at the last block); a tuple of four block indices is also accepted. Each
read-out passes through the final norm and drops the class token (released V1:
``use_clstoken=False``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class EncoderSize:
    embed_dim: int
    depth: int
    num_heads: int
    features: int
    out_channels: tuple[int, int, int, int]
    img_size: int
    v2_layers: tuple[int, int, int, int] | None = None  # None: spaced evenly
    timm_dinov2: str | None = None  # timm name of the DINOv2 weights, if released
    patch: int = 14  # pixels per patch side (DINOv2: 14)


SIZES: dict[str, EncoderSize] = {
    "vits": EncoderSize(
        384, 12, 6, 64, (48, 96, 192, 384), 518, (2, 5, 8, 11), "vit_small_patch14_dinov2.lvd142m"
    ),
    "vitb": EncoderSize(
        768, 12, 12, 128, (96, 192, 384, 768), 518, (2, 5, 8, 11), "vit_base_patch14_dinov2.lvd142m"
    ),
    "vitl": EncoderSize(
        1024,
        24,
        16,
        256,
        (256, 512, 1024, 1024),
        518,
        (4, 11, 17, 23),
        "vit_large_patch14_dinov2.lvd142m",
    ),
    "tiny": EncoderSize(192, 6, 3, 32, (24, 48, 96, 192), 98),
    "micro": EncoderSize(128, 4, 4, 16, (16, 32, 64, 128), 98),
    # patch 7: four times the tokens of the same image (candidates of the model-size study)
    "tiny_p7": EncoderSize(192, 6, 3, 32, (24, 48, 96, 192), 98, patch=7),
    "micro_p7": EncoderSize(128, 4, 4, 16, (16, 32, 64, 128), 98, patch=7),
    "mini": EncoderSize(256, 8, 4, 48, (32, 64, 128, 256), 98),
}
PATCH = 14  # the released models' patch; EncoderSize.patch of each size


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a DepthAnything (stored in checkpoints as JSON)."""

    encoder: str
    embed_dim: int
    depth: int
    num_heads: int
    features: int
    out_channels: tuple[int, int, int, int]
    layers: tuple[int, int, int, int]  # block indices read by the head
    img_size: int  # side (px) whose patch grid the learned position table covers
    input_size: int  # default inference side (px) for dalib.inference.predict
    patch_size: int = PATCH
    output: str = "relu"  # the head's last activation: "relu" (disparity), "linear" (metric logit)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelConfig:
        fields = json.loads(text)
        for name in ("out_channels", "layers"):
            fields[name] = tuple(fields[name])
        return cls(**fields)


def readout_layers(size: EncoderSize, layers: str | Sequence[int]) -> tuple[int, int, int, int]:
    """Block indices for ``layers`` = "v1" (last four), "v2" (spaced) or four explicit indices."""
    if layers == "v1":
        return tuple(range(size.depth - 4, size.depth))
    if layers == "v2":
        if size.v2_layers is not None:
            return size.v2_layers
        return tuple(math.ceil((k + 1) * size.depth / 4) - 1 for k in range(4))
    if isinstance(layers, str) or len(layers) != 4:
        raise ValueError(f"layers must be 'v1', 'v2' or four block indices, got {layers!r}")
    indices = tuple(int(i) for i in layers)
    if not all(0 <= i < size.depth for i in indices) or list(indices) != sorted(set(indices)):
        raise ValueError(f"layers {indices} must be increasing block indices in [0, {size.depth})")
    return indices


def make_config(
    encoder: str = "vits",
    layers: str | Sequence[int] = "v1",
    features: int | None = None,
    out_channels: Sequence[int] | None = None,
    img_size: int | None = None,
    input_size: int | None = None,
    output: str = "relu",
) -> ModelConfig:
    """The ModelConfig of a named size, with optional overrides (see the module table)."""
    if encoder not in SIZES:
        raise ValueError(f"unknown encoder {encoder!r}; choose one of {sorted(SIZES)}")
    size = SIZES[encoder]
    img_size = size.img_size if img_size is None else int(img_size)
    input_size = img_size if input_size is None else int(input_size)
    for name, side in (("img_size", img_size), ("input_size", input_size)):
        if side < size.patch or side % size.patch:
            raise ValueError(
                f"{name} must be a positive multiple of {size.patch} ({encoder!r}), got {side}"
            )
    channels = tuple(out_channels) if out_channels is not None else size.out_channels
    if len(channels) != 4:
        raise ValueError(f"out_channels must have 4 entries, got {channels}")
    return ModelConfig(
        encoder=encoder,
        embed_dim=size.embed_dim,
        depth=size.depth,
        num_heads=size.num_heads,
        features=features or size.features,
        out_channels=channels,
        layers=readout_layers(size, layers),
        img_size=img_size,
        input_size=input_size,
        patch_size=size.patch,
        output=output,
    )


__all__ = ["PATCH", "SIZES", "EncoderSize", "ModelConfig", "make_config", "readout_layers"]
