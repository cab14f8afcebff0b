"""Depth Anything: a DINOv2 ViT encoder (timm) + a DPT head, with the released layout, and
every way of building one from weights.

``DepthAnything(encoder)`` builds a size of :mod:`dalib.sizes` (vits/vitb/vitl as released,
tiny/micro/mini for a CPU). Read-outs: ``layers="v1"`` takes the last four blocks (Depth
Anything V1; S/B 8..11, L 20..23), ``"v2"`` the spaced blocks of V2 (S/B [2, 5, 8, 11], L [4,
11, 17, 23]; tiny sizes: spaced evenly, ending at the last block); a tuple of four block
indices is also accepted. Each read-out passes through the final norm and drops the class
token (released V1: ``use_clstoken=False``).

Weights: :func:`load_checkpoint` (dalib's safetensors files, :mod:`dalib.checkpoint`),
:func:`load_official` (the released checkpoints, downloaded by :mod:`dalib.hub` and mapped by
:mod:`dalib.official`) and :func:`load_dinov2_weights` (the encoder alone). The sizes, the
released-layout helpers, the checkpoint writer and the inference helpers ``predict``,
``predict_batch`` and ``describe`` (:mod:`dalib.inference`) are re-exported.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from dalib import hub
from dalib.checkpoint import (
    CHECKPOINT_FORMAT,
    checkpoint_metadata,
    read_checkpoint,
    save_checkpoint,
)
from dalib.dpt import DPTHead
from dalib.encoder import DinoV2Encoder, normalize, resample_position_table
from dalib.inference import describe, predict, predict_batch
from dalib.official import (
    UNUSED_OFFICIAL_KEYS,
    export_official_state_dict,
    load_official_checkpoint,
    official_key_shapes,
    read_state_dict,
)
from dalib.sizes import PATCH, SIZES, EncoderSize, ModelConfig, make_config, readout_layers


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
            of a metric head, :mod:`dalib.metric_depth`).
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

    def decode(self, features: list[Tensor]) -> Tensor:
        """The four read-outs of :meth:`forward_features` -> disparity (B, H, W) >= 0.

        The head's output is already patch x the token grid = (H, W), so the released model's
        final bilinear resize + ReLU are identities here and skipped."""
        return self.depth_head(features).squeeze(1)

    def forward(self, x: Tensor) -> Tensor:
        """x (B, 3, H, W), ImageNet-normalised, sides multiples of the patch -> disparity
        (B, H, W) >= 0."""
        return self.decode(self.forward_features(x))


class DepthNet(nn.Module):
    """A DepthAnything fed with [0, 1] images (normalised by :func:`dalib.encoder.normalize`,
    as every model input in dalib is): what the training loop, the evaluations and the
    notebooks call.

    ``forward(images (B, 3, H, W) in [0, 1]) -> (disparity (B, H, W), features)``, where
    ``features`` are the encoder's four read-outs, each (B, C, H/14, W/14). ``heads`` are
    extra trainable decoders on the shared encoder (e.g. the auxiliary segmentation decoder),
    each ``head(last read-out, (H, W)) -> Tensor``; ``forward(images, with_heads=True)`` also
    returns their outputs ``{name: output}``. They run inside the forward so that DDP
    synchronises their gradients like the model's.
    """

    def __init__(self, model: DepthAnything, heads: Mapping[str, nn.Module] | None = None) -> None:
        super().__init__()
        self.model = model
        self.heads = nn.ModuleDict(dict(heads or {}))

    def forward(self, images: Tensor, with_heads: bool = False):
        features = self.model.forward_features(normalize(images))
        disparity = self.model.decode(features)
        if not with_heads:
            return disparity, features
        size = images.shape[-2:]
        return disparity, features, {k: h(features[-1], size) for k, h in self.heads.items()}


# ---------------------------------------------------------------- from weights


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> DepthAnything:
    """Rebuild the ``DepthAnything`` saved by :func:`save_checkpoint`, in eval mode: the config
    in the file's metadata builds it, and its weights load strictly."""
    metadata, state = read_checkpoint(path, CHECKPOINT_FORMAT, map_location)
    model = DepthAnything(config=ModelConfig.from_json(metadata["config"]))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ValueError(f"could not load the weights of {path}: {err}") from err
    return model.to(map_location).eval()


def load_official(encoder: str = "vits", progress: bool = True) -> DepthAnything:
    """The released Depth Anything V1 model of ``encoder`` size (downloaded once), in eval mode."""
    model = DepthAnything(encoder)
    return load_official_checkpoint(model, hub.official_checkpoint_path(encoder, progress)).eval()


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

        file = hub.dinov2_weights_file(name)  # ConnectionError at once when offline and not cached
        vit = timm.create_model(
            name, pretrained=True, num_classes=0, pretrained_cfg_overlay={"file": str(file)}
        )
        state = vit.state_dict()
    else:
        state = read_state_dict(Path(source))
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


__all__ = [
    "PATCH",
    "SIZES",
    "UNUSED_OFFICIAL_KEYS",
    "DepthAnything",
    "DepthNet",
    "EncoderSize",
    "ModelConfig",
    "checkpoint_metadata",
    "describe",
    "export_official_state_dict",
    "load_checkpoint",
    "load_dinov2_weights",
    "load_official",
    "load_official_checkpoint",
    "make_config",
    "official_key_shapes",
    "predict",
    "predict_batch",
    "readout_layers",
    "save_checkpoint",
]
