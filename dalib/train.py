"""Teacher and student training (paper pipeline steps 1 and 3), on :func:`dalib.loop.fit`.

- :func:`train_teacher`: the labeled synthetic domains (plus any labeled folders given) with
  the affine-invariant loss on disparity (+ gradient matching), paired horizontal flips.
- :func:`train_student`: a fresh model on labeled + pseudo-labeled images, 1 : 2 in every
  batch; on the unlabeled images the student sees strong perturbations and CutMix while the
  targets are the teacher's labels of the clean images (precomputed by
  :func:`dalib.pseudo.pseudo_label`). ``extra_losses`` plug more terms in (e.g. feature
  alignment with a frozen encoder) without touching the loop.

Both evaluate on the validation domains while they train (AbsRel, δ1 per domain, MiDaS
protocol; the held-out domains are scored only for the final tables) and write to
``<root>/checkpoints/<name>.safetensors``, ``<root>/logs/<name>.jsonl`` and
``<root>/checkpoints/resume/<name>/``, where ``<root>`` is ``runs/<profile>/`` by default.
Under ``torchrun`` every process trains on its share of each batch's data (DDP).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset, Subset

from dalib import augment, losses, standin, synth
from dalib.config import (
    Profile,
    artifact_root,
    data_root,
    get_profile,
    run_paths,
    seed_everything,
)
from dalib.data import SPLIT_SEEDS, PseudoLabeled, RGBDFolder, SynthDepthDataset
from dalib.distributed import DistInfo, barrier, init_distributed
from dalib.loop import TrainSettings, fit
from dalib.metrics import relative_depth_metrics
from dalib.mixing import MixedBatches, TensorSet, concat_sets, to_tensor_set
from dalib.model import DepthAnything

__all__ = [
    "PLACEMENTS",
    "ExtraLoss",
    "StepContext",
    "TrainSettings",
    "evaluate_held_out",
    "held_out_sets",
    "labeled_loss",
    "labeled_set",
    "real_labeled_sets",
    "run_paths",
    "settings_for",
    "student_name",
    "student_step",
    "teacher_step",
    "train_student",
    "train_teacher",
    "validation_sets",
]


PLACEMENTS = ("unlabeled", "labeled", "both")
"""Whose images an extra loss uses: :meth:`StepContext.view` / :meth:`StepContext.select`."""


def _check_placement(which: str) -> None:
    if which not in PLACEMENTS:
        raise ValueError(f"which must be one of {PLACEMENTS}, got {which!r}")


@dataclass
class StepContext:
    """What an extra student loss sees at one step.

    model: the DepthAnything being trained (unwrapped from DDP); batch: the step's batch dict
    (see :class:`dalib.mixing.MixedBatches`); images: (2B, 3, H, W) the unlabeled images as
    the student saw them (perturbed / mixed, in [0, 1]); features: the student's four encoder
    read-outs of those images, each (2B, C, H/14, W/14), in the autograd graph;
    labeled_images (B, 3, H, W) and labeled_features: the same for the (flipped) labeled
    images; head_outputs: {name: output of that extra loss's ``head``} over the labeled then
    the unlabeled images (B + 2B first dimension); generator: the step's torch.Generator;
    step: 0-based step.
    """

    model: nn.Module
    batch: dict[str, Tensor]
    images: Tensor
    features: list[Tensor]
    generator: torch.Generator
    step: int
    labeled_images: Tensor | None = None
    labeled_features: list[Tensor] | None = None
    head_outputs: dict[str, Tensor] | None = None

    def view(self, which: str) -> tuple[Tensor, list[Tensor]]:
        """(images, read-outs) of "unlabeled", "labeled" or "both" (labeled first)."""
        _check_placement(which)
        if which == "unlabeled":
            return self.images, self.features
        if self.labeled_images is None or self.labeled_features is None:
            raise ValueError("this StepContext carries no labeled images")
        if which == "labeled":
            return self.labeled_images, self.labeled_features
        both = [torch.cat(pair) for pair in zip(self.labeled_features, self.features)]
        return torch.cat([self.labeled_images, self.images]), both

    def select(self, values: Tensor, which: str) -> Tensor:
        """The rows of ``values`` (over labeled then unlabeled images, e.g. a head's output)
        that belong to "unlabeled", "labeled" or "both"."""
        _check_placement(which)
        b = 0 if self.labeled_images is None else self.labeled_images.shape[0]
        return {"labeled": values[:b], "unlabeled": values[b:], "both": values}[which]


ExtraLoss = Callable[[StepContext], Tensor]
"""An extra student loss. It may carry a trainable ``head`` (nn.Module on the last read-out,
see :class:`dalib.loop.DepthNet`); its output reaches the loss as
``context.head_outputs[loss.__name__]``."""


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


def loss_name(extra: ExtraLoss, index: int) -> str:
    """The name an extra loss is logged (and its head registered) under."""
    return getattr(extra, "__name__", f"extra{index}")


def extra_heads(extra_losses: Sequence[ExtraLoss]) -> dict[str, nn.Module]:
    """{name: head} of the extra losses that carry a trainable ``head``."""
    return {
        loss_name(f, i): f.head
        for i, f in enumerate(extra_losses)
        if isinstance(getattr(f, "head", None), nn.Module)
    }


def settings_for(profile: Profile, kind: str, **overrides) -> TrainSettings:
    """TrainSettings of ``profile`` for ``kind`` = "teacher" or "student", with overrides."""
    if kind not in ("teacher", "student"):
        raise ValueError(f"kind must be 'teacher' or 'student', got {kind!r}")
    known = {f.name for f in fields(TrainSettings)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise TypeError(f"unknown training settings {unknown}; choose from {sorted(known)}")
    base = {
        "steps": profile.teacher_steps if kind == "teacher" else profile.student_steps,
        "batch_size": profile.batch_size,
        "checkpoint_every": profile.checkpoint_every,
        "eval_every": profile.eval_every,
        "progress": profile.progress,
    }
    return TrainSettings(**{**base, **{k: v for k, v in overrides.items() if v is not None}})


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


def synthetic_eval_sets(
    profile: Profile, root: Path, domains: Sequence[str], split: str
) -> dict[str, SynthDepthDataset]:
    """One set per domain: ``profile.n_eval`` scenes of ``split`` ("val" or "test", see
    :data:`dalib.data.SPLIT_SEEDS`) each, at the profile's image size, cached under
    ``root/data``."""
    return {
        domain: SynthDepthDataset(
            domain,
            profile.n_eval,
            profile.image_size,
            root / "data",
            seed=SPLIT_SEEDS[split],
            render_size=profile.render_size,
            progress=profile.progress,
        )
        for domain in domains
    }


def held_out_sets(
    profile: Profile, root: Path, domains: Sequence[str] = synth.HELD_OUT
) -> dict[str, SynthDepthDataset]:
    """The held-out domains' test sets (or those of ``domains``): for the final tables only."""
    return synthetic_eval_sets(profile, root, domains, "test")


def validation_sets(
    profile: Profile, root: Path, domains: Sequence[str] = synth.VALIDATION
) -> dict[str, SynthDepthDataset]:
    """The validation domains' sets ("val" split): what training runs are scored on while
    they train and every setting is chosen on."""
    return synthetic_eval_sets(profile, root, domains, "val")


def evaluate_held_out(
    net: nn.Module, sets: Mapping[str, Dataset], batch_size: int = 16
) -> dict[str, dict[str, float]]:
    """{domain: {"abs_rel", "delta1"}} of ``net`` ([0, 1] images -> (disparity, ...)).

    Each domain's depth is capped at its ``synth.DOMAINS[domain].max_depth`` (MiDaS protocol,
    :func:`dalib.metrics.relative_depth_metrics`); per-image values are averaged per domain.
    Call under ``torch.no_grad()`` with the net in eval mode.
    """
    device = next(net.parameters()).device
    results = {}
    for domain, dataset in sets.items():
        per_image: dict[str, list[Tensor]] = {"abs_rel": [], "delta1": []}
        for start in range(0, len(dataset), batch_size):
            samples = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
            images = torch.stack([s["image"] for s in samples]).to(device)
            depth = torch.stack([s["depth"] for s in samples]).to(device)
            valid = torch.stack([s["valid"] for s in samples]).to(device)
            pred = net(images)[0].float()
            max_depth = synth.DOMAINS[domain].max_depth if domain in synth.DOMAINS else None
            out = relative_depth_metrics(pred, depth, valid, max_depth=max_depth)
            for key, values in per_image.items():
                values.append(out[f"{key}_per_image"].cpu())
        results[domain] = {k: float(torch.nanmean(torch.cat(v))) for k, v in per_image.items()}
    return results


# ---------------------------------------------------------------- losses of one step


def labeled_loss(
    pred: Tensor, target: Tensor, mask: Tensor, gradient_matching: float
) -> tuple[Tensor, dict[str, float]]:
    """L_l = affine-invariant + ``gradient_matching`` x gradient-matching loss (B, H, W maps)."""
    loss = losses.affine_invariant_loss(pred, target, mask)
    parts = {"loss_affine": loss.item()}
    if gradient_matching > 0:
        grad = losses.gradient_matching_loss(pred, target, mask)
        parts["loss_gradient"] = grad.item()
        loss = loss + gradient_matching * grad
    return loss, parts


def _flipped(batch: dict, generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    return augment.hflip(batch["image"], batch["target"], batch["mask"], generator=generator)


def teacher_step(gradient_matching: float):
    """The teacher's step: flipped labeled batch -> L_l."""

    def step_fn(net: nn.Module, batch: dict, generator: torch.Generator, step: int):
        images, target, mask = _flipped(batch, generator)
        pred, _ = net(images)
        loss, parts = labeled_loss(pred, target, mask, gradient_matching)
        return loss, {"loss_l": loss.item(), **parts}

    return step_fn


def student_step(
    gradient_matching: float,
    perturb: bool,
    cutmix: bool,
    extra_losses: Sequence[ExtraLoss],
    trim: float = 0.0,
):
    """The student's step: one forward of B labeled + 2B unlabeled images; mean of the losses.

    ``trim``: fraction of each pseudo label's pixels with the largest L_u residuals left out
    (0: the paper; 0.1: the Depth Anything V2 authors' later answer, their issue #108)."""

    def step_fn(net: nn.Module, batch: dict, generator: torch.Generator, step: int):
        images, target, mask = _flipped(batch, generator)
        unlabeled, u_target, u_mask = batch["u_image"], batch["u_target"], batch["u_mask"]
        if perturb:
            unlabeled = augment.strong_perturbation(unlabeled, generator)
        n, _, h, w = unlabeled.shape
        if cutmix:  # mix each image with the next one of the batch: u_b = roll(u_a)
            box = augment.cutmix_box(n, h, w, generator, p=0.5)
            unlabeled = augment.apply_cutmix(unlabeled, unlabeled.roll(1, 0), box)
        pred, features, head_outputs = net(torch.cat([images, unlabeled]), with_heads=True)
        b = images.shape[0]
        loss_l, parts = labeled_loss(pred[:b], target, mask, gradient_matching)
        if cutmix:
            loss_u = losses.cutmix_loss(
                pred[b:], u_target, u_target.roll(1, 0), box, u_mask, u_mask.roll(1, 0), trim
            )
        else:
            loss_u = losses.affine_invariant_loss(pred[b:], u_target, u_mask, trim)
        terms = {"loss_l": loss_l, "loss_u": loss_u}
        model = getattr(net, "module", net).model  # unwrap DDP, then DepthNet
        context = StepContext(
            model,
            batch,
            unlabeled,
            [f[b:] for f in features],
            generator,
            step,
            images,
            [f[:b] for f in features],
            head_outputs,
        )
        for i, extra in enumerate(extra_losses):
            terms[loss_name(extra, i)] = extra(context)
        total = torch.stack([t.float() for t in terms.values()]).mean()
        return total, {**{k: v.item() for k, v in terms.items()}, **parts}

    return step_fn


# ---------------------------------------------------------------- the two jobs


def _setup(
    profile: Profile | str | None, root: str | os.PathLike | None, device
) -> tuple[Profile, Path, DistInfo]:
    profile = profile if isinstance(profile, Profile) else get_profile(profile)
    root = Path(root) if root is not None else artifact_root(profile)
    return profile, root, init_distributed(device)


def _train(
    kind: str,
    name: str,
    profile,
    root,
    device,
    settings,
    overrides,
    step_fn,
    unlabeled: TensorSet | None,
    extra_labeled,
    resume,
    stop_after,
    evaluate,
    metadata,
    heads=None,
) -> nn.Module:
    profile, root, info = _setup(profile, root, device)
    settings = settings or settings_for(profile, kind, **overrides)
    if info.is_main:  # rank 0 renders and caches the scenes; the others then read the cache
        labeled = labeled_set(profile, root, extra_labeled)
        sets = validation_sets(profile, root) if evaluate else {}
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
    return fit(
        model,
        step_fn,
        batches.batch,
        settings,
        info,
        **run_paths(root, name),
        evaluate=(lambda net: evaluate_held_out(net, sets)) if evaluate else None,
        resume=resume,
        metadata={"role": kind, **metadata},
        stop_after=stop_after,
        heads=heads,
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
    evaluate: bool = True,
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
        evaluate: evaluate on the validation domains every ``eval_every`` steps and at the end.
        stop_after: stop abruptly after this many steps (no final checkpoint), as a kill would.
    """
    return _train(
        "teacher",
        name,
        profile,
        root,
        device,
        settings,
        overrides,
        teacher_step(gradient_matching),
        None,
        extra_labeled,
        resume,
        stop_after,
        evaluate,
        {"gradient_matching": str(gradient_matching)},
    )


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
    evaluate: bool = True,
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
    it trained beside the model (:data:`ExtraLoss`, e.g. :class:`dalib.semantic.AuxSegmentation`).
    ``pool_size``: train on that many of the pseudo-labeled images only, evenly spaced through
    the manifest (which lists them domain by domain, so every domain keeps its share): the
    regime map's smaller unlabeled:labeled ratios on the same schedule. ``trim``: leave each
    pseudo label's largest-residual pixels out of L_u (see :func:`student_step`).
    Other arguments as for :func:`train_teacher`; ``name`` defaults to
    :func:`student_name` of the options ("student" is the full method's checkpoint).
    """
    name = name or student_name(perturb, cutmix, extra_losses, pool_size, trim)
    profile_obj, root_path, _ = _setup(profile, root, device)
    manifest = Path(manifest) if manifest is not None else root_path / "pseudo" / "manifest.json"
    if not manifest.is_file():
        raise FileNotFoundError(
            f"pseudo-label manifest {manifest} not found; run dalib.pseudo.pseudo_label first"
        )
    pool: Dataset = PseudoLabeled(manifest, size=profile_obj.image_size)
    if pool_size is not None:
        if not 0 < pool_size <= len(pool):
            raise ValueError(f"pool_size must be in [1, {len(pool)}] ({manifest}), got {pool_size}")
        pool = Subset(pool, torch.linspace(0, len(pool) - 1, pool_size).round().long().tolist())
    unlabeled = to_tensor_set(pool, profile_obj.progress, desc="pseudo-labeled")
    return _train(
        "student",
        name,
        profile_obj,
        root_path,
        device,
        settings,
        overrides,
        student_step(gradient_matching, perturb, cutmix, extra_losses, trim),
        unlabeled,
        extra_labeled,
        resume,
        stop_after,
        evaluate,
        {
            "perturb": str(perturb),
            "cutmix": str(cutmix),
            "manifest": str(manifest),
            "pool_size": str(len(unlabeled)),
            "trim": str(trim),
            "extra_losses": ",".join(loss_name(f, i) for i, f in enumerate(extra_losses)),
        },
        extra_heads(extra_losses),
    )
