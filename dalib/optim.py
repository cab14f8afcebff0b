"""How a run optimises: its settings, AdamW's two learning-rate groups and the schedule.

:class:`TrainSettings` holds one run's optimisation settings; :func:`make_optimizer` puts the
encoder and the decoder in two AdamW groups (the paper's decoder lr is 10x the encoder's); :func:`settings_for` reads a profile's;
:func:`lr_factor` is the schedule, a linear warm-up then a linear decay to 0. The loop that
uses them is :func:`dalib.loop.fit`; notebooks 03 and 05 also step them by hand.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields

import torch
from torch import nn

from dalib.config import Profile
from dalib.encoder import DinoV2Encoder


@dataclass(frozen=True)
class TrainSettings:
    """Optimisation settings of one run. ``batch_size`` is labeled images per process and step."""

    steps: int
    batch_size: int
    lr_encoder: float = 5e-5
    lr_decoder: float = 5e-4  # 10x the encoder's, as in the paper
    weight_decay: float = 0.01
    warmup: float = 0.05  # fraction of the steps with a linear warm-up from 0
    clip_norm: float = 1.0  # max global gradient norm; 0 disables clipping
    amp: str = "auto"  # "auto" (bf16/fp16 on CUDA, off on CPU), "off", "bf16", "fp16"
    channels_last: bool = False  # measured: no gain on the 2-core CPU (tiny@98: 53.1 vs 52.7 img/s)
    seed: int = 0
    checkpoint_every: int = 0  # steps between resumable checkpoints; 0: only at the end
    eval_every: int = 0  # steps between evaluations; 0: only at the end
    progress: bool = True

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError(
                f"steps and batch_size must be >= 1, got {self.steps}, {self.batch_size}"
            )
        if self.amp not in ("auto", "off", "bf16", "fp16"):
            raise ValueError(f"amp must be 'auto', 'off', 'bf16' or 'fp16', got {self.amp!r}")
        if not 0 <= self.warmup < 1:
            raise ValueError(f"warmup is a fraction of the steps in [0, 1), got {self.warmup}")


def make_optimizer(
    model: nn.Module, settings: TrainSettings, extra: Iterable[nn.Parameter] = ()
) -> torch.optim.AdamW:
    """AdamW over two groups: the DINOv2 encoder in ``model`` (the
    :class:`~dalib.encoder.DinoV2Encoder` it holds: ``pretrained`` in a DepthAnything,
    ``encoder`` in a Segmenter) at the encoder lr, the rest and ``extra`` at the decoder lr.
    Frozen parameters (``requires_grad`` False) are left out."""
    vits = [m for m in model.modules() if isinstance(m, DinoV2Encoder)]
    encoder = [p for vit in vits for p in vit.parameters() if p.requires_grad]
    ids = {id(p) for p in encoder}
    decoder = [p for p in model.parameters() if p.requires_grad and id(p) not in ids]
    decoder += [p for p in extra if p.requires_grad]
    groups = [
        {"params": encoder, "lr": settings.lr_encoder, "name": "encoder"},
        {"params": decoder, "lr": settings.lr_decoder, "name": "decoder"},
    ]
    return torch.optim.AdamW(groups, weight_decay=settings.weight_decay)


def lr_factor(step: int, steps: int, warmup: float) -> float:
    """Learning-rate multiplier at ``step``: linear 0 -> 1 over the warm-up, then 1 -> 0."""
    warm = round(warmup * steps)
    if step < warm:
        return (step + 1) / warm
    return max(0.0, (steps - step) / max(1, steps - warm))


def settings_for(profile: Profile, kind: str, **overrides) -> TrainSettings:
    """The TrainSettings of ``profile`` for a ``kind`` of run: "teacher", "student" (their
    steps, evaluated every ``eval_every``) or "metric" (``metric_steps``, evaluated at the
    end), with ``overrides`` of any field (None values are ignored)."""
    steps = {"teacher": profile.teacher_steps, "student": profile.student_steps}
    steps["metric"] = profile.metric_steps
    if kind not in steps:
        raise ValueError(f"kind must be one of {sorted(steps)}, got {kind!r}")
    known = {f.name for f in fields(TrainSettings)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise TypeError(f"unknown training settings {unknown}; choose from {sorted(known)}")
    base = {
        "steps": steps[kind],
        "batch_size": profile.batch_size,
        "checkpoint_every": profile.checkpoint_every,
        "eval_every": profile.eval_every if kind != "metric" else 0,
        "progress": profile.progress,
    }
    return TrainSettings(**{**base, **{k: v for k, v in overrides.items() if v is not None}})


__all__ = ["TrainSettings", "lr_factor", "make_optimizer", "settings_for"]
