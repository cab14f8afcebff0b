"""What one training step minimises: the teacher's L_l and the student's mean of L_l, L_u and
any extra losses (paper Eq. 1-3, 5), as the ``step_fn`` that :func:`dalib.loop.fit` calls.

- :func:`labeled_loss`: L_l, the affine-invariant loss on disparity (+ gradient matching);
- :func:`teacher_step`: a flipped labeled batch -> L_l;
- :func:`student_step`: one forward of B labeled + 2B unlabeled images (strongly perturbed
  and CutMixed, or clean) against the teacher's pseudo labels, plus extra losses, each a
  function of the step's :class:`StepContext` (feature alignment, :mod:`dalib.semantic`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from dalib import augment, losses

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
see :class:`dalib.model.DepthNet`); its output reaches the loss as
``context.head_outputs[loss.__name__]``."""


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


# ---------------------------------------------------------------- losses of one step


def labeled_loss(
    pred: Tensor, target: Tensor, mask: Tensor, gradient_matching: float
) -> tuple[Tensor, dict[str, Tensor]]:
    """L_l = affine-invariant + ``gradient_matching`` x gradient-matching loss (B, H, W maps);
    also its parts, detached 0-dim tensors (the loop reads them all in one host sync)."""
    loss = losses.affine_invariant_loss(pred, target, mask)
    parts = {"loss_affine": loss.detach()}
    if gradient_matching > 0:
        grad = losses.gradient_matching_loss(pred, target, mask)
        parts["loss_gradient"] = grad.detach()
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
        return loss, {"loss_l": loss.detach(), **parts}

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
        return total, {**{k: v.detach() for k, v in terms.items()}, **parts}

    return step_fn


__all__ = [
    "PLACEMENTS",
    "ExtraLoss",
    "StepContext",
    "extra_heads",
    "labeled_loss",
    "loss_name",
    "student_step",
    "teacher_step",
]
