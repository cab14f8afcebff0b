"""Training throughput (images/s) of the teacher step: model sizes, sides, threads, layouts.

    .venv/bin/python benchmarks/bench_train.py [--steps 4] [--batch 16] [--threads 1 2]

Each configuration runs the real teacher step (flip, forward through DepthNet, affine-invariant
+ gradient-matching loss, backward, clipping, AdamW) on random data; the first step is a
warm-up and the median of the others is reported. Channels-last and full-precision runs of a
size alternate, so a change of machine load hits both alike.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import torch

from dalib.loop import DepthNet
from dalib.model import DepthAnything
from dalib.train import teacher_step

CONFIGS = [("micro", 56), ("micro", 98), ("tiny", 98)]


def images_per_second(
    encoder: str, side: int, batch: int, steps: int, channels_last: bool, bf16: bool
) -> float:
    torch.manual_seed(0)
    model = DepthAnything(encoder)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    net = DepthNet(model)
    optimizer = torch.optim.AdamW(model.parameters(), 1e-4)
    step_fn = teacher_step(0.5)
    batch_dict = {
        "image": torch.rand(batch, 3, side, side),
        "target": torch.rand(batch, side, side),
        "mask": torch.ones(batch, side, side, dtype=torch.bool),
    }
    generator = torch.Generator().manual_seed(0)
    times = []
    for step in range(steps):
        started = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext():
            loss, _ = step_fn(net, batch_dict, generator, step)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        times.append(time.perf_counter() - started)
    return batch / statistics.median(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=int, nargs="+", default=[torch.get_num_threads()])
    parser.add_argument("--bf16", action="store_true", help="also time bf16 autocast")
    args = parser.parse_args()
    for threads in args.threads:
        torch.set_num_threads(threads)
        for encoder, side in CONFIGS:
            variants = [("fp32", False, False), ("channels_last", True, False)]
            variants += [("bf16 autocast", False, True)] if args.bf16 else []
            results = {
                name: images_per_second(encoder, side, args.batch, args.steps, cl, bf16)
                for name, cl, bf16 in variants
            }
            shown = ", ".join(f"{name} {value:.1f}" for name, value in results.items())
            print(
                f"threads {threads}  {encoder}@{side} batch {args.batch}: train img/s {shown}",
                flush=True,
            )


if __name__ == "__main__":
    main()
