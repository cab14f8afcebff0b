"""The offline stand-in for DINOv2: an encoder pretrained once, cached, then reused.

In the paper DINOv2 plays two parts: it *initialises* the teacher's and the student's
encoders, and it is the *frozen* encoder of feature alignment (L_feat). DINOv2 cannot be
downloaded here, so the ``fast`` and ``full`` profiles use a stand-in in both slots: a ViT of
the profile's size trained once on images of the labeled and unlabeled domains (never the
validation or held-out ones) and cached as ``<root>/checkpoints/semantic_encoder.safetensors``.
The ``gpu`` profile and Colab put timm's DINOv2 in the same slot (``pretrained_encoder =
"dinov2"``).

Two pretext tasks, compared on the validation domains (``runs/study``'s pilots; the numbers
are in the README's "The toy regime" section):

- ``"synthetic"``: semantic segmentation of the synthetic world's nine classes
  (:data:`dalib.synth.SEMANTIC_CLASSES`: sky, ground, floor, wall, ceiling, box, sphere,
  cylinder, building) by cross-entropy, with flips and the student's strong perturbations
  (:func:`train_semantic_encoder`). Supervised, by labels no real unlabeled set has, but
  semantic by construction; it knows nothing of depth.
- ``"mim"``: masked image modelling, self-supervised as DINOv2's iBOT term is
  (:func:`train_mim_encoder`, SimMIM's recipe): 60% of the patches are replaced by the mask
  token and a linear head predicts their pixels (normalised per patch, L1 loss).

:func:`init_encoder` is the one place an encoder initialisation is resolved: ``None``
(random), ``"dinov2"``, ``"synthetic"``, ``"mim"`` or a checkpoint path.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import torch
from einops import rearrange
from torch import Tensor, nn

from dalib import synth
from dalib.checkpoint import checkpoint_metadata, save_checkpoint
from dalib.config import (
    Profile,
    preserved_rng,
    resolve,
    run_paths,
    seed_everything,
    stable_seed,
)
from dalib.data import SPLIT_SEEDS, SynthDepthDataset, render_device
from dalib.distributed import single_process
from dalib.encoder import DinoV2Encoder, normalize
from dalib.loop import Run, fit
from dalib.model import DepthAnything, load_checkpoint, load_dinov2_weights
from dalib.optim import TrainSettings
from dalib.segmentation import (
    SEGMENTER_FORMAT,
    Segmenter,
    draw_flipped,
    load_segmenter,
    semantic_tensors,
    train_segmenter,
)

INITS = (None, "dinov2", "synthetic", "mim")
"""Named encoder initialisations; a checkpoint path is accepted too (:func:`init_encoder`)."""


def freeze(model: nn.Module) -> nn.Module:
    """Eval mode and no gradients: a frozen encoder never changes during student training."""
    return model.eval().requires_grad_(False)


def semantic_training_data(profile: Profile, root: Path):
    """Images and class maps of the labeled + unlabeled domains' training scenes.

    The same cached renders as the teacher's data and the pseudo-label pool (never the
    validation or held-out domains). Returns images (N, 3, H, W) uint8, labels (N, H, W) int64.
    """
    common = {"root": root / "data", "seed": SPLIT_SEEDS["train"], "progress": profile.progress}
    size = {"size": profile.image_size, "render_size": profile.render_size}
    return semantic_tensors(
        [
            SynthDepthDataset(synth.LABELED, profile.n_labeled, **size, **common),
            SynthDepthDataset(synth.UNLABELED, profile.n_unlabeled, **size, **common),
        ]
    )


def _resolve(
    profile: Profile | str | None, root: str | os.PathLike | None, steps: int | None
) -> tuple[Profile, Path, int]:
    profile, root = resolve(profile, root)
    return profile, root, steps or profile.semantic_steps


def _key(profile: Profile, steps: int, seed: int, *extra) -> str:
    """What a cached stand-in depends on: its data, model, budget and the renderer."""
    data = [profile.encoder, profile.image_size, profile.render_size, profile.n_labeled]
    renderer = synth.render_version(render_device())
    run = [profile.n_unlabeled, profile.batch_size, steps, seed, renderer]
    return json.dumps(data + run + list(extra))


def _cached_or_trained(
    path: Path, key: str, force: bool, train: Callable[[], tuple[Segmenter, float]]
) -> Segmenter:
    """The frozen stand-in at ``path`` if it was trained with ``key`` (and not ``force``),
    else ``train()``'s (model, final loss), saved there with ``key`` (atomic). Either way
    the global RNGs are left as they were: training draws, and so does building the module
    a checkpoint is loaded into, so a caller's later draws never depend on the cache."""
    with preserved_rng():
        if (
            not force
            and path.is_file()
            and checkpoint_metadata(path, SEGMENTER_FORMAT).get("key") == key
        ):
            return freeze(load_segmenter(path))
        model, final_loss = train()
        path.parent.mkdir(parents=True, exist_ok=True)
        save_checkpoint(model, path, {"key": key, "final_loss": f"{final_loss:.4f}"})
        return freeze(model)


