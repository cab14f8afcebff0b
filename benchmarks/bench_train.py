"""Training throughput (images/s) of the teacher step under each CPU speed option.

    .venv/bin/python benchmarks/bench_train.py [--steps 6] [--batch 16] [--threads 1 2]
    .venv/bin/python benchmarks/bench_train.py --configs tiny@98 --options fp32 compile
    python benchmarks/bench_train.py --device cuda --configs tiny@98 vits@224 --batch 32

Each configuration runs the real teacher step (flip, forward through DepthNet, affine-invariant
+ gradient-matching loss, backward, clipping, AdamW) on random data. Options:

- ``fp32``: the default (timm's fused ``scaled_dot_product_attention``, NCHW);
- ``eager-attention``: the attention written out (softmax(q k^T) v), to see what fusing pays;
- ``channels_last``: the whole model in channels-last memory format;
- ``bf16``: autocast to bfloat16 on the chosen device;
- ``compile``: ``torch.compile`` of the DepthNet (inductor); its compile time is printed apart.

The first steps are warm-up (three for ``compile``, one otherwise) and the median of the others
is reported. The options of a configuration are measured in rounds (each option once per round,
best round kept), so a change of machine load hits every option alike.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import torch

from dalib.model import DepthAnything, DepthNet
from dalib.objectives import teacher_step

OPTIONS = ("fp32", "eager-attention", "channels_last", "bf16", "compile")


class Runner:
    """One model + optimiser set up for ``option``; ``__call__(steps)`` times ``steps`` steps."""

    def __init__(
        self, encoder: str, side: int, batch: int, option: str, device: torch.device
    ) -> None:
        torch.manual_seed(0)
        model = DepthAnything(encoder).to(device)
        if option == "eager-attention":
            for block in model.pretrained.blocks:
                block.attn.fused_attn = False
        if option == "channels_last":
            model = model.to(memory_format=torch.channels_last)
        net = DepthNet(model).to(device)
        self.device = device
        self.net = torch.compile(net) if option == "compile" else net
        self.params = list(model.parameters())
        self.optimizer = torch.optim.AdamW(self.params, 1e-4)
        self.step_fn = teacher_step(0.5)
        self.bf16 = option == "bf16"
        self.batch = {
            "image": torch.rand(batch, 3, side, side, device=device),
            "target": torch.rand(batch, side, side, device=device),
            "mask": torch.ones(batch, side, side, dtype=torch.bool, device=device),
        }
        self.generator = torch.Generator(device).manual_seed(0)

    def step(self) -> float:
        """One training step; its wall time in seconds."""
        started = time.perf_counter()
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16) if self.bf16 else None
        with autocast or contextlib.nullcontext():
            loss, _ = self.step_fn(self.net, self.batch, self.generator, 0)
        self.optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        self.optimizer.step()
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6, help="timed steps per option and round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=int, nargs="+", default=[torch.get_num_threads()])
    parser.add_argument("--configs", nargs="+", default=["tiny@98"], help="encoder@side ...")
    parser.add_argument("--options", nargs="+", default=list(OPTIONS), choices=OPTIONS)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parser.parse_args()
    device = torch.device(args.device)
    for threads in args.threads:
        torch.set_num_threads(threads)
        for config in args.configs:
            encoder, side = config.split("@")
            runners = {}
            for option in args.options:
                runners[option] = Runner(encoder, int(side), args.batch, option, device)
                warmup = [runners[option].step() for _ in range(3 if option == "compile" else 1)]
                if option == "compile":
                    print(f"  compile: first step {warmup[0]:.1f} s (includes compilation)")
            best = dict.fromkeys(args.options, 0.0)
            for _ in range(args.rounds):
                for option, runner in runners.items():
                    seconds = statistics.median(runner.step() for _ in range(args.steps))
                    best[option] = max(best[option], args.batch / seconds)
            base = best.get("fp32")
            shown = ", ".join(
                f"{o} {v:.1f}" + (f" (x{v / base:.2f})" if base and o != "fp32" else "")
                for o, v in best.items()
            )
            print(
                f"{args.device}, threads {threads}  {config} batch {args.batch}: "
                f"train img/s {shown}",
                flush=True,
            )


if __name__ == "__main__":
    main()
