"""Speed of dalib.model.DepthAnything: inference and training throughput, achieved GFLOP/s.

    python benchmarks/bench_model.py                       # micro, tiny, vits at 98..224
    python benchmarks/bench_model.py --sizes vits --resolutions 518 --compare-reference
    python benchmarks/bench_model.py --channels-last both  # NCHW vs channels_last head
    python benchmarks/bench_model.py --sizes vits,vitl --resolutions 98,518 --no-train --infer-batch 1

For every (size, resolution): parameters, forward GFLOP per image (counted with
torch.utils.flop_counter.FlopCounterMode), inference images/s (batch --infer-batch, no_grad),
training images/s (forward + backward + AdamW step, batch printed) and the achieved GFLOP/s
against a measured fp32 2048^2 matmul peak on this machine. Combinations whose estimated
time exceeds --budget seconds are skipped (and listed). ``--compare-reference`` times
dalib's vits against Hugging Face transformers' DepthAnythingForDepthEstimation (ViT-S
config, random init, SDPA attention) on the same 518x518 input in the same process, after
loading transformers' weights into dalib so both compute the same function.
"""

from __future__ import annotations

import argparse
import time
from statistics import median

import torch
from torch.utils.flop_counter import FlopCounterMode

from dalib.config import set_threads
from dalib.model import SIZES, DepthAnything, load_official_checkpoint