def semantic_encoder_path(root: Path) -> Path:
    """Where :func:`train_semantic_encoder` caches the encoder under the artifact ``root``."""
    return run_paths(Path(root), "semantic_encoder")["final_path"]


def train_semantic_encoder(
    profile: Profile | str | None = None,
    *,
    root: str | os.PathLike | None = None,
    steps: int | None = None,
    seed: int = 0,
    force: bool = False,
) -> Segmenter:
    """The stand-in (synthetic-semantics ViT): trained once, cached, returned frozen.

    A ViT of the profile's encoder size with a linear head on its last block, trained from
    random init by cross-entropy on the class maps of :func:`semantic_training_data`, with
    flips and the student's strong perturbations (it will see perturbed images in L_feat).
    Written to ``<root>/checkpoints/semantic_encoder.safetensors`` (atomic; reused unless
    ``force`` or the settings changed). The global RNGs are left as they were, trained or
    loaded, so a notebook's later draws do not depend on what was cached.
    """
    profile, root, steps = _resolve(profile, root, steps)
    return _cached_or_trained(
        semantic_encoder_path(root),
        _key(profile, steps, seed),
        force,
        lambda: _train_semantic(profile, root, steps, seed),
    )


def _train_semantic(profile: Profile, root: Path, steps: int, seed: int) -> tuple[Segmenter, float]:
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
    return model, history[-1]


class MaskedImageModel(nn.Module):
    """SimMIM on a DINOv2-style encoder: masked patches -> their pixels.

    ``forward(images (B, 3, H, W) in [0, 1], masks (B, H/p * W/p) bool) -> 0-dim loss``: the
    masked patches enter as ``mask_token``; a linear head maps each output token to its
    patch's 3·p² ImageNet-normalised pixels, normalised per patch (MAE's "norm_pix"); the loss
    is the mean L1 error over the masked patches.
    """

    def __init__(self, encoder: DinoV2Encoder) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(encoder.embed_dim, 3 * encoder.patch**2)

    def forward(self, images: Tensor, masks: Tensor) -> Tensor:
        x = normalize(images)
        tokens = self.encoder.tokens(x, masks)
        for block in self.encoder.blocks:
            tokens = block(tokens)
        pred = self.head(self.encoder.norm(tokens)[:, 1:])  # (B, N, 3 p²)
        p = self.encoder.patch
        target = rearrange(x, "b c (h p) (w q) -> b (h w) (p q c)", p=p, q=p)
        target = (target - target.mean(-1, keepdim=True)) / (
            target.var(-1, keepdim=True) + 1e-6
        ).sqrt()
        return (pred - target).abs().mean(-1)[masks].mean()


def mim_encoder_path(root: Path) -> Path:
    """Where :func:`train_mim_encoder` caches its encoder under the artifact ``root``."""
    return run_paths(Path(root), "mim_encoder")["final_path"]


def train_mim_encoder(
    profile: Profile | str | None = None,
    *,
    root: str | os.PathLike | None = None,
    steps: int | None = None,
    seed: int = 0,
    mask_ratio: float = 0.6,
    force: bool = False,
) -> Segmenter:
    """The masked-image-modelling stand-in: trained once on the images of
    :func:`semantic_training_data` (labels unused), cached, returned frozen (no head).

    AdamW (lr 3e-4 · 5% warm-up · linear decay, weight decay 0.05) on batches of
    2 x ``batch_size`` images drawn with replacement, random flips, ``mask_ratio`` of the
    patches masked per image. Written to ``<root>/checkpoints/mim_encoder.safetensors`` as a
    :class:`dalib.segmentation.Segmenter` without head. The global RNGs are left as they were.
    """
    profile, root, steps = _resolve(profile, root, steps)
    return _cached_or_trained(
        mim_encoder_path(root),
        _key(profile, steps, seed, "mim", mask_ratio),
        force,
        lambda: _train_mim(profile, root, steps, seed, mask_ratio),
    )


