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
  labeled and unlabeled domains, then freezes it. Its features are semantic by construction
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

import json
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dalib import losses, synth
from dalib.checkpoint import checkpoint_metadata, save_checkpoint
from dalib.config import Profile, artifact_root, get_profile, seed_everything
from dalib.data import SPLIT_SEEDS, SynthDepthDataset
from dalib.model import DepthAnything
from dalib.segmentation import (
    SEGMENTER_FORMAT,
    SegmentationHead,
    Segmenter,
    load_segmenter,
    semantic_tensors,
    train_segmenter,
)
from dalib.train import PLACEMENTS, StepContext, run_paths


def match_grid(features: Tensor, grid: tuple[int, int]) -> Tensor:
    """(B, C, h, w) -> (B, C, *grid): unchanged if equal, else bilinear resampling."""
    if tuple(features.shape[-2:]) == tuple(grid):
        return features
    return F.interpolate(features, size=tuple(grid), mode="bilinear", align_corners=False)


def freeze(model: nn.Module) -> nn.Module:
    """Eval mode and no gradients: a frozen encoder never changes during student training."""
    return model.eval().requires_grad_(False)


# ---------------------------------------------------------------- the frozen encoder


def semantic_training_data(profile: Profile, root: Path) -> tuple[Tensor, Tensor]:
    """Images and class maps of the labeled + unlabeled domains' training scenes.

    The same cached renders as the teacher's data and the pseudo-label pool (never the
    held-out domains). Returns images (N, 3, H, W) uint8 and labels (N, H, W) int64.
    """
    common = {"root": root / "data", "seed": SPLIT_SEEDS["train"], "progress": profile.progress}
    size = {"size": profile.image_size, "render_size": profile.render_size}
    return semantic_tensors(
        [
            SynthDepthDataset(synth.LABELED, profile.n_labeled, **size, **common),
            SynthDepthDataset(synth.UNLABELED, profile.n_unlabeled, **size, **common),
        ]
    )


def semantic_encoder_path(root: Path) -> Path:
    """Where :func:`train_semantic_encoder` caches the encoder under the artifact ``root``."""
    return run_paths(root, "semantic_encoder")["final_path"]


def train_semantic_encoder(
    profile: Profile | str | None = None,
    *,
    root: str | os.PathLike | None = None,
    steps: int | None = None,
    seed: int = 0,
    force: bool = False,
) -> Segmenter:
    """The frozen synthetic-semantics ViT: trained once, cached, returned frozen.

    A ViT of the profile's encoder size with a linear head on its last block, trained from
    random init by cross-entropy on the class maps of :func:`semantic_training_data`, with
    flips and the student's strong perturbations (it will see perturbed images in L_feat).
    Written to ``<root>/checkpoints/semantic_encoder.safetensors`` (atomic; reused unless
    ``force`` or the settings changed).
    """
    profile = profile if isinstance(profile, Profile) else get_profile(profile)
    root = Path(root) if root is not None else artifact_root(profile)
    steps = steps or profile.semantic_steps
    path = semantic_encoder_path(root)
    key = json.dumps(
        [profile.encoder, profile.image_size, profile.render_size, profile.n_labeled]
        + [profile.n_unlabeled, profile.batch_size, steps, seed, str(synth.RENDER_VERSION)]
    )
    cached = path.is_file() and checkpoint_metadata(path, SEGMENTER_FORMAT).get("key") == key
    if cached and not force:
        return freeze(load_segmenter(path))
    images, labels = semantic_training_data(profile, root)
    seed_everything(seed)
    # the default position table, the depth models' own, so these weights can initialise one
    model = Segmenter(profile.encoder, len(synth.SEMANTIC_CLASSES))
    history = train_segmenter(
        model,
        images,
        labels,
        steps,
        batch_size=2 * profile.batch_size,
        lr_head=1e-3,
        lr_encoder=3e-4,
        perturb=True,
        seed=seed,
        progress=profile.progress,
        desc="semantic encoder",
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(model, path, {"key": key, "final_loss": f"{history[-1]:.4f}"})
    return freeze(model)


def frozen_encoder(
    source: str | os.PathLike,
    encoder: str | None = None,
    profile: Profile | str | None = None,
    root: str | os.PathLike | None = None,
) -> Segmenter:
    """The frozen semantic encoder named by ``source``.

    ``"dinov2"``: timm's DINOv2 of size ``encoder`` (needs internet or a filled cache);
    ``"synthetic"``: :func:`train_semantic_encoder` of ``profile`` under ``root`` (trained if
    not cached); else the path of a saved :class:`dalib.segmentation.Segmenter`.
    """
    if str(source) == "dinov2":
        if encoder is None:
            raise ValueError("frozen_encoder('dinov2') needs encoder='vits'|'vitb'|'vitl'")
        return freeze(Segmenter(DepthAnything(encoder, pretrained_encoder="dinov2").pretrained, 0))
    if str(source) == "synthetic":
        return train_semantic_encoder(profile, root=root)
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