def best_time(fn, repeats: int, warmup: int = 2) -> float:
    """Fastest wall time of ``repeats`` calls of fn (seconds), after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def matmul_peak(side: int = 2048, repeats: int = 5) -> float:
    """Measured fp32 GFLOP/s of a side x side matmul."""
    a, b = torch.randn(side, side), torch.randn(side, side)
    return 2 * side**3 / best_time(lambda: a @ b, repeats) / 1e9


def count_flops(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def build(encoder: str, channels_last: bool) -> DepthAnything:
    model = DepthAnything(encoder)
    if channels_last:
        model.depth_head.to(memory_format=torch.channels_last)
    return model


def train_throughput(
    model: DepthAnything, side: int, batch: int, repeats: int
) -> tuple[float, int]:
    """(images/s, FLOPs per step) of forward + backward + AdamW at ``batch`` x side^2."""
    x = torch.randn(batch, 3, side, side)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)

    def step():
        opt.zero_grad(set_to_none=True)
        model(x).mean().backward()
        opt.step()

    flops = count_flops(lambda: model(x).mean().backward())
    return batch / best_time(step, repeats), flops


def bench_one(encoder: str, side: int, args, peak: float, channels_last: bool) -> str | None:
    """One table row, or None when its estimated time exceeds ``args.budget``."""
    model = build(encoder, channels_last).eval()
    with torch.no_grad():
        fwd_flops = count_flops(lambda: model(torch.randn(1, 3, side, side)))
    big = SIZES[encoder].embed_dim >= 768
    train_batch = 0 if args.no_train else max(1, args.train_batch // 4) if big else args.train_batch
    # each timing repeats (repeats + 2 warm-up) calls; a training image costs ~3 forwards
    images = args.infer_batch + 3 * train_batch
    if (args.repeats + 2) * fwd_flops * images / (0.15 * peak * 1e9) > args.budget:
        return None
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    xi = torch.randn(args.infer_batch, 3, side, side)
    with torch.no_grad():
        infer = args.infer_batch / best_time(lambda: model(xi), args.repeats)
    row = (
        f"{encoder:>5} {side:>4} {'CL' if channels_last else '  '} {params / 1e6:>7.2f}M "
        f"{fwd_flops / 1e9:>8.2f} {infer:>8.2f} {fwd_flops * infer / 1e9:>7.1f} "
        f"({100 * fwd_flops * infer / 1e9 / peak:>3.0f}%)"
    )
    if not train_batch:
        return row
    train, step_flops = train_throughput(model, side, train_batch, args.repeats)
    gflops = step_flops / train_batch * train / 1e9
    return f"{row} {train_batch:>3} {train:>8.2f} {gflops:>7.1f} ({100 * gflops / peak:>3.0f}%)"


def transformers_vits(side: int):
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config

    backbone = Dinov2Config(
        image_size=518,
        patch_size=14,
        hidden_size=384,
        num_hidden_layers=12,
        num_attention_heads=6,
        out_indices=[9, 10, 11, 12],
        layerscale_value=1.0,
        apply_layernorm=True,
        reshape_hidden_states=False,
    )
    config = DepthAnythingConfig(
        backbone_config=backbone,
        fusion_hidden_size=64,
        patch_size=14,
        neck_hidden_sizes=[48, 96, 192, 384],
        reassemble_hidden_size=384,
        head_hidden_size=32,
    )
    model = DepthAnythingForDepthEstimation(config).eval()
    # the wrapper refuses SDPA at construction, but its DINOv2 backbone dispatches on this at
    # run time: give the reference the same fused attention dalib uses (eager is slower)
    model.backbone.config._attn_implementation = "sdpa"
    return model


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def paired_ratios(reference, ours, pairs: int) -> tuple[list[float], list[float]]:
    """Wall times of ``pairs`` back-to-back (reference, ours) runs, order alternating (ABBA)
    so that a load change on this shared machine hits both sides of a pair alike."""
    t_ref, t_ours = [], []
    for k in range(pairs):
        if k % 2:
            t_ours.append(timed(ours))
            t_ref.append(timed(reference))
        else:
            t_ref.append(timed(reference))
            t_ours.append(timed(ours))
    return t_ref, t_ours


def compare_reference(args) -> None:
    import transformers

    from dalib.convert import official_from_transformers

    side = 518
    torch.manual_seed(0)
    reference = transformers_vits(side)
    ours = load_official_checkpoint(
        DepthAnything("vits"), official_from_transformers(reference.state_dict())
    ).eval()
    x = torch.randn(1, 3, side, side)
    print(
        f"\nreference: transformers {transformers.__version__} DepthAnythingForDepthEstimation "
        f"(ViT-S, attention {reference.backbone.config._attn_implementation}) vs dalib vits, "
        f"1x3x{side}x{side}, no_grad, {args.pairs} alternating pairs"
    )
    with torch.no_grad():
        diff = (ours(x) - reference(pixel_values=x).predicted_depth).abs().max().item()
        print(f"  max |dalib - transformers| with shared weights: {diff:.2e}")
        for label in ("NCHW head", "channels_last head"):
            if label.startswith("channels_last"):
                ours.depth_head.to(memory_format=torch.channels_last)
            ours(x)  # warm-up of this layout
            t_ref, t_ours = paired_ratios(
                lambda: reference(pixel_values=x), lambda: ours(x), args.pairs
            )
            ratios = [r / o for r, o in zip(t_ref, t_ours, strict=True)]
            print(
                f"  dalib {label}: transformers best {min(t_ref) * 1e3:.0f} ms, dalib best "
                f"{min(t_ours) * 1e3:.0f} ms; speed-up per pair median x{median(ratios):.2f} "
                f"(min x{min(ratios):.2f}, max x{max(ratios):.2f}), dalib faster in "
                f"{sum(r > 1 for r in ratios)}/{len(ratios)} pairs"
            )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="micro,tiny,vits", help="comma list of encoders")
    parser.add_argument("--resolutions", default="98,224", help="comma list of square sides (px)")
    parser.add_argument("--infer-batch", type=int, default=4)
    parser.add_argument("--train-batch", type=int, default=16, help="(vitb/vitl use a quarter)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-train", action="store_true", help="inference columns only")
    parser.add_argument("--pairs", type=int, default=6, help="timed pairs in --compare-reference")
    parser.add_argument(
        "--budget", type=float, default=60.0, help="skip combos estimated above this (s)"
    )
    parser.add_argument("--channels-last", choices=["no", "yes", "both"], default="no")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--compare-reference", action="store_true", help="also time transformers' vits at 518"
    )
    parser.add_argument("--skip-table", action="store_true", help="only the reference comparison")
    args = parser.parse_args()
    threads = set_threads(args.threads)
    peak = matmul_peak()
    print(
        f"torch {torch.__version__}, {threads} threads, fp32 2048^2 matmul peak {peak:.1f} GFLOP/s"
    )
    if not args.skip_table:
        layouts = {"no": [False], "yes": [True], "both": [False, True]}[args.channels_last]
        print(
            f"{'size':>5} {'px':>4} CL {'params':>8} {'GFLOP/im':>8} {'infer/s':>8} "
            f"{'GFLOP/s':>14} "
            f"{'bs':>3} {'train/s':>8} {'GFLOP/s':>14}"
        )
        skipped = []
        for encoder in args.sizes.split(","):
            for side in (int(s) for s in args.resolutions.split(",")):
                for channels_last in layouts:
                    row = bench_one(encoder, side, args, peak, channels_last)
                    print(row) if row else skipped.append(f"{encoder}@{side}")
        if skipped:
            print(
                f"skipped (estimated over {args.budget:.0f} s): {', '.join(sorted(set(skipped)))}"
            )
    if args.compare_reference:
        compare_reference(args)


if __name__ == "__main__":
    main()