def _train_mim(
    profile: Profile, root: Path, steps: int, seed: int, mask_ratio: float
) -> tuple[Segmenter, float]:
    images, _ = semantic_training_data(profile, root)
    seed_everything(seed)
    encoder = Segmenter(profile.encoder, 0).encoder
    model = MaskedImageModel(encoder)
    encoder.mask_token.requires_grad_(True)
    size = 2 * profile.batch_size
    settings = TrainSettings(
        steps,
        size,
        lr_encoder=3e-4,
        lr_decoder=3e-4,
        weight_decay=0.05,
        clip_norm=0.0,
        amp="off",
        seed=seed,
        progress=profile.progress,
    )
    generator = torch.Generator().manual_seed(stable_seed("mim", seed))
    tokens = (profile.image_size // encoder.patch) ** 2

    def batches(step: int, device: torch.device) -> dict[str, Tensor]:  # drawn in turn
        batch = draw_flipped(images, images[:, 0], size, generator)[0]
        masks = torch.rand(size, tokens, generator=generator) < mask_ratio
        return {"image": batch.to(device), "masks": masks.to(device)}

    losses: list[Tensor] = []

    def step(net: MaskedImageModel, batch: dict, _generator: torch.Generator, _step: int):
        loss = net(batch["image"], batch["masks"])
        losses.append(loss.detach())
        return loss, {}

    run = Run(model, batches, settings, single_process("cpu"), net=model, name="masked image model")
    fit(run, step)
    encoder.mask_token.requires_grad_(False)
    return Segmenter(encoder, 0), losses[-1].item()


PRETRAINERS = {"synthetic": train_semantic_encoder, "mim": train_mim_encoder}
"""The offline stand-ins by name: ``fn(profile, root=...) -> frozen Segmenter``, cached."""


def prepare(source: str | os.PathLike | None, profile: Profile, root: Path) -> None:
    """Make sure initialisation ``source`` is available (trains and caches an offline
    stand-in); cheap when it is. Call it before seeding a model's own initial weights."""
    if str(source) in PRETRAINERS:
        PRETRAINERS[str(source)](profile, root=root)


def init_encoder(
    model: DepthAnything, source: str | os.PathLike | None, profile: Profile, root: Path
) -> DepthAnything:
    """Load encoder weights into ``model.pretrained`` from ``source``; returns ``model``.

    ``None``: leave the random initialisation; ``"dinov2"``: timm's DINOv2 of the model's
    size (needs internet or a cache); ``"synthetic"`` or ``"mim"``: that stand-in of
    ``profile`` under ``root`` (trained first if not cached: call :func:`prepare` before
    seeding to keep the model's own random draws independent of that); a path: a saved
    :class:`dalib.segmentation.Segmenter` or dalib depth checkpoint, whose encoder is copied
    (strict), or a DINOv2 state dict (``dinov2_vit*14_pretrain.pth`` or timm layout).
    """
    if source is None:
        return model
    if str(source) == "dinov2":
        load_dinov2_weights(model, "dinov2")
        return model
    if str(source) in PRETRAINERS:
        encoder = PRETRAINERS[str(source)](profile, root=root).encoder
    else:
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(
                f"encoder initialisation {str(source)!r}: {path} does not exist"
            )
        try:  # a saved Segmenter (e.g. another stand-in), a depth checkpoint, DINOv2 weights
            encoder = load_segmenter(path).encoder
        except ValueError:
            try:
                encoder = load_checkpoint(path).pretrained
            except ValueError:
                load_dinov2_weights(model, path)  # raises naming the file if it does not fit
                return model
    try:
        model.pretrained.load_state_dict(encoder.state_dict())
    except RuntimeError as err:
        raise ValueError(
            f"encoder initialisation {str(source)!r} does not fit the model: {err}"
        ) from err
    return model


__all__ = [
    "INITS",
    "PRETRAINERS",
    "MaskedImageModel",
    "freeze",
    "init_encoder",
    "mim_encoder_path",
    "prepare",
    "semantic_encoder_path",
    "semantic_training_data",
    "train_mim_encoder",
    "train_semantic_encoder",
]
