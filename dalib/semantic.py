"""Semantic-assisted perception: feature alignment with a frozen encoder (paper Sec. 3.3).

The student's encoder features f are pulled towards a *frozen* semantic encoder's features
f' of the same images, without a projector: ``L_feat = mean(1 - cos(f_i, f'_i))`` over the
token locations whose cosine is at most the margin α (0.85), so that parts of one object may
keep different depths (:func:`dalib.losses.feature_alignment_loss`). The paper's frozen
encoder is DINOv2; here there are two:

- ``"dinov2"`` (online, Colab): timm's DINOv2 weights of the student's size (vits/vitb/vitl).
- the **synthetic-semantics ViT** (offline, this machine, CI, ``make run``):
  :func:`train_semantic_encoder` trains a ViT of the student's width from scratch to segment
  the synthetic world's classes (:data:`dalib.synth.SEMANTIC_CLASSES`) on images of the
  labeled and unlabeled domains, then freezes it (:mod:`dalib.standin`: the same stand-in
  also initialises the teacher's and the student's encoders). Its features are semantic by construction
  and measured (notebook 06: mIoU of its linear head on the held-out domains); they know
  nothing of depth. It stands in for DINOv2, which cannot be downloaded here.

Which student features: the last block's read-out (after the final norm), the encoder's
output, which is what DINOv2's features are and the deepest, most semantic level of the DPT
head. The frozen encoder sees exactly the images the student sees (perturbed / mixed), so
the two token grids describe the same pixels; if its grid differs (another patch size or
input size), its features are resampled bilinearly to the student's grid
(:func:`match_grid`).

The paper's negative result is :class:`AuxSegmentation`: a second decoder on the shared
encoder learns the frozen segmenter's *discrete* masks by cross-entropy.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import Tensor

from dalib import losses
from dalib.config import Profile
from dalib.model import DepthAnything
from dalib.objectives import PLACEMENTS, StepContext
from dalib.segmentation import SegmentationHead, Segmenter, load_segmenter
from dalib.standin import (
    PRETRAINERS,
    freeze,
    semantic_encoder_path,
    semantic_training_data,
    train_semantic_encoder,
)


def match_grid(features: Tensor, grid: tuple[int, int]) -> Tensor:
    """(B, C, h, w) -> (B, C, *grid): unchanged if equal, else bilinear resampling."""
    if tuple(features.shape[-2:]) == tuple(grid):
        return features
    return F.interpolate(features, size=tuple(grid), mode="bilinear", align_corners=False)


# ---------------------------------------------------------------- the frozen encoder


def frozen_encoder(
    source: str | os.PathLike,
    encoder: str | None = None,
    profile: Profile | str | None = None,
    root: str | os.PathLike | None = None,
) -> Segmenter:
    """The frozen semantic encoder named by ``source``.

    ``"dinov2"``: timm's DINOv2 of size ``encoder`` (needs internet or a filled cache);
    ``"synthetic"`` or ``"mim"``: that offline stand-in of ``profile`` under ``root``
    (:data:`dalib.standin.PRETRAINERS`; trained if not cached); else the path of a saved
    :class:`dalib.segmentation.Segmenter`.
    """
    if str(source) == "dinov2":
        if encoder is None:
            raise ValueError("frozen_encoder('dinov2') needs encoder='vits'|'vitb'|'vitl'")
        return freeze(Segmenter(DepthAnything(encoder, pretrained_encoder="dinov2").pretrained, 0))
    if str(source) in PRETRAINERS:
        return PRETRAINERS[str(source)](profile, root=root)
    return freeze(load_segmenter(source))


# ---------------------------------------------------------------- the two student options


class FeatureAlignment:
    """L_feat as an extra student loss (:func:`dalib.train.train_student` ``extra_losses``).

    Args:
        frozen: the frozen semantic encoder (``features(images) -> (B, C, h, w)``) with the
            student's width C (no projector).
        margin: α; token locations with cos > α are left out (1.0 keeps all).
        on: "unlabeled" (paper default), "labeled" or "both": whose images are aligned.
    """

    __name__ = "loss_feat"

    def __init__(self, frozen: Segmenter, margin: float = 0.85, on: str = "unlabeled") -> None:
        if on not in PLACEMENTS:
            raise ValueError(f"on must be one of {PLACEMENTS}, got {on!r}")
        if not 0.0 < margin <= 1.0:
            raise ValueError(f"margin must be in (0, 1], got {margin}")
        self.frozen, self.margin, self.on = freeze(frozen), margin, on

    def __call__(self, context: StepContext) -> Tensor:
        images, features = context.view(self.on)
        student = features[-1]  # (B, C, h, w): the last block
        if student.shape[1] != self.frozen.embed_dim:
            raise ValueError(
                f"student width {student.shape[1]} != frozen encoder width "
                f"{self.frozen.embed_dim}; feature alignment has no projector"
            )
        self.frozen.to(images.device)
        with torch.no_grad():
            target = match_grid(self.frozen.features(images.float()), student.shape[-2:])
        return losses.feature_alignment_loss(student, target.to(student.dtype), self.margin)


class AuxSegmentation:
    """The negative result: a segmentation decoder on the shared encoder, discrete targets.

    ``head`` (a :class:`dalib.segmentation.SegmentationHead` of ``embed_dim`` -> classes) is
    trained with the student; its targets are the frozen segmenter's arg-max class masks of
    the images the student sees (pseudo masks, as the paper's came from other models).
    Cross-entropy over every pixel of the chosen images. The head's initial weights come from
    ``seed`` (the global RNG is left as it was), so a notebook and the CLI train the same run.
    """

    __name__ = "loss_seg"

    def __init__(
        self, segmenter: Segmenter, embed_dim: int, on: str = "unlabeled", seed: int = 0
    ) -> None:
        if segmenter.head is None:
            raise ValueError("AuxSegmentation needs a segmenter with a head (its masks)")
        if on not in PLACEMENTS:
            raise ValueError(f"on must be one of {PLACEMENTS}, got {on!r}")
        self.segmenter, self.on = freeze(segmenter), on
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.head = SegmentationHead(embed_dim, segmenter.config.num_classes)

    def __call__(self, context: StepContext) -> Tensor:
        if context.head_outputs is None or self.__name__ not in context.head_outputs:
            raise ValueError("the aux head's output is missing: pass this loss to train_student")
        logits = context.select(context.head_outputs[self.__name__], self.on)
        images, _ = context.view(self.on)
        self.segmenter.to(images.device)
        with torch.no_grad():
            masks = self.segmenter(images.float()).argmax(1)
        return F.cross_entropy(logits.float(), masks)


__all__ = [
    "PLACEMENTS",
    "AuxSegmentation",
    "FeatureAlignment",
    "freeze",
    "frozen_encoder",
    "match_grid",
    "semantic_encoder_path",
    "semantic_training_data",
    "train_semantic_encoder",
]
