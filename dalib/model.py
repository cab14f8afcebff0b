"""Depth Anything: a DINOv2 ViT encoder (timm) + a DPT head, with the released layout.

``DepthAnything(encoder)`` builds one of these sizes. "trainable" counts dalib's parameters;
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

Also here: the released-checkpoint loader and exporter. dalib's own safetensors checkpoints
(``dalib.checkpoint``) and the inference helpers ``predict``, ``predict_batch``, ``describe``
(``dalib.inference``) are re-exported.
"""

from __future__ import annotations

import json
import math
import os
import pickle
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file as load_safetensors
from torch import Tensor, nn

from dalib.checkpoint import checkpoint_metadata, load_checkpoint, save_checkpoint
from dalib.dpt import DPTHead
from dalib.encoder import DinoV2Encoder, resample_position_table
from dalib.inference import describe, predict, predict_batch


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


class DepthAnything(nn.Module):
    """DINOv2 encoder (``pretrained``) + DPT head (``depth_head``): images -> disparity.

    Args:
        encoder: "vits", "vitb", "vitl", "tiny" or "micro".
        layers: "v1", "v2" or four block indices (see the module docstring).
        features, out_channels: DPT widths; default to the size's released values.
        pretrained_encoder: None (random init), "dinov2" (timm's DINOv2 weights for
            vits/vitb/vitl; needs internet or a filled huggingface cache) or the path of a
            DINOv2 ViT state dict (``dinov2_vit*14_pretrain.pth`` or timm layout).
        img_size: side (px) of the position-embedding grid (518 for the released sizes).
        input_size: default inference side for ``predict`` (default img_size).
        output: "relu" (the released disparity head) or "linear" (no final ReLU: the logit
            of a metric head, :mod:`dalib.metric`).
        config: build from a ModelConfig instead (other size arguments are then ignored).
    """

    def __init__(
        self,
        encoder: str = "vits",
        layers: str | Sequence[int] = "v1",
        features: int | None = None,
        out_channels: Sequence[int] | None = None,
        pretrained_encoder: str | os.PathLike | None = None,
        img_size: int | None = None,
        input_size: int | None = None,
        config: ModelConfig | None = None,
        output: str = "relu",
    ) -> None:
        super().__init__()
        self.config = config or make_config(
            encoder, layers, features, out_channels, img_size, input_size, output
        )
        c = self.config
        self.pretrained = DinoV2Encoder(c.embed_dim, c.depth, c.num_heads, c.img_size, c.patch_size)
        self.depth_head = DPTHead(c.embed_dim, c.features, c.out_channels, c.patch_size, c.output)
        if pretrained_encoder is not None:
            load_dinov2_weights(self, pretrained_encoder)

    def check_input(self, x: Tensor) -> None:
        """Raise ValueError unless x is (B, 3, H, W) with H, W positive multiples of the patch."""
        p = self.config.patch_size
        if (
            x.ndim != 4
            or x.shape[1] != 3
            or x.shape[-1] % p
            or x.shape[-2] % p
            or min(x.shape[-2:]) < p
        ):
            raise ValueError(
                f"x must be (B, 3, H, W) with H and W positive multiples of {p}, got "
                f"{tuple(x.shape)}; resize first (dalib.model.predict does this)"
            )

    def forward_features(self, x: Tensor) -> list[Tensor]:
        """x (B, 3, H, W) normalised -> the four read-outs, each (B, embed_dim, H/p, W/p) for
        the patch p (14 for the released sizes)."""
        self.check_input(x)
        return self.pretrained.readouts(x, self.config.layers)

    def forward(self, x: Tensor) -> Tensor:
        """x (B, 3, H, W), ImageNet-normalised, sides multiples of the patch -> disparity
        (B, H, W) >= 0.

        The head's output is already patch x the token grid = (H, W), so the released model's final
        bilinear resize + ReLU are identities here and skipped.
        """
        return self.depth_head(self.forward_features(x)).squeeze(1)


# ---------------------------------------------------------------- DINOv2 encoder weights


def load_dinov2_weights(model: DepthAnything, source: str | os.PathLike) -> None:
    """Load DINOv2 weights into ``model.pretrained`` from timm ("dinov2") or a local file."""
    if str(source) == "dinov2":
        name = SIZES[model.config.encoder].timm_dinov2
        if name is None:
            raise ValueError(
                f"no released DINOv2 weights for encoder {model.config.encoder!r} "
                f"(only {[k for k, s in SIZES.items() if s.timm_dinov2]})"
            )
        import timm

        from dalib.hub import dinov2_weights_file

        file = dinov2_weights_file(name)  # ConnectionError at once when offline and not cached
        vit = timm.create_model(
            name, pretrained=True, num_classes=0, pretrained_cfg_overlay={"file": str(file)}
        )
        state = vit.state_dict()
    else:
        state = _torch_load(Path(source))
    grid = model.pretrained.pos_embed.shape[1] - 1
    pos = state.get("pos_embed")
    if pos is not None and pos.shape[1] - 1 != grid:  # table for another img_size: resample it
        side = math.isqrt(grid)
        state = {
            **state,
            "pos_embed": torch.cat(
                [pos[:, :1], resample_position_table(pos[:, 1:], (side, side))], 1
            ),
        }
    try:
        missing, unexpected = model.pretrained.load_state_dict(state, strict=False)
    except RuntimeError as err:  # shape mismatches
        raise ValueError(
            f"DINOv2 weights {source!s} do not fit {model.config.encoder!r}: {err}"
        ) from err
    missing = [k for k in missing if k != "mask_token"]
    if missing or unexpected:
        raise ValueError(
            f"DINOv2 weights {source!s} do not fit encoder {model.config.encoder!r}: "
            f"missing {missing[:8]}, unexpected {unexpected[:8]}"
        )


