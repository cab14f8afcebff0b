"""Rendering speed of dalib.synth: images per second per domain at 112x112 and 224x224.

    python benchmarks/bench_synth.py [--n N] [--sizes 112 224] [--domains a b ...]

One process. The renderer is vectorised NumPy; its element-wise work runs on one core, so the
figures are per core (render domains in parallel processes to use more). Texture caches are
warmed first. The load average is printed because the machine may be shared.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dalib import synth


def bench(domain: str, size: int, n: int) -> float:
    """Images per second rendering seeds 1..n of ``domain`` at size x size."""
    start = time.perf_counter()
    synth.render_many(domain, range(1, n + 1), (size, size))
    return n / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20, help="images per domain and size")
    parser.add_argument("--sizes", type=int, nargs="+", default=[112, 224])
    parser.add_argument(
        "--domains", nargs="+", default=list(synth.DOMAINS), choices=list(synth.DOMAINS)
    )
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error("--n must be >= 1")

    for domain in args.domains:  # warm the texture caches (bundled photos are decoded once)
        synth.render(domain, 0, (16, 16))
    threads = os.environ.get("OMP_NUM_THREADS", "unset")
    print(
        f"dalib.synth render speed: {args.n} images per cell, single process, OMP_NUM_THREADS={threads}"
    )
    print(f"load average before: {os.getloadavg()[0]:.2f} (on {os.cpu_count()} CPUs)")
    header = f"{'domain':14s} {'group':9s}" + "".join(
        f" {f'{s}x{s} img/s':>14s}" for s in args.sizes
    )
    print(header)
    totals = {s: 0.0 for s in args.sizes}
    for domain in args.domains:
        rates = {s: bench(domain, s, args.n) for s in args.sizes}
        for s, rate in rates.items():
            totals[s] += 1 / rate
        cells = "".join(f" {rates[s]:14.1f}" for s in args.sizes)
        print(f"{domain:14s} {synth.DOMAINS[domain].group:9s}{cells}")
    mean = "".join(f" {len(args.domains) / totals[s]:14.1f}" for s in args.sizes)
    per_image = ", ".join(f"{1000 * totals[s] / len(args.domains):.0f} ms @{s}" for s in args.sizes)
    print(f"{'all (mean)':24s}{mean}   ({per_image} per image)")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
