"""Teacher and student training (paper pipeline steps 1 and 3), on :func:`dalib.loop.fit`.

- :func:`train_teacher`: the labeled synthetic domains (plus any labeled folders given) with
  the affine-invariant loss on disparity (+ gradient matching), paired horizontal flips.
- :func:`train_student`: a fresh model on labeled + pseudo-labeled images, 1 : 2 in every
  batch; on the unlabeled images the student sees strong perturbations and CutMix while the
  targets are the teacher's labels of the clean images (precomputed by
  :func:`dalib.pseudo.pseudo_label`). ``extra_losses`` plug more terms in (e.g. feature
  alignment with a frozen encoder) without touching the loop.

What one step minimises is :mod:`dalib.objectives`; this module gathers the data, builds the
model and hands both to the loop. Both jobs are scored on the validation domains while they
train (AbsRel, δ1 per domain, MiDaS protocol, :func:`dalib.evaluate.score_domains`; the
held-out domains are scored only for the final tables) and write to
``<root>/checkpoints/<name>.safetensors``, ``<root>/logs/<name>.jsonl`` and
``<root>/checkpoints/resume/<name>/``, where ``<root>`` is ``runs/<profile>/`` by default.
Under ``torchrun`` every process trains on its share of each batch's data (DDP).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Dataset, Subset

from dalib import standin, synth
from dalib.config import Profile, data_root, resolve, run_paths, seed_everything
from dalib.data import SPLIT_SEEDS, PseudoLabeled, RGBDFolder, SynthDepthDataset
from dalib.distributed import DistInfo, barrier, init_distributed
from dalib.evaluate import score_domains, validation_sets
from dalib.loop import Run, fit
from dalib.mixing import MixedBatches, TensorSet, concat_sets, to_tensor_set
from dalib.model import DepthAnything
from dalib.objectives import ExtraLoss, extra_heads, loss_name, student_step, teacher_step
from dalib.optim import TrainSettings, settings_for

__all__ = ["labeled_set", "real_labeled_sets", "student_name", "train_student", "train_teacher"]


SHORT_LOSS_NAMES = {"loss_feat": "feat", "loss_seg": "aux"}


def student_name(
    perturb: bool,
    cutmix: bool,
    extra_losses: Sequence[ExtraLoss | str] = (),
    pool_size: int | None = None,
    trim: float = 0.0,
) -> str:
    """The descriptive checkpoint name of a student (``extra_losses``: the losses or their
    names). ``student`` is the full method (strong perturbation + CutMix + L_feat);
    ``student_perturb`` the same without L_feat; ``student_plain`` naive self-training (clean
    images, nothing extra); other mixes are spelled out: ``student_plain_feat``,
    ``student_nocutmix_aux``, ``student_trim10`` (L_u trimmed by 10%), ``student_u1200``
    (a pool of 1,200 pseudo-labeled images)."""
    names = [e if isinstance(e, str) else loss_name(e, i) for i, e in enumerate(extra_losses)]
    if perturb and cutmix:
        parts = ["student"] if "loss_feat" in names else ["student_perturb"]
        names = [n for n in names if n != "loss_feat"]
    elif not perturb and not cutmix:
        parts = ["student_plain"]
    else:
        parts = ["student_noperturb" if not perturb else "student_nocutmix"]
    parts += [SHORT_LOSS_NAMES.get(n, n) for n in names]
    parts += [f"trim{round(100 * trim)}"] * (trim > 0) + [f"u{pool_size}"] * (pool_size is not None)
    return "_".join(parts)


# ---------------------------------------------------------------- data


def real_labeled_sets(profile: Profile) -> list[RGBDFolder]:
    """The train splits of ``profile.real_labeled`` that exist under :func:`data_root`.

    ``<data_root>/<name>/{images,depths}/train`` as written by ``data_scripts/<name>.py``
    (16-bit depth PNGs carrying their scale); a missing one is reported and skipped, so the
    profile runs with or without real data.
    """
    found = []
    for name in profile.real_labeled:
        images, depths = (data_root() / name / kind / "train" for kind in ("images", "depths"))
        if not (images.is_dir() and depths.is_dir()):
            print(f"[dalib] real set {name!r} not used: no {images} (see data_scripts/{name}.py)")
            continue
        found.append(RGBDFolder(images, depths, size=profile.image_size, domain=name))
        print(
            f"[dalib] real set {name!r}: {len(found[-1])} labeled pairs from {images.parent.parent}"
        )
    return found


def labeled_set(profile: Profile, root: Path, extra: Sequence[Dataset] = ()) -> TensorSet:
    """The labeled domains' training scenes (cached under ``root/data``), the profile's real
    labeled sets that exist (:func:`real_labeled_sets`) and ``extra`` sets."""
    scenes = SynthDepthDataset(
        synth.LABELED,
        profile.n_labeled,
        profile.image_size,
        root / "data",
        seed=SPLIT_SEEDS["train"],
        render_size=profile.render_size,
        progress=profile.progress,
    )
    return concat_sets(
        [
            to_tensor_set(d, desc=f"labeled {i}")
            for i, d in enumerate([scenes, *real_labeled_sets(profile), *extra])
        ]
    )


# ---------------------------------------------------------------- the two jobs


def _run(
    kind: str,
    name: str,
    profile: Profile,
    root: Path,
    info: DistInfo,
    settings: TrainSettings,
    unlabeled: TensorSet | None,
    extra_labeled: Sequence[Dataset],
    validate: bool,
) -> Run:
    """The :class:`dalib.loop.Run` of a teacher or student job: its labeled set (rank 0
    renders and caches the scenes, the others then read the cache), the batches, a fresh
    model from the profile's pretrained encoder, and the validation scoring."""
    if info.is_main:
        labeled = labeled_set(profile, root, extra_labeled)
        sets = validation_sets(profile, root) if validate else {}
        standin.prepare(profile.pretrained_encoder, profile, root)
    barrier()
    if not info.is_main:
        labeled, sets = labeled_set(profile, root, extra_labeled), {}
    batches = MixedBatches(
        labeled, unlabeled, settings.batch_size, settings.seed, info.rank, info.world_size
    )
    seed_everything(settings.seed)  # the fresh model's initial weights
    model = standin.init_encoder(
        DepthAnything(profile.encoder), profile.pretrained_encoder, profile, root
    )
    return Run(
        model,
        batches.batch,
        settings,
        info,
        **run_paths(root, name),
        validate=(lambda net: score_domains(net, sets)) if validate else None,
        metadata={"role": kind},
    )


