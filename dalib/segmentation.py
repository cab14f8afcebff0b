"""Semantic segmentation on a ViT encoder: a light head, its training, mIoU.

One small model serves three purposes in dalib:

- the frozen *semantic encoder* of feature alignment (:mod:`dalib.semantic`) is a
  :class:`Segmenter` trained here on the synthetic world's classes;
- the auxiliary segmentation decoder of the paper's negative result is a
  :class:`SegmentationHead` on the student's encoder;
- segmentation transfer (notebook 09) puts a fresh head on a trained depth encoder and
  either trains the head alone (linear probe, encoder frozen) or both (fine-tuning).

The head reads the encoder's *last* block (after the final norm), the most semantic read-out
and the one feature alignment shapes: BatchNorm, a 1x1 convolution to class logits on the
token grid, bilinear upsampling to the image (the linear probe of the DINOv2 paper, on one
layer).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

from dalib import augment
from dalib.checkpoint import read_checkpoint
from dalib.config import stable_seed
from dalib.distributed import single_process
from dalib.encoder import DinoV2Encoder, normalize
from dalib.loop import Run, fit
from dalib.metrics import miou
from dalib.model import SIZES
from dalib.optim import TrainSettings
from dalib.sample import tensor_to_uint8

SEGMENTER_FORMAT = "dalib.Segmenter/1"


class SegmentationHead(nn.Module):
    """BatchNorm + 1x1 conv on one read-out, upsampled to the image.

    ``forward(features (B, C, h, w), size (H, W)) -> logits (B, num_classes, H, W)``.
    """

    def __init__(self, in_dim: int, num_classes: int) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        self.norm = nn.BatchNorm2d(in_dim)
        self.classify = nn.Conv2d(in_dim, num_classes, kernel_size=1)

    def forward(self, features: Tensor, size: Sequence[int]) -> Tensor:
        logits = self.classify(self.norm(features))
        return F.interpolate(logits, size=tuple(size), mode="bilinear", align_corners=False)


@dataclass(frozen=True)
class SegmenterConfig:
    """What rebuilds a :class:`Segmenter`: encoder size name, classes, position-table side."""

    encoder: str
    num_classes: int  # 0: an encoder without head (a frozen feature extractor)
    img_size: int

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


class Segmenter(nn.Module):
    """A DINOv2-style ViT + optional :class:`SegmentationHead` on its last block.

    Takes images (B, 3, H, W) in [0, 1] (sides multiples of 14) and normalises them itself.
    ``features(images) -> (B, C, H/14, W/14)``: the last block after the final norm;
    ``forward(images) -> (B, num_classes, H, W)`` class logits.

    Args:
        encoder: a :class:`dalib.encoder.DinoV2Encoder` (e.g. ``DepthAnything(...).pretrained``)
            or a size name ("tiny", "vits", ...) for a fresh one.
        num_classes: classes of the head; 0 for no head.
        img_size: position-table side for a fresh encoder (default: the size's).
    """

    checkpoint_format = SEGMENTER_FORMAT

    def __init__(
        self, encoder: DinoV2Encoder | str, num_classes: int, img_size: int | None = None
    ) -> None:
        super().__init__()
        if isinstance(encoder, str):
            if encoder not in SIZES:
                raise ValueError(f"unknown encoder {encoder!r}; choose one of {sorted(SIZES)}")
            size = SIZES[encoder]
            side = img_size or size.img_size
            encoder = DinoV2Encoder(size.embed_dim, size.depth, size.num_heads, side, size.patch)
        shape = (encoder.embed_dim, len(encoder.blocks), encoder.patch)
        name = next(
            (n for n, s in SIZES.items() if (s.embed_dim, s.depth, s.patch) == shape), "custom"
        )
        side = encoder.patch * round((encoder.pos_embed.shape[1] - 1) ** 0.5)
        self.config = SegmenterConfig(name, num_classes, side)
        self.encoder = encoder
        self.head = SegmentationHead(encoder.embed_dim, num_classes) if num_classes else None

    @property
    def embed_dim(self) -> int:
        return self.encoder.embed_dim

    def features(self, images: Tensor) -> Tensor:
        """[0, 1] images (B, 3, H, W) -> last-block features (B, C, H/14, W/14)."""
        last = len(self.encoder.blocks) - 1
        return self.encoder.readouts(normalize(images), [last])[0]

    def forward(self, images: Tensor) -> Tensor:
        if self.head is None:
            raise RuntimeError("this Segmenter has no head (num_classes=0): use .features()")
        return self.head(self.features(images), images.shape[-2:])


def load_segmenter(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Segmenter:
    """Rebuild a :class:`Segmenter` saved with :func:`dalib.checkpoint.save_checkpoint`."""
    metadata, state = read_checkpoint(path, SEGMENTER_FORMAT, map_location)
    config = json.loads(metadata["config"])
    if config["encoder"] not in SIZES:
        raise ValueError(f"{path}: segmenter of unknown encoder size {config['encoder']!r}")
    model = Segmenter(config["encoder"], config["num_classes"], config["img_size"])
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ValueError(f"could not load the weights of {path}: {err}") from err
    return model.to(map_location).eval()


# ---------------------------------------------------------------- data


def semantic_tensors(datasets: Sequence[Dataset]) -> tuple[Tensor, Tensor]:
    """Stack the samples of datasets with ``"semantic"`` maps (e.g. SynthDepthDataset).

    Returns images (N, 3, H, W) uint8 and labels (N, H, W) int64.
    """
    images, labels = [], []
    for dataset in datasets:
        for i in range(len(dataset)):
            sample = dataset[i]
            if "semantic" not in sample:
                raise ValueError(f"sample {i} of {dataset!r} has no 'semantic' map")
            images.append(tensor_to_uint8(sample["image"]))
            labels.append(sample["semantic"].long())
    if not images:
        raise ValueError("no samples given")
    return torch.stack(images), torch.stack(labels)


# ---------------------------------------------------------------- training and evaluation


def draw_flipped(
    images: Tensor, maps: Tensor, size: int, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """``size`` samples drawn with replacement from uint8 ``images`` (N, 3, H, W) and their
    ``maps`` (N, H, W), each pair flipped left-right with probability 1/2: (images (size, 3,
    H, W) float in [0, 1], maps (size, H, W)). Both draws come from ``generator``, in turn."""
    pick = torch.randint(len(images), (size,), generator=generator)
    return augment.hflip(images[pick].float().div(255), maps[pick], generator=generator)


def train_segmenter(
    model: Segmenter,
    images: Tensor,
    labels: Tensor,
    steps: int,
    batch_size: int = 32,
    lr_head: float = 1e-3,
    lr_encoder: float = 0.0,
    perturb: bool = False,
    seed: int = 0,
    progress: bool = True,
    desc: str = "segmenter",
) -> list[float]:
    """Train ``model`` by cross-entropy on (images uint8 (N,3,H,W), labels int (N,H,W)).

    ``lr_encoder`` = 0 freezes the encoder (a linear probe: no gradient; the ViT has no
    dropout, so its train mode changes nothing); > 0 fine-tunes it too. It trains on
    :func:`dalib.loop.fit` (AdamW, weight decay 0.01, 5% linear warm-up then linear decay, no
    clipping, float32, on the model's device), with random horizontal flips and, with
    ``perturb``, the student's strong colour perturbations. Batches are drawn with
    replacement, in turn, from one generator seeded by ``seed``; nothing is written to disk.
    Returns the loss per step.
    """
    if model.head is None:
        raise ValueError("train_segmenter needs a Segmenter with a head (num_classes > 0)")
    if images.shape[0] != labels.shape[0] or images.shape[-2:] != labels.shape[-2:]:
        raise ValueError(f"images {tuple(images.shape)} and labels {tuple(labels.shape)} differ")
    finetune = lr_encoder > 0
    model.requires_grad_(True)
    model.encoder.requires_grad_(finetune)
    model.encoder.mask_token.requires_grad_(False)  # never used by a forward
    settings = TrainSettings(
        steps,
        batch_size,
        lr_encoder,
        lr_head,
        warmup=0.05,
        clip_norm=0.0,
        amp="off",
        seed=seed,
        progress=progress,
    )
    generator = torch.Generator().manual_seed(stable_seed("segmenter", seed))

    def batches(step: int, device: torch.device) -> dict[str, Tensor]:  # drawn in turn
        batch, target = draw_flipped(images, labels, batch_size, generator)
        if perturb:
            batch = augment.strong_perturbation(batch, generator)
        return {"image": batch.to(device), "semantic": target.to(device)}

    losses: list[Tensor] = []

    def step(net: Segmenter, batch: dict, _generator: torch.Generator, _step: int):
        with torch.set_grad_enabled(finetune):
            features = net.features(batch["image"])
        loss = F.cross_entropy(net.head(features, batch["image"].shape[-2:]), batch["semantic"])
        losses.append(loss.detach())
        return loss, {}

    device = next(model.parameters()).device
    fit(Run(model, batches, settings, single_process(device), net=model, name=desc), step)
    model.eval().requires_grad_(False)
    return torch.stack(losses).tolist()


@torch.no_grad()
def segment(model: Segmenter, images: Tensor, batch_size: int = 32) -> Tensor:
    """Class maps (N, H, W) int64 of images (N, 3, H, W), uint8 or float in [0, 1]."""
    device = next(model.parameters()).device
    model.eval()
    out = []
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size].to(device)
        batch = batch.float().div(255) if batch.dtype == torch.uint8 else batch.float()
        out.append(model(batch).argmax(1).cpu())
    return torch.cat(out)


def evaluate_segmenter(
    model: Segmenter, images: Tensor, labels: Tensor, num_classes: int | None = None
) -> tuple[float, Tensor]:
    """(mIoU, per-class IoU (K,) with NaN for absent classes) of ``model`` on a labeled set."""
    return miou(segment(model, images), labels, num_classes or model.config.num_classes)


__all__ = [
    "SEGMENTER_FORMAT",
    "SegmentationHead",
    "Segmenter",
    "SegmenterConfig",
    "draw_flipped",
    "evaluate_segmenter",
    "load_segmenter",
    "segment",
    "semantic_tensors",
    "train_segmenter",
]
