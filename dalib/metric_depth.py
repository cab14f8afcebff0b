"""Metric-depth fine-tuning (paper Sec. 4.3, Tables 3, 4, 10): from relative to metres.

The relative model predicts disparity up to scale and shift. For metric depth the same
DepthAnything is fine-tuned on one kind of scene with known metres, its head read as
``depth = max_depth · sigmoid(z)`` where z is the DPT head's output without its final ReLU
(``DepthAnything(..., output="linear")``, recorded in the checkpoint's config), trained
with the scale-invariant log loss (:func:`dalib.losses.silog_loss`). The paper (following ZoeDepth) uses NYUv2 (max 10 m) and
KITTI (max 80 m); here an indoor-like and an outdoor-like synthetic domain that the relative
models never trained on (the held-out ``gallery`` and ``ruins``, as NYUv2 and KITTI were
zero-shot sets for Depth Anything): their training scenes fine-tune, their test scenes score.

Encoder initialisations are compared as in Table 10: only the encoder (``pretrained``) is
copied from the source (random, the frozen semantic encoder, the teacher, the student); the
DPT head always starts fresh, so the table measures the encoder. Training runs on
:func:`dalib.loop.fit` (AdamW, decoder lr 10x encoder, checkpoints, exact resume, DDP).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor, nn

from dalib import augment, losses, synth
from dalib.checkpoint import checkpoint_metadata
from dalib.config import Profile, resolve, run_paths, seed_everything
from dalib.data import SPLIT_SEEDS, SynthDepthDataset
from dalib.distributed import init_distributed
from dalib.loop import Run, fit
from dalib.metrics import metric_depth_metrics
from dalib.mixing import MixedBatches, TensorSet
from dalib.model import DepthAnything, DepthNet, load_checkpoint
from dalib.optim import settings_for
from dalib.sample import tensor_to_uint8
from dalib.segmentation import load_segmenter
from dalib.standin import semantic_encoder_path

METRIC_DOMAINS = {"indoor": "gallery", "outdoor": "ruins"}
"""Scene kind -> the synthetic domain that plays NYUv2 (indoor) / KITTI (outdoor)."""
INITS = ("random", "semantic", "teacher", "student")


def to_metres(logits: Tensor, max_depth: float) -> Tensor:
    """``max_depth · sigmoid(z)``: metres in (0, max_depth)."""
    return max_depth * torch.sigmoid(logits.float())


def metric_model(init: str, profile: Profile, root: Path) -> DepthAnything:
    """A fresh DepthAnything (profile size) with its encoder from ``init`` and a metric head.

    ``init``: "random", "semantic" (the synthetic-semantics ViT of :mod:`dalib.semantic`),
    "teacher" or "student" (``<root>/checkpoints/<init>.safetensors``), or the path of a
    dalib depth checkpoint. Weights other than the encoder's are freshly initialised.
    """
    model = DepthAnything(profile.encoder, output="linear")
    if init != "random":
        if init == "semantic":
            encoder = load_segmenter(semantic_encoder_path(root)).encoder
        else:
            path = Path(init) if init not in INITS else run_paths(root, init)["final_path"]
            if not path.is_file():
                raise FileNotFoundError(f"encoder initialisation {init!r}: {path} does not exist")
            encoder = load_checkpoint(path).pretrained
        model.pretrained.load_state_dict(encoder.state_dict())
    return model


def metric_set(profile: Profile, root: Path, domain: str, split: str, n: int) -> TensorSet:
    """``n`` scenes of ``domain``'s ``split`` as a TensorSet: targets in metres, sky and
    unknown pixels masked out (a metric model is not asked for the sky's depth)."""
    scenes = SynthDepthDataset(
        domain,
        n,
        profile.image_size,
        root / "data",
        seed=SPLIT_SEEDS[split],
        render_size=profile.render_size,
        progress=profile.progress,
    )
    samples = [scenes[i] for i in range(len(scenes))]
    images = tensor_to_uint8(torch.stack([s["image"] for s in samples]))
    valid = torch.stack([s["valid"] for s in samples])
    depth = torch.where(valid, torch.stack([s["depth"] for s in samples]), torch.zeros(()))
    return TensorSet(images, depth.float(), valid)


def evaluate_metric(
    model: nn.Module, data: TensorSet, max_depth: float, batch_size: int = 16
) -> dict[str, float]:
    """Metric-depth metrics (δ1..δ3, AbsRel, RMSE, log10, RMSE-log, SiLog) of a metric model
    (as :func:`metric_model`, ImageNet-normalising :class:`dalib.model.DepthNet` inputs)."""
    net = DepthNet(model).eval()
    device = next(model.parameters()).device
    preds = []
    with torch.no_grad():
        for start in range(0, len(data), batch_size):
            images, _, _ = data.batch(
                torch.arange(start, min(start + batch_size, len(data))), device
            )
            preds.append(to_metres(net(images)[0], max_depth).cpu())
    out = metric_depth_metrics(torch.cat(preds), data.targets, data.masks, max_depth=max_depth)
    return {k: float(v) for k, v in out.items() if not k.endswith("_per_image")}


def metric_step(max_depth: float):
    """A :func:`dalib.loop.fit` step: flipped batch -> SiLog loss on metres."""

    def step_fn(net: nn.Module, batch: dict, generator: torch.Generator, step: int):
        images, target, mask = augment.hflip(
            batch["image"], batch["target"], batch["mask"], generator=generator
        )
        loss = losses.silog_loss(to_metres(net(images)[0], max_depth), target, mask)
        return loss, {"loss_silog": loss.detach()}

    return step_fn


def finetune_metric(
    kind: str,
    init: str,
    profile: Profile | str | None = None,
    *,
    root: str | os.PathLike | None = None,
    steps: int | None = None,
    seed: int = 0,
    resume: bool = False,
    device: str | torch.device | None = None,
    stop_after: int | None = None,
    **overrides,
) -> tuple[DepthAnything, dict[str, float]]:
    """Fine-tune a metric model for ``kind`` ("indoor" / "outdoor") from encoder ``init``.

    Trains on :data:`METRIC_DOMAINS` [kind]'s training scenes (``profile.n_labeled``) for
    ``steps`` (default ``profile.metric_steps``) and scores its test scenes
    (``profile.n_eval``). Writes ``<root>/checkpoints/metric_<kind>_<init>.safetensors``
    (its metadata holds ``max_depth``; rebuild with :func:`load_metric`). ``overrides``
    change :class:`dalib.optim.TrainSettings` fields; ``resume`` / ``stop_after`` as for
    :func:`dalib.train.train_teacher`. Returns (model, its test metrics).
    """
    if kind not in METRIC_DOMAINS:
        raise ValueError(f"kind must be one of {sorted(METRIC_DOMAINS)}, got {kind!r}")
    profile, root = resolve(profile, root)
    domain = METRIC_DOMAINS[kind]
    max_depth = synth.DOMAINS[domain].max_depth
    info = init_distributed(device)
    train_set = metric_set(profile, root, domain, "train", profile.n_labeled)
    test_set = metric_set(profile, root, domain, "test", profile.n_eval)
    settings = settings_for(profile, "metric", steps=steps, seed=seed, **overrides)
    seed_everything(seed)
    model = metric_model(init, profile, root)
    name = f"metric_{kind}_{Path(init).stem if init not in INITS else init}"
    batches = MixedBatches(train_set, None, settings.batch_size, seed, info.rank, info.world_size)
    run = Run(
        model,
        batches.batch,
        settings,
        info,
        **run_paths(root, name),
        validate=lambda net: evaluate_metric(net.model, test_set, max_depth),
        resume=resume,
        metadata={"role": "metric", "max_depth": str(max_depth), "domain": domain, "init": init},
        stop_after=stop_after,
    )
    model = fit(run, metric_step(max_depth))
    return model, evaluate_metric(model, test_set, max_depth)


def load_metric(path: str | os.PathLike) -> tuple[DepthAnything, float]:
    """(metric model, max_depth) from a checkpoint written by :func:`finetune_metric`."""
    metadata = checkpoint_metadata(path)
    model = load_checkpoint(path)
    if "max_depth" not in metadata or model.config.output != "linear":
        raise ValueError(f"{path} is not a metric-depth checkpoint (no max_depth / linear head)")
    return model, float(metadata["max_depth"])


__all__ = [
    "INITS",
    "METRIC_DOMAINS",
    "evaluate_metric",
    "finetune_metric",
    "load_metric",
    "metric_model",
    "metric_set",
    "to_metres",
]