def train_teacher(
    profile: Profile | str | None = None,
    *,
    root: str | os.PathLike | None = None,
    settings: TrainSettings | None = None,
    gradient_matching: float = 0.5,
    extra_labeled: Sequence[Dataset] = (),
    name: str = "teacher",
    resume: bool = False,
    validate: bool = True,
    device: str | torch.device | None = None,
    stop_after: int | None = None,
    **overrides,
) -> nn.Module:
    """Train the teacher on the labeled domains; returns it (weights also on disk).

    Args:
        profile: a Profile or its name (default: ``$DALIB_PROFILE``): sizes, steps, model.
        root: artifact folder (default ``runs/<profile>``).
        settings: full TrainSettings; else the profile's with ``overrides`` applied, e.g.
            ``steps=100, lr_decoder=1e-3, amp="off"`` (see :class:`TrainSettings`).
        gradient_matching: weight of the gradient-matching term (0: off).
        extra_labeled: more labeled datasets (e.g. ``RGBDFolder(..., size=image_size)``)
            giving samples of the profile's image size.
        name: checkpoint name (``<root>/checkpoints/<name>.safetensors``).
        resume: continue the latest checkpoint of this name, if any.
        validate: score on the validation domains every ``eval_every`` steps and at the end.
        stop_after: stop abruptly after this many steps (no final checkpoint), as a kill would.
    """
    profile, root = resolve(profile, root)
    settings = settings or settings_for(profile, "teacher", **overrides)
    run = _run("teacher", name, profile, root, init_distributed(device), settings, None,
               extra_labeled, validate)
    metadata = {**run.metadata, "gradient_matching": str(gradient_matching)}
    run = replace(run, resume=resume, stop_after=stop_after, metadata=metadata)
    return fit(run, teacher_step(gradient_matching))


