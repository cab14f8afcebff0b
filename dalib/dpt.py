"""The DPT decoder ("depth head") of Depth Anything, with the released module layout.

The head turns four ViT read-outs, each a token grid (B, C, h, w) with h, w = H/14, W/14,
into one disparity map (B, 1, 14h, 14w):

1. ``projects[i]`` (1x1 conv, C -> out_channels[i]) then ``resize_layers[i]`` make a pyramid
   at 4x, 2x, 1x and 1/2x the token grid (transposed convs k4 s4 and k2 s2, identity, conv
   k3 s2 p1).
2. ``scratch.layer{1..4}_rn`` (3x3 conv, no bias) bring every level to ``features`` channels.
3. ``scratch.refinenet4 .. refinenet1`` fuse coarse to fine: each adds a residual-conv-refined
   skip (not refinenet4, the coarsest), refines again, upsamples bilinearly (align_corners=True)
   to the next level's size (x2 for refinenet1) and mixes with a 1x1 ``out_conv``.
4. ``scratch.output_conv1`` (3x3, features -> features/2), bilinear upsampling to 14x the
   token grid, ``scratch.output_conv2`` (3x3 -> 32, ReLU, 1x1 -> 1, ReLU).

Parameter names match ``depth_head.*`` of the released ``depth_anything_vit{s,b,l}14.pth``,
except that the released files also carry ``scratch.refinenet4.resConfUnit1.*``, a block
the forward pass never uses; it is not built here (see ``dalib.official.UNUSED_OFFICIAL_KEYS``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

HEAD_HIDDEN = 32  # channels of the last 3x3 conv before the 1-channel output (released value)


class ResidualConvUnit(nn.Module):
    """x + conv2(relu(conv1(relu(x)))), 3x3 convs with bias; shape-preserving (B, F, h, w)."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(features, features, kernel_size=3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


class FeatureFusionBlock(nn.Module):
    """One refinenet: (coarse [+ RCU(skip)]) -> RCU -> bilinear resize -> 1x1 conv.

    ``with_skip=False`` builds the coarsest block, which has no skip input and so no
    ``resConfUnit1``.
    """

    def __init__(self, features: int, with_skip: bool = True) -> None:
        super().__init__()
        self.out_conv = nn.Conv2d(features, features, kernel_size=1)
        self.resConfUnit1 = ResidualConvUnit(features) if with_skip else None
        self.resConfUnit2 = ResidualConvUnit(features)

    def forward(
        self, x: Tensor, skip: Tensor | None = None, size: Sequence[int] | None = None
    ) -> Tensor:
        """x, skip (B, F, h, w) -> (B, F, *size), or (B, F, 2h, 2w) when size is None."""
        if skip is not None:
            if self.resConfUnit1 is None:
                raise ValueError(
                    "this fusion block was built without a skip input (with_skip=False)"
                )
            x = x + self.resConfUnit1(skip)
        x = self.resConfUnit2(x)
        if size is None:
            x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=True)
        else:
            x = F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=True)
        return self.out_conv(x)


class DPTHead(nn.Module):
    """DPT decoder: four (B, in_dim, h, w) read-outs -> (B, 1, patch*h, patch*w) disparity >= 0.

    ``output="linear"`` drops the final ReLU (a metric head's logit, see :mod:`dalib.metric_depth`).
    """

    def __init__(
        self,
        in_dim: int,
        features: int,
        out_channels: Sequence[int],
        patch_size: int = 14,
        output: str = "relu",
    ) -> None:
        super().__init__()
        if len(out_channels) != 4:
            raise ValueError(f"out_channels must have 4 entries, got {list(out_channels)}")
        if output not in ("relu", "linear"):
            raise ValueError(f"output must be 'relu' or 'linear', got {output!r}")
        c1, c2, _, c4 = out_channels
        self.patch_size = patch_size
        self.projects = nn.ModuleList(nn.Conv2d(in_dim, c, kernel_size=1) for c in out_channels)
        self.resize_layers = nn.ModuleList(
            [
                nn.ConvTranspose2d(c1, c1, kernel_size=4, stride=4),
                nn.ConvTranspose2d(c2, c2, kernel_size=2, stride=2),
                nn.Identity(),
                nn.Conv2d(c4, c4, kernel_size=3, stride=2, padding=1),
            ]
        )
        scratch = nn.Module()
        for level, channels in enumerate(out_channels, start=1):
            setattr(
                scratch, f"layer{level}_rn", nn.Conv2d(channels, features, 3, padding=1, bias=False)
            )
        for level in range(1, 5):
            setattr(
                scratch, f"refinenet{level}", FeatureFusionBlock(features, with_skip=level != 4)
            )
        scratch.output_conv1 = nn.Conv2d(features, features // 2, kernel_size=3, padding=1)
        scratch.output_conv2 = nn.Sequential(
            nn.Conv2d(features // 2, HEAD_HIDDEN, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(HEAD_HIDDEN, 1, kernel_size=1),
            nn.ReLU() if output == "relu" else nn.Identity(),
        )
        self.scratch = scratch

    def pyramid(self, features: Sequence[Tensor]) -> list[Tensor]:
        """Read-outs (B, in_dim, h, w) x4 -> levels (B, F, s*h, s*w) for s = 4, 2, 1, 1/2 (ceil)."""
        s = self.scratch
        rn_layers = (s.layer1_rn, s.layer2_rn, s.layer3_rn, s.layer4_rn)
        return [
            rn(resize(project(f)))
            for f, project, resize, rn in zip(
                features, self.projects, self.resize_layers, rn_layers, strict=True
            )
        ]

    def forward(self, features: Sequence[Tensor]) -> Tensor:
        if len(features) != 4:
            raise ValueError(f"DPTHead takes 4 feature maps, got {len(features)}")
        grid_h, grid_w = features[0].shape[-2:]
        l1, l2, l3, l4 = self.pyramid(features)
        s = self.scratch
        path = s.refinenet4(l4, size=l3.shape[-2:])
        path = s.refinenet3(path, l3, size=l2.shape[-2:])
        path = s.refinenet2(path, l2, size=l1.shape[-2:])
        path = s.refinenet1(path, l1)  # (B, F, 8h, 8w)
        out = s.output_conv1(path)
        out = F.interpolate(
            out,
            size=(grid_h * self.patch_size, grid_w * self.patch_size),
            mode="bilinear",
            align_corners=True,
        )
        return s.output_conv2(out)


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def head_parameter_counts(head: DPTHead) -> dict[str, int]:
    """Parameters per part of the head: projects, resize, layer_rn, refinenets, output."""
    s = head.scratch
    return {
        "projects": _count(head.projects),
        "resize_layers": _count(head.resize_layers),
        "layer_rn": sum(_count(getattr(s, f"layer{i}_rn")) for i in range(1, 5)),
        "refinenets": sum(_count(getattr(s, f"refinenet{i}")) for i in range(1, 5)),
        "output_convs": _count(s.output_conv1) + _count(s.output_conv2),
    }


__all__ = ["DPTHead", "FeatureFusionBlock", "ResidualConvUnit", "head_parameter_counts"]
