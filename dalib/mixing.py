"""Training data held in memory, and batches that depend only on (seed, step).

Data loading must never stall a 2-core training loop, so the training sets are decoded once
into tensors (:class:`TensorSet`) and every batch is an index into them. Which items form
the batch of a step is a pure function of ``(seed, epoch, rank)`` (:class:`EpochBatches`):
each epoch is a fresh permutation seeded by (seed, epoch), each of the ``world_size``
processes takes every ``world_size``-th item of it (DistributedSampler's split, disjoint),
and the last incomplete batch is dropped. So the data position of a job is just its step,
and a resumed job sees exactly the batches an uninterrupted one would.

:class:`MixedBatches` gives the student's batches: B labeled + 2B pseudo-labeled items.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from dalib.config import stable_seed
from dalib.depth import depth_to_disparity
from dalib.sample import tensor_to_uint8


@dataclass(frozen=True)
class TensorSet:
    """N training items in memory.

    images: (N, 3, H, W) uint8; targets: (N, H, W) float32 disparity (any scale and shift;
    0 at sky); masks: (N, H, W) bool, the pixels the loss may use.
    """

    images: Tensor
    targets: Tensor
    masks: Tensor

    def __post_init__(self) -> None:
        n, _, h, w = self.images.shape
        if (
            self.images.dtype != torch.uint8
            or self.targets.shape != (n, h, w)
            or self.masks.shape != (n, h, w)
        ):
            raise ValueError(
                f"TensorSet needs uint8 images (N,3,H,W) with (N,H,W) targets and masks; got "
                f"{self.images.dtype} {tuple(self.images.shape)}, {tuple(self.targets.shape)}, "
                f"{tuple(self.masks.shape)}"
            )

    def __len__(self) -> int:
        return self.images.shape[0]

    def batch(self, indices: Tensor, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
        """(images float (b, 3, H, W) in [0, 1], targets (b, H, W), masks (b, H, W)) on device."""
        images = self.images[indices].to(device, non_blocking=True).float().div_(255.0)
        return images, self.targets[indices].to(device), self.masks[indices].to(device)


def to_tensor_set(dataset: Dataset, progress: bool = False, desc: str = "load") -> TensorSet:
    """Decode every sample of ``dataset`` into a :class:`TensorSet` (all samples one size).

    A sample with ``"disparity"`` (pseudo labels) uses it as target and ``"valid"`` as mask.
    Otherwise the target is ``depth_to_disparity(depth)``: 0 at sky and unknown pixels, and
    the mask is ``valid | sky``: the sky takes part in the loss as the farthest value, pixels
    of unknown depth do not.
    """
    if len(dataset) == 0:
        raise ValueError(f"{desc}: the dataset is empty")
    images, targets, masks = [], [], []
    for i in tqdm(range(len(dataset)), desc=desc, disable=not progress):
        sample = dataset[i]
        images.append(tensor_to_uint8(sample["image"]))
        if "disparity" in sample:
            targets.append(sample["disparity"].float())
            masks.append(sample["valid"].bool())
        else:
            targets.append(depth_to_disparity(sample["depth"]))
            masks.append(sample["valid"] | sample["sky"])
    shapes = {tuple(t.shape) for t in images}
    if len(shapes) != 1:
        raise ValueError(
            f"{desc}: samples differ in size {sorted(shapes)}; give the dataset a size="
        )
    return TensorSet(torch.stack(images), torch.stack(targets), torch.stack(masks))


def concat_sets(sets: list[TensorSet]) -> TensorSet:
    """One TensorSet holding the items of ``sets`` in order (all of one size)."""
    return TensorSet(
        *(torch.cat([getattr(s, f) for s in sets]) for f in ("images", "targets", "masks"))
    )


class EpochBatches:
    """Indices of the batch of each step: shuffled per (seed, epoch), split by rank, drop-last.

    Args:
        n: items in the data set; batch_size: items per batch and process;
        seed: shuffling seed; rank, world_size: this process's share (``perm[rank::world]``).
    """

    def __init__(
        self, n: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.per_rank = n // world_size
        self.batches_per_epoch = self.per_rank // batch_size
        if self.batches_per_epoch < 1:
            raise ValueError(
                f"{n} items cannot fill one batch of {batch_size} on each of {world_size} "
                "process(es); use more data or a smaller batch_size"
            )
        self._epoch, self._order = -1, torch.empty(0, dtype=torch.long)

    def epoch_order(self, epoch: int) -> Tensor:
        """This rank's (per_rank,) item order in ``epoch``."""
        if epoch != self._epoch:
            generator = torch.Generator().manual_seed(stable_seed("epoch", self.seed, epoch))
            perm = torch.randperm(self.n, generator=generator)
            self._epoch, self._order = epoch, perm[self.rank :: self.world_size][: self.per_rank]
        return self._order

    def indices(self, step: int) -> Tensor:
        """(batch_size,) item indices of global step ``step`` (0-based) for this rank."""
        epoch, position = divmod(step, self.batches_per_epoch)
        start = position * self.batch_size
        return self.epoch_order(epoch)[start : start + self.batch_size]


class MixedBatches:
    """Batches of ``batch_size`` labeled and ``ratio * batch_size`` unlabeled items per step.

    ``batch(step, device)`` returns a dict: ``"image"`` (B, 3, H, W) in [0, 1], ``"target"``
    (B, H, W) disparity, ``"mask"`` (B, H, W) bool; with an unlabeled set also ``"u_image"``,
    ``"u_target"`` (pseudo labels of the clean images), ``"u_mask"`` with ``ratio * B`` rows.
    The two sets are shuffled independently (seeds derived from ``seed``) and each restarts
    its epochs on its own, so both are cycled for as many steps as asked.
    """

    def __init__(
        self,
        labeled: TensorSet,
        unlabeled: TensorSet | None,
        batch_size: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        ratio: int = 2,
    ) -> None:
        self.labeled, self.unlabeled = labeled, unlabeled
        self.labeled_order = EpochBatches(
            len(labeled), batch_size, stable_seed("labeled", seed), rank, world_size
        )
        self.unlabeled_order = (
            EpochBatches(
                len(unlabeled), ratio * batch_size, stable_seed("unlabeled", seed), rank, world_size
            )
            if unlabeled is not None
            else None
        )

    def batch(self, step: int, device: torch.device) -> dict[str, Tensor]:
        image, target, mask = self.labeled.batch(self.labeled_order.indices(step), device)
        out = {"image": image, "target": target, "mask": mask}
        if self.unlabeled is not None:
            u = self.unlabeled.batch(self.unlabeled_order.indices(step), device)
            out.update(zip(("u_image", "u_target", "u_mask"), u, strict=True))
        return out