def train_student(
    profile: Profile | str | None = None,
    *,
    root: str | os.PathLike | None = None,
    manifest: str | os.PathLike | None = None,
    settings: TrainSettings | None = None,
    perturb: bool = True,
    cutmix: bool = True,
    extra_losses: Sequence[ExtraLoss] = (),
    gradient_matching: float = 0.5,
    extra_labeled: Sequence[Dataset] = (),
    pool_size: int | None = None,
    trim: float = 0.0,
    name: str | None = None,
    resume: bool = False,
    validate: bool = True,
    device: str | torch.device | None = None,
    stop_after: int | None = None,
    **overrides,
) -> nn.Module:
    """Train a student from scratch on labeled + pseudo-labeled images (1 : 2 per batch).

    ``manifest``: the pseudo labels (default ``<root>/pseudo/manifest.json``, written by
    :func:`dalib.pseudo.pseudo_label`). ``perturb`` (colour jitter, grayscale, blur) and
    ``cutmix`` switch the student's harder view of the unlabeled images: both off is plain
    self-training. ``extra_losses`` are callables ``StepContext -> 0-dim Tensor`` averaged
    with L_l and L_u (each logged under its ``__name__``); one that carries a ``head`` gets
    it trained beside the model (:data:`dalib.objectives.ExtraLoss`, e.g. :class:`dalib.semantic.AuxSegmentation`).
    ``pool_size``: train on that many of the pseudo-labeled images only, evenly spaced through
    the manifest (which lists them domain by domain, so every domain keeps its share): the
    regime map's smaller unlabeled:labeled ratios on the same schedule. ``trim``: leave each
    pseudo label's largest-residual pixels out of L_u (see :func:`dalib.objectives.student_step`).
    Other arguments as for :func:`train_teacher`; ``name`` defaults to
    :func:`student_name` of the options ("student" is the full method's checkpoint).
    """
    name = name or student_name(perturb, cutmix, extra_losses, pool_size, trim)
    profile, root = resolve(profile, root)
    manifest = Path(manifest) if manifest is not None else root / "pseudo" / "manifest.json"
    if not manifest.is_file():
        raise FileNotFoundError(
            f"pseudo-label manifest {manifest} not found; run dalib.pseudo.pseudo_label first"
        )
    pool: Dataset = PseudoLabeled(manifest, size=profile.image_size)
    if pool_size is not None:
        if not 0 < pool_size <= len(pool):
            raise ValueError(f"pool_size must be in [1, {len(pool)}] ({manifest}), got {pool_size}")
        pool = Subset(pool, torch.linspace(0, len(pool) - 1, pool_size).round().long().tolist())
    unlabeled = to_tensor_set(pool, profile.progress, desc="pseudo-labeled")
    settings = settings or settings_for(profile, "student", **overrides)
    run = _run("student", name, profile, root, init_distributed(device), settings, unlabeled,
               extra_labeled, validate)
    metadata = {
        **run.metadata,
        "perturb": str(perturb),
        "cutmix": str(cutmix),
        "manifest": str(manifest),
        "pool_size": str(len(unlabeled)),
        "trim": str(trim),
        "extra_losses": ",".join(loss_name(f, i) for i, f in enumerate(extra_losses)),
    }
    heads = extra_heads(extra_losses)
    run = replace(run, resume=resume, stop_after=stop_after, metadata=metadata, heads=heads)
    return fit(run, student_step(gradient_matching, perturb, cutmix, extra_losses, trim))
