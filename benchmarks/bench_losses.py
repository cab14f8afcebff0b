"""Speed of dalib.losses (forward + backward) against a straightforward per-image loop.

    python benchmarks/bench_losses.py [--batch 32] [--size 224] [--repeats 5] [--device cpu]

Prints one row per loss: the best time in ms over ``--repeats`` alternating runs (after a
warm-up; the minimum is the figure least disturbed by other processes) of the batched loss and
of a loop over images (torch.median per image, boolean indexing, ...), and the ratio loop / batched.
Each loop version is also checked to give the same value as the batched one.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from dalib.augment import cutmix_box
from dalib.config import get_device, set_threads
from dalib.losses import (
    SCALE_EPS,
    affine_invariant_loss,
    cutmix_loss,
    feature_alignment_loss,
    gradient_matching_loss,
    ssi_mse_loss,
)


def loop_normalize(values: torch.Tensor) -> torch.Tensor:
    median = values.median()
    return (values - median) / (values - median).abs().mean().clamp_min(SCALE_EPS)


def loop_affine(pred, target, mask):
    losses = [
        (loop_normalize(p[m]) - loop_normalize(t[m])).abs().mean()
        for p, t, m in zip(pred, target, mask)
        if m.any()
    ]
    return torch.stack(losses).mean()


def loop_gradient_matching(pred, target, mask, scales=4):
    losses = []
    for p, t, m in zip(pred, target, mask):
        diff = torch.zeros_like(p)
        diff[m] = loop_normalize(p[m]) - loop_normalize(t[m])
        total = 0.0
        for k in range(scales):
            d, mk = diff[:: 2**k, :: 2**k], m[:: 2**k, :: 2**k]
            gx = (d[:, 1:] - d[:, :-1]).abs()[mk[:, 1:] & mk[:, :-1]].sum()
            gy = (d[1:] - d[:-1]).abs()[mk[1:] & mk[:-1]].sum()
            total = total + (gx + gy) / mk.sum()
        losses.append(total)
    return torch.stack(losses).mean()


def loop_ssi_mse(pred, target, mask):
    losses = []
    for p, t, m in zip(pred, target, mask):
        pv, tv = p[m], t[m]
        pc, tc = pv - pv.mean(), tv - tv.mean()
        losses.append(((pc * tc).sum() / (pc * pc).sum() * pc - tc).pow(2).mean())
    return torch.stack(losses).mean()


def loop_cutmix(pred, target_a, target_b, box, mask_a, mask_b):
    losses = []
    for p, ta, tb, bx, ma, mb in zip(pred, target_a, target_b, box, mask_a, mask_b):
        inside, outside = bx & ma, ~bx & mb
        w_in = bx.float().mean()
        loss_in = (
            (loop_normalize(p[inside]) - loop_normalize(ta[inside])).abs().mean()
            if inside.any()
            else 0.0
        )
        loss_out = (loop_normalize(p[outside]) - loop_normalize(tb[outside])).abs().mean()
        losses.append(w_in * loss_in + (1 - w_in) * loss_out)
    return torch.stack(losses).mean()


def loop_feature_alignment(f, f_frozen, margin=0.85):
    total, count = 0.0, 0
    for a, b in zip(f, f_frozen.detach()):
        cos = torch.nn.functional.cosine_similarity(a, b, dim=0)
        kept = cos[cos <= margin]
        total, count = total + (1 - kept).sum(), count + kept.numel()
    return total / max(count, 1)


def _run_ms(fn: Callable[[], torch.Tensor], leaf: torch.Tensor) -> tuple[float, torch.Tensor]:
    """ms of one forward + backward, and the loss value."""
    leaf.grad = None
    if leaf.is_cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    value = fn()
    value.backward()
    if leaf.is_cuda:
        torch.cuda.synchronize()
    return (time.perf_counter() - start) * 1e3, value.detach()


def time_pair(
    batched: Callable[[], torch.Tensor],
    loop: Callable[[], torch.Tensor],
    leaf: torch.Tensor,
    repeats: int,
) -> tuple[float, float, torch.Tensor, torch.Tensor]:
    """Best ms of each over ``repeats`` alternating runs after a warm-up, and their values.

    Alternating the two keeps a busy machine's load from favouring either side.
    """
    best = [float("inf"), float("inf")]
    values = [None, None]
    for i in range(repeats + 1):
        for j, fn in enumerate((batched, loop)):
            ms, values[j] = _run_ms(fn, leaf)
            if i:
                best[j] = min(best[j], ms)
    return best[0], best[1], values[0], values[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default=None, help="default: CUDA if available, else CPU")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: all usable)"
    )
    args = parser.parse_args()
    set_threads(args.threads)
    device = get_device(args.device)
    g = torch.Generator(device=device).manual_seed(0)
    shape = (args.batch, args.size, args.size)
    pred = torch.rand(shape, generator=g, device=device, requires_grad=True)
    target_a = torch.rand(shape, generator=g, device=device)
    target_b = torch.rand(shape, generator=g, device=device)
    mask_a = torch.rand(shape, generator=g, device=device) < 0.9
    mask_b = torch.rand(shape, generator=g, device=device) < 0.9
    box = cutmix_box(args.batch, args.size, args.size, g)  # UniMatch boxes, p = 0.5
    tokens = max(args.size // 14, 1)
    feat = torch.randn(
        args.batch, 384, tokens, tokens, generator=g, device=device, requires_grad=True
    )
    frozen = feat.detach() + torch.randn(feat.shape, generator=g, device=device)

    cases = [
        (
            "affine_invariant",
            pred,
            lambda: affine_invariant_loss(pred, target_a, mask_a),
            lambda: loop_affine(pred, target_a, mask_a),
        ),
        (
            "gradient_matching",
            pred,
            lambda: gradient_matching_loss(pred, target_a, mask_a),
            lambda: loop_gradient_matching(pred, target_a, mask_a),
        ),
        (
            "ssi_mse",
            pred,
            lambda: ssi_mse_loss(pred, target_a, mask_a),
            lambda: loop_ssi_mse(pred, target_a, mask_a),
        ),
        (
            "cutmix",
            pred,
            lambda: cutmix_loss(pred, target_a, target_b, box, mask_a, mask_b),
            lambda: loop_cutmix(pred, target_a, target_b, box, mask_a, mask_b),
        ),
        (
            "feature_alignment",
            feat,
            lambda: feature_alignment_loss(feat, frozen),
            lambda: loop_feature_alignment(feat, frozen),
        ),
    ]
    print(
        f"device {device}, threads {torch.get_num_threads()}, "
        f"batch {args.batch} x {args.size} x {args.size} "
        f"(features {args.batch} x 384 x {tokens} x {tokens}), "
        f"forward + backward, best of {args.repeats}"
    )
    print(f"{'loss':<20}{'batched ms':>12}{'loop ms':>10}{'loop/batched':>14}")
    for name, leaf, batched, loop in cases:
        batched_ms, loop_ms, batched_value, loop_value = time_pair(
            batched, loop, leaf, args.repeats
        )
        torch.testing.assert_close(
            batched_value, loop_value.to(batched_value.dtype), rtol=1e-3, atol=1e-5
        )
        print(f"{name:<20}{batched_ms:>12.1f}{loop_ms:>10.1f}{loop_ms / batched_ms:>14.2f}")


if __name__ == "__main__":
    main()