# ---------------------------------------------------------------- released checkpoints

UNUSED_OFFICIAL_KEYS = tuple(
    f"depth_head.scratch.refinenet4.resConfUnit1.{conv}.{p}"
    for conv in ("conv1", "conv2")
    for p in ("weight", "bias")
)


def _torch_load(path: Path) -> dict[str, Tensor]:
    """A flat state dict from a ``.pth`` (``weights_only``) or ``.safetensors`` file, on CPU."""
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file {path} does not exist")
    try:
        if path.suffix == ".safetensors":
            state = load_safetensors(path, device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(
            f"could not read {path}: refused, it holds pickled objects other than tensors, "
            f"which weights_only=True does not load (they could run code) [{first}]"
        ) from err
    except Exception as err:
        raise ValueError(f"could not read {path} as a PyTorch state dict: {err}") from err
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(f"{path} does not hold a flat state dict of tensors")
    return dict(state)


def official_key_shapes(model: DepthAnything) -> dict[str, tuple[int, ...]]:
    """Key -> shape of the released ``depth_anything_vit*14.pth`` layout for this model."""
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    f = model.config.features
    for key in UNUSED_OFFICIAL_KEYS:
        shapes[key] = (f, f, 3, 3) if key.endswith("weight") else (f,)
    return shapes


def _guess_encoder(state: Mapping[str, Tensor]) -> str | None:
    pos = state.get("pretrained.pos_embed")
    if pos is None or pos.ndim != 3:
        return None
    depth = len({k.split(".")[2] for k in state if k.startswith("pretrained.blocks.")})
    return next(
        (n for n, s in SIZES.items() if (s.embed_dim, s.depth) == (pos.shape[-1], depth)), None
    )


def load_official_checkpoint(
    model: DepthAnything, path_or_state_dict: str | os.PathLike | Mapping[str, Tensor]
) -> DepthAnything:
    """Load a released ``depth_anything_vit{s,b,l}14.pth`` (or its state dict) strictly.

    Every key and shape must match (``pretrained.*``, ``depth_head.*``); the released files'
    ``depth_head.scratch.refinenet4.resConfUnit1.*`` are shape-checked and dropped (the
    forward pass never uses them). Raises ValueError naming missing/unexpected keys and
    shape mismatches, and the size the file looks like. Returns ``model``.
    """
    if isinstance(path_or_state_dict, Mapping):
        state, source = dict(path_or_state_dict), "state dict"
    else:
        state, source = _torch_load(Path(path_or_state_dict)), str(path_or_state_dict)
    expected = official_key_shapes(model)
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [
        f"{k}: file {tuple(state[k].shape)} vs model {expected[k]}"
        for k in expected
        if k in state and tuple(state[k].shape) != expected[k]
    ]
    if missing or unexpected or wrong:
        problems = [
            f"{label} ({len(items)}): {items[:6]}{' ...' if len(items) > 6 else ''}"
            for label, items in (
                ("missing keys", missing),
                ("unexpected keys", unexpected),
                ("shape mismatches", wrong),
            )
            if items
        ]
        guess = _guess_encoder(state)
        hint = (
            f"; this looks like a {guess} checkpoint, model is {model.config.encoder}"
            if guess and guess != model.config.encoder
            else ""
        )
        raise ValueError(
            f"{source} does not match DepthAnything({model.config.encoder!r}): "
            + "; ".join(problems)
            + hint
        )
    model.load_state_dict(
        {k: v for k, v in state.items() if k not in UNUSED_OFFICIAL_KEYS}, strict=True
    )
    return model


def export_official_state_dict(model: DepthAnything) -> dict[str, Tensor]:
    """The model's weights in the released layout (loadable by the official ``DepthAnything``).

    The never-used ``refinenet4.resConfUnit1.*`` tensors are written as zeros (a zero
    residual unit; the official forward does not call it either). Tensors are contiguous CPU
    copies.
    """
    state = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}
    shapes = official_key_shapes(model)
    dtype = model.pretrained.pos_embed.dtype
    state.update({k: torch.zeros(shapes[k], dtype=dtype) for k in UNUSED_OFFICIAL_KEYS})
    return state


__all__ = [
    "SIZES",
    "UNUSED_OFFICIAL_KEYS",
    "DepthAnything",
    "ModelConfig",
    "checkpoint_metadata",
    "describe",
    "export_official_state_dict",
    "load_checkpoint",
    "load_dinov2_weights",
    "load_official_checkpoint",
    "make_config",
    "official_key_shapes",
    "predict",
    "predict_batch",
    "readout_layers",
    "save_checkpoint",
]
