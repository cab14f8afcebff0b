"""The DINOv2 ViT encoder of Depth Anything, built from timm's VisionTransformer.

timm's ViT already has DINOv2's parameter names (``cls_token``, ``pos_embed``,
``patch_embed.proj``, ``blocks.i.{norm1, attn.qkv, attn.proj, ls1.gamma, norm2, mlp.fc1,
mlp.fc2, ls2.gamma}``, ``norm``), pre-norm blocks with LayerScale, LayerNorm eps 1e-6 and
fused ``scaled_dot_product_attention``. Two DINOv2 details are added here:

- ``mask_token`` (1, C): the masked-patch embedding of DINOv2's iBOT loss. Depth Anything
  never masks, but the released checkpoints carry it; it is a frozen parameter
  (``requires_grad=False``) so DDP does not see an unused trainable parameter.
- position embeddings resized the way the released DINOv2 hub models do it: the learned
  (1, 1 + M*M, C) table (M = 37 for 518 px) is resampled bicubically, without antialiasing,
  with ``scale_factor = (grid + 0.1) / M`` (the ``interpolate_offset`` kludge), and kept
  unchanged when the token grid is M x M. The resampled table is cached per grid size when
  no gradient flows into it (inference, or a frozen encoder).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from timm.models.vision_transformer import VisionTransformer
from torch import Tensor, nn

INTERPOLATE_OFFSET = 0.1  # released DINOv2 (no registers): interpolate_offset=0.1, antialias=False
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # DINOv2's input statistics, per RGB channel
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalize(images: Tensor) -> Tensor:
    """Images (B, 3, H, W) in [0, 1] -> the encoder's input, ImageNet-normalised per channel
    (same shape, dtype and device). Every model input in dalib passes through here."""
    mean = images.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = images.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (images - mean) / std


def resample_position_table(patch_table: Tensor, grid: tuple[int, int]) -> Tensor:
    """DINOv2's bicubic resize of a square patch position table.

    patch_table (1, M*M, C) -> (1, gh*gw, C) in float32, for grid = (gh, gw) token rows/cols.
    """
    side = math.isqrt(patch_table.shape[1])
    if side * side != patch_table.shape[1]:
        raise ValueError(f"position table of {patch_table.shape[1]} tokens is not a square grid")
    table = rearrange(patch_table.float(), "1 (h w) c -> 1 c h w", h=side)
    scale = ((grid[0] + INTERPOLATE_OFFSET) / side, (grid[1] + INTERPOLATE_OFFSET) / side)
    table = F.interpolate(table, scale_factor=scale, mode="bicubic", antialias=False)
    if tuple(table.shape[-2:]) != tuple(grid):
        raise RuntimeError(f"position resampling gave {tuple(table.shape[-2:])}, wanted {grid}")
    return rearrange(table, "1 c h w -> 1 (h w) c")


class DinoV2Encoder(VisionTransformer):
    """DINOv2-style ViT (patch 14, LayerScale init 1.0) that returns normalised block read-outs.

    Args:
        embed_dim, depth, num_heads: ViT width, number of blocks, attention heads.
        img_size: side in px whose (img_size/patch)^2 grid the learned position table covers
            (518 -> 37 x 37 for the released models).
        patch_size: pixels per patch side.
    """

    def __init__(
        self, embed_dim: int, depth: int, num_heads: int, img_size: int = 518, patch_size: int = 14
    ) -> None:
        super().__init__(
            img_size=img_size,
            patch_size=patch_size,
            embed_dim=embed_dim,
            depth=depth,
            num_heads=num_heads,
            mlp_ratio=4.0,
            qkv_bias=True,
            init_values=1.0,
            num_classes=0,
            global_pool="token",
        )
        self.mask_token = nn.Parameter(torch.zeros(1, embed_dim), requires_grad=False)
        self._pos_cache: dict[tuple, tuple[int, Tensor]] = {}

    @property
    def patch(self) -> int:
        return self.patch_embed.patch_size[0]

    def position_embedding(self, grid: tuple[int, int], dtype: torch.dtype) -> Tensor:
        """(1, 1 + gh*gw, C) position embeddings (class token first) for a gh x gw token grid."""
        side = math.isqrt(self.pos_embed.shape[1] - 1)
        if tuple(grid) == (side, side):
            return self.pos_embed.to(dtype)
        needs_grad = torch.is_grad_enabled() and self.pos_embed.requires_grad
        key = (tuple(grid), dtype, self.pos_embed.device, self.pos_embed.data_ptr())
        cached = self._pos_cache.get(key)
        if not needs_grad and cached is not None and cached[0] == self.pos_embed._version:
            return cached[1]
        if needs_grad or torch.compiler.is_compiling():  # traced (compile, ONNX export): no cache
            return self._resampled(grid, dtype)
        # a normal (not inference-mode) tensor, so the cache also serves later autograd passes
        with torch.inference_mode(False), torch.no_grad():
            table = self._resampled(grid, dtype)
        version = self.pos_embed._version  # drop tables of older weights
        self._pos_cache = {k: v for k, v in self._pos_cache.items() if v[0] == version}
        self._pos_cache[key] = (version, table)
        return table

    def _resampled(self, grid: tuple[int, int], dtype: torch.dtype) -> Tensor:
        patches = resample_position_table(self.pos_embed[:, 1:], grid)
        return torch.cat([self.pos_embed[:, :1].float(), patches], dim=1).to(dtype)

    def tokens(self, x: Tensor, masks: Tensor | None = None) -> Tensor:
        """Images (B, 3, H, W) -> embedded tokens (B, 1 + H/p * W/p, C), class token first.

        ``masks`` (B, H/p * W/p) bool: patches replaced by ``mask_token`` before the position
        embedding is added (DINOv2's iBOT masking; used by masked-image pretraining).
        """
        grid = (x.shape[-2] // self.patch, x.shape[-1] // self.patch)
        patches = rearrange(self.patch_embed.proj(x), "b c h w -> b (h w) c")
        if masks is not None:
            patches = torch.where(masks[..., None], self.mask_token.to(patches.dtype), patches)
        cls = self.cls_token.to(patches.dtype).expand(patches.shape[0], -1, -1)
        return torch.cat([cls, patches], dim=1) + self.position_embedding(grid, patches.dtype)

    def readouts(self, x: Tensor, indices: Sequence[int]) -> list[Tensor]:
        """Outputs of blocks ``indices`` after the final norm, class token dropped.

        x (B, 3, H, W), sides multiples of the patch -> list of (B, C, H/p, W/p) grids.
        Blocks after the last index are not run.
        """
        grid_h = x.shape[-2] // self.patch
        tokens = self.tokens(x)
        wanted = set(indices)
        found: dict[int, Tensor] = {}
        for i, block in enumerate(self.blocks[: max(indices) + 1]):
            tokens = block(tokens)
            if i in wanted:
                found[i] = rearrange(self.norm(tokens)[:, 1:], "b (h w) c -> b c h w", h=grid_h)
        return [found[i] for i in indices]
