"""How long a profile's synthetic datasets take to render, through the dataset path itself.

    python benchmarks/bench_datasets.py --profile gpu [--device auto|none|cpu|cuda] [--scenes 96]

Renders ``--scenes`` scenes of each of two domains (one labeled, one unlabeled) at the
profile's render side with ``dalib.data.SynthDepthDataset`` as the notebooks do (worker
processes, cache file written to a temporary folder), and scales the measured rate to the
profile's whole count of scenes (labeled, unlabeled, validation and held-out sets). ``--device
none`` is the NumPy renderer in one worker per CPU; ``cpu`` / ``cuda`` the torch renderer
(dalib.world.render_torch) there; ``auto`` what the datasets choose (CUDA when present).

For the torch renderer it also measures, in this process, its fixed cost per scene: the part
that does not grow with the pixel count (building the world, about a thousand tensor operations
issued from Python, their transfers), by rendering at 8 x 8. On a GPU that is the CPU's share of
the work, which the workers split. Worker processes are spawned (CUDA cannot be used in a forked
one): each dataset construction pays their start-up, a few seconds, once.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch

from dalib import config, data, synth


def profile_scenes(p: config.Profile) -> int:
    """Scenes a profile renders: labeled, unlabeled, validation and held-out domains."""
    return (
        len(synth.LABELED) * p.n_labeled
        + len(synth.UNLABELED) * p.n_unlabeled
        + (len(synth.VALIDATION) + len(synth.HELD_OUT)) * p.n_eval
    )


def rate(device: str | None, side: int, size: int, scenes: int, workers: int) -> float:
    """Images/s rendering ``scenes`` of one labeled and one unlabeled domain at ``side`` px
    (served at ``size``, the profile's image side)."""
    domains = (synth.LABELED[0], synth.UNLABELED[0])
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        data.SynthDepthDataset(
            domains, scenes, size, Path(tmp), seed=7, render_size=side,
            workers=workers, device=device, progress=False,
        )
        return len(domains) * scenes / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="gpu", choices=sorted(config.PROFILES))
    parser.add_argument("--device", default="auto", help="auto, none (NumPy), cpu or cuda")
    parser.add_argument("--scenes", type=int, default=96, help="scenes per measured domain")
    parser.add_argument("--workers", type=int, default=config.cpu_count())
    args = parser.parse_args(argv)
    if args.scenes < 1:
        parser.error("--scenes must be >= 1")
    device = data.render_device(None if args.device == "none" else args.device)
    p = config.get_profile(args.profile)
    total = profile_scenes(p)
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "none"
    print(f"profile {p.name}: {total:,} scenes at {p.render_size} px; renderer "
          f"{'NumPy' if device is None else f'torch on {device}'}; {args.workers} workers on "
          f"{config.cpu_count()} CPUs; GPU: {gpu}; load {os.getloadavg()[0]:.2f}")
    rate(device, 16, 14, 2, 1)  # warm: bundled photos decoded, torch kernels loaded
    measured = rate(device, p.render_size, p.image_size, args.scenes, args.workers)
    print(f"measured: {measured:.1f} images/s -> {total / measured / 60:.1f} min for the profile")
    if device is not None:
        per_domain = max(1, args.scenes // len(synth.DOMAINS))
        start = time.perf_counter()
        for domain in synth.DOMAINS:
            synth.render_many(domain, range(per_domain), (8, 8), device=device)
        fixed = (time.perf_counter() - start) / (per_domain * len(synth.DOMAINS))
        floor = total * fixed / args.workers / 60
        print(f"fixed cost (8 x 8 px, every domain, in this process): {fixed * 1e3:.1f} ms a scene "
              f"-> {floor:.1f} min for the profile in {args.workers} workers if the device's "
              "own time, storage and the sensor effects were free")


if __name__ == "__main__":
    main()
